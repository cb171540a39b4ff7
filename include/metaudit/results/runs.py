"""The results store's runs: each run's plan, stage timings and outcome, the practices'
names, and each practice's status per as-of date (``practice_runs``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa

from metaudit.results.base import (
    FAILED,
    PRACTICE_RUNS,
    PRACTICES,
    RUNNING,
    RUNS,
    SUCCESS,
    StoreBase,
    of_practice,
    rounded_timings,
    utc_now,
)


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


class RunRecords(StoreBase):
    """The runs and the practices' status of the results store."""

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
        now = utc_now()
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
                upsert_practices(conn, practice_names)

    def record_extract(self, run_id: str, timings: dict[str, float]) -> None:
        """Keep the extract stage's timings on the run."""
        table = RUNS
        with self._transaction() as conn:
            conn.execute(
                table.update()
                .where(table.c.run_id == run_id)
                .values(timings=rounded_timings(timings))
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
                    finished_at=utc_now(),
                )
            )

    def run(self, run_id: str) -> dict[str, Any] | None:
        """The run's row (as a dict), or None."""
        table = RUNS
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(table).where(table.c.run_id == run_id)).mappings().first()
            return dict(row) if row else None

    def fail_practice(self, run_id: str, as_of: date, practice_id: str | None, error: str) -> None:
        """Record that this run could not audit the practice; its stored findings of the
        date (from an earlier run), if any, stay."""
        with self._transaction() as conn:
            upsert_status(
                conn,
                as_of,
                practice_id,
                run_id=run_id,
                status=FAILED,
                error=error[:4000],
                finished_at=utc_now(),
            )

    def record_stage_timings(
        self, as_of: date, practice_id: str, timings: dict[str, float]
    ) -> None:
        """Add stages' timings (notify, packets: after persist) to the practice's status row
        of the date; a practice without a row (persist never ran) is left alone."""
        table = PRACTICE_RUNS
        with self._transaction() as conn:
            row = conn.execute(
                sa.select(table.c.id, table.c.timings).where(
                    table.c.as_of == as_of, of_practice(table.c.practice_id, practice_id)
                )
            ).first()
            if row is None:
                return
            merged = {**(row.timings or {}), **rounded_timings(timings)}
            conn.execute(table.update().where(table.c.id == row.id).values(timings=merged))

    def practice_runs(self, as_of: date | None = None) -> list[dict[str, Any]]:
        """Per-practice status rows (of one as-of date, or all), ordered."""
        table = PRACTICE_RUNS
        query = sa.select(table).order_by(table.c.as_of, table.c.practice_id)
        if as_of is not None:
            query = query.where(table.c.as_of == as_of)
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]


def upsert_practices(conn: sa.Connection, names: dict[str, str]) -> None:
    """Record the practices' names: new ones inserted, renamed ones updated."""
    table = PRACTICES
    known = dict(
        conn.execute(
            sa.select(table.c.practice_id, table.c.name).where(table.c.practice_id.in_(list(names)))
        ).all()
    )
    for practice_id, name in sorted(names.items()):
        if practice_id not in known:
            conn.execute(table.insert().values(practice_id=practice_id, name=name))
        elif known[practice_id] != name:
            conn.execute(table.update().where(table.c.practice_id == practice_id).values(name=name))


def upsert_status(conn: sa.Connection, as_of: date, practice_id: str | None, **values: Any) -> None:
    """Set one practice's status of one as-of date (its row created when it has none)."""
    table = PRACTICE_RUNS
    current = conn.execute(
        sa.select(table.c.id).where(
            table.c.as_of == as_of, of_practice(table.c.practice_id, practice_id)
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
        table.insert().values(**{**defaults, **values, "as_of": as_of, "practice_id": practice_id})
    )
