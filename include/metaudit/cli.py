"""The ``metaudit`` command.

``metaudit check`` runs the rulebook over a source database and writes the
findings; ``metaudit demo`` makes a demo network with known defects;
``metaudit accept``, ``metaudit withdraw`` and ``metaudit acceptances`` accept a
finding, withdraw the acceptance and list the trail in the results store;
``metaudit backfill`` records the audits of earlier dates in the results store
(the history of a practice that joins with months of records); ``metaudit
request`` answers a records request with one signed packet. Exit codes
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
from metaudit.lifetime import skip_final_collection

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
    parser = argparse.ArgumentParser(
        prog="metaudit", description="Compliance audit for MET practices."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check", help="run every rule over a source database")
    check.add_argument("--source", required=True, help="SQLAlchemy URL or a SQLite file path")
    check.add_argument("--as-of", type=_date, default=None, help="as-of date (default: today)")
    check.add_argument(
        "--practice",
        action="append",
        default=None,
        metavar="ID",
        help="only this practice (repeatable)",
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

    verify = sub.add_parser(
        "verify",
        help="check an audit packet against its manifest",
        description="Check an audit packet against its signed manifest. The key is read from "
        "the environment variable METAUDIT_PACKET_KEY. The manifest must name the practice, "
        "client and as-of date (or month) the packet is taken for: the ones given here, else "
        "those of its place in the packets folder (<practice>/<as_of>/<client>.zip or "
        "<practice>/practice-<YYYY-MM>.zip). A demo signature proves nothing and counts only "
        "in the demo (METAUDIT_DEMO=1). With --public-key the packet is checked without the "
        "secret: by its Ed25519 signature, under the key among those given (and "
        "METAUDIT_PACKET_PUBLIC_KEYS) that the manifest names; the HMAC is not checked. "
        "Exit 0 when intact, 1 when a file is missing, added "
        "or altered, the signature does not match or the packet belongs elsewhere, 2 when it "
        "cannot check.",
    )
    verify.add_argument("packet", type=Path)
    verify.add_argument(
        "--public-key",
        type=Path,
        action="append",
        default=None,
        metavar="FILE",
        help="a PEM file of the deployment's Ed25519 public key(s) (repeatable): check without "
        "the secret",
    )
    verify.add_argument("--practice", default=None, metavar="ID", help="the packet's practice")
    verify.add_argument(
        "--client", default=None, metavar="ID", help="the client of a client packet"
    )
    verify.add_argument(
        "--as-of", type=_date, default=None, help="the as-of date of a client packet"
    )
    verify.add_argument(
        "--month", default=None, metavar="YYYY-MM", help="the month of a practice packet"
    )

    packets = sub.add_parser(
        "packets",
        help="build audit packets (per client with activity, and per practice and month)",
        description="Build the audit packets of one as-of date without Airflow: runs the check "
        "per practice, then writes <out>/<practice_id>/<as_of>/<client_id>.zip and "
        "<out>/<practice_id>/practice-<YYYY-MM>.zip. Signs with METAUDIT_PACKET_KEY; without "
        "it only --demo builds (with the published demo key). For auditors, signs with the "
        "Ed25519 key of METAUDIT_PACKET_SIGNING_KEY too (--demo: the published demo one).",
    )
    packets.add_argument("--source", required=True, help="SQLAlchemy URL or a SQLite file path")
    packets.add_argument("--as-of", type=_date, default=None, help="as-of date (default: today)")
    packets.add_argument(
        "--practice",
        action="append",
        default=None,
        metavar="ID",
        help="only this practice (repeatable)",
    )
    packets.add_argument(
        "--client",
        action="append",
        default=None,
        metavar="ID",
        help="only this client (repeatable; needs exactly one --practice)",
    )
    packets.add_argument(
        "--out", type=Path, default=None, help="packets folder (default: data/packets)"
    )
    packets.add_argument("--config", type=Path, default=None, help="configuration file (YAML)")
    packets.add_argument(
        "--rebuild", action="store_true", help="rebuild packets that already exist"
    )
    packets.add_argument(
        "--demo",
        action="store_true",
        help="demo run: sign with the published demo key when no key is set",
    )
    _acceptance_parsers(sub)
    _backfill_parser(sub)
    _request_parser(sub)
    return parser


def _request_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    request = sub.add_parser(
        "request",
        help="answer a records request: one signed packet with the supporting documents",
        description="Build the answer to a records request: for --claims (all of one client), "
        "or --client with --from and --to (service dates, inclusive), a signed packet with a "
        "cover letter (the practice's letterhead), an index, only the documents that support "
        "those services and their compliance status rule by rule, written to "
        "<out>/<practice>/requests/<request_id>.zip (its path is printed). Signed as every "
        "packet: METAUDIT_PACKET_KEY, and METAUDIT_PACKET_SIGNING_KEY for auditors.",
    )
    request.add_argument("--source", required=True, help="SQLAlchemy URL or a SQLite file path")
    request.add_argument("--practice", required=True, metavar="ID")
    request.add_argument("--reference", required=True, help="the requester's reference")
    request.add_argument(
        "--claims", default=None, metavar="C1,C2", help="claim ids, separated by commas"
    )
    request.add_argument("--client", default=None, metavar="ID")
    request.add_argument("--from", dest="service_from", type=_date, default=None)
    request.add_argument("--to", dest="service_to", type=_date, default=None)
    request.add_argument(
        "--as-of",
        type=_date,
        default=None,
        help="records as of this date (default: the practice's latest audit in the data folder)",
    )
    request.add_argument(
        "--out", type=Path, default=None, help="packets folder (default: data/packets)"
    )
    request.add_argument(
        "--results", type=Path, default=None, help="audit results folder (default: data/results)"
    )
    request.add_argument("--config", type=Path, default=None, help="configuration file (YAML)")
    request.add_argument(
        "--demo",
        action="store_true",
        help="demo run: sign with the published demo keys when no key is set",
    )


def _backfill_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    backfill = sub.add_parser(
        "backfill",
        help="record the audits of earlier dates in the results store (history, trend)",
        description="Audit earlier as-of dates of the source, from --to back to --from every "
        "--every days, and record each date in the results store as the nightly run does "
        "(findings, exposure, filing deadlines, staff and payer, the practice's status, the "
        "findings history): the dashboard's trend and the next morning email then count "
        "them. No email is sent and no packet is built. Dates the store has results for "
        "already are skipped unless --replace. Exit 0 when every date was recorded, 1 when "
        "some practice of some date failed (the others are recorded), 2 when it cannot run.",
    )
    backfill.add_argument("--source", required=True, help="SQLAlchemy URL or a SQLite file path")
    backfill.add_argument(
        "--from", dest="first", required=True, type=_date, help="earliest as-of date"
    )
    backfill.add_argument("--to", dest="last", required=True, type=_date, help="latest as-of date")
    backfill.add_argument(
        "--every",
        type=int,
        default=7,
        metavar="DAYS",
        help="days between the dates, counted back from --to (default 7: weekly)",
    )
    backfill.add_argument(
        "--practice",
        action="append",
        default=None,
        metavar="ID",
        help="only this practice (repeatable)",
    )
    backfill.add_argument(
        "--store",
        default=None,
        help="results store URL (default: the met_results_db connection, else data/)",
    )
    backfill.add_argument("--config", type=Path, default=None, help="configuration file (YAML)")
    backfill.add_argument(
        "--replace",
        action="store_true",
        help="audit again the dates the store has results for (replacing them)",
    )


def _acceptance_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    store_help = "results store URL (default: the met_results_db connection, else data/)"
    accept = sub.add_parser(
        "accept",
        help="accept a finding until a date (a compliance lead's exception)",
        description="Accept one finding of a practice, by fingerprint, until a date: it leaves "
        "the open counts of the email and the dashboard for the audit dates up to then. The "
        "acceptance goes to the results store's append-only trail under --user (the web page "
        "records the signed-in Airflow user instead).",
    )
    withdraw = sub.add_parser("withdraw", help="withdraw a finding's acceptance")
    trail = sub.add_parser("acceptances", help="list a practice's acceptance trail")
    for command in (accept, withdraw, trail):
        command.add_argument("--practice", required=True, metavar="ID")
        command.add_argument("--store", default=None, help=store_help)
    for command in (accept, withdraw):
        command.add_argument("--fingerprint", required=True)
        command.add_argument("--user", required=True, help="who accepts or withdraws")
    accept.add_argument("--reason", required=True, help="why (e.g. the payer's exception)")
    accept.add_argument("--until", required=True, type=_date, help="last audit date covered")
    withdraw.add_argument("--reason", default="", help="why (optional)")
    trail.add_argument("--fingerprint", default=None, help="only this finding")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # A command's process holds pandas and Great Expectations: its exit need not walk
    # them all once more (about a second after a large check).
    skip_final_collection()
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
            return _verify(args)
        if args.command == "packets":
            return _packets(args)
        if args.command in ("accept", "withdraw", "acceptances"):
            return _acceptance(args)
        if args.command == "backfill":
            return _backfill(args)
        if args.command == "request":
            return _request(args)
    except MetAuditError as exc:
        print(f"metaudit {args.command}: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    return EXIT_CANNOT_RUN


def _acceptance(args: argparse.Namespace) -> int:
    from metaudit.pipeline.connections import results_url
    from metaudit.results import session

    with session(args.store or results_url()) as store:
        if args.command == "accept":
            made = store.accept_finding(
                args.practice,
                args.fingerprint,
                user_name=args.user,
                reason=args.reason,
                until=args.until,
            )
            print(f"accepted until {made.until} by {made.accepted_by}: {args.fingerprint}")
        elif args.command == "withdraw":
            store.withdraw_acceptance(
                args.practice, args.fingerprint, user_name=args.user, reason=args.reason
            )
            print(f"acceptance withdrawn by {args.user}: {args.fingerprint}")
        else:
            for event in store.acceptance_trail(args.practice, args.fingerprint):
                row = {
                    "recorded_at": event.recorded_at.isoformat(),
                    "action": event.action,
                    "user": event.user_name,
                    "fingerprint": event.fingerprint,
                    "until": event.until.isoformat() if event.until else None,
                    "reason": event.reason,
                }
                print(json.dumps(row))
    return EXIT_OK


def _backfill(args: argparse.Namespace) -> int:
    from metaudit.pipeline.backfill import BackfillFailedError, backfill, backfill_dates
    from metaudit.pipeline.connections import results_url

    # The range is checked before the source or the store is opened.
    dates = backfill_dates(args.first, args.last, args.every)
    store_url = args.store or results_url()
    _progress(
        f"backfilling {len(dates)} date(s) from {dates[0].isoformat()} to "
        f"{dates[-1].isoformat()} into {store_url}"
    )
    started = time.perf_counter()
    try:
        done = backfill(
            str(args.source),
            store_url,
            dates,
            wanted=args.practice,
            replace=args.replace,
            config=str(args.config) if args.config else None,
            progress=_progress,
        )
    except BackfillFailedError as exc:
        print(f"metaudit backfill: {exc}", file=sys.stderr)
        return EXIT_FAILED
    recorded = sum(1 for item in done if item.findings)
    _progress(
        f"{recorded} date(s) recorded, {len(done) - recorded} already recorded, in "
        f"{time.perf_counter() - started:.1f}s"
    )
    return EXIT_OK


def _progress(message: str) -> None:
    print(f"metaudit: {message}", file=sys.stderr, flush=True)


def _check(args: argparse.Namespace) -> int:
    from metaudit.check.deadlines import write_deadlines
    from metaudit.check.engine import run_check
    from metaudit.check.exposure import write_exposure
    from metaudit.paths import private_dir, write_atomic
    from metaudit.spec.findings import write_findings
    from metaudit.spec.rulebook import SEVERITY_ORDER
    from metaudit.spec.settings import Settings

    settings = Settings.load(args.config)
    started = time.perf_counter()
    result = run_check(
        args.source,
        as_of=args.as_of,
        practice_ids=args.practice,
        settings=settings,
        progress=_progress,
    )
    private_dir(args.out)
    jsonl, csv_path = write_findings(result.findings, args.out)
    if result.exposure is not None:
        write_exposure(result.exposure, args.out)
    if result.deadlines is not None:
        write_deadlines(result.deadlines, args.out)
    validation_dir = args.out / "validation"
    for family, validation in result.validations.items():
        # GX results quote raw values of the records: written owner-only.
        write_atomic(
            validation_dir / f"{family.lower()}.json",
            json.dumps(validation.results, indent=1, sort_keys=True, allow_nan=False),
        )
    counts: dict[str, int] = {}
    for finding in result.findings:
        counts[finding.severity] = counts.get(finding.severity, 0) + 1
    summary = ", ".join(f"{counts.get(s, 0)} {s}" for s in SEVERITY_ORDER)
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


def _verify(args: argparse.Namespace) -> int:
    from metaudit.errors import SettingsError
    from metaudit.packets import verify_packet
    from metaudit.packets.verify import CLIENT, PRACTICE, PacketPlace

    place = None
    if args.practice or args.client or args.as_of or args.month:
        if args.practice and args.client and args.as_of and not args.month:
            place = PacketPlace(
                CLIENT, args.practice, client_id=args.client, as_of=args.as_of.isoformat()
            )
        elif args.practice and args.month and not (args.client or args.as_of):
            place = PacketPlace(PRACTICE, args.practice, month=args.month)
        else:
            raise SettingsError(
                "say what the packet is: --practice, --client and --as-of for a client "
                "packet, or --practice and --month for a practice packet"
            )
    public_keys = None
    if args.public_key:
        from metaudit.packets.keypair import configured_public_keys, load_public_keys

        public_keys = []
        for path in args.public_key:
            try:
                text = path.read_bytes()
            except OSError as exc:
                raise SettingsError(f"cannot read the public key file {path}: {exc}") from None
            public_keys.extend(load_public_keys(text, where=str(path)))
        public_keys.extend(configured_public_keys())
    check = verify_packet(args.packet, place=place, public_keys=public_keys)
    if check.intact:
        print(check.summary())
        return EXIT_OK
    print(f"{args.packet}: NOT intact ({len(check.problems)} problem(s)):", file=sys.stderr)
    for problem in check.problems:
        print(f"  {problem}", file=sys.stderr)
    return EXIT_FAILED


def _packets(args: argparse.Namespace) -> int:
    from metaudit.check.engine import load_source
    from metaudit.errors import SettingsError
    from metaudit.packets import build_practice_packets
    from metaudit.packets.keypair import resolve_signing_key
    from metaudit.packets.signing import resolve_key
    from metaudit.pipeline.stages import list_practices
    from metaudit.spec.settings import Settings

    if args.client and (not args.practice or len(args.practice) != 1):
        raise SettingsError("--client needs exactly one --practice")
    # Refuse before reading anything.
    resolve_key(None, demo=args.demo)
    resolve_signing_key(None, demo=args.demo)
    as_of = args.as_of or date.today()
    practices = list_practices(str(args.source), args.practice)
    _progress(f"reading and typing the source as of {as_of.isoformat()}")
    settings = Settings.load(args.config)
    typed = load_source(args.source, as_of, statement_timeout_s=settings.statement_timeout_s)
    for practice_id in practices:
        _progress(f"practice {practice_id}: checking and building packets")
        summary = build_practice_packets(
            str(args.source),
            practice_id,
            as_of,
            packets_dir=args.out,
            demo=args.demo,
            rebuild=args.rebuild,
            client_ids=args.client,
            config=args.config,
            typed=typed,
        )
        _progress(
            f"practice {practice_id}: {summary['client_packets']} client packet(s) {summary['states']} "
            f"in {summary['folder']}; practice packet {summary['practice_packet']}"
        )
    return EXIT_OK


def _request(args: argparse.Namespace) -> int:
    from metaudit.errors import SettingsError
    from metaudit.packets.request import (
        RecordsRequest,
        build_request_packet,
        latest_audit_date,
        parse_claim_ids,
    )

    if args.claims is not None and (args.client or args.service_from or args.service_to):
        raise SettingsError("give --claims, or --client with --from and --to, not both")
    request = RecordsRequest(
        practice_id=args.practice,
        reference=args.reference,
        claim_ids=parse_claim_ids(args.claims or ""),
        client_id=args.client,
        service_from=args.service_from,
        service_to=args.service_to,
    )
    as_of = args.as_of
    if as_of is None:
        latest = latest_audit_date(args.practice, args.results)
        if latest is None:
            raise SettingsError(
                f"no audit of practice {args.practice} in the results folder: give --as-of"
            )
        as_of = date.fromisoformat(latest)
    packet = build_request_packet(
        str(args.source),
        request,
        as_of,
        packets_dir=args.out,
        results_root=args.results,
        demo=args.demo,
        config=args.config,
    )
    _progress(
        f"records request {packet.request_id}: client {packet.client_id}, "
        f"{packet.documents} document(s), records as of {packet.as_of}, sha256 {packet.sha256}"
    )
    print(packet.path)
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
