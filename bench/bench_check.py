"""Benchmark the whole ``metaudit check`` against the floor of reading the source.

    PYTHONPATH=include python bench/bench_check.py --source /tmp/net1m.sqlite --as-of 2026-03-31
    PYTHONPATH=include python bench/bench_check.py --source postgresql://user@host/db ...
    PYTHONPATH=include python bench/bench_check.py --generate 1000000 --as-of 2026-03-31

Measured in one run, on the same source:

(a) the floor: every contract table read into memory as Arrow through ADBC,
    the fastest reader available, with nothing done to the rows. SQLite: one
    connection, ``SELECT * FROM <table>`` with 65,536-row batches, fetched to an
    Arrow table. The SQLite driver infers a column's Arrow type from its first
    batch and rejects a later value of another storage class (text garbage in
    an INTEGER column); such columns are selected as ``CAST(col AS TEXT)`` and
    nothing else (found by an untimed probe before the timed runs).
    PostgreSQL: ``SELECT * FROM <table>`` to Arrow. The floor runs
    ``--floor-runs`` times first and once more after each check; the best run
    counts (the smallest floor, the strictest ratio).
(b) the whole check: ``metaudit check --source ... --out ...`` (the CLI,
    writing findings and validation results) in a fresh Python process, timed
    from its start to its exit, with its peak resident memory (getrusage of
    the child), and the split by stage from ``CheckResult.seconds`` plus the
    writing of the outputs. The best of ``--check-runs`` runs counts.

Prints a table with both figures and their ratio (goal: check <= 6 x floor,
peak memory < 3 GiB). ``--truth`` compares the findings with a ground-truth
file of the demo generator (rule, entity, practice, client, due date).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

GOAL_RATIO = 6.0
GOAL_PEAK_GIB = 3.0
SQLITE_BATCH_ROWS = 65_536
STAGES = ("read", "type", "view", "derive", "validate", "assemble", "write")


# ---------------------------------------------------------------------------
# (a) the floor


def floor_queries(source: str) -> dict[str, str]:
    """The query that reads each contract table fastest (see the module doc)."""
    from metaudit.spec.contract import TABLES

    queries = {name: f"SELECT * FROM {name}" for name in TABLES}
    if _backend(source) != "sqlite":
        return queries
    import adbc_driver_sqlite.dbapi as adbc_sqlite

    with adbc_sqlite.connect(_sqlite_path(source)) as conn:
        for name, table in TABLES.items():
            as_text: set[str] = set()
            while True:
                columns = [
                    f"CAST({c} AS TEXT) AS {c}" if c in as_text else c for c in table.column_names
                ]
                sql = f"SELECT {', '.join(columns)} FROM {name}"
                try:
                    _fetch_sqlite(conn, sql)
                except OSError as exc:
                    # "[SQLite] Type mismatch in column 6: expected INT64 but got STRING/BINARY"
                    found = re.search(r"column (\d+)", str(exc))
                    if not found:
                        raise
                    column = table.column_names[int(found.group(1))]
                    if column in as_text:
                        raise
                    as_text.add(column)
                    continue
                queries[name] = sql
                break
    return queries


def _fetch_sqlite(conn: Any, sql: str) -> Any:
    with conn.cursor() as cur:
        cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(SQLITE_BATCH_ROWS)})
        cur.execute(sql)
        return cur.fetch_arrow_table()


def measure_floor(source: str, queries: dict[str, str]) -> tuple[float, float, int, int]:
    """Seconds (wall, then CPU of this process and its reader threads) to read every
    table to Arrow, with the row count and the Arrow bytes."""
    started = time.perf_counter()
    cpu_started = time.process_time()
    rows = size = 0
    if _backend(source) == "sqlite":
        import adbc_driver_sqlite.dbapi as adbc_sqlite

        with adbc_sqlite.connect(_sqlite_path(source)) as conn:
            for sql in queries.values():
                table = _fetch_sqlite(conn, sql)
                rows, size = rows + table.num_rows, size + table.nbytes
                del table
    else:
        import adbc_driver_postgresql.dbapi as adbc_pg

        with adbc_pg.connect(_libpq(source)) as conn:
            for sql in queries.values():
                with conn.cursor() as cur:
                    cur.execute(sql)
                    table = cur.fetch_arrow_table()
                rows, size = rows + table.num_rows, size + table.nbytes
                del table
    return time.perf_counter() - started, time.process_time() - cpu_started, rows, size


def _backend(source: str) -> str:
    if "://" not in source:
        return "sqlite"
    from sqlalchemy.engine import make_url

    return make_url(source).get_backend_name()


def _sqlite_path(source: str) -> str:
    if "://" not in source:
        return source
    from sqlalchemy.engine import make_url

    return str(make_url(source).database)


def _libpq(source: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(source).set(drivername="postgresql").render_as_string(hide_password=False)


# ---------------------------------------------------------------------------
# (b) the whole check, in a child process


def measure_check(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Run the CLI check in a fresh process; its wall time, stage split and peak RSS."""
    report = out / "bench_stages.json"
    command = [
        sys.executable,
        __file__,
        "--child",
        str(report),
        "check",
        "--source",
        args.source,
        "--as-of",
        args.as_of,
        "--out",
        str(out),
    ]
    env = dict(os.environ)
    include = str(Path(__file__).resolve().parents[1] / "include")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [include, env.get("PYTHONPATH")]))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    _, stderr = process.communicate()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if process.returncode != 0:
        sys.stderr.write(stderr)
        raise SystemExit(f"metaudit check failed with exit status {process.returncode}")
    # ru_maxrss of waited-for children is in KiB on Linux.
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    stages = json.loads(report.read_text())
    return {"wall": wall, "cpu": cpu, "peak_kib": peak_kib, **stages}


def child(report: Path, argv: list[str]) -> int:
    """Inside the child: run ``metaudit`` exactly as its console script does, and
    note the stage timings of the CheckResult and the time spent writing it."""
    process_started = time.perf_counter()
    from metaudit import cli
    from metaudit.check import engine

    captured: dict[str, Any] = {}
    run_check = engine.run_check

    def timed_run_check(*a: Any, **kw: Any) -> Any:
        result = run_check(*a, **kw)
        captured["returned"] = time.perf_counter()
        captured["seconds"] = dict(result.seconds)
        captured["findings"] = len(result.findings)
        return result

    engine.run_check = timed_run_check  # type: ignore[assignment]
    status = cli.main(argv)
    ended = time.perf_counter()
    stages = dict(captured["seconds"])
    stages["write"] = ended - captured["returned"]
    stages["startup"] = (ended - process_started) - sum(stages.values())
    report.write_text(json.dumps({"stages": stages, "findings": captured["findings"]}))
    return status


# ---------------------------------------------------------------------------


def compare_truth(findings: Path, truth: Path) -> str:
    """Missing and extra findings against the generator's ground truth."""
    fields = ("rule_id", "entity_type", "entity_id", "practice_id", "client_id", "due_date")

    def load(path: Path) -> set[tuple[Any, ...]]:
        with path.open() as lines:
            return {tuple(json.loads(line).get(f) for f in fields) for line in lines}

    expected, found = load(truth), load(findings)
    missing, extra = expected - found, found - expected
    verdict = "exact" if not missing and not extra else "DIFFERENT"
    return (
        f"findings vs truth: {verdict} ({len(found)} found, {len(expected)} expected, "
        f"{len(missing)} missing, {len(extra)} extra)"
    )


def machine() -> str:
    """CPU model, cores and memory of this machine."""
    model = platform.processor() or platform.machine()
    with Path("/proc/cpuinfo").open() as info:
        for line in info:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{model}, {os.cpu_count()} cores, {memory:.0f} GiB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        return child(Path(sys.argv[2]), sys.argv[3:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", help="SQLite file or SQLAlchemy URL (SQLite, PostgreSQL)")
    parser.add_argument("--as-of", required=True)
    parser.add_argument("--generate", type=int, metavar="SESSIONS", default=None)
    parser.add_argument("--practices", type=int, default=200)
    parser.add_argument("--truth", type=Path, default=None, help="ground-truth JSON Lines")
    parser.add_argument(
        "--floor-runs",
        type=int,
        default=3,
        help="0: no floor (the check alone: a 10 M-session floor holds ~8 GiB of Arrow)",
    )
    parser.add_argument("--check-runs", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_check_") as tmp:
        folder = Path(tmp)
        if args.generate:
            from datetime import date

            from metaudit.demo import generate

            args.source = str(folder / "net.sqlite")
            args.truth = folder / "net.truth.jsonl"
            generate(
                args.source,
                as_of=date.fromisoformat(args.as_of),
                sessions=args.generate,
                practices=args.practices,
                progress=False,
                truth_path=args.truth,
            )
        if not args.source:
            parser.error("give --source or --generate")

        queries = floor_queries(args.source)
        floors, floor_cpus = [], []

        def floor_run() -> tuple[int, int]:
            seconds, cpu, rows, size = measure_floor(args.source, queries)
            floors.append(seconds)
            floor_cpus.append(cpu)
            return rows, size

        rows, size = 0, 0
        for _ in range(args.floor_runs):
            rows, size = floor_run()
        checks = []
        for run in range(args.check_runs):
            checks.append(measure_check(args, folder / f"out{run}"))
            # A floor right after each check: on a shared machine the load drifts.
            if args.floor_runs:
                floor_run()
        best = min(checks, key=lambda c: c["wall"])
        floor = min(floors) if floors else float("nan")
        ratio = best["wall"] / floor
        peak_gib = max(c["peak_kib"] for c in checks) / 2**20

        stages = best["stages"]
        lines = [
            f"source: {args.source} ({rows:,} rows, {size / 2**30:.2f} GiB as Arrow)",
            f"machine: {machine()}",
            f"(a) floor, ADBC to Arrow: best {floor:.1f} s of {len(floors)} "
            f"(median {statistics.median(floors or [floor]):.1f} s; "
            f"CPU {min(floor_cpus or [floor]):.1f} s)",
            f"(b) metaudit check: best {best['wall']:.1f} s of {len(checks)} "
            f"(median {statistics.median(c['wall'] for c in checks):.1f} s; "
            f"CPU {best['cpu']:.1f} s), {best['findings']} findings",
            f"ratio (b)/(a): {ratio:.1f}x (goal <= {GOAL_RATIO:g}x: "
            f"{'met' if ratio <= GOAL_RATIO else 'NOT met'})",
            f"peak RSS of the check: {peak_gib:.2f} GiB (goal < {GOAL_PEAK_GIB:g} GiB: "
            f"{'met' if peak_gib < GOAL_PEAK_GIB else 'NOT met'})",
            "stages of the best check (s): "
            + ", ".join(f"{s} {stages.get(s, 0.0):.1f}" for s in (*STAGES, "startup")),
        ]
        if args.truth:
            lines.append(
                compare_truth(folder / f"out{checks.index(best)}/findings.jsonl", args.truth)
            )
        sys.stdout.write("\n".join(lines) + "\n")
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "floor_seconds": floors,
                        "floor_cpu_seconds": floor_cpus,
                        "checks": checks,
                        "ratio": ratio,
                        "peak_gib": peak_gib,
                        "rows": rows,
                    },
                    indent=1,
                )
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
