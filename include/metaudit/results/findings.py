"""The results store's findings: each practice's findings per as-of date, their exposure
and the draft claims' filing deadlines, the findings history, and the digest of a date.

Every write is one transaction keyed by as-of date and practice, and written as
an UPSERT by key: a rerun of a date updates the rows it finds, inserts the new
ones and deletes the ones that are gone, so it replaces that date's results and
never duplicates them; rows that did not change are not touched at all.
"""

from __future__ import annotations

import logging
import time
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from metaudit.results.acceptances import in_force
from metaudit.results.base import (
    ATTRIBUTION,
    DEADLINES,
    EXPOSURE,
    FINDINGS,
    HISTORY,
    PRACTICE_RUNS,
    PRACTICES,
    SUCCESS,
    StoreBase,
    as_date,
    delete_ids,
    of_practice,
    rounded_timings,
    utc_now,
)
from metaudit.results.digest import (
    FilingDeadline,
    FindingAttribution,
    FindingExposure,
    PracticeDigest,
    TrackedFinding,
)
from metaudit.results.runs import upsert_status
from metaudit.spec.findings import FIELDS, Finding

log = logging.getLogger(__name__)

# A finding's columns besides its key (as-of date, practice, fingerprint).
_FINDING_FIELDS = tuple(f for f in FIELDS if f not in ("as_of", "practice_id", "fingerprint"))
# A finding's exposure besides its key (integer cents per class; digest.FindingExposure).
EXPOSURE_FIELDS = (
    "lines",
    "fix_before_billing",
    "in_flight",
    "recoupment_risk",
    "claim_id",
)
ATTRIBUTION_FIELDS = ("staff_id", "payer")
_DEADLINE_FIELDS = (
    "client_id",
    "earliest_service_date",
    "timely_filing_days",
    "deadline",
    "charges",
)
_BIGINT_MAX = 2**63 - 1
_HISTORY_FIELDS = (
    "rule_id",
    "severity",
    "entity_type",
    "entity_id",
    "client_id",
    "first_seen",
    "last_seen",
    "resolved_on",
)


@dataclass(frozen=True)
class StoredPractice:
    """What persisting one practice's findings of one as-of date did to the store."""

    practice_id: str | None
    as_of: str
    findings: int
    inserted: int
    updated: int
    deleted: int
    by_severity: dict[str, int] = field(default_factory=dict)


class FindingRecords(StoreBase):
    """The findings, their exposure and deadlines, and their history in the results store."""

    def persist_practice(
        self,
        run_id: str,
        as_of: date,
        practice_id: str | None,
        findings: Iterable[Finding],
        timings: dict[str, Any] | None = None,
        results_dir: str | None = None,
        started_at: datetime | None = None,
        exposure: dict[str, FindingExposure] | None = None,
        deadlines: Sequence[FilingDeadline] | None = None,
        attribution: dict[str, FindingAttribution] | None = None,
    ) -> StoredPractice:
        """Store one practice's findings of one as-of date (practice None: the run-level
        findings that name no practice), their exposure by fingerprint (none given: none
        stored), their staff and payer by fingerprint (``attribution``), the timely-filing
        deadlines of its draft claims, its status, and
        recompute its history; one transaction, so a failure leaves the store as it was."""
        began = time.perf_counter()
        rows = _finding_rows(findings, as_of, practice_id)
        money = _exposure_rows(exposure or {}, rows, as_of, practice_id)
        due = _deadline_rows(deadlines or (), as_of, practice_id)
        attributed = _attribution_rows(attribution or {}, rows, as_of, practice_id)
        with self._transaction() as conn:
            inserted, updated, deleted = self._replace_rows(
                conn, FINDINGS, _FINDING_FIELDS, as_of, practice_id, rows
            )
            self._replace_rows(conn, EXPOSURE, EXPOSURE_FIELDS, as_of, practice_id, money)
            self._replace_rows(
                conn, ATTRIBUTION, ATTRIBUTION_FIELDS, as_of, practice_id, attributed
            )
            self._replace_rows(
                conn, DEADLINES, _DEADLINE_FIELDS, as_of, practice_id, due, key="claim_id"
            )
            counts = Counter(row["severity"] for row in rows.values())
            status = {
                "run_id": run_id,
                "status": SUCCESS,
                "has_results": True,
                "findings": len(rows),
                "critical": counts.get("critical", 0),
                "warning": counts.get("warning", 0),
                "notice": counts.get("notice", 0),
                "results_dir": results_dir,
                "error": None,
                "started_at": started_at,
            }
            # The history counts this date among the practice's result dates: status first.
            upsert_status(conn, as_of, practice_id, **status, timings={})
            self._recompute_history(conn, practice_id)
            stages = {**(timings or {}), "persist": time.perf_counter() - began}
            upsert_status(
                conn,
                as_of,
                practice_id,
                **status,
                timings=rounded_timings(stages),
                finished_at=utc_now(),
            )
        stored = StoredPractice(
            practice_id, as_of.isoformat(), len(rows), inserted, updated, deleted, dict(counts)
        )
        log.info(
            "stored %s as of %s: %d findings (%d new rows, %d changed, %d removed)",
            practice_id or "run-level findings",
            as_of,
            len(rows),
            inserted,
            updated,
            deleted,
        )
        return stored

    # -- findings -----------------------------------------------------------------------

    def _replace_rows(
        self,
        conn: sa.Connection,
        table: sa.Table,
        fields: Sequence[str],
        as_of: date,
        practice_id: str | None,
        rows: dict[str, dict[str, Any]],
        key: str = "fingerprint",
    ) -> tuple[int, int, int]:
        """Make one as-of date and practice's rows of a table keyed by ``key`` (findings
        and their exposure by fingerprint, deadlines by claim) the given ones: UPSERT by
        key, the rest deleted."""
        existing = {
            row[key]: row
            for row in conn.execute(
                sa.select(table).where(
                    table.c.as_of == as_of, of_practice(table.c.practice_id, practice_id)
                )
            ).mappings()
        }
        gone = [existing[fp]["id"] for fp in existing.keys() - rows.keys()]
        changed = [
            {"row_id": existing[fp]["id"], **{k: row[k] for k in fields}}
            for fp, row in rows.items()
            if fp in existing and any(existing[fp][k] != row[k] for k in fields)
        ]
        new = [row for fp, row in rows.items() if fp not in existing]
        delete_ids(conn, table, gone)
        if changed:
            conn.execute(
                table.update()
                .where(table.c.id == sa.bindparam("row_id"))
                .values({k: sa.bindparam(k) for k in fields}),
                changed,
            )
        if new:
            conn.execute(table.insert(), new)
        return len(new), len(changed), len(gone)

    def filing_deadlines(
        self,
        as_of: date,
        practice_id: str | None,
        *,
        first: date | None = None,
        last: date | None = None,
    ) -> list[FilingDeadline]:
        """The stored filing deadlines of one as-of date and practice (those from
        ``first`` to ``last`` when given), soonest first, then by claim id."""
        with self.engine.connect() as conn:
            return self._deadlines(conn, as_of, practice_id, first, last)

    def _deadlines(
        self,
        conn: sa.Connection,
        as_of: date,
        practice_id: str | None,
        first: date | None,
        last: date | None,
    ) -> list[FilingDeadline]:
        table = DEADLINES
        query = sa.select(table).where(
            table.c.as_of == as_of, of_practice(table.c.practice_id, practice_id)
        )
        if first is not None:
            query = query.where(table.c.deadline >= first)
        if last is not None:
            query = query.where(table.c.deadline <= last)
        rows = conn.execute(query.order_by(table.c.deadline, table.c.claim_id)).mappings()
        return [
            FilingDeadline(
                claim_id=row["claim_id"],
                client_id=row["client_id"],
                earliest_service_date=as_date(row["earliest_service_date"]).isoformat(),
                timely_filing_days=row["timely_filing_days"],
                deadline=as_date(row["deadline"]).isoformat(),
                charges=row["charges"],
            )
            for row in rows
        ]

    def exposure(self, as_of: date, practice_id: str | None) -> dict[str, FindingExposure]:
        """The stored exposure of one as-of date and practice's findings, by fingerprint."""
        with self.engine.connect() as conn:
            return self._exposure(conn, as_of, practice_id)

    def _exposure(
        self, conn: sa.Connection, as_of: date, practice_id: str | None
    ) -> dict[str, FindingExposure]:
        table = EXPOSURE
        rows = conn.execute(
            sa.select(table).where(
                table.c.as_of == as_of, of_practice(table.c.practice_id, practice_id)
            )
        ).mappings()
        return {
            row["fingerprint"]: FindingExposure(**{k: row[k] for k in EXPOSURE_FIELDS})
            for row in rows
        }

    def findings(self, as_of: date, practice_id: str | None) -> list[Finding]:
        """The stored findings of one as-of date and practice (None: the run-level ones)."""
        table = FINDINGS
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(table).where(
                    table.c.as_of == as_of, of_practice(table.c.practice_id, practice_id)
                )
            ).mappings()
            return sorted((_finding(row) for row in rows), key=Finding.sort_key)

    # -- history ------------------------------------------------------------------------

    def _result_dates(
        self, conn: sa.Connection, practice_id: str | None, up_to: date | None = None
    ) -> list[date]:
        table = PRACTICE_RUNS
        query = sa.select(table.c.as_of).where(
            of_practice(table.c.practice_id, practice_id), table.c.has_results.is_(True)
        )
        if up_to is not None:
            query = query.where(table.c.as_of <= up_to)
        return sorted(conn.execute(query).scalars())

    def _stretches(
        self, conn: sa.Connection, practice_id: str | None, up_to: date | None = None
    ) -> dict[str, tuple[date, date]]:
        """Per fingerprint, the latest stretch of consecutive result dates that found it.

        Gaps and islands in SQL: numbering the practice's result dates and, apart,
        each fingerprint's dates, the difference of the two numbers is the same all
        along one unbroken stretch. Only one row per stretch leaves the database.
        """
        status = PRACTICE_RUNS
        table = FINDINGS
        dates = sa.select(
            status.c.as_of,
            sa.func.row_number().over(order_by=status.c.as_of).label("date_rank"),
        ).where(of_practice(status.c.practice_id, practice_id), status.c.has_results.is_(True))
        found = sa.select(table.c.fingerprint, table.c.as_of).where(
            of_practice(table.c.practice_id, practice_id)
        )
        if up_to is not None:
            dates = dates.where(status.c.as_of <= up_to)
            found = found.where(table.c.as_of <= up_to)
        ranked_dates = dates.subquery("ranked_dates")
        found_sq = found.subquery("found")
        occurrences = (
            sa.select(
                found_sq.c.fingerprint,
                found_sq.c.as_of,
                (
                    ranked_dates.c.date_rank
                    - sa.func.row_number().over(
                        partition_by=found_sq.c.fingerprint, order_by=found_sq.c.as_of
                    )
                ).label("stretch"),
            )
            .join(ranked_dates, ranked_dates.c.as_of == found_sq.c.as_of)
            .subquery("occurrences")
        )
        query = sa.select(
            occurrences.c.fingerprint,
            sa.func.min(occurrences.c.as_of),
            sa.func.max(occurrences.c.as_of),
        ).group_by(occurrences.c.fingerprint, occurrences.c.stretch)
        latest: dict[str, tuple[date, date]] = {}
        for fingerprint, first, last in conn.execute(query):
            first, last = as_date(first), as_date(last)
            if fingerprint not in latest or last > latest[fingerprint][1]:
                latest[fingerprint] = (first, last)
        return latest

    def _recompute_history(self, conn: sa.Connection, practice_id: str | None) -> None:
        """Rebuild one practice's history rows from its per-date findings (UPSERT by key)."""
        table = HISTORY
        findings = FINDINGS
        dates = self._result_dates(conn, practice_id)
        stretches = self._stretches(conn, practice_id)
        # The entity's details as its latest finding reported them (one row a fingerprint).
        latest = (
            sa.select(findings.c.fingerprint, sa.func.max(findings.c.as_of).label("last"))
            .where(of_practice(findings.c.practice_id, practice_id))
            .group_by(findings.c.fingerprint)
            .subquery("latest")
        )
        details = {
            row["fingerprint"]: dict(row)
            for row in conn.execute(
                sa.select(findings)
                .join(
                    latest,
                    sa.and_(
                        findings.c.fingerprint == latest.c.fingerprint,
                        findings.c.as_of == latest.c.last,
                    ),
                )
                .where(of_practice(findings.c.practice_id, practice_id))
            ).mappings()
        }
        wanted: dict[str, dict[str, Any]] = {}
        for fingerprint, (first, last) in stretches.items():
            after = bisect_right(dates, last)
            row = details[fingerprint]
            wanted[fingerprint] = {
                "rule_id": row["rule_id"],
                "severity": row["severity"],
                "entity_type": row["entity_type"],
                "entity_id": row["entity_id"],
                "client_id": row["client_id"],
                "first_seen": first,
                "last_seen": last,
                "resolved_on": dates[after] if after < len(dates) else None,
            }
        existing = {
            row["fingerprint"]: row
            for row in conn.execute(
                sa.select(table).where(of_practice(table.c.practice_id, practice_id))
            ).mappings()
        }
        delete_ids(conn, table, [existing[fp]["id"] for fp in existing.keys() - wanted.keys()])
        changed = [
            {"row_id": existing[fp]["id"], **row}
            for fp, row in wanted.items()
            if fp in existing and any(existing[fp][k] != row[k] for k in _HISTORY_FIELDS)
        ]
        if changed:
            conn.execute(
                table.update()
                .where(table.c.id == sa.bindparam("row_id"))
                .values({k: sa.bindparam(k) for k in _HISTORY_FIELDS}),
                changed,
            )
        new = [
            {"practice_id": practice_id, "fingerprint": fp, **row}
            for fp, row in wanted.items()
            if fp not in existing
        ]
        if new:
            conn.execute(table.insert(), new)

    def history(self, practice_id: str | None) -> list[dict[str, Any]]:
        """One practice's history rows, by fingerprint."""
        table = HISTORY
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(table)
                .where(of_practice(table.c.practice_id, practice_id))
                .order_by(table.c.fingerprint)
            ).mappings()
            return [dict(row) for row in rows]

    # -- digest -------------------------------------------------------------------------

    def digest(self, practice_id: str, as_of: date, due_within_days: int = 7) -> PracticeDigest:
        """What a practice's morning email and packets say about one as-of date.

        Relative to the practice's previous as-of date with results: ``new`` were
        not found then, ``still_open`` were, ``resolved`` were found then and not
        now; ``accepted`` are this date's findings under an acceptance covering it
        (in neither new nor still open); ``due_soon`` are this date's findings due within ``due_within_days``, and
        ``filing_deadlines`` the draft claims whose filing deadline falls within them.
        Raises LookupError when the store has no results for that practice and date.
        """
        table = FINDINGS
        with self.engine.connect() as conn:
            dates = self._result_dates(conn, practice_id, up_to=as_of)
            if not dates or dates[-1] != as_of:
                raise LookupError(f"no stored results for practice {practice_id} as of {as_of}")
            previous = dates[-2] if len(dates) > 1 else None
            stretches = self._stretches(conn, practice_id, up_to=as_of)
            wanted = [as_of] if previous is None else [as_of, previous]
            rows = conn.execute(
                sa.select(table).where(
                    table.c.practice_id == practice_id, table.c.as_of.in_(wanted)
                )
            ).mappings()
            by_date: dict[date, dict[str, Finding]] = {day: {} for day in wanted}
            for row in rows:
                by_date[as_date(row["as_of"])][row["fingerprint"]] = _finding(row)
            name = conn.execute(
                sa.select(PRACTICES.c.name).where(PRACTICES.c.practice_id == practice_id)
            ).scalar()
            exposure = self._exposure(conn, as_of, practice_id)
            deadlines = self._deadlines(
                conn, as_of, practice_id, as_of, as_of + timedelta(days=due_within_days)
            )
            acceptances = in_force(conn, practice_id, as_of=as_of)

        now = by_date[as_of]
        before = by_date.get(previous, {}) if previous else {}
        new: list[TrackedFinding] = []
        still_open: list[TrackedFinding] = []
        accepted: list[TrackedFinding] = []
        for fingerprint, finding in now.items():
            first = stretches[fingerprint][0]
            tracked = TrackedFinding(finding, first_seen=first.isoformat())
            if fingerprint in acceptances:
                accepted.append(tracked)
            else:
                (still_open if fingerprint in before else new).append(tracked)
        resolved = [
            TrackedFinding(
                finding, first_seen=stretches[fp][0].isoformat(), resolved_on=as_of.isoformat()
            )
            for fp, finding in before.items()
            if fp not in now
        ]
        horizon = (as_of + timedelta(days=due_within_days)).isoformat()
        due_soon = [
            t
            for t in [*new, *still_open]
            if t.finding.due_date and as_of.isoformat() <= t.finding.due_date <= horizon
        ]

        def ordered(items: list[TrackedFinding]) -> list[TrackedFinding]:
            return sorted(items, key=lambda t: t.finding.sort_key())

        return PracticeDigest(
            practice_id=practice_id,
            practice_name=name or practice_id,
            as_of=as_of.isoformat(),
            new=ordered(new),
            still_open=ordered(still_open),
            resolved=ordered(resolved),
            due_soon=sorted(due_soon, key=lambda t: (t.finding.due_date, t.finding.sort_key())),
            exposure=exposure,
            filing_deadlines=deadlines,
            accepted=ordered(accepted),
            acceptances={fp: acceptances[fp] for fp in now if fp in acceptances},
        )


def _finding_rows(
    findings: Iterable[Finding], as_of: date, practice_id: str | None
) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for finding in findings:
        if finding.practice_id != practice_id:
            raise ValueError(
                f"finding {finding.fingerprint} is of practice {finding.practice_id!r}, "
                f"not {practice_id!r}"
            )
        if finding.as_of != as_of.isoformat():
            raise ValueError(f"finding {finding.fingerprint} is as of {finding.as_of}, not {as_of}")
        rows.setdefault(
            finding.fingerprint,
            {
                "as_of": as_of,
                "practice_id": practice_id,
                "fingerprint": finding.fingerprint,
                "rule_id": finding.rule_id,
                "severity": finding.severity,
                "entity_type": finding.entity_type,
                "entity_id": finding.entity_id,
                "client_id": finding.client_id,
                "message": finding.message,
                "due_date": date.fromisoformat(finding.due_date) if finding.due_date else None,
            },
        )
    return rows


def _exposure_rows(
    exposure: dict[str, FindingExposure],
    findings: dict[str, dict[str, Any]],
    as_of: date,
    practice_id: str | None,
) -> dict[str, dict[str, Any]]:
    """The exposure rows to store, by fingerprint; each must be of a finding stored."""
    strangers = sorted(exposure.keys() - findings.keys())
    if strangers:
        raise ValueError(
            f"exposure of {len(strangers)} finding(s) not among the findings as of {as_of}: "
            f"{strangers[:5]}"
        )
    rows: dict[str, dict[str, Any]] = {}
    for fingerprint, money in exposure.items():
        values = {k: getattr(money, k) for k in EXPOSURE_FIELDS}
        for name in ("fix_before_billing", "in_flight", "recoupment_risk"):
            if abs(values[name]) > _BIGINT_MAX:
                raise ValueError(
                    f"exposure of {fingerprint}: {name} of {values[name]} cents is more than "
                    "the store holds"
                )
        rows[fingerprint] = {
            "as_of": as_of,
            "practice_id": practice_id,
            "fingerprint": fingerprint,
            **values,
        }
    return rows


def _attribution_rows(
    attribution: dict[str, FindingAttribution],
    findings: dict[str, dict[str, Any]],
    as_of: date,
    practice_id: str | None,
) -> dict[str, dict[str, Any]]:
    """The attribution rows to store, by fingerprint: of findings stored, with anything
    to say (a finding with neither staff nor payer has no row)."""
    strangers = sorted(attribution.keys() - findings.keys())
    if strangers:
        raise ValueError(
            f"attribution of {len(strangers)} finding(s) not among the findings as of {as_of}: "
            f"{strangers[:5]}"
        )
    return {
        fingerprint: {
            "as_of": as_of,
            "practice_id": practice_id,
            "fingerprint": fingerprint,
            "staff_id": item.staff_id,
            "payer": item.payer,
        }
        for fingerprint, item in attribution.items()
        if item.staff_id is not None or item.payer is not None
    }


def _deadline_rows(
    deadlines: Sequence[FilingDeadline], as_of: date, practice_id: str | None
) -> dict[str, dict[str, Any]]:
    """The deadline rows to store, by claim id."""
    rows: dict[str, dict[str, Any]] = {}
    for item in deadlines:
        if abs(item.charges) > _BIGINT_MAX:
            raise ValueError(
                f"filing deadline of claim {item.claim_id}: charges of {item.charges} cents "
                "are more than the store holds"
            )
        rows[item.claim_id] = {
            "as_of": as_of,
            "practice_id": practice_id,
            "claim_id": item.claim_id,
            "client_id": item.client_id,
            "earliest_service_date": date.fromisoformat(item.earliest_service_date),
            "timely_filing_days": item.timely_filing_days,
            "deadline": date.fromisoformat(item.deadline),
            "charges": item.charges,
        }
    return rows


def _finding(row: Any) -> Finding:
    due = row["due_date"]
    return Finding(
        as_of=as_date(row["as_of"]).isoformat(),
        practice_id=row["practice_id"],
        rule_id=row["rule_id"],
        severity=row["severity"],
        entity_type=row["entity_type"],
        entity_id=row["entity_id"],
        client_id=row["client_id"],
        message=row["message"],
        due_date=as_date(due).isoformat() if due is not None else None,
    )
