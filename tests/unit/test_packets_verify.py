"""`metaudit verify` and the signed manifest: every tampering is named, keys are required."""

from __future__ import annotations

import json
import zipfile
from datetime import date
from pathlib import Path

import pytest
from builders import zip_entries

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


def _rezip(path: Path, entries: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)


def test_manifest_lists_every_file_with_size_and_sha256_and_is_signed(tmp_path):
    manifest = json.loads(zip_entries(_packet(tmp_path))["manifest.json"])
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
    entries = zip_entries(path)
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
    entries = zip_entries(path)
    entries["extra/notes.txt"] = b"added later"
    del entries["findings.csv"]
    _rezip(path, entries)
    assert verify_packet(path, KEY).problems == [
        "findings.csv: missing",
        "extra/notes.txt: added (not in the manifest)",
    ]


def test_a_manifest_re_signed_with_another_key_is_a_forgery(tmp_path, monkeypatch, capsys):
    path = _packet(tmp_path)
    entries = zip_entries(path)
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
    entries = zip_entries(path)
    manifest = json.loads(entries["manifest.json"])
    manifest["as_of"] = "2026-04-30"
    entries["manifest.json"] = json.dumps(manifest).encode()
    _rezip(path, entries)
    assert [p.split(" (")[0] for p in verify_packet(path, KEY).problems] == [
        "manifest.json: signature does not match"
    ]


def test_missing_manifest_and_non_zip_fail_with_exit_1(tmp_path, monkeypatch, capsys):
    path = _packet(tmp_path)
    entries = zip_entries(path)
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


# ------------------------------------------------------------ issue 12: tamper evidence


def _laid_out(
    root: Path, practice_id: str, client_id: str, as_of: str = "2026-03-31", key: bytes = KEY
) -> Path:
    """A client packet where the packets layout puts it: <root>/<practice>/<as_of>/<client>.zip."""
    files = dict(FILES)
    manifest = build_manifest(
        files, kind="client", as_of=as_of, practice_id=practice_id, client_id=client_id, key=key
    )
    files["manifest.json"] = manifest_bytes(manifest)
    path = root / practice_id / as_of / f"{client_id}.zip"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(zip_bytes(files, AS_OF))
    return path


def _practice_packet(root: Path, practice_id: str, as_of: str) -> Path:
    files = dict(FILES)
    manifest = build_manifest(
        files,
        kind="practice",
        as_of=as_of,
        practice_id=practice_id,
        client_id=None,
        key=KEY,
        extra={"period": as_of[:7]},
    )
    files["manifest.json"] = manifest_bytes(manifest)
    path = root / practice_id / f"practice-{as_of[:7]}.zip"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(zip_bytes(files, AS_OF))
    return path


def test_a_packet_copied_over_another_clients_packet_does_not_verify(tmp_path, monkeypatch, capsys):
    root = tmp_path / "packets"
    theirs = _laid_out(root, "PR0002", "CL000237")
    mine = _laid_out(root, "PR0001", "CL000255")
    assert verify_packet(mine, KEY).intact and verify_packet(theirs, KEY).intact
    mine.write_bytes(theirs.read_bytes())
    problems = verify_packet(mine, KEY).problems
    assert len(problems) == 2
    assert "practice 'PR0002'" in problems[0] and "PR0001" in problems[0]
    assert "client 'CL000237'" in problems[1] and "CL000255" in problems[1]
    monkeypatch.setenv(KEY_ENV, KEY.decode())
    assert main(["verify", str(mine)]) == 1
    assert "belongs elsewhere" in capsys.readouterr().err
    # Out of its folder (a download), the claim is given on the command line.
    loose = tmp_path / "download.zip"
    loose.write_bytes(theirs.read_bytes())
    assert main(["verify", str(loose)]) == 0
    capsys.readouterr()
    claim = ["--practice", "PR0001", "--client", "CL000255", "--as-of", "2026-03-31"]
    assert main(["verify", str(loose), *claim]) == 1
    assert "belongs elsewhere" in capsys.readouterr().err
    assert main(["verify", str(loose), "--practice", "PR0001"]) == 2


def test_a_packet_moved_to_another_date_or_month_does_not_verify(tmp_path):
    root = tmp_path / "packets"
    earlier = _laid_out(root, "PR0001", "CL1", as_of="2026-03-30")
    later = root / "PR0001" / "2026-03-31" / "CL1.zip"
    later.parent.mkdir(parents=True)
    later.write_bytes(earlier.read_bytes())
    # A packet of an earlier date belongs to a later one only when that date's signed
    # index names it as in force (tests/unit/test_packets_evidence.py); this date has none.
    [problem] = verify_packet(later, KEY).problems
    assert problem.startswith("manifest.json: signed as of 2026-03-30")
    assert "not in force there" in problem
    march = _practice_packet(root, "PR0001", "2026-03-31")
    assert verify_packet(march, KEY).intact
    april = root / "PR0001" / "practice-2026-04.zip"
    april.write_bytes(march.read_bytes())
    problems = verify_packet(april, KEY).problems
    assert problems and all("belongs elsewhere" in p for p in problems)
    # A client packet is not a practice packet.
    as_practice = root / "PR0001" / "practice-2026-03.zip"
    as_practice.write_bytes(earlier.read_bytes())
    assert "kind 'client'" in verify_packet(as_practice, KEY).problems[0]


def test_packets_without_rebuild_do_not_keep_a_packet_copied_from_elsewhere(tmp_path):
    # A packet is kept when the signed index names its bytes (size and SHA-256) with
    # tonight's evidence; a file copied over it is rebuilt.
    import hashlib

    from metaudit.packets.build import _keep_in_force
    from metaudit.packets.evidence import ClientEvidence
    from metaudit.packets.inforce import InForce

    root = tmp_path / "packets"
    theirs = _laid_out(root, "PR0002", "CL000237")
    mine = _laid_out(root, "PR0001", "CL000255")
    entry = {
        "evidence": "d",
        "size": mine.stat().st_size,
        "sha256": hashlib.sha256(mine.read_bytes()).hexdigest(),
    }
    index = InForce("PR0001", mine.parent.name, {"CL000255": entry})
    found = ClientEvidence(digest="d", records="r")
    assert _keep_in_force(root, "CL000255", [(index, entry)], found, mine) == entry
    other = ClientEvidence(digest="e", records="r")
    assert _keep_in_force(root, "CL000255", [(index, entry)], other, mine) is None
    mine.write_bytes(theirs.read_bytes())
    assert _keep_in_force(root, "CL000255", [(index, entry)], found, mine) is None


def _peak_bytes(action: object) -> int:
    import tracemalloc

    tracemalloc.start()
    try:
        action()  # type: ignore[operator]
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


BOMB_SIZE = 64 * 1024 * 1024


def _bomb_zip(path: Path, manifest: bytes, name: str = "cover.pdf") -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", manifest)
        with archive.open(name, "w", force_zip64=True) as member:
            block = bytes(1024 * 1024)
            for _ in range(BOMB_SIZE // len(block)):
                member.write(block)


def test_a_zip_bomb_under_a_forged_manifest_is_not_inflated(tmp_path):
    path = tmp_path / "bomb.zip"
    forged = build_manifest(
        {"cover.pdf": bytes(BOMB_SIZE)},
        kind="client",
        as_of="2026-03-31",
        practice_id="PR-1",
        client_id="CL-1",
        key=OTHER_KEY,
    )
    _bomb_zip(path, manifest_bytes(forged))
    assert path.stat().st_size < BOMB_SIZE // 100
    problems: list[str] = []
    peak = _peak_bytes(lambda: problems.extend(verify_packet(path, KEY).problems))
    assert [p.split(" (")[0] for p in problems] == ["manifest.json: signature does not match"]
    assert peak < 8 * 1024 * 1024, f"peak {peak} bytes"


def test_a_member_larger_than_the_manifest_says_is_not_read(tmp_path):
    path = tmp_path / "bomb.zip"
    genuine = build_manifest(
        {"cover.pdf": FILES["cover.pdf"]},
        kind="client",
        as_of="2026-03-31",
        practice_id="PR-1",
        client_id="CL-1",
        key=KEY,
    )
    _bomb_zip(path, manifest_bytes(genuine))
    problems: list[str] = []
    peak = _peak_bytes(lambda: problems.extend(verify_packet(path, KEY).problems))
    assert problems == [
        f"cover.pdf: altered (size {BOMB_SIZE}, manifest says {len(FILES['cover.pdf'])}; not read)"
    ]
    assert peak < 8 * 1024 * 1024, f"peak {peak} bytes"


def test_a_large_genuine_member_is_hashed_in_chunks(tmp_path):
    path = tmp_path / "big.zip"
    big = bytes(BOMB_SIZE)
    genuine = build_manifest(
        {"cover.pdf": big},
        kind="client",
        as_of="2026-03-31",
        practice_id="PR-1",
        client_id="CL-1",
        key=KEY,
    )
    del big
    _bomb_zip(path, manifest_bytes(genuine))
    check: list[object] = []
    peak = _peak_bytes(lambda: check.append(verify_packet(path, KEY)))
    assert check[0].intact  # type: ignore[attr-defined]
    assert peak < 8 * 1024 * 1024, f"peak {peak} bytes"


def test_an_oversized_manifest_and_too_many_entries_are_refused_unread(tmp_path):
    from metaudit.packets.verify import MAX_ENTRIES, MAX_MANIFEST_BYTES

    path = tmp_path / "fat.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", b" " * (MAX_MANIFEST_BYTES + 1))
    assert verify_packet(path, KEY).problems == [
        f"manifest.json: {MAX_MANIFEST_BYTES + 1} bytes; a manifest has at most "
        f"{MAX_MANIFEST_BYTES} (not read)"
    ]
    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w") as archive:
        for number in range(MAX_ENTRIES + 1):
            archive.writestr(f"f{number}", b"")
    assert verify_packet(many, KEY).problems == [
        f"the zip has {MAX_ENTRIES + 1} entries; a packet has at most {MAX_ENTRIES}"
    ]


@pytest.mark.parametrize(
    "name", ["../evil/", "records/", "../evil.txt", "/etc/passwd", "C:/x.txt", "records\\x.csv"]
)
def test_unlisted_and_unsafe_entries_do_not_verify(tmp_path, name):
    path = _packet(tmp_path)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(zipfile.ZipInfo(name), b"")
    problems = verify_packet(path, KEY).problems
    assert problems and any("not a safe name" in p for p in problems), problems


def test_data_prepended_appended_or_in_a_comment_does_not_verify(tmp_path):
    path = _packet(tmp_path)
    genuine = path.read_bytes()
    path.write_bytes(b"#!/bin/sh\necho run me\n" + genuine)
    problems = verify_packet(path, KEY).problems
    assert problems == ["22 bytes before the first entry that no entry holds (added)"]
    path.write_bytes(genuine)
    with zipfile.ZipFile(path, "a") as archive:
        archive.comment = b"not covered by any hash"
    assert verify_packet(path, KEY).problems == ["the zip has a comment (23 bytes, added)"]
    path.write_bytes(genuine + b"trailing")
    assert verify_packet(path, KEY).problems == [
        "the zip does not end with its end record (data appended)"
    ]


def test_the_demo_key_is_refused_outside_the_demo(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("METAUDIT_DEMO", raising=False)
    with pytest.raises(PacketKeyError, match="published demo key"):
        resolve_key(DEMO_PACKET_KEY)
    monkeypatch.setenv(KEY_ENV, DEMO_PACKET_KEY.decode())
    with pytest.raises(PacketKeyError, match="published demo key"):
        resolve_key(None)
    assert resolve_key(None, demo=True) == (DEMO_PACKET_KEY, True)
    # `metaudit packets` refuses before reading the source.
    missing = str(tmp_path / "no-such-source.sqlite")
    assert main(["packets", "--source", missing, "--out", str(tmp_path / "p")]) == 2
    assert "published demo key" in capsys.readouterr().err
    path = _packet(tmp_path, key=DEMO_PACKET_KEY)
    assert main(["verify", str(path)]) == 1
    assert "proves nothing" in capsys.readouterr().err
    monkeypatch.setenv("METAUDIT_DEMO", "1")
    assert main(["verify", str(path)]) == 0
    assert "demo key: proves nothing" in capsys.readouterr().out


def test_the_dags_packet_build_refuses_the_demo_key_outside_the_demo(monkeypatch):
    from metaudit.packets import build_practice_packets

    monkeypatch.delenv("METAUDIT_DEMO", raising=False)
    with pytest.raises(PacketKeyError, match="published demo key"):
        build_practice_packets(None, "PR-1", AS_OF, key=DEMO_PACKET_KEY, demo=False)


def test_an_encrypted_entry_is_named_not_a_crash(tmp_path):
    path = _packet(tmp_path)
    raw = bytearray(path.read_bytes())
    # Set the "encrypted" flag of every entry, local headers and central directory.
    for signature_bytes, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = raw.find(signature_bytes)
        while at != -1:
            raw[at + flag_at] |= 0x01
            at = raw.find(signature_bytes, at + 4)
    path.write_bytes(bytes(raw))
    problems = verify_packet(path, KEY).problems
    assert problems and problems[0].startswith("manifest.json: unreadable")


def test_the_place_of_a_path_follows_the_packets_layout(tmp_path):
    from metaudit.packets.verify import CLIENT, PRACTICE, PacketPlace, place_of_path

    root = tmp_path / "packets"
    assert place_of_path(root / "PR%201" / "2026-03-31" / "practice-2026-03.zip") == (
        PacketPlace(CLIENT, "PR 1", client_id="practice-2026-03", as_of="2026-03-31")
    )
    assert place_of_path(root / "PR-1" / "practice-2026-03.zip") == PacketPlace(
        PRACTICE, "PR-1", month="2026-03"
    )
    for loose in ("download.zip", "PR-1/notes.zip", "PR-1/2026-02-30/CL-1.zip", "x/y/CL 1.zip"):
        assert place_of_path(root / loose) is None, loose
