"""`dag.test()` of met_compliance_nightly end to end on a small demo database.

Each run happens in a subprocess with its own AIRFLOW_HOME (Airflow reads its
configuration once, at import), whose metadata database is migrated once for
the module. The results store is the default one: results.sqlite in the data
folder (METAUDIT_DATA_DIR).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from metaudit.demo import GenerationReport, generate
from metaudit.results import ResultsStore, default_url

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
AS_OF = date(2026, 3, 31)
ORPHAN_SESSION = "SE99999999"
PRACTICES = ["PR0001", "PR0002", "PR0003"]
VOLATILE = {"practice_runs": ("run_id", "timings", "started_at", "finished_at")}
RESULT_TABLES = ("findings", "finding_history", "practice_runs", "practices", "alerts")

# Runs one dag.test() of the DAG folder's nightly DAG. With "damage", the partition
# of that practice is damaged right after extract writes it (its claims table).
RUNNER = """
import json, sys
from datetime import datetime

args = json.loads(sys.argv[1])
if args.get("damage"):
    from metaudit import snapshot

    write = snapshot.write_partition

    def write_partition(part, practice_id, as_of, folder):
        written = write(part, practice_id, as_of, folder)
        if practice_id == args["damage"]:
            (written / "claims.parquet").write_bytes(b"damaged on disk")
        return written

    snapshot.write_partition = write_partition

from airflow.dag_processing.dagbag import DagBag

bag = DagBag(dag_folder=args["dags"], safe_mode=False)
assert not bag.import_errors, bag.import_errors
run = bag.dags["met_compliance_nightly"].test(
    logical_date=datetime.fromisoformat(args["logical_date"]), run_conf=args.get("conf")
)
print("RESULT " + json.dumps({"state": getattr(run.state, "value", str(run.state)),
                              "run_id": run.run_id}))
"""


def _airflow_env(home: Path, data: Path, source: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "METAUDIT"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        METAUDIT_DATA_DIR=str(data),
        AIRFLOW_CONN_MET_PRACTICE_DB=json.dumps({"conn_type": "sqlite", "host": str(source)}),
    )
    return env


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> GenerationReport:
    """Three practices with every defect, and a session of a client that does not exist."""
    report = generate(
        str(tmp_path_factory.mktemp("demo") / "practice.sqlite"),
        as_of=AS_OF,
        sessions=3000,
        practices=3,
        progress=False,
    )
    assert report.database is not None
    with sqlite3.connect(report.database) as conn:
        conn.execute(
            "INSERT INTO sessions SELECT ?, 'CL-GONE', staff_id, session_date, status, "
            "timed_minutes, client_response, notes, signed_at FROM sessions LIMIT 1",
            (ORPHAN_SESSION,),
        )
    return report


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory, demo: GenerationReport) -> Path:
    """An AIRFLOW_HOME whose metadata database (SQLite) is migrated once for the module."""
    home = tmp_path_factory.mktemp("airflow_home")
    env = _airflow_env(home, home / "data", Path(str(demo.database)))
    done = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return home


def run_dag(
    home: Path,
    data: Path,
    demo: GenerationReport,
    *,
    conf: dict[str, Any] | None = None,
    damage: str | None = None,
    logical_date: str = "2026-03-31T00:00:00+00:00",
) -> dict[str, str]:
    args = {
        "dags": str(ROOT / "dags"),
        "logical_date": logical_date,
        "conf": conf,
        "damage": damage,
    }
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps(args)],
        env=_airflow_env(home, data, Path(str(demo.database))),
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stdout[-5000:] + done.stderr[-5000:]
    (data / "dag-test.log").write_text(done.stdout + done.stderr, encoding="utf-8")
    return json.loads(lines[-1].removeprefix("RESULT "))


def contents(store: ResultsStore) -> dict[str, list[tuple]]:
    return {t: store.table_contents(t, exclude=VOLATILE.get(t, ())) for t in RESULT_TABLES}


def _key(x: Any) -> tuple:
    return tuple(
        getattr(x, f)
        for f in ("rule_id", "entity_type", "entity_id", "practice_id", "client_id", "due_date")
    )


@pytest.fixture(scope="module")
def first_run(airflow_home: Path, demo: GenerationReport, tmp_path_factory) -> dict[str, Any]:
    data = tmp_path_factory.mktemp("data")
    run = run_dag(airflow_home, data, demo)
    store = ResultsStore(default_url(data))
    snapshot = contents(store)
    store.close()
    return {"data": data, "run": run, "contents": snapshot}


def test_nightly_run_stores_each_practice_s_findings_and_status(
    first_run: dict[str, Any], demo: GenerationReport
) -> None:
    assert first_run["run"]["state"] == "success"
    store = ResultsStore(default_url(first_run["data"]))
    status = {r["practice_id"]: r for r in store.practice_runs(AS_OF)}
    assert {p: (r["status"], r["run_id"]) for p, r in status.items()} == {
        p: ("success", first_run["run"]["run_id"]) for p in [*PRACTICES, None]
    }
    for practice_id in PRACTICES:
        stored = store.findings(AS_OF, practice_id)
        truth = [e for e in demo.expected if e.practice_id == practice_id]
        assert sorted(map(_key, stored)) == sorted(map(_key, truth)), practice_id
        row = status[practice_id]
        assert row["findings"] == len(truth)
        assert row["critical"] + row["warning"] + row["notice"] == len(truth)
        assert {"read_partition", "derive", "validate", "persist"} <= set(row["timings"])
        assert Path(row["results_dir"], "findings.csv").exists()
    # The session whose client does not exist names no practice: stored under practice NULL.
    assert [f.entity_id for f in store.findings(AS_OF, None)] == [f"sessions:{ORPHAN_SESSION}"]
    run = store.run(first_run["run"]["run_id"])
    assert run is not None
    assert (run["status"], run["practice_ids"], run["failed_practices"]) == (
        "success",
        PRACTICES,
        [],
    )
    assert run["unattributed_findings"] == 1 and {"read", "type", "partition"} <= set(
        run["timings"]
    )
    assert store.alerts() == []
    digest = store.digest("PR0001", AS_OF)
    assert len(digest.new) == status["PR0001"]["findings"] and not digest.still_open
    store.close()


def test_rerun_of_the_same_date_leaves_the_results_store_unchanged(
    first_run: dict[str, Any], airflow_home: Path, demo: GenerationReport
) -> None:
    again = run_dag(airflow_home, first_run["data"], demo)
    assert again["state"] == "success" and again["run_id"] != first_run["run"]["run_id"]
    store = ResultsStore(default_url(first_run["data"]))
    after = contents(store)
    assert after == first_run["contents"]
    assert sum(len(rows) for rows in after.values()) > 100  # the comparison compared something
    # The run log has both runs; every practice's status names the rerun.
    assert store.run(first_run["run"]["run_id"]) and store.run(again["run_id"])
    assert {r["run_id"] for r in store.practice_runs(AS_OF)} == {again["run_id"]}
    store.close()


def test_a_practice_with_a_damaged_partition_fails_alone(
    airflow_home: Path, demo: GenerationReport, tmp_path: Path
) -> None:
    # A rerun of one date for two practices from the trigger form, the second one damaged.
    run = run_dag(
        airflow_home,
        tmp_path,
        demo,
        damage="PR0002",
        conf={"as_of": "2026-03-31", "practice_ids": ["PR0001", "PR0002"]},
        logical_date="2026-04-02T00:00:00+00:00",
    )
    assert run["state"] == "failed"
    store = ResultsStore(default_url(tmp_path))
    status = {r["practice_id"]: r for r in store.practice_runs(AS_OF)}
    assert set(status) == {"PR0001", "PR0002", None}  # PR0003 was not asked for
    assert status["PR0001"]["status"] == "success"
    truth = [e for e in demo.expected if e.practice_id == "PR0001"]
    assert sorted(map(_key, store.findings(AS_OF, "PR0001"))) == sorted(map(_key, truth))
    assert status["PR0002"]["status"] == "failed" and not status["PR0002"]["has_results"]
    assert "PartitionError" in status["PR0002"]["error"]
    record = store.run(run["run_id"])
    assert record is not None
    assert (record["status"], record["failed_practices"]) == ("failed", ["PR0002"])
    alerts = {(a["task_id"], a["practice_id"]): a for a in store.alerts(run["run_id"])}
    assert set(alerts) == {("practice.validate", "PR0002"), ("finish", None)}
    assert alerts["practice.validate", "PR0002"]["try_number"] == 1  # not retried
    assert "audit failed for practice(s) PR0002" in alerts["finish", None]["error"]
    store.close()
