"""Definitions of the rulebook shared by several families (computed once per view)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from metaudit.check.frames import Frame

# Arrow-fast replacements of isin / Index.get_indexer / map for string ids,
# shared by every family (pandas hashes Arrow-backed strings as Python objects).
from metaudit.source.quality import is_in, lookup, positions

__all__ = ["is_in", "lookup", "positions"]

if TYPE_CHECKING:
    from metaudit.check.view import AuditView
    from metaudit.spec.settings import Settings


def entity_frame(
    name: str,
    entity_type: str,
    rows: pd.DataFrame,
    id_column: str,
    facts: list[str],
) -> Frame:
    """Build a Frame: entity_id, practice_id, client_id, then the fact columns.

    ``id_column`` names the column of ``rows`` that identifies the entity. The view's
    client_id is already NA where the clients row is missing (reading 8).
    """
    rows = rows.reset_index(drop=True)
    data = pd.DataFrame(
        {
            "entity_id": rows[id_column].astype("string"),
            "practice_id": rows["practice_id"].astype("string"),
            "client_id": rows["client_id"].astype("string"),
        }
    )
    for fact in facts:
        data[fact] = rows[fact]
    return Frame(name, entity_type, data)


def norm_code(values: pd.Series) -> pd.Series:
    """Codes compare case-insensitively after trimming spaces."""
    return values.astype("string").str.strip().str.upper()


def norm_icd(values: pd.Series) -> pd.Series:
    """ICD-10-CM codes also ignore the dot (M54.50 = M5450)."""
    return norm_code(values).str.replace(".", "", regex=False)


def days_between(start: pd.Series, end: pd.Series | pd.Timestamp) -> pd.Series:
    """days(a, b) = b - a in whole days, NA when either date is unknown."""
    delta = end - start
    return (delta.dt.days if hasattr(delta, "dt") else delta).astype("Int64")


def completed_sessions(view: AuditView) -> pd.DataFrame:
    """Sessions with status completed on or before D (the view holds nothing later)."""
    if "completed_sessions" not in view.cache:
        sessions = view.tables["sessions"]
        done = sessions[sessions["status"].eq("completed").fillna(False).astype(bool)]
        view.cache["completed_sessions"] = done
    return view.cache["completed_sessions"]


def first_session_date(view: AuditView) -> pd.Series:
    """Each client's first completed session date, indexed by client_id."""
    if "first_session_date" not in view.cache:
        done = completed_sessions(view)
        view.cache["first_session_date"] = (
            done.dropna(subset=["client_id"]).groupby("client_id")["session_date"].min()
        )
    return view.cache["first_session_date"]


def active_client_ids(view: AuditView, settings: Settings) -> pd.Index:
    """Clients with a completed session 0..active_client_days days before D."""
    key = "active_client_ids"
    if key not in view.cache:
        done = completed_sessions(view).dropna(subset=["client_id"])
        window = settings.column(done, "active_client_days")
        age = days_between(done["session_date"], view.as_of)
        recent = (age >= 0) & (age <= window)
        view.cache[key] = pd.Index(
            done.loc[recent.fillna(False).astype(bool), "client_id"].unique()
        )
    return view.cache[key]


def assessment_dates(view: AuditView) -> pd.DataFrame:
    """Assessments of kind initial or reassessment (not discharge), in the view."""
    if "assessment_dates" not in view.cache:
        assessments = view.tables["assessments"]
        kinds = assessments["kind"].isin(["initial", "reassessment"]).fillna(False)
        view.cache["assessment_dates"] = assessments[kinds.astype(bool)]
    return view.cache["assessment_dates"]


def latest_assessment_date(view: AuditView) -> pd.Series:
    """Each client's latest assessment date (initial or reassessment), by client_id."""
    if "latest_assessment_date" not in view.cache:
        dated = assessment_dates(view).dropna(subset=["client_id"])
        view.cache["latest_assessment_date"] = dated.groupby("client_id")["assessed_on"].max()
    return view.cache["latest_assessment_date"]


def initial_assessments(view: AuditView) -> pd.DataFrame:
    """Each client's initial assessment: earliest of kind initial, ties smallest id."""
    if "initial_assessments" not in view.cache:
        assessments = view.tables["assessments"]
        initial = assessments[assessments["kind"].eq("initial").fillna(False).astype(bool)]
        initial = initial.dropna(subset=["client_id"]).sort_values(
            ["client_id", "assessed_on", "assessment_id"], kind="stable"
        )
        view.cache["initial_assessments"] = initial.drop_duplicates("client_id", keep="first")
    return view.cache["initial_assessments"]


def referral_expiry(view: AuditView, settings: Settings) -> pd.Series:
    """valid_until, or referral_date + referral_validity_days; indexed like the referrals."""
    if "referral_expiry" not in view.cache:
        referrals = view.tables["referrals"]
        validity = settings.column(referrals, "referral_validity_days")
        default = referrals["referral_date"] + pd.to_timedelta(validity.astype("float64"), unit="D")
        view.cache["referral_expiry"] = referrals["valid_until"].fillna(default)
    return view.cache["referral_expiry"]
