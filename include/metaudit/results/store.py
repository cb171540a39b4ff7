"""The results store: one object over its parts, its schema's migrations, and the session.

Any SQLAlchemy database (a SQLite file by default, PostgreSQL in production). The
store is made of parts by what each keeps: :mod:`~metaudit.results.runs` (runs and the
practices' status), :mod:`~metaudit.results.findings` (findings, their exposure and
deadlines, history and digest), :mod:`~metaudit.results.acceptances` (accepted findings and their trail),
:mod:`~metaudit.results.dashboard` (the dashboard's figures),
:mod:`~metaudit.results.alerts` (admin alerts) and
:mod:`~metaudit.results.downloads` (the packet access trail); :class:`ResultsStore`
combines them, and :func:`session` opens one for a ``with`` block.

The schema is migrated (Alembic) the first time a process opens a store at a URL:
a task or a web server that opens the store again and again checks its revision once.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Generator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from metaudit.results.acceptances import AcceptanceRecords
from metaudit.results.alerts import AlertRecords
from metaudit.results.base import as_date, engine_for
from metaudit.results.dashboard import DashboardRecords
from metaudit.results.downloads import DownloadTrail
from metaudit.results.findings import FindingRecords, StoredPractice
from metaudit.results.models import VERSION_TABLE, Base
from metaudit.results.runs import RunOutcome, RunRecords

__all__ = [
    "ResultsStore",
    "RunOutcome",
    "StoredPractice",
    "as_date",
    "engine_for",
    "migrate",
    "session",
]

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Keeps two processes from migrating one PostgreSQL database at the same time.
_PG_MIGRATION_LOCK = 727_100_001

# The stores this process has migrated (by URL, password hidden); the lock keeps two
# threads of a process from migrating one store at the same time, and from both
# believing the other did.
_migrated: set[str] = set()
_migrated_lock = threading.Lock()


def _new_lock_after_fork() -> None:
    # A forked task (Celery's prefork worker, Airflow's task runner) keeps the set, as its
    # parent's migrations stay done, but must not inherit a lock some thread held then.
    global _migrated_lock
    _migrated_lock = threading.Lock()


os.register_at_fork(after_in_child=_new_lock_after_fork)


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
    _migrated.add(_store_key(engine.url))
    return str(head)


def migrate_once(engine: sa.Engine) -> None:
    """Migrate the store unless this process already did (:func:`migrate` always does)."""
    key = _store_key(engine.url)
    with _migrated_lock:
        if key in _migrated and not _maybe_new(engine.url):
            return
        migrate(engine)


def _store_key(url: sa.URL) -> str:
    return url.render_as_string(hide_password=True)


def _maybe_new(url: sa.URL) -> bool:
    """Whether the database may be new though the process migrated its URL: an in-memory
    SQLite database is new to each engine, and an empty SQLite file was deleted and
    created again (:func:`~metaudit.results.base.engine_for` creates it empty)."""
    if url.get_backend_name() != "sqlite":
        return False
    database = url.database or ""
    if database in {"", ":memory:"} or database.startswith("file:"):
        return True
    path = Path(database)
    return not path.exists() or path.stat().st_size == 0


class ResultsStore(
    RunRecords, DashboardRecords, FindingRecords, AcceptanceRecords, AlertRecords, DownloadTrail
):
    """Reads and writes the results store; see :mod:`metaudit.results.models` for the tables.

    Each write method is one transaction of its own: committed when it returns, rolled
    back when it raises.
    """

    def __init__(self, url: str | sa.URL) -> None:
        self.engine = engine_for(url)

    @classmethod
    def open(cls, url: str | sa.URL) -> ResultsStore:
        """The store at ``url``, its schema migrated to the newest revision (once a process)."""
        store = cls(url)
        try:
            migrate_once(store.engine)
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        """Close the store's connections."""
        self.engine.dispose()

    def table_contents(self, name: str, exclude: Sequence[str] = ()) -> list[tuple[Any, ...]]:
        """Every row of one store table, sorted, without the named columns (for checks)."""
        table = Base.metadata.tables[name]
        columns = [c for c in table.columns if c.name not in exclude]
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(*columns)).all()
        return sorted((tuple(row) for row in rows), key=repr)


@contextmanager
def session(url: str | sa.URL) -> Generator[ResultsStore]:
    """The store at ``url`` for a ``with`` block, closed when the block ends.

    Its schema is migrated first, once a process (:meth:`ResultsStore.open`), so every
    step may be the first to reach a store. Each write commits on its own, as the store's
    methods do, so a block that raises keeps the writes before the error.
    """
    store = ResultsStore.open(url)
    try:
        yield store
    finally:
        store.close()
