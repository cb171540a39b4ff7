"""CLM family (claim follow-up): each rule fires on a record built for it, and only there.

The clean records (tests/builders.py) hold claims CLM-1 and CLM-2 (paid), CLM-3
(submitted 2026-03-13, 18 days before the audit date) and the draft CLM-4, all
on policy POL-1 (payer Acme Health). The audit date is 2026-03-31.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from builders import Records, audit, by_id, clean_records, find, ids

from metaudit.spec.rulebook import RULES
from metaudit.spec.settings import Settings


def claim(records: Records, claim_id: str) -> dict[str, Any]:
    return find(records, "claims", claim_id=claim_id)


def deny(records: Records, claim_id: str, denied_on: Any, appealed_on: Any = None) -> None:
    row = claim(records, claim_id)
    row.update(status="denied", denied_on=denied_on, appealed_on=appealed_on, paid_amount=None)


def test_clean_records_raise_no_claim_follow_up_finding() -> None:
    findings = audit(clean_records())
    assert [f for f in findings if f["rule_id"].startswith("CLM-")] == []


# ------------------------------------------------------------------ CLM-001


def test_clm001_denied_and_not_appealed_in_time() -> None:
    records = clean_records()
    deny(records, "CLM-1", date(2026, 2, 28))  # 31 days before D
    deny(records, "CLM-2", date(2026, 3, 1))  # 30 days: not yet
    deny(records, "CLM-3", date(2026, 1, 20), appealed_on=date(2026, 2, 1))  # appealed
    findings = audit(records)
    assert ids(findings, "CLM-001") == {"CLM-1"}
    hit = by_id(findings, "CLM-001")["CLM-1"]
    assert hit["severity"] == RULES["CLM-001"].severity and hit["entity_type"] == "claim"
    assert hit["practice_id"] == "PR-1" and hit["client_id"] == "CL-1"
    assert hit["due_date"] is None
    assert "Claim CLM-1" in hit["message"]


def test_clm001_needs_a_readable_denial_date_and_denied_status() -> None:
    records = clean_records()
    deny(records, "CLM-1", None)  # denied, but when is unknown: nothing proven
    deny(records, "CLM-2", "last month")  # unreadable: DQ-003, nothing proven
    # An appeal already recorded in the status: not "denied".
    claim(records, "CLM-3").update(status="appealed", denied_on=date(2026, 1, 20))
    findings = audit(records)
    assert ids(findings, "CLM-001") == set()
    assert "claims:CLM-2" in ids(findings, "DQ-003")


def test_clm001_appeal_window_is_a_payer_setting() -> None:
    records = clean_records()
    deny(records, "CLM-2", date(2026, 3, 20))  # 11 days
    assert ids(audit(records), "CLM-001") == set()
    settings = Settings.from_dict({"payers": {"Acme Health": {"denied_appeal_days": 10}}})
    assert ids(audit(records, settings=settings), "CLM-001") == {"CLM-2"}


def test_clm001_void_claim_is_left_out() -> None:
    records = clean_records()
    deny(records, "CLM-1", date(2026, 1, 20))
    claim(records, "CLM-1")["status"] = "void"
    assert ids(audit(records), "CLM-001") == set()


# ------------------------------------------------------------------ CLM-002


def test_clm002_no_answer_from_the_payer() -> None:
    records = clean_records()
    claim(records, "CLM-3")["submitted_on"] = date(2026, 2, 28)  # 31 days before D
    claim(records, "CLM-2").update(status="submitted", paid_amount=None)
    claim(records, "CLM-2")["submitted_on"] = date(2026, 3, 1)  # 30 days: not yet
    findings = audit(records)
    assert ids(findings, "CLM-002") == {"CLM-3"}
    hit = by_id(findings, "CLM-002")["CLM-3"]
    assert hit["severity"] == RULES["CLM-002"].severity and hit["entity_type"] == "claim"
    assert hit["due_date"] is None  # reading 17: CLM-002 has no due date
    assert "Claim CLM-3" in hit["message"]


def test_clm002_only_submitted_claims_with_a_readable_date() -> None:
    records = clean_records()
    claim(records, "CLM-1")["submitted_on"] = date(2025, 12, 1)  # paid: answered
    claim(records, "CLM-3")["submitted_on"] = None  # no date: nothing proven
    claim(records, "CLM-4")["submitted_on"] = date(2026, 1, 1)  # still a draft
    assert ids(audit(records), "CLM-002") == set()


def test_clm002_window_is_a_payer_setting() -> None:
    settings = Settings.from_dict({"payers": {"acme health": {"unanswered_claim_days": 10}}})
    findings = audit(clean_records(), settings=settings)
    assert ids(findings, "CLM-002") == {"CLM-3"}  # 18 days > 10
