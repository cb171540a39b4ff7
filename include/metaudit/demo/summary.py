"""Print where a demo run left its results and a short summary per practice.

Reads the results store (the run's per-practice status, each practice's digest:
new, still open, resolved, and the dashboard's figures: the money at risk, the
audit dates of its 90-day trend, the accepted findings), the mail outbox (the
morning email of each practice) and the packets folder, and ends with the command
that checks a packet. ``--demo-finding PRACTICE`` prints instead the fingerprint
of the finding the demo accepts (``make demo`` passes it to ``metaudit accept``).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, TextIO
from urllib.parse import urlencode

from metaudit.paths import OUTBOX_FOLDER, UNATTRIBUTED_FILE

if TYPE_CHECKING:
    from metaudit.mail.outbox import Outbox
    from metaudit.results import ResultsStore
    from metaudit.spec.settings import Settings


@dataclass(frozen=True)
class AcceptedFinding:
    fingerprint: str
    rule_id: str
    entity_id: str
    accepted_by: str
    until: str


@dataclass(frozen=True)
class PracticeFigures:
    """A practice's dashboard figures on one audit date, from the dashboard's queries."""

    practice_id: str
    as_of: date
    by_class: dict[str, int]  # open exposure per money class, cents
    audit_dates: list[date]  # the audit dates of the 90-day trend, oldest first
    accepted: list[AcceptedFinding]

    @property
    def money_at_risk(self) -> int:
        return sum(self.by_class.values())

    @property
    def dashboard_path(self) -> str:
        from metaudit.web.app import PREFIX

        return f"{PREFIX}/dashboard?{urlencode({'practice_id': self.practice_id})}"


def practice_figures(store: ResultsStore, practice_id: str, day: date) -> PracticeFigures:
    """What the dashboard shows of the practice on ``day``: the same queries."""
    from metaudit.results.dashboard import HISTORY_DAYS

    accepted = store.acceptances(practice_id, day)
    findings = {f.fingerprint: f for f in store.findings(day, practice_id)}
    return PracticeFigures(
        practice_id=practice_id,
        as_of=day,
        by_class=store.exposure_by_class(practice_id, day),
        audit_dates=[d.as_of for d in store.open_by_severity(practice_id, day, HISTORY_DAYS)],
        accepted=[
            AcceptedFinding(
                fingerprint=fp,
                rule_id=findings[fp].rule_id,
                entity_id=findings[fp].entity_id,
                accepted_by=item.accepted_by,
                until=item.until,
            )
            for fp, item in sorted(accepted.items())
            if fp in findings
        ],
    )


def demo_finding(
    store: ResultsStore, practice_id: str, day: date, since: date | None = None
) -> str | None:
    """The finding the demo accepts: the practice's finding of the date with the most
    money at stake (then the first in the findings' order), so that the dashboard's
    money visibly drops; the same finding on every demo of the same network, so a
    second ``make demo`` renews its acceptance. With ``since``, one found on that date
    too when there is one: a long-standing finding, which the next dates still have (a
    reassessment coming due this week is gone once it is done). None when the date has
    no findings."""
    findings = store.findings(day, practice_id)
    if since is not None:
        known = {f.fingerprint for f in store.findings(since, practice_id)}
        findings = [f for f in findings if f.fingerprint in known] or findings
    if not findings:
        return None
    exposure = store.exposure(day, practice_id)

    def at_stake(fingerprint: str) -> int:
        money = exposure.get(fingerprint)
        if money is None:
            return 0
        return money.fix_before_billing + money.in_flight + money.recoupment_risk

    # max keeps the first of equals: the findings come in their sort order.
    return max(findings, key=lambda f: at_stake(f.fingerprint)).fingerprint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m metaudit.demo.summary")
    parser.add_argument("--data", type=Path, required=True, help="the project's data folder")
    parser.add_argument("--as-of", required=True, help="the run's as-of date, YYYY-MM-DD")
    parser.add_argument("--db", type=Path, required=True, help="the demo source database")
    parser.add_argument(
        "--results-url", help="the results store (default: results.sqlite in the data folder)"
    )
    parser.add_argument(
        "--demo-finding",
        metavar="PRACTICE",
        help="print only the fingerprint of the practice's finding the demo accepts",
    )
    parser.add_argument(
        "--known-since",
        metavar="DATE",
        help="with --demo-finding: prefer a finding the store also has on this earlier date",
    )
    args = parser.parse_args(argv)
    if args.demo_finding:
        since = date.fromisoformat(args.known_since) if args.known_since else None
        return print_demo_finding(
            args.data, args.as_of, args.demo_finding, args.results_url, sys.stdout, since
        )
    return write_summary(args.data, args.as_of, args.db, args.results_url, sys.stdout)


def print_demo_finding(
    data: Path,
    as_of: str,
    practice_id: str,
    results_url: str | None,
    out: TextIO,
    since: date | None = None,
) -> int:
    """Print :func:`demo_finding`'s fingerprint; 1 (and a message) when there is none."""
    from metaudit.results import default_url, session

    with session(results_url or default_url(data)) as store:
        fingerprint = demo_finding(store, practice_id, date.fromisoformat(as_of), since)
    if fingerprint is None:
        print(f"practice {practice_id} has no findings as of {as_of}", file=sys.stderr)
        return 1
    out.write(fingerprint + "\n")
    return 0


def shown(path: Path) -> str:
    """A path as a reader types it: relative to the current folder when it is inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def write_summary(data: Path, as_of: str, db: Path, results_url: str | None, out: TextIO) -> int:
    """Write the summary; 1 when the store holds no results for the date."""
    from metaudit.mail.outbox import DIGEST, Outbox
    from metaudit.packets import packet_options
    from metaudit.results import default_url, session
    from metaudit.spec.settings import Settings

    day = date.fromisoformat(as_of)
    results = data / "results" / as_of
    outbox = Outbox(data / OUTBOX_FOLDER)
    settings = Settings.load(None)
    packets_dir = packet_options(settings, _packets_dir(settings, data)).packets_dir
    url = results_url or default_url(data)
    out.write(f"\nMET Audit demo, as of {as_of}\n")
    out.write(f"  source database : {shown(db)}\n")
    truth = db.with_suffix(".truth.jsonl")
    if truth.exists():
        out.write(f"  injected defects: {shown(truth)}\n")
    out.write(f"  results         : {shown(results)}\n")
    out.write(f"  results store   : {url}\n")
    out.write(f"  emails (outbox) : {shown(outbox.root / as_of)}\n")
    out.write(f"  audit packets   : {shown(packets_dir)}\n\n")

    sample: Path | None = None
    accepted_any = False
    with session(url) as store:
        rows = store.practice_runs(day)
        if not rows:
            out.write("  no results stored for this date: see airflow_home/dags-test.log\n")
            return 1
        for row in sorted(rows, key=lambda r: (r["practice_id"] is None, r["practice_id"] or "")):
            practice_id = row["practice_id"]
            if practice_id is None:
                if row["findings"]:
                    out.write(
                        f"  without a practice (rows whose parent is missing): "
                        f"{row['findings']} findings\n      {shown(results / UNATTRIBUTED_FILE)}\n\n"
                    )
                continue
            if row["status"] != "success":
                out.write(f"  {practice_id}: FAILED: {row['error'] or 'see the task log'}\n")
                if not row["has_results"]:
                    continue
            findings = store.findings(day, practice_id)
            digest = store.digest(practice_id, day)
            rules = Counter(f.rule_id for f in findings)
            top = ", ".join(f"{rule} x{n}" for rule, n in rules.most_common(5))
            csv = Path(row["results_dir"] or results / practice_id) / "findings.csv"
            out.write(
                f"  {practice_id} ({digest.practice_name}): {row['findings']} findings "
                f"({row['critical']} critical, {row['warning']} warning, {row['notice']} notice); "
                f"{len(digest.new)} new, {len(digest.still_open)} still open, "
                f"{len(digest.resolved)} resolved, {len(digest.due_soon)} due within a week\n"
                f"      most frequent: {top or 'none'}\n"
                f"      findings: {shown(csv)}\n"
            )
            figures = practice_figures(store, practice_id, day)
            out.write(_figure_lines(figures))
            out.write(_email_lines(outbox, DIGEST, as_of, practice_id))
            packets, lines = _packet_lines(packets_dir, practice_id, as_of)
            out.write(lines + "\n")
            sample = sample or (packets[0] if packets else None)
            accepted_any = accepted_any or bool(figures.accepted)
    if accepted_any:
        out.write(
            "  The demo's compliance lead accepted a finding of the week before (make demo,\n"
            "  before the nightly run): the morning email lists it as accepted, apart from its\n"
            "  open counts and money, and so does the dashboard.\n"
        )
    out.write(
        "  Dashboard: `make ui`, then http://localhost:8080 + the path above (Browse >\n"
        "  Compliance dashboard).\n"
    )
    if sample is not None:
        out.write(_verify_hint(sample))
    return 0


def _figure_lines(figures: PracticeFigures) -> str:
    """The practice's dashboard figures: money at risk, trend, accepted findings, link."""
    from metaudit.mail.content import money
    from metaudit.results.dashboard import HISTORY_DAYS

    classes = ", ".join(
        f"{name.replace('_', ' ')} {money(cents)}" for name, cents in figures.by_class.items()
    )
    dates = figures.audit_dates
    span = f" ({dates[0].isoformat()} .. {dates[-1].isoformat()})" if dates else ""
    lines = (
        f"      at risk : {money(figures.money_at_risk)} open exposure ({classes})\n"
        f"      trend   : {len(dates)} audit date(s) in the last {HISTORY_DAYS} days{span}\n"
    )
    if not figures.accepted:
        lines += "      accepted: none\n"
    for item in figures.accepted:
        lines += (
            f"      accepted: {item.rule_id} on {item.entity_id}, by {item.accepted_by} "
            f"until {item.until} ({item.fingerprint})\n"
        )
    return lines + f"      dashboard: {figures.dashboard_path}\n"


def _packets_dir(settings: Settings, data: Path) -> Path | None:
    """``<data>/packets`` unless the configuration's ``packets.dir`` or METAUDIT_PACKETS_DIR
    names the folder (None: let the packets' own rule pick it, as the DAG did)."""
    from metaudit import config

    section = settings.sections.get("packets")
    configured = section.get("dir") if isinstance(section, dict) else None
    return None if configured or config.packets_dir() else data / "packets"


def _email_lines(outbox: Outbox, kind: str, as_of: str, practice_id: str) -> str:
    """Where the practice's morning email is, its state and subject."""
    record = outbox.load(kind, as_of, practice_id)
    if record is None:
        return "      email   : none (the notify task did not run; see the log)\n"
    paths = outbox.paths(kind, as_of, practice_id)
    where = shown(paths.eml) if record.eml else shown(paths.record)
    subject = (record.message or {}).get("subject")
    line = f"      email   : {where} ({record.state})\n"
    return line + (f"                {subject}\n" if subject else "")


def _packet_lines(packets_dir: Path, practice_id: str, as_of: str) -> tuple[list[Path], str]:
    """The practice's client packets of the date and its month packet."""
    from metaudit.packets import client_packet_path, practice_packet_path

    folder = client_packet_path(packets_dir, practice_id, as_of, "x").parent
    packets = sorted(folder.glob("*.zip")) if folder.is_dir() else []
    month = practice_packet_path(packets_dir, practice_id, as_of)
    if not packets and not month.exists():
        return [], "      packets : none (the build_packets task did not run; see the log)\n"
    lines = f"      packets : {shown(folder)}/ ({len(packets)} client packets)\n"
    if month.exists():
        lines += f"                {shown(month)} (the practice's month to date)\n"
    return packets, lines


def _verify_hint(packet: Path) -> str:
    """How to check a packet, with the key it was signed with when that is the demo key."""
    from metaudit.config import DEMO_ENV
    from metaudit.packets import DEMO_PACKET_KEY, KEY_ENV
    from metaudit.packets.build import read_manifest

    command = shown(Path(sys.executable).parent / "metaudit")
    manifest = read_manifest(packet)
    auditor = (
        "      or with no key, as an auditor does: unzip it and run the commands of its "
        "VERIFY.txt (openssl, sha256sum)\n"
        if manifest.get("ed25519_key_id")
        else ""
    )
    if manifest.get("demo_key"):
        # Only `make demo` prints the demo key, and only with METAUDIT_DEMO=1: outside the
        # demo, `verify` refuses demo signatures (anybody can make one).
        env = f"{DEMO_ENV}=1 {KEY_ENV}={DEMO_PACKET_KEY.decode('ascii')}"
        note = "signed with the published demo key, which proves nothing outside the demo"
    else:
        env = f"{KEY_ENV}=<the deployment's packet key>"
        note = f"signed with the key from connection met_packet_key or {KEY_ENV}"
    return (
        f"  Check a packet ({note}):\n"
        f"      {env} {command} verify {shown(packet)}\n"
        f"{auditor}"
        "  Open an email: any .eml above opens in a mail program.\n"
    )


if __name__ == "__main__":
    raise SystemExit(main())
