"""The results store: what every run found, per as-of date and practice, and its history.

Any SQLAlchemy database (a SQLite file by default, PostgreSQL in production).
Every write is one transaction keyed by as-of date and practice, and written as
an UPSERT by key: a rerun of a date updates the rows it finds, inserts the new
ones and deletes the ones that are gone, so it replaces that date's results and
never duplicates them; rows that did not change are not touched at all.
"""

from __future__ import annotations

import logging
import os
import time
from bisect import bisect_right
from collections import Counter
from collections.abc import Generator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import ArgumentError

from metaudit.errors import SettingsError
from metaudit.paths import PRIVATE_FILE_MODE, private_dir
from metaudit.results.digest import FilingDeadline, FindingExposure, PracticeDigest, TrackedFinding
from metaudit.results.models import VERSION_TABLE, Base
from metaudit.spec.findings import FIELDS, Finding

log = logging.getLogger(__name__)

RUNS = Base.metadata.tables["audit_runs"]
PRACTICES = Base.metadata.tables["practices"]
PRACTICE_RUNS = Base.metadata.tables["practice_runs"]
FINDINGS = Base.metadata.tables["findings"]
HISTORY = Base.metadata.tables["finding_history"]
EXPOSURE = Base.metadata.tables["finding_exposure"]
DEADLINES = Base.metadata.tables["filing_deadlines"]
ALERTS = Base.metadata.tables["alerts"]
DOWNLOADS = Base.metadata.tables["packet_downloads"]
REBUILDS = Base.metadata.tables["packet_rebuilds"]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Keeps two processes from migrating one PostgreSQL database at the same time.
_PG_MIGRATION_LOCK = 727_100_001
_BATCH = 500
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
SUCCESS = "success"
FAILED = "failed"
RUNNING = "running"


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


@dataclass(frozen=True)
class RunOutcome:
    """Which of a run's planned practices finished, and which did not."""

    run_id: str
    as_of: date
    practice_ids: list[str]
    succeeded: list[str]

    @property
    def failed(self) -> list[str]:
        return sorted(set(self.practice_ids) - set(self.succeeded))


def engine_for(url: str | sa.URL) -> sa.Engine:
    """An engine for the results store (PostgreSQL through psycopg 3, MySQL through PyMySQL)."""
    try:
        parsed = sa.make_url(url) if isinstance(url, str) else url
    except ArgumentError as exc:
        raise SettingsError(f"met_results_db is not a database URL: {exc}") from exc
    drivers = {
        "postgresql": "postgresql+psycopg",
        "postgres": "postgresql+psycopg",
        "mysql": "mysql+pymysql",
    }
    if parsed.drivername in drivers:
        parsed = parsed.set(drivername=drivers[parsed.drivername])
    connect_args: dict[str, Any] = {}
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        if database not in {"", ":memory:"} and not database.startswith("file:"):
            _private_sqlite(Path(database))
        # Practices persist in parallel: wait for the writer lock instead of failing.
        connect_args["timeout"] = 60
    elif backend in {"postgresql", "mysql", "mariadb"}:
        connect_args["connect_timeout"] = 10
    return sa.create_engine(parsed, connect_args=connect_args, pool_pre_ping=True)


def _private_sqlite(path: Path) -> None:
    """Create the SQLite file owner-only before SQLAlchemy opens it (SQLite would create it
    with the umask's 0644), and make an existing one owner-only: it holds the download
    trail and the findings. SQLite gives its journal the database file's permissions."""
    private_dir(path.parent)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE))
    if path.stat().st_mode & 0o777 != PRIVATE_FILE_MODE:
        path.chmod(PRIVATE_FILE_MODE)


def migrate(engine: sa.Engine) -> str:
    """Bring the store's schema to the newest migration; return the revision it is at."""
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        current = MigrationContext.configure(
            conn, opts={"version_table": VERSION_TABLE}
        ).get_current_revision()
        if current != head:
            log.info("migrating the results store from %s to %s", current or "empty", head)
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    return str(head)


class ResultsStore:
    """Reads and writes the results store; see :mod:`metaudit.results.models` for the tables."""

    def __init__(self, url: str | sa.URL) -> None:
        self.engine = engine_for(url)

    @classmethod
    def open(cls, url: str | sa.URL) -> ResultsStore:
        """The store at ``url``, its schema migrated to the newest revision."""
        store = cls(url)
        migrate(store.engine)
        return store

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _transaction(self) -> Generator[sa.Connection]:
        with self.engine.begin() as conn:
            yield conn

    # -- runs ---------------------------------------------------------------------------

    def start_run(
        self,
        run_id: str,
        dag_id: str,
        as_of: date,
        requested: Sequence[str],
        practice_ids: Sequence[str],
        practice_names: dict[str, str] | None = None,
    ) -> None:
        """Record a run as running (again, when Airflow reruns the same run id) and the
        names of its practices."""
        now = _now()
        values = {
            "dag_id": dag_id,
            "as_of": as_of,
            "requested_practices": list(requested),
            "practice_ids": list(practice_ids),
            "status": RUNNING,
            "failed_practices": [],
            "unattributed_findings": None,
            "timings": {},
            "started_at": now,
            "finished_at": None,
        }
        table = RUNS
        with self._transaction() as conn:
            exists = conn.execute(sa.select(table.c.run_id).where(table.c.run_id == run_id)).first()
            if exists:
                conn.execute(table.update().where(table.c.run_id == run_id).values(**values))
            else:
                conn.execute(table.insert().values(run_id=run_id, **values))
            if practice_names:
                self._upsert_practices(conn, practice_names)

    def _upsert_practices(self, conn: sa.Connection, names: dict[str, str]) -> None:
        table = PRACTICES
        known = dict(
            conn.execute(
                sa.select(table.c.practice_id, table.c.name).where(
                    table.c.practice_id.in_(list(names))
                )
            ).all()
        )
        for practice_id, name in sorted(names.items()):
            if practice_id not in known:
                conn.execute(table.insert().values(practice_id=practice_id, name=name))
            elif known[practice_id] != name:
                conn.execute(
                    table.update().where(table.c.practice_id == practice_id).values(name=name)
                )

    def record_extract(self, run_id: str, timings: dict[str, float]) -> None:
        """Keep the extract stage's timings on the run."""
        table = RUNS
        with self._transaction() as conn:
            conn.execute(
                table.update().where(table.c.run_id == run_id).values(timings=_rounded(timings))
            )

    def run_outcome(self, run_id: str) -> RunOutcome:
        """The run's planned practices and those whose findings this run stored."""
        runs = RUNS
        status = PRACTICE_RUNS
        with self.engine.connect() as conn:
            run = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).mappings().first()
            if run is None:
                raise LookupError(f"run {run_id!r} is not in the results store")
            succeeded = conn.execute(
                sa.select(status.c.practice_id).where(
                    status.c.run_id == run_id,
                    status.c.status == SUCCESS,
                    status.c.practice_id.is_not(None),
                    status.c.as_of == run["as_of"],
                    # Not a success left by an earlier try of the same run id.
                    status.c.finished_at >= run["started_at"],
                )
            ).scalars()
            return RunOutcome(
                run_id=run_id,
                as_of=run["as_of"],
                practice_ids=list(run["practice_ids"]),
                succeeded=sorted(succeeded),
            )

    def finish_run(self, run_id: str, failed: Sequence[str], unattributed: int | None) -> None:
        """Mark a run finished: success when no practice failed."""
        table = RUNS
        with self._transaction() as conn:
            conn.execute(
                table.update()
                .where(table.c.run_id == run_id)
                .values(
                    status=FAILED if failed else SUCCESS,
                    failed_practices=sorted(failed),
                    unattributed_findings=unattributed,
                    finished_at=_now(),
                )
            )

    def run(self, run_id: str) -> dict[str, Any] | None:
        """The run's row (as a dict), or None."""
        table = RUNS
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(table).where(table.c.run_id == run_id)).mappings().first()
            return dict(row) if row else None

    # -- practices ----------------------------------------------------------------------

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
    ) -> StoredPractice:
        """Store one practice's findings of one as-of date (practice None: the run-level
        findings that name no practice), their exposure by fingerprint (none given: none
        stored), the timely-filing deadlines of its draft claims, its status, and
        recompute its history; one transaction, so a failure leaves the store as it was."""
        began = time.perf_counter()
        rows = _finding_rows(findings, as_of, practice_id)
        money = _exposure_rows(exposure or {}, rows, as_of, practice_id)
        due = _deadline_rows(deadlines or (), as_of, practice_id)
        with self._transaction() as conn:
            inserted, updated, deleted = self._replace_rows(
                conn, FINDINGS, _FINDING_FIELDS, as_of, practice_id, rows
            )
            self._replace_rows(conn, EXPOSURE, EXPOSURE_FIELDS, as_of, practice_id, money)
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
            self._upsert_status(conn, as_of, practice_id, **status, timings={})
            self._recompute_history(conn, practice_id)
            stages = {**(timings or {}), "persist": time.perf_counter() - began}
            self._upsert_status(
                conn, as_of, practice_id, **status, timings=_rounded(stages), finished_at=_now()
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

    def fail_practice(self, run_id: str, as_of: date, practice_id: str | None, error: str) -> None:
        """Record that this run could not audit the practice; its stored findings of the
        date (from an earlier run), if any, stay."""
        with self._transaction() as conn:
            self._upsert_status(
                conn,
                as_of,
                practice_id,
                run_id=run_id,
                status=FAILED,
                error=error[:4000],
                finished_at=_now(),
            )

    def _upsert_status(
        self, conn: sa.Connection, as_of: date, practice_id: str | None, **values: Any
    ) -> None:
        table = PRACTICE_RUNS
        current = conn.execute(
            sa.select(table.c.id).where(
                table.c.as_of == as_of, _scope(table.c.practice_id, practice_id)
            )
        ).scalar()
        if current is not None:
            conn.execute(table.update().where(table.c.id == current).values(**values))
            return
        defaults: dict[str, Any] = {
            "has_results": False,
            "findings": 0,
            "critical": 0,
            "warning": 0,
            "notice": 0,
            "timings": {},
        }
        conn.execute(
            table.insert().values(
                **{**defaults, **values, "as_of": as_of, "practice_id": practice_id}
            )
        )

    def practice_runs(self, as_of: date | None = None) -> list[dict[str, Any]]:
        """Per-practice status rows (of one as-of date, or all), ordered."""
        table = PRACTICE_RUNS
        query = sa.select(table).order_by(table.c.as_of, table.c.practice_id)
        if as_of is not None:
            query = query.where(table.c.as_of == as_of)
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

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
                    table.c.as_of == as_of, _scope(table.c.practice_id, practice_id)
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
        _delete_ids(conn, table, gone)
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
            table.c.as_of == as_of, _scope(table.c.practice_id, practice_id)
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
            sa.select(table).where(table.c.as_of == as_of, _scope(table.c.practice_id, practice_id))
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
                    table.c.as_of == as_of, _scope(table.c.practice_id, practice_id)
                )
            ).mappings()
            return sorted((_finding(row) for row in rows), key=Finding.sort_key)

    # -- history ------------------------------------------------------------------------

    def _result_dates(
        self, conn: sa.Connection, practice_id: str | None, up_to: date | None = None
    ) -> list[date]:
        table = PRACTICE_RUNS
        query = sa.select(table.c.as_of).where(
            _scope(table.c.practice_id, practice_id), table.c.has_results.is_(True)
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
        ).where(_scope(status.c.practice_id, practice_id), status.c.has_results.is_(True))
        found = sa.select(table.c.fingerprint, table.c.as_of).where(
            _scope(table.c.practice_id, practice_id)
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
            .where(_scope(findings.c.practice_id, practice_id))
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
                .where(_scope(findings.c.practice_id, practice_id))
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
                sa.select(table).where(_scope(table.c.practice_id, practice_id))
            ).mappings()
        }
        _delete_ids(conn, table, [existing[fp]["id"] for fp in existing.keys() - wanted.keys()])
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
                .where(_scope(table.c.practice_id, practice_id))
                .order_by(table.c.fingerprint)
            ).mappings()
            return [dict(row) for row in rows]

    # -- digest -------------------------------------------------------------------------

    def digest(self, practice_id: str, as_of: date, due_within_days: int = 7) -> PracticeDigest:
        """What a practice's morning email and packets say about one as-of date.

        Relative to the practice's previous as-of date with results: ``new`` were
        not found then, ``still_open`` were, ``resolved`` were found then and not
        now; ``due_soon`` are this date's findings due within ``due_within_days``, and
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

        now = by_date[as_of]
        before = by_date.get(previous, {}) if previous else {}
        new: list[TrackedFinding] = []
        still_open: list[TrackedFinding] = []
        for fingerprint, finding in now.items():
            first = stretches[fingerprint][0]
            tracked = TrackedFinding(finding, first_seen=first.isoformat())
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
        )

    # -- alerts -------------------------------------------------------------------------

    def record_alert(
        self,
        *,
        dag_id: str,
        run_id: str,
        task_id: str,
        map_index: int,
        error: str,
        try_number: int | None = None,
        practice_id: str | None = None,
        as_of: date | None = None,
        log_url: str | None = None,
    ) -> int:
        """Record a task failure for the admins; return the alert's id."""
        return self._insert(
            ALERTS,
            created_at=_now(),
            dag_id=dag_id,
            run_id=run_id,
            task_id=task_id,
            map_index=map_index,
            try_number=try_number,
            practice_id=practice_id,
            as_of=as_of,
            error=error[:4000],
            log_url=log_url,
            notified_at=None,
        )

    def alerts(
        self, run_id: str | None = None, *, notified: bool | None = None
    ) -> list[dict[str, Any]]:
        """Recorded alerts (of one run, or all; only those mailed, or not, when
        ``notified`` is given), oldest first."""
        table = ALERTS
        query = sa.select(table).order_by(table.c.id)
        if run_id is not None:
            query = query.where(table.c.run_id == run_id)
        if notified is not None:
            query = query.where(
                table.c.notified_at.is_not(None) if notified else table.c.notified_at.is_(None)
            )
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def mark_alert_notified(self, alert_id: int) -> None:
        """Record that the alert's mail went out (or, without a SendGrid key, to the outbox)."""
        with self._transaction() as conn:
            conn.execute(ALERTS.update().where(ALERTS.c.id == alert_id).values(notified_at=_now()))

    def _insert(self, table: sa.Table, **values: Any) -> int:
        """Insert one row; return its generated id."""
        with self._transaction() as conn:
            key = conn.execute(table.insert().values(**values)).inserted_primary_key
            assert key is not None
            return int(key[0])

    # -- packet access trail ------------------------------------------------------------

    def record_download(
        self,
        *,
        user_name: str,
        kind: str,
        practice_id: str,
        client_id: str | None,
        period: str,
        packet: str,
        size: int,
        sha256: str,
        verified: bool,
        remote_addr: str | None = None,
    ) -> int:
        """Record a packet served to a user (before it is sent); return the row's id."""
        return self._insert(
            DOWNLOADS,
            downloaded_at=_now(),
            user_name=user_name,
            kind=kind,
            practice_id=practice_id,
            client_id=client_id,
            period=period,
            packet=packet,
            size=size,
            sha256=sha256,
            verified=verified,
            remote_addr=remote_addr,
        )

    def downloads(
        self, *, practice_id: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[dict[str, Any]], int]:
        """Recorded downloads, newest first (one page), and how many there are in all."""
        return self._page(DOWNLOADS, DOWNLOADS.c.downloaded_at, practice_id, limit, offset)

    def record_rebuild(
        self,
        *,
        user_name: str,
        practice_id: str,
        client_id: str | None,
        as_of: date,
        dag_run_id: str | None,
        error: str | None = None,
    ) -> int:
        """Record a rebuild an admin asked for: the run it triggered, or why it did not."""
        return self._insert(
            REBUILDS,
            requested_at=_now(),
            user_name=user_name,
            practice_id=practice_id,
            client_id=client_id,
            as_of=as_of,
            dag_run_id=dag_run_id,
            status="failed" if error else "triggered",
            error=error[:4000] if error else None,
        )

    def rebuilds(
        self, *, practice_id: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[dict[str, Any]], int]:
        """Recorded rebuild requests, newest first (one page), and how many in all."""
        return self._page(REBUILDS, REBUILDS.c.requested_at, practice_id, limit, offset)

    def _page(
        self,
        table: sa.Table,
        when: sa.Column[Any],
        practice_id: str | None,
        limit: int,
        offset: int,
    ) -> tuple[list[dict[str, Any]], int]:
        where = [] if practice_id is None else [table.c.practice_id == practice_id]
        query = (
            sa.select(table)
            .where(*where)
            .order_by(when.desc(), table.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
        count = sa.select(sa.func.count()).select_from(table).where(*where)
        with self.engine.connect() as conn:
            rows = [dict(row) for row in conn.execute(query).mappings()]
            total = int(conn.execute(count).scalar_one())
        return rows, total

    def table_contents(self, name: str, exclude: Sequence[str] = ()) -> list[tuple[Any, ...]]:
        """Every row of one store table, sorted, without the named columns (for checks)."""
        table = Base.metadata.tables[name]
        columns = [c for c in table.columns if c.name not in exclude]
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(*columns)).all()
        return sorted((tuple(row) for row in rows), key=repr)


def _scope(column: sa.ColumnElement[Any], practice_id: str | None) -> sa.ColumnElement[bool]:
    """A practice's rows; practice None means the run-level rows that name no practice."""
    return column.is_(None) if practice_id is None else column == practice_id


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


def _delete_ids(conn: sa.Connection, table: sa.Table, ids: list[int]) -> None:
    for chunk in _chunks(sorted(ids), _BATCH):
        conn.execute(table.delete().where(table.c.id.in_(chunk)))


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def as_date(value: Any) -> date:
    # Aggregates over a Date column come back as text on SQLite.
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _rounded(timings: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in timings.items()}


def _now() -> datetime:
    return datetime.now(UTC)
