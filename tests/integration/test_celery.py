"""The nightly DAG runs under CeleryExecutor across two Celery workers.

A real cluster on this machine, shaped like the compose file: api-server,
scheduler, dag-processor and two Celery workers (``w1@host``, ``w2@host``, two
task slots each) as separate processes with an AIRFLOW_HOME each; PostgreSQL
as metadata database and results store (fresh databases, dropped afterwards);
this machine's Redis as broker (database 5, flushed first). The source is a
generated SQLite network of six practices, so the run maps six per-practice
tasks. The proof: the run succeeds and its mapped tasks ran on both workers,
as the task instances' hostnames and each worker's own task logs show.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import sys
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from types import ModuleType

import pytest
from servers import POSTGRES_HOST, REDIS_HOST, reachable

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis, pytest.mark.airflow]

REPO = Path(__file__).resolve().parents[2]
# A database number of its own: flushing it touches nothing else on the server.
BROKER_URL = f"redis://{REDIS_HOST}:6379/5"
AS_OF = date(2026, 3, 2)
PRACTICES = 6
RUN_TIMEOUT_S = 360


def _load_harness() -> ModuleType:
    """The local-cluster harness shared with bench/bench_scaleout.py."""
    spec = importlib.util.spec_from_file_location(
        "bench_scaleout", REPO / "bench" / "bench_scaleout.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def harness() -> ModuleType:
    if not reachable(REDIS_HOST, 6379):
        pytest.skip(f"needs Redis on {REDIS_HOST}:6379 as Celery broker (not reachable)")
    if not reachable(POSTGRES_HOST, 5432):
        pytest.skip(f"needs PostgreSQL on {POSTGRES_HOST}:5432 (not reachable)")
    pytest.importorskip("airflow.providers.celery", reason="needs apache-airflow-providers-celery")
    return _load_harness()


@pytest.fixture(scope="module")
def source_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated network of six practices (about 3,000 sessions) in SQLite."""
    from metaudit.demo import generate

    path = tmp_path_factory.mktemp("celery_source") / "practice.sqlite"
    generate(str(path), as_of=AS_OF, practices=PRACTICES, sessions=3000, progress=False)
    return path


@pytest.fixture
def cluster_dbs(harness: ModuleType) -> Iterator[tuple[str, str]]:
    """Fresh metadata and results databases on the PostgreSQL server, dropped afterwards."""
    server = f"postgresql+psycopg://postgres@{POSTGRES_HOST}:5432"
    with (
        harness.scratch_postgres_database(server, "metaudit_celery_meta") as metadata_url,
        harness.scratch_postgres_database(server, "metaudit_celery_results") as results_url,
    ):
        yield metadata_url, results_url


def test_nightly_dag_runs_on_two_celery_workers(
    harness: ModuleType, source_db: Path, cluster_dbs: tuple[str, str], tmp_path: Path
) -> None:
    metadata_url, results_url = cluster_dbs
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    settings = harness.ClusterSettings(
        root=tmp_path / "cluster",
        metadata_url=metadata_url,
        broker_url=BROKER_URL,
        workers=2,
        concurrency=2,
        extra_env={
            "AIRFLOW_CONN_MET_PRACTICE_DB": json.dumps(
                {"conn_type": "sqlite", "host": str(source_db)}
            ),
            "AIRFLOW_CONN_MET_RESULTS_DB": harness.postgres_connection_json(results_url),
            "METAUDIT_DATA_DIR": str(data_dir),
            "METAUDIT_PACKET_KEY": secrets.token_hex(32),
            # One practice a task: six mapped tasks for the two workers to share.
            "METAUDIT_PRACTICES_PER_TASK": "1",
        },
    )
    settings.root.mkdir()
    run_id = f"celery_proof_{uuid.uuid4().hex[:8]}"
    cluster = harness.LocalCeleryCluster(settings)
    try:
        cluster.flush_broker()
        cluster.migrate()
        cluster.start()
        assert cluster.ping_workers() >= set(cluster.worker_names)
        cluster.wait_for_dag()
        cluster.trigger(run_id, {"as_of": AS_OF.isoformat()})
        state = cluster.wait_for_run(run_id, timeout=RUN_TIMEOUT_S)
        tis = cluster.task_instances(run_id)
        logs = cluster.logs_tail()
    finally:
        started = list(cluster.components)
        cluster.stop()

    # Every component and whatever it spawned (its whole process group) is gone.
    assert len(started) == 5
    for component in started:
        assert component.process.poll() is not None, f"{component.name} still runs"
        with pytest.raises(ProcessLookupError):
            os.killpg(component.process.pid, 0)
    assert state == "success", (
        f"run ended {state}: {[(t['task_id'], t['map_index'], t['state']) for t in tis]}\n{logs}"
    )
    mapped = [ti for ti in tis if ti["map_index"] >= 0]
    assert len(mapped) == PRACTICES, f"expected an audit task per practice, got {len(mapped)}"
    assert {ti["state"] for ti in mapped} == {"success"}
    # Every mapped task went through the Celery executor (a Celery task id) on a named worker.
    assert all(ti["external_executor_id"] for ti in mapped)
    hosts = {str(ti["hostname"]) for ti in mapped}
    assert hosts == set(cluster.worker_names), f"mapped tasks ran on {hosts}"
    # Each worker imported the audit's libraries once at start (metaudit.pipeline.celery_config),
    # for the task processes it forks to inherit.
    for worker in cluster.worker_names:
        short = worker.split("@", 1)[0]
        (component,) = [c for c in started if c.name == short]
        output = component.log_path.read_text(encoding="utf-8", errors="replace")
        assert "preloaded for the worker's task processes" in output, f"{short}:\n{output[-3000:]}"
        assert "could not preload" not in output, f"{short}:\n{output[-3000:]}"

    # Each worker wrote the logs of the tasks it ran into its own AIRFLOW_HOME.
    for worker in cluster.worker_names:
        short = worker.split("@", 1)[0]
        ran_here = {(ti["task_id"], ti["map_index"]) for ti in mapped if ti["hostname"] == worker}
        logged = {
            (
                p.parent.parent.name.removeprefix("task_id="),
                int(p.parent.name.removeprefix("map_index=")),
            )
            for p in (settings.root / short / "logs").rglob("map_index=*/attempt=*.log")
            if f"run_id={run_id}" in str(p)
        }
        assert ran_here <= logged, f"{worker} ran {sorted(ran_here)} but logged {sorted(logged)}"
