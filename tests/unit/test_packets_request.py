"""The answer to a records request: which records support the requested services, and
the request's PDF read as a person would (poppler's pdftotext, pdffonts, pdftoppm).

The builders' clean client CL-1 gets records built for the purpose, each with a reason
to be in or out of a request for claims CLM-2 (service date 2026-02-10) and CLM-3
(2026-03-12): referrals expired, in force, superseded and later; intakes before and
after; a discharge assessment; plans of exercise past, in effect and replaced; a
cancelled session on a requested date; and a second client with a claim of its own.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import zipfile
from datetime import date
from pathlib import Path

import poppler
import pytest
from builders import AS_OF, add_client_without_sessions, clean_records, find, write_sqlite
from poppler import page_count, page_text, run

from metaudit.errors import SettingsError
from metaudit.packets import prepare_material
from metaudit.packets.request import (
    Letterhead,
    RecordsRequest,
    RequestError,
    check_reference,
    letterhead,
    parse_claim_ids,
    request_packet_path,
    resolve_services,
    select_records,
    write_request_packet,
)

KEY = b"unit-test-packet-key-0123456789"


def _like(records: dict, table: str, template: dict, **changes) -> None:
    row = copy.deepcopy(find(records, table, **template))
    row.update(changes)
    records[table].append(row)


def _records() -> dict:
    records = clean_records()
    # Referrals: RF-0 expired before any service, RF-1 in force on 02-10 (and 03-12, where
    # the later RF-2 is the one in force), RF-3 dated after both dates.
    _like(
        records,
        "referrals",
        {"referral_id": "RF-1"},
        referral_id="RF-0",
        referral_date=date(2025, 5, 1),
        signed_on=date(2025, 5, 1),
        valid_until=date(2025, 11, 1),
    )
    _like(
        records,
        "referrals",
        {"referral_id": "RF-1"},
        referral_id="RF-2",
        referral_date=date(2026, 3, 1),
        signed_on=date(2026, 3, 1),
        valid_until=date(2026, 9, 1),
    )
    _like(
        records,
        "referrals",
        {"referral_id": "RF-1"},
        referral_id="RF-3",
        referral_date=date(2026, 3, 20),
        signed_on=date(2026, 3, 20),
        valid_until=date(2026, 9, 20),
    )
    for rid in ("RF-0", "RF-2", "RF-3"):
        _like(records, "referral_diagnoses", {"referral_id": "RF-1"}, referral_id=rid)
    # Intakes: an older one (replaced by IN-1) and one completed after both dates.
    _like(
        records,
        "intake_forms",
        {"intake_id": "IN-1"},
        intake_id="IN-0",
        completed_on=date(2025, 12, 1),
        consent_signed_on=date(2025, 12, 1),
        waiver_signed_on=date(2025, 12, 1),
    )
    _like(
        records,
        "intake_forms",
        {"intake_id": "IN-1"},
        intake_id="IN-2",
        completed_on=date(2026, 3, 25),
        consent_signed_on=date(2026, 3, 25),
        waiver_signed_on=date(2026, 3, 25),
    )
    # A discharge assessment: never among the supporting documents.
    _like(
        records,
        "assessments",
        {"assessment_id": "AS-3"},
        assessment_id="AS-9",
        kind="discharge",
        assessed_on=date(2026, 3, 28),
        signed_on=date(2026, 3, 28),
    )
    # Plans: one that ended before the services, POE-1 in effect on 02-10, POE-2 from 03-01.
    _like(
        records,
        "plans_of_exercise",
        {"poe_id": "POE-1"},
        poe_id="POE-0",
        start_date=date(2025, 10, 1),
        end_date=date(2025, 12, 31),
        signed_on=date(2025, 10, 1),
    )
    _like(
        records,
        "plans_of_exercise",
        {"poe_id": "POE-1"},
        poe_id="POE-2",
        start_date=date(2026, 3, 1),
        signed_on=date(2026, 3, 1),
    )
    # A cancelled session on a requested date: no service, no note to send.
    _like(
        records,
        "sessions",
        {"session_id": "S-2"},
        session_id="S-2C",
        status="cancelled",
        timed_minutes=None,
    )
    # A completed session no claim line bills (a service of a range all the same).
    _like(
        records,
        "sessions",
        {"session_id": "S-3"},
        session_id="S-6",
        session_date=date(2026, 3, 5),
        signed_at="2026-03-05T15:00:00Z",
    )
    # Another client of the practice, with a claim of its own.
    add_client_without_sessions(records)
    _like(records, "claims", {"claim_id": "CLM-1"}, claim_id="CLM-9", client_id="CL-2")
    return records


@pytest.fixture(scope="module")
def practice(tmp_path_factory):
    from metaudit.check.engine import check_typed, load_source
    from metaudit.packets import evidence_from_check
    from metaudit.spec.settings import Settings

    tmp = tmp_path_factory.mktemp("request")
    db = write_sqlite(_records(), tmp / "source.sqlite")
    settings = Settings.from_dict({})
    typed = load_source(db, AS_OF)
    result = check_typed(typed, AS_OF, ["PR-1"], settings, keep_material=True)
    material = prepare_material(
        typed, AS_OF, "PR-1", settings, view=result.view, frames=result.frames
    )
    return {"material": material, "evidence": evidence_from_check(result, "PR-1"), "tmp": tmp}


def _decide(material, request: RecordsRequest):
    selection = resolve_services(material, request)
    selection.decisions = select_records(material, selection)
    return selection, {(d.table, d.record_id): d for d in selection.decisions}


# Every record that could support CLM-2 (2026-02-10) and CLM-3 (2026-03-12): in or out, why.
EXPECTED = {
    ("referrals", "RF-0"): (False, "not in force on any requested date"),
    ("referrals", "RF-1"): (True, "referral in force on 2026-02-10"),
    ("referrals", "RF-2"): (True, "referral in force on 2026-03-12"),
    ("referrals", "RF-3"): (False, "not in force on any requested date"),
    ("intake_forms", "IN-0"): (False, "a later intake is the one before every date"),
    ("intake_forms", "IN-1"): (True, "the intake on record on or before 2026-02-10, 2026-03-12"),
    ("intake_forms", "IN-2"): (False, "after the last requested date"),
    ("assessments", "AS-1"): (True, "the latest initial assessment on or before"),
    ("assessments", "AS-2"): (True, "the latest reassessment on or before 2026-02-10"),
    ("assessments", "AS-3"): (True, "the latest reassessment on or before 2026-03-12"),
    ("assessments", "AS-9"): (False, "a discharge assessment"),
    ("plans_of_exercise", "POE-0"): (False, "not the plan in effect on any requested date"),
    ("plans_of_exercise", "POE-1"): (True, "plan of exercise in effect on 2026-02-10"),
    ("plans_of_exercise", "POE-2"): (True, "plan of exercise in effect on 2026-03-12"),
    ("sessions", "S-1"): (False, "2026-01-12 is not a requested service date"),
    ("sessions", "S-2"): (True, "session note of 2026-02-10"),
    ("sessions", "S-2C"): (False, "a cancelled session on 2026-02-10"),
    ("sessions", "S-3"): (True, "session note of 2026-03-12"),
    ("sessions", "S-4"): (False, "2026-03-30 is not a requested service date"),
    ("sessions", "S-6"): (False, "2026-03-05 is not a requested service date"),
    ("progress_reports", "PRR-1"): (True, "sent on 2026-02-12, within the requested period"),
    ("progress_reports", "PRR-2"): (False, "outside the requested period"),
    ("claims", "CLM-1"): (False, "claim not requested"),
    ("claims", "CLM-2"): (True, "claim requested"),
    ("claims", "CLM-3"): (True, "claim requested"),
    ("claims", "CLM-4"): (False, "claim not requested"),
}


def test_each_record_is_in_or_out_with_its_reason(practice):
    request = RecordsRequest("PR-1", "Payer X audit 123", claim_ids=("CLM-2", "CLM-3"))
    selection, decided = _decide(practice["material"], request)
    assert selection.client_id == "CL-1"
    assert selection.dates == [date(2026, 2, 10), date(2026, 3, 12)]
    assert [(s.claim_id, s.cpt_code) for s in selection.services] == [
        ("CLM-2", "97110"),
        ("CLM-2", "97530"),
        ("CLM-3", "97110"),
        ("CLM-3", "97530"),
    ]
    # S-5 (2026-04-02) is after the as-of date: not in the view, so not considered at all.
    assert set(decided) == set(EXPECTED)
    for key, (included, reason) in EXPECTED.items():
        assert decided[key].included is included, (key, decided[key].reason)
        assert reason in decided[key].reason, (key, decided[key].reason)
    # The other client's records are never considered.
    assert not any(d.record_id == "CLM-9" for d in selection.decisions)


def test_one_date_only_leaves_out_what_supports_only_the_other(practice):
    _, decided = _decide(practice["material"], RecordsRequest("PR-1", "ref", claim_ids=("CLM-2",)))
    # On 2026-02-10 alone: RF-1 (RF-2 is later), AS-2 (AS-3 is later), POE-1 (POE-2 later).
    assert decided["referrals", "RF-1"].included
    assert not decided["referrals", "RF-2"].included
    assert not decided["assessments", "AS-3"].included
    assert "after the last requested date" in decided["assessments", "AS-3"].reason
    assert not decided["plans_of_exercise", "POE-2"].included
    # The period is one day: the progress report two days later is out.
    assert not decided["progress_reports", "PRR-1"].included


def test_a_superseded_referral_says_so(practice):
    _, decided = _decide(practice["material"], RecordsRequest("PR-1", "ref", claim_ids=("CLM-3",)))
    assert not decided["referrals", "RF-1"].included
    assert (
        "a later referral is the one in force on 2026-03-12" in decided["referrals", "RF-1"].reason
    )
    assert decided["referrals", "RF-2"].included


def test_a_range_of_service_dates(practice):
    request = RecordsRequest(
        "PR-1",
        "ref",
        client_id="CL-1",
        service_from=date(2026, 3, 1),
        service_to=date(2026, 3, 31),
    )
    selection, decided = _decide(practice["material"], request)
    assert selection.claim_ids == ("CLM-3", "CLM-4")
    # The lines of CLM-3 and CLM-4, and the session of 2026-03-05 that no line bills.
    assert selection.dates == [date(2026, 3, 5), date(2026, 3, 12), date(2026, 3, 30)]
    unbilled = [s for s in selection.services if s.claim_id is None]
    assert [(s.day, s.session_id) for s in unbilled] == [(date(2026, 3, 5), "S-6")]
    for session in ("S-3", "S-4", "S-6"):
        assert decided["sessions", session].included, session
    assert decided["progress_reports", "PRR-2"].included  # 2026-03-13, within the range
    assert not decided["claims", "CLM-2"].included


@pytest.mark.parametrize(
    ("request_", "words"),
    [
        (RecordsRequest("PR-1", "ref", claim_ids=("CLM-2", "NOPE", "ZZ")), "NOPE, ZZ"),
        (RecordsRequest("PR-1", "ref", claim_ids=("CLM-1", "CLM-9")), "client CL-2: CLM-9"),
        (
            RecordsRequest(
                "PR-1",
                "ref",
                client_id="CL-1",
                service_from=date(2025, 1, 1),
                service_to=date(2025, 1, 31),
            ),
            "no services from 2025-01-01 to 2025-01-31",
        ),
        (
            RecordsRequest(
                "PR-1",
                "ref",
                client_id="CL-404",
                service_from=date(2026, 1, 1),
                service_to=date(2026, 1, 31),
            ),
            "client CL-404 is not a client of practice PR-1",
        ),
    ],
)
def test_requests_that_cannot_be_answered_name_what_is_wrong(practice, request_, words):
    with pytest.raises(RequestError, match=re.escape(words)):
        resolve_services(practice["material"], request_)


def test_a_request_of_another_practices_claims_names_them(practice):
    # PR-2's claims are not in PR-1's view: unknown there, whoever's they are.
    with pytest.raises(RequestError, match="not among practice PR-1's live claims"):
        resolve_services(practice["material"], RecordsRequest("PR-1", "r", claim_ids=("C-PR2",)))


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"claim_ids": ("CLM-1",), "client_id": "CL-1"}, "not both"),
        ({}, "names claims, or a client"),
        (
            {"client_id": "CL-1", "service_from": date(2026, 3, 2), "service_to": date(2026, 3, 1)},
            "the range of service dates is empty",
        ),
        ({"claim_ids": ("CLM-1",), "reference": ""}, "reference is required"),
        ({"claim_ids": ("CLM-1",), "reference": "x" * 201}, "at most 200"),
        ({"claim_ids": ("CLM-1",), "reference": "a\x07b"}, "printable"),
        ({"claim_ids": ("C\x00",)}, "printable"),
    ],
)
def test_malformed_requests_are_refused(kwargs, words):
    values = {"practice_id": "PR-1", "reference": "ref", **kwargs}
    with pytest.raises(RequestError, match=re.escape(words)):
        RecordsRequest(**values)


def test_references_and_claim_lists_as_people_write_them():
    assert check_reference("  Payer X audit 123 ") == "Payer X audit 123"
    assert check_reference("Überprüfung Nr. 7") == "Überprüfung Nr. 7"
    assert parse_claim_ids("C-1, C-2\nC-3;C-4  C-5") == ("C-1", "C-2", "C-3", "C-4", "C-5")
    assert RecordsRequest("P", "r", claim_ids=("C-1", "C-1", " C-2 ")).claim_ids == ("C-1", "C-2")


def test_the_letterhead_comes_from_the_settings_else_the_source(practice):
    from metaudit.spec.settings import Settings

    row = practice["material"].practice
    assert letterhead(Settings.from_dict({}), "PR-1", row) == Letterhead(
        "Riverside Medical Exercise", "1234567893", None
    )
    configured = Settings.from_dict(
        {
            "practices": {
                "PR-1": {
                    "letterhead": {
                        "name": "Riverside MET, LLC",
                        "npi": "1245319599",
                        "address": "1 Main St\nSpringfield, IL 62701",
                    }
                }
            }
        }
    )
    assert letterhead(configured, "PR-1", row) == Letterhead(
        "Riverside MET, LLC", "1245319599", "1 Main St\nSpringfield, IL 62701"
    )
    bad = Settings.from_dict(
        {"practices": {"PR-1": {"letterhead": {"npi": "1234567890", "adress": "x"}}}}
    )
    with pytest.raises(SettingsError) as error:
        letterhead(bad, "PR-1", row)
    assert "practices.PR-1.letterhead.npi" in str(error.value)
    assert "practices.PR-1.letterhead.adress" in str(error.value)


# ---------------------------------------------------------------------------- the packet


@pytest.fixture(scope="module")
def packet(practice):
    request = RecordsRequest("PR-1", "Payer X audit 123", claim_ids=("CLM-2", "CLM-3"))
    head = Letterhead("Riverside Medical Exercise", "1234567893", "1 Main St\nSpringfield, IL")
    written = write_request_packet(
        practice["material"],
        practice["evidence"],
        request,
        head,
        practice["tmp"] / "packets",
        key=KEY,
    )
    folder = practice["tmp"] / "unzipped"
    with zipfile.ZipFile(written.path) as archive:
        archive.extractall(folder)
    return {"written": written, "folder": folder, "pdf": folder / "request.pdf"}


def test_the_packet_is_stored_under_the_practices_requests_and_lists_its_documents(packet):
    written = packet["written"]
    assert written.path == request_packet_path(written.path.parents[2], "PR-1", written.request_id)
    assert written.path.parent.name == "requests"
    assert not list(written.path.parent.glob("*.tmp*"))
    manifest = json.loads((packet["folder"] / "manifest.json").read_text())
    assert (manifest["kind"], manifest["practice_id"], manifest["client_id"]) == (
        "request",
        "PR-1",
        "CL-1",
    )
    assert manifest["as_of"] == AS_OF.isoformat()
    listed = {(d["table"], d["record_id"]) for d in manifest["request"]["documents"]}
    assert listed == {key for key, (included, _) in EXPECTED.items() if included}
    assert {f["path"] for f in manifest["files"]} == {
        "request.pdf",
        "records.csv",
        "compliance.csv",
    }


def test_metaudit_verify_verifies_the_request_packet(packet):
    from metaudit.packets import verify_packet

    check = verify_packet(packet["written"].path, KEY)
    assert check.intact, check.problems
    assert "records request" in check.summary()


def _index(pdf: Path) -> list[tuple[str, int, str]]:
    """(title, page, why) of every document line of the index (its pages follow the letter)."""
    entries = []
    page = 2
    header = re.compile(r"^Document\s+Rows\s+Page\s+Why it is here$", re.M)
    while (found := header.search(text := page_text(pdf, page))) is not None:
        for line in text[found.end() :].splitlines()[1:]:
            hit = re.match(r"^(\S.*?\S)\s{2,}\d+\s+(\d+)\s{2,}(\S.*?)\s*$", line)
            if hit:
                entries.append((hit.group(1), int(hit.group(2)), hit.group(3)))
        page += 1
    return entries


pdf_tools = pytest.mark.skipif(not poppler.AVAILABLE, reason="needs poppler-utils")


@pdf_tools
def test_the_cover_letter_names_the_practice_the_reference_and_the_services(packet):
    letter = " ".join(page_text(packet["pdf"], 1).split())
    for words in (
        "Riverside Medical Exercise",
        "NPI 1234567893",
        "1 Main St",
        "Springfield, IL",
        "Your reference: Payer X audit 123",
        packet["written"].request_id,
        "Services covered: 4 row(s)",
        "2026-02-10 CLM-2",
        "2026-03-12 CLM-3",
        "97530",
    ):
        assert words in letter, words


@pdf_tools
def test_pdftotext_finds_every_document_of_the_index_on_the_page_it_names(packet):
    pdf = packet["pdf"]
    entries = _index(pdf)
    titles = [title for title, _, _ in entries]
    expected_records = [
        "Referral RF-1",
        "Referral RF-2",
        "Intake IN-1",
        "Initial assessment AS-1",
        "Reassessment AS-2",
        "Reassessment AS-3",
        "Plan of exercise POE-1",
        "Plan of exercise POE-2",
        "Session note S-2 of 2026-02-10",
        "Session note S-3 of 2026-03-12",
        "Progress report PRR-1",
        "Claim CLM-2",
        "Claim CLM-3",
    ]
    assert titles == [
        "Records request: Payer X audit 123",
        *expected_records,
        "Compliance status of the requested services",
        "Records considered",
    ]
    pages = page_count(pdf)
    for title, page, why in entries:
        assert 1 <= page <= pages, title
        on_page = " ".join(page_text(pdf, page).split())
        assert title in on_page, (title, page)
        if title in expected_records:
            # The document's page states the whole reason the index starts.
            assert why.removesuffix(" ...") in on_page, (title, why)
    # Every document from a page of its own, in the index's order.
    document_pages = [page for _, page, _ in entries]
    assert document_pages == sorted(set(document_pages))
    # Nothing else of the client is in the PDF (the records left out appear only in the
    # table of records considered, on its own last pages).
    body = " ".join(page_text(pdf, p) for p in range(2, entries[-1][1]))
    for left_out in (
        "RF-0",
        "RF-3",
        "IN-0",
        "IN-2",
        "AS-9",
        "POE-0",
        "S-2C",
        "PRR-2",
        "CLM-1 ",
        "CLM-4",
    ):
        assert left_out not in body, left_out


@pdf_tools
def test_the_compliance_pages_list_the_rules_with_their_status(packet):
    pdf = packet["pdf"]
    _title, page, _ = next(e for e in _index(pdf) if e[0].startswith("Compliance"))
    text = " ".join(page_text(pdf, page).split())
    assert "REF-001" in text and "Pass" in text and "Not applicable" in text


@pdf_tools
def test_pdffonts_shows_every_font_embedded(packet):
    listing = run("pdffonts", str(packet["pdf"])).splitlines()
    fonts = listing[2:]
    assert fonts, listing
    for line in fonts:
        assert re.findall(r"\b(yes|no)\b", line)[:1] == ["yes"], line
        assert "DejaVuSans" in line, line


@pdf_tools
def test_the_first_pages_render_and_none_is_blank(packet, tmp_path):
    import matplotlib.image

    subprocess.run(
        [
            "pdftoppm",
            "-png",
            "-r",
            "40",
            "-f",
            "1",
            "-l",
            "4",
            str(packet["pdf"]),
            str(tmp_path / "page"),
        ],
        check=True,
    )
    images = sorted(tmp_path.glob("page*.png"))
    assert len(images) == 4
    for image in images:
        pixels = matplotlib.image.imread(str(image))
        height, width = pixels.shape[:2]
        assert width > height > 200  # A4 landscape
        body = pixels[..., :3].mean(axis=2)[: int(height * 0.85)]
        # Above the footer: the page's own content. A document of one record is a title
        # and a few short tables (about 0.3 % ink at 40 dpi); a blank page has none.
        assert (body < 0.5).mean() > 0.001, image.name
        assert body.std() > 0.02, image.name
