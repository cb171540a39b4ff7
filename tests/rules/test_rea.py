"""Reassessment due dates (REA-001..REA-005) on records built for each rule.

The clean client CL-1 is assessed on 01-10 (initial AS-1), 02-09 (AS-2) and
03-11 (AS-3), has completed sessions on 01-12, 02-10, 03-12 and 03-30, and is
active on the as-of date 2026-03-31; its next reassessment is due 04-10.
Outcome measures: TUG 14.0 -> 12.5 -> 11.0 s, GRIP 20 -> 22 -> 24 kg.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from builders import AS_OF, Records, audit, clean_records, find

from metaudit.spec.rulebook import RULES

REA_RULES = [f"REA-{n:03d}" for n in range(1, 6)]


def _of(records: Records, rule_id: str, as_of: date = AS_OF) -> dict[str, dict[str, Any]]:
    """The findings of one rule, by entity id."""
    return {f["entity_id"]: f for f in audit(records, as_of) if f["rule_id"] == rule_id}


def _ids(records: Records, rule_id: str, as_of: date = AS_OF) -> set[str]:
    return set(_of(records, rule_id, as_of))


def _drop(records: Records, table: str, column: str, *values: str) -> None:
    records[table] = [row for row in records[table] if row[column] not in values]


def _measure(measure_id: str, assessment_id: str, instrument: str, value: Any) -> dict[str, Any]:
    return {
        "measure_id": measure_id,
        "assessment_id": assessment_id,
        "instrument": instrument,
        "value": value,
        "unit": None,
    }


def test_clean_records_raise_no_rea_finding() -> None:
    found = [f for f in audit(clean_records()) if f["rule_id"] in REA_RULES]
    assert found == []


# --- REA-001 -----------------------------------------------------------------------------------


def test_rea001_sessions_more_than_30_days_after_the_latest_assessment() -> None:
    records = clean_records()
    _drop(records, "assessments", "assessment_id", "AS-3")
    _drop(records, "outcome_measures", "assessment_id", "AS-3")
    found = _of(records, "REA-001")
    # S-3 (03-12) is 31 days after AS-2 (02-09); S-4 (03-30) 49 days.
    assert set(found) == {"S-3", "S-4"}
    assert found["S-3"]["severity"] == RULES["REA-001"].severity
    assert found["S-3"]["entity_type"] == "session"
    assert found["S-3"]["client_id"] == "CL-1"
    assert "S-3" in found["S-3"]["message"]


def test_rea001_exactly_30_days_is_in_time() -> None:
    records = clean_records()
    _drop(records, "assessments", "assessment_id", "AS-3")
    find(records, "sessions", session_id="S-3")["session_date"] = date(2026, 3, 11)
    assert _ids(records, "REA-001") == {"S-4"}


def test_rea001_an_assessment_on_the_session_day_counts() -> None:
    records = clean_records()
    find(records, "assessments", assessment_id="AS-3")["assessed_on"] = date(2026, 3, 12)
    assert _ids(records, "REA-001") == set()


def test_rea001_discharge_assessments_are_not_assessment_dates() -> None:
    records = clean_records()
    find(records, "assessments", assessment_id="AS-3")["kind"] = "discharge"
    assert _ids(records, "REA-001") == {"S-3", "S-4"}


def test_rea001_not_raised_when_no_assessment_precedes_the_session() -> None:
    records = clean_records()
    # AS-1 moves after S-1 (01-12): nothing precedes S-1 (DOC-002 speaks for that).
    find(records, "assessments", assessment_id="AS-1")["assessed_on"] = date(2026, 1, 13)
    assert _ids(records, "REA-001") == set()


def test_rea001_unreadable_kind_is_no_assessment_date() -> None:
    records = clean_records()
    find(records, "assessments", assessment_id="AS-3")["kind"] = "follow-up"  # DQ-003
    found = audit(records)
    assert {f["entity_id"] for f in found if f["rule_id"] == "REA-001"} == {"S-3", "S-4"}
    assert {f["entity_id"] for f in found if f["rule_id"] == "REA-004"} == set()
    assert any(f["rule_id"] == "DQ-003" and "AS-3" in f["entity_id"] for f in found)


def test_rea001_ignores_sessions_that_were_not_completed() -> None:
    records = clean_records()
    _drop(records, "assessments", "assessment_id", "AS-3")
    find(records, "sessions", session_id="S-3")["status"] = "cancelled"
    assert _ids(records, "REA-001") == {"S-4"}


# --- REA-002 -----------------------------------------------------------------------------------


def test_rea002_active_client_overdue_for_reassessment() -> None:
    records = clean_records()
    _drop(records, "assessments", "assessment_id", "AS-3")
    found = _of(records, "REA-002")
    assert set(found) == {"CL-1"}
    finding = found["CL-1"]
    assert finding["severity"] == RULES["REA-002"].severity
    assert finding["entity_type"] == "client"
    assert finding["practice_id"] == "PR-1"
    assert finding["due_date"] is None
    assert "CL-1" in finding["message"]


def test_rea002_exactly_30_days_is_not_overdue() -> None:
    records = clean_records()
    find(records, "assessments", assessment_id="AS-3")["assessed_on"] = date(2026, 3, 1)
    assert _ids(records, "REA-002") == set()
    find(records, "assessments", assessment_id="AS-3")["assessed_on"] = date(2026, 2, 28)
    assert _ids(records, "REA-002") == {"CL-1"}


def test_rea002_only_active_clients() -> None:
    records = clean_records()
    _drop(records, "assessments", "assessment_id", "AS-3")
    # The last completed session is S-2 on 02-10: CL-1 is not active on 03-31.
    for session_id in ("S-3", "S-4"):
        find(records, "sessions", session_id=session_id)["status"] = "cancelled"
    assert _ids(records, "REA-002") == set()


def test_rea002_not_raised_without_an_assessment_date() -> None:
    records = clean_records()
    records["assessments"] = []
    records["outcome_measures"] = []
    assert _ids(records, "REA-002") == set()


def test_rea002_follows_the_as_of_date() -> None:
    # On 04-11 the latest assessment (03-11) is 31 days old; S-5 (04-02) keeps CL-1 active.
    records = clean_records()
    assert _ids(records, "REA-002", as_of=date(2026, 4, 10)) == set()
    assert _ids(records, "REA-002", as_of=date(2026, 4, 11)) == {"CL-1"}


# --- REA-003 -----------------------------------------------------------------------------------


def test_rea003_reassessment_due_within_seven_days() -> None:
    records = clean_records()
    find(records, "assessments", assessment_id="AS-3")["assessed_on"] = date(2026, 3, 5)
    found = _of(records, "REA-003")
    assert set(found) == {"CL-1"}
    finding = found["CL-1"]
    assert finding["severity"] == RULES["REA-003"].severity
    assert finding["due_date"] == "2026-04-04"
    assert "CL-1" in finding["message"]
    assert "2026-04-04" in finding["message"]


@pytest.mark.parametrize(
    ("assessed_on", "expected"),
    [
        (date(2026, 3, 1), {"CL-1"}),  # due 03-31 = D
        (date(2026, 3, 8), {"CL-1"}),  # due 04-07 = D + 7
        (date(2026, 3, 9), set()),  # due 04-08: not yet
        (date(2026, 2, 28), set()),  # due 03-30: overdue, REA-002 speaks
    ],
)
def test_rea003_window_bounds(assessed_on: date, expected: set[str]) -> None:
    records = clean_records()
    find(records, "assessments", assessment_id="AS-3")["assessed_on"] = assessed_on
    assert _ids(records, "REA-003") == expected


def test_rea003_only_active_clients() -> None:
    records = clean_records()
    find(records, "assessments", assessment_id="AS-3")["assessed_on"] = date(2026, 3, 5)
    for session_id in ("S-3", "S-4"):
        find(records, "sessions", session_id=session_id)["status"] = "no_show"
    assert _ids(records, "REA-003") == set()


# --- REA-004 -----------------------------------------------------------------------------------


def test_rea004_reassessment_without_outcome_measures() -> None:
    records = clean_records()
    _drop(records, "outcome_measures", "assessment_id", "AS-2")
    found = _of(records, "REA-004")
    assert set(found) == {"AS-2"}
    assert found["AS-2"]["entity_type"] == "assessment"
    assert found["AS-2"]["message"] == "Assessment AS-2 records no outcome measure."


def test_rea004_ignores_the_initial_assessment() -> None:
    records = clean_records()
    _drop(records, "outcome_measures", "assessment_id", "AS-1")
    assert _ids(records, "REA-004") == set()


def test_rea004_reassessment_after_the_as_of_date_does_not_exist() -> None:
    records = clean_records()
    records["assessments"].append(
        {
            **find(records, "assessments", assessment_id="AS-3"),
            "assessment_id": "AS-4",
            "assessed_on": date(2026, 4, 5),
        }
    )
    assert _ids(records, "REA-004") == set()
    assert _ids(records, "REA-004", as_of=date(2026, 4, 6)) == {"AS-4"}


def test_rea004_any_measure_row_counts() -> None:
    records = clean_records()
    _drop(records, "outcome_measures", "assessment_id", "AS-3")
    records["outcome_measures"].append(_measure("OM-9", "AS-3", "STEPS", "n/a"))
    assert _ids(records, "REA-004") == set()


# --- REA-005 -----------------------------------------------------------------------------------


def test_rea005_no_shared_instrument_improved() -> None:
    records = clean_records()
    find(records, "outcome_measures", measure_id="OM-5")["value"] = 15.0  # TUG worse
    find(records, "outcome_measures", measure_id="OM-6")["value"] = 20.0  # GRIP equal
    found = _of(records, "REA-005")
    assert set(found) == {"CL-1"}
    assert found["CL-1"]["entity_type"] == "client"
    assert found["CL-1"]["severity"] == RULES["REA-005"].severity
    assert "CL-1" in found["CL-1"]["message"]


def test_rea005_one_strict_improvement_is_enough() -> None:
    records = clean_records()
    find(records, "outcome_measures", measure_id="OM-6")["value"] = 19.0  # GRIP worse
    assert _ids(records, "REA-005") == set()  # TUG 14 -> 11 improved


def test_rea005_direction_follows_the_catalogue() -> None:
    records = clean_records()
    # TUG going up and GRIP going down are both worse.
    find(records, "outcome_measures", measure_id="OM-5")["value"] = 16.0
    find(records, "outcome_measures", measure_id="OM-6")["value"] = 18.0
    assert _ids(records, "REA-005") == {"CL-1"}


def test_rea005_repeated_measures_are_averaged() -> None:
    records = clean_records()
    find(records, "outcome_measures", measure_id="OM-6")["value"] = 20.0  # GRIP equal
    # TUG at AS-3: (11 + 18) / 2 = 14.5, worse than 14.0.
    records["outcome_measures"].append(_measure("OM-7", "AS-3", "TUG", 18.0))
    assert _ids(records, "REA-005") == {"CL-1"}
    # TUG at AS-1: (14 + 16) / 2 = 15.0; 14.5 is now better.
    records["outcome_measures"].append(_measure("OM-8", "AS-1", "TUG", 16.0))
    assert _ids(records, "REA-005") == set()


def test_rea005_compares_the_latest_reassessment_only() -> None:
    records = clean_records()
    # AS-2 improved, but the latest (AS-3) did not.
    find(records, "outcome_measures", measure_id="OM-5")["value"] = 14.0
    find(records, "outcome_measures", measure_id="OM-6")["value"] = 20.0
    assert _ids(records, "REA-005") == {"CL-1"}


def test_rea005_latest_reassessment_tie_takes_the_largest_id() -> None:
    records = clean_records()
    find(records, "outcome_measures", measure_id="OM-5")["value"] = 14.0
    find(records, "outcome_measures", measure_id="OM-6")["value"] = 20.0
    # AS-2 moved onto the same day as AS-3: AS-3 (the larger id) is the latest.
    find(records, "assessments", assessment_id="AS-2")["assessed_on"] = date(2026, 3, 11)
    assert _ids(records, "REA-005") == {"CL-1"}
    # Renamed AS-4, the improved one is the larger id and so the latest.
    find(records, "assessments", assessment_id="AS-2")["assessment_id"] = "AS-4"
    for measure_id in ("OM-3", "OM-4"):
        find(records, "outcome_measures", measure_id=measure_id)["assessment_id"] = "AS-4"
    find(records, "progress_reports", report_id="PRR-1")["assessment_id"] = "AS-4"
    assert _ids(records, "REA-005") == set()


def test_rea005_instrument_codes_compare_case_insensitively() -> None:
    records = clean_records()
    find(records, "outcome_measures", measure_id="OM-5")["instrument"] = " tug "
    find(records, "outcome_measures", measure_id="OM-6")["value"] = 20.0
    assert _ids(records, "REA-005") == set()  # tug 14 -> 11 still counts


def test_rea005_not_raised_when_no_instrument_is_shared() -> None:
    records = clean_records()
    find(records, "outcome_measures", measure_id="OM-5")["instrument"] = "BERG"
    find(records, "outcome_measures", measure_id="OM-6")["instrument"] = "LEFS"
    assert _ids(records, "REA-005") == set()


def test_rea005_instruments_outside_the_catalogue_are_not_judged() -> None:
    records = clean_records()
    for measure_id in ("OM-1", "OM-5"):
        find(records, "outcome_measures", measure_id=measure_id)["instrument"] = "STEPS"
    find(records, "outcome_measures", measure_id="OM-6")["value"] = 20.0
    # STEPS is shared but has no direction; GRIP is shared and did not improve.
    assert _ids(records, "REA-005") == {"CL-1"}


def test_rea005_not_raised_without_a_reassessment() -> None:
    records = clean_records()
    _drop(records, "assessments", "assessment_id", "AS-2", "AS-3")
    _drop(records, "outcome_measures", "assessment_id", "AS-2", "AS-3")
    find(records, "outcome_measures", measure_id="OM-1")["value"] = 99.0
    assert _ids(records, "REA-005") == set()


def test_rea005_unknown_value_is_no_improvement() -> None:
    records = clean_records()
    find(records, "outcome_measures", measure_id="OM-5")["value"] = "fast"  # unreadable
    find(records, "outcome_measures", measure_id="OM-6")["value"] = 20.0
    assert _ids(records, "REA-005") == {"CL-1"}


# --- settings ----------------------------------------------------------------------------------


def test_rea_interval_and_notice_follow_the_practice_settings() -> None:
    from metaudit.spec.settings import Settings

    def of(found: list[dict[str, Any]], rule_id: str) -> dict[str, dict[str, Any]]:
        return {f["entity_id"]: f for f in found if f["rule_id"] == rule_id}

    records = clean_records()
    short = Settings.from_dict(
        {"practices": {"PR-1": {"settings": {"reassessment_interval_days": 18}}}}
    )
    found = audit(records, settings=short)
    # S-4 (03-30) is 19 days after AS-3 (03-11); the other sessions 1 or 2 days after.
    assert set(of(found, "REA-001")) == {"S-4"}
    # 03-11 + 18 = 03-29, before D: overdue, so no notice.
    assert set(of(found, "REA-002")) == {"CL-1"}
    assert set(of(found, "REA-003")) == set()

    due_today = Settings.from_dict(
        {
            "practices": {
                "PR-1": {
                    "settings": {"reassessment_interval_days": 20, "reassessment_notice_days": 0}
                }
            }
        }
    )
    found = audit(records, settings=due_today)
    # 03-11 + 20 = 03-31 = D: due today, inside a notice window of 0 days.
    assert set(of(found, "REA-002")) == set()
    assert of(found, "REA-003")["CL-1"]["due_date"] == "2026-03-31"
