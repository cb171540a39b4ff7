"""Typing and the data-contract rules DQ-001..DQ-003 on records built for them."""

from __future__ import annotations

from builders import audit, clean_records, find


def _dq(records, rule_id):
    return {f["entity_id"]: f for f in audit(records) if f["rule_id"] == rule_id}


def test_clean_records_have_no_findings_at_all():
    assert audit(clean_records()) == []


def test_dq001_fires_once_per_duplicated_key_and_rules_see_the_first_row():
    records = clean_records()
    duplicate = dict(find(records, "sessions", session_id="S-2"))
    duplicate["client_response"] = None  # would fail DOC-008 if the rules saw it
    records["sessions"].append(duplicate)
    records["sessions"].append(dict(duplicate))
    findings = audit(records)
    dq1 = [f for f in findings if f["rule_id"] == "DQ-001"]
    assert [(f["entity_type"], f["entity_id"], f["practice_id"], f["client_id"]) for f in dq1] == [
        ("row", "sessions:S-2", "PR-1", "CL-1")
    ]
    assert "sessions:S-2" in dq1[0]["message"]
    assert not [f for f in findings if f["rule_id"] == "DOC-008"]


def test_dq001_silent_on_distinct_keys():
    assert not _dq(clean_records(), "DQ-001")


def test_dq002_names_a_dangling_link_and_attributes_no_client():
    records = clean_records()
    find(records, "progress_reports", report_id="PRR-1")["provider_id"] = "PV-404"
    session = dict(
        find(records, "sessions", session_id="S-1"), session_id="S-9", client_id="CL-404"
    )
    records["sessions"].append(session)
    found = _dq(records, "DQ-002")
    assert set(found) == {"progress_reports:PRR-1", "sessions:S-9"}
    assert found["progress_reports:PRR-1"]["practice_id"] == "PR-1"
    assert "provider_id" in found["progress_reports:PRR-1"]["message"]
    # A row whose client is missing belongs to no practice and no client (reading 8).
    assert found["sessions:S-9"]["practice_id"] is None
    assert found["sessions:S-9"]["client_id"] is None


def test_dq002_null_required_link_and_keyless_child_row_id():
    records = clean_records()
    find(records, "referrals", referral_id="RF-1")["provider_id"] = None
    records["session_services"].append({"session_id": "S-404", "cpt_code": "97110", "minutes": 15})
    found = _dq(records, "DQ-002")
    assert {"referrals:RF-1", "session_services:S-404"} <= set(found)
    assert not _dq(records, "DQ-003").get("referrals:RF-1")


def test_dq002_silent_when_links_resolve():
    assert not _dq(clean_records(), "DQ-002")


def test_dq003_names_every_bad_column_of_a_row():
    records = clean_records()
    session = find(records, "sessions", session_id="S-2")
    session["timed_minutes"] = "forty"
    session["status"] = "done"
    session["client_response"] = None  # null ok: not a DQ problem
    claim = find(records, "claims", claim_id="CLM-1")
    claim["total_charge"] = "  "  # blank in a required column
    policy = find(records, "insurance_policies", policy_id="POL-1")
    policy["oon_benefits"] = "maybe"
    found = _dq(records, "DQ-003")
    assert set(found) == {"sessions:S-2", "claims:CLM-1", "insurance_policies:POL-1"}
    message = found["sessions:S-2"]["message"]
    assert "timed_minutes" in message and "status" in message
    assert "total_charge" in found["claims:CLM-1"]["message"]
    assert "oon_benefits" in found["insurance_policies:POL-1"]["message"]


def test_dq003_reads_every_boolean_spelling_and_timestamps_in_date_columns():
    records = clean_records()
    find(records, "staff", staff_id="ST-1")["active"] = "T"
    find(records, "insurance_policies", policy_id="POL-1")["oon_benefits"] = "false"
    find(records, "referrals", referral_id="RF-1")["signed_on"] = "2026-01-05T09:30:00"
    assert audit(records) == []


def test_undated_record_leaves_the_view_with_its_children():
    records = clean_records()
    find(records, "sessions", session_id="S-3")["session_date"] = "2026-02-30"
    findings = audit(records)
    by_rule = {(f["rule_id"], f["entity_id"]) for f in findings}
    assert ("DQ-003", "sessions:S-3") in by_rule
    # The session is gone from the view, so its claim lines have no session that day.
    assert ("COD-006", "L-5") in by_rule and ("COD-006", "L-6") in by_rule
    # Its exercise log left with it: no DOC-008 on a session that does not exist.
    assert not any(f["rule_id"] == "DOC-008" for f in findings)


def test_null_key_rows_are_reported_and_left_out():
    records = clean_records()
    records["goals"].append(
        {"goal_id": " ", "poe_id": "POE-1", "term": "short", "description": "x"}
    )
    found = _dq(records, "DQ-003")
    assert "goals:" in found
    assert "goal_id" in found["goals:"]["message"]
    assert not [f for f in audit(records) if f["rule_id"] == "DOC-007"]
