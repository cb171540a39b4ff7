"""Benchmark the demo generator: a million sessions into SQLite and PostgreSQL.

    PYTHONPATH=include python bench/bench_generate.py                 # both, 1M sessions
    PYTHONPATH=include python bench/bench_generate.py --only sqlite --sessions 200000

PostgreSQL: a scratch database is created on the server (``--pg-server``, trust
auth) and dropped afterwards. Prints the time and the row count of every table.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

import sqlalchemy as sa

from metaudit.demo import GenerationReport, generate

log = logging.getLogger("bench_generate")


def run(target: str, args: argparse.Namespace, truth: Path) -> GenerationReport:
    """Generate once into ``target`` and return the report."""
    return generate(
        target,
        as_of=date.fromisoformat(args.as_of),
        seed=args.seed,
        practices=args.practices,
        sessions=args.sessions,
        defects=args.defects,
        progress=not args.quiet,
        truth_path=truth,
    )


def show(label: str, report: GenerationReport, seconds: float) -> None:
    """Print one benchmark's timing and row counts."""
    lines = [
        f"== {label}: {seconds:.1f} s wall, {report.total_rows:,} rows "
        f"({report.total_rows / seconds:,.0f} rows/s), {len(report.expected)} expected findings"
    ]
    lines += [f"   {name:<20} {count:>12,}" for name, count in report.row_counts.items()]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--practices", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--as-of", default="2026-03-02")
    parser.add_argument("--defects", default="all")
    parser.add_argument("--only", choices=["sqlite", "postgresql"], default=None)
    parser.add_argument("--pg-server", default="postgresql+psycopg://postgres@127.0.0.1:5432")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    with tempfile.TemporaryDirectory(prefix="bench_generate_") as tmp:
        folder = Path(tmp)
        if args.only in (None, "sqlite"):
            path = folder / "bench.sqlite"
            started = time.perf_counter()
            report = run(str(path), args, folder / "bench.truth.jsonl")
            show(
                f"SQLite ({path.stat().st_size / 1e6:,.0f} MB)",
                report,
                time.perf_counter() - started,
            )
        if args.only in (None, "postgresql"):
            name = f"metaudit_bench_{uuid.uuid4().hex[:8]}"
            server = sa.create_engine(f"{args.pg_server}/postgres", isolation_level="AUTOCOMMIT")
            with server.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
            try:
                started = time.perf_counter()
                report = run(f"{args.pg_server}/{name}", args, folder / "pg.truth.jsonl")
                show(f"PostgreSQL ({name})", report, time.perf_counter() - started)
            finally:
                with server.connect() as conn:
                    conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                server.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
