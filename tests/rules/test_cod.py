"""COD family (code linkage): each rule fires on a record built for it, and only there.

The clean records (tests/builders.py) hold client CL-1 with policy POL-1 (payer
Acme Health, unit rule cms, 90 filing days) and four live claims, each with one
diagnosis A (M17.11, also on referral RF-1 and condition CO-1) and two lines:

    CLM-1 (paid, submitted 01-15)   L-1 97110 2 units, L-2 97530 1 unit, on 01-12 (S-1)
    CLM-2 (paid, submitted 02-12)   L-3, L-4 on 02-10 (S-2)
    CLM-3 (submitted 03-13)         L-5, L-6 on 03-12 (S-3)
    CLM-4 (draft)                   L-7, L-8 on 03-30 (S-4)

Each completed session records 97110 for 30 minutes and 97530 for 15 (3 units
under either rule). The audit date is 2026-03-31.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from builders import Records, audit, by_id, clean_records, find, ids

from metaudit.spec.rulebook import RULES
from metaudit.spec.settings import Settings


def line(records: Records, line_id: str) -> dict[str, Any]:
    return find(records, "claim_lines", line_id=line_id)


def claim(records: Records, claim_id: str) -> dict[str, Any]:
    return find(records, "claims", claim_id=claim_id)


def add_claim(records: Records, claim_id: str, **changes: Any) -> dict[str, Any]:
    """A copy of CLM-1 under a new id (no lines, no diagnoses yet)."""
    row = {**claim(records, "CLM-1"), "claim_id": claim_id, **changes}
    records["claims"].append(row)
    return row


def add_line(records: Records, line_id: str, claim_id: str, **changes: Any) -> dict[str, Any]:
    """A copy of L-1 (97110, 2 units on 01-12, pointer A) under a new id and claim."""
    row = {**line(records, "L-1"), "line_id": line_id, "claim_id": claim_id, **changes}
    records["claim_lines"].append(row)
    return row


def add_diagnosis(records: Records, claim_id: str, pointer: str, code: str | None) -> None:
    records["claim_diagnoses"].append(
        {"claim_id": claim_id, "pointer": pointer, "icd10_code": code}
    )


def diagnosis(records: Records, claim_id: str, pointer: str = "A") -> dict[str, Any]:
    return find(records, "claim_diagnoses", claim_id=claim_id, pointer=pointer)


def set_minutes(records: Records, session_id: str, minutes: dict[str, Any]) -> None:
    """Replace a session's services by ``{cpt_code: minutes}``."""
    records["session_services"] = [
        s for s in records["session_services"] if s["session_id"] != session_id
    ] + [{"session_id": session_id, "cpt_code": c, "minutes": m} for c, m in minutes.items()]


COD_RULES = [f"COD-{n:03d}" for n in range(1, 11)]


def test_clean_records_raise_no_code_linkage_finding() -> None:
    findings = audit(clean_records())
    assert [f for f in findings if f["rule_id"].startswith("COD-")] == []


# ------------------------------------------------------------------ COD-001


def test_cod001_code_outside_the_medical_exercise_set() -> None:
    records = clean_records()
    line(records, "L-1")["cpt_code"] = "97150"
    findings = audit(records)
    assert ids(findings, "COD-001") == {"L-1"}
    hit = by_id(findings, "COD-001")["L-1"]
    assert hit["severity"] == RULES["COD-001"].severity
    assert hit["entity_type"] == "claim_line"
    assert hit["practice_id"] == "PR-1" and hit["client_id"] == "CL-1"
    assert "Claim line L-1" in hit["message"]


def test_cod001_code_set_is_a_payer_setting() -> None:
    settings = Settings.from_dict(
        {"payers": {"acme health": {"medical_exercise_cpt_codes": ["97110", "97112"]}}}
    )
    findings = audit(clean_records(), settings=settings)
    assert ids(findings, "COD-001") == {"L-2", "L-4", "L-6", "L-8"}


def test_cod001_unreadable_code_is_outside_the_set() -> None:
    records = clean_records()
    line(records, "L-1")["cpt_code"] = "   "  # blank: DQ-003, and unknown fails the requirement
    findings = audit(records)
    assert ids(findings, "COD-001") == {"L-1"}
    assert "claim_lines:L-1" in ids(findings, "DQ-003")


# ------------------------------------------------------------------ COD-002


def test_cod002_blank_pointers() -> None:
    records = clean_records()
    line(records, "L-1")["diagnosis_pointers"] = None
    line(records, "L-3")["diagnosis_pointers"] = " , "  # separators only: no pointer at all
    findings = audit(records)
    assert ids(findings, "COD-002") == {"L-1", "L-3"}
    message = by_id(findings, "COD-002")["L-1"]["message"]
    assert "Claim line L-1" in message and "empty" in message


def test_cod002_pointer_parsing_reading_12() -> None:
    records = clean_records()
    line(records, "L-1")["diagnosis_pointers"] = "A1"  # a digit names no diagnosis
    line(records, "L-3")["diagnosis_pointers"] = "B"  # CLM-2 has no diagnosis B
    line(records, "L-7")["diagnosis_pointers"] = "A,A A AA"  # five letters
    # CLM-3 has A, B and C: blanks and commas separate, case is ignored.
    add_diagnosis(records, "CLM-3", "B", "M17.11")
    add_diagnosis(records, "CLM-3", "C", "M17.11")
    line(records, "L-5")["diagnosis_pointers"] = " a, b c "
    line(records, "L-6")["diagnosis_pointers"] = "ABC"
    findings = audit(records)
    assert ids(findings, "COD-002") == {"L-1", "L-3", "L-7"}
    messages = {k: f["message"] for k, f in by_id(findings, "COD-002").items()}
    assert "too many letters" in messages["L-7"]
    assert "a letter with no diagnosis on the claim" in messages["L-1"]
    assert "a letter with no diagnosis on the claim" in messages["L-3"]


def test_cod002_a_blank_code_row_is_not_a_diagnosis() -> None:
    records = clean_records()
    add_diagnosis(records, "CLM-4", "B", "")
    line(records, "L-8")["diagnosis_pointers"] = "AB"
    findings = audit(records)
    assert ids(findings, "COD-002") == {"L-8"}
    # The blank code is DQ-003's, not a diagnosis COD-003 could judge.
    assert "claim_diagnoses:CLM-4" in ids(findings, "DQ-003")
    assert ids(findings, "COD-003") == set()


def test_cod002_pointer_limit_is_a_setting() -> None:
    records = clean_records()
    add_diagnosis(records, "CLM-1", "B", "M17.11")
    line(records, "L-1")["diagnosis_pointers"] = "AB"
    assert "L-1" not in ids(audit(records), "COD-002")
    settings = Settings.from_dict({"defaults": {"max_diagnosis_pointers": 1}})
    assert ids(audit(records, settings=settings), "COD-002") == {"L-1"}


# ------------------------------------------------------------------ COD-003


def test_cod003_code_not_billable() -> None:
    records = clean_records()
    diagnosis(records, "CLM-1")["icd10_code"] = "M54.5"  # a category since 2021-10-01
    diagnosis(records, "CLM-2")["icd10_code"] = "m1711"  # case and dot ignored: billable
    diagnosis(records, "CLM-3")["icd10_code"] = "XYZ.1"  # malformed
    diagnosis(records, "CLM-4")["icd10_code"] = "M17.1"  # header that needs a 6th character
    findings = audit(records)
    assert ids(findings, "COD-003") == {"CLM-1:A", "CLM-3:A", "CLM-4:A"}
    hit = by_id(findings, "COD-003")["CLM-1:A"]
    assert hit["entity_type"] == "claim_diagnosis"
    assert hit["client_id"] == "CL-1" and hit["practice_id"] == "PR-1"
    assert "CLM-1:A" in hit["message"]


def test_cod003_void_claim_is_left_out() -> None:
    records = clean_records()
    claim(records, "CLM-1")["status"] = "void"
    diagnosis(records, "CLM-1")["icd10_code"] = "M54.5"
    line(records, "L-1")["cpt_code"] = "97150"
    claim(records, "CLM-1")["billing_npi"] = None
    findings = audit(records)
    void_ids = {"CLM-1", "CLM-1:A", "L-1", "L-2"}
    assert not [f for f in findings if f["entity_id"] in void_ids]


# ------------------------------------------------------------------ COD-004


def test_cod004_diagnosis_on_no_referral_or_condition() -> None:
    records = clean_records()
    diagnosis(records, "CLM-1")["icd10_code"] = "M54.50"  # billable, but nowhere on record
    diagnosis(records, "CLM-2")["icd10_code"] = "m54.16"  # on condition CO-2 (dotless there)
    records["conditions"].append(
        {
            "condition_id": "CO-2",
            "client_id": "CL-1",
            "category": "chronic",
            "icd10_code": "M5416",
            "description": "Lumbar radiculopathy",
        }
    )
    # A referral dated after D does not exist yet, so its diagnosis supports nothing.
    records["referrals"].append(
        {
            **find(records, "referrals", referral_id="RF-1"),
            "referral_id": "RF-2",
            "referral_date": date(2026, 4, 10),
            "signed_on": date(2026, 4, 10),
        }
    )
    records["referral_diagnoses"].append({"referral_id": "RF-2", "seq": 1, "icd10_code": "M54.50"})
    findings = audit(records)
    assert ids(findings, "COD-004") == {"CLM-1:A"}
    assert ids(findings, "COD-003") == set()
    hit = by_id(findings, "COD-004")["CLM-1:A"]
    assert hit["severity"] == RULES["COD-004"].severity and "CLM-1:A" in hit["message"]


def test_cod004_referral_diagnosis_supports_the_claim() -> None:
    records = clean_records()
    for row in records["conditions"]:
        row["icd10_code"] = None  # only the referral names M17.11 now
    assert ids(audit(records), "COD-004") == set()
    records["referral_diagnoses"][0]["icd10_code"] = "M25.561"
    assert ids(audit(records), "COD-004") == {"CLM-1:A", "CLM-2:A", "CLM-3:A", "CLM-4:A"}


# ------------------------------------------------------------------ COD-005


def test_cod005_units_exceed_minutes() -> None:
    records = clean_records()
    line(records, "L-1")["units"] = 3  # 4 units billed, 45 minutes support 3
    findings = audit(records)
    assert ids(findings, "COD-005") == {"CL-1:2026-01-12"}
    hit = by_id(findings, "COD-005")["CL-1:2026-01-12"]
    assert hit["entity_type"] == "client_date"
    assert hit["client_id"] == "CL-1" and hit["practice_id"] == "PR-1"
    assert "Client CL-1 on 2026-01-12" in hit["message"]


def test_cod005_cms_and_ama_rules() -> None:
    # 8 + 8 minutes: cms (16 + 7) // 15 = 1 unit; ama 1 + 1 = 2 units. 2 billed.
    # 22 + 22 minutes: cms (44 + 7) // 15 = 3 units; ama 1 + 1 = 2 units. 3 billed.
    records = clean_records()
    set_minutes(records, "S-2", {"97110": 8, "97530": 8})
    line(records, "L-3")["units"] = 1
    set_minutes(records, "S-3", {"97110": 22, "97530": 22})
    assert ids(audit(records), "COD-005") == {"CL-1:2026-02-10"}

    records["insurance_policies"][0]["unit_rule"] = "ama"
    assert ids(audit(records), "COD-005") == {"CL-1:2026-03-12"}

    # No unit rule on the policy: the payer setting decides.
    records["insurance_policies"][0]["unit_rule"] = None
    settings = Settings.from_dict({"payers": {"Acme Health": {"unit_rule": "ama"}}})
    assert ids(audit(records, settings=settings), "COD-005") == {"CL-1:2026-03-12"}


def test_cod005_first_line_decides_the_unit_rule() -> None:
    # 03-12: CLM-3 (L-5, 97110, 2 units) and CLM-30 (L-9, 97530, 1 unit) on two
    # policies; 22 + 22 minutes support 3 units under cms, 2 under ama.
    records = clean_records()
    set_minutes(records, "S-3", {"97110": 22, "97530": 22})
    records["claim_lines"].remove(line(records, "L-6"))
    records["insurance_policies"].append(
        {
            **records["insurance_policies"][0],
            "policy_id": "POL-2",
            "payer_name": "Beta Care",
            "unit_rule": "ama",
        }
    )
    add_claim(records, "CLM-30", policy_id="POL-2", status="draft", submitted_on=None)
    add_diagnosis(records, "CLM-30", "A", "M17.11")
    add_line(records, "L-9", "CLM-30", service_date=date(2026, 3, 12), cpt_code="97530", units=1)
    # CLM-3 sorts before CLM-30: its policy (cms) decides.
    assert ids(audit(records), "COD-005") == set()
    claim(records, "CLM-3")["policy_id"] = "POL-2"
    claim(records, "CLM-30")["policy_id"] = "POL-1"
    assert ids(audit(records), "COD-005") == {"CL-1:2026-03-12"}


def test_cod005_unreadable_minutes_and_units_count_zero() -> None:
    records = clean_records()
    set_minutes(records, "S-1", {"97110": "thirty", "97530": 15})  # supports 1 unit
    line(records, "L-5")["units"] = "two"  # 03-12: 1 unit billed, 3 supported
    findings = audit(records)
    assert ids(findings, "COD-005") == {"CL-1:2026-01-12"}


def test_cod005_not_raised_without_a_completed_session() -> None:
    records = clean_records()
    find(records, "sessions", session_id="S-2")["status"] = "no_show"
    line(records, "L-3")["units"] = 8
    findings = audit(records)
    assert ids(findings, "COD-005") == set()
    assert ids(findings, "COD-006") == {"L-3", "L-4"}


# ------------------------------------------------------------------ COD-006


def test_cod006_no_completed_session_on_the_service_date() -> None:
    records = clean_records()
    line(records, "L-1")["service_date"] = date(2026, 1, 13)
    findings = audit(records)
    assert ids(findings, "COD-006") == {"L-1"}
    assert "Claim line L-1" in by_id(findings, "COD-006")["L-1"]["message"]
    # COD-010 and COD-005 leave the day to COD-006.
    assert ids(findings, "COD-010") == set()
    assert ids(findings, "COD-005") == set()


def test_cod006_lines_after_as_of_do_not_exist() -> None:
    records = clean_records()
    # A claim for the 04-02 session, which is after D: neither it nor its line exists.
    add_claim(records, "CLM-5", billing_npi=None, status="draft", submitted_on=None)
    add_diagnosis(records, "CLM-5", "A", "M54.5")
    add_line(records, "L-9", "CLM-5", service_date=date(2026, 4, 2), cpt_code="97150")
    findings = audit(records)
    cod = [f for f in findings if f["rule_id"].startswith(("COD-", "CLM-"))]
    assert cod == []
    # The same records a week later: the line exists and its claim lacks an NPI.
    later = audit(records, as_of=date(2026, 4, 7))
    assert ids(later, "COD-008") == {"CLM-5"}
    assert ids(later, "COD-001") == {"L-9"}


# ------------------------------------------------------------------ COD-007


def test_cod007_duplicate_line_on_another_claim() -> None:
    records = clean_records()
    add_claim(records, "CLM-9")
    add_diagnosis(records, "CLM-9", "A", "M17.11")
    add_line(records, "L-9", "CLM-9", cpt_code=" 97110 ")  # same client, 01-12, 97110
    findings = audit(records)
    assert ids(findings, "COD-007") == {"L-9"}
    assert "Claim line L-9" in by_id(findings, "COD-007")["L-9"]["message"]


def test_cod007_order_reading_16() -> None:
    records = clean_records()
    # 01-12: same claim and line_no; line_id decides (L-0 before L-1).
    add_line(records, "L-0", "CLM-1")
    # 02-10: claim ids compare as text, so CLM-10 comes before CLM-2.
    add_claim(records, "CLM-10")
    add_diagnosis(records, "CLM-10", "A", "M17.11")
    add_line(records, "L-10", "CLM-10", service_date=date(2026, 2, 10))
    # 03-30: line numbers compare as numbers, so line 9 comes before line 10.
    line(records, "L-7")["line_no"] = 10
    add_line(records, "L-11", "CLM-4", line_no=9, service_date=date(2026, 3, 30))
    findings = audit(records)
    assert ids(findings, "COD-007") == {"L-1", "L-3", "L-7"}


def test_cod007_void_claims_do_not_count() -> None:
    records = clean_records()
    add_claim(records, "CLM-0", status="void")
    add_diagnosis(records, "CLM-0", "A", "M17.11")
    add_line(records, "L-9", "CLM-0")
    assert ids(audit(records), "COD-007") == set()


# ------------------------------------------------------------------ COD-008


def test_cod008_billing_and_rendering_npi() -> None:
    records = clean_records()
    claim(records, "CLM-1")["billing_npi"] = None
    claim(records, "CLM-2")["billing_npi"] = "1234567890"  # wrong check digit
    claim(records, "CLM-3")["rendering_staff_id"] = "ST-9"  # no such staff member
    findings = audit(records)
    assert ids(findings, "COD-008") == {"CLM-1", "CLM-2", "CLM-3"}
    messages = {k: f["message"] for k, f in by_id(findings, "COD-008").items()}
    assert messages["CLM-1"] == "Claim CLM-1 has a missing or invalid billing NPI."
    assert messages["CLM-3"] == "Claim CLM-3 has a missing or invalid rendering staff NPI."


def test_cod008_staff_without_npi() -> None:
    records = clean_records()
    find(records, "staff", staff_id="ST-1")["npi"] = None
    claim(records, "CLM-4")["billing_npi"] = "12345"
    findings = audit(records)
    assert ids(findings, "COD-008") == {"CLM-1", "CLM-2", "CLM-3", "CLM-4"}
    assert by_id(findings, "COD-008")["CLM-4"]["message"] == (
        "Claim CLM-4 has a missing or invalid billing NPI, rendering staff NPI."
    )


# ------------------------------------------------------------------ COD-009


def test_cod009_filed_after_the_policy_limit() -> None:
    records = clean_records()
    records["insurance_policies"][0]["timely_filing_days"] = 30
    claim(records, "CLM-1")["submitted_on"] = date(2026, 2, 11)  # 30 days after 01-12
    claim(records, "CLM-2")["submitted_on"] = date(2026, 3, 13)  # 31 days after 02-10
    findings = audit(records)
    assert ids(findings, "COD-009") == {"CLM-2"}
    hit = by_id(findings, "COD-009")["CLM-2"]
    assert hit["severity"] == RULES["COD-009"].severity and "Claim CLM-2" in hit["message"]


def test_cod009_limit_from_the_payer_setting_and_needs_a_readable_date() -> None:
    records = clean_records()
    records["insurance_policies"][0]["timely_filing_days"] = None
    claim(records, "CLM-2")["submitted_on"] = date(2026, 3, 13)
    claim(records, "CLM-3")["submitted_on"] = "13/03/2026"  # unreadable: nothing proven
    assert ids(audit(records), "COD-009") == set()  # default 90 days
    settings = Settings.from_dict({"payers": {"Acme Health": {"timely_filing_days": 30}}})
    assert ids(audit(records, settings=settings), "COD-009") == {"CLM-2"}


# ------------------------------------------------------------------ COD-010


def test_cod010_billed_code_not_among_the_days_services() -> None:
    records = clean_records()
    line(records, "L-2")["cpt_code"] = "97112"
    line(records, "L-4")["cpt_code"] = "97112"
    # Another completed session on 02-10 records 97112: any session of the day counts.
    records["sessions"].append({**find(records, "sessions", session_id="S-2"), "session_id": "S-6"})
    records["session_services"].append({"session_id": "S-6", "cpt_code": "97112", "minutes": 15})
    findings = audit(records)
    assert ids(findings, "COD-010") == {"L-2"}
    assert ids(findings, "COD-001") == set()
    hit = by_id(findings, "COD-010")["L-2"]
    assert hit["severity"] == RULES["COD-010"].severity and "Claim line L-2" in hit["message"]


@pytest.mark.parametrize("rule_id", COD_RULES)
def test_every_cod_rule_is_in_the_suite(rule_id: str) -> None:
    import json
    from pathlib import Path

    suite = json.loads((Path(__file__).parents[2] / "expectations" / "cod.json").read_text())
    assert rule_id in {e["meta"]["rule_id"] for e in suite["expectations"]}
