"""The ``metaudit`` command.

``metaudit check`` runs the rulebook over a source database and writes the
findings; ``metaudit demo`` makes a demo network with known defects. Exit codes
follow the interfaces: 0 when the check ran (whatever it found), 2 when it
could not run, with a message naming what is wrong.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from metaudit.errors import MetAuditError

log = logging.getLogger("metaudit")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CANNOT_RUN = 2


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from exc


def build_parser() -> argparse.ArgumentParser:
    # argparse exits 2 on bad arguments, which is also our "could not run" code.
    parser = argparse.ArgumentParser(prog="metaudit", description="Compliance audit for MET practices.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check", help="run every rule over a source database")
    check.add_argument("--source", required=True, help="SQLAlchemy URL or a SQLite file path")
    check.add_argument("--as-of", type=_date, default=None, help="as-of date (default: today)")
    check.add_argument(
        "--practice", action="append", default=None, metavar="ID", help="only this practice (repeatable)"
    )
    check.add_argument("--out", required=True, type=Path, help="folder for findings.jsonl/.csv")
    check.add_argument("--config", type=Path, default=None, help="configuration file (YAML)")

    demo = sub.add_parser("demo", help="generate a demo practice network with known defects")
    demo.add_argument("--target", required=True, help="SQLite file path or SQLAlchemy URL")
    demo.add_argument("--as-of", type=_date, default=None, help="reference date (default: today)")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--practices", type=int, default=3)
    demo.add_argument("--sessions", type=int, default=20_000)
    demo.add_argument(
        "--defects", default="all", help="'all', 'none', or a comma list of defect names"
    )
    demo.add_argument("--truth", type=Path, default=None, help="ground-truth file (non-file URLs)")
    demo.add_argument("--no-progress", action="store_true")

    verify = sub.add_parser("verify", help="check an audit packet against its manifest")
    verify.add_argument("packet", type=Path)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        if args.command == "check":
            return _check(args)
        if args.command == "demo":
            return _demo(args)
        if args.command == "verify":
            print("metaudit verify: audit packets are not built yet in this version", file=sys.stderr)
            return EXIT_CANNOT_RUN
    except MetAuditError as exc:
        print(f"metaudit {args.command}: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    return EXIT_CANNOT_RUN


def _progress(message: str) -> None:
    print(f"metaudit: {message}", file=sys.stderr, flush=True)


def _check(args: argparse.Namespace) -> int:
    from metaudit.engine import run_check
    from metaudit.findings import write_findings
    from metaudit.settings import Settings

    settings = Settings.load(args.config)
    started = time.perf_counter()
    result = run_check(
        args.source,
        as_of=args.as_of,
        practice_ids=args.practice,
        settings=settings,
        progress=_progress,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    jsonl, csv_path = write_findings(result.findings, args.out)
    validation_dir = args.out / "validation"
    validation_dir.mkdir(exist_ok=True)
    for family, validation in result.validations.items():
        (validation_dir / f"{family.lower()}.json").write_text(
            json.dumps(validation.results, indent=1, sort_keys=True, allow_nan=False)
        )
    counts: dict[str, int] = {}
    for finding in result.findings:
        counts[finding.severity] = counts.get(finding.severity, 0) + 1
    summary = ", ".join(f"{counts.get(s, 0)} {s}" for s in ("critical", "warning", "notice"))
    _progress(
        f"{len(result.findings)} findings ({summary}) for {len(result.practice_ids)} practice(s) "
        f"as of {result.as_of} in {time.perf_counter() - started:.1f}s; wrote {jsonl} and {csv_path}"
    )
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from metaudit.demo import generate

    kwargs = {}
    if args.truth is not None:
        kwargs["truth_path"] = args.truth
    report = generate(
        args.target,
        as_of=args.as_of or date.today(),
        seed=args.seed,
        practices=args.practices,
        sessions=args.sessions,
        defects=args.defects,
        progress=not args.no_progress,
        **kwargs,
    )
    _progress(f"demo network written: {report}")
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
