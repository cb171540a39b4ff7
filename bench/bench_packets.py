"""Benchmark building client audit packets: milliseconds per client, split by step.

    PYTHONPATH=include python bench/bench_packets.py                    # generates the network
    PYTHONPATH=include python bench/bench_packets.py --source /tmp/net100k.sqlite --practices 2
    PYTHONPATH=include python bench/bench_packets.py --profile /tmp/packets.prof

Without ``--source`` it generates a demo network first (``metaudit demo``:
``--network-practices`` practices, ``--sessions`` sessions, as of ``--as-of``;
default 20 practices, 100,000 sessions, 2026-03-31, the network of issue 15)
into a temporary folder. Then, as the pipeline does, untimed: the source is
read and typed once (``load_source``) and each chosen practice audited once
(``check_typed`` -> ``evidence_from_check``). Timed:

- ``material``: the practice's as-of view and derived frames
  (``prepare_material``) and its suites, once per practice, from the
  practice's partition as the nightly ``build_packets`` gets it (made here by
  ``partition_of``, untimed; ``--whole-source``: from the whole typed network);
- per client with activity: ``client_packet_files`` (split by its own steps:
  content, cover_pdf, records, records_pdf, charts, validation, manifest) and
  the zip (``zip_bytes``). Nothing is written: the keep-or-rebuild decision and the
  atomic write are not the per-client cost measured here.

Prints the clients, the total seconds, the milliseconds per client (material
included, the figure of the goal: at most 50 ms; wall clock, and the process's
CPU time, steadier when the machine is shared) and the split by step (wall). The
chosen practices are the first ``--practices`` in id order (or ``--practice``).
``--repeat`` builds every packet that many times and keeps the best run (the
machine is shared). ``--profile FILE`` writes a cProfile of one timed run to
FILE and prints the top of it by cumulative and by own time.

``--from-check``: the material from the check's view and derived frames, made untimed
(the nightly run's audit task hands its check's to the packets, so deriving is counted
in its validate stage, not here): the cost of a packet as the nightly run pays it.

``--clients N``: what a night that rebuilds a few clients costs (the nightly run on
an unchanged night rebuilds some 2 % of the clients). Each practice's as-of view and
derived frames are made untimed (the check of the night made them); timed, per
practice: ``prepare_material(view, frames, clients=...)`` for N clients with activity
(evenly spread over them), the suites, and those N clients' packets and zips. Prints
the milliseconds per practice and the split into a fixed cost per practice and a cost
per client: the per-client figure is the mean of each practice's clients after its
first (the first pays what a practice's packets make once: ``_prepared``, the record
tables' text), the fixed figure what is left of the practice's time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import platform
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

GOAL_MS_PER_CLIENT = 50.0
KEY = b"bench-packet-key-0123456789abcdef"
STEPS = (
    "material",
    "content",
    "cover_pdf",
    "records",
    "records_pdf",
    "charts",
    "validation",
    "manifest",
    "zip",
)


@dataclass
class Run:
    clients: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)
    bytes: int = 0


def generate(folder: Path, practices: int, sessions: int, as_of: str) -> Path:
    target = folder / "network.sqlite"
    command = [
        sys.executable,
        "-m",
        "metaudit.cli",
        "demo",
        "--target",
        str(target),
        "--as-of",
        as_of,
        "--practices",
        str(practices),
        "--sessions",
        str(sessions),
        "--no-progress",
    ]
    print("generating:", " ".join(command[3:]), flush=True)
    subprocess.run(command, check=True)
    return target


def audit(
    source: str, as_of: date, wanted: Sequence[str] | None, count: int, partitions: bool
) -> tuple[Any, ...]:
    """Read, type and audit the chosen practices once (untimed)."""
    from metaudit.check.engine import check_typed, load_source
    from metaudit.packets import evidence_from_check
    from metaudit.spec.settings import Settings

    settings = Settings.load(None)
    started = time.perf_counter()
    typed = load_source(source, as_of)
    practices = sorted(str(p) for p in typed.tables["practices"]["practice_id"].dropna().unique())
    chosen = list(wanted) if wanted else practices[:count]
    missing = sorted(set(chosen) - set(practices))
    if missing:
        raise SystemExit(f"practice(s) not in the source: {', '.join(missing)}")
    result = check_typed(typed, as_of, chosen, settings)
    evidence = {p: evidence_from_check(result, p) for p in chosen}
    if partitions:
        # As build_packets gets it: the practice's partition, made by the extract stage.
        from metaudit.source.snapshot import partition_of

        typed = {p: partition_of(typed, p) for p in chosen}
    else:
        typed = dict.fromkeys(chosen, typed)
    print(
        f"audited {len(chosen)} practice(s) of {len(practices)} in "
        f"{time.perf_counter() - started:.1f} s (untimed)",
        flush=True,
    )
    return typed, settings, chosen, evidence


def build_all(
    typed: Any,
    settings: Any,
    as_of: date,
    chosen: Sequence[str],
    evidence: dict[str, Any],
    checked: dict[str, tuple[Any, Any, list[str]]] | None = None,
) -> Run:
    """One timed run: every client packet of the chosen practices, in memory. ``checked``
    (``--from-check``): each practice's view and derived frames made by the check, as the
    nightly run hands them to the packets (their derivation is the check's time)."""
    from metaudit.packets import client_packet_files, clients_with_activity, prepare_material
    from metaudit.packets.archive import zip_bytes
    from metaudit.packets.layout import packet_options

    options = packet_options(settings, None)
    run = Run(steps=dict.fromkeys(STEPS, 0.0))
    started = time.perf_counter()
    cpu_started = time.process_time()
    for practice_id in chosen:
        t0 = time.perf_counter()
        if checked is None:
            material = prepare_material(typed[practice_id], as_of, practice_id, settings)
        else:
            view, frames, _ = checked[practice_id]
            material = prepare_material(
                typed[practice_id], as_of, practice_id, settings, view, frames
            )
        suites = practice_suites(material, evidence[practice_id])
        clients = clients_with_activity(material.view, options.activity_days)
        run.steps["material"] += time.perf_counter() - t0
        for client_id in clients:
            files = client_packet_files(
                material,
                evidence[practice_id],
                suites,
                client_id,
                key=KEY,
                activity_days=options.activity_days,
                timings=run.steps,
            )
            t0 = time.perf_counter()
            run.bytes += len(zip_bytes(files, as_of))
            run.steps["zip"] += time.perf_counter() - t0
            run.clients += 1
    run.seconds = time.perf_counter() - started
    run.cpu_seconds = time.process_time() - cpu_started
    return run


@dataclass
class FewRun:
    practices: int = 0
    clients: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    material: float = 0.0
    # Each practice's client seconds in build order.
    per_practice: list[list[float]] = field(default_factory=list)


def build_few(
    typed: Any,
    settings: Any,
    as_of: date,
    chosen: Sequence[str],
    evidence: dict[str, Any],
    count: int,
    prepared: dict[str, tuple[Any, Any, list[str]]],
) -> FewRun:
    """One timed run: ``count`` clients of every chosen practice, material included."""
    from metaudit.packets import client_packet_files, prepare_material
    from metaudit.packets.archive import zip_bytes
    from metaudit.packets.layout import packet_options

    options = packet_options(settings, None)
    run = FewRun()
    started = time.perf_counter()
    cpu_started = time.process_time()
    for practice_id in chosen:
        view, frames, clients = prepared[practice_id]
        t0 = time.perf_counter()
        material = prepare_material(
            typed[practice_id], as_of, practice_id, settings, view, frames, clients=clients
        )
        suites = practice_suites(material, evidence[practice_id])
        run.material += time.perf_counter() - t0
        seconds = []
        for client_id in clients:
            t0 = time.perf_counter()
            files = client_packet_files(
                material,
                evidence[practice_id],
                suites,
                client_id,
                key=KEY,
                activity_days=options.activity_days,
            )
            zip_bytes(files, as_of)
            seconds.append(time.perf_counter() - t0)
            run.clients += 1
        run.per_practice.append(seconds)
        run.practices += 1
    run.seconds = time.perf_counter() - started
    run.cpu_seconds = time.process_time() - cpu_started
    return run


def few_material(
    typed: Any, settings: Any, as_of: date, chosen: Sequence[str], count: int
) -> dict[str, tuple[Any, Any, list[str]]]:
    """Each practice's view, derived frames and ``count`` clients (untimed: the check's)."""
    from metaudit.check.derive import FAMILIES
    from metaudit.check.engine import derive_family
    from metaudit.packets import clients_with_activity
    from metaudit.packets.build import _practice_view

    found = {}
    for practice_id in chosen:
        view = _practice_view(typed[practice_id], as_of, practice_id, settings)
        frames = [f for family in FAMILIES for f in derive_family(family, view, settings)]
        active = clients_with_activity(view)
        step = max(len(active) // max(count, 1), 1)
        found[practice_id] = (view, frames, active[::step][:count])
    return found


def report_few(run: FewRun, repeat: int) -> None:
    practices = max(run.practices, 1)
    later = [s for seconds in run.per_practice for s in seconds[1:]]
    per_client = sum(later) / len(later) if later else float("nan")
    fixed = (run.seconds - per_client * run.clients) / practices if later else float("nan")
    print()
    print(f"practices: {run.practices}; clients: {run.clients} (best of {repeat})")
    print(
        f"total: {run.seconds:.2f} s; CPU {run.cpu_seconds:.2f} s; "
        f"per practice {1000 * run.seconds / practices:.1f} ms "
        f"(CPU {1000 * run.cpu_seconds / practices:.1f} ms), of which material "
        f"{1000 * run.material / practices:.1f} ms"
    )
    first = [seconds[0] for seconds in run.per_practice if seconds]
    print(
        f"per practice: fixed {1000 * fixed:.1f} ms + {1000 * per_client:.1f} ms per client "
        f"(first client of a practice: {1000 * sum(first) / max(len(first), 1):.1f} ms)"
    )


def report(run: Run, repeat: int) -> None:
    per_client = 1000 * run.seconds / max(run.clients, 1)
    print()
    print(f"clients: {run.clients}; zips {run.bytes / 1e6:.1f} MB")
    print(f"total: {run.seconds:.2f} s (best of {repeat}); CPU {run.cpu_seconds:.2f} s")
    print(
        f"per client: {per_client:.1f} ms (goal <= {GOAL_MS_PER_CLIENT:.0f} ms: "
        f"{'met' if per_client <= GOAL_MS_PER_CLIENT else 'NOT met'}); "
        f"CPU {1000 * run.cpu_seconds / max(run.clients, 1):.1f} ms"
    )
    print()
    print(f"{'step':<12}{'s':>9}{'ms/client':>11}{'share':>8}")
    for name in STEPS:
        seconds = run.steps.get(name, 0.0)
        print(
            f"{name:<12}{seconds:>9.2f}{1000 * seconds / max(run.clients, 1):>11.1f}"
            f"{100 * seconds / max(run.seconds, 1e-9):>7.0f}%"
        )
    other = run.seconds - sum(run.steps.values())
    print(f"{'(other)':<12}{other:>9.2f}{1000 * other / max(run.clients, 1):>11.1f}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", help="SQLite file or URL (default: generate a demo network)")
    parser.add_argument("--as-of", default="2026-03-31")
    parser.add_argument("--network-practices", type=int, default=20)
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--practices", type=int, default=1, help="how many practices to build")
    parser.add_argument("--practice", action="append", help="a practice id (repeatable)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--whole-source",
        action="store_true",
        help="prepare each practice from the whole typed network, not its partition",
    )
    parser.add_argument(
        "--from-check",
        action="store_true",
        help="every client's material from the check's view and derived frames, as the "
        "nightly run builds packets (derivation is then the check's time, not material's)",
    )
    parser.add_argument(
        "--clients",
        type=int,
        help="build only this many clients per practice, from the check's view and frames",
    )
    parser.add_argument("--profile", type=Path, help="write a cProfile of one run here")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args(argv)
    as_of = date.fromisoformat(args.as_of)
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-packets-") as tmp:
        source = args.source or str(
            generate(Path(tmp), args.network_practices, args.sessions, args.as_of)
        )
        typed, settings, chosen, evidence = audit(
            source, as_of, args.practice, args.practices, not args.whole_source
        )
    # One untimed client first: imports, fonts, caches of the process.
    _warm_up(typed, settings, as_of, chosen[0], evidence)
    if args.clients:
        prepared = few_material(typed, settings, as_of, chosen, args.clients)

        def one_run() -> Any:
            return build_few(typed, settings, as_of, chosen, evidence, args.clients, prepared)
    else:
        checked = few_material(typed, settings, as_of, chosen, 0) if args.from_check else None

        def one_run() -> Any:
            return build_all(typed, settings, as_of, chosen, evidence, checked)

    runs = [one_run() for _ in range(max(args.repeat, 1))]
    best = min(runs, key=lambda r: r.seconds)
    print(f"practices: {', '.join(chosen)}; load {os.getloadavg()[0]:.1f}")
    if args.clients:
        report_few(best, len(runs))
    else:
        report(best, len(runs))
    if args.profile:
        # CPU time: the machine may be shared, and waiting for a core is not the code's cost.
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        one_run()
        profiler.disable()
        profiler.dump_stats(args.profile)
        for order in ("cumulative", "tottime"):
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats(order).print_stats(args.top)
            print(f"\n--- profile by {order} (written to {args.profile}) ---")
            print(text.getvalue())
    return 0


def practice_suites(material: Any, evidence: Any) -> list[Any]:
    """The practice's suites as build_client_packets prepares them."""
    from metaudit.check.derive import FAMILIES
    from metaudit.packets.content import suites_of

    return [
        suite
        if suite.entity_type
        else replace(suite, entity_type=material.entity_type(suite.frame))
        for suite in suites_of(evidence, FAMILIES)
    ]


def _warm_up(typed: Any, settings: Any, as_of: date, practice_id: str, evidence: Any) -> None:
    from metaudit.packets import client_packet_files, clients_with_activity, prepare_material

    material = prepare_material(typed[practice_id], as_of, practice_id, settings)
    clients = clients_with_activity(material.view)
    if clients:
        suites = practice_suites(material, evidence[practice_id])
        client_packet_files(material, evidence[practice_id], suites, clients[0], key=KEY)


if __name__ == "__main__":
    raise SystemExit(main())
