"""The results store's low-level parts, shared by each part of the store.

The tables, the engine (any SQLAlchemy URL; the drivers the project ships are
:data:`metaudit.config.SQLALCHEMY_DRIVERS`), :class:`StoreBase` whose engine and
transactions every part of :class:`metaudit.results.ResultsStore` uses, and the helpers
their queries share (a practice's scope, deletes in batches, dates read back).
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import ArgumentError

from metaudit.config import SQLALCHEMY_DRIVERS
from metaudit.errors import SettingsError
from metaudit.paths import PRIVATE_FILE_MODE, private_dir
from metaudit.results.models import Base

RUNS = Base.metadata.tables["audit_runs"]
PRACTICES = Base.metadata.tables["practices"]
PRACTICE_RUNS = Base.metadata.tables["practice_runs"]
FINDINGS = Base.metadata.tables["findings"]
HISTORY = Base.metadata.tables["finding_history"]
EXPOSURE = Base.metadata.tables["finding_exposure"]
DEADLINES = Base.metadata.tables["filing_deadlines"]
ATTRIBUTION = Base.metadata.tables["finding_attribution"]
ALERTS = Base.metadata.tables["alerts"]
DOWNLOADS = Base.metadata.tables["packet_downloads"]
REBUILDS = Base.metadata.tables["packet_rebuilds"]
ACCEPTANCES = Base.metadata.tables["finding_acceptances"]

_BATCH = 500
SUCCESS = "success"
FAILED = "failed"
RUNNING = "running"


def engine_for(url: str | sa.URL) -> sa.Engine:
    """An engine for the results store (PostgreSQL through psycopg 3, MySQL through PyMySQL)."""
    try:
        parsed = sa.make_url(url) if isinstance(url, str) else url
    except ArgumentError as exc:
        raise SettingsError(f"met_results_db is not a database URL: {exc}") from exc
    if parsed.drivername in SQLALCHEMY_DRIVERS:
        parsed = parsed.set(drivername=SQLALCHEMY_DRIVERS[parsed.drivername])
    connect_args: dict[str, Any] = {}
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        if database not in {"", ":memory:"} and not database.startswith("file:"):
            _private_sqlite(Path(database))
        # Practices persist in parallel: wait for the writer lock instead of failing.
        connect_args["timeout"] = 60
    elif backend in {"postgresql", "mysql", "mariadb"}:
        connect_args["connect_timeout"] = 10
    return sa.create_engine(parsed, connect_args=connect_args, pool_pre_ping=True)


def _private_sqlite(path: Path) -> None:
    """Create the SQLite file owner-only before SQLAlchemy opens it (SQLite would create it
    with the umask's 0644), and make an existing one owner-only: it holds the download
    trail and the findings. SQLite gives its journal the database file's permissions."""
    private_dir(path.parent)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE))
    if path.stat().st_mode & 0o777 != PRIVATE_FILE_MODE:
        path.chmod(PRIVATE_FILE_MODE)


class StoreBase:
    """The engine every part of the store reads and writes through; each write method
    is one transaction of its own (:meth:`_transaction`), committed when it returns."""

    engine: sa.Engine

    @contextmanager
    def _transaction(self) -> Generator[sa.Connection]:
        with self.engine.begin() as conn:
            yield conn

    def _insert(self, table: sa.Table, **values: Any) -> int:
        """Insert one row; return its generated id."""
        with self._transaction() as conn:
            key = conn.execute(table.insert().values(**values)).inserted_primary_key
            assert key is not None
            return int(key[0])


def of_practice(column: sa.ColumnElement[Any], practice_id: str | None) -> sa.ColumnElement[bool]:
    """A practice's rows; practice None means the run-level rows that name no practice."""
    return column.is_(None) if practice_id is None else column == practice_id


def delete_ids(conn: sa.Connection, table: sa.Table, ids: list[int]) -> None:
    """Delete the table's rows of these ids, in batches (databases cap a query's parameters)."""
    for chunk in _chunks(sorted(ids), _BATCH):
        conn.execute(table.delete().where(table.c.id.in_(chunk)))


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def as_date(value: Any) -> date:
    """A date read back from the store (a date, a datetime, or ISO text)."""
    # Aggregates over a Date column come back as text on SQLite.
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def rounded_timings(timings: dict[str, Any]) -> dict[str, Any]:
    """Stage timings as stored: seconds to the millisecond."""
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in timings.items()}


def utc_now() -> datetime:
    """The time a row records (timezone-aware UTC)."""
    return datetime.now(UTC)
