"""Packets that follow the evidence: an unchanged client keeps its packet across
as-of dates, a changed one gets a new one, verify and retention agree.

The builders' clean client CL-1 (no findings) is audited on consecutive dates;
nothing in its records is due in between, so its evidence stays the same unless
a test changes a record, a setting or the key.
"""

from __future__ import annotations

import io
import json
import zipfile
from datetime import date, timedelta
from pathlib import Path

import pytest
from builders import AS_OF, clean_records, find, write_sqlite

from metaudit.packets import build_practice_packets, verify_packet
from metaudit.packets.inforce import base_path, in_force_path, read_in_force
from metaudit.packets.retention import LATEST_AND_MONTH_ENDS, dates_kept
from metaudit.packets.verify import PacketPlace

KEY = b"unit-test-packet-key-0123456789"
OTHER_KEY = b"unit-test-packet-key-rotated-42"
DAY1 = AS_OF  # 2026-03-31
DAY2 = AS_OF + timedelta(days=1)
DAY3 = AS_OF + timedelta(days=2)


def _night(db: Path, day: date, packets: Path, **kwargs):
    return build_practice_packets(
        db, "PR-1", day, packets_dir=packets, key=kwargs.pop("key", KEY), **kwargs
    )


def _packet(packets: Path, day: date) -> Path:
    return packets / "PR-1" / day.isoformat() / "CL-1.zip"


def _manifest(path: Path) -> dict:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("manifest.json"))


def _cover_text(path: Path) -> str:
    from pypdf import PdfReader

    with zipfile.ZipFile(path) as archive:
        pdf = archive.read("cover.pdf")
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return write_sqlite(clean_records(), tmp_path_factory.mktemp("evidence") / "source.sqlite")


@pytest.fixture(scope="module")
def two_nights(source, tmp_path_factory) -> Path:
    packets = tmp_path_factory.mktemp("two-nights") / "packets"
    first = _night(source, DAY1, packets)
    second = _night(source, DAY2, packets)
    assert first["states"] == {"built": 1}
    assert second["states"] == {"kept": 1}
    return packets


def test_an_unchanged_client_keeps_its_packet_on_the_next_date(two_nights):
    first, second = _packet(two_nights, DAY1), _packet(two_nights, DAY2)
    # One file for both dates: the next night wrote no packet bytes.
    assert first.stat().st_ino == second.stat().st_ino
    manifest = _manifest(second)
    assert manifest["as_of"] == DAY1.isoformat()
    assert manifest["evidence"]["records_unchanged_since"] == DAY1.isoformat()
    assert f"Records unchanged since {DAY1.isoformat()}" in _cover_text(second)
    index, problem = read_in_force(two_nights, "PR-1", DAY2.isoformat(), KEY)
    assert problem is None and index is not None
    entry = index.packets["CL-1"]
    assert entry["built_as_of"] == DAY1.isoformat()
    assert entry["manifest_signature"] == manifest["signature"]
    # The next night's index states only what changed against the first night's base.
    stored = json.loads(in_force_path(two_nights, "PR-1", DAY2.isoformat()).read_text())
    first_index = json.loads(in_force_path(two_nights, "PR-1", DAY1.isoformat()).read_text())
    assert stored["base"] == first_index["base"]
    assert stored["base"]["as_of"] == DAY1.isoformat()
    assert "CL-1" not in stored["packets"] and stored["dropped"] == []


def test_verify_accepts_the_packet_in_force_at_the_later_date(two_nights):
    check = verify_packet(_packet(two_nights, DAY2), KEY)
    assert check.intact, check.problems
    assert check.in_force_on == DAY2.isoformat()
    assert f"in force on {DAY2.isoformat()}" in check.summary()
    # At its own date it is an ordinary packet.
    own = verify_packet(_packet(two_nights, DAY1), KEY)
    assert own.intact and own.in_force_on is None


def test_verify_rejects_a_packet_the_dates_index_does_not_name(two_nights, tmp_path):
    import shutil

    packets = tmp_path / "packets"
    shutil.copytree(two_nights, packets)
    # Copied by hand to a date with no index: it proves nothing there.
    stray = _packet(packets, DAY3)
    stray.parent.mkdir()
    shutil.copy(_packet(packets, DAY1), stray)
    check = verify_packet(stray, KEY)
    assert not check.intact
    assert "not in force there" in check.problems[0] and "no index" in check.problems[0]
    # An edited index loses its signature.
    index_path = in_force_path(packets, "PR-1", DAY2.isoformat())
    original = index_path.read_text()
    index = json.loads(original)
    index["packets"]["CL-1"] = {"built_as_of": "2026-03-30"}
    index_path.write_text(json.dumps(index))
    check = verify_packet(_packet(packets, DAY2), KEY)
    assert not check.intact and "signature does not match" in check.problems[0]
    index_path.write_text(original)
    assert verify_packet(_packet(packets, DAY2), KEY).intact
    # So does an edited base (the full list the date's index states its changes against),
    # and a date whose base is gone proves nothing either.
    base = json.loads(original)["base"]
    base_file = base_path(packets, "PR-1", base["as_of"], base["signature"])
    listed = json.loads(base_file.read_text())
    listed["packets"]["CL-1"]["built_as_of"] = "2026-03-30"
    base_file.write_text(json.dumps(listed))
    check = verify_packet(_packet(packets, DAY2), KEY)
    assert not check.intact and "signature does not match" in check.problems[0]
    base_file.unlink()
    check = verify_packet(_packet(packets, DAY2), KEY)
    assert not check.intact and "is missing" in check.problems[0]
    # Out of its folder, taken for the later date: only the folder's index can say so.
    copy = tmp_path / "download.zip"
    shutil.copy(_packet(packets, DAY1), copy)
    place = PacketPlace("client", "PR-1", client_id="CL-1", as_of=DAY2.isoformat())
    check = verify_packet(copy, KEY, place=place)
    assert not check.intact and "packets folder's signed index" in check.problems[0]
    own = PacketPlace("client", "PR-1", client_id="CL-1", as_of=DAY1.isoformat())
    assert verify_packet(copy, KEY, place=own).intact
    # A tampered file is still found out at the later date.
    data = bytearray(_packet(packets, DAY2).read_bytes())
    data[200] ^= 0xFF
    tampered = tmp_path / "PR-1" / DAY2.isoformat() / "CL-1.zip"
    tampered.parent.mkdir(parents=True)
    tampered.write_bytes(bytes(data))
    assert not verify_packet(tampered, KEY, place=place).intact


def test_a_rerun_of_the_same_night_keeps_and_rebuild_packets_forces(source, two_nights, tmp_path):
    import shutil

    packets = tmp_path / "packets"
    shutil.copytree(two_nights, packets, copy_function=shutil.copy2)
    # copytree copies: relink the later date to the first, as the nights left them.
    assert _night(source, DAY2, packets)["states"] == {"kept": 1}
    forced = _night(source, DAY2, packets, rebuild=True)
    assert forced["states"] == {"built": 1}
    rebuilt = _manifest(_packet(packets, DAY2))
    assert rebuilt["as_of"] == DAY2.isoformat()
    # Rebuilt from the same records: they still stand unchanged since the first date.
    assert rebuilt["evidence"]["records_unchanged_since"] == DAY1.isoformat()
    assert verify_packet(_packet(packets, DAY2), KEY).intact
    assert verify_packet(_packet(packets, DAY1), KEY).intact


def test_a_damaged_packet_in_force_is_rebuilt_not_linked(source, tmp_path):
    packets = tmp_path / "packets"
    _night(source, DAY1, packets)
    first = _packet(packets, DAY1)
    first.write_bytes(first.read_bytes()[:-10])
    assert _night(source, DAY2, packets)["states"] == {"built": 1}
    assert _manifest(_packet(packets, DAY2))["as_of"] == DAY2.isoformat()


def _edited(tmp_path: Path, name: str, edit) -> Path:
    records = clean_records()
    edit(records)
    return write_sqlite(records, tmp_path / f"{name}.sqlite")


@pytest.mark.parametrize(
    ("change", "records_change"),
    [
        ("record", True),
        ("finding", True),
        ("settings", False),
        # A new key trusts nothing the old one signed: the date starts again.
        ("key", True),
    ],
)
def test_a_change_in_what_the_packet_proves_gives_a_new_packet(
    source, tmp_path, change, records_change
):
    packets = tmp_path / "packets"
    _night(source, DAY1, packets)
    later, kwargs = source, {}
    if change == "record":
        # A session note edited: no finding changes, the records do.
        later = _edited(
            tmp_path, "note", lambda r: find(r, "sessions", session_id="S-2").update(notes="Edited")
        )
    elif change == "finding":
        # The referral loses its signature: REF-006 appears.
        later = _edited(
            tmp_path,
            "unsigned",
            lambda r: find(r, "referrals", referral_id="RF-1").update(signed_on=None),
        )
    elif change == "settings":
        config = tmp_path / "metaudit.yaml"
        config.write_text("defaults:\n  note_signature_days: 3\n")
        kwargs["config"] = config
    else:
        kwargs["key"] = OTHER_KEY
    summary = _night(later, DAY2, packets, **kwargs)
    assert summary["states"] == {"built": 1}
    first, second = _packet(packets, DAY1), _packet(packets, DAY2)
    assert first.stat().st_ino != second.stat().st_ino
    manifest = _manifest(second)
    assert manifest["as_of"] == DAY2.isoformat()
    since = DAY2 if records_change else DAY1
    assert manifest["evidence"]["records_unchanged_since"] == since.isoformat()
    key = OTHER_KEY if change == "key" else KEY
    assert verify_packet(second, key).intact
    # The first date keeps its own packet, still valid where it sits.
    assert verify_packet(first, KEY).intact


def test_packets_of_an_earlier_format_are_rebuilt_once(source, tmp_path, monkeypatch):
    from metaudit.packets import evidence

    packets = tmp_path / "packets"
    # Format 1: the packets before records.pdf (built on the first night).
    assert evidence.EVIDENCE_FORMAT != "metaudit-evidence/1"
    with monkeypatch.context() as patch:
        patch.setattr(evidence, "EVIDENCE_FORMAT", "metaudit-evidence/1")
        patch.setattr("metaudit.packets.build.EVIDENCE_FORMAT", "metaudit-evidence/1")
        assert _night(source, DAY1, packets)["states"] == {"built": 1}
    assert _manifest(_packet(packets, DAY1))["evidence"]["format"] == "metaudit-evidence/1"
    # The next night's code writes another format: the packet is rebuilt, once.
    assert _night(source, DAY2, packets)["states"] == {"built": 1}
    built = _packet(packets, DAY2).read_bytes()
    assert _night(source, DAY2, packets)["states"] == {"kept": 1}
    assert _packet(packets, DAY2).read_bytes() == built
    rebuilt = _manifest(_packet(packets, DAY2))
    assert rebuilt["evidence"]["format"] == evidence.EVIDENCE_FORMAT
    assert "records.pdf" in {entry["path"] for entry in rebuilt["files"]}
    # The records did not change: they stand as they were since the first night.
    assert rebuilt["evidence"]["records_unchanged_since"] == DAY1.isoformat()


def test_retention_keeps_the_latest_and_month_ends_and_never_the_packet_in_force(source, tmp_path):
    packets = tmp_path / "packets"
    config = tmp_path / "metaudit.yaml"
    # The clean client's records change on 2026-03-30 (a record of that date enters the
    # view), then stand unchanged to 2026-04-01.
    first, built = AS_OF - timedelta(days=2), AS_OF - timedelta(days=1)
    for day in (first, built, AS_OF):
        _night(source, day, packets)
    assert _manifest(_packet(packets, AS_OF))["as_of"] == built.isoformat()
    config.write_text(f"packets:\n  retention: {LATEST_AND_MONTH_ENDS}\n")
    summary = _night(source, DAY2, packets, config=config)
    assert summary["states"] == {"kept": 1}
    assert summary["dates_removed"] == [first.isoformat(), built.isoformat()]
    kept = sorted(p.name for p in (packets / "PR-1").iterdir() if p.name[:1].isdigit())
    assert kept == [AS_OF.isoformat(), DAY2.isoformat()]
    in_force = packets / "PR-1" / "in-force"
    assert sorted(p.name for p in in_force.iterdir() if p.is_file()) == [
        f"{AS_OF.isoformat()}.json",
        f"{DAY2.isoformat()}.json",
    ]
    # The base the kept indexes state their changes against stays, though it was made on
    # a removed date; no other base does.
    named = {
        json.loads((in_force / f"{d.isoformat()}.json").read_text())["base"]["as_of"]
        for d in (AS_OF, DAY2)
    }
    assert named == {first.isoformat()}
    assert [p.name[:10] for p in (in_force / "bases").iterdir()] == [first.isoformat()]
    # The date it was built on is gone, the packet in force is not: it verifies where it
    # stands, on the month end and on the latest date.
    for day in (AS_OF, DAY2):
        assert _manifest(_packet(packets, day))["as_of"] == built.isoformat()
        assert verify_packet(_packet(packets, day), KEY).intact


def test_retention_choices():
    dates = ["2026-02-27", "2026-02-28", "2026-03-01", "2026-03-30", "2026-03-31", "2026-04-01"]
    assert dates_kept(dates, "every-date") == set(dates)
    assert dates_kept(dates, LATEST_AND_MONTH_ENDS) == {"2026-02-28", "2026-03-31", "2026-04-01"}
    assert dates_kept([], LATEST_AND_MONTH_ENDS) == set()


def test_an_unknown_retention_is_a_configuration_error():
    from metaudit.errors import SettingsError
    from metaudit.packets import packet_options
    from metaudit.spec.settings import Settings

    settings = Settings.from_dict({"packets": {"retention": "forever"}})
    with pytest.raises(SettingsError, match=r"packets\.retention: must be one of every-date"):
        packet_options(settings)


def test_an_unchanged_night_derives_and_renders_no_client_packet(source, two_nights, tmp_path):
    import shutil

    from metaudit.packets import build

    packets = tmp_path / "packets"
    shutil.copytree(two_nights, packets)

    def boom(*args, **kwargs):
        raise AssertionError("derived frames or a client packet were made on an unchanged night")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(build, "prepare_material", boom)
        patch.setattr(build, "client_packet_files", boom)
        # The night of DAY2 again (DAY3 brings a record of its own into the view).
        assert _night(source, DAY2, packets)["states"] == {"kept": 1}
    assert _manifest(_packet(packets, DAY2))["as_of"] == DAY1.isoformat()
    assert verify_packet(_packet(packets, DAY2), KEY).intact


def test_without_hard_links_the_packet_in_force_is_copied(
    source, two_nights, tmp_path, monkeypatch
):
    # Another device or a share without hard links: the same bytes, as a copy.
    import shutil

    packets = tmp_path / "packets"
    shutil.copytree(two_nights, packets)
    shutil.rmtree(packets / "PR-1" / DAY2.isoformat())
    (packets / "PR-1" / "in-force" / f"{DAY2.isoformat()}.json").unlink()

    def no_links(source, target):
        raise OSError(95, "Operation not supported")

    monkeypatch.setattr("os.link", no_links)
    assert _night(source, DAY2, packets)["states"] == {"kept": 1}
    first, second = _packet(packets, DAY1), _packet(packets, DAY2)
    assert first.stat().st_ino != second.stat().st_ino
    assert first.read_bytes() == second.read_bytes()
    assert verify_packet(second, KEY).intact


def test_a_night_with_one_changed_client_builds_only_its_packet(tmp_path, monkeypatch):
    # A demo practice of many clients; one session note edited between the nights: that
    # client's packet is built (from material holding its rows only), the others kept.
    import shutil
    import sqlite3

    from metaudit.demo import generate
    from metaudit.packets import build

    report = generate(
        str(tmp_path / "demo.sqlite"), as_of=DAY1, sessions=400, practices=1, progress=False
    )
    db = Path(str(report.database))
    packets = tmp_path / "packets"
    practice = "PR0001"
    first = build_practice_packets(db, practice, DAY1, packets_dir=packets, key=KEY)
    assert first["client_packets"] > 3 and set(first["states"]) == {"built"}
    with sqlite3.connect(db) as conn:
        client, session = conn.execute(
            "SELECT s.client_id, s.session_id FROM sessions s WHERE s.status = 'completed' "
            "AND s.session_date >= ? ORDER BY s.session_id LIMIT 1",
            ((DAY1 - timedelta(days=20)).isoformat(),),
        ).fetchone()
        conn.execute("UPDATE sessions SET notes = 'Edited' WHERE session_id = ?", (session,))
    asked: list[object] = []
    prepare = build.prepare_material

    def spy(*args, **kwargs):
        asked.append(kwargs.get("clients"))
        return prepare(*args, **kwargs)

    monkeypatch.setattr(build, "prepare_material", spy)
    # The same date again: only the edit differs (a later date may bring due dates).
    again = build_practice_packets(db, practice, DAY1, packets_dir=packets, key=KEY)
    assert again["states"] == {"kept": first["client_packets"] - 1, "built": 1}
    assert asked == [[client]]
    rebuilt = packets / practice / DAY1.isoformat() / f"{client}.zip"
    assert verify_packet(rebuilt, KEY).intact
    # Built from the whole practice's material, the packet is the same bytes.
    whole = tmp_path / "whole"
    shutil.copytree(packets, whole)
    monkeypatch.setattr(build, "prepare_material", prepare)
    forced = build_practice_packets(db, practice, DAY1, packets_dir=whole, key=KEY, rebuild=True)
    assert forced["states"]["unchanged"] == forced["client_packets"]
    assert (whole / practice / DAY1.isoformat() / f"{client}.zip").read_bytes() == (
        rebuilt.read_bytes()
    )


def test_a_new_ed25519_key_rebuilds_every_packet_once_and_old_ones_still_verify(
    source, tmp_path, monkeypatch
):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from metaudit.packets.keypair import PublicKey

    monkeypatch.delenv("METAUDIT_PACKET_SIGNING_KEY", raising=False)
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = PublicKey(private.public_key())
    packets = tmp_path / "packets"
    # A night before the deployment had a signing key: the HMAC alone.
    assert _night(source, DAY1, packets)["states"] == {"built": 1}
    old = tmp_path / "before-the-key.zip"
    old.write_bytes(_packet(packets, DAY1).read_bytes())
    # The signing key is part of the evidence: with it, the packet in force is rebuilt
    # (once), though the records stand as they were.
    summary = _night(source, DAY1, packets, signing_key=pem)
    assert summary["states"] == {"built": 1} and summary["ed25519_key_id"] == public.key_id
    manifest = _manifest(_packet(packets, DAY1))
    assert manifest["ed25519_key_id"] == public.key_id
    assert manifest["evidence"]["records_unchanged_since"] == DAY1.isoformat()
    # The next night, the same key: the packet in force serves.
    assert _night(source, DAY2, packets, signing_key=pem)["states"] == {"kept": 1}
    assert verify_packet(_packet(packets, DAY2), KEY).in_force_on == DAY2.isoformat()
    assert verify_packet(_packet(packets, DAY1), public_keys=[public]).intact
    # In force on a later date says the date's index, which only the HMAC key checks.
    (problem,) = verify_packet(_packet(packets, DAY2), public_keys=[public]).problems
    assert "signed with the HMAC key" in problem
    # The packet built before the key still verifies with the HMAC key, as it always did.
    check = verify_packet(old, KEY)
    assert check.intact and check.ed25519_key_id is None


def test_the_records_digest_of_a_client_is_the_same_whoever_else_is_hashed(tmp_path):
    """A night hashes only the rows of the clients it packs (RecordHashes ``clients``): a
    client's digest is the one hashing every row gives, and a client outside those is
    hashed from its own rows when asked."""
    from metaudit.check.engine import load_source
    from metaudit.check.view import build_view
    from metaudit.demo.generate import generate
    from metaudit.packets.evidence import RecordHashes

    db = tmp_path / "demo.sqlite"
    generate(f"sqlite:///{db}", as_of=AS_OF, practices=1, sessions=600, progress=False)
    view = build_view(load_source(str(db), AS_OF), AS_OF)
    everyone = sorted(str(c) for c in view.tables["clients"]["client_id"].dropna())
    assert len(everyone) > 6
    whole = RecordHashes(view.tables, KEY)
    some = everyone[::3]
    subset = RecordHashes(view.tables, KEY, clients=some)
    assert subset.reference == whole.reference
    assert {c: subset.client(c) for c in everyone} == {c: whole.client(c) for c in everyone}
    # Distinct clients, distinct digests; another key, another digest.
    assert len({whole.client(c) for c in everyone}) == len(everyone)
    assert RecordHashes(view.tables, OTHER_KEY).client(some[0]) != whole.client(some[0])


# -- nights on partitions: the records digests an index was judged from ------------------


def _partition_of(db: Path, folder: Path):
    """The practice's partition as extract writes it, read back as the audit reads it."""
    from metaudit.check.engine import load_source
    from metaudit.source.snapshot import read_partition, write_partitions

    typed = load_source(db, DAY1)
    written = write_partitions(typed, ["PR-1"], DAY1.isoformat(), folder)["PR-1"]
    return read_partition(written, "PR-1")


def _counting_row_hashes(monkeypatch) -> list[int]:
    from metaudit.packets import evidence

    hashed: list[int] = []
    original = evidence.RecordHashes._hashes

    def counting(self, frame):
        hashed.append(len(frame))
        return original(self, frame)

    monkeypatch.setattr(evidence.RecordHashes, "_hashes", counting)
    return hashed


def test_a_partition_digest_is_the_same_for_the_same_records_and_names_a_change(source, tmp_path):
    import shutil
    import sqlite3

    first = _partition_of(source, tmp_path / "one")
    again = _partition_of(source, tmp_path / "two")
    assert first.digest is not None and first.digest == again.digest
    edited = tmp_path / "edited.sqlite"
    shutil.copy(source, edited)
    with sqlite3.connect(edited) as conn:
        conn.execute("UPDATE sessions SET notes = 'Edited' WHERE client_id = 'CL-1'")
    assert _partition_of(edited, tmp_path / "three").digest != first.digest


def test_a_night_on_the_records_of_the_night_before_hashes_no_record(source, tmp_path, monkeypatch):
    packets = tmp_path / "packets"
    typed = _partition_of(source, tmp_path / "parts")
    first = _night(None, DAY1, packets, typed=typed)
    assert first["states"] == {"built": 1}
    index, _ = read_in_force(packets, "PR-1", DAY1.isoformat(), KEY)
    assert index is not None and index.source is not None
    assert index.source["partition"] == typed.digest
    hashed = _counting_row_hashes(monkeypatch)
    second = _night(None, DAY2, packets, typed=_partition_of(source, tmp_path / "again"))
    assert second["states"] == {"kept": 1}
    # Not one row hashed: the digests are the first night's index's, whose records these are.
    assert sum(hashed) == 0
    later, _ = read_in_force(packets, "PR-1", DAY2.isoformat(), KEY)
    assert later is not None and later.source == index.source
    assert later.packets["CL-1"]["records"] == index.packets["CL-1"]["records"]
    assert verify_packet(_packet(packets, DAY2), KEY).intact


def test_a_record_entering_the_view_on_the_same_partition_is_hashed_and_packed(
    source, tmp_path, monkeypatch
):
    # DAY3 brings a record of the clean client into the view; the partition (every date's
    # records) is the same, so only the view's rows tell the records changed.
    packets = tmp_path / "packets"
    typed = _partition_of(source, tmp_path / "parts")
    _night(None, DAY2, packets, typed=typed)
    hashed = _counting_row_hashes(monkeypatch)
    third = _night(None, DAY3, packets, typed=typed)
    assert sum(hashed) > 0, "the records were not hashed although the view gained a row"
    assert third["states"] == {"built": 1}
    manifest = _manifest(_packet(packets, DAY3))
    assert manifest["evidence"]["records_unchanged_since"] == DAY3.isoformat()


def test_a_changed_partition_is_hashed_and_its_changed_client_packed(source, tmp_path):
    import shutil
    import sqlite3

    packets = tmp_path / "packets"
    _night(None, DAY1, packets, typed=_partition_of(source, tmp_path / "parts"))
    edited = tmp_path / "edited.sqlite"
    shutil.copy(source, edited)
    with sqlite3.connect(edited) as conn:
        conn.execute("UPDATE sessions SET notes = 'Edited' WHERE client_id = 'CL-1'")
    changed = _night(None, DAY2, packets, typed=_partition_of(edited, tmp_path / "edited"))
    assert changed["states"] == {"built": 1}


def test_a_build_of_some_clients_names_no_records_it_was_judged_from(source, tmp_path):
    packets = tmp_path / "packets"
    typed = _partition_of(source, tmp_path / "parts")
    _night(None, DAY1, packets, typed=typed)
    _night(None, DAY1, packets, typed=typed, client_ids=["CL-1"], rebuild=True)
    index, _ = read_in_force(packets, "PR-1", DAY1.isoformat(), KEY)
    assert index is not None and index.source is None
