"""ELG family (coverage and medical necessity): each rule fires on a record built for it.

The clean records (tests/builders.py): policy POL-1 of client CL-1 is a
commercial, in-network plan requiring prior authorization; eligibility check
EC-1 (active) on 2026-01-05; authorization AU-1 covers 2026-01-01..06-30 for 40
visits; claims CLM-1..CLM-4 carry lines L-1..L-8, two per service date
(01-12, 02-10, 03-12, 03-30); PT discharge RD-1 on 2025-12-15; condition CO-1
post-surgical; initial assessment AS-1 on 01-10. The audit date is 2026-03-31.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from builders import (
    Finding,
    Records,
    add_client_without_sessions,
    audit,
    clean_records,
    find,
    ids,
    only,
)

from metaudit.spec.rulebook import RULES

ALL_CLAIMS = {"CLM-1", "CLM-2", "CLM-3", "CLM-4"}
ALL_LINES = {f"L-{n}" for n in range(1, 9)}


def of(findings: list[Finding], rule_id: str, entity_id: str) -> Finding:
    return next(f for f in findings if f["rule_id"] == rule_id and f["entity_id"] == entity_id)


def policy(records: Records, policy_id: str = "POL-1") -> dict[str, Any]:
    return find(records, "insurance_policies", policy_id=policy_id)


def authorization(records: Records) -> dict[str, Any]:
    return find(records, "authorizations", authorization_id="AU-1")


def add_policy(records: Records, **changes: Any) -> None:
    """A second policy POL-2 of CL-1 (no authorization of its own)."""
    records["insurance_policies"].append({**policy(records), "policy_id": "POL-2", **changes})
    records["eligibility_checks"].append(
        {**records["eligibility_checks"][0], "check_id": "EC-2", "policy_id": "POL-2"}
    )


@pytest.mark.parametrize("rule_id", [f"ELG-00{n}" for n in range(1, 10)])
def test_clean_records_raise_no_elg_finding(clean_findings: list[Finding], rule_id: str) -> None:
    assert ids(clean_findings, rule_id) == set()


# ---------------------------------------------------------------- ELG-001


@pytest.mark.parametrize("plan_type", ["Medicare_Advantage", "managed_medicaid"])
def test_elg001_claims_to_medicare_or_medicaid(plan_type: str) -> None:
    records = clean_records()
    policy(records)["plan_type"] = plan_type
    findings = audit(records)
    assert ids(findings, "ELG-001") == ALL_CLAIMS
    hit = of(findings, "ELG-001", "CLM-4")  # drafts are live claims
    assert hit["entity_type"] == "claim"
    assert hit["practice_id"] == "PR-1"
    assert hit["client_id"] == "CL-1"
    assert "Claim CLM-4" in hit["message"]


def test_elg001_void_claims_are_left_out() -> None:
    records = clean_records()
    policy(records)["plan_type"] = "medicaid"
    find(records, "claims", claim_id="CLM-1")["status"] = "void"
    assert ids(audit(records), "ELG-001") == ALL_CLAIMS - {"CLM-1"}


def test_elg001_unreadable_plan_type_proves_nothing() -> None:
    records = clean_records()
    policy(records)["plan_type"] = "state plan"
    findings = audit(records)
    assert ids(findings, "ELG-001") == set()
    assert any(f["rule_id"] == "DQ-003" for f in findings)


def test_elg001_claim_dated_after_as_of_is_ignored() -> None:
    records = clean_records()
    policy(records)["plan_type"] = "medicare"
    for line in records["claim_lines"]:
        if line["claim_id"] == "CLM-4":
            line["service_date"] = date(2026, 4, 2)
    assert ids(audit(records), "ELG-001") == ALL_CLAIMS - {"CLM-4"}


# ---------------------------------------------------------------- ELG-002


def test_elg002_eligibility_checked_after_first_service() -> None:
    records = clean_records()
    records["eligibility_checks"][0]["checked_on"] = date(2026, 1, 20)
    findings = audit(records)
    hit = only(findings, "ELG-002")
    assert hit["entity_id"] == "POL-1"
    assert hit["entity_type"] == "policy"
    assert hit["practice_id"] == "PR-1"
    assert hit["client_id"] == "CL-1"
    assert "Policy POL-1" in hit["message"]


def test_elg002_check_on_the_first_service_date_is_enough() -> None:
    records = clean_records()
    records["eligibility_checks"][0]["checked_on"] = date(2026, 1, 12)
    assert ids(audit(records), "ELG-002") == set()


@pytest.mark.parametrize("status", ["inactive", "unknown", "pending"])
def test_elg002_only_an_active_check_counts(status: str) -> None:
    records = clean_records()
    records["eligibility_checks"][0]["status"] = status
    assert ids(audit(records), "ELG-002") == {"POL-1"}


def test_elg002_no_check_at_all() -> None:
    records = clean_records()
    records["eligibility_checks"] = []
    assert ids(audit(records), "ELG-002") == {"POL-1"}


def test_elg002_earliest_service_date_counts_live_claims_only() -> None:
    records = clean_records()
    records["eligibility_checks"][0]["checked_on"] = date(2026, 1, 20)
    find(records, "claims", claim_id="CLM-1")["status"] = "void"  # first live date: 02-10
    assert ids(audit(records), "ELG-002") == set()


def test_elg002_policy_without_live_claims_is_not_judged() -> None:
    records = clean_records()
    add_policy(records)
    records["eligibility_checks"] = [
        c for c in records["eligibility_checks"] if c["check_id"] != "EC-2"
    ]
    assert ids(audit(records), "ELG-002") == set()


def test_elg002_claim_without_lines_needs_only_an_active_check() -> None:
    records = clean_records()
    add_policy(records, requires_preauth=False)
    records["claims"].append(
        {**find(records, "claims", claim_id="CLM-4"), "claim_id": "CLM-5", "policy_id": "POL-2"}
    )
    assert ids(audit(records), "ELG-002") == set()
    records["eligibility_checks"] = [
        c for c in records["eligibility_checks"] if c["check_id"] != "EC-2"
    ]
    assert ids(audit(records), "ELG-002") == {"POL-2"}


# ---------------------------------------------------------------- ELG-003


def test_elg003_out_of_network_without_benefits() -> None:
    records = clean_records()
    policy(records)["network_status"] = "out_of_network"
    findings = audit(records)
    assert ids(findings, "ELG-003") == ALL_CLAIMS
    assert "Claim CLM-2" in of(findings, "ELG-003", "CLM-2")["message"]


def test_elg003_out_of_network_with_benefits_is_fine() -> None:
    records = clean_records()
    policy(records)["network_status"] = "out_of_network"
    policy(records)["oon_benefits"] = True
    assert ids(audit(records), "ELG-003") == set()


def test_elg003_unknown_benefits_prove_nothing() -> None:
    records = clean_records()
    policy(records)["network_status"] = "OUT_OF_NETWORK"
    policy(records)["oon_benefits"] = "maybe"
    assert ids(audit(records), "ELG-003") == set()


# ---------------------------------------------------------------- ELG-004


def test_elg004_lines_before_the_authorization_starts() -> None:
    records = clean_records()
    authorization(records)["start_date"] = date(2026, 2, 1)
    findings = audit(records)
    assert ids(findings, "ELG-004") == {"L-1", "L-2"}
    hit = of(findings, "ELG-004", "L-1")
    assert hit["entity_type"] == "claim_line"
    assert hit["client_id"] == "CL-1"
    assert "Claim line L-1" in hit["message"]


def test_elg004_no_authorization_at_all() -> None:
    records = clean_records()
    records["authorizations"] = []
    assert ids(audit(records), "ELG-004") == ALL_LINES


def test_elg004_not_when_the_policy_needs_no_authorization() -> None:
    records = clean_records()
    records["authorizations"] = []
    policy(records)["requires_preauth"] = False
    assert ids(audit(records), "ELG-004") == set()


def test_elg004_another_policys_authorization_does_not_count() -> None:
    records = clean_records()
    add_policy(records)
    authorization(records)["policy_id"] = "POL-2"
    assert ids(audit(records), "ELG-004") == ALL_LINES


def test_elg004_unknown_preauth_requirement_proves_nothing() -> None:
    records = clean_records()
    records["authorizations"] = []
    policy(records)["requires_preauth"] = "sometimes"
    assert ids(audit(records), "ELG-004") == set()


def test_elg004_window_edges_are_inclusive() -> None:
    records = clean_records()
    authorization(records)["start_date"] = date(2026, 1, 12)
    authorization(records)["end_date"] = date(2026, 3, 30)
    assert ids(audit(records), "ELG-004") == set()


# ---------------------------------------------------------------- ELG-005


def test_elg005_visits_beyond_the_approved_number() -> None:
    records = clean_records()
    authorization(records)["approved_visits"] = 2
    findings = audit(records)
    # Distinct dates 01-12, 02-10 are visits 1 and 2; every line on 03-12 and 03-30 is beyond.
    assert ids(findings, "ELG-005") == {"L-5", "L-6", "L-7", "L-8"}
    hit = of(findings, "ELG-005", "L-7")
    assert hit["entity_type"] == "claim_line"
    assert "Claim line L-7" in hit["message"]


def test_elg005_zero_approved_visits_flags_every_line_in_the_window() -> None:
    records = clean_records()
    authorization(records)["approved_visits"] = 0
    authorization(records)["start_date"] = date(2026, 2, 1)
    assert ids(audit(records), "ELG-005") == {"L-3", "L-4", "L-5", "L-6", "L-7", "L-8"}


def test_elg005_void_claims_and_other_policies_do_not_use_visits() -> None:
    records = clean_records()
    authorization(records)["approved_visits"] = 2
    find(records, "claims", claim_id="CLM-1")["status"] = "void"
    add_policy(records, requires_preauth=False)
    find(records, "claims", claim_id="CLM-2")["policy_id"] = "POL-2"
    # POL-1's live visits in the window: 03-12 (1), 03-30 (2).
    assert ids(audit(records), "ELG-005") == set()


def test_elg005_unknown_approved_visits_prove_nothing() -> None:
    records = clean_records()
    authorization(records)["approved_visits"] = "lots"
    assert ids(audit(records), "ELG-005") == set()


# ---------------------------------------------------------------- ELG-006


def test_elg006_few_visits_left() -> None:
    records = clean_records()
    authorization(records)["approved_visits"] = 6  # 4 used, 2 left
    findings = audit(records)
    hit = only(findings, "ELG-006")
    assert hit["entity_id"] == "AU-1"
    assert hit["entity_type"] == "authorization"
    assert hit["severity"] == RULES["ELG-006"].severity
    assert hit["practice_id"] == "PR-1"
    assert hit["client_id"] == "CL-1"
    assert hit["due_date"] == "2026-06-30"
    assert "Authorization AU-1" in hit["message"]


def test_elg006_three_visits_left_is_no_notice() -> None:
    records = clean_records()
    authorization(records)["approved_visits"] = 7
    assert ids(audit(records), "ELG-006") == set()


def test_elg006_visits_left_may_be_negative() -> None:
    records = clean_records()
    authorization(records)["approved_visits"] = 3
    findings = audit(records)
    assert only(findings, "ELG-006")["due_date"] == "2026-06-30"
    assert ids(findings, "ELG-005") == {"L-7", "L-8"}


@pytest.mark.parametrize(
    ("end_date", "expected"),
    [(date(2026, 3, 31), {"AU-1"}), (date(2026, 4, 14), {"AU-1"}), (date(2026, 4, 15), set())],
)
def test_elg006_authorization_ending_soon(end_date: date, expected: set[str]) -> None:
    records = clean_records()
    authorization(records)["end_date"] = end_date
    findings = audit(records)
    assert ids(findings, "ELG-006") == expected
    if expected:
        assert only(findings, "ELG-006")["due_date"] == end_date.isoformat()


def test_elg006_only_for_active_clients() -> None:
    records = clean_records()
    authorization(records)["approved_visits"] = 6
    find(records, "sessions", session_id="S-4")["status"] = "cancelled"  # last: 03-12
    assert ids(audit(records), "ELG-006") == set()


def test_elg006_only_an_authorization_covering_as_of() -> None:
    records = clean_records()
    authorization(records)["end_date"] = date(2026, 3, 30)
    assert ids(audit(records), "ELG-006") == set()


# ---------------------------------------------------------------- ELG-007


def test_elg007_discharge_after_the_first_session() -> None:
    records = clean_records()
    records["rehab_discharges"][0]["discharge_date"] = date(2026, 1, 13)
    findings = audit(records)
    hit = only(findings, "ELG-007")
    assert hit["entity_id"] == "CL-1"
    assert hit["entity_type"] == "client"
    assert hit["practice_id"] == "PR-1"
    assert "Client CL-1" in hit["message"]


@pytest.mark.parametrize(
    ("discharge_date", "expected"),
    [(date(2026, 1, 12), set()), (date(2026, 4, 1), {"CL-1"})],  # first session; after D
)
def test_elg007_discharge_date_edges(discharge_date: date, expected: set[str]) -> None:
    records = clean_records()
    records["rehab_discharges"][0]["discharge_date"] = discharge_date
    assert ids(audit(records), "ELG-007") == expected


@pytest.mark.parametrize(
    ("discipline", "expected"), [("OT", set()), (" dc ", set()), ("XX", {"CL-1"})]
)
def test_elg007_discipline(discipline: str, expected: set[str]) -> None:
    records = clean_records()
    records["rehab_discharges"][0]["discipline"] = discipline
    assert ids(audit(records), "ELG-007") == expected


def test_elg007_not_for_a_client_without_sessions() -> None:
    records = clean_records()
    add_client_without_sessions(records)
    assert ids(audit(records), "ELG-007") == set()


# ---------------------------------------------------------------- ELG-008


def test_elg008_no_qualifying_condition() -> None:
    records = clean_records()
    records["conditions"][0]["category"] = "other"
    hit = only(audit(records), "ELG-008")
    assert hit["entity_id"] == "CL-1"
    assert hit["client_id"] == "CL-1"
    assert "Client CL-1" in hit["message"]


def test_elg008_applies_to_every_client() -> None:
    records = clean_records()
    add_client_without_sessions(records)
    records["conditions"].append(
        {
            **records["conditions"][0],
            "condition_id": "CO-2",
            "client_id": "CL-2",
            "category": "Chronic",
        }
    )
    records["conditions"].append(
        {
            **records["conditions"][0],
            "condition_id": "CO-3",
            "client_id": "CL-2",
            "category": "other",
        }
    )
    assert ids(audit(records), "ELG-008") == set()
    records["conditions"] = [c for c in records["conditions"] if c["condition_id"] != "CO-2"]
    assert ids(audit(records), "ELG-008") == {"CL-2"}


def test_elg008_unreadable_category_does_not_qualify() -> None:
    records = clean_records()
    records["conditions"][0]["category"] = "surgical"
    assert ids(audit(records), "ELG-008") == {"CL-1"}


# ---------------------------------------------------------------- ELG-009


@pytest.mark.parametrize("deficits", [None, "   "])
def test_elg009_initial_assessment_without_functional_deficits(deficits: str | None) -> None:
    records = clean_records()
    find(records, "assessments", assessment_id="AS-1")["functional_deficits"] = deficits
    hit = only(audit(records), "ELG-009")
    assert hit["entity_id"] == "AS-1"
    assert hit["entity_type"] == "assessment"
    assert hit["client_id"] == "CL-1"
    assert "Assessment AS-1" in hit["message"]


def test_elg009_reassessments_are_not_judged() -> None:
    records = clean_records()
    find(records, "assessments", assessment_id="AS-2")["functional_deficits"] = None
    assert ids(audit(records), "ELG-009") == set()


def test_elg009_the_initial_assessment_is_the_earliest_smallest_id_on_ties() -> None:
    records = clean_records()
    records["assessments"].append(
        {
            **find(records, "assessments", assessment_id="AS-1"),
            "assessment_id": "AS-0",
            "functional_deficits": None,
        }
    )
    # Same date as AS-1: the tie goes to the smaller id, AS-0.
    assert ids(audit(records), "ELG-009") == {"AS-0"}
    find(records, "assessments", assessment_id="AS-0")["assessed_on"] = date(2026, 1, 11)
    assert ids(audit(records), "ELG-009") == set()


def test_elg009_applies_without_sessions() -> None:
    records = clean_records()
    add_client_without_sessions(records)
    records["assessments"].append(
        {
            **find(records, "assessments", assessment_id="AS-1"),
            "assessment_id": "AS-9",
            "client_id": "CL-2",
            "functional_deficits": None,
        }
    )
    assert ids(audit(records), "ELG-009") == {"AS-9"}
