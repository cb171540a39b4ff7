"""One real `airflow dags test` with PostgreSQL everywhere: Airflow's metadata database,
the practice database (met_practice_db) and the results store (met_results_db)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from metaudit.demo import generate
from metaudit.results import ResultsStore

pytestmark = [pytest.mark.postgres, pytest.mark.airflow, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
AS_OF = date(2026, 3, 31)


@contextmanager
def _fresh_database(postgres_url: str, prefix: str) -> Generator[str]:
    """Another fresh database on the same server as ``postgres_url`` (dropped afterwards)."""
    url = sa.make_url(postgres_url)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def results_database(postgres_url: str) -> Iterator[str]:
    with _fresh_database(postgres_url, "metaudit_results") as url:
        yield url


@pytest.fixture
def metadata_database(postgres_url: str) -> Iterator[str]:
    with _fresh_database(postgres_url, "metaudit_airflow") as url:
        yield url


def _key(x: Any) -> tuple:
    return tuple(
        getattr(x, f)
        for f in ("rule_id", "entity_type", "entity_id", "practice_id", "client_id", "due_date")
    )


def test_nightly_dag_on_postgresql_source_metadata_and_results(
    postgres_url: str, results_database: str, metadata_database: str, tmp_path: Path
) -> None:
    report = generate(
        postgres_url,
        as_of=AS_OF,
        sessions=1000,
        practices=2,
        progress=False,
        truth_path=tmp_path / "truth.jsonl",
    )
    source = sa.make_url(postgres_url)
    results = sa.make_url(results_database)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "METAUDIT"))}
    env.update(
        AIRFLOW_HOME=str(tmp_path / "airflow_home"),
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=metadata_database,
        # Airflow's async engine would default to asyncpg; psycopg 3 does async too.
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC=metadata_database,
        METAUDIT_DATA_DIR=str(tmp_path / "data"),
        METAUDIT_PACKET_KEY="dag-postgres-test-packet-key",
        # The source as a URI, the results store as the connection form's fields.
        AIRFLOW_CONN_MET_PRACTICE_DB=f"postgresql://{source.username}@{source.host}:"
        f"{source.port}/{source.database}",
        AIRFLOW_CONN_MET_RESULTS_DB=json.dumps(
            {
                "conn_type": "postgres",
                "host": results.host,
                "port": results.port,
                "login": results.username,
                "schema": results.database,
            }
        ),
    )
    airflow = str(Path(sys.executable).parent / "airflow")
    migrated = subprocess.run(
        [airflow, "db", "migrate"], env=env, capture_output=True, text=True, timeout=300
    )
    assert migrated.returncode == 0, migrated.stdout[-3000:] + migrated.stderr[-3000:]
    with sa.create_engine(metadata_database).connect() as conn:
        assert "dag_run" in sa.inspect(conn).get_table_names()  # Airflow's tables are there

    ran = subprocess.run(
        [airflow, "dags", "test", "met_compliance_nightly", AS_OF.isoformat()],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = ran.stdout + ran.stderr
    assert ran.returncode == 0, log[-5000:]
    assert "state=success" in log

    store = ResultsStore(results_database)
    status = {r["practice_id"]: r["status"] for r in store.practice_runs(AS_OF)}
    assert status == {"PR0001": "success", "PR0002": "success", None: "success"}
    stored = [f for p in ("PR0001", "PR0002", None) for f in store.findings(AS_OF, p)]
    assert sorted(map(_key, stored)) == sorted(map(_key, report.expected))
    with sa.create_engine(metadata_database).connect() as conn:
        states = dict(
            conn.execute(
                sa.text("SELECT task_id || ':' || map_index, state FROM task_instance")
            ).all()
        )
    assert states == {
        "plan:-1": "success",
        "extract:-1": "success",
        "finish:-1": "success",
        # Both practices in one task (ten a task by default).
        "audit:0": "success",
    }
    store.close()
