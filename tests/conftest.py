"""Shared fixtures: clean records, real database servers (skipped with a reason when absent)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from servers import MARIADB_HOST, POSTGRES_HOST, reachable


def _scratch_database(server: str, admin_database: str, create: str, drop: str) -> Iterator[str]:
    """Yield the URL of a fresh database on ``server`` (a URL without database), dropped
    afterwards. ``create`` and ``drop`` are the server's SQL with a ``{name}`` to fill in;
    they run from ``admin_database`` outside any transaction (neither may run inside one)."""
    import sqlalchemy as sa

    name = f"metaudit_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(f"{server}/{admin_database}", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(create.format(name=name)))
    try:
        yield f"{server}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(drop.format(name=name)))
        admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    if not reachable(POSTGRES_HOST, 5432):
        pytest.skip(f"needs PostgreSQL on {POSTGRES_HOST}:5432 (not reachable)")
    yield from _scratch_database(
        f"postgresql+psycopg://postgres@{POSTGRES_HOST}:5432",
        "postgres",
        create='CREATE DATABASE "{name}"',
        drop='DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
    )


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    """A fresh, empty MariaDB database for one test, dropped afterwards."""
    if not reachable(MARIADB_HOST, 3306):
        pytest.skip(f"needs MariaDB on {MARIADB_HOST}:3306 (not reachable)")
    yield from _scratch_database(
        f"mysql+pymysql://root@{MARIADB_HOST}:3306",
        "",
        create="CREATE DATABASE `{name}`",
        drop="DROP DATABASE IF EXISTS `{name}`",
    )


STRICT_SKIPS = os.environ.get("METAUDIT_STRICT_SKIPS") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """In CI (METAUDIT_STRICT_SKIPS=1) a skipped test is a failure: CI has every server."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if STRICT_SKIPS and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped, which CI does not allow (METAUDIT_STRICT_SKIPS=1): {reason}"
