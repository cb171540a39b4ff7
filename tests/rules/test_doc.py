"""Documentation completeness (DOC-001..DOC-012) on records built for each rule.

Every test starts from the fully compliant ``clean_records()`` (client CL-1 of
practice PR-1, sessions S-1..S-4 on 01-12, 02-10, 03-12, 03-30; initial
assessment AS-1 on 01-10, reassessments AS-2 on 02-09 and AS-3 on 03-11; plan
POE-1 from 01-10, open-ended; goals G-1 (short) and G-2 (long); reports PRR-1
and PRR-2; as of 2026-03-31), breaks one thing and asserts the exact findings.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from builders import AS_OF, Records, audit, clean_records, find

from metaudit.spec.rulebook import RULES

DOC_RULES = [f"DOC-{n:03d}" for n in range(1, 13)]


def _of(records: Records, rule_id: str, as_of: date = AS_OF) -> dict[str, dict[str, Any]]:
    """The findings of one rule, by entity id."""
    return {f["entity_id"]: f for f in audit(records, as_of) if f["rule_id"] == rule_id}


def _ids(records: Records, rule_id: str, as_of: date = AS_OF) -> set[str]:
    return set(_of(records, rule_id, as_of))


def _parts(message: str, lead: str) -> set[str]:
    """The parts a message names after ``lead`` (their order is the runner's business)."""
    assert message.startswith(lead), message
    assert message.endswith("."), message
    return set(message[len(lead) : -1].split(", "))


def test_clean_records_raise_no_doc_finding() -> None:
    found = [f for f in audit(clean_records()) if f["rule_id"] in DOC_RULES]
    assert found == []


# --- DOC-001 -----------------------------------------------------------------------------------


def test_doc001_intake_completed_after_the_first_session() -> None:
    records = clean_records()
    find(records, "intake_forms", intake_id="IN-1")["completed_on"] = date(2026, 1, 13)
    found = _of(records, "DOC-001")
    assert set(found) == {"CL-1"}
    finding = found["CL-1"]
    assert finding["severity"] == RULES["DOC-001"].severity
    assert finding["entity_type"] == "client"
    assert finding["practice_id"] == "PR-1"
    assert finding["client_id"] == "CL-1"
    assert "CL-1" in finding["message"]


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("health_history_complete", False),
        ("health_history_complete", "maybe"),  # unreadable: a requirement fails on it
        ("emergency_contact_name", "  "),
        ("emergency_contact_phone", None),
        ("consent_signed_on", None),
        ("waiver_signed_on", None),
        ("completed_on", None),  # null ok: the form stays, but is not dated on or before
    ],
)
def test_doc001_each_missing_condition_fails(column: str, value: Any) -> None:
    records = clean_records()
    find(records, "intake_forms", intake_id="IN-1")[column] = value
    assert _ids(records, "DOC-001") == {"CL-1"}


def test_doc001_conditions_must_hold_on_one_and_the_same_form() -> None:
    records = clean_records()
    first = find(records, "intake_forms", intake_id="IN-1")
    first["waiver_signed_on"] = None
    second = {**first, "intake_id": "IN-2", "waiver_signed_on": date(2026, 1, 9)}
    second["consent_signed_on"] = None
    records["intake_forms"].append(second)
    assert _ids(records, "DOC-001") == {"CL-1"}


def test_doc001_a_second_complete_form_satisfies_the_rule() -> None:
    records = clean_records()
    first = find(records, "intake_forms", intake_id="IN-1")
    records["intake_forms"].append({**first, "intake_id": "IN-2"})
    first["health_history_complete"] = False
    assert _ids(records, "DOC-001") == set()


def test_doc001_consent_and_waiver_need_only_be_present() -> None:
    # Reading 19: the dates are present, not compared with the first session.
    records = clean_records()
    intake = find(records, "intake_forms", intake_id="IN-1")
    intake["consent_signed_on"] = date(2026, 2, 1)
    intake["waiver_signed_on"] = date(2026, 2, 1)
    assert _ids(records, "DOC-001") == set()


def test_doc001_not_raised_for_a_client_without_a_first_session() -> None:
    records = clean_records()
    for session in records["sessions"]:
        session["status"] = "cancelled"
    records["intake_forms"] = []
    assert _ids(records, "DOC-001") == set()


# --- DOC-002 -----------------------------------------------------------------------------------


def test_doc002_initial_assessment_after_the_first_session() -> None:
    records = clean_records()
    find(records, "assessments", assessment_id="AS-1")["assessed_on"] = date(2026, 1, 13)
    found = _of(records, "DOC-002")
    assert set(found) == {"CL-1"}
    assert found["CL-1"]["entity_type"] == "client"
    assert "CL-1" in found["CL-1"]["message"]


def test_doc002_no_assessment_of_kind_initial() -> None:
    records = clean_records()
    find(records, "assessments", assessment_id="AS-1")["kind"] = "reassessment"
    assert _ids(records, "DOC-002") == {"CL-1"}


def test_doc002_initial_assessment_on_the_first_session_day_is_enough() -> None:
    records = clean_records()
    find(records, "assessments", assessment_id="AS-1")["assessed_on"] = date(2026, 1, 12)
    assert _ids(records, "DOC-002") == set()


def test_doc002_not_raised_without_a_completed_session() -> None:
    records = clean_records()
    for session in records["sessions"]:
        session["status"] = "no_show"
    records["assessments"] = []
    assert _ids(records, "DOC-002") == set()


# --- DOC-003 -----------------------------------------------------------------------------------


def test_doc003_initial_assessment_without_range_of_motion() -> None:
    records = clean_records()
    find(records, "assessments", assessment_id="AS-1")["rom_documented"] = False
    found = _of(records, "DOC-003")
    assert set(found) == {"AS-1"}
    assert found["AS-1"]["entity_type"] == "assessment"
    assert found["AS-1"]["message"] == "Assessment AS-1 lacks range of motion."


def test_doc003_names_every_missing_part() -> None:
    records = clean_records()
    assessment = find(records, "assessments", assessment_id="AS-1")
    assessment["posture_documented"] = "unknown"  # unreadable: not documented
    records["outcome_measures"] = [
        m for m in records["outcome_measures"] if m["assessment_id"] != "AS-1"
    ]
    found = _of(records, "DOC-003")
    assert set(found) == {"AS-1"}
    assert _parts(found["AS-1"]["message"], "Assessment AS-1 lacks ") == {
        "posture",
        "an outcome measure",
    }


def test_doc003_judges_only_the_initial_assessment() -> None:
    records = clean_records()
    find(records, "assessments", assessment_id="AS-2")["strength_documented"] = False
    assert _ids(records, "DOC-003") == set()


def test_doc003_applies_without_a_first_session() -> None:
    # Reading 9: DOC-003 applies to every initial assessment.
    records = clean_records()
    for session in records["sessions"]:
        session["status"] = "cancelled"
    find(records, "assessments", assessment_id="AS-1")["strength_documented"] = False
    assert _ids(records, "DOC-003") == {"AS-1"}


# --- DOC-004 -----------------------------------------------------------------------------------


def test_doc004_sessions_after_the_plan_ended() -> None:
    records = clean_records()
    find(records, "plans_of_exercise", poe_id="POE-1")["end_date"] = date(2026, 3, 11)
    found = _of(records, "DOC-004")
    assert set(found) == {"S-3", "S-4"}
    assert all(f["entity_type"] == "session" for f in found.values())
    assert "S-3" in found["S-3"]["message"]


def test_doc004_plan_ending_on_the_session_day_is_in_effect() -> None:
    records = clean_records()
    find(records, "plans_of_exercise", poe_id="POE-1")["end_date"] = date(2026, 3, 30)
    assert _ids(records, "DOC-004") == set()


def test_doc004_session_before_the_plan_starts() -> None:
    records = clean_records()
    find(records, "plans_of_exercise", poe_id="POE-1")["start_date"] = date(2026, 1, 13)
    assert _ids(records, "DOC-004") == {"S-1"}


def test_doc004_a_later_plan_covers_what_the_first_does_not() -> None:
    records = clean_records()
    plan = find(records, "plans_of_exercise", poe_id="POE-1")
    plan["end_date"] = date(2026, 2, 28)
    records["plans_of_exercise"].append(
        {**plan, "poe_id": "POE-2", "start_date": date(2026, 3, 1), "end_date": None}
    )
    assert _ids(records, "DOC-004") == set()


def test_doc004_unreadable_start_date_is_no_plan_in_effect() -> None:
    records = clean_records()
    find(records, "plans_of_exercise", poe_id="POE-1")["start_date"] = "not a date"
    assert _ids(records, "DOC-004") == {"S-1", "S-2", "S-3", "S-4"}


def test_doc004_ignores_sessions_that_were_not_completed() -> None:
    records = clean_records()
    find(records, "plans_of_exercise", poe_id="POE-1")["end_date"] = date(2026, 3, 11)
    find(records, "sessions", session_id="S-3")["status"] = "cancelled"
    assert _ids(records, "DOC-004") == {"S-4"}


# --- DOC-005 -----------------------------------------------------------------------------------


def test_doc005_plan_without_frequency() -> None:
    records = clean_records()
    find(records, "plans_of_exercise", poe_id="POE-1")["frequency_per_week"] = None
    found = _of(records, "DOC-005")
    assert set(found) == {"POE-1"}
    assert found["POE-1"]["entity_type"] == "poe"
    assert found["POE-1"]["message"] == "Plan of exercise POE-1 lacks frequency per week."


def test_doc005_names_every_missing_part() -> None:
    records = clean_records()
    plan = find(records, "plans_of_exercise", poe_id="POE-1")
    plan["duration_weeks"] = "twelve"  # unreadable int
    plan["intensity"] = " "
    plan["progression"] = None
    plan["signed_on"] = None
    records["poe_exercises"] = []
    found = _of(records, "DOC-005")
    assert _parts(found["POE-1"]["message"], "Plan of exercise POE-1 lacks ") == {
        "duration in weeks",
        "intensity",
        "progression",
        "an exercise",
        "a signature",
    }


def test_doc005_counts_exercise_rows_whatever_their_content() -> None:
    records = clean_records()
    for exercise in records["poe_exercises"]:
        exercise.update(sets=None, reps=None, intensity=None)
    assert _ids(records, "DOC-005") == set()


# --- DOC-006 -----------------------------------------------------------------------------------


def test_doc006_plan_without_a_long_term_goal() -> None:
    records = clean_records()
    records["goals"] = [g for g in records["goals"] if g["term"] != "long"]
    found = _of(records, "DOC-006")
    assert set(found) == {"POE-1"}
    assert found["POE-1"]["message"] == "Plan of exercise POE-1 lacks a long-term goal."


def test_doc006_plan_without_any_goal_names_both() -> None:
    records = clean_records()
    records["goals"] = []
    found = _of(records, "DOC-006")
    assert _parts(found["POE-1"]["message"], "Plan of exercise POE-1 lacks ") == {
        "a short-term goal",
        "a long-term goal",
    }


def test_doc006_goal_term_compares_case_insensitively() -> None:
    records = clean_records()
    find(records, "goals", goal_id="G-1")["term"] = " Short "
    assert _ids(records, "DOC-006") == set()


# --- DOC-007 -----------------------------------------------------------------------------------


def test_doc007_goal_without_target_date() -> None:
    records = clean_records()
    find(records, "goals", goal_id="G-1")["target_date"] = None
    found = _of(records, "DOC-007")
    assert set(found) == {"G-1"}
    assert found["G-1"]["entity_type"] == "goal"
    assert found["G-1"]["message"] == "Goal G-1 is not measurable: it lacks a target date."


def test_doc007_names_every_missing_part() -> None:
    records = clean_records()
    goal = find(records, "goals", goal_id="G-2")
    goal["instrument"] = ""
    goal["target_value"] = "high"  # unreadable num
    found = _of(records, "DOC-007")
    assert set(found) == {"G-2"}
    assert _parts(found["G-2"]["message"], "Goal G-2 is not measurable: it lacks ") == {
        "an instrument",
        "a target value",
    }


# --- DOC-008 -----------------------------------------------------------------------------------


def test_doc008_blank_client_response() -> None:
    records = clean_records()
    find(records, "sessions", session_id="S-2")["client_response"] = "   "
    found = _of(records, "DOC-008")
    assert set(found) == {"S-2"}
    assert found["S-2"]["message"] == (
        "Session S-2 has an incomplete log: it lacks the client's response."
    )


def test_doc008_exercise_without_sets_and_no_minutes() -> None:
    records = clean_records()
    find(records, "session_exercises", session_id="S-3", exercise_name="Step-ups")["sets"] = None
    find(records, "sessions", session_id="S-3")["timed_minutes"] = None
    found = _of(records, "DOC-008")
    assert set(found) == {"S-3"}
    assert _parts(found["S-3"]["message"], "Session S-3 has an incomplete log: it lacks ") == {
        "sets for an exercise",
        "timed minutes",
    }


def test_doc008_no_exercise_logged() -> None:
    records = clean_records()
    records["session_exercises"] = [
        e for e in records["session_exercises"] if e["session_id"] != "S-4"
    ]
    found = _of(records, "DOC-008")
    assert set(found) == {"S-4"}
    assert "a logged exercise" in found["S-4"]["message"]


def test_doc008_reps_and_intensity_missing() -> None:
    records = clean_records()
    find(records, "session_exercises", session_id="S-1", exercise_name="Sit to stand")["reps"] = (
        None
    )
    find(records, "session_exercises", session_id="S-2", exercise_name="Step-ups")["intensity"] = ""
    assert _ids(records, "DOC-008") == {"S-1", "S-2"}


def test_doc008_zero_is_a_value() -> None:
    # Reading 19: a zero (sets, reps, minutes) is present.
    records = clean_records()
    find(records, "session_exercises", session_id="S-1", exercise_name="Step-ups")["sets"] = 0
    find(records, "sessions", session_id="S-1")["timed_minutes"] = 0
    assert _ids(records, "DOC-008") == set()


def test_doc008_ignores_sessions_that_were_not_completed() -> None:
    records = clean_records()
    session = find(records, "sessions", session_id="S-2")
    session["status"] = "no_show"
    session["client_response"] = None
    session["timed_minutes"] = None
    assert _ids(records, "DOC-008") == set()


# --- DOC-009 -----------------------------------------------------------------------------------


def test_doc009_note_signed_three_days_after_the_session() -> None:
    records = clean_records()
    find(records, "sessions", session_id="S-3")["signed_at"] = "2026-03-15T15:00:00Z"
    found = _of(records, "DOC-009")
    assert set(found) == {"S-3"}
    assert found["S-3"]["severity"] == RULES["DOC-009"].severity
    assert "S-3" in found["S-3"]["message"]


def test_doc009_note_signed_two_days_after_is_in_time() -> None:
    records = clean_records()
    find(records, "sessions", session_id="S-3")["signed_at"] = "2026-03-14T15:00:00Z"
    assert _ids(records, "DOC-009") == set()


def test_doc009_signature_day_is_taken_in_the_practice_timezone() -> None:
    # 03:00 UTC on 03-15 is still 03-14 in New York: two days, in time.
    records = clean_records()
    find(records, "sessions", session_id="S-3")["signed_at"] = "2026-03-15T03:00:00"
    assert _ids(records, "DOC-009") == set()
    # In Tokyo the same instant is on 03-15: three days, late.
    find(records, "practices", practice_id="PR-1")["timezone"] = "Asia/Tokyo"
    assert _ids(records, "DOC-009") == {"S-3"}


def test_doc009_offset_in_the_timestamp_is_honoured() -> None:
    # 06:00 at UTC+09:00 on 03-15 is 21:00 UTC, 17:00 in New York, on 03-14: in time.
    # Read without its offset it would be 02:00 in New York on 03-15: late.
    records = clean_records()
    find(records, "sessions", session_id="S-3")["signed_at"] = "2026-03-15T06:00:00+09:00"
    assert _ids(records, "DOC-009") == set()
    # 00:30 New York daylight time (UTC-04:00 since 03-08) on 03-15 is late.
    find(records, "sessions", session_id="S-3")["signed_at"] = "2026-03-14T23:30:00-05:00"
    assert _ids(records, "DOC-009") == {"S-3"}


def test_doc009_blank_timezone_uses_the_default() -> None:
    records = clean_records()
    find(records, "practices", practice_id="PR-1")["timezone"] = None
    find(records, "sessions", session_id="S-3")["signed_at"] = "2026-03-15T03:00:00Z"
    assert _ids(records, "DOC-009") == set()


def test_doc009_unsigned_note_counts_only_after_the_allowed_days() -> None:
    records = clean_records()
    find(records, "sessions", session_id="S-3")["signed_at"] = None  # 03-12: 19 days
    find(records, "sessions", session_id="S-4")["signed_at"] = None  # 03-30: 1 day
    assert _ids(records, "DOC-009") == {"S-3"}
    # On 04-01, S-4 is two days old: still in time; on 04-02 it is late.
    assert _ids(records, "DOC-009", as_of=date(2026, 4, 1)) == {"S-3"}
    assert _ids(records, "DOC-009", as_of=date(2026, 4, 2)) == {"S-3", "S-4"}


def test_doc009_unreadable_signature_is_unsigned() -> None:
    records = clean_records()
    find(records, "sessions", session_id="S-2")["signed_at"] = "yesterday"
    assert _ids(records, "DOC-009") == {"S-2"}


# --- DOC-010 -----------------------------------------------------------------------------------


ALL_SESSIONS = {"S-1", "S-2", "S-3", "S-4"}


def test_doc010_staff_without_a_specialist_credential() -> None:
    records = clean_records()
    find(records, "staff", staff_id="ST-1")["credential"] = "CPT"
    found = _of(records, "DOC-010")
    assert set(found) == ALL_SESSIONS
    assert found["S-1"]["severity"] == RULES["DOC-010"].severity
    assert "S-1" in found["S-1"]["message"]


def test_doc010_credential_compares_case_insensitively() -> None:
    records = clean_records()
    find(records, "staff", staff_id="ST-1")["credential"] = " ames "
    assert _ids(records, "DOC-010") == set()


def test_doc010_certification_expired_before_the_session() -> None:
    records = clean_records()
    find(records, "staff", staff_id="ST-1")["certification_expires_on"] = date(2026, 3, 12)
    # Expiring on the session day is still current.
    found = _of(records, "DOC-010")
    assert set(found) == {"S-4"}
    assert found["S-4"]["message"] == (
        "Session S-4 was delivered by a staff member without a current MES or AMES "
        "certification (certification expired before the session)."
    )


def test_doc010_missing_certification_expiry() -> None:
    records = clean_records()
    find(records, "staff", staff_id="ST-1")["certification_expires_on"] = None
    assert _ids(records, "DOC-010") == ALL_SESSIONS


def test_doc010_missing_staff_row_is_a_missing_credential() -> None:
    records = clean_records()
    find(records, "sessions", session_id="S-2")["staff_id"] = "ST-9"
    assert _ids(records, "DOC-010") == {"S-2"}


def test_doc010_ignores_whether_the_staff_member_is_active() -> None:
    records = clean_records()
    find(records, "staff", staff_id="ST-1")["active"] = False
    assert _ids(records, "DOC-010") == set()


# --- DOC-011 -----------------------------------------------------------------------------------


def test_doc011_session_note_outside_the_scope_of_practice() -> None:
    records = clean_records()
    find(records, "sessions", session_id="S-2")["notes"] = "Client TREATED for knee pain."
    found = _of(records, "DOC-011")
    assert set(found) == {"S-2"}
    assert found["S-2"]["entity_type"] == "session"
    assert "S-2" in found["S-2"]["message"]


def test_doc011_assessment_notes_and_deficits_are_read() -> None:
    records = clean_records()
    find(records, "assessments", assessment_id="AS-1")["functional_deficits"] = (
        "Diagnosis: patellar tendinopathy"
    )
    find(records, "assessments", assessment_id="AS-2")["notes"] = "Changed her medication."
    found = _of(records, "DOC-011")
    assert set(found) == {"AS-1", "AS-2"}
    assert {f["entity_type"] for f in found.values()} == {"assessment"}


def test_doc011_reads_sessions_of_any_status_and_assessments_of_any_kind() -> None:
    records = clean_records()
    session = find(records, "sessions", session_id="S-1")
    session["status"] = "cancelled"
    session["notes"] = "Prescribed rest by the client's doctor."
    records["assessments"].append(
        {
            **find(records, "assessments", assessment_id="AS-3"),
            "assessment_id": "AS-9",
            "assessed_on": date(2026, 3, 20),
            "kind": "discharge",
            "notes": "Treatment plan complete.",
        }
    )
    assert _ids(records, "DOC-011") == {"S-1", "AS-9"}


def test_doc011_patterns_are_literal() -> None:
    # Reading 20: "treatments" does not match \btreatment\b, "retreat" no \btreat.
    records = clean_records()
    find(records, "sessions", session_id="S-1")["notes"] = "No treatments discussed; retreating."
    assert _ids(records, "DOC-011") == set()


def test_doc011_ignores_sessions_after_the_as_of_date() -> None:
    records = clean_records()
    find(records, "sessions", session_id="S-5")["notes"] = "Treating the knee."
    assert _ids(records, "DOC-011") == set()
    assert _ids(records, "DOC-011", as_of=date(2026, 4, 2)) == {"S-5"}


# --- DOC-012 -----------------------------------------------------------------------------------


def test_doc012_reassessment_without_a_progress_report() -> None:
    records = clean_records()
    records["progress_reports"] = [
        r for r in records["progress_reports"] if r["report_id"] != "PRR-2"
    ]
    found = _of(records, "DOC-012")
    assert set(found) == {"AS-3"}
    assert found["AS-3"]["entity_type"] == "assessment"
    assert "AS-3" in found["AS-3"]["message"]


@pytest.mark.parametrize(
    ("sent_on", "expected"),
    [
        (date(2026, 3, 11), set()),  # on the reassessment day
        (date(2026, 3, 25), set()),  # the 14th day after
        (date(2026, 3, 26), {"AS-3"}),  # the 15th day: too late
        (date(2026, 3, 10), {"AS-3"}),  # before the reassessment
        (None, {"AS-3"}),  # written, not sent
    ],
)
def test_doc012_report_window(sent_on: date | None, expected: set[str]) -> None:
    records = clean_records()
    find(records, "progress_reports", report_id="PRR-2")["sent_on"] = sent_on
    assert _ids(records, "DOC-012") == expected


def test_doc012_any_report_of_the_client_counts() -> None:
    records = clean_records()
    find(records, "progress_reports", report_id="PRR-2")["assessment_id"] = None
    assert _ids(records, "DOC-012") == set()


def test_doc012_raised_only_once_the_window_has_passed() -> None:
    records = clean_records()
    records["progress_reports"] = [
        r for r in records["progress_reports"] if r["report_id"] != "PRR-2"
    ]
    assert _ids(records, "DOC-012", as_of=date(2026, 3, 25)) == set()
    assert _ids(records, "DOC-012", as_of=date(2026, 3, 26)) == {"AS-3"}


def test_doc012_ignores_the_initial_assessment() -> None:
    records = clean_records()
    records["progress_reports"] = []
    assert _ids(records, "DOC-012") == {"AS-2", "AS-3"}


# --- settings and attribution ------------------------------------------------------------------


def test_doc_thresholds_and_lists_follow_the_practice_settings() -> None:
    from metaudit.spec.settings import Settings

    settings = Settings.from_dict(
        {
            "practices": {
                "PR-1": {
                    "settings": {
                        "note_signature_days": 0,
                        "specialist_credentials": ["CPT"],
                        "scope_of_practice_patterns": [r"\bprogram\b"],
                        "progress_report_days": 1,
                    }
                }
            }
        }
    )
    records = clean_records()
    find(records, "sessions", session_id="S-2")["signed_at"] = "2026-02-11T15:00:00Z"
    find(records, "staff", staff_id="ST-1")["credential"] = "CPT"
    found = audit(records, settings=settings)

    def ids(rule_id: str) -> set[str]:
        return {f["entity_id"] for f in found if f["rule_id"] == rule_id}

    assert ids("DOC-009") == {"S-2"}  # one day late with no day allowed
    assert ids("DOC-010") == set()  # CPT is this practice's specialist credential
    assert ids("DOC-011") == {"S-1", "S-2", "S-3", "S-4"}  # "Completed the full program."
    assert ids("DOC-012") == {"AS-2", "AS-3"}  # reports 3 and 2 days after: too late


def test_doc_finding_on_a_session_whose_client_is_missing_has_no_practice() -> None:
    # Reading 8: a row whose client is missing belongs to no practice and no client.
    records = clean_records()
    session = find(records, "sessions", session_id="S-2")
    session["client_id"] = "CL-404"
    session["notes"] = "Treatment of the knee."
    found = _of(records, "DOC-011")
    assert set(found) == {"S-2"}
    assert found["S-2"]["practice_id"] is None
    assert found["S-2"]["client_id"] is None
