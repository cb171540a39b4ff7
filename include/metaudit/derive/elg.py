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

import pandas as pd

from metaudit.derive import common
from metaudit.frames import Frame

if TYPE_CHECKING:
    from metaudit.settings import Settings
    from metaudit.view import AuditView

_ID_TYPES = {"entity_id": "string", "practice_id": "string", "client_id": "string"}


def derive(view: AuditView, settings: Settings) -> list[Frame]:
    """Build the ELG frames of one as-of view."""
    lines = _live_lines(view)
    windows = _lines_in_windows(view, lines)
    return [
        _claim_frame(view, settings),
        _policy_frame(view, lines),
        _claim_line_frame(view, lines, windows),
        _authorization_frame(view, settings, windows),
        _treated_client_frame(view, settings),
        _client_frame(view, settings),
        _initial_assessment_frame(view),
    ]


def _identity(entity_id: pd.Series, rows: pd.DataFrame) -> pd.DataFrame:
    """The id columns of a frame: entity id, then the practice and client of ``rows``."""
    return pd.DataFrame(
        {
            "entity_id": entity_id.to_numpy(),
            "practice_id": rows["practice_id"].to_numpy(),
            "client_id": rows["client_id"].to_numpy(),
        }
    ).astype(_ID_TYPES)


def _live_lines(view: AuditView) -> pd.DataFrame:
    """Live claim lines of the view with the policy of their claim.

    The view already left out void claims with their lines, and lines dated
    after D; a line whose claim row is missing has no known policy.
    """
    claims = view.tables["claims"][["claim_id", "policy_id"]]
    lines = view.tables["claim_lines"]
    return lines.merge(claims, on="claim_id", how="left")


def _policies_of_claims(view: AuditView) -> pd.DataFrame:
    """Live claims with the facts of their policy (NA when the policy row is missing)."""
    policies = view.tables["insurance_policies"][
        ["policy_id", "payer_name", "plan_type", "network_status", "oon_benefits"]
    ]
    claims = view.tables["claims"]
    return claims.merge(policies, on="policy_id", how="left")


def _claim_frame(view: AuditView, settings: Settings) -> Frame:
    """ELG-001 and ELG-003: where each live claim is billed."""
    claims = _policies_of_claims(view)
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


def _policy_frame(view: AuditView, lines: pd.DataFrame) -> Frame:
    """ELG-002: the first billed service date and the first active eligibility check."""
    policies = view.tables["insurance_policies"]
    billed = policies[policies["policy_id"].isin(view.tables["claims"]["policy_id"])]
    first_service = lines.dropna(subset=["policy_id"]).groupby("policy_id")["service_date"].min()
    checks = view.tables["eligibility_checks"]
    active = checks[checks["status"].eq("active").fillna(False).astype(bool)]
    first_check = active.groupby("policy_id")["checked_on"].min()
    data = _identity(billed["policy_id"], billed)
    policy_ids = billed["policy_id"]
    # A policy whose live claims have no line in the view has no known first
    # service date: the check cannot be shown to precede it, so it fails.
    data["first_service_date"] = policy_ids.map(first_service).astype("datetime64[ns]").array
    data["first_active_check_on"] = policy_ids.map(first_check).astype("datetime64[ns]").array
    return Frame("elg_policy", "policy", data)


def _lines_in_windows(view: AuditView, lines: pd.DataFrame) -> pd.DataFrame:
    """Every (authorization, live line of its policy inside its window) pair.

    Columns: authorization_id, approved_visits, line_id, service_date and
    visit_no, the rank of the line's service date among the distinct service
    dates of the policy's live lines inside the window (1 = first visit).
    """
    authorizations = view.tables["authorizations"][
        ["authorization_id", "policy_id", "start_date", "end_date", "approved_visits"]
    ]
    billed = lines.dropna(subset=["policy_id", "service_date"])[
        ["line_id", "policy_id", "service_date"]
    ]
    pairs = billed.merge(authorizations.dropna(subset=["policy_id"]), on="policy_id")
    inside = (pairs["start_date"] <= pairs["service_date"]) & (
        pairs["service_date"] <= pairs["end_date"]
    )
    pairs = pairs[inside.fillna(False).astype(bool)].copy()
    pairs["visit_no"] = (
        pairs.groupby("authorization_id")["service_date"].rank(method="dense").astype("Int64")
    )
    return pairs


def _claim_line_frame(view: AuditView, lines: pd.DataFrame, windows: pd.DataFrame) -> Frame:
    """ELG-004 (an authorization covers the date) and ELG-005 (within approved visits)."""
    policies = view.tables["insurance_policies"][["policy_id", "requires_preauth"]]
    facts = lines.merge(policies, on="policy_id", how="left")
    # Only a readable "requires prior authorization" makes ELG-004 apply (reading 2).
    needs_auth = facts["requires_preauth"].astype("boolean").fillna(False).astype(bool)
    authorized = facts["line_id"].isin(windows["line_id"]).astype("boolean").where(needs_auth)

    # ELG-005 asserts "beyond the approved visits": an unknown approved count
    # proves nothing, so only authorizations with a readable count judge a line.
    counted = windows[windows["approved_visits"].notna()]
    beyond = (counted["visit_no"] > counted["approved_visits"]).astype(bool)
    beyond_lines = pd.Index(counted.loc[beyond, "line_id"].unique())
    judged_lines = pd.Index(counted["line_id"].unique())
    within = (~facts["line_id"].isin(beyond_lines)).astype("boolean")
    within = within.where(facts["line_id"].isin(judged_lines))

    data = _identity(facts["line_id"], facts)
    data["authorized"] = authorized.astype("boolean").array
    data["within_authorized_visits"] = within.astype("boolean").array
    return Frame("elg_claim_line", "claim_line", data)


def _authorization_frame(view: AuditView, settings: Settings, windows: pd.DataFrame) -> Frame:
    """ELG-006: visits left and end date of authorizations an active client relies on.

    Rows: authorizations covering D (start_date <= D <= end_date) whose client
    is active. ``visits_left`` may be negative; it is NA when approved_visits is
    unknown, and then only the end date can raise the notice.
    """
    as_of = view.as_of
    authorizations = view.tables["authorizations"]
    covers = (authorizations["start_date"] <= as_of) & (as_of <= authorizations["end_date"])
    active = authorizations["client_id"].isin(common.active_client_ids(view, settings))
    rows = authorizations[(covers.fillna(False) & active).astype(bool)]
    payers = view.tables["insurance_policies"][["policy_id", "payer_name"]]
    rows = rows.merge(payers, on="policy_id", how="left")

    visits_used = windows.groupby("authorization_id")["service_date"].nunique()
    used = rows["authorization_id"].map(visits_used).fillna(0).astype("Int64")
    visits_left = rows["approved_visits"].astype("Int64") - used
    left_notice = settings.column(rows, "auth_visits_left_notice", payer=rows["payer_name"])
    end_days = settings.column(rows, "auth_end_notice_days", payer=rows["payer_name"])
    horizon = as_of + pd.to_timedelta(end_days.astype("float64"), unit="D")

    data = _identity(rows["authorization_id"], rows)
    data["visits_left"] = visits_left.array
    data["visits_left_notice"] = left_notice.array
    data["end_date"] = rows["end_date"].array
    data["end_notice_horizon"] = horizon.astype("datetime64[ns]").array
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
    data["first_rehab_discharge_on"] = (
        client_ids.map(first_discharge).astype("datetime64[ns]").array
    )
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
