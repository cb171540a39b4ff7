"""Facts for the reassessment rules (REA-001..REA-005).

Assessment dates are the dates of assessments of kind ``initial`` or
``reassessment``. The reassessment interval and the notice window are settings:
the derive step writes the resolved due dates and horizons into columns and the
suite ``expectations/rea.json`` compares columns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from metaudit.check.derive import common
from metaudit.check.frames import Frame
from metaudit.spec.contract import HIGHER_IS_BETTER, LOWER_IS_BETTER

if TYPE_CHECKING:
    from metaudit.check.view import AuditView
    from metaudit.spec.settings import Settings


def derive(view: AuditView, settings: Settings) -> list[Frame]:
    """Return the REA family's frames for the as-of view."""
    return [
        _session_after_assessment(view, settings),
        _active_client(view, settings),
        _reassessment(view),
        _client_progress(view),
    ]


# --- shared helpers -------------------------------------------------------------------------


def _days(counts: pd.Series) -> pd.Series:
    """Turn a per-row number of days (a resolved setting) into timedeltas."""
    return pd.to_timedelta(pd.to_numeric(counts).astype("float64"), unit="D")


def _lookup(keys: pd.Series, values: pd.Series) -> pd.Series:
    """``values[key]`` for each key, NA when absent (``values`` has a unique index).

    ``Series.map`` with an empty datetime mapper raises in pandas; reindexing does not.
    """
    return values.reindex(keys.to_numpy()).set_axis(keys.index)


def _reassessment_due_on(rows: pd.DataFrame, settings: Settings) -> pd.Series:
    """The day a reassessment falls due: latest assessment date + reassessment_interval_days.

    ``rows`` carry ``latest_assessment_on`` and the columns the setting is resolved by
    (practice, payer). REA-001 (per session) and REA-002/REA-003 (per active client)
    must agree on this day, so both take it from here.
    """
    interval = _days(settings.column(rows, "reassessment_interval_days"))
    return (rows["latest_assessment_on"] + interval).astype("datetime64[us]")


def _assessment_dates(view: AuditView) -> pd.DataFrame:
    """Dated assessments of kind initial or reassessment whose client is known."""
    dates = common.assessment_dates(view)
    dates = dates[dates["client_id"].notna() & dates["assessed_on"].notna()]
    return dates[["client_id", "assessment_id", "assessed_on"]]


def _existing_clients(view: AuditView) -> pd.DataFrame:
    """The clients rows (id and practice): client-level rules judge existing clients."""
    return view.tables["clients"][["client_id", "practice_id"]]


# --- sessions: REA-001 -----------------------------------------------------------------------


def _session_after_assessment(view: AuditView, settings: Settings) -> Frame:
    """Completed sessions preceded by an assessment date, with the reassessment due date.

    A session with no assessment on or before it is left out (REA-001 is not raised
    for it; DOC-002 speaks).
    """
    sessions = common.completed_sessions(view)
    dates = _assessment_dates(view)
    # Integer codes and positions only go through merge_asof: its "by" key is then
    # cheap and never an Arrow string (which it cannot factorize when a side is empty).
    clients = pd.Index(dates["client_id"].unique())
    session_client = common.positions(clients, sessions["client_id"])
    judged = (session_client >= 0) & sessions["session_date"].notna().to_numpy()
    left = pd.DataFrame(
        {
            "position": np.flatnonzero(judged),
            "client": session_client[judged],
            "session_date": sessions["session_date"].astype("datetime64[us]").to_numpy()[judged],
        }
    )
    right = pd.DataFrame(
        {
            "client": common.positions(clients, dates["client_id"]),
            "latest_assessment_on": dates["assessed_on"].astype("datetime64[us]").to_numpy(),
        }
    )
    if left.empty:
        latest = left.assign(latest_assessment_on=pd.Series(dtype="datetime64[us]"))
    else:
        # merge_asof finds, per session, the latest assessment date on or before it
        # (exact matches allowed) without a row per session and assessment pair.
        latest = pd.merge_asof(
            left.sort_values("session_date"),
            right.sort_values("latest_assessment_on"),
            left_on="session_date",
            right_on="latest_assessment_on",
            by="client",
            direction="backward",
        )
    latest = latest[latest["latest_assessment_on"].notna()].sort_values("position")
    rows = sessions.iloc[latest["position"].to_numpy()].copy()
    rows["latest_assessment_on"] = latest["latest_assessment_on"].to_numpy()
    rows["reassessment_due_on"] = _reassessment_due_on(rows, settings)
    return common.entity_frame(
        "rea_session",
        "session",
        rows,
        "session_id",
        ["session_date", "latest_assessment_on", "reassessment_due_on"],
    )


# --- active clients: REA-002, REA-003 --------------------------------------------------------


def _active_client(view: AuditView, settings: Settings) -> Frame:
    """Active clients with an assessment date, their reassessment due date and horizon.

    ``reassessment_due_on`` = latest assessment date + reassessment_interval_days
    (REA-002 fails when it is before D). ``upcoming_reassessment_due_on`` repeats it
    when it is on or after D (NA when already overdue, which REA-002 reports), and
    ``reassessment_notice_until`` = D + reassessment_notice_days (REA-003 fails when
    the due date is on or before it).
    """
    clients = _existing_clients(view)
    clients = clients[common.is_in(clients["client_id"], common.active_client_ids(view, settings))]
    latest = _assessment_dates(view).groupby("client_id")["assessed_on"].max()
    rows = clients[common.is_in(clients["client_id"], latest.index)].copy()
    rows["latest_assessment_on"] = _lookup(rows["client_id"], latest)
    rows["latest_assessment_on"] = rows["latest_assessment_on"].astype("datetime64[us]")
    notice = _days(settings.column(rows, "reassessment_notice_days"))
    as_of = pd.Timestamp(view.as_of)
    rows["as_of"] = pd.Series(as_of, index=rows.index).astype("datetime64[us]")
    rows["reassessment_due_on"] = _reassessment_due_on(rows, settings)
    rows["upcoming_reassessment_due_on"] = rows["reassessment_due_on"].where(
        rows["reassessment_due_on"] >= as_of
    )
    rows["reassessment_notice_until"] = (rows["as_of"] + notice).astype("datetime64[us]")
    return common.entity_frame(
        "rea_client",
        "client",
        rows,
        "client_id",
        [
            "latest_assessment_on",
            "as_of",
            "reassessment_due_on",
            "upcoming_reassessment_due_on",
            "reassessment_notice_until",
        ],
    )


# --- reassessments: REA-004 ------------------------------------------------------------------


def _reassessment(view: AuditView) -> Frame:
    """Every reassessment with the number of outcome measures recorded at it."""
    assessments = view.tables["assessments"]
    # An unreadable kind (NA) is no reassessment.
    is_reassessment = assessments["kind"].eq("reassessment").fillna(False).astype(bool)
    rows = assessments[is_reassessment].copy()
    # Counted by position: a bincount instead of a groupby over text keys.
    position = common.positions(
        rows["assessment_id"], view.tables["outcome_measures"]["assessment_id"]
    )
    counts = np.bincount(position[position >= 0], minlength=len(rows))
    rows["outcome_measure_count"] = pd.Series(counts, index=rows.index, dtype="Int64")
    return common.entity_frame(
        "rea_reassessment",
        "assessment",
        rows,
        "assessment_id",
        ["assessed_on", "outcome_measure_count"],
    )


# --- progress: REA-005 -----------------------------------------------------------------------


def _latest_reassessments(view: AuditView) -> pd.DataFrame:
    """Each client's latest reassessment (latest dated; ties: largest id, reading 10)."""
    assessments = view.tables["assessments"]
    rows = assessments[
        assessments["kind"].eq("reassessment").fillna(False).astype(bool)
        & assessments["client_id"].notna()
        & assessments["assessed_on"].notna()
    ]
    rows = rows.sort_values(["client_id", "assessed_on", "assessment_id"], kind="stable")
    return rows.drop_duplicates("client_id", keep="last")[["client_id", "assessment_id"]]


def _instrument_means(view: AuditView, assessment_ids: pd.Series) -> pd.DataFrame:
    """Mean value per catalogue instrument at each of the given assessments.

    Repeated measures of one instrument at one assessment are averaged (reading 10);
    an instrument outside the catalogue has no direction and is not used.
    """
    measures = view.tables["outcome_measures"]
    measures = measures[common.is_in(measures["assessment_id"], assessment_ids)]
    instrument = common.norm_code(measures["instrument"])
    catalogue = instrument.isin(LOWER_IS_BETTER + HIGHER_IS_BETTER)
    measures = measures.assign(instrument=instrument)[catalogue]
    return (
        measures.groupby(["assessment_id", "instrument"], sort=False)["value"]
        .mean()
        .rename("value")
        .reset_index()
    )


def _client_progress(view: AuditView) -> Frame:
    """Clients whose latest reassessment shares a catalogue instrument with the initial
    assessment, with the number of shared instruments that strictly improved.

    A client without a reassessment, or with no instrument measured at both, is left
    out: REA-005 is not raised for it.
    """
    initial = common.initial_assessments(view)[["client_id", "assessment_id"]]
    initial = initial[initial["client_id"].notna()]
    latest = _latest_reassessments(view)
    initial_means = _instrument_means(view, initial["assessment_id"]).merge(
        initial, on="assessment_id"
    )
    latest_means = _instrument_means(view, latest["assessment_id"]).merge(
        latest, on="assessment_id"
    )
    shared = initial_means.merge(
        latest_means, on=["client_id", "instrument"], suffixes=("_initial", "_latest")
    )
    lower = shared["instrument"].isin(LOWER_IS_BETTER)
    before = shared["value_initial"].astype("Float64")
    after = shared["value_latest"].astype("Float64")
    # Improvement must be shown by known values: an unknown average is no improvement.
    improved = (lower & (after < before)) | (~lower & (after > before))
    shared["improved"] = improved.fillna(False).astype(bool)
    per_client = shared.groupby("client_id").agg(
        shared_instrument_count=("instrument", "size"),
        improved_instrument_count=("improved", "sum"),
        latest_reassessment_id=("assessment_id_latest", "first"),
    )
    rows = _existing_clients(view).merge(per_client.reset_index(), on="client_id", how="inner")
    rows["shared_instrument_count"] = rows["shared_instrument_count"].astype("Int64")
    rows["improved_instrument_count"] = rows["improved_instrument_count"].astype("Int64")
    return common.entity_frame(
        "rea_client_progress",
        "client",
        rows,
        "client_id",
        ["latest_reassessment_id", "shared_instrument_count", "improved_instrument_count"],
    )
