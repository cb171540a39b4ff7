"""The compliance dashboard's figures, one query each, from the results store.

"Open" on an audit date means what the morning email counts: the practice's
findings of that date, less those under an acceptance covering the date
(:mod:`metaudit.results.acceptances`). Money is integer cents, as stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa

from metaudit.results.acceptances import accepted_table, in_force
from metaudit.results.base import (
    ATTRIBUTION,
    EXPOSURE,
    FINDINGS,
    HISTORY,
    PRACTICE_RUNS,
    PRACTICES,
    as_date,
)
from metaudit.results.digest import FilingDeadline, FindingAcceptance
from metaudit.results.findings import FindingRecords, _finding
from metaudit.spec.findings import Finding

SEVERITIES = ("critical", "warning", "notice")
# The exposure classes of FindingExposure, in the order the email shows them.
MONEY_CLASSES = ("fix_before_billing", "in_flight", "recoupment_risk")
# The documentation rules of a session, which the staff member who delivered it owns:
# incomplete log, late signature, uncertified staff, notes outside the scope of practice.
STAFF_RULES = ("DOC-008", "DOC-009", "DOC-010", "DOC-011")
HISTORY_DAYS = 90
RANK_CRITICAL = "critical"
RANK_EXPOSURE = "exposure"
RANKINGS = (RANK_CRITICAL, RANK_EXPOSURE)
DUE_DAYS = 7


@dataclass(frozen=True)
class SeverityDay:
    """The open findings of one audit date, by severity."""

    as_of: date
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class RuleCount:
    rule_id: str
    severity: str
    open: int
    exposure: int  # cents, all classes


@dataclass(frozen=True)
class PayerExposure:
    payer: str | None  # None: no single payer (or none) for the findings' records
    exposure: int
    findings: int


@dataclass(frozen=True)
class StaffCount:
    staff_id: str
    findings: int
    by_rule: dict[str, int]


@dataclass(frozen=True)
class DueThisWeek:
    findings: list[Finding]
    filing_deadlines: list[FilingDeadline]


@dataclass(frozen=True)
class ClientFinding:
    """One finding of a client's history, with its acceptance (if any)."""

    fingerprint: str
    rule_id: str
    severity: str
    entity_type: str
    entity_id: str
    first_seen: date
    last_seen: date
    resolved_on: date | None
    acceptance: FindingAcceptance | None = None
    message: str | None = None


@dataclass(frozen=True)
class PracticeRank:
    practice_id: str
    name: str
    as_of: date
    open_critical: int
    open: int
    exposure: int
    by_class: dict[str, int] = field(default_factory=dict)


def _open_findings(practice_id: str | None, *columns: Any) -> sa.Select[Any]:
    """FINDINGS outer-joined to the acceptances in force, restricted to the open ones."""
    accepted = accepted_table(practice_id)
    query = sa.select(*columns).select_from(
        FINDINGS.outerjoin(
            accepted,
            sa.and_(
                accepted.c.practice_id == FINDINGS.c.practice_id,
                accepted.c.fingerprint == FINDINGS.c.fingerprint,
            ),
        )
    )
    query = query.where(sa.or_(accepted.c.until.is_(None), accepted.c.until < FINDINGS.c.as_of))
    if practice_id is not None:
        query = query.where(FINDINGS.c.practice_id == practice_id)
    return query


def _with_exposure(query: sa.Select[Any]) -> sa.Select[Any]:
    return query.outerjoin(
        EXPOSURE,
        sa.and_(
            EXPOSURE.c.as_of == FINDINGS.c.as_of,
            EXPOSURE.c.practice_id == FINDINGS.c.practice_id,
            EXPOSURE.c.fingerprint == FINDINGS.c.fingerprint,
        ),
    )


def _money(column: str) -> sa.ColumnElement[Any]:
    return sa.func.coalesce(sa.func.sum(EXPOSURE.c[column]), 0)


def _all_money() -> sa.ColumnElement[Any]:
    """The exposure of every class, summed (cents)."""
    first, *rest = (_money(c) for c in MONEY_CLASSES)
    for part in rest:
        first = first + part
    return first


class DashboardRecords(FindingRecords):
    """The dashboard's figures; each method is one figure of one practice and date."""

    def latest_result_date(self, practice_id: str) -> date | None:
        """The practice's latest audit date with stored results."""
        query = sa.select(sa.func.max(PRACTICE_RUNS.c.as_of)).where(
            PRACTICE_RUNS.c.practice_id == practice_id, PRACTICE_RUNS.c.has_results.is_(True)
        )
        with self.engine.connect() as conn:
            value = conn.execute(query).scalar()
        return as_date(value) if value is not None else None

    def open_by_severity(
        self, practice_id: str, last: date, days: int = HISTORY_DAYS
    ) -> list[SeverityDay]:
        """The open findings by severity of each audit date with results in the ``days``
        days up to ``last``, oldest first (a date with none counts zeros)."""
        first = last - timedelta(days=days - 1)
        dates = sa.select(PRACTICE_RUNS.c.as_of).where(
            PRACTICE_RUNS.c.practice_id == practice_id,
            PRACTICE_RUNS.c.has_results.is_(True),
            PRACTICE_RUNS.c.as_of.between(first, last),
        )
        counts = (
            _open_findings(
                practice_id, FINDINGS.c.as_of, FINDINGS.c.severity, sa.func.count().label("n")
            )
            .where(FINDINGS.c.as_of.between(first, last))
            .group_by(FINDINGS.c.as_of, FINDINGS.c.severity)
        )
        with self.engine.connect() as conn:
            days_found = sorted(as_date(d) for d in conn.execute(dates).scalars())
            found = conn.execute(counts).all()
        out = {day: dict.fromkeys(SEVERITIES, 0) for day in days_found}
        for day, severity, n in found:
            out.setdefault(as_date(day), dict.fromkeys(SEVERITIES, 0))[severity] = int(n)
        return [SeverityDay(day, counts) for day, counts in sorted(out.items())]

    def accepted_count(self, practice_id: str, as_of: date) -> int:
        """How many findings of the audit date an acceptance covering it leaves out."""
        accepted = accepted_table(practice_id)
        query = (
            sa.select(sa.func.count())
            .select_from(
                FINDINGS.join(
                    accepted,
                    sa.and_(
                        accepted.c.practice_id == FINDINGS.c.practice_id,
                        accepted.c.fingerprint == FINDINGS.c.fingerprint,
                    ),
                )
            )
            .where(
                FINDINGS.c.practice_id == practice_id,
                FINDINGS.c.as_of == as_of,
                accepted.c.until >= as_of,
            )
        )
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def exposure_by_class(self, practice_id: str, as_of: date) -> dict[str, int]:
        """The open findings' exposure of the audit date per money class, in cents."""
        query = _with_exposure(
            _open_findings(practice_id, *(_money(c) for c in MONEY_CLASSES))
        ).where(FINDINGS.c.as_of == as_of)
        with self.engine.connect() as conn:
            row = conn.execute(query).one()
        return {name: int(value) for name, value in zip(MONEY_CLASSES, row, strict=True)}

    def exposure_by_payer(self, practice_id: str, as_of: date) -> list[PayerExposure]:
        """The open findings' exposure of the audit date per payer (of the finding's claim,
        else the client's single payer), largest first; payer None: no single payer."""
        total = _all_money()
        query = (
            _with_exposure(
                _open_findings(
                    practice_id, ATTRIBUTION.c.payer, total.label("money"), sa.func.count()
                )
            )
            .outerjoin(
                ATTRIBUTION,
                sa.and_(
                    ATTRIBUTION.c.as_of == FINDINGS.c.as_of,
                    ATTRIBUTION.c.practice_id == FINDINGS.c.practice_id,
                    ATTRIBUTION.c.fingerprint == FINDINGS.c.fingerprint,
                ),
            )
            .where(FINDINGS.c.as_of == as_of)
            .group_by(ATTRIBUTION.c.payer)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        items = [PayerExposure(payer, int(money), int(n)) for payer, money, n in rows]
        return sorted(items, key=lambda p: (-p.exposure, p.payer is None, p.payer or ""))

    def top_rules(self, practice_id: str, as_of: date, limit: int = 10) -> list[RuleCount]:
        """The rules with the most open findings on the audit date (ties: more money,
        then rule id), with their findings' exposure."""
        total = _all_money()
        query = (
            _with_exposure(
                _open_findings(
                    practice_id,
                    FINDINGS.c.rule_id,
                    FINDINGS.c.severity,
                    sa.func.count().label("n"),
                    total.label("money"),
                )
            )
            .where(FINDINGS.c.as_of == as_of)
            .group_by(FINDINGS.c.rule_id, FINDINGS.c.severity)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        items = [RuleCount(rule, sev, int(n), int(money)) for rule, sev, n, money in rows]
        items.sort(key=lambda r: (-r.open, -r.exposure, r.rule_id))
        return items[:limit]

    def due_this_week(self, practice_id: str, as_of: date, days: int = DUE_DAYS) -> DueThisWeek:
        """The open findings due within ``days`` of the audit date (soonest first) and the
        draft claims whose filing deadline falls in them (check.deadlines computed both)."""
        horizon = as_of + timedelta(days=days)
        query = (
            _open_findings(practice_id, FINDINGS)
            .where(FINDINGS.c.as_of == as_of, FINDINGS.c.due_date.between(as_of, horizon))
            .order_by(FINDINGS.c.due_date, FINDINGS.c.rule_id, FINDINGS.c.entity_id)
        )
        with self.engine.connect() as conn:
            findings = [_finding(row) for row in conn.execute(query).mappings()]
            deadlines = self._deadlines(conn, as_of, practice_id, as_of, horizon)
        return DueThisWeek(findings, deadlines)

    def staff_documentation(
        self, practice_id: str, as_of: date, limit: int = 10
    ) -> list[StaffCount]:
        """The staff whose sessions carry the most open documentation findings
        (:data:`STAFF_RULES`) on the audit date, by staff id, with the count per rule."""
        query = (
            _open_findings(practice_id, ATTRIBUTION.c.staff_id, FINDINGS.c.rule_id, sa.func.count())
            .join(
                ATTRIBUTION,
                sa.and_(
                    ATTRIBUTION.c.as_of == FINDINGS.c.as_of,
                    ATTRIBUTION.c.practice_id == FINDINGS.c.practice_id,
                    ATTRIBUTION.c.fingerprint == FINDINGS.c.fingerprint,
                ),
            )
            .where(
                FINDINGS.c.as_of == as_of,
                FINDINGS.c.rule_id.in_(STAFF_RULES),
                ATTRIBUTION.c.staff_id.is_not(None),
            )
            .group_by(ATTRIBUTION.c.staff_id, FINDINGS.c.rule_id)
        )
        by_staff: dict[str, dict[str, int]] = {}
        with self.engine.connect() as conn:
            for staff, rule, n in conn.execute(query):
                by_staff.setdefault(staff, {})[rule] = int(n)
        items = [
            StaffCount(s, sum(r.values()), dict(sorted(r.items()))) for s, r in by_staff.items()
        ]
        items.sort(key=lambda s: (-s.findings, s.staff_id))
        return items[:limit]

    def client_findings(self, practice_id: str, client_id: str) -> list[ClientFinding]:
        """Every finding of one client the practice's history holds (open first, then by
        rule and record), with first seen, resolved on, and its acceptance in force."""
        query = sa.select(HISTORY).where(
            HISTORY.c.practice_id == practice_id, HISTORY.c.client_id == client_id
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
            fingerprints = [row["fingerprint"] for row in rows]
            acceptances = self._acceptances_of(conn, practice_id, fingerprints)
            messages = self._latest_messages(conn, practice_id, fingerprints)
        items = [
            ClientFinding(
                fingerprint=row["fingerprint"],
                rule_id=row["rule_id"],
                severity=row["severity"],
                entity_type=row["entity_type"],
                entity_id=row["entity_id"],
                first_seen=as_date(row["first_seen"]),
                last_seen=as_date(row["last_seen"]),
                resolved_on=as_date(row["resolved_on"]) if row["resolved_on"] else None,
                acceptance=acceptances.get(row["fingerprint"]),
                message=messages.get(row["fingerprint"]),
            )
            for row in rows
        ]
        items.sort(key=lambda f: (f.resolved_on is not None, f.rule_id, f.entity_id))
        return items

    def _acceptances_of(
        self, conn: sa.Connection, practice_id: str, fingerprints: list[str]
    ) -> dict[str, FindingAcceptance]:
        if not fingerprints:
            return {}
        wanted = set(fingerprints)
        return {fp: a for fp, a in in_force(conn, practice_id).items() if fp in wanted}

    def _latest_messages(
        self, conn: sa.Connection, practice_id: str, fingerprints: list[str]
    ) -> dict[str, str]:
        out: dict[str, str] = {}
        for start in range(0, len(fingerprints), 500):
            chunk = fingerprints[start : start + 500]
            rows = conn.execute(
                sa.select(FINDINGS.c.fingerprint, FINDINGS.c.message)
                .where(FINDINGS.c.practice_id == practice_id, FINDINGS.c.fingerprint.in_(chunk))
                .order_by(FINDINGS.c.as_of)
            )
            out.update({fp: message for fp, message in rows})
        return out

    def practice_ranking(
        self, practice_ids: list[str] | None = None, by: str = RANK_CRITICAL
    ) -> list[PracticeRank]:
        """Every practice (or those given) on its latest audit date with results: its open
        critical findings, open findings and their exposure; ranked by open critical, then
        exposure (``by`` exposure: by exposure, then open critical), then id."""
        if by not in RANKINGS:
            raise ValueError(f"a ranking is by {' or '.join(RANKINGS)}, not {by!r}")
        latest = (
            sa.select(
                PRACTICE_RUNS.c.practice_id, sa.func.max(PRACTICE_RUNS.c.as_of).label("as_of")
            )
            .where(PRACTICE_RUNS.c.has_results.is_(True), PRACTICE_RUNS.c.practice_id.is_not(None))
            .group_by(PRACTICE_RUNS.c.practice_id)
        )
        if practice_ids is not None:
            latest = latest.where(PRACTICE_RUNS.c.practice_id.in_(practice_ids))
        latest_sq = latest.subquery("latest")
        counts = (
            _with_exposure(
                _open_findings(
                    None,
                    FINDINGS.c.practice_id,
                    sa.func.count(),
                    sa.func.sum(sa.case((FINDINGS.c.severity == "critical", 1), else_=0)),
                    *(_money(c) for c in MONEY_CLASSES),
                )
            )
            .join(
                latest_sq,
                sa.and_(
                    latest_sq.c.practice_id == FINDINGS.c.practice_id,
                    latest_sq.c.as_of == FINDINGS.c.as_of,
                ),
            )
            .group_by(FINDINGS.c.practice_id)
        )
        with self.engine.connect() as conn:
            dates = {p: as_date(d) for p, d in conn.execute(sa.select(latest_sq))}
            names = dict(conn.execute(sa.select(PRACTICES.c.practice_id, PRACTICES.c.name)).all())
            found = {row[0]: row[1:] for row in conn.execute(counts)}
        items = []
        for practice, day in dates.items():
            n, critical, *money = found.get(practice, (0, 0, 0, 0, 0))
            by_class = {c: int(v or 0) for c, v in zip(MONEY_CLASSES, money, strict=True)}
            items.append(
                PracticeRank(
                    practice_id=practice,
                    name=names.get(practice) or practice,
                    as_of=day,
                    open_critical=int(critical or 0),
                    open=int(n),
                    exposure=sum(by_class.values()),
                    by_class=by_class,
                )
            )
        if by == RANK_EXPOSURE:
            items.sort(key=lambda r: (-r.exposure, -r.open_critical, r.practice_id))
        else:
            items.sort(key=lambda r: (-r.open_critical, -r.exposure, r.practice_id))
        return items
