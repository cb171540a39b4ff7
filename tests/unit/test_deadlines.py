"""Timely-filing deadlines of draft claims: COD-009's inputs, on records built for each case."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from builders import AS_OF, audit_view, clean_records, find, write_sqlite

from metaudit.check.deadlines import (
    DEADLINES_FILE,
    filing_deadlines,
    write_deadlines,
)
from metaudit.check.engine import run_check
from metaudit.results.digest import FilingDeadline, read_deadlines
from metaudit.spec.settings import Settings


def deadlines(records: Any) -> list[dict[str, Any]]:
    return filing_deadlines(audit_view(records), Settings.load(None)).to_dict("records")


def test_a_draft_not_submitted_is_due_its_earliest_service_date_plus_the_policy_limit():
    # CLM-4: draft, lines on 2026-03-30, policy POL-1 allows 90 days; $100 + $50.
    assert deadlines(clean_records()) == [
        {
            "claim_id": "CLM-4",
            "practice_id": "PR-1",
            "client_id": "CL-1",
            "earliest_service_date": "2026-03-30",
            "timely_filing_days": 90,
            "deadline": "2026-06-28",
            "charges": 15000,
        }
    ]


def test_the_policy_limit_wins_and_without_one_the_payer_setting_counts():
    records = clean_records()
    find(records, "insurance_policies", policy_id="POL-1")["timely_filing_days"] = 20
    (row,) = deadlines(records)
    assert (row["timely_filing_days"], row["deadline"]) == (20, "2026-04-19")
    find(records, "insurance_policies", policy_id="POL-1")["timely_filing_days"] = None
    (row,) = deadlines(records)
    assert (row["timely_filing_days"], row["deadline"]) == (90, "2026-06-28")


def test_the_earliest_line_of_the_claim_starts_the_clock():
    records = clean_records()
    find(records, "claim_lines", claim_id="CLM-4", line_no=2)["service_date"] = date(2026, 3, 1)
    (row,) = deadlines(records)
    assert (row["earliest_service_date"], row["deadline"]) == ("2026-03-01", "2026-05-30")


def test_submitted_paid_and_void_claims_and_drafts_with_a_submission_date_have_none():
    records = clean_records()
    find(records, "claims", claim_id="CLM-4")["submitted_on"] = date(2026, 3, 31)
    assert deadlines(records) == []
    records = clean_records()
    find(records, "claims", claim_id="CLM-4")["status"] = "void"
    assert deadlines(records) == []
    # The other claims (paid, submitted) never had one.
    records = clean_records()
    find(records, "claims", claim_id="CLM-3")["status"] = "draft"
    find(records, "claims", claim_id="CLM-3")["submitted_on"] = None
    assert [r["claim_id"] for r in deadlines(records)] == ["CLM-3", "CLM-4"]


def test_the_check_gives_the_same_deadlines_as_cod_009s_inputs(tmp_path: Path):
    records = clean_records()
    result = run_check(str(write_sqlite(records, tmp_path / "src.sqlite")), AS_OF)
    assert result.deadlines is not None
    assert result.deadlines.to_dict("records") == deadlines(records)


def test_the_file_reads_back_with_exact_cents(tmp_path: Path):
    frame = filing_deadlines(audit_view(clean_records()), Settings.load(None))
    write_deadlines(frame, tmp_path)
    assert (tmp_path / DEADLINES_FILE).read_text(encoding="utf-8") == (
        '{"claim_id": "CLM-4", "practice_id": "PR-1", "client_id": "CL-1", '
        '"earliest_service_date": "2026-03-30", "timely_filing_days": 90, '
        '"deadline": "2026-06-28", "charges": 150.00}\n'
    )
    assert read_deadlines(tmp_path / DEADLINES_FILE) == [
        FilingDeadline("CLM-4", "CL-1", "2026-03-30", 90, "2026-06-28", 15000)
    ]
