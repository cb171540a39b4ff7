"""Grants of the packets pages (configuration) and the packet catalogue on disk."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
from builders import write_signed_packet

from metaudit.errors import SettingsError
from metaudit.spec.settings import Settings
from metaudit.web.access import AccessPolicy, Viewer, access_policy, viewer_of
from metaudit.web.catalog import PacketCatalog, verdict

KEY = b"catalogue-test-key-0123456789"


def _policy(data: dict) -> AccessPolicy:
    return access_policy(Settings.from_dict(data))


def test_nothing_is_granted_by_default():
    policy = _policy({})
    owner = Viewer("owner1", frozenset({"viewer"}))
    assert not policy.is_admin(owner)
    assert not policy.may_see(owner, "PR-1")
    assert policy.practices_of(owner, ["PR-1", "PR-2"]) == []
    # The default admin role is Airflow's "admin".
    assert policy.is_admin(Viewer("root", frozenset({"admin"})))


def test_viewers_admins_and_admin_roles():
    policy = _policy(
        {
            "access": {"admins": ["dana"], "admin_roles": ["Compliance"]},
            "practices": {"PR-1": {"packet_viewers": ["owner1"]}, "PR-2": {}},
        }
    )
    assert policy.practices_of(Viewer("owner1"), ["PR-1", "PR-2", "PR-3"]) == ["PR-1"]
    assert policy.may_see(Viewer("dana"), "PR-3")
    assert policy.is_admin(Viewer("kim", frozenset({"compliance"})))
    # admin_roles replaces the default: Airflow's admin role no longer counts.
    assert not policy.is_admin(Viewer("root", frozenset({"admin"})))
    # Names are exact: Airflow user names are case-sensitive.
    assert not policy.may_see(Viewer("Owner1"), "PR-1")


def test_every_bad_grant_is_reported_at_once_by_path():
    with pytest.raises(SettingsError) as caught:
        _policy(
            {
                "access": {"admins": "dana", "admin_role": ["x"]},
                "practices": {"PR-1": {"packet_viewers": ["ok", 7, " "]}},
            }
        )
    text = str(caught.value)
    assert "4 problems" in text
    assert "access.admins: must be a list of user names" in text
    assert "access.admin_role: unknown key" in text
    assert "practices.PR-1.packet_viewers: 7 is not a user name" in text


def test_access_must_be_a_mapping():
    with pytest.raises(SettingsError, match="access must be a mapping"):
        _policy({"access": ["dana"]})


@dataclass
class _Role:
    name: str


class _FabUser:
    roles = (_Role("Admin"), _Role("Viewer"))

    def get_name(self) -> str:
        return "fab-user"


class _SimpleUser:
    role = "VIEWER"

    def get_name(self) -> str:
        return "simple-user"


def test_viewer_of_simple_and_fab_users():
    assert viewer_of(_SimpleUser()) == Viewer("simple-user", frozenset({"viewer"}))
    assert viewer_of(_FabUser()) == Viewer("fab-user", frozenset({"admin", "viewer"}))


def _packet(root, practice_id, as_of, client_id, key=KEY):
    return write_signed_packet(root, practice_id, as_of, client_id, key)


def test_the_catalogue_decodes_ids_and_skips_what_is_not_a_packet(tmp_path):
    _packet(tmp_path, "PR 1", "2026-03-31", "CL/1")
    _packet(tmp_path, "PR 1", "2026-03-31", None)
    (tmp_path / "PR%201" / "2026-03-31" / "notes.txt").write_text("x")
    (tmp_path / "PR%201" / "2026-03-31" / "Cl%2f1.zip").write_text("x")  # not our encoding
    (tmp_path / "PR%201" / "backup").mkdir()
    (tmp_path / "lost+found").mkdir()
    catalog = PacketCatalog(tmp_path)
    assert catalog.practices() == ["PR 1"]
    found = catalog.find(["PR 1"])
    assert [(e.kind, e.client_id, e.period) for e in found] == [
        ("client", "CL/1", "2026-03-31"),
        ("practice", None, "2026-03"),
    ]
    assert found[0].relative == "PR%201/2026-03-31/CL%2F1.zip"
    assert catalog.as_of_dates(["PR 1", "PR-unknown"]) == ["2026-03-31"]


def test_verdicts_are_cached_until_the_file_changes(tmp_path):
    path = _packet(tmp_path, "PR-1", "2026-03-31", "CL-1")
    catalog = PacketCatalog(tmp_path)
    entry = catalog.client_packet("PR-1", "2026-03-31", "CL-1")
    assert entry is not None
    assert verdict(entry, KEY).intact
    assert not verdict(entry, b"another-key-of-16-chars").intact
    _packet(tmp_path, "PR-1", "2026-03-31", "CL-1", key=b"another-key-of-16-chars")
    os.utime(path, ns=(entry.mtime_ns + 10**9, entry.mtime_ns + 10**9))
    changed = catalog.client_packet("PR-1", "2026-03-31", "CL-1")
    assert changed is not None
    assert not verdict(changed, KEY).intact


@pytest.mark.parametrize(
    "path",
    ["metaudit.example.yaml", "deploy/demo/metaudit.yaml", "deploy/compose/config/metaudit.yaml"],
)
def test_the_shipped_configurations_grant_validly(path):
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    policy = access_policy(Settings.load(root / path))
    assert policy.viewers, f"{path} grants no practice to anyone"
