"""Exposure: which claim lines each finding touches, per entity type, and their money.

The clean records (tests/builders.py) bill CL-1's four sessions on four claims, two lines
each (charges 100 + 50):

| claim | status    | service date | lines    | money at risk                     |
|-------|-----------|--------------|----------|-----------------------------------|
| CLM-1 | paid      | 2026-01-12   | L-1, L-2 | paid 120 -> 80 + 40 (recoupment)  |
| CLM-2 | paid      | 2026-02-10   | L-3, L-4 | paid 120 -> 80 + 40 (recoupment)  |
| CLM-3 | submitted | 2026-03-12   | L-5, L-6 | 100 + 50 (in flight)              |
| CLM-4 | draft     | 2026-03-30   | L-7, L-8 | 100 + 50 (fix before billing)     |

Each test builds the as-of view of records made for it and asks for the exposure of
findings named by hand (the mapping does not depend on which rule fired), or runs the
whole check where the rules matter.
"""

from __future__ import annotations

import csv
import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from builders import AS_OF, Records, audit_view, clean_records, find, write_sqlite

from metaudit.check.exposure import (
    EXPOSURE_FIELDS,
    TOUCHES,
    apportion,
    claim_of_record,
    finding_exposure,
    format_cents,
    read_exposure,
    to_exposure_csv,
    to_exposure_jsonl,
    write_exposure,
)
from metaudit.cli import main
from metaudit.spec.findings import Finding
from metaudit.spec.rulebook import RULES
from metaudit.spec.settings import Settings

ALL_LINES = {"fix_before_billing": 15000, "in_flight": 15000, "recoupment_risk": 24000}


_view = audit_view


def exposure_of(records: Records, *entities: tuple[str, str]) -> list[dict[str, Any]]:
    """The exposure rows of findings on the given (entity_type, entity_id), in order."""
    findings = [
        Finding(
            as_of=AS_OF.isoformat(),
            practice_id="PR-1",
            rule_id="DQ-003" if entity_type == "row" else "REF-001",
            severity="critical",
            entity_type=entity_type,
            entity_id=entity_id,
            client_id="CL-1",
            message="m",
        )
        for entity_type, entity_id in entities
    ]
    frame = finding_exposure(_view(records), findings, Settings.load(None))
    assert list(frame.columns) == list(EXPOSURE_FIELDS)
    return frame.to_dict("records")


def money(row: dict[str, Any]) -> dict[str, int]:
    """The money classes (cents) and the line count of one exposure row."""
    got = {name: int(row[name]) for name in ("fix_before_billing", "in_flight", "recoupment_risk")}
    assert int(row["total"]) == sum(got.values())
    return {**got, "lines": int(row["lines"])}


def cents(fix: int = 0, flight: int = 0, recoup: int = 0, lines: int = 0) -> dict[str, int]:
    return {
        "fix_before_billing": fix * 100,
        "in_flight": flight * 100,
        "recoupment_risk": recoup * 100,
        "lines": lines,
    }


def test_every_entity_type_of_the_rulebook_has_a_row_in_the_table():
    entity_types = {t for rule in RULES.values() for t in rule.entity_types}
    assert entity_types <= set(TOUCHES)


def test_docs_rules_md_shows_the_exposure_table_and_classes():
    from metaudit import docs_gen
    from metaudit.check.exposure import CLASS_MEANINGS

    text = (docs_gen.REPO_ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    assert "## Money at risk (exposure)" in text
    for entity_type in TOUCHES:
        assert f"\n| {entity_type} | " in text
    for name in CLASS_MEANINGS:
        assert f"\n| `{name}` | " in text
    assert "void claims, with their lines, carry no exposure" in text


def test_a_claim_line_touches_itself_only():
    (paid, draft) = exposure_of(clean_records(), ("claim_line", "L-1"), ("claim_line", "L-8"))
    assert money(paid) == cents(recoup=80, lines=1)
    assert money(draft) == cents(fix=50, lines=1)


def test_a_claim_touches_its_lines():
    (row,) = exposure_of(clean_records(), ("claim", "CLM-3"))
    assert money(row) == cents(flight=150, lines=2)


def test_a_claim_diagnosis_touches_its_claims_lines():
    (row,) = exposure_of(clean_records(), ("claim_diagnosis", "CLM-4:A"))
    assert money(row) == cents(fix=150, lines=2)


def test_a_session_touches_the_clients_lines_of_its_date_only():
    records = clean_records()
    # A line of another date on the same claim, and another client's line on the date.
    extra = dict(find(records, "claim_lines", line_id="L-5"), line_id="L-X", line_no=3)
    extra["service_date"] = date(2026, 3, 11)
    records["claim_lines"].append(extra)
    _add_other_client_claim(records, date(2026, 3, 12))
    (row,) = exposure_of(records, ("session", "S-3"))
    assert money(row) == cents(flight=150, lines=2)


def test_a_client_date_touches_the_clients_lines_of_that_date():
    (row,) = exposure_of(clean_records(), ("client_date", "CL-1:2026-02-10"))
    assert money(row) == cents(recoup=120, lines=2)


def test_a_referral_touches_the_lines_in_the_period_it_covers():
    records = clean_records()
    base = find(records, "referrals", referral_id="RF-1")
    # Covers 02-01..03-12 (both ends included): CLM-2 and CLM-3, not CLM-1 nor CLM-4.
    records["referrals"].append(
        dict(
            base, referral_id="RF-2", referral_date=date(2026, 2, 1), valid_until=date(2026, 3, 12)
        )
    )
    # No valid_until: referral_date + 90 days = 2026-03-15, so CLM-1..CLM-3.
    records["referrals"].append(
        dict(base, referral_id="RF-3", referral_date=date(2025, 12, 15), valid_until=None)
    )
    rf2, rf3 = exposure_of(records, ("referral", "RF-2"), ("referral", "RF-3"))
    assert money(rf2) == cents(flight=150, recoup=120, lines=4)
    assert money(rf3) == cents(flight=150, recoup=240, lines=6)


def test_a_policy_touches_the_lines_of_claims_on_it():
    records = clean_records()
    policy = find(records, "insurance_policies", policy_id="POL-1")
    records["insurance_policies"].append(dict(policy, policy_id="POL-2"))
    find(records, "claims", claim_id="CLM-4")["policy_id"] = "POL-2"
    pol1, pol2 = exposure_of(records, ("policy", "POL-1"), ("policy", "POL-2"))
    assert money(pol1) == cents(flight=150, recoup=240, lines=6)
    assert money(pol2) == cents(fix=150, lines=2)


def test_an_authorization_touches_its_policys_lines_in_its_window():
    records = clean_records()
    auth = find(records, "authorizations", authorization_id="AU-1")
    records["authorizations"].append(
        dict(
            auth, authorization_id="AU-2", start_date=date(2026, 2, 10), end_date=date(2026, 3, 12)
        )
    )
    au1, au2 = exposure_of(records, ("authorization", "AU-1"), ("authorization", "AU-2"))
    assert money(au1) == {**ALL_LINES, "lines": 8}
    assert money(au2) == cents(flight=150, recoup=120, lines=4)


def test_a_client_touches_all_its_lines_and_no_other_clients():
    records = clean_records()
    _add_other_client_claim(records, date(2026, 3, 12))
    cl1, cl2 = exposure_of(records, ("client", "CL-1"), ("client", "CL-2"))
    assert money(cl1) == {**ALL_LINES, "lines": 8}
    assert money(cl2) == cents(fix=75, lines=1)


def test_an_assessment_governs_the_lines_until_the_next_assessment_date():
    records = clean_records()
    base = find(records, "assessments", assessment_id="AS-3")
    # A discharge governs its own day and does not end AS-3's period.
    records["assessments"].append(
        dict(base, assessment_id="AS-4", kind="discharge", assessed_on=date(2026, 3, 30))
    )
    as1, as2, as3, as4 = exposure_of(
        records,
        ("assessment", "AS-1"),  # 01-10..02-08: CLM-1
        ("assessment", "AS-2"),  # 02-09..03-10: CLM-2
        ("assessment", "AS-3"),  # 03-11 on: CLM-3, CLM-4
        ("assessment", "AS-4"),  # 03-30: CLM-4
    )
    assert money(as1) == cents(recoup=120, lines=2)
    assert money(as2) == cents(recoup=120, lines=2)
    assert money(as3) == cents(fix=150, flight=150, lines=4)
    assert money(as4) == cents(fix=150, lines=2)


def test_a_plan_of_exercise_governs_until_the_next_plan_or_its_end():
    records = clean_records()
    base = find(records, "plans_of_exercise", poe_id="POE-1")
    records["plans_of_exercise"].append(
        dict(base, poe_id="POE-2", start_date=date(2026, 3, 1), end_date=date(2026, 3, 20))
    )
    records["plans_of_exercise"].append(dict(base, poe_id="POE-3", start_date=None))
    poe1, poe2, poe3 = exposure_of(records, ("poe", "POE-1"), ("poe", "POE-2"), ("poe", "POE-3"))
    assert money(poe1) == cents(recoup=240, lines=4)  # 01-10..02-28
    assert money(poe2) == cents(flight=150, lines=2)  # 03-01..03-20 (its end)
    assert money(poe3) == cents()  # no start date: governs nothing


def test_an_open_ended_plan_governs_every_later_line():
    (poe1,) = exposure_of(clean_records(), ("poe", "POE-1"))
    assert money(poe1) == {**ALL_LINES, "lines": 8}


def test_a_goal_touches_what_its_plan_governs():
    records = clean_records()
    base = find(records, "plans_of_exercise", poe_id="POE-1")
    records["plans_of_exercise"].append(dict(base, poe_id="POE-2", start_date=date(2026, 3, 1)))
    records["goals"].append(
        dict(find(records, "goals", goal_id="G-1"), goal_id="G-9", poe_id="POE-2")
    )
    g1, g9 = exposure_of(records, ("goal", "G-1"), ("goal", "G-9"))
    assert money(g1) == cents(recoup=240, lines=4)
    assert money(g9) == cents(fix=150, flight=150, lines=4)


def test_a_progress_report_touches_what_its_assessment_governs():
    records = clean_records()
    find(records, "progress_reports", report_id="PRR-2")["assessment_id"] = None
    prr1, prr2 = exposure_of(
        records, ("row", "progress_reports:PRR-1"), ("row", "progress_reports:PRR-2")
    )
    assert money(prr1) == cents(recoup=120, lines=2)  # AS-2: 02-09..03-10
    assert money(prr2) == cents()  # reports on no assessment


def test_data_quality_rows_map_to_their_entity_or_to_none():
    rows = exposure_of(
        clean_records(),
        ("row", "claim_lines:L-7"),
        ("row", "session_services:S-3"),
        ("row", "claims:CLM-1"),
        ("row", "staff:ST-1"),
        ("row", "eligibility_checks:EC-1"),
        ("row", "claim_lines:L-NOT-THERE"),
    )
    assert [money(r) for r in rows] == [
        cents(fix=100, lines=1),
        cents(flight=150, lines=2),
        cents(recoup=120, lines=2),
        cents(),
        cents(),
        cents(),
    ]


def test_void_claims_carry_no_exposure():
    records = clean_records()
    find(records, "claims", claim_id="CLM-3")["status"] = "void"
    session, claim, client = exposure_of(
        records, ("session", "S-3"), ("claim", "CLM-3"), ("client", "CL-1")
    )
    assert money(session) == cents()
    assert money(claim) == cents()
    assert money(client) == cents(fix=150, recoup=240, lines=6)


def test_lines_after_the_as_of_date_carry_no_exposure():
    records = clean_records()
    line = dict(find(records, "claim_lines", line_id="L-7"), line_id="L-LATER", line_no=3)
    line["service_date"] = date(2026, 4, 2)
    records["claim_lines"].append(line)
    (row,) = exposure_of(records, ("claim", "CLM-4"))
    assert money(row) == cents(fix=150, lines=2)


def test_lines_of_a_claim_of_unknown_status_or_without_a_claim_row_count_nowhere():
    records = clean_records()
    find(records, "claims", claim_id="CLM-3")["status"] = "lost in the mail"  # DQ-003
    find(records, "claim_lines", line_id="L-8")["claim_id"] = "CLM-GONE"  # DQ-002
    session3, session4 = exposure_of(records, ("session", "S-3"), ("session", "S-4"))
    assert money(session3) == cents()
    assert money(session4) == cents(fix=100, lines=1)


def test_each_claim_status_lands_in_its_class():
    records = clean_records()
    find(records, "claims", claim_id="CLM-3")["status"] = "denied"
    find(records, "claims", claim_id="CLM-4")["status"] = "appealed"
    find(records, "claims", claim_id="CLM-2")["status"] = "submitted"
    (row,) = exposure_of(records, ("client", "CL-1"))
    assert money(row) == cents(flight=450, recoup=120, lines=8)


def test_a_paid_claims_amount_is_apportioned_by_charge_and_adds_up_exactly():
    records = clean_records()
    find(records, "claims", claim_id="CLM-1")["paid_amount"] = 100.0
    for line_id in ("L-1", "L-2"):
        find(records, "claim_lines", line_id=line_id)["charge"] = 10.0
    third = dict(find(records, "claim_lines", line_id="L-1"), line_id="L-1C", line_no=3)
    records["claim_lines"].append(third)
    rows = exposure_of(
        records,
        ("claim_line", "L-1"),
        ("claim_line", "L-2"),
        ("claim_line", "L-1C"),
        ("claim", "CLM-1"),
    )
    # 100.00 over three equal charges: 33.34 (the first by line_no gets the cent) + 33.33 + 33.33.
    assert [r["recoupment_risk"] for r in rows] == [3334, 3333, 3333, 10000]


def test_a_paid_claim_without_paid_amount_risks_nothing_and_unreadable_charges_count_0():
    records = clean_records()
    find(records, "claims", claim_id="CLM-1")["paid_amount"] = None
    find(records, "claim_lines", line_id="L-7")["charge"] = "a lot"
    clm1, clm4 = exposure_of(records, ("claim", "CLM-1"), ("claim", "CLM-4"))
    assert money(clm1) == cents(lines=2)
    assert money(clm4) == cents(fix=50, lines=2)


def _apportion(total_cents: int, charges: list[int]) -> list[int]:
    count = len(charges)
    shares = apportion(
        np.zeros(count, dtype=np.int64),
        pd.Series(range(1, count + 1)),
        pd.Series([f"L{i}" for i in range(count)], dtype="string"),
        np.full(count, total_cents, dtype=np.int64),
        np.array(charges, dtype=np.int64),
    )
    return [int(v) for v in shares]


def test_apportion_splits_each_claim_apart_and_breaks_ties_by_line_no_then_line_id():
    shares = apportion(
        np.array([5, 2, 5, 2, 5]),
        pd.Series([2, 1, 1, 1, 1]),
        pd.Series(["B", "Y", "C", "X", "A"], dtype="string"),
        np.array([200, 101, 200, 101, 200]),
        np.array([100, 100, 100, 100, 100]),
    )
    # Claim 5: 66.67 each, 2 cents left: line_no 1 first (A, then C), B last.
    # Claim 2: 50.5 each, 1 cent left: both line_no 1, so line id X before Y.
    assert shares.tolist() == [66, 50, 67, 51, 67]


@pytest.mark.parametrize(
    ("total", "charges", "expected"),
    [
        (12000, [10000, 5000], [8000, 4000]),
        (10000, [1000, 1000, 1000], [3334, 3333, 3333]),
        (100, [1, 1, 1, 1, 1, 1, 1], [15, 15, 14, 14, 14, 14, 14]),
        (1001, [2000, 1000], [667, 334]),  # 667.33 and 333.67: the larger remainder rounds up
        (500, [0, 0], [250, 250]),  # nothing to weigh by: an even split
        (500, [-300, 300], [0, 500]),  # a negative charge weighs 0
        (-1001, [1000, 1000], [-500, -501]),  # a negative paid amount still adds up
        (0, [100, 200], [0, 0]),
    ],
)
def test_apportion_by_largest_remainder(total: int, charges: list[int], expected: list[int]):
    shares = _apportion(total, charges)
    assert shares == expected
    assert sum(shares) == total


def test_apportion_is_exact_past_what_int64_products_hold():
    total = 10**15 + 1  # ten trillion dollars and a cent
    shares = _apportion(total, [10**14, 2 * 10**14])
    assert sum(shares) == total
    assert shares == [333_333_333_333_334, 666_666_666_666_667]


def test_huge_charges_stay_exact_to_the_cent_in_the_files():
    records = clean_records()
    find(records, "claim_lines", line_id="L-7")["charge"] = "1e20"
    findings = [
        Finding(AS_OF.isoformat(), "PR-1", "COD-008", "critical", "claim", "CLM-4", "CL-1", "m")
    ]
    frame = finding_exposure(_view(records), findings, Settings.load(None))
    (row,) = frame.to_dict("records")
    assert row["fix_before_billing"] == 10**22 + 5000
    text = to_exposure_jsonl(frame)
    assert '"fix_before_billing": 100000000000000000050.00' in text
    assert json.loads(text, parse_float=Decimal)["total"] == Decimal("100000000000000000050.00")
    assert ",100000000000000000050.00," in to_exposure_csv(frame)


def test_far_dates_mark_open_periods_without_overflow():
    records = clean_records()
    find(records, "plans_of_exercise", poe_id="POE-1")["end_date"] = date(9999, 12, 31)
    find(records, "referrals", referral_id="RF-1")["valid_until"] = date(9999, 12, 31)
    poe, referral = exposure_of(records, ("poe", "POE-1"), ("referral", "RF-1"))
    assert money(poe) == {**ALL_LINES, "lines": 8}
    assert money(referral) == {**ALL_LINES, "lines": 8}


def test_csv_ids_that_look_like_formulas_are_neutralised_and_money_is_not():
    frame = pd.DataFrame(
        [["=1+1|row|x", "DQ-003", "PR-1", None, "row", "=1+1", 0, -5, 0, 0, -5]],
        columns=list(EXPOSURE_FIELDS),
    )
    assert to_exposure_csv(frame).splitlines()[1] == (
        "'=1+1|row|x,DQ-003,PR-1,,row,'=1+1,0,-0.05,0.00,0.00,-0.05"
    )
    assert '"entity_id": "=1+1"' in to_exposure_jsonl(frame)


def test_cents_format_with_two_places():
    assert [format_cents(c) for c in (0, 5, -5, 1205, 100000, -123456)] == [
        "0.00",
        "0.05",
        "-0.05",
        "12.05",
        "1000.00",
        "-1234.56",
    ]


def test_a_finding_touching_no_line_is_listed_with_zero_exposure():
    records = clean_records()
    records["claim_lines"] = []
    records["claims"] = []
    (row,) = exposure_of(records, ("client", "CL-1"))
    assert money(row) == cents()
    assert row["fingerprint"] == "REF-001|client|CL-1"


def test_exposure_rows_follow_the_findings_order_and_identity():
    rows = exposure_of(clean_records(), ("session", "S-3"), ("claim", "CLM-1"))
    assert [(r["fingerprint"], r["entity_type"], r["entity_id"]) for r in rows] == [
        ("REF-001|session|S-3", "session", "S-3"),
        ("REF-001|claim|CLM-1", "claim", "CLM-1"),
    ]
    assert {(r["practice_id"], r["client_id"]) for r in rows} == {("PR-1", "CL-1")}


# ---------------------------------------------------------------------------
# The files written by metaudit check


def _small_source(tmp_path: Path) -> Path:
    records = clean_records()
    find(records, "referrals", referral_id="RF-1")["signed_on"] = None  # REF-006: every line
    find(records, "sessions", session_id="S-3")["client_response"] = None  # DOC-008: CLM-3
    records["staff"][0]["full_name"] = None  # DQ-003 on staff:ST-1: no line
    return write_sqlite(records, tmp_path / "src.sqlite")


EXPECTED_JSONL = (
    '{"fingerprint": "DOC-008|session|S-3", "rule_id": "DOC-008", "practice_id": "PR-1", "client_id": "CL-1", "entity_type": "session", "entity_id": "S-3", "lines": 2, "fix_before_billing": 0.00, "in_flight": 150.00, "recoupment_risk": 0.00, "total": 150.00}\n'
    '{"fingerprint": "REF-006|referral|RF-1", "rule_id": "REF-006", "practice_id": "PR-1", "client_id": "CL-1", "entity_type": "referral", "entity_id": "RF-1", "lines": 8, "fix_before_billing": 150.00, "in_flight": 150.00, "recoupment_risk": 240.00, "total": 540.00}\n'
    '{"fingerprint": "DQ-003|row|staff:ST-1", "rule_id": "DQ-003", "practice_id": "PR-1", "client_id": null, "entity_type": "row", "entity_id": "staff:ST-1", "lines": 0, "fix_before_billing": 0.00, "in_flight": 0.00, "recoupment_risk": 0.00, "total": 0.00}\n'
)
EXPECTED_CSV = (
    "fingerprint,rule_id,practice_id,client_id,entity_type,entity_id,lines,fix_before_billing,in_flight,recoupment_risk,total\n"
    "DOC-008|session|S-3,DOC-008,PR-1,CL-1,session,S-3,2,0.00,150.00,0.00,150.00\n"
    "REF-006|referral|RF-1,REF-006,PR-1,CL-1,referral,RF-1,8,150.00,150.00,240.00,540.00\n"
    "DQ-003|row|staff:ST-1,DQ-003,PR-1,,row,staff:ST-1,0,0.00,0.00,0.00,0.00\n"
)


def _check(source: Path, out: Path) -> None:
    assert (
        main(["check", "--source", str(source), "--as-of", AS_OF.isoformat(), "--out", str(out)])
        == 0
    )


def test_metaudit_check_writes_exposure_beside_the_findings(tmp_path: Path):
    out = tmp_path / "out"
    _check(_small_source(tmp_path), out)
    findings = [json.loads(line) for line in (out / "findings.jsonl").read_text().splitlines()]
    assert (out / "exposure.jsonl").read_text(encoding="utf-8") == EXPECTED_JSONL
    assert (out / "exposure.csv").read_text(encoding="utf-8") == EXPECTED_CSV
    exposure = [
        json.loads(line, parse_float=Decimal)
        for line in (out / "exposure.jsonl").read_text().splitlines()
    ]
    # One exposure row per finding, in the findings' order, keyed by fingerprint.
    assert [e["fingerprint"] for e in exposure] == [f["fingerprint"] for f in findings]
    assert exposure[1]["total"] == Decimal("540.00")
    with (out / "exposure.csv").open(newline="") as handle:
        assert [r["fingerprint"] for r in csv.DictReader(handle)] == [
            f["fingerprint"] for f in findings
        ]


def test_metaudit_check_writes_empty_exposure_files_when_nothing_is_found(tmp_path: Path):
    out = tmp_path / "out"
    _check(write_sqlite(clean_records(), tmp_path / "src.sqlite"), out)
    assert (out / "findings.jsonl").read_text() == ""
    assert (out / "exposure.jsonl").read_text() == ""
    assert (out / "exposure.csv").read_text() == EXPECTED_CSV.splitlines(keepends=True)[0]


def test_the_findings_files_are_byte_identical_with_and_without_the_exposure_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    source = _small_source(tmp_path)
    _check(source, tmp_path / "with")
    monkeypatch.setattr("metaudit.check.exposure.finding_exposure", lambda *args: None)
    _check(source, tmp_path / "without")
    assert not (tmp_path / "without" / "exposure.jsonl").exists()
    for name in ("findings.jsonl", "findings.csv"):
        assert (tmp_path / "with" / name).read_bytes() == (tmp_path / "without" / name).read_bytes()
    assert (tmp_path / "with" / "findings.jsonl").read_bytes()  # there is something to compare


def test_the_exposure_writers_agree_on_an_empty_frame():
    empty = pd.DataFrame({name: [] for name in EXPOSURE_FIELDS})
    assert to_exposure_jsonl(empty) == ""
    assert to_exposure_csv(empty) == ",".join(EXPOSURE_FIELDS) + "\n"


def _add_other_client_claim(records: Records, day: date) -> None:
    """CL-2 (practice PR-1) with one draft claim line of 75.00 on ``day``."""
    records["clients"].append(dict(records["clients"][0], client_id="CL-2"))
    records["insurance_policies"].append(
        dict(records["insurance_policies"][0], policy_id="POL-9", client_id="CL-2")
    )
    records["claims"].append(
        dict(
            find(records, "claims", claim_id="CLM-4"),
            claim_id="CLM-9",
            client_id="CL-2",
            policy_id="POL-9",
        )
    )
    records["claim_lines"].append(
        dict(
            find(records, "claim_lines", line_id="L-7"),
            line_id="L-90",
            claim_id="CLM-9",
            service_date=day,
            charge=75.0,
        )
    )


def test_exposure_jsonl_reads_back_to_exact_cents(tmp_path: Path):
    frame = pd.DataFrame(
        [
            ["A|claim|C-1", "COD-008", "PR-1", "CL-1", "claim", "C-1", 2, 15000, 0, 5, 15005],
            ["B|row|x", "DQ-003", "PR-1", None, "row", "claim_lines:L-1", 0, -5, 0, 0, -5],
            [
                "C|claim|C-2",
                "COD-008",
                "PR-1",
                "CL-1",
                "claim",
                "C-2",
                1,
                10**22 + 1,
                0,
                0,
                10**22 + 1,
            ],
        ],
        columns=list(EXPOSURE_FIELDS),
    )
    write_exposure(frame, tmp_path)
    rows = read_exposure(tmp_path / "exposure.jsonl")
    assert [
        (r["fingerprint"], r["lines"], r["fix_before_billing"], r["recoupment_risk"], r["total"])
        for r in rows
    ] == [
        ("A|claim|C-1", 2, 15000, 5, 15005),
        ("B|row|x", 0, -5, 0, -5),
        ("C|claim|C-2", 1, 10**22 + 1, 0, 10**22 + 1),
    ]
    assert rows[1]["client_id"] is None and rows[1]["entity_id"] == "claim_lines:L-1"


def test_exposure_jsonl_with_a_row_missing_a_field_is_refused(tmp_path: Path):
    path = tmp_path / "exposure.jsonl"
    path.write_text('{"fingerprint": "A", "lines": 1}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"exposure\.jsonl:1: exposure row without"):
        read_exposure(path)


def test_the_claim_a_finding_s_record_is():
    lines = {"L-1": "C-9"}
    assert claim_of_record("claim", "C-1", lines) == "C-1"
    assert claim_of_record("claim_diagnosis", "C:2:1", lines) == "C:2"
    assert claim_of_record("claim_line", "L-1", lines) == "C-9"
    assert claim_of_record("claim_line", "L-404", lines) is None
    assert claim_of_record("row", "claim_lines:L-1", lines) == "C-9"
    assert claim_of_record("row", "claims:C-3", lines) == "C-3"
    assert claim_of_record("row", "sessions:S-1", lines) is None
    assert claim_of_record("session", "S-1", lines) is None
    assert claim_of_record("client", "CL-1", lines) is None
