"""ELG family (coverage and medical necessity): the facts expectations/elg.json checks.

Frames, one row per entity:

- ``elg_claim``: every live claim in the view (ELG-001, ELG-003).
- ``elg_policy``: every policy with live claims (ELG-002).
- ``elg_claim_line``: every live claim line in the view (ELG-004, ELG-005).
- ``elg_authorization``: authorizations of active clients that cover D (ELG-006).
- ``elg_treated_client``: clients with a first session (ELG-007).
- ``elg_client``: every client (ELG-008).
- ``elg_initial_assessment``: each client's initial assessment (ELG-009).

Authorizations count only for their own policy; a visit is a distinct service
date billed on live claims of that policy inside the authorization's window,
up to D (the view holds no later line).
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

_ID_TYPES = {"entity_id": "string", "practice_id": "string", "client_id": "string"}
_POLICY_FACTS = [
    "policy_id",
    "payer_name",
    "plan_type",
    "network_status",
    "oon_benefits",
    "requires_preauth",
]
_NO_ROW = -1  # the row position of a policy that is not in the records


def derive(view: AuditView, settings: Settings) -> list[Frame]:
    """Build the ELG frames of one as-of view."""
    claims = _claims_with_policy(view)
    lines, visits = _live_lines_and_visits(view, claims)
    windows = _visits_in_windows(view, visits)
    return [
        _claim_frame(settings, claims),
        _policy_frame(view, claims, visits),
        _claim_line_frame(view, lines, visits, windows),
        _authorization_frame(view, settings, windows),
        _treated_client_frame(view, settings),
        _client_frame(view, settings),
        _initial_assessment_frame(view),
    ]


def _identity(entity_id: pd.Series, rows: pd.DataFrame) -> pd.DataFrame:
    """The id columns of a frame: entity id, then the practice and client of ``rows``."""
    return pd.DataFrame(
        {
            # .array keeps Arrow-backed strings as they are (to_numpy copies to objects).
            "entity_id": entity_id.array,
            "practice_id": rows["practice_id"].array,
            "client_id": rows["client_id"].array,
        }
    ).astype(_ID_TYPES)


def _policy_rows(view: AuditView, policy_ids: pd.Series) -> np.ndarray:
    """The row position of each policy id in the policies table (-1: no such policy).

    Later steps group and join on these small integers rather than on string
    ids, which matters at millions of claim lines.
    """
    policies = view.tables["insurance_policies"]
    position = common.positions(policies["policy_id"], policy_ids)
    return np.asarray(position, dtype=np.int64)


def _at(values: pd.Series, rows: np.ndarray) -> pd.Series:
    """``values`` at row positions ``rows``, NA where a position is -1 (no such row)."""
    return values.reset_index(drop=True).reindex(rows).reset_index(drop=True)


def _dates_by_key(
    dates: pd.Series, keys: pd.Series | np.ndarray
) -> pd.api.extensions.ExtensionArray:
    """``dates`` (indexed by a unique key) looked up for each of ``keys``; NaT when absent.

    Written with reindex so that an empty lookup still yields datetimes.
    """
    picked = dates.reindex(pd.Index(keys)).to_numpy()
    return pd.Series(pd.to_datetime(picked)).astype("datetime64[us]").array


def _claims_with_policy(view: AuditView) -> pd.DataFrame:
    """Live claims of the view with the facts of their policy (NA when it is missing)."""
    claims = view.tables["claims"]
    policies = view.tables["insurance_policies"][_POLICY_FACTS]
    rows = _policy_rows(view, claims["policy_id"])
    facts = policies.drop(columns="policy_id").reset_index(drop=True).reindex(rows)
    out = claims.reset_index(drop=True).join(facts.reset_index(drop=True))
    out["policy_row"] = rows
    return out


def _live_lines_and_visits(
    view: AuditView, claims: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Live claim lines with their policy row and visit row, and the visits.

    A visit is a distinct (policy, service date) billed on live claims. The view
    already left out void claims with their lines and lines dated after D; a
    line whose claim or policy row is missing belongs to no known policy
    (``policy_row`` -1, ``visit_row`` -1).
    """
    lines = view.tables["claim_lines"].reset_index(drop=True)
    claim_row = common.positions(claims["claim_id"], lines["claim_id"])
    policy_row = _at(claims["policy_row"], claim_row).fillna(_NO_ROW).to_numpy(dtype=np.int64)
    lines = lines.assign(policy_row=policy_row)
    known = (policy_row >= 0) & lines["service_date"].notna().to_numpy()
    grouped = lines.loc[known, ["policy_row", "service_date"]].groupby(
        ["policy_row", "service_date"], sort=True
    )
    visit_row = np.full(len(lines), _NO_ROW, dtype=np.int64)
    visit_row[known] = grouped.ngroup().to_numpy()
    lines["visit_row"] = visit_row
    visits = grouped.size().index.to_frame(index=False)
    return lines, visits


def _visits_in_windows(view: AuditView, visits: pd.DataFrame) -> pd.DataFrame:
    """Every (authorization, visit of its policy inside its window) pair.

    Columns: auth_row (position in the authorizations table), visit_row,
    service_date, approved_visits and visit_no, the rank of the visit's date
    among the policy's visits inside the window (1 = first visit). Only the
    authorization's own policy counts (reading 14).
    """
    authorizations = view.tables["authorizations"]
    windows = pd.DataFrame(
        {
            "auth_row": np.arange(len(authorizations)),
            "policy_row": _policy_rows(view, authorizations["policy_id"]),
            "start_date": authorizations["start_date"].to_numpy(),
            "end_date": authorizations["end_date"].to_numpy(),
            "approved_visits": authorizations["approved_visits"].astype("Int64").array,
        }
    )
    windows = windows[windows["policy_row"] >= 0]
    pairs = visits.assign(visit_row=np.arange(len(visits))).merge(windows, on="policy_row")
    inside = (pairs["start_date"] <= pairs["service_date"]) & (
        pairs["service_date"] <= pairs["end_date"]
    )
    pairs = pairs[inside.fillna(False).astype(bool)].copy()
    pairs["visit_no"] = pairs.groupby("auth_row")["service_date"].rank(method="dense")
    return pairs


def _claim_frame(settings: Settings, claims: pd.DataFrame) -> Frame:
    """ELG-001 and ELG-003: where each live claim is billed."""
    # Both rules assert a fact about the plan: they fire only on readable values
    # (reading 2), so an unknown plan type or network leaves the fact NA.
    excluded = settings.isin(claims, "plan_type", "excluded_plan_types", payer=claims["payer_name"])
    recognises = (~excluded).astype("boolean").where(claims["plan_type"].notna())
    out_of_network = claims["network_status"].eq("out_of_network").fillna(False).astype(bool)
    data = _identity(claims["claim_id"], claims)
    data["plan_recognises_medical_exercise"] = recognises.astype("boolean").array
    data["out_of_network_benefits"] = (
        claims["oon_benefits"].astype("boolean").where(out_of_network).array
    )
    return Frame("elg_claim", "claim", data)


def _policy_frame(view: AuditView, claims: pd.DataFrame, visits: pd.DataFrame) -> Frame:
    """ELG-002: the first billed service date and the first active eligibility check."""
    policies = view.tables["insurance_policies"].reset_index(drop=True)
    # Policies with live claims; a claim naming a missing policy is DQ-002's.
    billed_rows = np.unique(claims["policy_row"].to_numpy())
    billed_rows = billed_rows[billed_rows >= 0]
    billed = policies.iloc[billed_rows]
    first_service = visits.groupby("policy_row")["service_date"].min()
    checks = view.tables["eligibility_checks"]
    active = checks[checks["status"].eq("active").fillna(False).astype(bool)]
    first_check = active.groupby("policy_id")["checked_on"].min()
    data = _identity(billed["policy_id"], billed)
    # Live claims without any line (a draft being written; the view drops a claim
    # whose lines are all undated or after D) bill no service date yet: then any
    # active check in the view, all dated on or before D, is in time.
    first_dates = pd.Series(_dates_by_key(first_service, billed_rows))
    data["first_service_date"] = first_dates.fillna(view.as_of).astype("datetime64[us]").array
    data["first_active_check_on"] = _dates_by_key(first_check, billed["policy_id"])
    return Frame("elg_policy", "policy", data)


def _claim_line_frame(
    view: AuditView, lines: pd.DataFrame, visits: pd.DataFrame, windows: pd.DataFrame
) -> Frame:
    """ELG-004 (an authorization covers the date) and ELG-005 (within approved visits).

    Both are facts of a visit (policy and date); each line takes its visit's.
    """
    # One slot more than there are visits: a line without a visit (row -1)
    # reads the last slot, which stays False.
    slots = len(visits) + 1
    covered = np.zeros(slots, dtype=bool)
    covered[windows["visit_row"].to_numpy()] = True
    # ELG-005 asserts "beyond the approved visits": an unknown approved count
    # proves nothing, so only authorizations with a readable count judge a visit.
    counted = windows[windows["approved_visits"].notna()]
    judged = np.zeros(slots, dtype=bool)
    judged[counted["visit_row"].to_numpy()] = True
    beyond = np.zeros(slots, dtype=bool)
    over = (counted["visit_no"] > counted["approved_visits"]).fillna(False).astype(bool)
    beyond[counted.loc[over, "visit_row"].to_numpy()] = True

    visit_row = lines["visit_row"].to_numpy()
    requires = view.tables["insurance_policies"]["requires_preauth"].astype("boolean")
    # Only a readable "requires prior authorization" makes ELG-004 apply (reading 2).
    needs_auth = _at(requires, lines["policy_row"].to_numpy()).fillna(False).to_numpy(dtype=bool)

    data = _identity(lines["line_id"], lines)
    authorized = pd.array(covered[visit_row], dtype="boolean")
    authorized[~needs_auth] = pd.NA
    within = pd.array(~beyond[visit_row], dtype="boolean")
    within[~judged[visit_row]] = pd.NA
    data["authorized"] = authorized
    data["within_authorized_visits"] = within
    return Frame("elg_claim_line", "claim_line", data)


def _authorization_frame(view: AuditView, settings: Settings, windows: pd.DataFrame) -> Frame:
    """ELG-006: visits left and end date of authorizations an active client relies on.

    Rows: authorizations covering D (start_date <= D <= end_date) whose client
    is active. ``visits_left`` may be negative; it is NA when approved_visits is
    unknown, and then only the end date can raise the notice.
    """
    as_of = view.as_of
    authorizations = view.tables["authorizations"].reset_index(drop=True)
    used = np.bincount(windows["auth_row"].to_numpy(), minlength=len(authorizations))
    covers = (authorizations["start_date"] <= as_of) & (as_of <= authorizations["end_date"])
    active = common.is_in(authorizations["client_id"], common.active_client_ids(view, settings))
    keep = (covers.fillna(False) & active).to_numpy(dtype=bool)
    rows = authorizations[keep].reset_index(drop=True)
    policy_row = _policy_rows(view, rows["policy_id"])
    payer = _at(view.tables["insurance_policies"]["payer_name"], policy_row).astype("string")

    visits_left = rows["approved_visits"].astype("Int64") - pd.array(used[keep], dtype="Int64")
    left_notice = settings.column(rows, "auth_visits_left_notice", payer=payer)
    end_days = settings.column(rows, "auth_end_notice_days", payer=payer)
    horizon = as_of + pd.to_timedelta(end_days.astype("float64"), unit="D")

    data = _identity(rows["authorization_id"], rows)
    data["visits_left"] = visits_left.array
    data["visits_left_notice"] = left_notice.array
    data["end_date"] = rows["end_date"].array
    data["end_notice_horizon"] = horizon.astype("datetime64[us]").array
    data["due_date"] = rows["end_date"].dt.strftime("%Y-%m-%d").astype("string").array
    return Frame("elg_authorization", "authorization", data)


def _treated_client_frame(view: AuditView, settings: Settings) -> Frame:
    """ELG-007: first session date against the earliest prior-rehab discharge."""
    first_session = common.first_session_date(view)
    client_ids = pd.Series(first_session.index, dtype="string")
    discharges = view.tables["rehab_discharges"]
    # The view holds only discharges dated on or before D; an unknown discipline
    # is not a prior-rehab one (requirement on the unknown fails).
    rehab = settings.isin(discharges, "discipline", "prior_rehab_disciplines")
    prior = discharges[rehab.astype("boolean").fillna(False).astype(bool)]
    first_discharge = (
        prior.dropna(subset=["client_id"]).groupby("client_id")["discharge_date"].min()
    )
    clients = view.tables["clients"]
    practice_of = pd.Series(
        clients["practice_id"].to_numpy(), index=clients["client_id"].to_numpy()
    )
    data = pd.DataFrame(
        {
            "entity_id": client_ids.to_numpy(),
            "practice_id": client_ids.map(practice_of).to_numpy(),
            "client_id": client_ids.to_numpy(),
        }
    ).astype(_ID_TYPES)
    data["first_session_date"] = first_session.array
    data["first_rehab_discharge_on"] = _dates_by_key(first_discharge, client_ids)
    return Frame("elg_treated_client", "client", data)


def _client_frame(view: AuditView, settings: Settings) -> Frame:
    """ELG-008: how many qualifying conditions each client has on record."""
    clients = view.tables["clients"]
    conditions = view.tables["conditions"]
    qualifying = settings.isin(conditions, "category", "qualifying_condition_categories")
    counted = conditions[qualifying.astype("boolean").fillna(False).astype(bool)]
    count_of = counted.dropna(subset=["client_id"]).groupby("client_id").size()
    data = _identity(clients["client_id"], clients)
    data["qualifying_conditions"] = (
        clients["client_id"].map(count_of).fillna(0).astype("Int64").array
    )
    return Frame("elg_client", "client", data)


def _initial_assessment_frame(view: AuditView) -> Frame:
    """ELG-009: the functional deficits of each client's initial assessment."""
    initial = common.initial_assessments(view)
    data = _identity(initial["assessment_id"], initial)
    data["functional_deficits"] = initial["functional_deficits"].astype("string").array
    return Frame("elg_initial_assessment", "assessment", data)
