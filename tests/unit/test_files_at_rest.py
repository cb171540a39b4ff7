"""Names and permissions of what the project writes (issue 12, items 8 and 9).

Distinct ids never share a file or folder name, whichever writer names it, and
every file is created owner-only (0600) in owner-only folders (0700), whatever
the umask.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from metaudit import paths
from metaudit.mail.outbox import DIGEST, Outbox
from metaudit.packets.layout import client_packet_path, practice_packet_path
from metaudit.paths import id_name, id_of_name, write_atomic

IDS = ["PR_1", "PR 1", "PR%201", "PR-1", "PR/1", "PR.1", ".PR1", "-PR1", "PR\\1", "Prüfung", "pr_1"]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The usual umask, under which plain writes would be 0644 / 0755."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_distinct_ids_get_distinct_names_everywhere_and_read_back(tmp_path):
    names = [id_name(value) for value in IDS]
    assert len(set(names)) == len(IDS)
    assert all("/" not in n and "\\" not in n and not n.startswith((".", "-")) for n in names)
    assert [id_of_name(n) for n in names] == IDS
    outbox = Outbox(tmp_path / "outbox")
    for where in (
        lambda p: id_name(p, "practice id"),
        lambda p: paths.results_dir("2026-03-31", p, tmp_path).name,
        lambda p: outbox.paths(DIGEST, "2026-03-31", p).record.name,
        lambda p: client_packet_path(tmp_path, p, "2026-03-31", "CL-1").parent.parent.name,
        lambda p: client_packet_path(tmp_path, "PR0001", "2026-03-31", p).name,
        lambda p: practice_packet_path(tmp_path, p, "2026-03-31").parent.name,
    ):
        assert len({where(p) for p in IDS}) == len(IDS)
    # One encoding: the partition, the results and the packets of a practice share a name.
    assert id_name("PR 1") == paths.results_dir("2026-03-31", "PR 1", tmp_path).name
    assert id_name("PR 1") == client_packet_path(tmp_path, "PR 1", "2026-03-31", "x").parts[-3]


def test_atomic_writes_and_their_folders_are_owner_only(tmp_path, open_umask):
    target = tmp_path / "data" / "results" / "2026-03-31" / "PR0001" / "findings.jsonl"
    write_atomic(target, "{}\n")
    assert _mode(target) == 0o600
    for folder in (target.parent, target.parent.parent, tmp_path / "data"):
        assert _mode(folder) == 0o700, folder


def test_the_results_sqlite_is_created_owner_only(tmp_path, open_umask):
    from metaudit.results import ResultsStore

    path = tmp_path / "data" / "results.sqlite"
    store = ResultsStore.open(f"sqlite:///{path}")
    try:
        assert _mode(path) == 0o600 and _mode(path.parent) == 0o700
    finally:
        store.close()
    path.chmod(0o644)  # made by an earlier version
    ResultsStore.open(f"sqlite:///{path}").close()
    assert _mode(path) == 0o600


def test_outbox_records_emails_and_locks_are_owner_only(tmp_path, open_umask):
    from metaudit.mail.outbox import OutboxRecord

    outbox = Outbox(tmp_path / "outbox")
    record = OutboxRecord(
        kind=DIGEST,
        name="PR 1",
        as_of="2026-03-31",
        state="pending",
        created_at="2026-03-31T06:00:00Z",
        updated_at="2026-03-31T06:00:00Z",
    )
    with outbox.locked(DIGEST, "2026-03-31", "PR 1"):
        saved = outbox.save(record)
        eml = outbox.write_eml(record, b"Subject: x\r\n\r\nbody")
    paths = outbox.paths(DIGEST, "2026-03-31", "PR 1")
    assert {_mode(p) for p in (saved, eml, paths.lock)} == {0o600}
    assert _mode(saved.parent) == 0o700 and _mode(tmp_path / "outbox") == 0o700
