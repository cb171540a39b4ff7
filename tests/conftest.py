"""Shared fixtures: clean records, real database servers (skipped with a reason when absent)."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import pytest

POSTGRES_HOST = os.environ.get("METAUDIT_TEST_PG_HOST", "127.0.0.1")
MARIADB_HOST = os.environ.get("METAUDIT_TEST_MARIADB_HOST", "127.0.0.1")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    if not _reachable(POSTGRES_HOST, 5432):
        pytest.skip(f"needs PostgreSQL on {POSTGRES_HOST}:5432 (not reachable)")
    import sqlalchemy as sa

    name = f"metaudit_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(
        f"postgresql+psycopg://postgres@{POSTGRES_HOST}:5432/postgres", isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+psycopg://postgres@{POSTGRES_HOST}:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    """A fresh, empty MariaDB database for one test, dropped afterwards."""
    if not _reachable(MARIADB_HOST, 3306):
        pytest.skip(f"needs MariaDB on {MARIADB_HOST}:3306 (not reachable)")
    import sqlalchemy as sa

    name = f"metaudit_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(f"mysql+pymysql://root@{MARIADB_HOST}:3306/")
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE DATABASE `{name}`"))
    try:
        yield f"mysql+pymysql://root@{MARIADB_HOST}:3306/{name}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


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
