"""Peak memory and time of each nightly task on a large network, task by task.

The nightly DAG's tasks are plain functions of ``metaudit.pipeline`` (the DAG file only
wires them): this runs them as a worker would, each in a fresh process, in the DAG's
order on one source and as-of date, and prints each process's wall time, CPU time and
peak resident memory (``getrusage`` of the process itself):

1. ``plan`` (``stages.plan_run``): the practices, the run in the results store;
2. ``extract`` (``stages.extract`` and ``chunk.chunk_work``): the streaming read and
   typing, one partition per practice;
3. ``audit`` (``chunk.audit_chunk``) for the ``--audits`` groups of practices with the
   largest partitions on disk (the others are alike; ``--audits 0`` runs every group):
   the joint check, then per practice persist, email (to the outbox) and packets;
4. ``finish`` (``stages.finish_run``): when not every group ran, it ends the run as
   incomplete, as the DAG would with failed practices; its memory is what counts here.

Scratch data folder (``--keep`` keeps it), SQLite results store, the demo packet key.
Numbers for the README's scale section, never a test::

    .venv/bin/metaudit demo --target /tmp/n10m/practice.sqlite --as-of 2026-03-31 \\
        --sessions 10000000 --practices 2000 --no-progress
    .venv/bin/python bench/bench_task_memory.py --source /tmp/n10m/practice.sqlite \\
        --as-of 2026-03-31 --keep /tmp/n10m/tasks
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Each task's body, run in its own process. It prints one JSON line: its result's
# summary and its own peak RSS.
_TASK = r"""
import json, resource, sys, time
from datetime import date
began = time.perf_counter()
cpu = time.process_time()
from metaudit.pipeline import chunk, stages
args = json.loads(sys.argv[1])
out = {}
if args["task"] == "plan":
    result = stages.plan_run(args["source"], args["store"], run_id=args["run_id"],
                             dag_id="met_compliance_nightly", as_of=date.fromisoformat(args["as_of"]))
    out = {"practices": len(result["practice_ids"])}
    open(args["state"], "w").write(json.dumps(result))
elif args["task"] == "extract":
    plan = json.loads(open(args["state"]).read())
    work = stages.extract(args["source"], date.fromisoformat(plan["as_of"]), plan["practice_ids"],
                          store_url=args["store"], run_id=args["run_id"])
    chunks = chunk.chunk_work(work, per_task=args["per_task"], max_tasks=1024)
    open(args["chunks"], "w").write(json.dumps(chunks))
    out = {"partitions": len(work), "groups": len(chunks)}
elif args["task"] == "audit":
    work = json.loads(open(args["chunks"]).read())[args["index"]]
    try:
        result = chunk.audit_chunk(args["store"], work,
                                   chunk.TaskRef(dag_id="met_compliance_nightly", run_id=args["run_id"],
                                                 task_id="audit", map_index=args["index"]),
                                   is_final=lambda exc: True, demo=True)
        out = {"group": work["label"], "practices": len(result["practices"])}
    except Exception as exc:  # reported, not hidden: the figure is then not a success
        out = {"group": work["label"], "error": f"{type(exc).__name__}: {exc}"}
elif args["task"] == "finish":
    try:
        out = {"summary": stages.finish_run(args["store"], args["run_id"], extracted_ok=True)[:200]}
    except stages.RunIncompleteError as exc:
        out = {"incomplete": str(exc)[:200]}
out["wall_s"] = round(time.perf_counter() - began, 2)
out["cpu_s"] = round(time.process_time() - cpu, 2)
out["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)
print("RESULT " + json.dumps(out))
"""


def _run(args: dict, env: dict[str, str], log: Path) -> dict:
    with log.open("a") as handle:
        done = subprocess.run(
            [sys.executable, "-c", _TASK, json.dumps(args)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=handle,
            text=True,
            check=False,
        )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"task {args['task']} failed (exit {done.returncode}); see {log}")
    result: dict = json.loads(lines[-1][len("RESULT ") :])
    return result


def _largest_groups(chunks: list[dict], count: int) -> list[int]:
    """The groups whose partitions take the most bytes on disk (all with ``count`` 0)."""

    def size(work: dict) -> int:
        return sum(
            path.stat().st_size
            for item in work["practices"]
            for path in Path(item["partition"]).rglob("*")
            if path.is_file()
        )

    order = sorted(range(len(chunks)), key=lambda i: size(chunks[i]), reverse=True)
    return order if count == 0 else order[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True, help="the source database (a SQLite file)")
    parser.add_argument("--as-of", required=True)
    parser.add_argument("--per-task", type=int, default=10, help="practices per audit task")
    parser.add_argument("--audits", type=int, default=3, help="audit groups to run (0: all)")
    parser.add_argument("--keep", help="work in this folder and keep it")
    parser.add_argument("--json", help="write the figures to this file")
    options = parser.parse_args()

    work = Path(options.keep) if options.keep else Path(tempfile.mkdtemp(prefix="task-memory-"))
    if work.exists() and options.keep:
        shutil.rmtree(work)
    work.mkdir(parents=True)
    data = work / "data"
    env = {
        **os.environ,
        "METAUDIT_DATA_DIR": str(data),
        "METAUDIT_DEMO": "1",
        # Spool of the streaming typing: beside the data, on the same disk.
        "TMPDIR": str(work),
    }
    source = Path(options.source).resolve()
    common = {
        "source": f"sqlite:///{source}",
        "store": f"sqlite:///{data / 'results.sqlite'}",
        "run_id": "bench-task-memory",
        "as_of": options.as_of,
        "state": str(work / "plan.json"),
        "chunks": str(work / "chunks.json"),
        "per_task": options.per_task,
    }
    log = work / "tasks.log"
    figures: dict[str, object] = {"source": str(source), "as_of": options.as_of}
    began = time.perf_counter()
    for task in ("plan", "extract"):
        figures[task] = _run({**common, "task": task}, env, log)
        print(task, figures[task], flush=True)
    chunks = json.loads(Path(common["chunks"]).read_text())
    audits = []
    for index in _largest_groups(chunks, options.audits):
        result = _run({**common, "task": "audit", "index": index}, env, log)
        audits.append(result)
        print("audit", result, flush=True)
    figures["audit"] = audits
    figures["finish"] = _run({**common, "task": "finish"}, env, log)
    print("finish", figures["finish"], flush=True)
    figures["wall_s"] = round(time.perf_counter() - began, 1)
    peaks = [figures["plan"], figures["extract"], *audits, figures["finish"]]
    peak = max(float(p["peak_rss_gib"]) for p in peaks)  # type: ignore[index]
    figures["peak_rss_gib"] = peak
    print(
        f"largest peak RSS of a task: {peak:.2f} GiB (goal < 3 GiB: {'met' if peak < 3 else 'NOT met'})"
    )
    if options.json:
        Path(options.json).write_text(json.dumps(figures, indent=1) + "\n")
    if not options.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
