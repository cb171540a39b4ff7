"""REF family (referral validity): the facts that expectations/ref.json checks.

Frames, one row per entity:

- ``ref_client``: every client with a completed session (REF-001).
- ``ref_session``: every completed session (REF-002).
- ``ref_referral``: every referral in the as-of view (REF-003, REF-005 to REF-009).
- ``ref_supervised_referral``: referrals whose referrer holds a supervised
  credential, NP or PA by default (REF-004).

A referral's expiry is its valid_until, else referral_date plus the practice's
referral validity; it covers a date s when referral_date <= s <= expiry.
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

ONE_DAY = pd.Timedelta(days=1)


def derive(view: AuditView, settings: Settings) -> list[Frame]:
    """Build the REF frames of one as-of view."""
    referrals = _referrals(view, settings)
    return [
        _client_frame(view, referrals),
        _session_frame(view, referrals),
        _referral_frame(view, settings, referrals),
        _supervised_referral_frame(settings, referrals),
    ]


def _referrals(view: AuditView, settings: Settings) -> pd.DataFrame:
    """The referrals of the view with their expiry and referring provider's facts."""
    referrals = view.tables["referrals"].copy()
    referrals["expiry"] = common.referral_expiry(view, settings)
    providers = view.tables["providers"][["provider_id", "credential", "npi"]]
    # A missing provider row leaves credential and NPI unknown (reading 19).
    referrals = referrals.merge(
        providers.rename(columns={"credential": "referrer_credential", "npi": "referrer_npi"}),
        on="provider_id",
        how="left",
    )
    supervisors = providers[["provider_id", "credential"]].rename(
        columns={"provider_id": "supervising_provider_id", "credential": "supervisor_credential"}
    )
    return referrals.merge(supervisors, on="supervising_provider_id", how="left")


def _practice_of_clients(view: AuditView, client_ids: pd.Index) -> pd.Series:
    """The practice of each client id (from its clients row), aligned to client_ids."""
    clients = view.tables["clients"]
    practice_of = pd.Series(
        clients["practice_id"].to_numpy(), index=clients["client_id"].to_numpy()
    )
    return pd.Series(client_ids.map(practice_of), dtype="string")


def _client_frame(view: AuditView, referrals: pd.DataFrame) -> Frame:
    """REF-001: clients that had a first session, with how many referrals they have."""
    client_ids = pd.Index(common.first_session_date(view).index, dtype="string")
    count_of = referrals.dropna(subset=["client_id"]).groupby("client_id").size()
    data = pd.DataFrame(
        {
            "entity_id": pd.Series(client_ids, dtype="string"),
            "practice_id": _practice_of_clients(view, client_ids),
            "client_id": pd.Series(client_ids, dtype="string"),
            "referral_count": pd.Series(
                count_of.reindex(client_ids, fill_value=0).to_numpy(), dtype="Int64"
            ),
        }
    )
    return Frame("ref_client", "client", data)


def _session_frame(view: AuditView, referrals: pd.DataFrame) -> Frame:
    """REF-002: whether some referral of the client covers each completed session."""
    sessions = common.completed_sessions(view)
    dated = referrals.dropna(subset=["client_id"])[["client_id", "referral_date", "expiry"]]
    # One join of sessions to their client's referrals; the results go back by
    # row position, which avoids more passes over string ids (1M sessions).
    days = pd.DataFrame(
        {
            "row": np.arange(len(sessions)),
            "client_id": sessions["client_id"].array,
            "session_date": sessions["session_date"].array,
        }
    ).dropna(subset=["client_id"])
    pairs = days.merge(dated, on="client_id")
    covers = (pairs["referral_date"] <= pairs["session_date"]) & (
        pairs["session_date"] <= pairs["expiry"]
    )
    covered = np.zeros(len(sessions), dtype=bool)
    covered[pairs.loc[covers.fillna(False).astype(bool), "row"].to_numpy()] = True
    has_referral = np.zeros(len(sessions), dtype=bool)
    has_referral[pairs["row"].to_numpy()] = True
    # A client without any referral is REF-001's finding, not one per session. A
    # session whose client row is missing has no known referral: not covered.
    no_referral = sessions["client_id"].notna().to_numpy() & ~has_referral
    data = pd.DataFrame(
        {
            "entity_id": sessions["session_id"].array,
            "practice_id": sessions["practice_id"].array,
            "client_id": sessions["client_id"].array,
        }
    ).astype({"entity_id": "string", "practice_id": "string", "client_id": "string"})
    data["covered_by_referral"] = pd.array(covered, dtype="boolean")
    data.loc[no_referral, "covered_by_referral"] = pd.NA
    return Frame("ref_session", "session", data)


def _diagnosis_counts(view: AuditView, referral_ids: pd.Series) -> pd.Series:
    """How many diagnoses (rows with a code) each referral lists, aligned to referral_ids."""
    diagnoses = view.tables["referral_diagnoses"]
    listed = diagnoses[diagnoses["icd10_code"].notna()]
    count_of = listed.groupby("referral_id").size()
    return pd.Series(
        referral_ids.map(count_of).fillna(0).to_numpy(), index=referral_ids.index, dtype="Int64"
    )


def _unrenewed_expiry(
    view: AuditView, settings: Settings, referrals: pd.DataFrame
) -> tuple[pd.Series, pd.Series]:
    """REF-009 facts: the expiry of each referral that an active client's care hangs on.

    Returns (unrenewed_expiry, notice_horizon) aligned to ``referrals``. The
    expiry is set only for a referral of an active client that covers D and is
    followed by no referral covering the day after it expires; the horizon is
    D + referral_expiry_notice_days. A notice is due when expiry <= horizon.
    """
    as_of = view.as_of
    active = common.is_in(referrals["client_id"], common.active_client_ids(view, settings))
    covers_as_of = (referrals["referral_date"] <= as_of) & (as_of <= referrals["expiry"])
    candidate = (active & covers_as_of.fillna(False)).astype(bool)
    candidates = referrals.loc[candidate, ["referral_id", "client_id", "expiry"]]
    candidates = candidates.assign(next_day=candidates["expiry"] + ONE_DAY)
    others = referrals.dropna(subset=["client_id"])[["client_id", "referral_date", "expiry"]]
    pairs = candidates.merge(others, on="client_id", suffixes=("", "_other"))
    renews = (pairs["referral_date"] <= pairs["next_day"]) & (
        pairs["next_day"] <= pairs["expiry_other"]
    )
    renewed_ids = pd.Index(pairs.loc[renews.fillna(False).astype(bool), "referral_id"].unique())
    judged = candidate & ~common.is_in(referrals["referral_id"], renewed_ids)
    unrenewed = referrals["expiry"].where(judged)
    notice_days = settings.column(referrals, "referral_expiry_notice_days")
    horizon = as_of + pd.to_timedelta(notice_days.astype("float64"), unit="D")
    return unrenewed, horizon.astype("datetime64[us]").where(judged)


def _referral_frame(view: AuditView, settings: Settings, referrals: pd.DataFrame) -> Frame:
    """REF-003, REF-005..REF-009: one row per referral in the view."""
    # An unknown credential is not an allowed one (reading 2): False, not NA.
    credential_allowed = settings.isin(referrals, "referrer_credential", "referrer_credentials")
    names_medical_exercise = settings.regex_any(
        referrals, "services_requested", "medical_exercise_patterns"
    )
    unrenewed, horizon = _unrenewed_expiry(view, settings, referrals)
    data = pd.DataFrame(
        {
            "entity_id": referrals["referral_id"].astype("string"),
            "practice_id": referrals["practice_id"].astype("string"),
            "client_id": referrals["client_id"].astype("string"),
            "referrer_credential_allowed": credential_allowed.astype("boolean").fillna(False),
            # GX skips nulls; an empty NPI is what a missing one must fail as.
            "referrer_npi": referrals["referrer_npi"].astype("string").fillna(""),
            "signed_on": referrals["signed_on"],
            "names_medical_exercise": names_medical_exercise.astype("boolean").fillna(False),
            "diagnosis_count": _diagnosis_counts(view, referrals["referral_id"]),
            "unrenewed_expiry": unrenewed,
            "expiry_notice_horizon": horizon,
            "expiry_due_date": unrenewed.dt.strftime("%Y-%m-%d").astype("string"),
        }
    )
    return Frame("ref_referral", "referral", data)


def _supervised_referral_frame(settings: Settings, referrals: pd.DataFrame) -> Frame:
    """REF-004: referrals from a supervised credential (NP, PA) and their supervisor.

    Only a readable supervised credential makes the rule apply (reading 2); an
    unknown referrer credential is REF-003's finding.
    """
    supervised = settings.isin(referrals, "referrer_credential", "supervised_credentials")
    rows = referrals[supervised.astype("boolean").fillna(False).astype(bool)]
    named = rows["supervising_provider_id"].notna()
    # A named supervisor missing from the provider records has no known credential.
    allowed = settings.isin(rows, "supervisor_credential", "supervisor_credentials")
    allowed = allowed.astype("boolean").fillna(False).where(named)
    data = pd.DataFrame(
        {
            "entity_id": rows["referral_id"].astype("string"),
            "practice_id": rows["practice_id"].astype("string"),
            "client_id": rows["client_id"].astype("string"),
            "supervising_provider_id": rows["supervising_provider_id"].astype("string"),
            "supervisor_credential_allowed": allowed.astype("boolean"),
        }
    ).reset_index(drop=True)
    return Frame("ref_supervised_referral", "referral", data)
