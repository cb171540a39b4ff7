"""Benchmark of parsing the nightly DAG file, the way Airflow's DAG processor does.

Usage::

    .venv/bin/python bench/bench_dag_parse.py [--runs 7] [--dag dags/met_compliance_nightly.py]

Each run is a fresh Python process (nothing cached in memory) that imports the
Airflow SDK first, since a DAG processor has it imported already, and then
times executing the DAG file alone: that is the DAG file's own parse cost, the
number the issue bounds (< 0.5 s). The cold total (interpreter start, Airflow
import and the file) is reported beside it, and each run checks that pandas,
Great Expectations and pyarrow stayed out of the parse.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger("bench_dag_parse")

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("pandas", "great_expectations", "pyarrow", "numpy")

# Runs in the child process: time the Airflow import, then the DAG file on its own.
PROBE = """
import json, os, runpy, sys, tempfile, time
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp())
started = time.perf_counter()
import airflow.sdk
imported = time.perf_counter()
namespace = runpy.run_path(sys.argv[1])
parsed = time.perf_counter()
heavy = [m for m in sys.argv[2].split(",") if m in sys.modules]
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1], safe_mode=False)
(stat,) = bag.dagbag_stats
print(json.dumps({
    "airflow_import_s": imported - started,
    "dag_file_s": parsed - imported,
    "dagbag_s": stat.duration.total_seconds() if hasattr(stat.duration, "total_seconds")
    else float(stat.duration),
    "heavy": heavy,
    "tasks": sorted(t for dag in bag.dags.values() for t in dag.task_ids),
}))
"""


def parse_once(dag_file: Path) -> dict[str, object]:
    """One cold parse of the DAG file in a fresh interpreter; the child's measurements."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(dag_file), ",".join(HEAVY)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--dag", type=Path, default=ROOT / "dags" / "met_compliance_nightly.py")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    runs = []
    for _ in range(args.runs):
        began = time.perf_counter()
        result = parse_once(args.dag)
        result["process_s"] = time.perf_counter() - began
        runs.append(result)
        if result["heavy"]:
            raise SystemExit(f"the DAG file imported {result['heavy']} at parse time")

    def line(key: str) -> str:
        values = [float(r[key]) for r in runs]  # type: ignore[arg-type]
        return (
            f"median {statistics.median(values):.3f} s, min {min(values):.3f} s, "
            f"max {max(values):.3f} s"
        )

    log.info("DAG file %s, %d cold runs", args.dag.relative_to(ROOT), args.runs)
    log.info("  DAG file alone (Airflow already imported): %s", line("dag_file_s"))
    log.info("  the same, as Airflow's DagBag times it    : %s", line("dagbag_s"))
    log.info("  import airflow.sdk                        : %s", line("airflow_import_s"))
    log.info("  whole process (python + airflow + DAG)    : %s", line("process_s"))
    log.info("  tasks: %s", ", ".join(runs[0]["tasks"]))  # type: ignore[arg-type]
    log.info("  heavy modules imported at parse: none of %s", ", ".join(HEAVY))


if __name__ == "__main__":
    main()
