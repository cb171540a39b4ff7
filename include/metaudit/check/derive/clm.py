"""Claim follow-up (CLM-001, CLM-002): denied claims left unappealed, claims left unanswered.

One frame, ``clm_claim`` (claim), over the live claims of the as-of view. Both
rules assert a fact ("denied", "submitted", "more than N days"), so they fire
only on readable values: the day counts are NA unless the status matches and
the date is known. The limits are settings resolved per practice and per payer
(the payer of the claim's policy) and stand in their own columns, which the
suite compares with the day counts.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pandas as pd

from metaudit.check.derive.common import days_between
from metaudit.check.frames import Frame

if TYPE_CHECKING:
    from metaudit.check.view import AuditView
    from metaudit.spec.settings import Settings

log = logging.getLogger(__name__)


def derive(view: AuditView, settings: Settings) -> list[Frame]:
    """Build the CLM frame of the as-of view, with settings resolved per practice and payer."""
    claims = view.tables["claims"]
    policies = view.tables["insurance_policies"].set_index("policy_id")
    payer = claims["policy_id"].map(policies["payer_name"]).astype("string")
    as_of = pd.Timestamp(view.as_of)

    status = claims["status"].astype("string")

    # CLM-001: denied, no appeal on record (an unreadable appealed_on reads as NULL).
    unappealed_denial = (status == "denied").fillna(False) & claims["appealed_on"].isna()
    days_since_denial = days_between(claims["denied_on"], as_of).where(unappealed_denial, pd.NA)

    # CLM-002: submitted and still without an answer.
    awaiting = (status == "submitted").fillna(False)
    days_unanswered = days_between(claims["submitted_on"], as_of).where(awaiting, pd.NA)

    data = pd.DataFrame(
        {
            # Reading 8: the typed source nulls both when the client row is missing.
            "entity_id": claims["claim_id"].astype("string"),
            "practice_id": claims["practice_id"].astype("string"),
            "client_id": claims["client_id"].astype("string"),
            "status": status,
            "denied_on": claims["denied_on"],
            "submitted_on": claims["submitted_on"],
            "days_since_denial": days_since_denial.astype("Int64"),
            "denied_appeal_days": _setting_int(settings, claims, "denied_appeal_days", payer),
            "days_unanswered": days_unanswered.astype("Int64"),
            "unanswered_claim_days": _setting_int(settings, claims, "unanswered_claim_days", payer),
        },
        index=claims.index,
    ).reset_index(drop=True)
    log.debug("CLM frame: %d claims", len(data))
    return [Frame("clm_claim", "claim", data)]


def _setting_int(settings: Settings, df: pd.DataFrame, name: str, payer: pd.Series) -> pd.Series:
    """A numeric setting resolved per row (practice, payer) as Int64."""
    return pd.Series(settings.column(df, name, payer=payer), index=df.index).astype("Int64")
