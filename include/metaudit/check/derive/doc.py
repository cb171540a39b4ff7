"""Facts for the documentation-completeness rules (DOC-001..DOC-012).

One frame per kind of record a DOC rule judges, holding only the records the
rule applies to, so that a missing fact (a null id, a False flag) is a failure
and not "does not apply". The thresholds (signature days, report window) and
the code lists (specialist credentials, scope-of-practice patterns) come from
the settings; the suite ``expectations/doc.json`` only compares columns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from metaudit.check.derive import common
from metaudit.check.frames import Frame

if TYPE_CHECKING:
    from metaudit.check.view import AuditView
    from metaudit.spec.settings import Settings


def derive(view: AuditView, settings: Settings) -> list[Frame]:
    """Return the DOC family's frames for the as-of view."""
    return [
        _client_first_session(view),
        _initial_assessment(view),
        _completed_session(view, settings),
        _plan_of_exercise(view),
        _goal(view),
        _session_language(view, settings),
        _assessment_language(view, settings),
        _reassessment_report(view, settings),
    ]


# --- shared helpers -------------------------------------------------------------------------


def _days(counts: pd.Series) -> pd.Series:
    """Turn a per-row number of days (a resolved setting) into timedeltas."""
    return pd.to_timedelta(pd.to_numeric(counts).astype("float64"), unit="D")


def _lookup(keys: pd.Series, values: pd.Series) -> pd.Series:
    """``values[key]`` for each key, NA when absent (``values`` has a unique index).

    ``Series.map`` with an empty datetime mapper raises in pandas; reindexing does not.
    """
    return values.reindex(pd.Index(keys)).set_axis(keys.index)


def _with_client(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows whose client_id is known: pandas merges match NA keys with each other."""
    return frame[frame["client_id"].notna()]


def _child_counts(
    parents: pd.Series,
    children: pd.Series,
    mask: pd.Series | None = None,
    position: np.ndarray | None = None,
) -> pd.Series:
    """Number of child rows naming each parent (only the rows where mask holds).

    ``parents`` are unique keys (the view keeps one row per key); counting by
    position with bincount avoids a groupby over millions of text keys.
    ``position`` is each child's parent position, when the caller already has it.
    """
    if position is None:
        position = common.positions(parents, children)
    keep = position >= 0
    if mask is not None:
        keep &= mask.to_numpy(dtype=bool, na_value=False)
    counts = np.bincount(position[keep], minlength=len(parents))
    return pd.Series(counts, index=parents.index, dtype="Int64")


# --- clients: DOC-001, DOC-002 ---------------------------------------------------------------


def _client_first_session(view: AuditView) -> Frame:
    """Clients that have a first session (reading 9), with the intake and initial
    assessment that stand on or before it (NA when there is none)."""
    first = common.first_session_date(view).rename("first_session_on")
    clients = view.tables["clients"][["client_id", "practice_id"]]
    rows = clients[common.is_in(clients["client_id"], first.index)].copy()
    rows["first_session_on"] = _lookup(rows["client_id"], first)

    intakes = _with_client(view.tables["intake_forms"])
    # Every condition must hold on one and the same form; unknown values fail (reading 2).
    # Consent and waiver dates need only be present, not before the first session (reading 19).
    complete = (
        intakes["completed_on"].notna()
        & intakes["health_history_complete"].fillna(False).astype(bool)
        & intakes["emergency_contact_name"].notna()
        & intakes["emergency_contact_phone"].notna()
        & intakes["consent_signed_on"].notna()
        & intakes["waiver_signed_on"].notna()
    )
    candidates = intakes.loc[complete, ["client_id", "intake_id", "completed_on"]].merge(
        rows[["client_id", "first_session_on"]], on="client_id"
    )
    candidates = candidates[candidates["completed_on"] <= candidates["first_session_on"]]
    complete_intake = (
        candidates.groupby("client_id")["intake_id"].min().rename("complete_intake_id")
    )

    initial = common.initial_assessments(view)[["client_id", "assessment_id", "assessed_on"]]
    initial = initial.merge(rows[["client_id", "first_session_on"]], on="client_id")
    initial = initial[initial["assessed_on"] <= initial["first_session_on"]]
    initial_id = initial.set_index("client_id")["assessment_id"].rename("initial_assessment_id")

    rows["complete_intake_id"] = _lookup(rows["client_id"], complete_intake).astype("string")
    rows["initial_assessment_id"] = _lookup(rows["client_id"], initial_id).astype("string")
    return common.entity_frame(
        "doc_client",
        "client",
        rows,
        "client_id",
        ["first_session_on", "complete_intake_id", "initial_assessment_id"],
    )


# --- initial assessments: DOC-003 ------------------------------------------------------------


def _initial_assessment(view: AuditView) -> Frame:
    """Each client's initial assessment with what it documents (DOC-003)."""
    initial = common.initial_assessments(view)[["assessment_id"]]
    assessments = view.tables["assessments"]
    rows = assessments.merge(initial, on="assessment_id", how="inner")
    for flag in ("rom_documented", "strength_documented", "posture_documented"):
        # An unknown flag does not document anything (reading 2).
        rows[flag] = rows[flag].fillna(False).astype("boolean")
    rows["outcome_measure_count"] = _child_counts(
        rows["assessment_id"], view.tables["outcome_measures"]["assessment_id"]
    )
    return common.entity_frame(
        "doc_initial_assessment",
        "assessment",
        rows,
        "assessment_id",
        [
            "assessed_on",
            "rom_documented",
            "strength_documented",
            "posture_documented",
            "outcome_measure_count",
        ],
    )


# --- completed sessions: DOC-004, DOC-008, DOC-009, DOC-010 ----------------------------------


def _completed_session(view: AuditView, settings: Settings) -> Frame:
    """Completed sessions with their plan in effect, log, signature and specialist."""
    sessions = common.completed_sessions(view).copy()
    sessions["poe_in_effect_id"] = _plan_in_effect(view, sessions)
    _add_session_log(view, sessions)
    _add_signature(view, sessions, settings)
    _add_specialist(view, sessions, settings)
    return common.entity_frame(
        "doc_session",
        "session",
        sessions,
        "session_id",
        [
            "session_date",
            "poe_in_effect_id",
            "exercise_count",
            "exercises_without_sets",
            "exercises_without_reps",
            "exercises_without_intensity",
            "client_response",
            "timed_minutes",
            "signature_due_on",
            "note_signed_on",
            "unsigned_as_of",
            "staff_credential",
            "holds_specialist_credential",
            "certification_expires_on",
        ],
    )


def _plan_in_effect(view: AuditView, sessions: pd.DataFrame) -> pd.Series:
    """The smallest poe_id of the client's plans in effect on each session date (DOC-004)."""
    plans = _with_client(view.tables["plans_of_exercise"])
    # A plan whose start is unknown cannot be shown in effect (reading 2); an end date
    # that is NULL (or unreadable, reading 1) is open-ended.
    plans = plans[plans["start_date"].notna()].sort_values("poe_id", kind="stable")
    # Integer codes for clients, sessions and plans keep the pair table cheap: a
    # network has about a million sessions and a few plans per client.
    clients = pd.Index(plans["client_id"].unique())
    session_client = common.positions(clients, sessions["client_id"])
    judged = session_client >= 0
    left = pd.DataFrame(
        {
            "position": np.flatnonzero(judged),
            "client": session_client[judged],
            "session_date": sessions["session_date"].to_numpy()[judged],
        }
    )
    right = pd.DataFrame(
        {
            "client": common.positions(clients, plans["client_id"]),
            "rank": np.arange(len(plans)),
            "start_date": plans["start_date"].to_numpy(),
            "end_date": plans["end_date"].to_numpy(),
        }
    )
    pairs = left.merge(right, on="client")
    in_effect = (pairs["start_date"] <= pairs["session_date"]) & (
        pairs["end_date"].isna() | (pairs["end_date"] >= pairs["session_date"])
    )
    best = pairs[in_effect].groupby("position")["rank"].min()
    poe = np.full(len(sessions), None, dtype=object)
    poe[best.index.to_numpy()] = plans["poe_id"].to_numpy()[best.to_numpy()]
    return pd.Series(poe, index=sessions.index, dtype="string")


def _add_session_log(view: AuditView, sessions: pd.DataFrame) -> None:
    """Count the logged exercises and those lacking sets, reps or intensity (DOC-008).

    A zero is a value (reading 19): only a NULL is missing.
    """
    log_rows = view.tables["session_exercises"]
    key, logged = sessions["session_id"], log_rows["session_id"]
    position = common.positions(key, logged)
    sessions["exercise_count"] = _child_counts(key, logged, position=position)
    for column in ("sets", "reps", "intensity"):
        lacking = log_rows[column].isna()
        sessions[f"exercises_without_{column}"] = _child_counts(
            key, logged, lacking, position=position
        )


def _signature_day(view: AuditView, sessions: pd.DataFrame, settings: Settings) -> pd.Series:
    """The calendar day of signed_at in the session's practice timezone (reading 11).

    The view's practices carry a valid zone (the default when blank or unknown); a
    session whose client, and so practice, is missing takes the default zone.
    """
    zone_of = view.practices.drop_duplicates("practice_id").set_index("practice_id")["timezone"]
    zones = (
        _lookup(sessions["practice_id"], zone_of).astype("string").fillna(settings.default_timezone)
    )
    signed_at = sessions["signed_at"]
    day = pd.Series(pd.NaT, index=sessions.index, dtype="datetime64[us]")
    signed = signed_at.notna()
    # One conversion per distinct zone, not per row: a network has few zones.
    for zone in zones[signed].unique():
        rows = signed & (zones == zone)
        local = signed_at[rows].dt.tz_convert(str(zone)).dt.tz_localize(None)
        day[rows] = local.dt.normalize().astype("datetime64[us]")
    return day


def _add_signature(view: AuditView, sessions: pd.DataFrame, settings: Settings) -> None:
    """Signature facts for DOC-009.

    ``note_signed_on`` (signed notes) and ``unsigned_as_of`` (D, for unsigned notes) are
    each compared with ``signature_due_on`` = session_date + note_signature_days.
    """
    allowed = _days(settings.column(sessions, "note_signature_days"))
    sessions["signature_due_on"] = (sessions["session_date"] + allowed).astype("datetime64[us]")
    sessions["note_signed_on"] = _signature_day(view, sessions, settings)
    unsigned = sessions["note_signed_on"].isna()
    sessions["unsigned_as_of"] = pd.Series(pd.NaT, index=sessions.index, dtype="datetime64[us]")
    sessions.loc[unsigned, "unsigned_as_of"] = view.as_of


def _add_specialist(view: AuditView, sessions: pd.DataFrame, settings: Settings) -> None:
    """The delivering staff member's credential and certification expiry (DOC-010).

    A missing staff row is a missing credential (reading 19); staff.active is ignored.
    """
    staff = view.tables["staff"][["staff_id", "credential", "certification_expires_on"]]
    staff = staff.rename(columns={"credential": "staff_credential"})
    staff = staff[staff["staff_id"].notna()]
    joined = sessions[["staff_id"]].merge(staff, on="staff_id", how="left")
    joined.index = sessions.index
    sessions["staff_credential"] = joined["staff_credential"].astype("string")
    sessions["certification_expires_on"] = joined["certification_expires_on"]
    holds = settings.isin(sessions, "staff_credential", "specialist_credentials")
    sessions["holds_specialist_credential"] = (
        pd.Series(holds, index=sessions.index).fillna(False).astype("boolean")
    )


# --- plans of exercise: DOC-005, DOC-006 -----------------------------------------------------


def _plan_of_exercise(view: AuditView) -> Frame:
    """Every plan of exercise with its parts, exercises and goals."""
    plans = view.tables["plans_of_exercise"].copy()
    key = plans["poe_id"]
    # Exercise rows count whatever their content (reading 19).
    plans["exercise_count"] = _child_counts(key, view.tables["poe_exercises"]["poe_id"])
    goals = view.tables["goals"]
    for term in ("short", "long"):
        plans[f"{term}_term_goal_count"] = _child_counts(
            key, goals["poe_id"], goals["term"] == term
        )
    return common.entity_frame(
        "doc_poe",
        "poe",
        plans,
        "poe_id",
        [
            "frequency_per_week",
            "duration_weeks",
            "intensity",
            "progression",
            "exercise_count",
            "signed_on",
            "short_term_goal_count",
            "long_term_goal_count",
        ],
    )


# --- goals: DOC-007 --------------------------------------------------------------------------


def _goal(view: AuditView) -> Frame:
    """Every goal with what makes it measurable."""
    goals = view.tables["goals"]
    return common.entity_frame(
        "doc_goal", "goal", goals, "goal_id", ["instrument", "target_value", "target_date"]
    )


# --- scope of practice: DOC-011 --------------------------------------------------------------


def _in_scope(rows: pd.DataFrame, columns: list[str], settings: Settings) -> pd.Series:
    """True when none of the text columns matches a scope-of-practice pattern."""
    outside = pd.Series(False, index=rows.index)
    for column in columns:
        matched = settings.regex_any(rows, column, "scope_of_practice_patterns")
        outside |= pd.Series(matched, index=rows.index).fillna(False).astype(bool)
    return (~outside).astype("boolean")


def _session_language(view: AuditView, settings: Settings) -> Frame:
    """Every session in the view, of any status, with whether its notes stay in scope."""
    sessions = view.tables["sessions"].copy()
    sessions["notes_within_scope"] = _in_scope(sessions, ["notes"], settings)
    return common.entity_frame(
        "doc_session_notes", "session", sessions, "session_id", ["notes_within_scope"]
    )


def _assessment_language(view: AuditView, settings: Settings) -> Frame:
    """Every assessment in the view, of any kind, with whether its text stays in scope."""
    assessments = view.tables["assessments"].copy()
    assessments["notes_within_scope"] = _in_scope(
        assessments, ["notes", "functional_deficits"], settings
    )
    return common.entity_frame(
        "doc_assessment_notes",
        "assessment",
        assessments,
        "assessment_id",
        ["notes_within_scope"],
    )


# --- progress reports: DOC-012 ---------------------------------------------------------------


def _reassessment_report(view: AuditView, settings: Settings) -> Frame:
    """Reassessments whose report window has closed, with the report sent within it.

    Raised only once days(assessed_on, D) > progress_report_days, so only those
    reassessments are rows; ``progress_report_id`` is NA when no report of the client
    was sent on or after the reassessment and within the window.
    """
    assessments = view.tables["assessments"]
    # An unreadable kind (NA) is no reassessment.
    is_reassessment = assessments["kind"].eq("reassessment").fillna(False).astype(bool)
    reassessments = assessments[is_reassessment].copy()
    window = _days(settings.column(reassessments, "progress_report_days"))
    reassessments["report_due_on"] = (reassessments["assessed_on"] + window).astype(
        "datetime64[us]"
    )
    reassessments = reassessments[reassessments["report_due_on"] < view.as_of]

    reports = _with_client(view.tables["progress_reports"])
    reports = reports.loc[reports["sent_on"].notna(), ["client_id", "report_id", "sent_on"]]
    pairs = _with_client(reassessments)[
        ["assessment_id", "client_id", "assessed_on", "report_due_on"]
    ].merge(reports, on="client_id")
    sent_in_window = (pairs["sent_on"] >= pairs["assessed_on"]) & (
        pairs["sent_on"] <= pairs["report_due_on"]
    )
    report = pairs[sent_in_window].groupby("assessment_id")["report_id"].min()
    reassessments["progress_report_id"] = _lookup(reassessments["assessment_id"], report).astype(
        "string"
    )
    return common.entity_frame(
        "doc_reassessment",
        "assessment",
        reassessments,
        "assessment_id",
        ["assessed_on", "report_due_on", "progress_report_id"],
    )
