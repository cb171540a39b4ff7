"""`metaudit verify` and the signed manifest: every tampering is named, keys are required."""

from __future__ import annotations

import json
import zipfile
from datetime import date
from pathlib import Path

import pytest

from metaudit.cli import main
from metaudit.packets import DEMO_PACKET_KEY, PacketKeyError, verify_packet
from metaudit.packets.archive import zip_bytes
from metaudit.packets.signing import (
    KEY_ENV,
    build_manifest,
    canonical_json,
    key_id,
    manifest_bytes,
    resolve_key,
    signature,
)

KEY = b"a-deployment-secret-of-some-length"
OTHER_KEY = b"somebody-elses-secret-key-0123456"
AS_OF = date(2026, 3, 31)
FILES = {
    "cover.pdf": b"%PDF-1.4 not really a pdf but bytes",
    "findings.csv": b"as_of,practice_id\n2026-03-31,PR-1\n",
    "records/sessions.csv": b"session_id\nS-1\n",
}


def _packet(tmp_path: Path, files: dict[str, bytes] | None = None, key: bytes = KEY) -> Path:
    files = dict(FILES if files is None else files)
    manifest = build_manifest(
        files, kind="client", as_of="2026-03-31", practice_id="PR-1", client_id="CL-1", key=key
    )
    files["manifest.json"] = manifest_bytes(manifest)
    path = tmp_path / "CL-1.zip"
    path.write_bytes(zip_bytes(files, AS_OF))
    return path


def _entries(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _rezip(path: Path, entries: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)


def test_manifest_lists_every_file_with_size_and_sha256_and_is_signed(tmp_path):
    manifest = json.loads(_entries(_packet(tmp_path))["manifest.json"])
    assert [f["path"] for f in manifest["files"]] == sorted(FILES)
    assert {f["path"]: f["size"] for f in manifest["files"]} == {
        k: len(v) for k, v in FILES.items()
    }
    assert manifest["as_of"] == "2026-03-31" and manifest["practice_id"] == "PR-1"
    assert manifest["client_id"] == "CL-1" and manifest["created_by"].startswith("metaudit ")
    assert manifest["signature_algorithm"] == "HMAC-SHA256" and manifest["key_id"] == key_id(KEY)
    # The signature covers the canonical JSON of everything but itself.
    assert b'"signature"' not in canonical_json(manifest)
    assert manifest["signature"] == signature(manifest, KEY)


def test_intact_packet_verifies_and_the_cli_exits_0(tmp_path, monkeypatch, capsys):
    path = _packet(tmp_path)
    check = verify_packet(path, KEY)
    assert check.intact and check.files_checked == 3
    monkeypatch.setenv(KEY_ENV, KEY.decode())
    assert main(["verify", str(path)]) == 0
    out = capsys.readouterr().out
    assert "intact" in out and "CL-1" in out and "PR-1" in out and "2026-03-31" in out


def test_a_changed_byte_is_named(tmp_path, monkeypatch, capsys):
    path = _packet(tmp_path)
    entries = _entries(path)
    entries["records/sessions.csv"] = b"session_id\nS-2\n"  # same size, other content
    _rezip(path, entries)
    check = verify_packet(path, KEY)
    assert check.problems == ["records/sessions.csv: altered (SHA-256 differs from the manifest)"]
    monkeypatch.setenv(KEY_ENV, KEY.decode())
    assert main(["verify", str(path)]) == 1
    assert "records/sessions.csv: altered" in capsys.readouterr().err


def test_a_flipped_byte_in_the_zip_itself_is_caught(tmp_path):
    # Stored (not deflated) entries, so the flipped byte lands in a file's content.
    path = tmp_path / "stored.zip"
    files = dict(FILES)
    manifest = build_manifest(
        files, kind="client", as_of="2026-03-31", practice_id="PR-1", client_id="CL-1", key=KEY
    )
    files["manifest.json"] = manifest_bytes(manifest)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(files):
            archive.writestr(name, files[name])
    raw = bytearray(path.read_bytes())
    at = raw.index(b"not really")
    raw[at] ^= 0x01
    path.write_bytes(bytes(raw))
    problems = verify_packet(path, KEY).problems
    assert len(problems) == 1 and problems[0].startswith("cover.pdf: altered")


def test_an_added_and_a_removed_file_are_named(tmp_path):
    path = _packet(tmp_path)
    entries = _entries(path)
    entries["extra/notes.txt"] = b"added later"
    del entries["findings.csv"]
    _rezip(path, entries)
    assert verify_packet(path, KEY).problems == [
        "findings.csv: missing",
        "extra/notes.txt: added (not in the manifest)",
    ]


def test_a_manifest_re_signed_with_another_key_is_a_forgery(tmp_path, monkeypatch, capsys):
    path = _packet(tmp_path)
    entries = _entries(path)
    entries["findings.csv"] = b"as_of,practice_id\n"  # the findings removed...
    forged = build_manifest(  # ...and a consistent manifest signed with the forger's key
        {k: v for k, v in entries.items() if k != "manifest.json"},
        kind="client",
        as_of="2026-03-31",
        practice_id="PR-1",
        client_id="CL-1",
        key=OTHER_KEY,
    )
    entries["manifest.json"] = manifest_bytes(forged)
    _rezip(path, entries)
    problems = verify_packet(path, KEY).problems
    assert len(problems) == 1
    assert problems[0].startswith("manifest.json: signature does not match")
    assert key_id(OTHER_KEY) in problems[0]  # tells "another key" from a bare edit
    monkeypatch.setenv(KEY_ENV, KEY.decode())
    assert main(["verify", str(path)]) == 1
    assert "signature does not match" in capsys.readouterr().err


def test_an_edited_manifest_field_breaks_the_signature(tmp_path):
    path = _packet(tmp_path)
    entries = _entries(path)
    manifest = json.loads(entries["manifest.json"])
    manifest["as_of"] = "2026-04-30"
    entries["manifest.json"] = json.dumps(manifest).encode()
    _rezip(path, entries)
    assert [p.split(" (")[0] for p in verify_packet(path, KEY).problems] == [
        "manifest.json: signature does not match"
    ]


def test_missing_manifest_and_non_zip_fail_with_exit_1(tmp_path, monkeypatch, capsys):
    path = _packet(tmp_path)
    entries = _entries(path)
    del entries["manifest.json"]
    _rezip(path, entries)
    assert verify_packet(path, KEY).problems == ["manifest.json: missing"]
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"this is not a zip")
    monkeypatch.setenv(KEY_ENV, KEY.decode())
    assert main(["verify", str(junk)]) == 1
    assert "not a readable zip" in capsys.readouterr().err


def test_verify_without_a_key_exits_2_with_a_clear_message(tmp_path, monkeypatch, capsys):
    path = _packet(tmp_path)
    monkeypatch.delenv(KEY_ENV, raising=False)
    assert main(["verify", str(path)]) == 2
    assert KEY_ENV in capsys.readouterr().err
    monkeypatch.setenv(KEY_ENV, KEY.decode())
    assert main(["verify", str(tmp_path / "nope.zip")]) == 2


def test_building_needs_a_key_except_in_the_demo(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(PacketKeyError, match=KEY_ENV):
        resolve_key(None)
    assert resolve_key(None, demo=True) == (DEMO_PACKET_KEY, True)
    with pytest.raises(PacketKeyError, match="at least"):
        resolve_key("short")
    monkeypatch.setenv(KEY_ENV, KEY.decode())
    assert resolve_key(None) == (KEY, False)
    assert resolve_key(None, demo=True) == (KEY, False)  # a real key wins in the demo too
    assert resolve_key(OTHER_KEY) == (OTHER_KEY, False)
