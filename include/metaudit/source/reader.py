"""Reach a practice database and read it as the contract describes.

SQLAlchemy is how the audit reaches every database: it builds the queries and
inspects the schema. Where the dialect has a bulk Arrow reader (ADBC for SQLite
and PostgreSQL), the rows travel through it, several times faster than row by
row; elsewhere (MariaDB/MySQL) pandas reads through the SQLAlchemy connection.

Every column is read as text (``CAST(col AS TEXT)``), so one typing step
(:mod:`metaudit.source.quality`) judges every value the same way whatever the
database stored: a garbage date in a SQLite text column and a DATE column of
PostgreSQL both arrive as strings.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from metaudit.errors import ContractError, SourceUnavailableError
from metaudit.spec.contract import TABLES
from metaudit.spec.settings import DEFAULT_STATEMENT_TIMEOUT_SECONDS

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10
# How long one statement may run, or wait for a lock (an ETL reload holding a table),
# before the read gives up with an error naming the table; the task's retry picks it up.
# The setting source.statement_timeout_seconds changes it.
DEFAULT_STATEMENT_TIMEOUT_S = DEFAULT_STATEMENT_TIMEOUT_SECONDS


def source_url(source: str | Path | sa.URL) -> sa.URL:
    """Turn a SQLAlchemy URL or a bare file path (SQLite) into a URL."""
    if isinstance(source, sa.URL):
        return source
    text = str(source)
    if "://" not in text:
        path = Path(text).expanduser()
        if not path.exists():
            raise SourceUnavailableError(f"source database file not found: {path}")
        return sa.URL.create("sqlite", database=str(path.resolve()))
    try:
        return make_url(text)
    except ArgumentError as exc:
        raise SourceUnavailableError(f"not a database URL: {redact(text)}") from exc


def redact(url: str | sa.URL) -> str:
    """The URL without its password, safe for logs and messages."""
    try:
        parsed = url if isinstance(url, sa.URL) else make_url(str(url))
    except ArgumentError:
        return "<unparseable URL>"
    database = parsed.database or ""
    if parsed.get_backend_name() == "sqlite" and database.startswith("file:"):
        # The read-only URI this module built: name the file as the operator gave it.
        from urllib.parse import unquote

        return f"sqlite:///{unquote(database[len('file:') :].split('?', 1)[0])}"
    return parsed.render_as_string(hide_password=True)


def create_engine(
    source: str | Path | sa.URL, statement_timeout_s: float = DEFAULT_STATEMENT_TIMEOUT_S
) -> sa.Engine:
    """An engine for the source: read-only, a connect timeout (a dead host fails fast)
    and a statement and lock timeout (a locked table ends the read, not hangs it)."""
    url = source_url(source)
    connect_args: dict[str, Any] = {}
    backend = url.get_backend_name()
    millis = _millis(statement_timeout_s)
    if backend == "postgresql":
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
        connect_args["options"] = _postgres_options(millis)
    elif backend in {"mysql", "mariadb"}:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
        connect_args["init_command"] = _mariadb_session(statement_timeout_s)
    elif backend == "sqlite":
        database = url.database or ""
        if database not in {"", ":memory:"} and not Path(database).exists():
            raise SourceUnavailableError(f"source database file not found: {database}")
        connect_args["timeout"] = statement_timeout_s  # the busy timeout, in seconds
        # Open read-only: the audit never writes to a practice database.
        if database not in {"", ":memory:"}:
            url = sa.URL.create("sqlite", database=_sqlite_uri(database), query={"uri": "true"})
    try:
        return sa.create_engine(url, connect_args=connect_args, poolclass=sa.pool.NullPool)
    except (SQLAlchemyError, ImportError) as exc:
        raise SourceUnavailableError(f"cannot use source {redact(url)}: {exc}") from exc


def _millis(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _postgres_options(millis: int) -> str:
    """libpq ``options``: every transaction read-only, statements and lock waits bounded."""
    return (
        f"-c statement_timeout={millis} -c lock_timeout={millis} "
        "-c default_transaction_read_only=on"
    )


def _mariadb_session(seconds: float) -> str:
    """MariaDB's session settings: read-only transactions (``tx_read_only``, what
    ``SET SESSION TRANSACTION READ ONLY`` sets, in a form one SET can combine),
    statements and metadata and row lock waits bounded (lock waits in whole seconds)."""
    wait = max(1, round(seconds))
    return (
        f"SET SESSION max_statement_time={seconds:g}, SESSION lock_wait_timeout={wait}, "
        f"SESSION innodb_lock_wait_timeout={wait}, SESSION tx_read_only=1"
    )


def _sqlite_uri(database: str) -> str:
    """An SQLite URI opening the file read-only, never creating it (``mode=ro``)."""
    from urllib.parse import quote, unquote

    if database.startswith("file:"):  # a URI already (this function's own, say)
        database = unquote(database[len("file:") :].split("?", 1)[0])
    return f"file:{quote(database)}?mode=ro"


def check_contract(engine: sa.Engine, statement_timeout_s: float | None = None) -> None:
    """Raise ContractError naming every missing table and column at once."""
    try:
        inspector = sa.inspect(engine)
        present = {name.lower(): name for name in inspector.get_table_names()}
        present.update({name.lower(): name for name in inspector.get_view_names()})
        missing: dict[str, list[str]] = {}
        for table in TABLES.values():
            actual = present.get(table.name)
            if actual is None:
                missing[table.name] = []
                continue
            columns = {c["name"].lower() for c in inspector.get_columns(actual)}
            lacking = [c for c in table.column_names if c not in columns]
            if lacking:
                missing[table.name] = lacking
    except SQLAlchemyError as exc:
        raise SourceUnavailableError(
            f"cannot read the schema of {redact(engine.url)}: {_first_line(exc)}"
            f"{_timeout_hint(exc, statement_timeout_s or DEFAULT_STATEMENT_TIMEOUT_S)}"
        ) from exc
    if missing:
        raise ContractError(missing)


@dataclass
class RawTables:
    """Every contract table as text columns, in the order the source returned the rows."""

    tables: dict[str, pd.DataFrame]
    seconds: dict[str, float] = field(default_factory=dict)


def read_tables(
    source: str | Path | sa.URL,
    tables: Iterable[str] | None = None,
    statement_timeout_s: float = DEFAULT_STATEMENT_TIMEOUT_S,
) -> RawTables:
    """Check the contract, then read every contract table (or the named ones) as text."""
    result = RawTables(tables={})
    started = time.perf_counter()
    for name, frame in iter_tables(source, tables, statement_timeout_s):
        result.tables[name] = frame
        result.seconds[name] = time.perf_counter() - started
        started = time.perf_counter()
    return result


def iter_tables(
    source: str | Path | sa.URL,
    tables: Iterable[str] | None = None,
    statement_timeout_s: float = DEFAULT_STATEMENT_TIMEOUT_S,
) -> Iterator[tuple[str, pd.DataFrame]]:
    """Check the contract, then yield every contract table (or the named ones) as text,
    one at a time, so that a caller can type a table and let its text go before the
    next one arrives (the whole source as text is the size of the typed source).

    Every failure of the source (refused, gone, damaged, locked past the statement
    timeout) is a SourceUnavailableError naming the source and the table.
    """
    engine = create_engine(source, statement_timeout_s)
    try:
        check_contract(engine, statement_timeout_s)
        with _bulk_reader(engine.url, statement_timeout_s) as reader:
            for name in tables or TABLES:
                started = time.perf_counter()
                sql = _select_as_text(name, engine.dialect, with_sentinel=reader is not None)
                try:
                    frame = reader(sql) if reader else _read_with_pandas(engine, sql)
                except _source_errors() as exc:
                    raise _unreadable(name, engine, exc, statement_timeout_s) from exc
                frame = _normalise_frame(name, frame)
                log.debug(
                    "read %s: %d rows in %.2fs", name, len(frame), time.perf_counter() - started
                )
                yield name, frame
                del frame  # the caller has typed it by now; do not hold it during the next read
    finally:
        engine.dispose()


# Rows per batch of a streaming read (:func:`iter_table_batches`).
BATCH_ROWS = 65_536


def iter_table_batches(
    source: str | Path | sa.URL,
    tables: Iterable[str] | None = None,
    statement_timeout_s: float = DEFAULT_STATEMENT_TIMEOUT_S,
    batch_rows: int = BATCH_ROWS,
) -> Iterator[tuple[str, pd.DataFrame]]:
    """Check the contract, then yield every contract table (or the named ones) as text
    in batches of at most ``batch_rows`` rows (PostgreSQL: the driver's batches), in
    the source's row order; a table yields at least one batch (empty when it has no
    rows). Memory follows a batch, not the table: ADBC record batches (SQLite,
    PostgreSQL) or pandas chunks (MariaDB/MySQL).

    Failures as :func:`iter_tables`: a SourceUnavailableError naming source and table.
    """
    engine = create_engine(source, statement_timeout_s)
    try:
        check_contract(engine, statement_timeout_s)
        with _bulk_batches(engine.url, statement_timeout_s, batch_rows) as reader:
            for name in tables or TABLES:
                sql = _select_as_text(name, engine.dialect, with_sentinel=reader is not None)
                batches = reader(sql) if reader else _pandas_batches(engine, sql, batch_rows)
                empty = True
                while True:
                    try:
                        frame = next(batches, None)
                    except _source_errors() as exc:
                        raise _unreadable(name, engine, exc, statement_timeout_s) from exc
                    if frame is None:
                        break
                    if len(frame) == 0 and not empty:
                        continue
                    empty = False
                    yield name, _normalise_frame(name, frame)
                    del frame
                if empty:
                    yield name, _normalise_frame(name, _empty_text(name))
    finally:
        engine.dispose()


def _unreadable(
    name: str, engine: sa.Engine, exc: BaseException, statement_timeout_s: float
) -> SourceUnavailableError:
    """The error of a table the source failed to give: source (redacted), table, cause."""
    return SourceUnavailableError(
        f"cannot read table {name!r} from {redact(engine.url)}: "
        f"{_first_line(exc)}{_timeout_hint(exc, statement_timeout_s)}"
    )


def _empty_text(name: str) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype="string") for c in TABLES[name].column_names})


def _pandas_batches(engine: sa.Engine, sql: str, batch_rows: int) -> Iterator[pd.DataFrame]:
    with engine.connect() as conn:
        yield from pd.read_sql_query(sa.text(sql), conn, dtype=object, chunksize=batch_rows)


@contextlib.contextmanager
def _bulk_batches(
    url: sa.URL, statement_timeout_s: float, batch_rows: int
) -> Generator[Callable[[str], Iterator[pd.DataFrame]] | None, None, None]:
    """As :func:`_bulk_reader`, but the function yields the result in record batches."""
    backend = url.get_backend_name()
    if backend not in {"sqlite", "postgresql"} or (
        backend == "sqlite" and url.database in (None, "", ":memory:")
    ):
        yield None
        return
    with _adbc_connection(url, statement_timeout_s) as conn:

        def read(sql: str) -> Iterator[pd.DataFrame]:
            with conn.cursor() as cur:
                if backend == "sqlite":
                    cur.adbc_statement.set_options(
                        **{"adbc.sqlite.query.batch_rows": str(batch_rows)}
                    )
                cur.execute(sql)
                # SQLite: the type-fixing sentinel row comes first (see _select_as_text).
                skip = 1 if backend == "sqlite" else 0
                for batch in cur.fetch_record_batch():
                    if skip:
                        batch, skip = batch.slice(skip), 0
                    yield _arrow_to_pandas(pa.Table.from_batches([batch]))

        yield read


@contextlib.contextmanager
def _adbc_connection(url: sa.URL, statement_timeout_s: float) -> Generator[Any, None, None]:
    """A read-only ADBC connection to an SQLite file or a PostgreSQL server, with the
    statement and lock timeouts of the SQLAlchemy engine."""
    if url.get_backend_name() == "sqlite":
        import adbc_driver_sqlite.dbapi as adbc_sqlite

        try:
            conn = adbc_sqlite.connect(_sqlite_uri(str(url.database)))
            with conn.cursor() as cur:
                cur.execute(f"PRAGMA busy_timeout = {_millis(statement_timeout_s)}")
        except _adbc_errors() as exc:
            raise SourceUnavailableError(
                f"cannot read from {redact(url)}: {_first_line(exc)}"
            ) from exc
    else:
        from urllib.parse import quote

        import adbc_driver_postgresql.dbapi as adbc_pg

        libpq = url.set(drivername="postgresql").render_as_string(hide_password=False)
        options = quote(_postgres_options(_millis(statement_timeout_s)), safe="")
        libpq += ("&" if "?" in libpq else "?") + f"options={options}"
        try:
            conn = adbc_pg.connect(libpq)
        except _adbc_errors() as exc:
            raise SourceUnavailableError(
                f"cannot read from {redact(url)}: {_first_line(exc)}"
            ) from exc
    with conn:
        yield conn


def _source_errors() -> tuple[type[Exception], ...]:
    """What a failing read raises: SQLAlchemy's errors (pandas wraps them in its own
    DatabaseError), ADBC's, and Arrow's while it decodes what the driver sent."""
    return (SQLAlchemyError, pd.errors.DatabaseError, pa.ArrowException, *_adbc_errors())


def _adbc_errors() -> tuple[type[Exception], ...]:
    """ADBC's error base class (every driver's errors derive from it), when installed."""
    try:
        import adbc_driver_manager
    except ImportError:
        return ()
    return (adbc_driver_manager.Error,)


_TIMEOUT_WORDS = ("timeout", "timed out", "locked", "lock wait", "max_statement_time")


def _timeout_hint(exc: BaseException, statement_timeout_s: float) -> str:
    """Name the statement timeout when the error says it ran out (or waited on a lock)."""
    text = str(getattr(exc, "orig", None) or exc).lower()
    if any(word in text for word in _TIMEOUT_WORDS):
        return (
            f" (statement/lock timeout {statement_timeout_s:g} s; the table may be locked "
            "by another session, e.g. a reload: retry later)"
        )
    return ""


def _select_as_text(name: str, dialect: sa.Dialect, *, with_sentinel: bool) -> str:
    table = TABLES[name]
    columns = [sa.cast(sa.column(c), sa.Text).label(c) for c in table.column_names]
    query = sa.select(*columns).select_from(sa.table(name))
    if dialect.name == "sqlite" and with_sentinel:
        # The SQLite ADBC driver infers each column's Arrow type from the first
        # rows; a NULL-only start makes it guess INT64 and fail on the first
        # string. A leading text row fixes the type; _normalise_frame drops it.
        sentinel = sa.select(*[sa.literal("", sa.Text).label(c) for c in table.column_names])
        query = sa.union_all(sentinel, query)  # type: ignore[assignment]
    return str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


# Rows per Arrow batch of the SQLite driver (its default is 1,024): larger
# batches read a million-row table faster and in far fewer chunks.
SQLITE_BATCH_ROWS = 65_536


@contextlib.contextmanager
def _bulk_reader(
    url: sa.URL, statement_timeout_s: float = DEFAULT_STATEMENT_TIMEOUT_S
) -> Generator[Callable[[str], pd.DataFrame] | None, None, None]:
    """A function reading SQL into pandas through ADBC, or None when the dialect has none.

    One ADBC connection serves every table of a read; it is opened read-only with the
    same statement and lock timeouts as the SQLAlchemy engine (ADBC inherits none of
    the engine's options). Its errors (``adbc_driver_manager.Error``) reach the caller.
    """
    backend = url.get_backend_name()
    if backend == "sqlite" and url.database not in (None, "", ":memory:"):
        import adbc_driver_sqlite.dbapi as adbc_sqlite

        try:
            conn = adbc_sqlite.connect(_sqlite_uri(str(url.database)))
            with conn.cursor() as cur:
                cur.execute(f"PRAGMA busy_timeout = {_millis(statement_timeout_s)}")
        except _adbc_errors() as exc:
            raise SourceUnavailableError(
                f"cannot read from {redact(url)}: {_first_line(exc)}"
            ) from exc

        def read_sqlite(sql: str) -> pd.DataFrame:
            with conn.cursor() as cur:
                cur.adbc_statement.set_options(
                    **{"adbc.sqlite.query.batch_rows": str(SQLITE_BATCH_ROWS)}
                )
                cur.execute(sql)
                # Drop the type-fixing sentinel row (see _select_as_text).
                return _arrow_to_pandas(cur.fetch_arrow_table().slice(1))

        with conn:
            yield read_sqlite
        return
    if backend == "postgresql":
        from urllib.parse import quote

        import adbc_driver_postgresql.dbapi as adbc_pg

        libpq = url.set(drivername="postgresql").render_as_string(hide_password=False)
        # libpq decodes %20, not the "+" SQLAlchemy would write for a blank.
        options = quote(_postgres_options(_millis(statement_timeout_s)), safe="")
        libpq += ("&" if "?" in libpq else "?") + f"options={options}"
        try:
            conn = adbc_pg.connect(libpq)
        except _adbc_errors() as exc:
            raise SourceUnavailableError(
                f"cannot read from {redact(url)}: {_first_line(exc)}"
            ) from exc

        def read_postgres(sql: str) -> pd.DataFrame:
            with conn.cursor() as cur:
                cur.execute(sql)
                return _arrow_to_pandas(cur.fetch_arrow_table())

        with conn:
            yield read_postgres
        return
    yield None


def _arrow_to_pandas(table: pa.Table) -> pd.DataFrame:
    """Arrow text columns as pandas Arrow-backed strings, without a detour through objects."""
    strings = pd.StringDtype("pyarrow")
    return table.to_pandas(
        types_mapper=lambda kind: strings if kind in (pa.string(), pa.large_string()) else None
    )


def _read_with_pandas(engine: sa.Engine, sql: str) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql_query(sa.text(sql), conn, dtype=object)


def _normalise_frame(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    table = TABLES[name]
    frame = frame.reset_index(drop=True)
    frame.columns = list(table.column_names)
    return frame.astype("string")


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def ping(
    source: str | Path | sa.URL, statement_timeout_s: float = DEFAULT_STATEMENT_TIMEOUT_S
) -> None:
    """Connect once and run a trivial query; raise SourceUnavailableError when it fails."""
    engine = create_engine(source, statement_timeout_s)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except SQLAlchemyError as exc:
        raise SourceUnavailableError(
            f"cannot connect to {redact(engine.url)}: {_first_line(exc)}"
        ) from exc
    finally:
        engine.dispose()
