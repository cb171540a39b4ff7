"""Client and practice packets built from a real check of the builders' records.

One client (CL-1) with known failures: an unsigned referral (REF-006), a plan
of exercise without intensity (DOC-005), a goal without a target date
(DOC-007) and a duplicated session key (DQ-001). A second client (CL-2) only
had a session long before the audit period, so it gets no packet.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from builders import AS_OF, clean_records, find, write_sqlite, zip_entries

from metaudit.packets import (
    PacketBuildError,
    PacketOptions,
    build_client_packets,
    build_practice_packet,
    build_practice_packets,
    client_packet_files,
    evidence_from_check,
    prepare_material,
    verify_packet,
)
from metaudit.packets.archive import zip_bytes
from metaudit.packets.content import chart_series, suites_of
from metaudit.packets.signing import DEMO_PACKET_KEY, KEY_ENV
from metaudit.spec import rulebook
from metaudit.spec.findings import FIELDS, write_findings

KEY = b"unit-test-packet-key-0123456789"
EXPECTED_FAIL = {"REF-006", "DOC-005", "DOC-007", "DQ-001"}
# The clean client's referrer is an MD, its plan is in network, no claim is denied.
EXPECTED_NOT_APPLICABLE = {"REF-004", "ELG-003", "CLM-001"}
RULE_ID = re.compile(r"\b(?:REF|ELG|DOC|REA|COD|CLM|DQ)-\d{3}\b")


def _records() -> dict:
    records = clean_records()
    find(records, "referrals", referral_id="RF-1")["signed_on"] = None
    find(records, "plans_of_exercise", poe_id="POE-1")["intensity"] = None
    find(records, "goals", goal_id="G-2")["target_date"] = None
    records["sessions"].append(dict(find(records, "sessions", session_id="S-1")))
    find(records, "sessions", session_id="S-2")["notes"] = "Done <script>alert(1)</script> & more"
    records["clients"].append(
        {
            "client_id": "CL-2",
            "practice_id": "PR-1",
            "first_name": "Olivia",
            "last_name": "Zephyrine",
            "date_of_birth": date(1970, 2, 3),
            "status": "discharged",
        }
    )
    session = dict(find(records, "sessions", session_id="S-1"))
    session.update(
        session_id="S-90",
        client_id="CL-2",
        session_date=date(2025, 11, 3),
        signed_at="2025-11-03T15:00:00Z",
    )
    records["sessions"].append(session)
    return records


@dataclass
class Built:
    db: Path
    typed: object
    settings: object
    result: object
    evidence: object
    material: object
    options: PacketOptions
    summaries: list
    practice_zip: Path

    @property
    def client_zip(self) -> Path:
        return self.options.packets_dir / "PR-1" / AS_OF.isoformat() / "CL-1.zip"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Built:
    from metaudit.check.engine import check_typed, load_source
    from metaudit.spec.settings import Settings

    tmp = tmp_path_factory.mktemp("packets")
    db = write_sqlite(_records(), tmp / "source.sqlite")
    settings = Settings.from_dict({})
    typed = load_source(db, AS_OF)
    result = check_typed(typed, AS_OF, ["PR-1"], settings)
    evidence = evidence_from_check(result, "PR-1")
    material = prepare_material(typed, AS_OF, "PR-1", settings)
    options = PacketOptions(packets_dir=tmp / "packets")
    # The settings that judged the evidence are part of its digest (as the nightly run passes them).
    summaries = build_client_packets(material, evidence, options, key=KEY, settings=settings)
    practice_zip = build_practice_packet(material.practice, evidence, summaries, options, key=KEY)
    return Built(db, typed, settings, result, evidence, material, options, summaries, practice_zip)


def _cover_text(pdf: bytes) -> str:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(pdf))
    return "\n".join(page.extract_text() for page in reader.pages)


def _statuses(text: str) -> dict[str, str]:
    """Rule id -> status word, from the cover's rule table (first occurrence of each id)."""
    table = text[text.index("Status rule by rule") :]
    hits = list(RULE_ID.finditer(table))
    statuses: dict[str, str] = {}
    for hit, following in zip(hits, [*hits[1:], None], strict=True):
        segment = " ".join(table[hit.end() : following.start() if following else None].split())
        found = {label: segment.find(label) for label in ("Not applicable", "Pass", "Fail")}
        found = {label: at for label, at in found.items() if at >= 0}
        statuses.setdefault(hit.group(), min(found, key=found.get) if found else "?")
    return statuses


def test_only_clients_with_activity_get_a_packet_under_ids_only(built):
    assert [s.client_id for s in built.summaries] == ["CL-1"]
    assert built.client_zip.is_file()
    assert sorted(p.name for p in built.client_zip.parent.iterdir()) == ["CL-1.zip"]
    assert built.practice_zip == built.options.packets_dir / "PR-1" / "practice-2026-03.zip"
    every_name = [
        str(p.relative_to(built.options.packets_dir)) for p in built.options.packets_dir.rglob("*")
    ]
    every_name += list(zip_entries(built.client_zip)) + list(zip_entries(built.practice_zip))
    for name in every_name:
        for phi in ("Jane", "Quigley", "Olivia", "Zephyrine", "1958", "M17"):
            assert phi not in name


def test_client_packet_verifies_and_its_manifest_names_the_client(built):
    check = verify_packet(built.client_zip, KEY)
    assert check.intact, check.problems
    manifest = check.manifest
    assert (manifest["as_of"], manifest["practice_id"], manifest["client_id"]) == (
        "2026-03-31",
        "PR-1",
        "CL-1",
    )
    assert manifest["summary"]["rules_failed"] == len(EXPECTED_FAIL)
    names = set(zip_entries(built.client_zip))
    assert {
        "cover.pdf",
        "findings.csv",
        "manifest.json",
        "records/index.html",
        "records/sessions.html",
        "records/sessions.csv",
        "records/claim_linkage.csv",
        "validation/client_validation.json",
        "validation/data_docs.html",
    } <= names
    assert {f["path"] for f in manifest["files"]} == names - {"manifest.json"}


def test_cover_lists_all_50_rules_with_the_right_status(built):
    text = _cover_text(zip_entries(built.client_zip)["cover.pdf"])
    statuses = _statuses(text)
    assert set(statuses) == set(rulebook.RULES) and len(statuses) == 50
    fails = {rule for rule, status in statuses.items() if status == "Fail"}
    not_applicable = {rule for rule, status in statuses.items() if status == "Not applicable"}
    assert fails == EXPECTED_FAIL
    # The cover agrees with the check's findings for the client.
    assert fails == {f.rule_id for f in built.evidence.findings if f.client_id == "CL-1"}
    assert not_applicable == EXPECTED_NOT_APPLICABLE
    flat = " ".join(text.split())
    assert "Referral RF-1 is not signed." in flat  # the finding's message on the cover
    for expected in (
        "client CL-1",
        "Riverside Medical Exercise",
        "PR-1",
        "Acme Health",
        "Referral RF-1",
        "2026-01-12",
        "2026-03-30",
        "2026-03-31",
    ):
        assert expected in flat


def test_the_rule_table_continues_on_the_next_page_under_its_header(built):
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(zip_entries(built.client_zip)["cover.pdf"]))
    pages = [" ".join(page.extract_text().split()) for page in reader.pages]
    assert len(pages) >= 2
    header = "Rule Title Severity Status Detail"
    assert all(header in page for page in pages)
    # Every rule once, in the rulebook's order, across the pages.
    found = [hit.group() for page in pages for hit in RULE_ID.finditer(page)]
    listed = [rule for rule in dict.fromkeys(found) if rule in rulebook.RULES]
    assert listed == list(rulebook.RULES)
    # A wrapped title keeps all its words.
    title = rulebook.RULES["REF-002"].title
    assert title in " ".join(pages)


def test_cover_page_renders_to_a_non_blank_image(built, tmp_path):
    if shutil.which("pdftoppm") is None:
        pytest.skip("needs pdftoppm (Debian package poppler-utils)")
    import matplotlib.image

    pdf = tmp_path / "cover.pdf"
    pdf.write_bytes(zip_entries(built.client_zip)["cover.pdf"])
    subprocess.run(
        ["pdftoppm", "-png", "-r", "40", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "page")],
        check=True,
    )
    (png,) = tmp_path.glob("page*.png")
    pixels = matplotlib.image.imread(str(png))
    assert pixels.shape[0] > 300 and pixels.shape[1] > 200
    grey = pixels[..., :3].mean(axis=2)
    assert grey.std() > 0.05  # text and table lines, not a blank page
    assert (grey < 0.5).mean() > 0.01


def test_findings_csv_holds_the_clients_findings_in_the_interfaces_format(built):
    rows = list(csv.DictReader(io.StringIO(zip_entries(built.client_zip)["findings.csv"].decode())))
    assert rows and list(rows[0]) == list(FIELDS)
    assert {r["client_id"] for r in rows} == {"CL-1"}
    assert {r["rule_id"] for r in rows} == EXPECTED_FAIL
    assert {"DQ-001|row|sessions:S-1", "REF-006|referral|RF-1"} <= {r["fingerprint"] for r in rows}


def test_validation_report_is_the_practice_result_restricted_to_the_client(built):
    entries = zip_entries(built.client_zip)
    report = json.loads(entries["validation/client_validation.json"])
    assert report["client_id"] == "CL-1" and report["success"] is False
    by_part = {}
    all_unexpected = set()
    for suite in report["suites"]:
        for entry in suite["results"]:
            meta = entry["expectation_config"]["meta"]
            all_unexpected.update(entry["result"]["unexpected_index_list"])
            if meta["rule_id"] == "DOC-005":
                by_part[meta["part"]] = entry["result"]["unexpected_index_list"]
            if suite["frame"] == "ref_client":
                assert entry["result"]["element_count"] == 1  # CL-1's row, not CL-2's
    assert by_part["intensity"] == ["POE-1"]
    assert all(not ids for part, ids in by_part.items() if part != "intensity")
    assert all_unexpected == {"RF-1", "POE-1", "G-2"}
    html = entries["validation/data_docs.html"].decode()
    assert "DOC-005" in html and "POE-1" in html and "failed" in html


def test_records_are_readable_documents_and_csv_with_escaped_values(built):
    entries = zip_entries(built.client_zip)
    sessions = list(csv.DictReader(io.StringIO(entries["records/sessions.csv"].decode())))
    assert [r["session_id"] for r in sessions] == ["S-1", "S-2", "S-3", "S-4"]  # S-5 is after D
    assert sessions[0]["signed_at"] == "2026-01-12T15:00:00Z"
    linkage = list(csv.DictReader(io.StringIO(entries["records/claim_linkage.csv"].decode())))
    assert {(r["cpt_code"], r["icd10_code"]) for r in linkage} == {
        ("97110", "M17.11"),
        ("97530", "M17.11"),
    }
    html = entries["records/sessions.html"].decode()
    assert (
        "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html
    )
    for slug in (
        "client",
        "referral",
        "history",
        "intake",
        "assessments",
        "plan_of_exercise",
        "sessions",
        "progress_reports",
        "claims",
    ):
        assert f"records/{slug}.html" in entries
    index = entries["records/index.html"].decode()
    assert "../charts/outcome-01.svg" in index and "../charts/outcome-02.svg" in index


def test_charts_have_the_instruments_measures_and_goal_targets(built):
    series = {s.instrument: s for s in chart_series(built.material.records("CL-1"))}
    assert sorted(series) == ["GRIP", "TUG"]
    assert [(p.assessed_on, p.value) for p in series["TUG"].points] == [
        ("2026-01-10", 14.0),
        ("2026-02-09", 12.5),
        ("2026-03-11", 11.0),
    ]
    assert [(t.goal_id, t.target_value, t.target_date) for t in series["TUG"].targets] == [
        ("G-1", 12.0, "2026-02-28")
    ]
    assert [(t.goal_id, t.target_value, t.target_date) for t in series["GRIP"].targets] == [
        ("G-2", 26.0, None)
    ]
    entries = zip_entries(built.client_zip)
    assert not [name for name in entries if name.endswith(".png")]
    tug = entries["charts/outcome-02.svg"].decode()
    assert tug.startswith("<?xml") and "<svg" in tug and "TUG" in tug
    assert tug.count("<circle") == 3 and ">12.5<" in tug  # TUG's three measures
    assert "short-term goal G-1: 12 by 2026-02-28" in tug and 'class="target"' in tug
    grip = entries["charts/outcome-01.svg"].decode()
    assert "G-2: 26" in grip and 'class="target"' not in grip  # G-2 has no target date


def test_identical_input_gives_identical_bytes(built):
    suites = suites_of(built.evidence, ("REF", "ELG", "DOC", "REA", "COD", "CLM"))
    suites = [s for s in suites]
    first = client_packet_files(built.material, built.evidence, suites, "CL-1", key=KEY)
    again = client_packet_files(built.material, built.evidence, suites, "CL-1", key=KEY)
    assert first == again
    assert zip_bytes(first, AS_OF) == zip_bytes(again, AS_OF)
    summaries = build_client_packets(
        built.material,
        built.evidence,
        built.options,
        key=KEY,
        rebuild=True,
        settings=built.settings,
    )
    assert [s.state for s in summaries] == ["unchanged"]
    assert summaries[0].sha256 == built.summaries[0].sha256
    with zipfile.ZipFile(built.client_zip) as archive:
        assert {info.date_time for info in archive.infolist()} == {(2026, 3, 31, 0, 0, 0)}
        assert archive.namelist() == sorted(archive.namelist())


def test_a_packet_from_the_material_of_its_client_alone_is_the_same(built):
    # A night that rebuilds some clients prepares only their rows (prepare_material's
    # clients): a client's packet shows its own records and frames, so nothing changes.
    suites = suites_of(built.evidence, ("REF", "ELG", "DOC", "REA", "COD", "CLM"))
    alone = prepare_material(built.typed, AS_OF, "PR-1", built.settings, clients=["CL-1"])
    assert "CL-2" not in set(alone.tables["clients"]["client_id"])
    assert set(alone.tables["staff"]["staff_id"]) == set(built.material.tables["staff"]["staff_id"])
    whole = client_packet_files(built.material, built.evidence, suites, "CL-1", key=KEY)
    assert client_packet_files(alone, built.evidence, suites, "CL-1", key=KEY) == whole


def test_existing_packets_are_kept_unless_damaged_or_rebuilt(built, tmp_path):
    options = PacketOptions(packets_dir=tmp_path / "p")
    build_client_packets(built.material, built.evidence, options, key=KEY)
    again = build_client_packets(built.material, built.evidence, options, key=KEY)
    assert [s.state for s in again] == ["kept"]
    path = options.packets_dir / "PR-1" / "2026-03-31" / "CL-1.zip"
    path.write_bytes(path.read_bytes()[:-10])  # truncated on disk
    repaired = build_client_packets(built.material, built.evidence, options, key=KEY)
    assert [s.state for s in repaired] == ["built"] and verify_packet(path, KEY).intact
    # A full rebuild drops the packet of a client without activity any more.
    stale = path.with_name("CL-2.zip")
    stale.write_bytes(path.read_bytes())
    build_client_packets(built.material, built.evidence, options, key=KEY, rebuild=True)
    assert sorted(p.name for p in path.parent.iterdir()) == ["CL-1.zip"]


def test_a_failure_mid_build_leaves_no_packet_and_keeps_the_old_one(built, tmp_path, monkeypatch):
    from metaudit.packets import render

    def boom(plot):
        raise ValueError("chart renderer broke")

    options = PacketOptions(packets_dir=tmp_path / "p")
    folder = options.packets_dir / "PR-1" / "2026-03-31"
    with monkeypatch.context() as patch:
        patch.setattr(render, "render_chart_svg", boom)
        with pytest.raises(PacketBuildError, match="CL-1: ValueError: chart renderer broke"):
            build_client_packets(built.material, built.evidence, options, key=KEY)
    assert not folder.exists() or not any(folder.iterdir())

    build_client_packets(built.material, built.evidence, options, key=KEY)
    before = (folder / "CL-1.zip").read_bytes()

    def broken_fsync(fd):
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr("metaudit.paths.os.fsync", broken_fsync)
        with pytest.raises(PacketBuildError, match="disk full"):
            build_client_packets(
                built.material,
                built.evidence,
                options,
                key=b"another-key-another-key-1",
                rebuild=True,
            )
    assert sorted(p.name for p in folder.iterdir()) == ["CL-1.zip"]  # no temporary file left
    assert (folder / "CL-1.zip").read_bytes() == before


def test_practice_packet_summarises_every_client_packet_and_the_months_findings(built):
    check = verify_packet(built.practice_zip, KEY)
    assert check.intact, check.problems
    assert check.manifest["kind"] == "practice" and check.manifest["period"] == "2026-03"
    entries = zip_entries(built.practice_zip)
    clients = list(csv.DictReader(io.StringIO(entries["clients.csv"].decode())))
    assert [c["client_id"] for c in clients] == ["CL-1"]
    import hashlib

    assert clients[0]["sha256"] == hashlib.sha256(built.client_zip.read_bytes()).hexdigest()
    assert clients[0]["packet"] == "2026-03-31/CL-1.zip"
    findings = list(csv.DictReader(io.StringIO(entries["findings.csv"].decode())))
    assert {f["client_id"] for f in findings} == {"CL-1", "CL-2"}
    month = list(csv.DictReader(io.StringIO(entries["findings_month.csv"].decode())))
    assert len(month) == len(findings) and {m["first_seen"] for m in month} == {"2026-03-31"}
    text = " ".join(_cover_text(entries["cover.pdf"]).split())
    assert "practice PR-1, 2026-03" in text and "CL-1" in text


def test_packets_from_the_audits_files_match_packets_from_the_check(built, tmp_path):
    audit_dir = tmp_path / "results" / "2026-03-31" / "PR-1"
    write_findings(built.result.findings, audit_dir)
    (audit_dir / "validation").mkdir()
    for family, validation in built.result.validations.items():
        (audit_dir / "validation" / f"{family.lower()}.json").write_text(
            json.dumps(validation.results, indent=1, sort_keys=True, allow_nan=False)
        )
    summary = build_practice_packets(
        built.db,
        "PR-1",
        AS_OF,
        audit_dir=audit_dir,
        packets_dir=tmp_path / "p",
        key=KEY,
        typed=built.typed,
    )
    assert summary["client_packets"] == 1
    rebuilt = tmp_path / "p" / "PR-1" / "2026-03-31" / "CL-1.zip"
    assert rebuilt.read_bytes() == built.client_zip.read_bytes()


def test_cli_builds_packets_only_with_a_key_or_in_the_demo(built, tmp_path, monkeypatch, capsys):
    from metaudit.cli import main

    monkeypatch.delenv(KEY_ENV, raising=False)
    out = tmp_path / "packets"
    args = [
        "packets",
        "--source",
        str(built.db),
        "--as-of",
        AS_OF.isoformat(),
        "--out",
        str(out),
        "--practice",
        "PR-1",
        "--client",
        "CL-1",
    ]
    assert main(args) == 2
    assert KEY_ENV in capsys.readouterr().err and not out.exists()
    assert main([*args, "--demo"]) == 0
    packet = out / "PR-1" / "2026-03-31" / "CL-1.zip"
    check = verify_packet(packet, DEMO_PACKET_KEY, demo=True)
    assert check.intact and check.manifest["demo_key"] is True
    assert "DEMO PACKET" in _cover_text(zip_entries(packet)["cover.pdf"])
    monkeypatch.setenv(KEY_ENV, DEMO_PACKET_KEY.decode())
    monkeypatch.setenv("METAUDIT_DEMO", "1")
    assert main(["verify", str(packet)]) == 0
    assert "demo key" in capsys.readouterr().out


def test_a_practice_without_findings_gets_its_packets(tmp_path):
    # The common case in a real network: nothing failed all month. (Found by the
    # scale-out benchmark: an empty month table of object columns made the rule counts
    # select columns instead of rows.)
    from metaudit.check.engine import check_typed, load_source
    from metaudit.spec.settings import Settings

    db = write_sqlite(clean_records(), tmp_path / "clean.sqlite")
    typed = load_source(db, AS_OF)
    assert check_typed(typed, AS_OF, ["PR-1"], Settings.from_dict({})).findings == []
    summary = build_practice_packets(
        db, "PR-1", AS_OF, packets_dir=tmp_path / "p", key=KEY, typed=typed
    )
    assert summary["client_packets"] == 1
    practice_zip = Path(summary["practice_packet"])
    check = verify_packet(practice_zip, KEY)
    assert check.intact, check.problems
    entries = zip_entries(practice_zip)
    rules = list(csv.DictReader(io.StringIO(entries["rules.csv"].decode())))
    assert len(rules) == len(rulebook.RULES)
    assert {(r["open_on_as_of"], r["seen_in_month"]) for r in rules} == {("0", "0")}
    assert list(csv.DictReader(io.StringIO(entries["findings_month.csv"].decode()))) == []


def test_every_problem_of_the_packets_section_is_reported_in_one_error():
    from metaudit.errors import SettingsError
    from metaudit.packets import packet_options
    from metaudit.spec.settings import Settings

    settings = Settings.from_dict({"packets": {"dir": 5, "activity_days": 0, "folder": "x"}})
    with pytest.raises(SettingsError) as caught:
        packet_options(settings)
    text = str(caught.value)
    assert text.startswith("invalid configuration (configuration): 3 problems")
    assert "packets.dir: must be a folder path, got 5" in text
    assert "packets.activity_days: must be a whole number of days >= 1, got 0" in text
    assert "packets.folder: unknown key; keys: dir, activity_days" in text


# ------------------------------------------------ issue 17: accepted findings in the packets


def test_an_accepted_finding_stays_in_the_packets_with_its_acceptance(built, tmp_path):
    from dataclasses import replace

    from metaudit.packets.build import ACCEPTANCE_COLUMNS, ACCEPTANCES_FILE
    from metaudit.results.digest import FindingAcceptance

    options = PacketOptions(packets_dir=tmp_path / "p")
    first = build_client_packets(built.material, built.evidence, options, key=KEY)
    path = options.packets_dir / "PR-1" / "2026-03-31" / "CL-1.zip"
    before = zip_entries(path)
    assert ACCEPTANCES_FILE not in before  # no acceptance, no file: the packet as it was
    accepted = next(f for f in built.evidence.findings if f.client_id == "CL-1")
    acceptance = FindingAcceptance(
        fingerprint=accepted.fingerprint,
        accepted_by="lead",
        accepted_at="2026-03-30T10:00:00+00:00",
        reason="Payer ACME written exception",
        until="2026-04-30",
    )
    evidence = replace(built.evidence, acceptances={accepted.fingerprint: acceptance})
    again = build_client_packets(built.material, evidence, options, key=KEY)
    # The acceptance is evidence: the packet in force does not hold it, so it is rebuilt.
    assert [s.state for s in first] == ["built"] and [s.state for s in again] == ["built"]
    assert verify_packet(path, KEY).intact
    after = zip_entries(path)
    assert after["findings.csv"] == before["findings.csv"]  # the contract's file, unchanged
    rows = list(csv.DictReader(io.StringIO(after[ACCEPTANCES_FILE].decode())))
    assert list(rows[0]) == list(ACCEPTANCE_COLUMNS)
    assert [(r["fingerprint"], r["accepted_by"], r["until"], r["reason"]) for r in rows] == [
        (accepted.fingerprint, "lead", "2026-04-30", "Payer ACME written exception")
    ]
    practice = build_practice_packet(built.material.practice, evidence, again, options, key=KEY)
    assert ACCEPTANCES_FILE in zip_entries(practice)
    # Withdrawn: the evidence is the first night's again.
    back = build_client_packets(built.material, built.evidence, options, key=KEY)
    assert [s.state for s in back] == ["built"] and ACCEPTANCES_FILE not in zip_entries(path)


def test_a_signing_key_rebuilds_the_packets_once_and_its_fingerprint_is_on_the_covers(
    built, tmp_path
):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from metaudit.packets.keypair import SigningKey

    options = PacketOptions(packets_dir=tmp_path / "p")
    common = {"key": KEY, "settings": built.settings}
    hmac_only = build_client_packets(built.material, built.evidence, options, **common)
    assert [s.state for s in hmac_only] == ["built"]
    # The Ed25519 key is part of the evidence: a packet built without it is rebuilt once.
    signer = SigningKey(Ed25519PrivateKey.generate())
    signed = build_client_packets(built.material, built.evidence, options, signer=signer, **common)
    assert [s.state for s in signed] == ["built"]
    again = build_client_packets(built.material, built.evidence, options, signer=signer, **common)
    assert [s.state for s in again] == ["kept"]
    rotated = SigningKey(Ed25519PrivateKey.generate())
    after_rotation = build_client_packets(
        built.material, built.evidence, options, signer=rotated, **common
    )
    assert [s.state for s in after_rotation] == ["built"]
    path = options.packets_dir / "PR-1" / "2026-03-31" / "CL-1.zip"
    check = verify_packet(path, public_keys=[rotated.public])
    assert check.intact, check.problems
    assert check.ed25519_key_id == rotated.public.key_id
    assert verify_packet(path, KEY).intact
    cover = " ".join(_cover_text(zip_entries(path)["cover.pdf"]).split())
    assert rotated.public.grouped_fingerprint in cover and rotated.public.key_id in cover
    assert "VERIFY.txt" in cover
    practice = build_practice_packet(
        built.material.practice, built.evidence, after_rotation, options, key=KEY, signer=rotated
    )
    check = verify_packet(practice, public_keys=[rotated.public])
    assert check.intact, check.problems
    cover = " ".join(_cover_text(zip_entries(practice)["cover.pdf"]).split())
    assert rotated.public.grouped_fingerprint in cover
    assert "practice PR-1's packet for 2026-03" in zip_entries(practice)["VERIFY.txt"].decode()
