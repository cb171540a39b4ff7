"""What the Airflow tasks call: plain functions, testable without a scheduler.

The nightly run, stage by stage:

1. :func:`plan_run`: the as-of date and the practices to audit (reads only the
   source's practices table); records the run in the results store.
2. :func:`extract`: reads and types the whole source once, writes one typed
   partition per practice (:mod:`metaudit.snapshot`) and the run-level findings
   that name no practice.
3. per practice, :func:`validate_practice` (the rulebook on the practice's
   partition; findings and GX results under ``results/<as_of>/<practice>/``) then
   :func:`persist_practice` (the results store).
4. :func:`finish_run`: stores the run-level findings, marks the run, and fails
   naming the practices that did not finish.

Tasks pass only ids and paths (XCom is neither secret nor meant for data);
every function is idempotent and keyed by as-of date and practice, writing its
files atomically. Nothing here imports pandas, GX or SQLAlchemy at module level:
the DAG file imports this module's callback when Airflow parses it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from metaudit.errors import MetAuditError, SettingsError

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_DIR = PROJECT_ROOT / "data"
SOURCE_CONN_ID = "met_practice_db"
RESULTS_CONN_ID = "met_results_db"
UNATTRIBUTED_FILE = "findings-without-practice.jsonl"
TIMINGS_FILE = "timings.json"


class RunIncompleteError(MetAuditError):
    """A run did not audit every practice it planned (retrying the last task won't help)."""


class RunNotPlannedError(RunIncompleteError):
    """The run never got past planning, so it audited nothing."""


class PracticesFailedError(RunIncompleteError):
    """Some practices of a run did not finish; the others did."""

    def __init__(self, run_id: str, failed: Sequence[str]) -> None:
        self.failed = sorted(failed)
        super().__init__(
            f"run {run_id}: audit failed for practice(s) {', '.join(self.failed)}; "
            "the other practices finished (see the failed tasks' logs and the results "
            "store's alerts)"
        )


def data_dir() -> Path:
    """The project's data folder (METAUDIT_DATA_DIR overrides it)."""
    return Path(os.environ.get("METAUDIT_DATA_DIR", DEFAULT_DATA_DIR))


def results_dir(as_of: str, practice_id: str, root: Path | None = None) -> Path:
    """Where one practice's findings and validation results of one as-of date go."""
    from metaudit.snapshot import safe_name

    return (root or data_dir() / "results") / as_of / safe_name(practice_id)


def snapshot_dir(as_of: str, root: Path | None = None) -> Path:
    """Where extract leaves the per-practice partitions of one as-of date."""
    return (root or data_dir() / "snapshots") / as_of


def unattributed_path(as_of: str, root: Path | None = None) -> Path:
    """The run-level file of one as-of date's findings that name no practice."""
    return (root or data_dir() / "results") / as_of / UNATTRIBUTED_FILE


def resolve_as_of(param: str | None, run_date: date) -> date:
    """The as-of date of a run: the trigger form's value, else the run's date."""
    if param:
        try:
            return date.fromisoformat(str(param))
        except ValueError as exc:
            raise SettingsError(f"as_of must be a date YYYY-MM-DD, got {param!r}") from exc
    return run_date


# -- connections ----------------------------------------------------------------------------


def sqlalchemy_url_from_connection(conn: Any) -> str:
    """A SQLAlchemy URL from an Airflow connection.

    ``extra.sqlalchemy_url`` wins when set (any dialect); otherwise the URL is
    built from the connection's type and fields (postgres, mysql, sqlite), so an
    admin can fill the usual Airflow form.
    """
    import sqlalchemy as sa

    extra = conn.extra_dejson if hasattr(conn, "extra_dejson") else {}
    if extra.get("sqlalchemy_url"):
        return str(extra["sqlalchemy_url"])
    conn_type = (conn.conn_type or "").lower()
    if conn_type == "sqlite":
        return str(sa.URL.create("sqlite", database=conn.host or conn.schema))
    drivers = {
        "postgres": "postgresql+psycopg",
        "postgresql": "postgresql+psycopg",
        "mysql": "mysql+pymysql",
    }
    if conn_type not in drivers:
        raise SettingsError(
            f"connection {conn.conn_id!r} has type {conn_type!r}; use postgres, mysql or sqlite, "
            "or set extra.sqlalchemy_url"
        )
    url = sa.URL.create(
        drivers[conn_type],
        username=conn.login or None,
        password=conn.password or None,
        host=conn.host or None,
        port=conn.port or None,
        database=conn.schema or None,
    )
    return url.render_as_string(hide_password=False)


def airflow_connection(conn_id: str) -> Any | None:
    """The Airflow connection ``conn_id``, or None when it is not defined."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


def source_url() -> str:
    """The source database's URL, from the ``met_practice_db`` connection (required)."""
    conn = airflow_connection(SOURCE_CONN_ID)
    if conn is None:
        raise SettingsError(
            f"Airflow connection {SOURCE_CONN_ID!r} is not defined: add it (the practice "
            "database, any SQLAlchemy URL) before running the audit"
        )
    return sqlalchemy_url_from_connection(conn)


def results_url() -> str:
    """The results store's URL: the ``met_results_db`` connection, else the default
    SQLite file ``results.sqlite`` in the data folder."""
    from metaudit.results import default_url

    conn = airflow_connection(RESULTS_CONN_ID)
    return sqlalchemy_url_from_connection(conn) if conn is not None else default_url()


# -- stages ---------------------------------------------------------------------------------


def read_practices(source: str) -> dict[str, str]:
    """Practice id -> name, as the source's practices table has them."""
    from metaudit.source import read_tables

    raw = read_tables(source, tables=["practices"]).tables["practices"]
    names: dict[str, str] = {}
    for practice_id, name in zip(raw["practice_id"], raw["name"], strict=True):
        key = str(practice_id).strip() if isinstance(practice_id, str) else ""
        if key and key not in names:
            names[key] = name.strip() if isinstance(name, str) and name.strip() else key
    return names


def list_practices(source: str, wanted: Sequence[str] | None = None) -> list[str]:
    """The practice ids to audit: all in the source, or the wanted ones (unknown ids refused)."""
    return _choose(sorted(read_practices(source)), wanted)


def _choose(present: list[str], wanted: Sequence[str] | None) -> list[str]:
    if not wanted:
        return present
    unknown = sorted(set(wanted) - set(present))
    if unknown:
        raise SettingsError(
            f"practice_ids not in the source: {', '.join(unknown)} "
            f"(the source has {', '.join(present) or 'no practices'})"
        )
    return sorted(set(wanted))


def plan_run(
    source: str,
    store_url: str,
    *,
    run_id: str,
    dag_id: str,
    as_of: date,
    wanted: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Resolve the practices of a run and record the run as running in the results store."""
    from metaudit.results import ResultsStore

    names = read_practices(source)
    practice_ids = _choose(sorted(names), wanted)
    store = ResultsStore.open(store_url)
    try:
        store.start_run(
            run_id,
            dag_id,
            as_of,
            list(wanted or []),
            practice_ids,
            {p: names[p] for p in practice_ids},
        )
    finally:
        store.close()
    log.info("run %s as of %s: %d practice(s) %s", run_id, as_of, len(practice_ids), practice_ids)
    return {"as_of": as_of.isoformat(), "practice_ids": practice_ids}


def extract(
    source: str,
    as_of: date,
    practice_ids: Sequence[str],
    *,
    store_url: str | None = None,
    run_id: str | None = None,
) -> list[dict[str, str]]:
    """Read and type the whole source once; write each practice's typed partition and the
    run-level findings that name no practice (:func:`unattributed_path`). Returns one work
    item per practice: its id, the as-of date and its partition's folder."""
    from metaudit.engine import load_source
    from metaudit.snapshot import unattributed_findings, write_partitions, write_unattributed

    timings: dict[str, float] = {}
    typed = load_source(source, as_of, timings)
    started = time.perf_counter()
    day = as_of.isoformat()
    folder = snapshot_dir(day)
    partitions = write_partitions(typed, practice_ids, day, folder)
    timings["partition"] = time.perf_counter() - started
    orphans = unattributed_findings(typed)
    unattributed = write_unattributed(orphans, unattributed_path(day))
    if orphans:
        log.warning(
            "%d finding(s) name no practice (rows whose parent is missing): %s",
            len(orphans),
            unattributed,
        )
    if store_url and run_id:
        from metaudit.results import ResultsStore

        store = ResultsStore(store_url)
        try:
            store.record_extract(run_id, timings)
        finally:
            store.close()
    log.info("extract as of %s: %s", day, {k: round(v, 2) for k, v in timings.items()})
    return [
        {"practice_id": practice_id, "as_of": day, "partition": str(path)}
        for practice_id, path in sorted(partitions.items())
    ]


def validate_practice(
    practice_id: str,
    partition: str,
    as_of: str,
    *,
    out_root: Path | None = None,
    config: str | None = None,
) -> dict[str, str]:
    """Run the rulebook on one practice's partition; write its findings (JSON Lines and
    CSV), GX validation results and stage timings. Returns ids and paths only."""
    from metaudit.engine import check_typed
    from metaudit.findings import write_atomic, write_findings
    from metaudit.settings import Settings
    from metaudit.snapshot import read_partition

    started_at = _now()
    timings: dict[str, float] = {}
    began = time.perf_counter()
    typed = read_partition(Path(partition), practice_id)
    timings["read_partition"] = time.perf_counter() - began
    settings = Settings.load(config)
    day = date.fromisoformat(as_of)
    result = check_typed(typed, day, [practice_id], settings, timings)
    strangers = sorted(
        {str(f.practice_id) for f in result.findings if f.practice_id != practice_id}
    )
    if strangers:
        raise ValueError(f"practice {practice_id}'s check reported findings of {strangers}")
    began = time.perf_counter()
    out_dir = results_dir(as_of, practice_id, out_root)
    jsonl, _ = write_findings(result.findings, out_dir)
    for family, validation in result.validations.items():
        write_atomic(
            out_dir / "validation" / f"{family.lower()}.json",
            json.dumps(validation.results, indent=1, sort_keys=True, allow_nan=False),
        )
    timings["write"] = time.perf_counter() - began
    timings_path = out_dir / TIMINGS_FILE
    write_atomic(
        timings_path,
        json.dumps({"started_at": started_at.isoformat(), "stages": timings}, indent=1),
    )
    log.info(
        "practice %s as of %s: %d findings; %s",
        practice_id,
        as_of,
        len(result.findings),
        {k: round(v, 2) for k, v in timings.items()},
    )
    return {
        "practice_id": practice_id,
        "as_of": as_of,
        "out_dir": str(out_dir),
        "findings": str(jsonl),
        "timings": str(timings_path),
    }


def persist_practice(store_url: str, run_id: str, validated: Mapping[str, str]) -> dict[str, Any]:
    """Store one practice's findings of the as-of date (replacing that date's), its status
    and stage timings, and recompute its findings history."""
    from metaudit.findings import read_findings
    from metaudit.results import ResultsStore

    practice_id = validated["practice_id"]
    findings = read_findings(Path(validated["findings"]))
    recorded = json.loads(Path(validated["timings"]).read_text(encoding="utf-8"))
    store = ResultsStore.open(store_url)
    try:
        stored = store.persist_practice(
            run_id,
            date.fromisoformat(validated["as_of"]),
            practice_id,
            findings,
            timings=recorded["stages"],
            results_dir=validated["out_dir"],
            started_at=datetime.fromisoformat(recorded["started_at"]),
        )
    finally:
        store.close()
    return {"practice_id": practice_id, "as_of": stored.as_of, "findings": stored.findings}


def finish_run(store_url: str, run_id: str, *, extracted_ok: bool) -> str:
    """Store the run-level findings that name no practice (when this run's extract wrote
    them), mark the run finished, and return a per-practice summary; raise
    PracticesFailedError naming the practices that did not finish."""
    from metaudit.findings import read_findings
    from metaudit.results import ResultsStore

    store = ResultsStore.open(store_url)
    try:
        if store.run(run_id) is None:
            raise RunNotPlannedError(
                f"run {run_id} never got past planning (see the plan task's log); "
                "no practice was audited"
            )
        outcome = store.run_outcome(run_id)
        orphans = None
        if extracted_ok:
            path = unattributed_path(outcome.as_of.isoformat())
            findings = read_findings(path)
            store.persist_practice(
                run_id, outcome.as_of, None, findings, results_dir=str(path.parent)
            )
            orphans = len(findings)
        store.finish_run(run_id, outcome.failed, orphans)
        rows = [
            r
            for r in store.practice_runs(outcome.as_of)
            if r["practice_id"] in outcome.practice_ids or r["practice_id"] is None
        ]
    finally:
        store.close()
    summary = summarize(rows, run_id)
    log.info("run %s as of %s:\n%s", run_id, outcome.as_of, summary)
    if outcome.failed:
        raise PracticesFailedError(run_id, outcome.failed)
    return summary


def summarize(rows: Sequence[Mapping[str, Any]], run_id: str | None = None) -> str:
    """A short per-practice summary of a run's status rows, for logs and the demo."""
    lines = []
    for row in sorted(rows, key=lambda r: (r["practice_id"] is None, r["practice_id"] or "")):
        name = row["practice_id"] or "(no practice)"
        if run_id is not None and row["run_id"] != run_id:
            lines.append(f"{name}: not audited by this run")
        elif row["status"] != "success":
            lines.append(f"{name}: FAILED: {row.get('error') or 'see the task log'}")
        else:
            lines.append(
                f"{name}: {row['findings']} findings ({row['critical']} critical, "
                f"{row['warning']} warning, {row['notice']} notice)"
            )
    return "\n".join(lines)


# -- failures -------------------------------------------------------------------------------


def alert_admins(context: Mapping[str, Any]) -> None:
    """The single hook that tells the admins a task failed for good (retries exhausted or
    not worth trying): records the failure in the results store (alerts, and the
    practice's status for a practice's task) and logs it. Mail delivery hooks in here.

    Never raises: a broken alert must not hide the failure it reports.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from metaudit.results import ResultsStore

    ti = context["ti"]
    exception = context.get("exception")
    error = f"{type(exception).__name__}: {exception}" if exception else "task failed"
    practice_id = _practice_of(context)
    log.error(
        "ALERT run %s task %s%s failed: %s",
        ti.run_id,
        ti.task_id,
        f" (practice {practice_id})" if practice_id else "",
        error,
    )
    try:
        store = ResultsStore.open(results_url())
        try:
            run = store.run(ti.run_id)
            as_of = run["as_of"] if run else None
            store.record_alert(
                dag_id=ti.dag_id,
                run_id=ti.run_id,
                task_id=ti.task_id,
                map_index=int(getattr(ti, "map_index", -1) or -1),
                try_number=getattr(ti, "try_number", None),
                practice_id=practice_id,
                as_of=as_of,
                error=error,
                log_url=getattr(ti, "log_url", None),
            )
            if practice_id and as_of:
                store.fail_practice(ti.run_id, as_of, practice_id, error)
        finally:
            store.close()
    except (SQLAlchemyError, OSError, MetAuditError):
        log.exception("could not record the alert for run %s task %s", ti.run_id, ti.task_id)


def _practice_of(context: Mapping[str, Any]) -> str | None:
    """The practice a failed task worked on (its mapped ``practice_id`` argument)."""
    task = context.get("task")
    kwargs = getattr(task, "op_kwargs", None) or {}
    for value in kwargs.values():
        if isinstance(value, Mapping) and isinstance(value.get("practice_id"), str):
            return str(value["practice_id"])
    # A mapped practice task names its practice as its map index.
    rendered = getattr(context.get("ti"), "rendered_map_index", None)
    return rendered if isinstance(rendered, str) and rendered else None


def _now() -> datetime:
    return datetime.now(UTC)
