"""The nightly run on the embedded default against `metaudit check` of the same source.

    .venv/bin/python bench/bench_nightly.py                       # 20 practices, 100,000 sessions
    .venv/bin/python bench/bench_nightly.py --practices 3 --sessions 12000 --keep /tmp/nightly
    .venv/bin/python bench/bench_nightly.py --source /tmp/n100k/practice.sqlite --as-of 2026-03-31

In one run, on one generated SQLite network (or ``--source``), as ``make demo`` runs
the DAG (``airflow dags test``, SQLite metadata database, the results store and the
packets in a scratch data folder, emails to the outbox, the published demo key):

1. ``metaudit check`` of the source, in a fresh process (wall time, peak RSS);
2. the first night: ``airflow dags test met_compliance_nightly AS_OF``;
3. the next night on the same, unchanged records: ``... AS_OF+1``.

The check runs again between the nights and after them: it is short and the machine's
speed drifts within minutes, so the nights are set against the median of the three.
``--next-nights N`` runs the next night N times, each from the state the first night
left (the metadata database and the data folder copied back) and each after a check
of its own: the next night's figure is then the median of the N, against the median of
the N + 2 checks.

4. ``--airflow-floor``: the same DAG shape with tasks that do nothing (plan, extract,
   as many mapped ``audit`` tasks as the night had, finish), run the same way: what
   ``airflow dags test`` costs whatever the tasks do (its start, the DAG's parse, the
   in-process execution API, each task's runner), so a night's own cost is its
   wall time less this floor. Its tasks end their process as the nightly's do, without
   Python's last collection of the heap (``metaudit.lifetime``).

Printed: each one's wall time and peak RSS (``getrusage`` of the child), the nights'
ratios to the check, the bytes of packets each night wrote (files new or rewritten
under the packets folder), the task instances' durations from the metadata
database and the per-practice stage timings the results store kept. ``--json FILE``
keeps the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DAG_ID = "met_compliance_nightly"
FLOOR_DAG_ID = "metaudit_airflow_floor"
# The nightly DAG's shape with tasks that do nothing: what Airflow itself costs.
FLOOR_DAG = """
import pendulum
from airflow.sdk import dag, task


@dag(dag_id="%(dag_id)s", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False)
def floor():
    @task
    def plan() -> dict:
        # As the nightly's tasks do (metaudit.lifetime): the process's end does not walk
        # the heap once more, so the floor holds only what Airflow itself costs.
        import atexit, gc

        atexit.register(gc.freeze)
        return {"as_of": "x"}

    @task
    def extract(run: dict) -> list:
        return [{"group": i} for i in range(%(groups)d)]

    @task
    def audit(item: dict) -> dict:
        return item

    @task(trigger_rule="all_done")
    def finish(results: list) -> int:
        return len(list(results))

    finish(audit.expand(item=extract(plan())))


floor()
"""


def without_later_records(source: Path, copy: Path, as_of: date) -> int:
    """Copy the source without the records dated after ``as_of`` (and the rows hanging off
    them), so the next night's as-of view holds exactly the same records; rows removed."""
    from metaudit.spec.contract import PARENT_OF, TABLES

    shutil.copyfile(source, copy)
    removed = 0
    with sqlite3.connect(copy) as conn:
        # Each table's as-of column (the contract's): the date its record happened on.
        for table, spec in TABLES.items():
            column, key = spec.as_of, spec.key
            if not column:
                continue
            children = [(c, fk) for c, (fk, parent) in PARENT_OF.items() if parent == table]
            for child, fk in children:
                removed += conn.execute(
                    f"DELETE FROM {child} WHERE {fk} IN (SELECT {key} FROM {table} "
                    f"WHERE {column} > ?)",
                    (as_of.isoformat(),),
                ).rowcount
            removed += conn.execute(
                f"DELETE FROM {table} WHERE {column} > ?", (as_of.isoformat(),)
            ).rowcount
    return removed


def timed(command: list[str], env: dict[str, str], log: Path) -> dict[str, float]:
    """Run a command to the end; its wall time and peak RSS (that child's own, in MiB:
    ``wait4`` gives the child's resource use, where RUSAGE_CHILDREN gives the largest of
    every child so far)."""
    started = time.perf_counter()
    with log.open("w") as out:
        child = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if child.returncode != 0:
        sys.exit(f"{' '.join(command[:3])} failed ({child.returncode}); see {log}")
    return {"seconds": round(seconds, 2), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}


def packet_files(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every file under the packets folder: (inode, mtime ns, size)."""
    found = {}
    for path in root.rglob("*") if root.is_dir() else []:
        if path.is_file():
            stat = path.stat()
            found[str(path.relative_to(root))] = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
    return found


def written(before: dict[str, tuple[int, int, int]], after: dict[str, tuple[int, int, int]]) -> int:
    """Bytes of the files the night created or rewrote (a new hard link to a kept file
    writes nothing: same inode, same modification time)."""
    seen = {(ino, mtime) for ino, mtime, _ in before.values()}
    return sum(size for ino, mtime, size in after.values() if (ino, mtime) not in seen)


def task_durations(home: Path, run_date: str) -> dict[str, dict[str, float]]:
    """Task instances' durations of the night's run, per task: count, sum, max."""
    with sqlite3.connect(home / "airflow.db") as conn:
        rows = conn.execute(
            "SELECT ti.task_id, ti.duration FROM task_instance ti JOIN dag_run r "
            "ON r.run_id = ti.run_id AND r.dag_id = ti.dag_id WHERE r.dag_id = ? "
            "AND substr(r.logical_date, 1, 10) = ?",
            (DAG_ID, run_date),
        ).fetchall()
    stages: dict[str, dict[str, float]] = {}
    for task_id, duration in rows:
        entry = stages.setdefault(task_id, {"tasks": 0, "sum_s": 0.0, "max_s": 0.0})
        entry["tasks"] += 1
        entry["sum_s"] = round(entry["sum_s"] + (duration or 0.0), 2)
        entry["max_s"] = round(max(entry["max_s"], duration or 0.0), 2)
    return stages


def stage_timings(data: Path, as_of: str) -> dict[str, float]:
    """The results store's per-practice stage timings of the date, summed over practices."""
    with sqlite3.connect(data / "results.sqlite") as conn:
        rows = conn.execute(
            "SELECT timings FROM practice_runs WHERE as_of = ? AND practice_id IS NOT NULL",
            (as_of,),
        ).fetchall()
    total: dict[str, float] = {}
    for (raw,) in rows:
        for stage, seconds in (json.loads(raw) if raw else {}).items():
            if isinstance(seconds, (int, float)):
                total[stage] = round(total.get(stage, 0.0) + seconds, 2)
    return total


def airflow_floor(work: Path, env: dict[str, str], groups: int, as_of: date) -> dict[str, float]:
    """``airflow dags test`` of the nightly DAG's shape with tasks that do nothing."""
    folder = work / "floor_dags"
    folder.mkdir(exist_ok=True)
    (folder / "floor.py").write_text(
        FLOOR_DAG % {"dag_id": FLOOR_DAG_ID, "groups": groups}, encoding="utf-8"
    )
    floor_env = dict(env, AIRFLOW__CORE__DAGS_FOLDER=str(folder))
    return timed(
        [str(BIN / "airflow"), "dags", "test", FLOOR_DAG_ID, as_of.isoformat()],
        floor_env,
        work / "floor.log",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--practices", type=int, default=20)
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--as-of", default="2026-03-31")
    parser.add_argument("--source", help="an existing SQLite network (skips generating one)")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    parser.add_argument(
        "--with-later-records",
        action="store_true",
        help="keep the records dated after the first night (the generator writes some), so "
        "the next night sees them arrive; by default they are removed first and the next "
        "night's records are exactly the first night's",
    )
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument(
        "--per-task",
        type=int,
        help="practices per audit task (METAUDIT_PRACTICES_PER_TASK; default the DAG's)",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="processes each audit task audits in (METAUDIT_AUDIT_PROCESSES); default, as "
        "`make demo` sets it: one a core this process may use",
    )
    parser.add_argument(
        "--next-nights",
        type=int,
        default=1,
        help="run the next night this many times, each from the first night's state, "
        "and report their median (default 1)",
    )
    parser.add_argument(
        "--first-night-only", action="store_true", help="run the first night and stop"
    )
    parser.add_argument(
        "--airflow-floor",
        action="store_true",
        help="also run the same DAG shape with tasks that do nothing (Airflow's own cost)",
    )
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-nightly-"))
    work.mkdir(parents=True, exist_ok=True)
    as_of = date.fromisoformat(args.as_of)
    source = Path(args.source) if args.source else work / "practice.sqlite"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "METAUDIT"))}
    home, data = work / "airflow_home", work / "data"
    for folder in (home, data):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(REPO / "plugins"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        METAUDIT_DATA_DIR=str(data),
        METAUDIT_DEMO="1",
        AIRFLOW_CONN_MET_PRACTICE_DB=json.dumps({"conn_type": "sqlite", "host": str(source)}),
    )
    if args.per_task:
        env["METAUDIT_PRACTICES_PER_TASK"] = str(args.per_task)
    env["METAUDIT_AUDIT_PROCESSES"] = str(args.processes)
    if not args.source:
        print(f"generating {args.practices} practices, {args.sessions:,} sessions ...", flush=True)
        generated = timed(
            [
                str(BIN / "metaudit"),
                "demo",
                "--target",
                str(source),
                "--as-of",
                as_of.isoformat(),
                "--practices",
                str(args.practices),
                "--sessions",
                str(args.sessions),
                "--no-progress",
            ],
            env,
            work / "generate.log",
        )
        print(f"  {generated}")
    if not args.with_later_records:
        frozen = work / "practice-frozen.sqlite"
        removed = without_later_records(source, frozen, as_of)
        print(f"  {removed:,} rows dated after {as_of} removed: {frozen}")
        source = frozen
        env["AIRFLOW_CONN_MET_PRACTICE_DB"] = json.dumps(
            {"conn_type": "sqlite", "host": str(source)}
        )
    timed([str(BIN / "airflow"), "db", "migrate"], env, work / "db-migrate.log")

    figures: dict[str, Any] = {
        "source": str(source),
        "audit_processes": args.processes,
        "as_of": as_of.isoformat(),
        "load_before": os.getloadavg()[0],
    }
    check_command = [
        str(BIN / "metaudit"),
        "check",
        "--source",
        f"sqlite:///{source}",
        "--as-of",
        as_of.isoformat(),
        "--out",
        str(work / "check-out"),
    ]
    checks: list[dict[str, float]] = []

    def check() -> None:
        print(f"metaudit check ({len(checks) + 1}) ...", flush=True)
        checks.append(timed(check_command, env, work / f"check-{len(checks) + 1}.log"))
        print(f"  {checks[-1]}")

    check()
    packets = data / "packets"
    nights = [("first_night", as_of), ("next_night", as_of + timedelta(days=1))]
    if args.first_night_only:
        nights = nights[:1]

    def run_night(name: str, day: date, log_name: str) -> dict[str, Any]:
        before = packet_files(packets)
        print(f"{name}: airflow dags test {DAG_ID} {day} ...", flush=True)
        night: dict[str, Any] = dict(
            timed(
                [str(BIN / "airflow"), "dags", "test", DAG_ID, day.isoformat()],
                env,
                work / f"{log_name}.log",
            )
        )
        night["packet_bytes_written"] = written(before, packet_files(packets))
        night["tasks"] = task_durations(home, day.isoformat())
        night["practice_stages"] = stage_timings(data, day.isoformat())
        print(json.dumps(night, indent=1))
        return night

    figures["first_night"] = run_night(*nights[0], "first_night")
    if len(nights) > 1:
        name, day = nights[1]
        saved = work / "after-first-night"
        shutil.rmtree(saved, ignore_errors=True)
        for folder in (home, data):
            shutil.copytree(folder, saved / folder.name, symlinks=True)
        repeats: list[dict[str, Any]] = []
        for number in range(max(1, args.next_nights)):
            if number:
                # The first night's state again: the next night finds what it found before.
                for folder in (home, data):
                    shutil.rmtree(folder)
                    shutil.copytree(saved / folder.name, folder, symlinks=True)
            check()
            repeats.append(run_night(name, day, name if not number else f"{name}-{number + 1}"))
        shutil.rmtree(saved, ignore_errors=True)
        middle = sorted(repeats, key=lambda run: run["seconds"])[(len(repeats) - 1) // 2]
        figures[name] = dict(middle, runs=[run["seconds"] for run in repeats])
    check()
    # The check is short, and this machine's speed drifts within minutes: its median
    # over the checks before, between and after the nights is what they are set against.
    figures["checks"] = checks
    figures["check"] = {
        "seconds": round(statistics.median(c["seconds"] for c in checks), 2),
        "peak_rss_mib": max(c["peak_rss_mib"] for c in checks),
    }
    for name, _ in nights:
        figures[name]["ratio_to_check"] = round(
            figures[name]["seconds"] / figures["check"]["seconds"], 2
        )
    if args.airflow_floor:
        groups = figures["first_night"]["tasks"].get("audit", {}).get("tasks", 1)
        figures["airflow_floor"] = airflow_floor(work, env, groups, as_of)
        print(f"airflow floor ({groups} audit tasks): {figures['airflow_floor']}")
    first = figures["first_night"]["packet_bytes_written"]
    figures["load_after"] = os.getloadavg()[0]
    runs = ", ".join(f"{c['seconds']}" for c in checks)
    if args.first_night_only:
        print(
            f"\ncheck {figures['check']['seconds']} s (median of {runs}); first night "
            f"{figures['first_night']['seconds']} s "
            f"({figures['first_night']['ratio_to_check']}x)"
        )
        if args.json:
            args.json.write_text(json.dumps(figures, indent=1), encoding="utf-8")
        return
    figures["next_night_packet_share"] = (
        round(figures["next_night"]["packet_bytes_written"] / first, 4) if first else None
    )
    print(
        f"\ncheck {figures['check']['seconds']} s (median of {runs}); first night "
        f"{figures['first_night']['seconds']} s ({figures['first_night']['ratio_to_check']}x); "
        f"next night {figures['next_night']['seconds']} s "
        f"({figures['next_night']['ratio_to_check']}x"
        + (
            f", median of {', '.join(str(s) for s in figures['next_night']['runs'])}"
            if len(figures["next_night"]["runs"]) > 1
            else ""
        )
        + "); packets written next night "
        f"{figures['next_night_packet_share']} of the first night's "
        f"({first:,} bytes); load {figures['load_before']:.1f} -> {figures['load_after']:.1f}"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1), encoding="utf-8")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
