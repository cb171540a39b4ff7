"""Scale-out benchmark: the nightly DAG under CeleryExecutor with one and with two workers.

    .venv/bin/python bench/bench_scaleout.py                     # 200 practices, 1,000,000 sessions
    .venv/bin/python bench/bench_scaleout.py --practices 50 --sessions 200000
    .venv/bin/python bench/bench_scaleout.py --workers 2 --concurrency 2 --keep /tmp/scaleout

Every round runs a real Airflow cluster on this machine, one process per component
as in the compose file (api-server, scheduler, dag-processor and N Celery workers,
each with an AIRFLOW_HOME of its own), with a scratch PostgreSQL database as the
metadata database (dropped afterwards), a second one as the results store
(connection ``met_results_db``) and this machine's Redis as broker (a dedicated
database number, flushed first). The source is one generated SQLite network,
made once and read by every round.

Printed per round: wall time of the run (trigger to finished, and first task
start to last task end), time per stage from the task instances' durations
(count, failed, sum, mean, max, and when the stage's last task ended counted
from the trigger), peak resident memory per task (psutil samples of the
workers' process trees every 0.25 s, matched to the task instance's pid) and
how the mapped tasks spread over the workers. ``--json FILE`` keeps the figures.

:class:`LocalCeleryCluster` is also what ``tests/integration/test_celery.py``
uses to prove the DAG runs across two Celery workers.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Generator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("bench_scaleout")

REPO = Path(__file__).resolve().parents[1]
DAG_ID = "met_compliance_nightly"
FINISHED = ("success", "failed")
# Inherited variables that would point a component at another Airflow or data folder.
_INHERITED_PREFIXES = ("AIRFLOW", "METAUDIT_", "PYTEST_", "_AIRFLOW")
# Written into each worker's home: Airflow records get_hostname() as the task
# instance's hostname, and every worker on one machine has the same FQDN; a
# callable per worker gives each its own name, as separate hosts or containers have.
_HOSTNAME_HOOK = '''"""Hostname of this Celery worker for Airflow (written by bench_scaleout)."""

from __future__ import annotations

import os


def worker_hostname() -> str:
    """The name given to this worker process (one machine, several workers)."""
    return os.environ["METAUDIT_WORKER_HOSTNAME"]
'''


def free_port() -> int:
    """A TCP port on the loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def reachable(host: str, port: int) -> bool:
    """Whether something accepts TCP connections at host:port (1 s timeout)."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def scratch_postgres_database(server: str, prefix: str) -> Generator[str, None, None]:
    """A fresh PostgreSQL database on ``server`` (a URL without database), dropped afterwards."""
    import sqlalchemy as sa

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{server}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def postgres_connection_json(url: str) -> str:
    """An Airflow connection (JSON form, for AIRFLOW_CONN_*) for a PostgreSQL URL."""
    import sqlalchemy as sa

    parsed = sa.make_url(url)
    conn: dict[str, Any] = {
        "conn_type": "postgres",
        "host": parsed.host,
        "port": parsed.port or 5432,
        "login": parsed.username,
        "schema": parsed.database,
    }
    if parsed.password:
        conn["password"] = parsed.password
    return json.dumps(conn)


def sqlite_connection_json(path: Path) -> str:
    """An Airflow connection (JSON form, for AIRFLOW_CONN_*) for a SQLite file."""
    return json.dumps({"conn_type": "sqlite", "host": str(path)})


@dataclass
class ClusterSettings:
    """What a local cluster is made of: where it lives and what it talks to."""

    root: Path
    metadata_url: str  # postgresql+psycopg://... (a database of its own)
    broker_url: str  # redis://127.0.0.1:6379/N (flushed at start)
    workers: int = 2
    concurrency: int = 2
    dags_folder: Path = REPO / "dags"
    plugins_folder: Path = REPO / "plugins"
    # Run a copy of the DAG folder taken at start: Airflow's local DAG folder is not
    # versioned, so an edit while a run is going would change that run's tasks.
    snapshot_dags: bool = True
    # AIRFLOW_CONN_*, METAUDIT_* ... given to every component.
    extra_env: dict[str, str] = field(default_factory=dict)


@dataclass
class Component:
    """One running Airflow process and where its output goes."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path


class ClusterError(RuntimeError):
    """The local cluster did not come up or a run did not finish in time."""


class RunTimeoutError(ClusterError):
    """A run was still going when its time was up (the cluster itself was fine)."""


class LocalCeleryCluster:
    """Airflow under CeleryExecutor as real processes on this machine.

    The shape of the compose file without containers: api-server (the execution
    API the workers' tasks talk to), scheduler, dag-processor and N Celery workers
    named ``w1@host``, ``w2@host`` ..., each with its own AIRFLOW_HOME below
    ``settings.root`` and its output in ``<root>/<name>.log``. Use it as a context
    manager: :meth:`stop` always runs and ends every process it started.
    """

    def __init__(self, settings: ClusterSettings) -> None:
        self.settings = settings
        self.api_port = free_port()
        self.dags_folder = settings.dags_folder
        if settings.snapshot_dags:
            self.dags_folder = settings.root / "dags-snapshot"
            shutil.copytree(
                settings.dags_folder, self.dags_folder, ignore=shutil.ignore_patterns("__pycache__")
            )
        self.components: list[Component] = []
        self._shared = self._shared_env()
        self._hooks = settings.root / "worker-hooks"

    # -- environment -------------------------------------------------------------------------

    def _shared_env(self) -> dict[str, str]:
        """The configuration every component shares (what compose's x-airflow-common holds)."""
        from cryptography.fernet import Fernet

        s = self.settings
        metadata = s.metadata_url
        return {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata,
            # Airflow derives an asyncpg URL otherwise; psycopg 3 does async itself.
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": metadata,
            "AIRFLOW__CELERY__BROKER_URL": s.broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{metadata}",
            # Workers import the audit's libraries once; task processes inherit them.
            "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "metaudit.pipeline.celery_config.CELERY_CONFIG",
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(s.plugins_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            # Only triggered runs: the nightly schedule must not add a run of its own.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.api_port}/execution/",
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{self.api_port}",
            # Every component signs and checks the same tokens.
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            **s.extra_env,
        }

    def env(self, name: str, **more: str) -> dict[str, str]:
        """The environment of component ``name``: this machine's, less any inherited Airflow
        or project configuration, plus the shared settings and an AIRFLOW_HOME of its own."""
        base = {k: v for k, v in os.environ.items() if not k.startswith(_INHERITED_PREFIXES)}
        home = self.settings.root / name
        home.mkdir(parents=True, exist_ok=True)
        return {**base, **self._shared, "AIRFLOW_HOME": str(home), **more}

    def airflow(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """Run one ``airflow`` CLI command against the cluster (home ``<root>/cli``)."""
        return subprocess.run(
            [_airflow_bin(), *args],
            env=self.env("cli"),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    # -- life cycle --------------------------------------------------------------------------

    def migrate(self) -> None:
        """Create the metadata database's tables (``airflow db migrate``)."""
        done = self.airflow("db", "migrate", timeout=300)
        if done.returncode != 0:
            raise ClusterError(
                f"airflow db migrate failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
            )

    def flush_broker(self) -> None:
        """Empty the broker's Redis database (queued messages of an earlier run)."""
        import redis

        client = redis.Redis.from_url(self.settings.broker_url, socket_timeout=5)
        try:
            client.flushdb()
        finally:
            client.close()

    def start(self, ready_timeout: float = 180) -> None:
        """Start every component and wait until the api-server answers and every worker
        replies to a Celery ping."""
        airflow = _airflow_bin()
        self._spawn(
            "api-server",
            [
                airflow,
                "api-server",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.api_port),
                "--workers",
                "1",
            ],
        )
        self._spawn("scheduler", [airflow, "scheduler"])
        self._spawn("dag-processor", [airflow, "dag-processor"])
        self._hooks.mkdir(parents=True, exist_ok=True)
        (self._hooks / "metaudit_worker_hostname.py").write_text(_HOSTNAME_HOOK)
        for name in self.worker_names:
            short = name.split("@", 1)[0]
            pythonpath = os.pathsep.join(
                p for p in (str(self._hooks), os.environ.get("PYTHONPATH", "")) if p
            )
            self._spawn(
                short,
                [
                    airflow,
                    "celery",
                    "worker",
                    "--concurrency",
                    str(self.settings.concurrency),
                    "--celery-hostname",
                    f"{short}@%h",
                    # One log server port per machine: the workers here share the machine.
                    "--skip-serve-logs",
                ],
                PYTHONPATH=pythonpath,
                METAUDIT_WORKER_HOSTNAME=name,
                AIRFLOW__CORE__HOSTNAME_CALLABLE="metaudit_worker_hostname.worker_hostname",
            )
        self._wait_ready(ready_timeout)

    @property
    def worker_names(self) -> list[str]:
        """The Celery node names of the workers (``w1@host`` ...)."""
        host = socket.gethostname()
        return [f"w{i}@{host}" for i in range(1, self.settings.workers + 1)]

    def _spawn(self, name: str, argv: list[str], **env: str) -> None:
        log_path = self.settings.root / f"{name}.log"
        with log_path.open("wb") as out:
            # A session of its own, so stop() can end the component with its children.
            process = subprocess.Popen(
                argv,
                env=self.env(name, **env),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.settings.root,
                start_new_session=True,
            )
        self.components.append(Component(name, process, log_path))
        log.info("started %s (pid %d), output in %s", name, process.pid, log_path)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.api_port}/api/v2/version"
        while not _http_ok(url):
            self._check_alive()
            if time.monotonic() > deadline:
                raise ClusterError(f"api-server did not answer {url} within {timeout:.0f}s")
            time.sleep(1)
        wanted = set(self.worker_names)
        while not wanted <= self.ping_workers():
            self._check_alive()
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"workers {sorted(wanted - self.ping_workers())} did not answer within {timeout:.0f}s"
                )
            time.sleep(1)

    def ping_workers(self) -> set[str]:
        """The Celery workers that answer a ping on the broker right now."""
        from celery import Celery

        app = Celery(broker=self.settings.broker_url)
        try:
            replies = app.control.ping(timeout=1.0) or []
        finally:
            app.close()
        return {name for reply in replies for name in reply}

    def _check_alive(self) -> None:
        for component in self.components:
            code = component.process.poll()
            if code is not None:
                raise ClusterError(
                    f"{component.name} exited with {code}:\n{tail(component.log_path)}"
                )

    def stop(self, grace: float = 20) -> None:
        """End every process this cluster started (its whole session): SIGTERM, then SIGKILL."""
        # A running task's process leaves its worker's process group (Airflow's supervisor
        # makes it a group of its own): found now, killed last, or it runs on orphaned.
        descendants = _descendants([c.process.pid for c in self.components])
        for component in reversed(self.components):
            _signal_group(component.process, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for component in reversed(self.components):
            try:
                component.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0fs; killing it", component.name, grace)
            # The group may hold children (task processes) that outlive their parent.
            _signal_group(component.process, signal.SIGKILL)
            if component.process.poll() is None:
                component.process.wait(timeout=10)
        for process in descendants:
            with suppress(Exception):  # psutil.NoSuchProcess and the like: already gone
                process.kill()
        self.components.clear()

    def __enter__(self) -> LocalCeleryCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- runs ----------------------------------------------------------------------------------

    def _engine(self) -> Any:
        import sqlalchemy as sa

        return sa.create_engine(self.settings.metadata_url, pool_pre_ping=True)

    def wait_for_dag(self, dag_id: str = DAG_ID, timeout: float = 180) -> None:
        """Wait until the dag-processor has stored the DAG (``serialized_dag``)."""
        import sqlalchemy as sa

        engine = self._engine()
        deadline = time.monotonic() + timeout
        try:
            while True:
                with engine.connect() as conn:
                    found = conn.execute(
                        sa.text("SELECT 1 FROM serialized_dag WHERE dag_id = :d LIMIT 1"),
                        {"d": dag_id},
                    ).first()
                if found:
                    return
                self._check_alive()
                if time.monotonic() > deadline:
                    raise ClusterError(f"{dag_id} was not parsed within {timeout:.0f}s")
                time.sleep(1)
        finally:
            engine.dispose()

    def trigger(self, run_id: str, conf: Mapping[str, Any], dag_id: str = DAG_ID) -> None:
        """Trigger a run with the trigger form's values (``airflow dags trigger``)."""
        done = self.airflow(
            "dags", "trigger", dag_id, "--run-id", run_id, "--conf", json.dumps(conf)
        )
        if done.returncode != 0:
            raise ClusterError(
                f"airflow dags trigger failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
            )

    def wait_for_run(self, run_id: str, timeout: float, dag_id: str = DAG_ID) -> str:
        """Wait until the run is finished; its final state (``success`` or ``failed``)."""
        import sqlalchemy as sa

        engine = self._engine()
        deadline = time.monotonic() + timeout
        try:
            while True:
                with engine.connect() as conn:
                    state = conn.execute(
                        sa.text("SELECT state FROM dag_run WHERE dag_id = :d AND run_id = :r"),
                        {"d": dag_id, "r": run_id},
                    ).scalar()
                if state in FINISHED:
                    return str(state)
                self._check_alive()
                if time.monotonic() > deadline:
                    raise RunTimeoutError(f"run {run_id} still {state!r} after {timeout:.0f}s")
                time.sleep(2)
        finally:
            engine.dispose()

    def run_row(self, run_id: str, dag_id: str = DAG_ID) -> dict[str, Any]:
        """The dag_run row of a run (state, queued_at, start_date, end_date)."""
        import sqlalchemy as sa

        engine = self._engine()
        try:
            with engine.connect() as conn:
                row = (
                    conn.execute(
                        sa.text(
                            "SELECT state, queued_at, start_date, end_date FROM dag_run "
                            "WHERE dag_id = :d AND run_id = :r"
                        ),
                        {"d": dag_id, "r": run_id},
                    )
                    .mappings()
                    .one()
                )
            return dict(row)
        finally:
            engine.dispose()

    def task_instances(self, run_id: str, dag_id: str = DAG_ID) -> list[dict[str, Any]]:
        """Every task instance of a run with where and how long it ran."""
        import sqlalchemy as sa

        engine = self._engine()
        try:
            with engine.connect() as conn:
                rows = (
                    conn.execute(
                        sa.text(
                            "SELECT task_id, map_index, state, hostname, pid, try_number, "
                            "queued_by_job_id, external_executor_id, start_date, end_date, duration "
                            "FROM task_instance WHERE dag_id = :d AND run_id = :r "
                            "ORDER BY task_id, map_index"
                        ),
                        {"d": dag_id, "r": run_id},
                    )
                    .mappings()
                    .all()
                )
            return [dict(r) for r in rows]
        finally:
            engine.dispose()

    def worker_pids(self) -> list[int]:
        """The pids of the Celery worker main processes."""
        return [c.process.pid for c in self.components if c.name.startswith("w")]

    def logs_tail(self, lines: int = 40) -> str:
        """The last lines of every component's output (for a failure message)."""
        return "\n".join(f"--- {c.name}\n{tail(c.log_path, lines)}" for c in self.components)


def _airflow_bin() -> str:
    """The ``airflow`` command of this interpreter's environment."""
    candidate = Path(sys.executable).with_name("airflow")
    return str(candidate) if candidate.exists() else "airflow"


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _descendants(pids: list[int]) -> list[Any]:
    """Every live descendant process of ``pids`` (psutil.Process objects)."""
    import psutil

    found: list[Any] = []
    for pid in pids:
        with suppress(psutil.Error):
            found.extend(psutil.Process(pid).children(recursive=True))
    return found


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    # The group id is the pid of the process we started (start_new_session=True).
    with suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a text file (empty when it does not exist)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


class MemorySampler:
    """Peak resident memory of every process below the given roots, sampled in a thread."""

    def __init__(self, roots: list[int], interval: float = 0.25) -> None:
        self.roots = roots
        self.interval = interval
        self.peak_rss: dict[int, int] = {}
        self.parent: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            for root in self.roots:
                try:
                    procs = psutil.Process(root).children(recursive=True)
                except psutil.NoSuchProcess:
                    continue
                for proc in procs:
                    try:
                        rss = proc.memory_info().rss
                        self.parent.setdefault(proc.pid, proc.ppid())
                    except (psutil.NoSuchProcess, psutil.AccessDenied):
                        continue
                    self.peak_rss[proc.pid] = max(rss, self.peak_rss.get(proc.pid, 0))
            self._stop.wait(self.interval)

    def peak_of(self, pid: int | None) -> int | None:
        """Peak RSS in bytes of a process and its own children, None when never sampled."""
        if pid is None:
            return None
        seen = [
            self.peak_rss[p]
            for p in (pid, *(c for c, par in self.parent.items() if par == pid))
            if p in self.peak_rss
        ]
        return max(seen) if seen else None


# -- the benchmark -----------------------------------------------------------------------------


@dataclass
class RoundResult:
    """The figures of one round (one worker count)."""

    workers: int
    concurrency: int
    state: str
    wall_seconds: float
    task_span_seconds: float
    stages: dict[str, dict[str, float]]
    by_worker: dict[str, int]
    peak_rss_mb: dict[str, float]
    # Practices whose four mapped tasks all succeeded, and when the last of them ended
    # (seconds from the run being queued), in order: the round's throughput, also when
    # it was cut short by --timeout.
    practices_done_at_s: list[float] = field(default_factory=list)
    practices_total: int = 0

    def practices_per_hour(self) -> float:
        """Practices fully audited per hour, from the first to the last one done (the
        steady state after plan and extract)."""
        done = self.practices_done_at_s
        if len(done) < 2 or done[-1] <= done[0]:
            return float("nan")
        return (len(done) - 1) * 3600 / (done[-1] - done[0])

    def done_at(self, share: float) -> float:
        """Seconds from the trigger until ``share`` of the practices were fully audited."""
        needed = max(1, round(share * self.practices_total))
        if len(self.practices_done_at_s) < needed:
            return float("nan")
        return self.practices_done_at_s[needed - 1]


def _seconds(start: datetime | None, end: datetime | None) -> float:
    return (end - start).total_seconds() if start and end else float("nan")


def summarize_round(
    workers: int,
    concurrency: int,
    run: dict[str, Any],
    tis: list[dict[str, Any]],
    sampler: MemorySampler,
) -> RoundResult:
    """Stage times, worker spread and peak memory of a run; of a run cut short, of the
    tasks that finished (a stage's ``count``), the others counted as ``unfinished``."""
    stages: dict[str, dict[str, float]] = {}
    peaks: dict[str, float] = {}
    by_worker: dict[str, int] = {}
    practice_ends: dict[int, list[datetime | None]] = {}
    for ti in tis:
        if ti["map_index"] >= 0:
            ended = ti["end_date"] if ti["state"] == "success" else None
            practice_ends.setdefault(ti["map_index"], []).append(ended)
        stage = stages.setdefault(
            ti["task_id"],
            {
                "count": 0,
                "failed": 0,
                "sum_s": 0.0,
                "max_s": 0.0,
                "peak_rss_mb": 0.0,
                "done_at_s": 0.0,
            },
        )
        if ti["end_date"] is None:
            stage["unfinished"] = stage.get("unfinished", 0) + 1
            continue
        duration = float(ti["duration"] or 0.0)
        stage["count"] += 1
        stage["failed"] += ti["state"] != "success"
        # When the stage's last task ended, counted from the run being queued.
        if ti["end_date"] and run["queued_at"]:
            stage["done_at_s"] = max(stage["done_at_s"], _seconds(run["queued_at"], ti["end_date"]))
        stage["sum_s"] += duration
        stage["max_s"] = max(stage["max_s"], duration)
        peak = sampler.peak_of(ti["pid"])
        label = ti["task_id"] if ti["map_index"] < 0 else f"{ti['task_id']}[{ti['map_index']}]"
        if peak is not None:
            peaks[label] = peak / 2**20
            stage["peak_rss_mb"] = max(stage["peak_rss_mb"], peak / 2**20)
        if ti["map_index"] >= 0:
            host = str(ti["hostname"])
            by_worker[host] = by_worker.get(host, 0) + 1
    for stage in stages.values():
        stage["mean_s"] = stage["sum_s"] / stage["count"] if stage["count"] else float("nan")
    # Each mapped index is one group of practices (one `audit` task); it is done when
    # every mapped task of the index succeeded.
    mapped_stages = len({ti["task_id"] for ti in tis if ti["map_index"] >= 0})
    done_at = sorted(
        _seconds(run["queued_at"], max(ends))  # type: ignore[type-var]
        for ends in practice_ends.values()
        if len(ends) == mapped_stages and all(ends)
    )
    starts = [ti["start_date"] for ti in tis if ti["start_date"]]
    ends = [ti["end_date"] for ti in tis if ti["end_date"]]
    return RoundResult(
        workers=workers,
        concurrency=concurrency,
        state=str(run["state"]),
        wall_seconds=_seconds(run["queued_at"], run["end_date"]),
        task_span_seconds=_seconds(min(starts), max(ends)) if starts and ends else float("nan"),
        stages=stages,
        by_worker=by_worker,
        peak_rss_mb=peaks,
        practices_done_at_s=done_at,
        practices_total=len(practice_ends),
    )


def run_round(args: argparse.Namespace, workers: int, source: Path, root: Path) -> RoundResult:
    """One cluster with ``workers`` workers: migrate, start, trigger, wait, measure, stop."""
    with (
        scratch_postgres_database(args.pg_server, "metaudit_bench_meta") as metadata_url,
        scratch_postgres_database(args.pg_server, "metaudit_bench_results") as results_url,
    ):
        data_dir = root / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        settings = ClusterSettings(
            root=root,
            metadata_url=metadata_url,
            broker_url=args.broker,
            workers=workers,
            concurrency=args.concurrency,
            extra_env={
                "AIRFLOW_CONN_MET_PRACTICE_DB": sqlite_connection_json(source),
                "AIRFLOW_CONN_MET_RESULTS_DB": postgres_connection_json(results_url),
                "METAUDIT_DATA_DIR": str(data_dir),
                "METAUDIT_PACKET_KEY": secrets.token_hex(32),
                **({"METAUDIT_PRACTICES_PER_TASK": str(args.per_task)} if args.per_task else {}),
            },
        )
        with LocalCeleryCluster(settings) as cluster:
            cluster.flush_broker()
            cluster.migrate()
            cluster.start()
            cluster.wait_for_dag()
            run_id = f"bench_{workers}w_{uuid.uuid4().hex[:6]}"
            with MemorySampler(cluster.worker_pids()) as sampler:
                cluster.trigger(run_id, {"as_of": args.as_of})
                try:
                    state = cluster.wait_for_run(run_id, timeout=args.timeout)
                except RunTimeoutError as exc:
                    # Cut short: the figures of what finished still measure throughput.
                    log.warning("%s; measuring what finished", exc)
                    state = "timed out"
            if state != "success":
                log.warning("run %s ended %s\n%s", run_id, state, cluster.logs_tail())
            run = cluster.run_row(run_id)
            if state == "timed out":
                run = {**run, "state": f"timed out after {args.timeout:.0f} s"}
            return summarize_round(
                workers, args.concurrency, run, cluster.task_instances(run_id), sampler
            )


def show(result: RoundResult) -> str:
    """A round's figures as text."""
    lines = [
        f"== {result.workers} worker(s) x concurrency {result.concurrency}: run {result.state}, "
        f"wall {result.wall_seconds:.1f} s (queued to finished), tasks {result.task_span_seconds:.1f} s "
        f"(first start to last end)",
        f"   {'stage':<28}{'tasks':>6}{'failed':>7}{'sum s':>10}{'mean s':>9}{'max s':>9}"
        f"{'done at s':>11}{'peak RSS MB':>13}",
    ]
    for name, s in result.stages.items():
        lines.append(
            f"   {name:<28}{int(s['count']):>6}{int(s['failed']):>7}{s['sum_s']:>10.1f}"
            f"{s['mean_s']:>9.1f}{s['max_s']:>9.1f}{s['done_at_s']:>11.1f}{s['peak_rss_mb']:>13.0f}"
            + (f"  ({int(s['unfinished'])} unfinished)" if s.get("unfinished") else "")
        )
    lines.append(
        "   mapped tasks per worker: "
        + ", ".join(f"{k}: {v}" for k, v in sorted(result.by_worker.items()))
    )
    lines.append(
        f"   groups of practices (audit tasks) done: {len(result.practices_done_at_s)} of "
        f"{result.practices_total}; {result.practices_per_hour():.0f} per hour; "
        + ", ".join(f"{share:.0%} at {result.done_at(share):.0f} s" for share in (0.25, 0.5, 1.0))
    )
    return "\n".join(lines)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--practices", type=int, default=200)
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--as-of", default="2026-03-02")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="worker counts, one round each"
    )
    parser.add_argument("--concurrency", type=int, default=2, help="task slots per worker")
    parser.add_argument(
        "--per-task",
        type=int,
        default=None,
        help="practices per audit task (METAUDIT_PRACTICES_PER_TASK; default the DAG's 10)",
    )
    parser.add_argument("--timeout", type=float, default=3 * 3600, help="seconds a run may take")
    parser.add_argument("--pg-server", default="postgresql+psycopg://postgres@127.0.0.1:5432")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/6")
    parser.add_argument(
        "--source", type=Path, default=None, help="reuse this generated SQLite source"
    )
    parser.add_argument(
        "--keep", type=Path, default=None, help="work folder to keep (default: a temp one)"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # A TERM (or an INT to a background job, which ignores INT) must still stop the
    # cluster and drop the scratch databases: turn it into an exception.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    if not reachable("127.0.0.1", 6379):
        parser.error("needs Redis on 127.0.0.1:6379")
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench_scaleout_"))
    work.mkdir(parents=True, exist_ok=True)

    source = args.source
    if source is None:
        from metaudit.demo import generate

        source = work / "source" / "practice.sqlite"
        source.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        report = generate(
            str(source),
            as_of=date.fromisoformat(args.as_of),
            seed=args.seed,
            practices=args.practices,
            sessions=args.sessions,
            progress=False,
        )
        log.info("source generated in %.1fs: %s", time.perf_counter() - started, report)

    results = []
    for workers in args.workers:
        result = run_round(args, workers, source, work / f"round_{workers}w")
        sys.stdout.write(show(result) + "\n")
        sys.stdout.flush()
        results.append(result)
        if args.json:  # after every round: a later round may be cut short or killed
            args.json.write_text(
                json.dumps(
                    [{**r.__dict__, "practices_per_hour": r.practices_per_hour()} for r in results],
                    indent=1,
                    default=str,
                )
            )
    if len(results) >= 2 and all(r.state == "success" for r in results):
        base = results[0]
        for r in results[1:]:
            sys.stdout.write(
                f"speed-up {base.workers} -> {r.workers} workers: wall x{base.wall_seconds / r.wall_seconds:.2f}, "
                f"tasks x{base.task_span_seconds / r.task_span_seconds:.2f}\n"
            )
    return 0 if all(r.state == "success" for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
