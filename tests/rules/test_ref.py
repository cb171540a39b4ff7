"""REF family (referral validity): each rule fires on a record built for it, and only there.

The clean records (tests/builders.py) hold one referral RF-1 of client CL-1,
dated 2026-01-05 and valid until 2026-07-05, from provider PV-1 (an MD);
completed sessions S-1..S-4 fall on 01-12, 02-10, 03-12 and 03-30; the audit
date is 2026-03-31.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from builders import (
    NPI_PROVIDER_2,
    Finding,
    add_client_without_sessions,
    audit,
    clean_records,
    find,
    ids,
    only,
)

from metaudit.spec.rulebook import RULES


def referral(records: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return find(records, "referrals", referral_id="RF-1")


def provider(records: dict[str, list[dict[str, Any]]], provider_id: str = "PV-1") -> dict[str, Any]:
    return find(records, "providers", provider_id=provider_id)


def add_provider(records: dict[str, list[dict[str, Any]]], credential: str) -> None:
    records["providers"].append(
        {
            "provider_id": "PV-2",
            "full_name": "Dr. Casey Wren",
            "credential": credential,
            "npi": NPI_PROVIDER_2,
        }
    )


@pytest.mark.parametrize("rule_id", [f"REF-00{n}" for n in range(1, 10)])
def test_clean_records_raise_no_ref_finding(clean_findings: list[Finding], rule_id: str) -> None:
    assert ids(clean_findings, rule_id) == set()


# ---------------------------------------------------------------- REF-001


def test_ref001_client_with_sessions_and_no_referral() -> None:
    records = clean_records()
    records["referrals"] = []
    records["referral_diagnoses"] = []
    findings = audit(records)
    hit = only(findings, "REF-001")
    assert hit["entity_id"] == "CL-1"
    assert hit["entity_type"] == "client"
    assert hit["practice_id"] == "PR-1"
    assert hit["client_id"] == "CL-1"
    assert hit["severity"] == RULES["REF-001"].severity
    assert "Client CL-1" in hit["message"]
    # Not raised per session when REF-001 speaks for the client.
    assert ids(findings, "REF-002") == set()


def test_ref001_not_raised_for_client_without_completed_session() -> None:
    records = clean_records()
    add_client_without_sessions(records)
    assert ids(audit(records), "REF-001") == set()


def test_ref001_referral_dated_after_as_of_does_not_exist() -> None:
    records = clean_records()
    referral(records)["referral_date"] = date(2026, 4, 5)
    findings = audit(records)
    assert ids(findings, "REF-001") == {"CL-1"}
    assert ids(findings, "REF-002") == set()


def test_ref001_cancelled_sessions_are_not_completed() -> None:
    records = clean_records()
    records["referrals"] = []
    records["referral_diagnoses"] = []
    for session in records["sessions"]:
        session["status"] = "cancelled"
    assert ids(audit(records), "REF-001") == set()


# ---------------------------------------------------------------- REF-002


def test_ref002_sessions_after_expiry_are_not_covered() -> None:
    records = clean_records()
    referral(records)["valid_until"] = date(2026, 3, 1)
    findings = audit(records)
    assert ids(findings, "REF-002") == {"S-3", "S-4"}
    hit = next(f for f in findings if f["rule_id"] == "REF-002" and f["entity_id"] == "S-3")
    assert hit["entity_type"] == "session"
    assert hit["client_id"] == "CL-1"
    assert "Session S-3" in hit["message"]
    assert ids(findings, "REF-001") == set()


def test_ref002_session_of_a_missing_client_is_not_covered() -> None:
    records = clean_records()
    records["sessions"].append(
        {**find(records, "sessions", session_id="S-3"), "session_id": "S-9", "client_id": "CL-404"}
    )
    findings = audit(records)
    hit = only(findings, "REF-002")
    assert hit["entity_id"] == "S-9"
    assert hit["practice_id"] is None
    assert hit["client_id"] is None
    assert ids(findings, "REF-001") == set()


def test_ref002_session_before_referral_date() -> None:
    records = clean_records()
    referral(records)["referral_date"] = date(2026, 1, 15)
    assert ids(audit(records), "REF-002") == {"S-1"}


def test_ref002_expiry_day_is_covered() -> None:
    records = clean_records()
    referral(records)["valid_until"] = date(2026, 3, 30)
    assert ids(audit(records), "REF-002") == set()


def test_ref002_default_validity_when_valid_until_is_null() -> None:
    records = clean_records()
    # 2025-12-20 + 90 days = 2026-03-20: S-4 (03-30) falls after the expiry.
    referral(records)["referral_date"] = date(2025, 12, 20)
    referral(records)["valid_until"] = None
    assert ids(audit(records), "REF-002") == {"S-4"}


def test_ref002_only_completed_sessions_are_judged() -> None:
    records = clean_records()
    referral(records)["valid_until"] = date(2026, 3, 1)
    find(records, "sessions", session_id="S-4")["status"] = "no_show"
    assert ids(audit(records), "REF-002") == {"S-3"}


def test_ref002_any_referral_of_the_client_may_cover() -> None:
    records = clean_records()
    referral(records)["valid_until"] = date(2026, 3, 1)
    records["referrals"].append(
        {
            **referral(records),
            "referral_id": "RF-2",
            "referral_date": date(2026, 3, 20),
            "valid_until": None,
        }
    )
    records["referral_diagnoses"].append({"referral_id": "RF-2", "seq": 1, "icd10_code": "M17.11"})
    assert ids(audit(records), "REF-002") == {"S-3"}


# ---------------------------------------------------------------- REF-003


def test_ref003_referrer_credential_not_allowed() -> None:
    records = clean_records()
    provider(records)["credential"] = "DC"
    findings = audit(records)
    hit = only(findings, "REF-003")
    assert hit["entity_id"] == "RF-1"
    assert hit["entity_type"] == "referral"
    assert hit["practice_id"] == "PR-1"
    assert "Referral RF-1" in hit["message"]


def test_ref003_credential_compares_ignoring_case_and_spaces() -> None:
    records = clean_records()
    provider(records)["credential"] = " dpm "
    assert ids(audit(records), "REF-003") == set()


def test_ref003_and_ref005_missing_provider_row() -> None:
    records = clean_records()
    referral(records)["provider_id"] = "PV-404"
    findings = audit(records)
    assert ids(findings, "REF-003") == {"RF-1"}
    assert ids(findings, "REF-005") == {"RF-1"}
    # An unknown referrer is not shown to be an NP or PA: REF-004 does not apply.
    assert ids(findings, "REF-004") == set()


# ---------------------------------------------------------------- REF-004


@pytest.mark.parametrize("credential", ["NP", "pa"])
def test_ref004_np_or_pa_without_supervisor(credential: str) -> None:
    records = clean_records()
    provider(records)["credential"] = credential
    findings = audit(records)
    hit = only(findings, "REF-004")
    assert hit["entity_id"] == "RF-1"
    assert "Referral RF-1" in hit["message"]
    assert ids(findings, "REF-003") == set()


def test_ref004_supervisor_md_is_enough() -> None:
    records = clean_records()
    provider(records)["credential"] = "NP"
    add_provider(records, "DO")
    referral(records)["supervising_provider_id"] = "PV-2"
    assert ids(audit(records), "REF-004") == set()


def test_ref004_supervisor_not_md_or_do() -> None:
    records = clean_records()
    provider(records)["credential"] = "PA"
    add_provider(records, "NP")
    referral(records)["supervising_provider_id"] = "PV-2"
    assert ids(audit(records), "REF-004") == {"RF-1"}


def test_ref004_supervisor_missing_from_provider_records() -> None:
    records = clean_records()
    provider(records)["credential"] = "NP"
    referral(records)["supervising_provider_id"] = "PV-404"
    assert ids(audit(records), "REF-004") == {"RF-1"}


def test_ref004_md_referrer_needs_no_supervisor() -> None:
    records = clean_records()
    add_provider(records, "PT")
    referral(records)["supervising_provider_id"] = "PV-2"
    assert ids(audit(records), "REF-004") == set()


# ---------------------------------------------------------------- REF-005


@pytest.mark.parametrize("npi", [None, "1456789010", "145678901", "3456789012", "14567890AB"])
def test_ref005_npi_missing_or_invalid(npi: str | None) -> None:
    records = clean_records()
    provider(records)["npi"] = npi
    findings = audit(records)
    hit = only(findings, "REF-005")
    assert hit["entity_id"] == "RF-1"
    assert "Referral RF-1" in hit["message"]


def test_ref005_npi_with_surrounding_spaces_is_read_trimmed() -> None:
    records = clean_records()
    provider(records)["npi"] = f"  {NPI_PROVIDER_2} "
    assert ids(audit(records), "REF-005") == set()


# ---------------------------------------------------------------- REF-006


def test_ref006_referral_not_signed() -> None:
    records = clean_records()
    referral(records)["signed_on"] = None
    hit = only(audit(records), "REF-006")
    assert hit["entity_id"] == "RF-1"
    assert hit["message"] == "Referral RF-1 is not signed."


def test_ref006_unreadable_signature_date_is_missing() -> None:
    records = clean_records()
    referral(records)["signed_on"] = "someday"
    assert ids(audit(records), "REF-006") == {"RF-1"}


# ---------------------------------------------------------------- REF-007


@pytest.mark.parametrize(
    "services", ["Therapeutic exercise", "medicalexercise program", "METS conditioning"]
)
def test_ref007_services_do_not_name_medical_exercise(services: str) -> None:
    records = clean_records()
    referral(records)["services_requested"] = services
    hit = only(audit(records), "REF-007")
    assert hit["entity_id"] == "RF-1"
    assert hit["severity"] == RULES["REF-007"].severity
    assert "Referral RF-1" in hit["message"]


@pytest.mark.parametrize(
    "services", ["MEDICAL   EXERCISE 2x/week", "Evaluate and start MET", "mes sessions"]
)
def test_ref007_patterns_match_any_case(services: str) -> None:
    records = clean_records()
    referral(records)["services_requested"] = services
    assert ids(audit(records), "REF-007") == set()


def test_ref007_blank_services_fail() -> None:
    records = clean_records()
    referral(records)["services_requested"] = "   "
    assert ids(audit(records), "REF-007") == {"RF-1"}


# ---------------------------------------------------------------- REF-008


def test_ref008_referral_lists_no_diagnosis() -> None:
    records = clean_records()
    records["referral_diagnoses"] = []
    hit = only(audit(records), "REF-008")
    assert hit["entity_id"] == "RF-1"
    assert "Referral RF-1" in hit["message"]


def test_ref008_blank_diagnosis_code_is_no_diagnosis() -> None:
    records = clean_records()
    records["referral_diagnoses"][0]["icd10_code"] = "  "
    assert ids(audit(records), "REF-008") == {"RF-1"}


# ---------------------------------------------------------------- REF-009


def test_ref009_referral_expiring_soon() -> None:
    records = clean_records()
    referral(records)["valid_until"] = date(2026, 4, 10)
    findings = audit(records)
    hit = only(findings, "REF-009")
    assert hit["entity_id"] == "RF-1"
    assert hit["severity"] == RULES["REF-009"].severity
    assert hit["due_date"] == "2026-04-10"
    assert "Referral RF-1" in hit["message"]
    assert "2026-04-10" in hit["message"]


def test_ref009_default_validity_gives_the_due_date() -> None:
    records = clean_records()
    referral(records)["valid_until"] = None  # 2026-01-05 + 90 days = 2026-04-05
    hit = only(audit(records), "REF-009")
    assert hit["due_date"] == "2026-04-05"


@pytest.mark.parametrize(
    ("valid_until", "expected"),
    [
        (date(2026, 3, 31), {"RF-1"}),  # expires on D itself
        (date(2026, 4, 14), {"RF-1"}),  # D + 14
        (date(2026, 4, 15), set()),  # D + 15
    ],
)
def test_ref009_window_edges(valid_until: date, expected: set[str]) -> None:
    records = clean_records()
    referral(records)["valid_until"] = valid_until
    assert ids(audit(records), "REF-009") == expected


def test_ref009_silent_when_a_referral_covers_the_next_day() -> None:
    records = clean_records()
    referral(records)["valid_until"] = date(2026, 4, 10)
    records["referrals"].append(
        {
            **referral(records),
            "referral_id": "RF-2",
            "referral_date": date(2026, 3, 25),
            "valid_until": date(2026, 9, 1),
        }
    )
    records["referral_diagnoses"].append({"referral_id": "RF-2", "seq": 1, "icd10_code": "M17.11"})
    assert ids(audit(records), "REF-009") == set()


def test_ref009_renewal_dated_after_as_of_does_not_count() -> None:
    records = clean_records()
    referral(records)["valid_until"] = date(2026, 4, 10)
    records["referrals"].append(
        {
            **referral(records),
            "referral_id": "RF-2",
            "referral_date": date(2026, 4, 5),
            "valid_until": date(2026, 9, 1),
        }
    )
    records["referral_diagnoses"].append({"referral_id": "RF-2", "seq": 1, "icd10_code": "M17.11"})
    assert ids(audit(records), "REF-009") == {"RF-1"}


def test_ref009_only_for_active_clients() -> None:
    records = clean_records()
    referral(records)["valid_until"] = date(2026, 4, 10)
    # The last completed session is then 03-12, 19 days before D: not active.
    find(records, "sessions", session_id="S-4")["status"] = "cancelled"
    assert ids(audit(records), "REF-009") == set()
