"""The compliance dashboard's content: what ``GET /dashboard`` shows a user.

A practice's page: its open findings over the last 90 days by severity, the open
findings' exposure by class and by payer, the top rules, what comes due this week,
the staff whose sessions carry the most documentation findings, and one client's
findings on demand; an admin without a practice sees the network's practices
ranked by open critical findings, then exposure. Every number is one query of
:mod:`metaudit.results.dashboard` (accepted findings are not open); this module only
decides who may see what and lays the figures out for ``templates/dashboard.html``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from fastapi import HTTPException
from markupsafe import Markup

from metaudit.mail.content import money
from metaudit.results.acceptances import REASON_LENGTH
from metaudit.results.dashboard import (
    DUE_DAYS,
    HISTORY_DAYS,
    MONEY_CLASSES,
    RANK_CRITICAL,
    RANKINGS,
    SEVERITIES,
    STAFF_RULES,
    ClientFinding,
    DueThisWeek,
    PayerExposure,
    RuleCount,
    SeverityDay,
    StaffCount,
)
from metaudit.spec.rulebook import RULES
from metaudit.web import charts
from metaudit.web.access import Viewer
from metaudit.web.context import WebContext

CLASS_NAMES = {
    "fix_before_billing": "Fix before billing (draft claims)",
    "in_flight": "In flight (submitted, denied, appealed)",
    "recoupment_risk": "Recoupment risk (paid claims)",
}


@dataclass(frozen=True)
class Board:
    """One practice's dashboard on its latest audit date."""

    practice_id: str
    name: str
    as_of: date
    history: list[SeverityDay]
    history_chart: Markup
    open_now: dict[str, int]
    open_total: int
    accepted: int
    by_class: dict[str, int]
    exposure_total: int
    class_chart: Markup
    by_payer: list[PayerExposure]
    payer_chart: Markup
    top_rules: list[RuleCount]
    due: DueThisWeek
    due_until: date
    staff: list[StaffCount]


@dataclass(frozen=True)
class ClientView:
    practice_id: str
    client_id: str
    findings: list[ClientFinding]
    today: str


def _rule_title(rule_id: str) -> str:
    rule = RULES.get(rule_id)
    return rule.title if rule is not None else ""


def board(ctx: WebContext, practice_id: str) -> Board:
    """The practice's figures on its latest audit date with results (404 without any)."""
    store = ctx.store
    as_of = store.latest_result_date(practice_id)
    if as_of is None:
        raise HTTPException(404, f"practice {practice_id} has no stored results yet")
    history = store.open_by_severity(practice_id, as_of, HISTORY_DAYS)
    open_now = history[-1].counts if history else dict.fromkeys(SEVERITIES, 0)
    by_class = store.exposure_by_class(practice_id, as_of)
    by_payer = store.exposure_by_payer(practice_id, as_of)
    ranked = store.practice_ranking([practice_id])
    return Board(
        practice_id=practice_id,
        name=ranked[0].name if ranked else practice_id,
        as_of=as_of,
        history=history,
        history_chart=charts.severity_history(history),
        open_now=open_now,
        open_total=sum(open_now.values()),
        accepted=store.accepted_count(practice_id, as_of),
        by_class=by_class,
        exposure_total=sum(by_class.values()),
        class_chart=charts.money_bars(
            [(CLASS_NAMES[c].split(" (")[0], by_class[c], c) for c in MONEY_CLASSES],
            "exposure-classes",
            "Open exposure by class",
        ),
        by_payer=by_payer,
        payer_chart=charts.money_bars(
            [(p.payer or "no single payer", p.exposure, "payer") for p in by_payer[:12]],
            "exposure-payers",
            "Open exposure by payer",
        ),
        top_rules=store.top_rules(practice_id, as_of),
        due=store.due_this_week(practice_id, as_of, DUE_DAYS),
        due_until=as_of + timedelta(days=DUE_DAYS),
        staff=store.staff_documentation(practice_id, as_of),
    )


def dashboard(
    ctx: WebContext,
    who: Viewer,
    *,
    practice_id: str | None,
    client_id: str | None,
    rank: str | None = None,
) -> dict[str, Any]:
    """The template's values for a request; 403 for a practice the user is not granted,
    404 for one without results or a client without findings there."""
    store = ctx.store
    admin = ctx.policy.is_admin(who)
    if practice_id is not None and not ctx.policy.may_see(who, practice_id):
        raise HTTPException(403, "you are not granted this practice's findings")
    if client_id is not None and practice_id is None:
        raise HTTPException(422, "client_id needs the practice_id of its practice")
    by = rank or RANK_CRITICAL
    if by not in RANKINGS:
        raise HTTPException(422, f"rank must be {' or '.join(RANKINGS)}")
    ranking = None
    if admin:
        network = store.practice_ranking(by=by)
        visible = sorted(r.practice_id for r in network)
        if practice_id is None:
            ranking = network
    else:
        visible = ctx.policy.practices_of(who, ctx.policy.viewers)
        if practice_id is None:
            if len(visible) == 1 and store.latest_result_date(visible[0]) is not None:
                # A user of one practice lands on it (before its first run: the empty list).
                practice_id = visible[0]
            else:
                ranking = store.practice_ranking(visible, by=by)
    client = None
    if practice_id is not None and client_id is not None:
        found = store.client_findings(practice_id, client_id)
        if not found:
            raise HTTPException(404, f"practice {practice_id} has no finding of client {client_id}")
        client = ClientView(practice_id, client_id, found, ctx.today().isoformat())
    return {
        "title": "Compliance dashboard",
        "practices": visible,
        "practice_id": practice_id,
        "client_id": client_id,
        "ranking": ranking,
        "rank": by,
        "board": board(ctx, practice_id) if practice_id is not None else None,
        "client": client,
        "severities": SEVERITIES,
        "classes": MONEY_CLASSES,
        "class_names": CLASS_NAMES,
        "staff_rules": STAFF_RULES,
        "history_days": HISTORY_DAYS,
        "reason_length": REASON_LENGTH,
        "money": money,
        "rule_title": _rule_title,
    }
