"""Benchmark packets that follow the evidence: a first night, then unchanged nights.

    PYTHONPATH=include python bench/bench_packet_nights.py --practices 4 --sessions 8000
    PYTHONPATH=include python bench/bench_packet_nights.py --source /tmp/net.sqlite --as-of 2026-03-31

Generates a demo network (or takes ``--source``), then, in one process:

1. the check of the whole source (``load_source`` + ``check_typed``), timed;
2. night 1 on ``--as-of``: every practice's packets (``build_client_packets`` and
   the month packet, as the nightly DAG's packets step does with the check's
   evidence), timed, with the bytes it wrote;
3. night 2: the same as-of date again on the same source (same records, same
   evidence): the unchanged night, which links every packet in force;
4. ``--next-day``: also a night on the next calendar date, on the same source.
   Records dated that day enter the view (the demo has future sessions), so
   the clients they belong to are rebuilt: that is evidence changing, and the
   figure is printed apart.

"Bytes written" counts every file under the packets folder whose inode and
mtime are new after the night (a hard link to an existing packet writes none):
packets, the month packets and the indexes of the packets in force.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

KEY = b"bench-packet-key-0123456789abcdef"


def _files(root: Path) -> dict[str, tuple[int, int, int]]:
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            stat = path.stat()
            found[str(path)] = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
    return found


def _written(
    before: dict[str, tuple[int, int, int]], after: dict[str, tuple[int, int, int]]
) -> int:
    """Bytes of files new or rewritten since ``before`` (each inode counted once)."""
    old = {(ino, mtime) for ino, mtime, _ in before.values()}
    seen: set[int] = set()
    total = 0
    for ino, mtime, size in after.values():
        if (ino, mtime) in old or ino in seen:
            continue
        seen.add(ino)
        total += size
    return total


def _night(typed, result, settings, practice_ids, as_of: date, packets: Path, rebuild=False):
    from metaudit.packets.build import evidence_from_check, write_practice_packets
    from metaudit.packets.layout import PacketOptions

    options = PacketOptions(packets_dir=packets)
    before = _files(packets)
    states: dict[str, int] = {}
    started = time.perf_counter()
    for practice_id in practice_ids:
        evidence = evidence_from_check(result, practice_id)
        month = {evidence.as_of: list(evidence.findings)}
        summaries, _, _ = write_practice_packets(
            typed, evidence, month, options, settings, key=KEY, rebuild=rebuild
        )
        for s in summaries:
            states[s.state] = states.get(s.state, 0) + 1
    seconds = time.perf_counter() - started
    return seconds, _written(before, _files(packets)), states


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source")
    parser.add_argument("--as-of", default="2026-03-31")
    parser.add_argument("--practices", type=int, default=4)
    parser.add_argument("--sessions", type=int, default=8000)
    parser.add_argument("--next-day", action="store_true")
    parser.add_argument("--work", help="folder for the network and packets (default: a temp dir)")
    args = parser.parse_args(argv)

    from metaudit.check.engine import check_typed, load_source
    from metaudit.spec.settings import Settings

    as_of = date.fromisoformat(args.as_of)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-packet-nights-"))
    work.mkdir(parents=True, exist_ok=True)
    source = args.source
    if source is None:
        from metaudit.demo.generate import generate

        source = str(work / "network.sqlite")
        if not Path(source).exists():
            generate(
                source,
                as_of=as_of,
                practices=args.practices,
                sessions=args.sessions,
                progress=False,
            )
    settings = Settings.from_dict({})
    packets = work / "packets"

    def check(day: date):
        started = time.perf_counter()
        typed = load_source(source, day)
        result = check_typed(typed, day, None, settings)
        return typed, result, time.perf_counter() - started

    typed, result, check_s = check(as_of)
    practice_ids = sorted(str(p) for p in typed.tables["practices"]["practice_id"].dropna())
    rows = []
    first = _night(typed, result, settings, practice_ids, as_of, packets)
    rows.append(("night 1 (first)", *first))
    rows.append(
        (
            "night 2 (rerun, same date)",
            *_night(typed, result, settings, practice_ids, as_of, packets),
        )
    )
    if args.next_day:
        day = as_of + timedelta(days=1)
        typed2, result2, check2_s = check(day)
        rows.append(
            (
                f"next day {day} (new records)",
                *_night(typed2, result2, settings, practice_ids, day, packets),
            )
        )
        rows.append(("  its check", check2_s, 0, {}))
    print(
        f"source {source}; practices {len(practice_ids)}; check (read + type + judge) {check_s:.2f} s"
    )
    print(
        f"{'night':34} {'packets s':>10} {'x check':>8} {'bytes written':>14} {'% of night 1':>12}  states"
    )
    for name, seconds, written, states in rows:
        share = 100.0 * written / first[1] if first[1] else 0.0
        print(
            f"{name:34} {seconds:10.2f} {seconds / check_s:8.2f} {written:14,d} {share:11.2f}%  {states}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
