"""The engine on edge cases every family must survive: nothing to audit, one practice."""

from __future__ import annotations

from pathlib import Path

from builders import AS_OF, audit, clean_records, find, write_sqlite

from metaudit.check.engine import run_check


def test_an_empty_source_has_no_findings():
    assert audit({}) == []


def test_a_practice_filter_that_matches_nothing_has_no_findings(tmp_path: Path):
    records = clean_records()
    find(records, "referrals", referral_id="RF-1")["signed_on"] = None
    db = write_sqlite(records, tmp_path / "src.sqlite")
    assert run_check(db, as_of=AS_OF, practice_ids=["PR-9"]).findings == []


def test_before_any_record_exists_nothing_is_judged():
    # On an as-of date before the first record, the view holds only undated records.
    findings = audit(clean_records(), as_of=AS_OF.replace(year=2025, month=1, day=1))
    assert findings == []


def test_every_finding_carries_a_known_rule_and_a_plain_message():
    records = clean_records()
    find(records, "referrals", referral_id="RF-1")["signed_on"] = None
    for finding in audit(records):
        assert finding["message"].endswith(".")
        assert "Quigley" not in finding["message"] and "M17" not in finding["message"]
