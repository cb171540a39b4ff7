"""What the Airflow tasks call: plain functions, testable without a scheduler.

The nightly run, stage by stage:

1. :func:`plan_run`: the as-of date and the practices to audit (reads only the
   source's practices table); records the run in the results store.
2. :func:`extract`: reads and types the whole source once, writes one typed
   partition per practice (:mod:`metaudit.snapshot`) and the run-level findings
   that name no practice.
3. per practice, :func:`validate_practice` (the rulebook on the practice's
   partition; findings and GX results under ``results/<as_of>/<practice>/``),
   :func:`persist_practice` (the results store), then side by side
   :func:`notify_practice` (the morning email, :mod:`metaudit.mail`) and
   :func:`build_packets` (the audit packets, :mod:`metaudit.packets`).
4. :func:`finish_run`: stores the run-level findings, marks the run, and fails
   naming the practices that did not finish.

A practice "finished" when the results store says so: persist marks it a
success, and a notify or packets stage that fails for good marks it failed
again (:func:`practice_stage`, before Airflow hears of the failure, so the
run's last task never races the failure callback). :func:`alert_admins`, the
failure callback, records an alert and mails it to the admins on the morning
email's path.

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
from collections.abc import Callable, Generator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaudit.errors import MetAuditError, SettingsError

if TYPE_CHECKING:
    from metaudit.digest import FindingExposure
    from metaudit.mail import MailConfig
    from metaudit.settings import Settings

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_DIR = PROJECT_ROOT / "data"
SOURCE_CONN_ID = "met_practice_db"
RESULTS_CONN_ID = "met_results_db"
SENDGRID_CONN_ID = "sendgrid_default"
PACKET_KEY_CONN_ID = "met_packet_key"
DAG_ID = "met_compliance_nightly"
UNATTRIBUTED_FILE = "findings-without-practice.jsonl"
TIMINGS_FILE = "timings.json"
OUTBOX_FOLDER = "outbox"
# METAUDIT_DEMO=1 (set by `make demo`) lets packets be signed with the published demo key.
DEMO_ENV = "METAUDIT_DEMO"
# Partitions are copies of health records: a date's are removed when its run finished
# with every practice; a failed run's are kept (to clear and retry its tasks) this many
# days, then removed by a later run.
SNAPSHOT_KEEP_DAYS_ENV = "METAUDIT_SNAPSHOT_KEEP_DAYS"
DEFAULT_SNAPSHOT_KEEP_DAYS = 7
# Airflow's own setting for the address of its UI ([api] base_url).
AIRFLOW_BASE_URL_ENV = "AIRFLOW__API__BASE_URL"
# What an alert callback may meet while mailing; none of them may escape the callback.
_ALERT_ERRORS: tuple[type[BaseException], ...] = (
    MetAuditError,
    OSError,
    ValueError,
    TypeError,
    LookupError,
    RuntimeError,
    ImportError,
)


class RunIncompleteError(MetAuditError):
    """A run did not audit every practice it planned (retrying the last task won't help)."""


class RunNotPlannedError(RunIncompleteError):
    """The run never got past planning, so it audited nothing."""


class PracticesFailedError(RunIncompleteError):
    """Some practices of a run did not finish; the others did."""

    def __init__(
        self, run_id: str, failed: Sequence[str], stages: Mapping[str, str] | None = None
    ) -> None:
        self.failed = sorted(failed)
        self.stages = dict(stages or {})
        where = "; ".join(
            f"{practice_id} at {self.stages.get(practice_id, 'an unknown stage')}"
            for practice_id in self.failed
        )
        super().__init__(
            f"run {run_id}: audit failed for practice(s) {', '.join(self.failed)}; "
            f"the other practices finished. Failed: {where} (see the failed tasks' logs and "
            "the results store's alerts)"
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


def outbox_dir() -> Path:
    """The mail outbox: one record and one .eml per practice and as-of date (and alerts)."""
    return data_dir() / OUTBOX_FOLDER


def demo_mode() -> bool:
    """Whether this is the demo (METAUDIT_DEMO=1): packets may use the published demo key."""
    return os.environ.get(DEMO_ENV, "").strip() == "1"


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


def results_url(lookup: Callable[[str], Any] | None = None) -> str:
    """The results store's URL: the ``met_results_db`` connection, else the default
    SQLite file ``results.sqlite`` in the data folder.

    ``lookup`` finds a connection by id; the default is the task SDK's
    (:func:`airflow_connection`). The API server passes its own: outside a task the SDK
    sees only connections defined in the environment."""
    from metaudit.results import default_url

    conn = (lookup or airflow_connection)(RESULTS_CONN_ID)
    return sqlalchemy_url_from_connection(conn) if conn is not None else default_url()


def sendgrid_credentials() -> tuple[str | None, str | None]:
    """``(api_key, host)`` from the ``sendgrid_default`` connection (password and host);
    ``(None, None)`` without it: mail then goes to the local outbox folder only."""
    from metaudit.mail import credentials_from_connection

    conn = airflow_connection(SENDGRID_CONN_ID)
    return credentials_from_connection(conn) if conn is not None else (None, None)


def packet_key(lookup: Callable[[str], Any] | None = None) -> str | None:
    """The packet signing key: the ``met_packet_key`` connection's password; None without
    it, so the packets fall back to METAUDIT_PACKET_KEY (and refuse to build without one).
    ``lookup`` as for :func:`results_url`."""
    conn = (lookup or airflow_connection)(PACKET_KEY_CONN_ID)
    secret = (getattr(conn, "password", None) or "").strip() if conn is not None else ""
    return secret or None


def airflow_base_url(settings: Settings, mail_config: MailConfig) -> str | None:
    """The Airflow UI's address for links: ``email.airflow_base_url`` when the configuration
    sets it (null: no links), else AIRFLOW__API__BASE_URL, else the mail default."""
    email = settings.sections.get("email")
    if isinstance(email, Mapping) and "airflow_base_url" in email:
        return mail_config.airflow_base_url
    from_airflow = os.environ.get(AIRFLOW_BASE_URL_ENV, "").strip()
    return from_airflow or mail_config.airflow_base_url


def run_link(base_url: str | None, run_id: str, dag_id: str = DAG_ID) -> str | None:
    """The run's page in the Airflow UI, or None without a base address."""
    from urllib.parse import quote

    if not base_url:
        return None
    return f"{base_url.rstrip('/')}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


# -- stages ---------------------------------------------------------------------------------


def read_practices(source: str, statement_timeout_s: float | None = None) -> dict[str, str]:
    """Practice id -> name, as the source's practices table has them (each statement and
    lock wait bounded by ``statement_timeout_s``, default the setting's default)."""
    from metaudit.source import DEFAULT_STATEMENT_TIMEOUT_S, read_tables

    timeout = statement_timeout_s or DEFAULT_STATEMENT_TIMEOUT_S
    raw = read_tables(source, ["practices"], timeout).tables["practices"]
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
    from metaudit.settings import Settings

    names = read_practices(source, Settings.load(None).statement_timeout_s)
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
    from metaudit.settings import Settings
    from metaudit.snapshot import unattributed_findings, write_partitions, write_unattributed

    timings: dict[str, float] = {}
    # The configuration (METAUDIT_CONFIG) bounds each statement and lock wait: a table
    # locked by a reload ends this try with SourceUnavailableError, which is retried.
    timeout = Settings.load(None).statement_timeout_s
    typed = load_source(source, as_of, timings, timeout)
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
    CSV), their exposure beside them, GX validation results and stage timings. Returns
    ids and paths only."""
    from metaudit.deadlines import write_deadlines
    from metaudit.engine import check_typed
    from metaudit.exposure import write_exposure
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
    if result.exposure is not None:
        write_exposure(result.exposure, out_dir)
    if result.deadlines is not None:
        write_deadlines(result.deadlines, out_dir)
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
        "partition": str(partition),
        "out_dir": str(out_dir),
        "findings": str(jsonl),
        "timings": str(timings_path),
    }


def persist_practice(store_url: str, run_id: str, validated: Mapping[str, str]) -> dict[str, Any]:
    """Store one practice's findings of the as-of date (replacing that date's), their
    exposure (the ``exposure.jsonl`` beside them, when the validate stage wrote one), the
    draft claims' filing deadlines (``filing_deadlines.jsonl``, likewise), its
    status and stage timings, and recompute its findings history. Returns ids and paths
    for the stages after it (the partition and the audit's folder)."""
    from metaudit.deadlines import DEADLINES_FILE, read_deadlines
    from metaudit.findings import read_findings
    from metaudit.results import ResultsStore

    practice_id = validated["practice_id"]
    findings = read_findings(Path(validated["findings"]))
    exposure = stored_exposure(Path(validated["out_dir"]), Path(validated["partition"]))
    deadlines_path = Path(validated["out_dir"], DEADLINES_FILE)
    deadlines = read_deadlines(deadlines_path) if deadlines_path.exists() else []
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
            exposure=exposure,
            deadlines=deadlines,
        )
    finally:
        store.close()
    return {
        "practice_id": practice_id,
        "as_of": stored.as_of,
        "findings": stored.findings,
        "partition": validated["partition"],
        "out_dir": validated["out_dir"],
    }


def stored_exposure(out_dir: Path, partition: Path) -> dict[str, FindingExposure]:
    """The exposure of a practice's findings as the results store keeps it, by
    fingerprint: read from ``exposure.jsonl`` in its results folder (empty when there is
    none), each with the claim its record is (claim lines through the partition's
    claim_lines)."""
    from metaudit.digest import FindingExposure
    from metaudit.exposure import claim_of_record, read_exposure
    from metaudit.snapshot import PartitionError, read_partition_columns

    path = out_dir / "exposure.jsonl"
    if not path.exists():
        log.warning("%s is missing: the findings are stored without their exposure", path)
        return {}
    rows = read_exposure(path)
    claim_of_line: dict[str, str] = {}
    if any(row["entity_type"] in ("claim_line", "row") for row in rows):
        try:
            lines = read_partition_columns(partition, "claim_lines", ["line_id", "claim_id"])
        except PartitionError as exc:
            # The money is all in exposure.jsonl; only the claims of line findings (for the
            # email's fix-before-billing block) are lost, so the findings are still stored.
            log.warning("%s; findings on claim lines are stored without their claim", exc)
        else:
            claim_of_line = {
                str(line): str(claim)
                for line, claim in zip(lines["line_id"], lines["claim_id"], strict=True)
                if isinstance(line, str) and isinstance(claim, str)
            }
    return {
        row["fingerprint"]: FindingExposure(
            lines=row["lines"],
            fix_before_billing=row["fix_before_billing"],
            in_flight=row["in_flight"],
            recoupment_risk=row["recoupment_risk"],
            claim_id=claim_of_record(row["entity_type"], row["entity_id"], claim_of_line),
        )
        for row in rows
    }


def notify_practice(
    store_url: str,
    run_id: str,
    persisted: Mapping[str, Any],
    *,
    api_key: str | None = None,
    host: str | None = None,
    resend: bool = False,
    config: str | None = None,
) -> dict[str, Any]:
    """Deliver the practice's morning email of the as-of date, once (:mod:`metaudit.mail`).

    The content is the practice's digest from the results store (new, still open,
    resolved, due soon), with links to the run in the Airflow UI and to the
    practice's packets page. With no ``api_key`` the email is written to the
    outbox folder as an .eml file; with one it goes through SendGrid (``host``
    replaces the API address), and the outbox record keeps it from going twice
    unless ``resend``. Returns the delivery's ids and paths.
    """
    from metaudit import mail
    from metaudit.mail.content import packets_url
    from metaudit.results import ResultsStore
    from metaudit.settings import Settings

    practice_id = str(persisted["practice_id"])
    as_of = date.fromisoformat(str(persisted["as_of"]))
    settings = Settings.load(config)
    mail_config = mail.load_mail_config(settings)
    store = ResultsStore.open(store_url)
    try:
        digest = store.digest(practice_id, as_of)
    finally:
        store.close()
    base = airflow_base_url(settings, mail_config)
    digest = replace(
        digest,
        run_url=run_link(base, run_id),
        packets_url=packets_url(digest, mail_config.packets_base_url or base),
    )
    result = mail.notify_practice(
        digest,
        mail_config,
        api_key=api_key,
        host=host,
        outbox_dir=outbox_dir(),
        resend=resend,
        run_id=run_id,
    )
    log.info(
        "practice %s as of %s: email %s (%s)",
        practice_id,
        as_of,
        result.status,
        result.eml_path or result.record_path,
    )
    return result.to_dict()


def build_packets(
    persisted: Mapping[str, Any],
    *,
    key: str | None = None,
    demo: bool = False,
    rebuild: bool = False,
    config: str | None = None,
) -> dict[str, Any]:
    """Build the practice's audit packets of the as-of date (:mod:`metaudit.packets`): one per
    client with activity and the practice's month packet, from the practice's partition
    and the evidence its validate stage wrote (GX is not run again).

    ``key`` signs them (else METAUDIT_PACKET_KEY; without either only ``demo`` builds,
    with the published demo key). Existing packets that verify are kept unless
    ``rebuild``. Returns counts and paths.
    """
    from metaudit.packets import build_practice_packets
    from metaudit.snapshot import read_partition

    practice_id = str(persisted["practice_id"])
    typed = read_partition(Path(persisted["partition"]), practice_id)
    return build_practice_packets(
        None,
        practice_id,
        date.fromisoformat(str(persisted["as_of"])),
        audit_dir=Path(persisted["out_dir"]),
        key=key,
        demo=demo,
        rebuild=rebuild,
        config=config,
        typed=typed,
    )


@contextmanager
def practice_stage(
    context: Mapping[str, Any], store_url: str, practice: Mapping[str, Any]
) -> Generator[None]:
    """Run a practice's stage after persist (notify, packets): when it fails for good, mark
    the practice failed in the results store before re-raising.

    Persist already marked the practice a success; the run's last task reads the
    store, and Airflow reports a task's failure before its failure callback runs,
    so the stage records its own failure first. A failure that will be retried is
    not recorded (the next try may succeed).
    """
    try:
        yield
    except BaseException as exc:
        if is_final_failure(context, exc):
            record_practice_failure(
                store_url,
                str(context["run_id"]),
                date.fromisoformat(str(practice["as_of"])),
                str(practice["practice_id"]),
                exc,
            )
        raise


def is_final_failure(context: Mapping[str, Any], exc: BaseException) -> bool:
    """Whether Airflow will not try the failing task again: its retry policy fails it at
    once, or this was its last try."""
    from airflow.sdk.definitions.retry_policy import RetryAction
    from airflow.sdk.exceptions import AirflowFailException

    if isinstance(exc, AirflowFailException):
        return True
    ti = context["ti"]
    try_number = int(getattr(ti, "try_number", 1) or 1)
    max_tries = int(getattr(ti, "max_tries", 0) or 0)
    policy = getattr(getattr(ti, "task", None), "retry_policy", None)
    if policy is not None and isinstance(exc, Exception):
        decision = policy.evaluate(exc, try_number=try_number, max_tries=max_tries)
        if decision.action == RetryAction.FAIL:
            return True
    return max_tries == 0 or try_number > max_tries


def record_practice_failure(
    store_url: str, run_id: str, as_of: date, practice_id: str, exc: BaseException
) -> None:
    """Mark the practice failed for this run (its stored findings stay); logs, never raises."""
    from metaudit.results import ResultsStore

    try:
        store = ResultsStore.open(store_url)
        try:
            store.fail_practice(run_id, as_of, practice_id, describe_error(exc))
        finally:
            store.close()
    except _with_database_errors():
        log.exception("could not record the failure of practice %s in run %s", practice_id, run_id)


def describe_error(exc: BaseException | None) -> str:
    """How a failure is recorded: the error's type and message."""
    return f"{type(exc).__name__}: {exc}" if exc is not None else "task failed"


def finish_run(
    store_url: str,
    run_id: str,
    *,
    extracted_ok: bool,
    api_key: str | None = None,
    host: str | None = None,
) -> str:
    """Store the run-level findings that name no practice (when this run's extract wrote
    them), mark the run finished, post the admin alerts still pending (with a SendGrid
    ``api_key``), and return a per-practice summary; raise PracticesFailedError naming
    the practices that did not finish."""
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
        stages = failed_stages(store, run_id, outcome.failed)
        rows = [
            r
            for r in store.practice_runs(outcome.as_of)
            if r["practice_id"] in outcome.practice_ids or r["practice_id"] is None
        ]
    finally:
        store.close()
    summary = summarize(rows, run_id)
    if api_key:
        try:
            pending = resend_pending_alerts(store_url, outcome.as_of, api_key=api_key, host=host)
        except _with_database_errors() as exc:
            # The run's own outcome must still be reported; the alerts stay in the outbox.
            log.exception("could not post the pending admin alerts")
            pending = [describe_error(exc)]
        if pending:
            summary += f"\n{len(pending)} admin alert mail(s) still pending in the outbox"
    log.info("run %s as of %s:\n%s", run_id, outcome.as_of, summary)
    retire_snapshots(outcome.as_of.isoformat(), keep_own=bool(outcome.failed))
    if outcome.failed:
        raise PracticesFailedError(run_id, outcome.failed, stages)
    return summary


def failed_stages(store: Any, run_id: str, failed: Sequence[str]) -> dict[str, str]:
    """Where each failed practice of the run failed: its task and the error's type (the
    type only: a foreign error's message may quote a record), from the run's alerts."""
    wanted = set(failed)
    stages: dict[str, str] = {}
    for alert in store.alerts(run_id):  # oldest first: the last failure wins
        practice_id = alert.get("practice_id")
        if practice_id in wanted:
            kind = str(alert.get("error") or "").split(":", 1)[0].strip() or "error"
            stages[practice_id] = f"{alert['task_id']} ({kind})"
    for practice_id in wanted - set(stages):
        stages[practice_id] = "no task of its own (it never ran: see the extract task's log)"
    return stages


def snapshot_keep_days() -> int:
    """Days a failed run's partitions are kept (METAUDIT_SNAPSHOT_KEEP_DAYS, default 7)."""
    raw = os.environ.get(SNAPSHOT_KEEP_DAYS_ENV, "").strip()
    if not raw:
        return DEFAULT_SNAPSHOT_KEEP_DAYS
    if not raw.isdigit():
        raise SettingsError(
            f"{SNAPSHOT_KEEP_DAYS_ENV} must be a whole number of days >= 0, got {raw!r}"
        )
    return int(raw)


def retire_snapshots(as_of: str, *, keep_own: bool, root: Path | None = None) -> list[Path]:
    """Remove the partitions of ``as_of`` (unless ``keep_own``) and every other date's
    partitions untouched for longer than :func:`snapshot_keep_days`; return what went."""
    import shutil

    base = root or data_dir() / "snapshots"
    cutoff = time.time() - snapshot_keep_days() * 86_400
    removed = []
    for folder in sorted(base.iterdir()) if base.is_dir() else []:
        own = folder.name == as_of
        if own and keep_own:
            log.info("partitions of %s kept for retries of the failed practices: %s", as_of, folder)
            continue
        if own or folder.stat().st_mtime < cutoff:
            shutil.rmtree(folder, ignore_errors=True)
            if not folder.exists():
                removed.append(folder)
                log.info("partitions removed (copies of health records): %s", folder)
            else:
                log.warning("partitions could not be removed: %s", folder)
    return removed


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
    practice's status for a practice's task), logs it, and mails it to ``email.admins``
    on the morning email's path (an .eml in the outbox without a SendGrid key), once per
    failed try.

    Never raises: a broken alert must not hide the failure it reports.
    """
    ti = context["ti"]
    exception = context.get("exception")
    error = describe_error(exception)
    practice_id = _practice_of(context)
    log.error(
        "ALERT run %s task %s%s failed: %s",
        ti.run_id,
        ti.task_id,
        f" (practice {practice_id})" if practice_id else "",
        error,
    )
    alert_id, as_of = _record_alert(ti, practice_id, error)
    _mail_alert(context, practice_id, as_of, alert_id)


def _record_alert(ti: Any, practice_id: str | None, error: str) -> tuple[int | None, date | None]:
    """The alert's row in the results store (and the practice's failed status); its id and
    the run's as-of date, (None, None) when the store cannot be reached."""
    from metaudit.results import ResultsStore
    from metaudit.results.store import as_date

    try:
        store = ResultsStore.open(results_url())
        try:
            run = store.run(ti.run_id)
            as_of = as_date(run["as_of"]) if run else None
            alert_id = store.record_alert(
                dag_id=ti.dag_id,
                run_id=ti.run_id,
                task_id=ti.task_id,
                map_index=_map_index(ti),
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
    except _with_database_errors():
        log.exception("could not record the alert for run %s task %s", ti.run_id, ti.task_id)
        return None, None
    return alert_id, as_of


def _map_index(ti: Any) -> int:
    """A task instance's map index; -1 for a task that is not mapped (None or absent)."""
    index = getattr(ti, "map_index", None)
    return -1 if index is None else int(index)


def alert_key(ti: Any) -> str:
    """The outbox key of a failed task's alert: one mail per run, task, map index and try."""
    return f"{ti.run_id}.{ti.task_id}.{_map_index(ti)}.try{getattr(ti, 'try_number', None) or 0}"


def _own_error(exception: BaseException | None) -> MetAuditError | None:
    """The project's own error in an exception's chain of causes, if any."""
    seen = 0
    while exception is not None and seen < 10:
        if isinstance(exception, MetAuditError):
            return exception
        exception, seen = exception.__cause__, seen + 1
    return None


def alert_text(
    ti: Any,
    practice_id: str | None,
    as_of: date,
    exception: BaseException | None,
    run_url: str | None,
) -> tuple[str, str]:
    """Subject and text of an admin alert: runs, tasks, practices and the error's kind only.

    The project's own errors name tables, settings, files and ids, so their message
    is included; any other error's message could quote a record's values (a
    database driver's error carries its parameters), so only its type is.
    """
    who = f" for practice {practice_id}" if practice_id else ""
    subject = f"{ti.task_id} failed{who} (run {ti.run_id})"
    own = _own_error(exception)
    if exception is None:
        error = "task failed (no error was handed to the callback)"
    elif own is not None:
        # Ours, or Airflow's wrapper of ours (the finish task raises AirflowFailException
        # from PracticesFailedError): its message names practices and stages only.
        error = describe_error(own)
    else:
        error = f"{type(exception).__name__} (its message is in the task log)"
    lines = [
        f"Task {ti.task_id} of DAG {ti.dag_id} failed and will not be retried.",
        "",
        f"Run:      {ti.run_id}",
        f"As of:    {as_of.isoformat()}",
        f"Practice: {practice_id or '(the whole run)'}",
        f"Try:      {getattr(ti, 'try_number', None) or '?'}",
        f"Error:    {error}",
    ]
    log_url = getattr(ti, "log_url", None)
    if run_url:
        lines.append(f"Run page: {run_url}")
    if isinstance(log_url, str) and log_url:
        lines.append(f"Task log: {log_url}")
    lines += [
        "",
        "Other practices are not affected by a practice's failure. Rerun the date (and the "
        "practice) from the DAG's trigger form once the cause is fixed.",
    ]
    return subject, "\n".join(lines) + "\n"


def _mail_alert(
    context: Mapping[str, Any], practice_id: str | None, as_of: date | None, alert_id: int | None
) -> None:
    """Mail the alert to the admins (SendGrid with a key, else the outbox folder) and mark
    the alert notified; logs, never raises."""
    ti = context["ti"]
    try:
        from metaudit import mail
        from metaudit.settings import Settings

        try:
            settings = Settings.load(None)
            mail_config = mail.load_mail_config(settings)
        except (MetAuditError, OSError, ValueError):
            # A broken configuration must not silence the alert: the outbox still gets it.
            log.exception("the email configuration is unusable; the alert goes to the outbox")
            settings, mail_config = None, mail.MailConfig()
        api_key, host = sendgrid_credentials()
        if api_key and not (mail_config.admins and mail_config.sender):
            log.warning(
                "email.admins or email.sender is not configured: the alert is written to "
                "the outbox folder %s only",
                outbox_dir(),
            )
            api_key = None
        day = as_of or _run_date(context)
        base = (
            airflow_base_url(settings, mail_config)
            if settings is not None
            else mail_config.airflow_base_url
        )
        subject, text = alert_text(
            ti, practice_id, day, context.get("exception"), run_link(base, ti.run_id, ti.dag_id)
        )
        result = mail.alert_admins_email(
            subject,
            text,
            mail_config,
            key=alert_key(ti),
            as_of=day.isoformat(),
            api_key=api_key,
            host=host,
            outbox_dir=outbox_dir(),
        )
        log.info("alert %s: %s (%s)", result.name, result.status, result.eml_path)
        if alert_id is not None and result.status in ("sent", "written", "already_sent"):
            _mark_alert_notified(alert_id)
    except _ALERT_ERRORS:
        log.exception("could not mail the alert for run %s task %s", ti.run_id, ti.task_id)


def _mark_alert_notified(alert_id: int) -> None:
    """Set the alert's ``notified_at``: the mail went out (or, without a key, to the outbox)."""
    from metaudit.results import ResultsStore

    try:
        store = ResultsStore(results_url())
        try:
            store.mark_alert_notified(alert_id)
        finally:
            store.close()
    except _with_database_errors():
        log.exception("could not mark alert %s notified", alert_id)


def resend_pending_alerts(
    store_url: str,
    as_of: date,
    *,
    api_key: str,
    host: str | None = None,
    config: str | None = None,
) -> list[str]:
    """Post the admin alerts SendGrid refused or could not take, of ``as_of`` and the
    ``email.retry_earlier_days`` days before (:func:`metaudit.mail.post_pending_alerts`),
    and mark those that went out notified. Returns the errors of those still pending.

    The run's last task calls it: an alert is mailed once, from a failing task's
    callback, and would otherwise never reach the admins after a refusal.
    """
    from types import SimpleNamespace

    from metaudit import mail
    from metaudit.results import ResultsStore
    from metaudit.settings import Settings

    mail_config = mail.load_mail_config(Settings.load(config))
    sent, failed = mail.post_pending_alerts(
        mail_config, as_of=as_of.isoformat(), api_key=api_key, host=host, outbox_dir=outbox_dir()
    )
    if sent:
        keys = {result.name for result in sent}
        store = ResultsStore.open(store_url)
        try:
            for row in store.alerts(notified=False):
                if alert_key(SimpleNamespace(**row)) in keys:
                    store.mark_alert_notified(int(row["id"]))
        finally:
            store.close()
        log.info("posted %d pending admin alert(s): %s", len(sent), sorted(keys))
    for exc in failed:
        log.error("an admin alert is still pending in the outbox: %s", exc)
    return [str(exc) for exc in failed]


def _run_date(context: Mapping[str, Any]) -> date:
    """The as-of date an alert is filed under when the run has none yet (planning failed):
    the form's as_of, else the run's date, else today."""
    params = context.get("params") or {}
    try:
        if params.get("as_of"):
            return date.fromisoformat(str(params["as_of"]))
    except ValueError:
        pass
    dag_run = context.get("dag_run")
    when = getattr(dag_run, "logical_date", None) or getattr(dag_run, "run_after", None)
    return when.date() if isinstance(when, datetime) else _now().date()


def _with_database_errors() -> tuple[type[BaseException], ...]:
    """The alert errors plus SQLAlchemy's (imported late: the DAG file imports this module)."""
    from sqlalchemy.exc import SQLAlchemyError

    return (SQLAlchemyError, *_ALERT_ERRORS)


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
