"""Every way a source can fail ends the check with a clear error naming the source
and the table (exit 2 from the command, never a traceback); a locked table ends the
read at the statement timeout; the audit can neither write to nor create a source."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Generator
from pathlib import Path

import pytest
import sqlalchemy as sa
from builders import AS_OF, clean_records, write_records, write_sqlite

from metaudit.check.engine import load_source
from metaudit.errors import SourceUnavailableError
from metaudit.source.reader import _bulk_reader, create_engine

SHORT_TIMEOUT_S = 1.0


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "metaudit.cli", *args], capture_output=True, text=True, check=False
    )


def _assert_cannot_run(proc: subprocess.CompletedProcess[str], *named: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    for text in named:
        assert text in proc.stderr, proc.stderr


# -- damaged and vanished files -------------------------------------------------------


def test_a_damaged_sqlite_file_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    path = write_sqlite(clean_records(), tmp_path / "source.sqlite")
    data = bytearray(path.read_bytes())
    # Keep the header and the schema page, damage every page after it.
    page = int.from_bytes(data[16:18], "big")
    data[2 * page :] = b"\xa5" * (len(data) - 2 * page)
    path.write_bytes(bytes(data))
    proc = _cli("check", "--source", str(path), "--as-of", "2026-03-31", "--out", str(tmp_path))
    _assert_cannot_run(proc, str(path))
    assert "table '" in proc.stderr or "schema" in proc.stderr


def test_a_file_that_is_not_a_database_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "source.sqlite"
    path.write_bytes(b"this is not an SQLite file at all" * 200)
    proc = _cli("check", "--source", str(path), "--out", str(tmp_path / "out"))
    _assert_cannot_run(proc, str(path))


def test_the_bulk_reader_never_creates_a_vanished_sqlite_source(tmp_path: Path) -> None:
    gone = tmp_path / "vanished.sqlite"
    url = sa.URL.create("sqlite", database=f"file:{gone}?mode=ro", query={"uri": "true"})
    with pytest.raises(SourceUnavailableError), _bulk_reader(url):
        pass
    assert not gone.exists()


def _assert_both_readers_refuse_writes(
    source: str | Path, engine_error: type[Exception], match: str
) -> None:
    """The SQLAlchemy engine and the ADBC bulk reader of ``source`` both refuse a DELETE."""
    engine = create_engine(source)
    try:
        with pytest.raises(engine_error, match=match), engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM sessions"))
        with _bulk_reader(engine.url) as read, pytest.raises(Exception, match=match):
            read("DELETE FROM sessions")
    finally:
        engine.dispose()


def test_sqlite_source_is_read_only_on_every_reader(tmp_path: Path) -> None:
    path = write_sqlite(clean_records(), tmp_path / "odd name.sqlite")
    _assert_both_readers_refuse_writes(path, sa.exc.OperationalError, "readonly")
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM sessions").fetchone()[0] == 5


# -- locked tables ----------------------------------------------------------------------


@contextlib.contextmanager
def _sqlite_locked_by_another_process(path: Path) -> Generator[None, None, None]:
    """Hold an exclusive lock on the file from another process (as an ETL reload would).

    SQLite's locks are POSIX advisory locks, which a process does not hold against
    itself across two copies of the library (Python's and the ADBC driver's).
    """
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            "conn = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "conn.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "time.sleep(120)\n",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.kill()
        holder.wait()


def test_a_locked_sqlite_source_ends_at_the_busy_timeout(tmp_path: Path) -> None:
    path = write_sqlite(clean_records(), tmp_path / "source.sqlite")
    with (
        _sqlite_locked_by_another_process(path),
        pytest.raises(SourceUnavailableError) as caught,
    ):
        load_source(path, AS_OF, statement_timeout_s=SHORT_TIMEOUT_S)
    message = str(caught.value)
    assert str(path) in message and "locked" in message
    assert f"timeout {SHORT_TIMEOUT_S:g} s" in message


def _hold_lock_then_read(url: str, lock_sql: str, begin_sql: str | None = None) -> str:
    """Lock ``sessions`` in another connection, read with a short timeout; the message."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    conn = engine.connect()
    try:
        if begin_sql:
            conn.exec_driver_sql(begin_sql)
        conn.exec_driver_sql(lock_sql)
        with pytest.raises(SourceUnavailableError) as caught:
            load_source(url, AS_OF, statement_timeout_s=SHORT_TIMEOUT_S)
        return str(caught.value)
    finally:
        conn.rollback()
        conn.close()
        engine.dispose()


@pytest.mark.postgres
def test_a_locked_postgres_table_ends_at_the_lock_timeout_naming_it(postgres_url: str) -> None:
    write_records(clean_records(), postgres_url)
    message = _hold_lock_then_read(postgres_url, "LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE")
    assert "'sessions'" in message and "lock timeout" in message
    assert f"timeout {SHORT_TIMEOUT_S:g} s" in message


@pytest.mark.mariadb
def test_a_locked_mariadb_table_ends_at_the_lock_timeout_naming_it(mariadb_url: str) -> None:
    write_records(clean_records(), mariadb_url)
    message = _hold_lock_then_read(mariadb_url, "LOCK TABLES sessions WRITE")
    assert "'sessions'" in message
    assert f"timeout {SHORT_TIMEOUT_S:g} s" in message


# -- read-only servers --------------------------------------------------------------------


@pytest.mark.postgres
def test_postgres_source_is_read_only_on_every_reader(postgres_url: str) -> None:
    write_records(clean_records(), postgres_url)
    _assert_both_readers_refuse_writes(postgres_url, sa.exc.DBAPIError, "read-only")


@pytest.mark.mariadb
def test_mariadb_source_is_read_only(mariadb_url: str) -> None:
    write_records(clean_records(), mariadb_url)
    engine = create_engine(mariadb_url)
    try:
        with pytest.raises(sa.exc.DBAPIError, match="READ ONLY"), engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM sessions"))
    finally:
        engine.dispose()


# -- servers that refuse or vanish ----------------------------------------------------------


def test_connection_refused_exits_2_naming_the_source(tmp_path: Path) -> None:
    proc = _cli(
        "check",
        "--source",
        "postgresql+psycopg://auditor:secret@127.0.0.1:1/practice",
        "--out",
        str(tmp_path),
    )
    _assert_cannot_run(proc, "127.0.0.1:1/practice")
    assert "secret" not in proc.stderr


@pytest.mark.postgres
def test_a_source_dropped_mid_read_is_a_clear_error_naming_the_table(postgres_url: str) -> None:
    write_records(clean_records(), postgres_url)
    engine = sa.create_engine(postgres_url, poolclass=sa.pool.NullPool)
    holder = engine.connect()
    holder.exec_driver_sql("BEGIN")
    holder.exec_driver_sql("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE")
    database = postgres_url.rsplit("/", 1)[1]
    admin = sa.create_engine(
        postgres_url.rsplit("/", 1)[0] + "/postgres",
        poolclass=sa.pool.NullPool,
        isolation_level="AUTOCOMMIT",  # DROP DATABASE runs outside a transaction
    )
    dropped: list[str] = []

    def drop_while_reading() -> None:
        # Once the read waits on sessions' lock, the database is dropped under it.
        waiting = sa.text(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = :name AND wait_event_type = 'Lock'"
        )
        with admin.connect() as conn:
            deadline = time.monotonic() + 60
            while not conn.execute(waiting, {"name": database}).scalar():
                assert time.monotonic() < deadline, "the read never waited on the lock"
                time.sleep(0.05)
            conn.execute(sa.text(f'DROP DATABASE "{database}" WITH (FORCE)'))
        dropped.append(database)

    dropper = threading.Thread(target=drop_while_reading)
    dropper.start()
    try:
        with pytest.raises(SourceUnavailableError) as caught:
            load_source(postgres_url, AS_OF, statement_timeout_s=120)
    finally:
        dropper.join()
        with contextlib.suppress(sa.exc.DBAPIError):  # its connection went with the database
            holder.close()
        engine.dispose()
        admin.dispose()
    assert dropped == [database]
    message = str(caught.value)
    assert "'sessions'" in message and database in message
    assert "statement/lock timeout" not in message  # the drop ended it, not the timeout


def test_the_sqlite_bulk_reader_waits_for_a_lock_up_to_the_busy_timeout(tmp_path: Path) -> None:
    import adbc_driver_manager

    path = write_sqlite(clean_records(), tmp_path / "source.sqlite")
    engine = create_engine(path, SHORT_TIMEOUT_S)
    try:
        with _bulk_reader(engine.url, SHORT_TIMEOUT_S) as read:
            with _sqlite_locked_by_another_process(path):
                started = time.monotonic()
                with pytest.raises(adbc_driver_manager.Error, match="locked"):
                    read("SELECT session_id FROM sessions")
                waited = time.monotonic() - started
            assert len(read("SELECT session_id FROM sessions")) == 4  # free again
    finally:
        engine.dispose()
    # Without a busy timeout SQLite gives up at once; with it, it waits about that long.
    assert SHORT_TIMEOUT_S * 0.8 <= waited < SHORT_TIMEOUT_S * 10
