"""Bulk loading of the demo tables into SQLite, PostgreSQL or any SQLAlchemy database.

- SQLite: the contract tables are created with SQLAlchemy, then filled through
  ADBC (``adbc_ingest``, a prepared INSERT in C) with journaling and syncing off
  during the load; without the ADBC driver, ``executemany`` on the stdlib driver.
  SQLite stores any value in any column, so unreadable values need no special
  schema.
- PostgreSQL: typed tables without keys, filled with ``COPY ... FROM STDIN (FORMAT
  csv)`` through psycopg, primary keys added after the load (one index build
  instead of a million inserts). The few columns into which the selected defects
  write unreadable values are created as text: a typed column would refuse them.
- Anything else (MySQL, MariaDB ...): every column text, rows inserted through
  SQLAlchemy in batches. Slow, but correct for small demos.

Keys are left out entirely when a defect duplicates a key (DQ-001): a primary
key would refuse the duplicate.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv
import sqlalchemy as sa

from metaudit.errors import MetAuditError
from metaudit.spec.contract import TABLES
from metaudit.spec.schema import create_schema

log = logging.getLogger(__name__)

# Rows per INSERT batch on the generic SQLAlchemy path.
_GENERIC_BATCH = 5000
# Bytes per COPY write.
_COPY_BLOCK = 1 << 22


class DemoTargetError(MetAuditError):
    """The demo cannot be written to the target (it exists already, or it is unreachable)."""


class Sink:
    """Where the demo tables go; ``write`` appends rows, ``close`` makes them durable."""

    def write(self, name: str, data: pa.Table) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def discard(self) -> None:
        """Give up after a failure: release the connection without committing more."""
        raise NotImplementedError


def open_sink(
    engine: sa.Engine,
    *,
    with_keys: bool,
    text_columns: Iterable[tuple[str, str]],
    drop_existing: bool,
) -> Sink:
    """Create the contract tables in ``engine``'s database and return a loader for them."""
    try:
        existing = set(sa.inspect(engine).get_table_names()) & set(TABLES)
    except sa.exc.DBAPIError as exc:
        shown = engine.url.render_as_string(hide_password=True)
        raise DemoTargetError(f"cannot reach the demo target {shown}: {exc.orig}") from exc
    if existing and not drop_existing:
        raise DemoTargetError(
            f"the target already holds {len(existing)} contract tables (e.g. {min(existing)}); "
            "pass drop_existing=True to replace them"
        )
    dialect = engine.dialect.name
    text_columns = sorted(set(text_columns))
    if dialect == "sqlite":
        create_schema(engine, typed=True, with_keys=with_keys, drop_existing=True)
        database = engine.url.database
        engine.dispose()
        if database and database != ":memory:":
            try:
                return _AdbcSqliteSink(database)
            except ImportError:
                log.info("adbc_driver_sqlite not installed; loading with executemany")
        return _GenericSink(engine, executemany=True)
    if dialect == "postgresql":
        create_schema(engine, typed=True, with_keys=False, drop_existing=True)
        with engine.begin() as conn:
            for table, column in text_columns:
                conn.execute(
                    sa.text(
                        f"ALTER TABLE {_quote(engine, table)} "
                        f"ALTER COLUMN {_quote(engine, column)} TYPE text"
                    )
                )
        return _PostgresCopySink(engine, with_keys=with_keys)
    create_schema(engine, typed=False, with_keys=with_keys, drop_existing=True)
    return _GenericSink(engine, executemany=False)


def _quote(engine: sa.Engine, name: str) -> str:
    # Names come from the contract, never from data; quoting keeps them literal anyway.
    return str(engine.dialect.identifier_preparer.quote(name))


class _AdbcSqliteSink(Sink):
    def __init__(self, path: str) -> None:
        import adbc_driver_sqlite.dbapi as adbc_sqlite

        self.path = Path(path)
        self.conn = adbc_sqlite.connect(str(self.path), autocommit=True)
        self.cursor = self.conn.cursor()
        # A demo load is all-or-nothing: no rollback journal, no fsync while loading.
        self.cursor.execute("PRAGMA journal_mode=OFF")
        self.cursor.fetchall()
        self.cursor.execute("PRAGMA synchronous=OFF")

    def write(self, name: str, data: pa.Table) -> None:
        if data.num_rows:
            self.cursor.adbc_ingest(name, data, mode="append")

    def close(self) -> None:
        self.cursor.execute("PRAGMA journal_mode=DELETE")
        self.cursor.fetchall()
        self.cursor.close()
        self.conn.close()

    def discard(self) -> None:
        self.cursor.close()
        self.conn.close()


class _PostgresCopySink(Sink):
    def __init__(self, engine: sa.Engine, *, with_keys: bool) -> None:
        self.engine = engine
        self.with_keys = with_keys
        self.raw = engine.raw_connection()
        self.conn: Any = self.raw.driver_connection

    def write(self, name: str, data: pa.Table) -> None:
        if not data.num_rows:
            return
        buffer = io.BytesIO()
        pcsv.write_csv(data, buffer, pcsv.WriteOptions(include_header=False))
        payload = memoryview(buffer.getbuffer())
        columns = ", ".join(_quote(self.engine, c) for c in data.column_names)
        statement = f"COPY {_quote(self.engine, name)} ({columns}) FROM STDIN (FORMAT csv)"
        cursor = self.conn.cursor()
        try:
            if hasattr(cursor, "copy"):  # psycopg 3
                with cursor.copy(statement) as copy:
                    for start in range(0, len(payload), _COPY_BLOCK):
                        copy.write(payload[start : start + _COPY_BLOCK])
            else:  # psycopg2
                cursor.copy_expert(statement, io.BytesIO(payload))
        finally:
            cursor.close()

    def close(self) -> None:
        try:
            if self.with_keys:
                cursor = self.conn.cursor()
                for table in TABLES.values():
                    if table.key:
                        cursor.execute(
                            f"ALTER TABLE {_quote(self.engine, table.name)} "
                            f"ADD PRIMARY KEY ({_quote(self.engine, table.key)})"
                        )
                cursor.close()
            self.conn.commit()
        finally:
            self.raw.close()
            self.engine.dispose()

    def discard(self) -> None:
        self.conn.rollback()
        self.raw.close()
        self.engine.dispose()


class _GenericSink(Sink):
    def __init__(self, engine: sa.Engine, *, executemany: bool) -> None:
        self.engine = engine
        self.executemany = executemany
        self.metadata = sa.MetaData()
        self.metadata.reflect(engine, only=list(TABLES))
        self.conn = engine.connect()
        if engine.dialect.name == "sqlite":
            self.conn.exec_driver_sql("PRAGMA synchronous=OFF")
        self.transaction = self.conn.begin()

    def write(self, name: str, data: pa.Table) -> None:
        if not data.num_rows:
            return
        if self.executemany:
            placeholders = ", ".join("?" for _ in data.column_names)
            columns = ", ".join(_quote(self.engine, c) for c in data.column_names)
            statement = (
                f"INSERT INTO {_quote(self.engine, name)} ({columns}) VALUES ({placeholders})"
            )
            values = [c.to_pylist() for c in data.columns]
            self.conn.exec_driver_sql(statement, list(zip(*values, strict=True)))
            return
        table = self.metadata.tables[name]
        rows = data.to_pylist()
        for start in range(0, len(rows), _GENERIC_BATCH):
            batch = [
                {k: (None if v is None else str(v)) for k, v in row.items()}
                for row in rows[start : start + _GENERIC_BATCH]
            ]
            self.conn.execute(table.insert(), batch)

    def close(self) -> None:
        self.transaction.commit()
        self.conn.close()
        self.engine.dispose()

    def discard(self) -> None:
        self.transaction.rollback()
        self.conn.close()
        self.engine.dispose()
