"""The morning email's content, built by pure functions from a :class:`PracticeDigest`.

Nothing here touches the network or the disk: :func:`build_email` turns a
digest into an :class:`OutgoingEmail` (subject, HTML, plain text, recipients,
SendGrid categories and custom args) that the outbox stores and the SendGrid
client posts. Tests assert the content here, and the payload at the edge.

What a compliance lead reads, in order: the money the open findings put at
risk, per class (fix before billing, in flight, recoupment risk), the counts,
links to the run and to the practice's audit packets, the draft claims that
fail a critical rule (fix them before billing), the draft claims whose
timely-filing deadline falls within the week, the new findings (by severity,
grouped by rule with the rule's plain meaning and how to fix it, each record by
its id), what is still open (per rule, with the oldest), what was resolved since
the last run, what comes due within the week, and the findings accepted (by a
compliance lead, until a date: not counted as open while the acceptance holds). Within each severity, rules
and their records come by exposure, largest first (ties in the order by rule
id, and by due date, client and record id). The money parts appear when the
digest carries exposure (the results store has it for the date).

Minimum necessary: the email names records and clients by id only. Findings'
messages are the rulebook's sentences, which carry ids, dates and static
phrases; the practice name is the only free text, and every value is escaped. An
acceptance's reason is free text typed by staff (it may name a person or a
diagnosis), so the email says only which finding is accepted, by whom and until
when: the reason stays on the dashboard and in the packets.

The HTML is made for mail programs: tables for layout, inline styles only, 600
px wide, and kept under :data:`MAX_HTML_BYTES` (Gmail clips larger messages) by
listing fewer records per rule when a night brings very many.
"""

from __future__ import annotations

import html
import logging
import textwrap
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode, urlsplit

from metaudit import config
from metaudit.results.digest import FilingDeadline, FindingExposure, PracticeDigest, TrackedFinding
from metaudit.spec.findings import SEVERITY_RANK, Finding
from metaudit.spec.rulebook import RULES, SEVERITY_MEANINGS, SEVERITY_ORDER, entity_label

log = logging.getLogger(__name__)

MAX_HTML_BYTES = 100_000
DUE_LIST_LIMIT = 50
FIX_BEFORE_BILLING_LIMIT = 50
RESOLVED_PER_RULE_LIMIT = 10
ACCEPTED_LIST_LIMIT = 50
SUBJECT_PREFIX = "[MET Audit]"
TEXT_WIDTH = 76

# One palette, high contrast on white (WCAG AA for the text colours).
INK = "#101828"
MUTED = "#475467"
RULE_LINE = "#d0d5dd"
PAGE = "#f2f4f7"
BRAND = "#1d3b5a"
SEVERITY_COLOURS = {"critical": "#b42318", "warning": "#b54708", "notice": "#175cd3"}
SEVERITY_TINTS = {"critical": "#fef3f2", "warning": "#fffaeb", "notice": "#eff8ff"}
GOOD = "#067647"
# The money classes of metaudit.check.exposure, as the email names them.
MONEY_CLASS_LABELS = {
    "fix_before_billing": "fix before billing",
    "in_flight": "in flight",
    "recoupment_risk": "recoupment risk",
}
FILING_HEADING = "Timely filing deadlines this week"
FILING_NOTE = (
    "Draft claims not yet submitted whose filing limit (the policy's, else the payer's) "
    "runs out within 7 days: submit them by the date."
)
MONEY_NOTE = (
    "Charges of the claim lines the open findings touch (paid claims: the paid amount); "
    "a line touched by several findings counts for each."
)
FONT = "Arial,Helvetica,sans-serif"
MONO = "Consolas,Menlo,'Courier New',monospace"


@dataclass(frozen=True)
class OutgoingEmail:
    """A message ready for the outbox and SendGrid: content, addresses and tags.

    ``to`` holds ``"Name <user@host>"`` or bare addresses; an empty ``to`` is
    allowed only in the local outbox (the .eml then reads
    ``undisclosed-recipients``). ``custom_args`` travel with the message
    through SendGrid (its activity feed and event webhooks show them).
    """

    subject: str
    html: str
    text: str
    to: tuple[str, ...]
    sender: str
    categories: tuple[str, ...] = ()
    custom_args: dict[str, str] = field(default_factory=dict)
    reply_to: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The message as JSON-ready data (the outbox record keeps it)."""
        return {
            "subject": self.subject,
            "sender": self.sender,
            "to": list(self.to),
            "reply_to": self.reply_to,
            "categories": list(self.categories),
            "custom_args": dict(self.custom_args),
            "text": self.text,
            "html": self.html,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OutgoingEmail:
        """A message back from :meth:`to_dict`."""
        return cls(
            subject=str(data["subject"]),
            html=str(data["html"]),
            text=str(data["text"]),
            to=tuple(str(x) for x in data.get("to") or ()),
            sender=str(data["sender"]),
            categories=tuple(str(x) for x in data.get("categories") or ()),
            custom_args={str(k): str(v) for k, v in (data.get("custom_args") or {}).items()},
            reply_to=data.get("reply_to"),
        )


@dataclass(frozen=True)
class DigestCounts:
    """The numbers of the subject line and the summary tiles."""

    new: int
    new_critical: int
    open: int
    open_by_severity: dict[str, int]
    due_soon: int
    resolved: int
    accepted: int = 0

    @property
    def nothing_to_report(self) -> bool:
        """No finding open, none due, none resolved: the all-clear case."""
        return not (self.open or self.due_soon or self.resolved)


def count_digest(digest: PracticeDigest) -> DigestCounts:
    """Count a digest the way the subject reads it: open = new + still open (the
    accepted findings are in neither: the store leaves them out while accepted)."""
    open_items = [t.finding for t in (*digest.new, *digest.still_open)]
    by_severity = dict.fromkeys(SEVERITY_ORDER, 0)
    for finding in open_items:
        by_severity[finding.severity] = by_severity.get(finding.severity, 0) + 1
    return DigestCounts(
        new=len(digest.new),
        new_critical=sum(1 for t in digest.new if t.finding.severity == "critical"),
        open=len(open_items),
        open_by_severity=by_severity,
        due_soon=len(digest.due_soon),
        resolved=len(digest.resolved),
        accepted=len(digest.accepted),
    )


def money(cents: int) -> str:
    """Integer cents as dollars: 123456 -> "$1,234.56", -5 -> "-$0.05" (exact, no floats)."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(int(cents)), 100)
    return f"{sign}${whole:,}.{part:02d}"


def exposure_totals(digest: PracticeDigest) -> dict[str, int]:
    """The open findings' (new and still open) exposure summed per money class, in cents."""
    totals = dict.fromkeys(MONEY_CLASS_LABELS, 0)
    for t in (*digest.new, *digest.still_open):
        exposure = digest.exposure_of(t.finding)
        for name in totals:
            totals[name] += getattr(exposure, name)
    return totals


@dataclass(frozen=True)
class DraftClaimItem:
    """A draft claim failing a critical rule: the finding and its draft lines' charges."""

    claim_id: str
    finding: Finding
    amount: int


def fix_before_billing(digest: PracticeDigest) -> list[DraftClaimItem]:
    """The open critical findings on draft claims (a claim, its line or diagnosis), with
    the draft charges at risk: largest first, then by claim, rule and record id."""
    items = []
    for t in (*digest.new, *digest.still_open):
        exposure = digest.exposure_of(t.finding)
        if (
            t.finding.severity == "critical"
            and exposure.claim_id
            and exposure.fix_before_billing > 0
        ):
            items.append(DraftClaimItem(exposure.claim_id, t.finding, exposure.fix_before_billing))
    return sorted(
        items, key=lambda i: (-i.amount, i.claim_id, i.finding.rule_id, i.finding.entity_id)
    )


def one_line(value: str, limit: int = 120) -> str:
    """Text fit for a header: control characters dropped, blanks collapsed, length capped."""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in value)
    cleaned = " ".join(cleaned.split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1].rstrip() + "…"


def display_name(digest: PracticeDigest, configured: str | None = None) -> str:
    """The practice as the subject names it: the configured name, the source's, else its id."""
    for candidate in (configured, digest.practice_name, digest.practice_id):
        if candidate and one_line(candidate):
            return one_line(candidate, 80)
    return "practice"


def build_subject(digest: PracticeDigest, practice_name: str | None = None) -> str:
    """``[MET Audit] Riverside Medical Exercise: 3 new critical, 12 open, 4 due this week (2026-03-31)``.

    Leads with new critical findings; when none is critical but some are new,
    with the number of new ones. A practice with nothing open or due reads
    "all clear" (with the number resolved, if any).
    """
    name = display_name(digest, practice_name)
    counts = count_digest(digest)
    if not (counts.open or counts.due_soon):
        resolved = f", {counts.resolved} resolved" if counts.resolved else ""
        return f"{SUBJECT_PREFIX} {name}: all clear{resolved} ({digest.as_of})"
    if counts.new_critical or not counts.new:
        first = f"{counts.new_critical} new critical"
    else:
        first = f"{counts.new} new"
    return (
        f"{SUBJECT_PREFIX} {name}: {first}, {counts.open} open, "
        f"{counts.due_soon} due this week ({digest.as_of})"
    )


# ------------------------------------------------------------------ links


def _web_url(url: str | None) -> str | None:
    """The URL when it is an http(s) address; anything else (javascript:, file:) is dropped."""
    if not url:
        return None
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        log.warning("link %r is not an http(s) address; left out of the email", url)
        return None
    return url.strip()


def run_url(
    digest: PracticeDigest, airflow_base_url: str | None, run_id: str | None = None
) -> str | None:
    """The run in the Airflow UI (the digest's own link wins), or the DAG's runs without a run id."""
    if digest.run_url:
        return _web_url(digest.run_url)
    url = config.run_url(airflow_base_url, run_id)
    return _web_url(url) if url else None


def packets_url(digest: PracticeDigest, packets_base_url: str | None) -> str | None:
    """The practice's audit packets page (the digest's own link wins)."""
    if digest.packets_url:
        return _web_url(digest.packets_url)
    if not packets_base_url:
        return None
    query = urlencode({"practice_id": digest.practice_id, "as_of": digest.as_of})
    return _web_url(f"{packets_base_url.rstrip('/')}/metaudit/packets?{query}")


# ------------------------------------------------------------------ grouping


@dataclass(frozen=True)
class RuleGroup:
    """The findings of one rule in one part of the email, in reading order."""

    rule_id: str
    severity: str
    title: str
    meaning: str
    fix: str
    items: tuple[TrackedFinding, ...]

    @property
    def oldest_first_seen(self) -> str:
        return min(t.first_seen for t in self.items)

    @property
    def oldest(self) -> TrackedFinding:
        return min(self.items, key=lambda t: (t.first_seen, t.finding.entity_id))


def _rule_text(rule_id: str) -> tuple[str, str, str]:
    rule = RULES.get(rule_id)
    if rule is None:
        # A findings file from a newer rulebook: still mail it, by id.
        log.warning("rule %s is not in this rulebook; mailed without its meaning", rule_id)
        return rule_id, "", ""
    return rule.title, rule.meaning, rule.fix


def _item_key(t: TrackedFinding) -> tuple[str, str, str]:
    f = t.finding
    return (f.due_date or "9999-99-99", f.client_id or "", f.entity_id)


def group_by_rule(
    items: Iterable[TrackedFinding], exposure: Callable[[Finding], FindingExposure] | None = None
) -> list[RuleGroup]:
    """Findings grouped by rule: severity first (critical, warning, notice), then rule id.

    Within a rule, records come by due date, client id, then record id. With
    ``exposure`` (a finding's money), rules of a severity come by the total exposure of
    their records and records by their own, largest first; ties keep the order above.
    """
    by_rule: dict[str, list[TrackedFinding]] = defaultdict(list)
    for item in items:
        by_rule[item.finding.rule_id].append(item)
    groups = []
    for rule_id, members in by_rule.items():
        title, meaning, fix = _rule_text(rule_id)
        groups.append(
            RuleGroup(
                rule_id=rule_id,
                severity=members[0].finding.severity,
                title=title,
                meaning=meaning,
                fix=fix,
                items=tuple(sorted(members, key=_item_key)),
            )
        )
    if exposure is not None:

        def at_risk(t: TrackedFinding) -> int:
            return exposure(t.finding).total

        groups = [
            replace(g, items=tuple(sorted(g.items, key=lambda t: -at_risk(t)))) for g in groups
        ]
        return sorted(
            groups,
            key=lambda g: (
                SEVERITY_RANK.get(g.severity, 9),
                -sum(at_risk(t) for t in g.items),
                g.rule_id,
            ),
        )
    return sorted(groups, key=lambda g: (SEVERITY_RANK.get(g.severity, 9), g.rule_id))


def due_items(digest: PracticeDigest) -> list[TrackedFinding]:
    """Notices coming due, soonest first."""
    return sorted(
        digest.due_soon,
        key=lambda t: (t.finding.due_date or "9999-99-99", t.finding.rule_id, t.finding.entity_id),
    )


def record_label(finding: Finding) -> str:
    """The record's name in a list ("Referral R-12"); its id when the type is unknown."""
    try:
        return entity_label(finding.entity_type, finding.entity_id)
    except ValueError:
        return finding.entity_id


def _names_other_client(finding: Finding) -> bool:
    """Whether the client id adds anything: not when the record named is the client itself."""
    return bool(finding.client_id) and finding.entity_type not in ("client", "client_date")


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


# ------------------------------------------------------------------ HTML

_e = html.escape


def _td(content: str, style: str = "", **attrs: str) -> str:
    extra = "".join(f' {k}="{_e(v)}"' for k, v in attrs.items())
    return f'<td style="{style}"{extra}>{content}</td>'


def _badge(severity: str) -> str:
    colour = SEVERITY_COLOURS.get(severity, MUTED)
    return (
        f'<span style="display:inline-block;padding:1px 6px;border:1px solid {colour};'
        f"color:{colour};font-size:11px;font-weight:bold;text-transform:uppercase;"
        f'letter-spacing:0.5px;border-radius:3px;">{_e(severity)}</span>'
    )


def _button(url: str, label: str) -> str:
    return (
        '<table role="presentation" cellpadding="0" cellspacing="0" border="0" '
        'style="display:inline-table;margin:0 8px 8px 0;"><tr>'
        f'<td style="background:{BRAND};border-radius:4px;">'
        f'<a href="{_e(url)}" style="display:inline-block;padding:9px 14px;color:#ffffff;'
        f'font-family:{FONT};font-size:14px;font-weight:bold;text-decoration:none;">'
        f"{_e(label)}</a></td></tr></table>"
    )


def _section_heading(title: str, note: str = "") -> str:
    note_html = (
        f'<div style="font-size:13px;color:{MUTED};margin-top:2px;">{_e(note)}</div>'
        if note
        else ""
    )
    return (
        f'<tr><td style="padding:22px 24px 6px 24px;border-top:1px solid {RULE_LINE};">'
        f'<div style="font-size:18px;font-weight:bold;color:{INK};">{_e(title)}</div>'
        f"{note_html}</td></tr>"
    )


def _tile(value: int | str, label: str, colour: str, width: str = "25%", size: int = 26) -> str:
    return _td(
        f'<div style="font-size:{size}px;font-weight:bold;color:{colour};line-height:30px;">'
        f"{_e(str(value))}</div>"
        f'<div style="font-size:12px;color:{MUTED};">{_e(label)}</div>',
        f"padding:10px 6px;text-align:center;border:1px solid {RULE_LINE};background:#ffffff;",
        width=width,
    )


def _more_line(hidden: int, where: str) -> str:
    return (
        f'<tr><td style="padding:4px 0 0 0;font-size:13px;color:{MUTED};">'
        f"… and {_plural(hidden, 'more record')}: {_e(where)}</td></tr>"
    )


def _more_row(hidden: int, what: str, where: str) -> str:
    """The row under a block of the email that shows only its first items."""
    return (
        f'<tr><td style="padding:0 24px 8px 24px;font-size:13px;color:{MUTED};">'
        f"… and {_plural(hidden, what)}: {_e(where)}</td></tr>"
    )


def _at_risk(exposure: FindingExposure | None) -> str | None:
    """ "$1,234.56 at risk" for a finding with money at risk; None without."""
    if exposure is None or not exposure.total:
        return None
    return f"{money(exposure.total)} at risk"


def _finding_rows(
    items: Sequence[TrackedFinding],
    limit: int,
    where: str,
    exposure: Callable[[Finding], FindingExposure] | None = None,
) -> str:
    rows = []
    for t in items[:limit]:
        f = t.finding
        meta = (
            [f'client <span style="font-family:{MONO};">{_e(f.client_id or "")}</span>']
            if _names_other_client(f)
            else []
        )
        if f.due_date:
            meta.append(f"due <b>{_e(f.due_date)}</b>")
        risk = _at_risk(exposure(f) if exposure else None)
        if risk:
            meta.append(f"<b>{_e(risk)}</b>")
        meta_html = (
            f'<div style="font-size:12px;color:{MUTED};margin-top:2px;">{" · ".join(meta)}</div>'
            if meta
            else ""
        )
        rows.append(
            f'<tr><td style="padding:6px 0;border-top:1px solid {RULE_LINE};font-size:14px;'
            f'color:{INK};">{_e(f.message)}{meta_html}</td></tr>'
        )
    if len(items) > limit:
        rows.append(_more_line(len(items) - limit, where))
    return "".join(rows)


def _new_group_html(
    group: RuleGroup,
    limit: int,
    where: str,
    exposure: Callable[[Finding], FindingExposure] | None = None,
) -> str:
    colour = SEVERITY_COLOURS.get(group.severity, MUTED)
    tint = SEVERITY_TINTS.get(group.severity, PAGE)
    explain = ""
    if group.meaning:
        explain += (
            f'<div style="font-size:13px;color:{INK};margin-top:6px;">'
            f"<b>What it means:</b> {_e(group.meaning)}</div>"
        )
    if group.fix:
        explain += (
            f'<div style="font-size:13px;color:{INK};margin-top:4px;">'
            f"<b>How to fix:</b> {_e(group.fix)}</div>"
        )
    return (
        '<tr><td style="padding:8px 24px;">'
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" '
        f'style="border-left:4px solid {colour};background:{tint};">'
        '<tr><td style="padding:10px 12px;">'
        f'<div style="font-size:15px;font-weight:bold;color:{INK};">'
        f'<span style="font-family:{MONO};color:{colour};">{_e(group.rule_id)}</span> '
        f"{_e(group.title)} "
        f'<span style="font-weight:normal;color:{MUTED};">({_plural(len(group.items), "record")})</span>'
        f"</div>{explain}"
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" '
        'style="margin-top:8px;">'
        f"{_finding_rows(group.items, limit, where, exposure)}</table>"
        "</td></tr></table></td></tr>"
    )


def _table_html(header: Sequence[str], rows: Iterable[Sequence[str]], widths: Sequence[str]) -> str:
    """A simple data table; cells arrive escaped."""
    head = "".join(
        _td(
            _e(h),
            f"padding:6px 8px;font-size:12px;font-weight:bold;color:{MUTED};"
            f"border-bottom:2px solid {RULE_LINE};text-align:left;",
            width=w,
        )
        for h, w in zip(header, widths, strict=True)
    )
    body = "".join(
        "<tr>"
        + "".join(
            _td(
                cell,
                f"padding:6px 8px;font-size:13px;color:{INK};border-bottom:1px solid {RULE_LINE};vertical-align:top;",
            )
            for cell in row
        )
        + "</tr>"
        for row in rows
    )
    return (
        '<tr><td style="padding:4px 24px 8px 24px;">'
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" '
        f'style="border-collapse:collapse;">{"<tr>" + head + "</tr>"}{body}</table></td></tr>'
    )


def _mono(text: str | None) -> str:
    return f'<span style="font-family:{MONO};">{_e(text or "")}</span>'


@dataclass(frozen=True)
class _Parts:
    """Everything both renderings need, computed once."""

    name: str
    subject: str
    preheader: str
    counts: DigestCounts
    new_groups: list[RuleGroup]
    open_groups: list[RuleGroup]
    resolved_groups: list[RuleGroup]
    due: list[TrackedFinding]
    run_link: str | None
    packets_link: str | None
    where_more: str
    # The money parts: None and empty when the digest carries no exposure.
    money_totals: dict[str, int] | None = None
    draft_claims: list[DraftClaimItem] = field(default_factory=list)
    filing_deadlines: list[FilingDeadline] = field(default_factory=list)
    exposure: Callable[[Finding], FindingExposure] | None = None
    # (finding, until, accepted by) of each accepted finding; never the reason.
    accepted: list[tuple[Finding, str, str]] = field(default_factory=list)

    def group_at_risk(self, group: RuleGroup) -> str | None:
        """The rule's records' money at risk, as the email shows it; None without any."""
        if self.exposure is None:
            return None
        exposure = self.exposure
        total = sum(exposure(t.finding).total for t in group.items)
        return money(total) if total else None


def _parts(
    digest: PracticeDigest,
    practice_name: str | None,
    airflow_base_url: str | None,
    packets_base_url: str | None,
    run_id: str | None,
) -> _Parts:
    counts = count_digest(digest)
    run_link = run_url(digest, airflow_base_url, run_id)
    packets_link = packets_url(digest, packets_base_url)
    where = (
        "see the practice's audit packets page" if packets_link else "see the run's findings.csv"
    )
    if counts.nothing_to_report:
        preheader = "All clear: nothing open and nothing due this week."
    else:
        preheader = (
            f"{counts.new_critical} new critical, {counts.new} new in all, {counts.open} open, "
            f"{counts.due_soon} due this week, {counts.resolved} resolved."
        )
    exposure = digest.exposure_of if digest.exposure else None
    return _Parts(
        name=display_name(digest, practice_name),
        subject=build_subject(digest, practice_name),
        preheader=preheader,
        counts=counts,
        new_groups=group_by_rule(digest.new, exposure),
        open_groups=group_by_rule(digest.still_open, exposure),
        resolved_groups=group_by_rule(digest.resolved),
        due=due_items(digest),
        run_link=run_link,
        packets_link=packets_link,
        where_more=where,
        money_totals=exposure_totals(digest) if exposure else None,
        draft_claims=fix_before_billing(digest) if exposure else [],
        filing_deadlines=sorted(digest.filing_deadlines, key=lambda d: (d.deadline, d.claim_id)),
        exposure=exposure,
        accepted=accepted_items(digest),
    )


def accepted_items(digest: PracticeDigest) -> list[tuple[Finding, str, str]]:
    """The accepted findings as the email lists them: (finding, until, accepted by),
    by rule and record; the reason is left out (free text, see the module docstring)."""
    items = []
    for t in sorted(digest.accepted, key=lambda t: t.finding.sort_key()):
        acceptance = digest.acceptances.get(t.finding.fingerprint)
        if acceptance is not None:
            items.append((t.finding, acceptance.until, acceptance.accepted_by))
    return items


def _render_html(digest: PracticeDigest, parts: _Parts, limit: int) -> str:
    """The HTML part; ``limit`` caps the records listed per rule (and scales the other lists)."""
    p = parts
    c = p.counts
    rows: list[str] = []
    rows.append(
        f'<tr><td style="background:{BRAND};padding:18px 24px;">'
        '<div style="font-size:13px;color:#c7d7e8;letter-spacing:1px;text-transform:uppercase;">'
        "MET Audit · morning report</div>"
        f'<div style="font-size:22px;font-weight:bold;color:#ffffff;margin-top:4px;">{_e(p.name)}</div>'
        f'<div style="font-size:14px;color:#e4edf6;margin-top:2px;">Records as of {_e(digest.as_of)}</div>'
        "</td></tr>"
    )
    if p.money_totals is not None and not c.nothing_to_report:
        rows.append(
            '<tr><td style="padding:18px 24px 0 24px;">'
            f'<div style="font-size:13px;font-weight:bold;color:{INK};margin-bottom:6px;">'
            "Money at risk</div>"
            '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" '
            'style="border-collapse:collapse;"><tr>'
            + "".join(
                _tile(money(p.money_totals[name]), label, BRAND, "33%", 20)
                for name, label in MONEY_CLASS_LABELS.items()
            )
            + "</tr></table>"
            f'<div style="font-size:12px;color:{MUTED};margin-top:6px;">{_e(MONEY_NOTE)}</div>'
            "</td></tr>"
        )
    if c.nothing_to_report:
        rows.append(
            '<tr><td style="padding:22px 24px;">'
            f'<div style="font-size:20px;font-weight:bold;color:{GOOD};">All clear</div>'
            f'<div style="font-size:14px;color:{INK};margin-top:6px;">No finding is open and nothing '
            f"comes due this week for {_e(p.name)} as of {_e(digest.as_of)}.</div></td></tr>"
        )
    else:
        crit = SEVERITY_COLOURS["critical"] if c.new_critical else INK
        rows.append(
            '<tr><td style="padding:18px 24px 6px 24px;">'
            '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" '
            'style="border-collapse:collapse;"><tr>'
            + _tile(c.new_critical, "new critical", crit)
            + _tile(c.open, "open", INK)
            + _tile(c.due_soon, "due this week", SEVERITY_COLOURS["notice"] if c.due_soon else INK)
            + _tile(c.resolved, "resolved since last run", GOOD if c.resolved else INK)
            + "</tr></table>"
            f'<div style="font-size:12px;color:{MUTED};margin-top:6px;">'
            f"{_plural(c.new, 'new finding')} in all · open: "
            + ", ".join(f"{c.open_by_severity.get(s, 0)} {s}" for s in SEVERITY_ORDER)
            + "</div></td></tr>"
        )
    buttons = []
    if p.run_link:
        buttons.append(_button(p.run_link, "Open the run in Airflow"))
    if p.packets_link:
        buttons.append(_button(p.packets_link, "Audit packets"))
    if buttons:
        rows.append(f'<tr><td style="padding:10px 24px 8px 24px;">{"".join(buttons)}</td></tr>')
    if p.draft_claims:
        rows.append(
            _section_heading(
                "Fix before billing",
                "Draft claims that fail a critical rule: correct them before they are billed.",
            )
        )
        draft_limit = _draft_limit(limit)
        rows.append(
            _table_html(
                ("Claim", "Rule", "Record", "Draft charges"),
                (
                    (
                        _mono(item.claim_id),
                        f"{_mono(item.finding.rule_id)} {_e(_rule_text(item.finding.rule_id)[0])}",
                        _e(record_label(item.finding)),
                        f"<b>{_e(money(item.amount))}</b>",
                    )
                    for item in p.draft_claims[:draft_limit]
                ),
                ("20%", "40%", "22%", "18%"),
            )
        )
        if len(p.draft_claims) > draft_limit:
            rows.append(_more_row(len(p.draft_claims) - draft_limit, "more", p.where_more))

    if p.filing_deadlines:
        rows.append(_section_heading(FILING_HEADING, FILING_NOTE))
        draft_limit = _draft_limit(limit)
        rows.append(
            _table_html(
                ("File by", "Claim", "Client", "Draft charges"),
                (
                    (
                        f"<b>{_e(d.deadline)}</b>",
                        _mono(d.claim_id),
                        _mono(d.client_id),
                        f"<b>{_e(money(d.charges))}</b>",
                    )
                    for d in p.filing_deadlines[:draft_limit]
                ),
                ("22%", "30%", "26%", "22%"),
            )
        )
        if len(p.filing_deadlines) > draft_limit:
            hidden = len(p.filing_deadlines) - draft_limit
            rows.append(_more_row(hidden, "more claim", p.where_more))
    if p.new_groups:
        rows.append(
            _section_heading("New findings", "First found in this run, most serious first.")
        )
        current = None
        for group in p.new_groups:
            if group.severity != current:
                current = group.severity
                colour = SEVERITY_COLOURS.get(current, MUTED)
                rows.append(
                    f'<tr><td style="padding:12px 24px 2px 24px;">{_badge(current)} '
                    f'<span style="font-size:13px;color:{colour};">'
                    f"{_e(SEVERITY_MEANINGS.get(current, ''))}</span></td></tr>"
                )
            rows.append(_new_group_html(group, limit, p.where_more, p.exposure))
    if p.open_groups:
        rows.append(_section_heading("Still open", "Found on an earlier run and still not fixed."))
        open_rows = [
            [
                f"{_mono(g.rule_id)} {_e(g.title)}",
                _badge(g.severity),
                str(len(g.items)),
                f"{_e(record_label(g.oldest.finding))}<br>"
                f'<span style="color:{MUTED};">since {_e(g.oldest_first_seen)}</span>',
            ]
            for g in p.open_groups
        ]
        if p.exposure is None:
            header: tuple[str, ...] = ("Rule", "Severity", "Records", "Oldest (first seen)")
            widths: tuple[str, ...] = ("46%", "14%", "10%", "30%")
        else:
            header = ("Rule", "Severity", "Records", "At risk", "Oldest (first seen)")
            widths = ("36%", "14%", "9%", "14%", "27%")
            for row, g in zip(open_rows, p.open_groups, strict=True):
                row.insert(3, _e(p.group_at_risk(g) or "none"))
        rows.append(_table_html(header, open_rows, widths))
    if p.resolved_groups:
        rows.append(
            _section_heading("Resolved since the last run", "Open on the previous run, fixed now.")
        )
        per_rule = max(min(limit, RESOLVED_PER_RULE_LIMIT), 0)
        table_rows = []
        for g in p.resolved_groups:
            shown = ", ".join(_e(record_label(t.finding)) for t in g.items[:per_rule])
            hidden = len(g.items) - per_rule
            if hidden > 0:
                shown += f"{', ' if shown else ''}… {_plural(hidden, 'more')}"
            table_rows.append((f"{_mono(g.rule_id)} {_e(g.title)}", str(len(g.items)), shown))
        rows.append(_table_html(("Rule", "Records", "Fixed"), table_rows, ("40%", "10%", "50%")))
    if p.due:
        rows.append(
            _section_heading(
                "Coming due within 7 days", "Nothing is wrong yet: act before the date."
            )
        )
        due_limit = min(DUE_LIST_LIMIT, max(limit * 2, 5))
        rows.append(
            _table_html(
                ("Due", "What", "Client"),
                (
                    (
                        f"<b>{_e(t.finding.due_date or 'soon')}</b>",
                        f"{_e(t.finding.message)}<br>"
                        f'<span style="color:{MUTED};">{_mono(t.finding.rule_id)} '
                        f"{_e(_rule_text(t.finding.rule_id)[0])}</span>",
                        _mono(t.finding.client_id),
                    )
                    for t in p.due[:due_limit]
                ),
                ("18%", "60%", "22%"),
            )
        )
        if len(p.due) > due_limit:
            rows.append(_more_row(len(p.due) - due_limit, "more notice", p.where_more))
    if p.accepted:
        rows.append(
            _section_heading(
                "Accepted", "Accepted by a compliance lead until the date shown: not counted open."
            )
        )
        rows.append(
            _table_html(
                ("Rule", "Record", "Until", "By"),
                (
                    (
                        f"{_mono(f.rule_id)} {_e(_rule_text(f.rule_id)[0])}",
                        _e(record_label(f)),
                        _e(until),
                        _e(by),
                    )
                    for f, until, by in p.accepted[:ACCEPTED_LIST_LIMIT]
                ),
                ("40%", "30%", "15%", "15%"),
            )
        )
        if len(p.accepted) > ACCEPTED_LIST_LIMIT:
            hidden = len(p.accepted) - ACCEPTED_LIST_LIMIT
            rows.append(_more_row(hidden, "more accepted finding", p.where_more))
    rows.append(
        f'<tr><td style="padding:18px 24px;border-top:1px solid {RULE_LINE};background:{PAGE};'
        f'font-size:12px;color:{MUTED};">'
        "Sent by MET Audit to the compliance leads of this practice. This email names records "
        "and clients by id only: open the practice's records or audit packets for details. "
        "Counts cover every finding open on the audit date."
        "</td></tr>"
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light"><meta name="supported-color-schemes" content="light">'
        f"<title>{_e(p.subject)}</title></head>"
        f'<body style="margin:0;padding:0;background:{PAGE};">'
        f'<div style="display:none;max-height:0;overflow:hidden;mso-hide:all;">{_e(p.preheader)}</div>'
        f'<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="background:{PAGE};">'
        '<tr><td align="center" style="padding:16px 8px;">'
        '<table role="presentation" width="600" cellpadding="0" cellspacing="0" border="0" '
        f'style="width:100%;max-width:600px;background:#ffffff;border:1px solid {RULE_LINE};'
        f'border-collapse:collapse;font-family:{FONT};color:{INK};">'
        + "".join(rows)
        + "</table></td></tr></table></body></html>"
    )


# ------------------------------------------------------------------ plain text


def _wrap(text: str, indent: str = "", first: str | None = None) -> list[str]:
    return textwrap.wrap(
        text,
        width=TEXT_WIDTH,
        initial_indent=first if first is not None else indent,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [first or indent]


def _heading(title: str) -> list[str]:
    return ["", title.upper(), "=" * len(title), ""]


def _render_text(digest: PracticeDigest, parts: _Parts, limit: int) -> str:
    """The plain-text part: the same content and order as the HTML."""
    p = parts
    c = p.counts
    lines = [f"MET Audit morning report: {p.name}", f"Records as of {digest.as_of}", ""]
    if p.money_totals is not None and not c.nothing_to_report:
        lines.append(
            "Money at risk: "
            + " | ".join(
                f"{money(p.money_totals[name])} {label}"
                for name, label in MONEY_CLASS_LABELS.items()
            )
        )
        lines += _wrap(MONEY_NOTE, "  ", "  ")
        lines.append("")
    if c.nothing_to_report:
        lines += _wrap(
            f"All clear: no finding is open and nothing comes due this week for {p.name} "
            f"as of {digest.as_of}."
        )
    else:
        lines.append(
            f"{c.new_critical} new critical ({c.new} new in all) | {c.open} open | "
            f"{c.due_soon} due this week | {c.resolved} resolved since the last run"
        )
        lines.append(
            "Open by severity: "
            + ", ".join(f"{c.open_by_severity.get(s, 0)} {s}" for s in SEVERITY_ORDER)
        )
    if p.run_link or p.packets_link:
        lines.append("")
    if p.run_link:
        lines.append(f"Open the run in Airflow: {p.run_link}")
    if p.packets_link:
        lines.append(f"Audit packets: {p.packets_link}")

    if p.draft_claims:
        lines += _heading("Fix before billing")
        lines += _wrap(
            "Draft claims that fail a critical rule: correct them before they are billed."
        )
        lines.append("")
        draft_limit = _draft_limit(limit)
        for item in p.draft_claims[:draft_limit]:
            lines += _wrap(
                f"Claim {item.claim_id}  [{item.finding.rule_id}] "
                f"{_rule_text(item.finding.rule_id)[0]}: {record_label(item.finding)}, "
                f"{money(item.amount)}",
                "    ",
                "  - ",
            )
        if len(p.draft_claims) > draft_limit:
            lines.append(
                f"  ... and {_plural(len(p.draft_claims) - draft_limit, 'more')}: {p.where_more}"
            )

    if p.filing_deadlines:
        lines += _heading(FILING_HEADING)
        lines += _wrap(FILING_NOTE)
        lines.append("")
        draft_limit = _draft_limit(limit)
        for d in p.filing_deadlines[:draft_limit]:
            client = f" (client {d.client_id})" if d.client_id else ""
            lines += _wrap(
                f"{d.deadline}  Claim {d.claim_id}{client}, {money(d.charges)}", "    ", "  - "
            )
        if len(p.filing_deadlines) > draft_limit:
            hidden = len(p.filing_deadlines) - draft_limit
            lines.append(f"  ... and {_plural(hidden, 'more claim')}: {p.where_more}")
    if p.new_groups:
        lines += _heading("New findings")
        current = None
        for group in p.new_groups:
            if group.severity != current:
                current = group.severity
                lines += _wrap(
                    f"{current.upper()}: {SEVERITY_MEANINGS.get(current, '')}".rstrip(": ")
                )
                lines.append("")
            lines.append(f"[{group.rule_id}] {group.title} ({_plural(len(group.items), 'record')})")
            if group.meaning:
                lines += _wrap(group.meaning, "    ", "  What it means: ")
            if group.fix:
                lines += _wrap(group.fix, "    ", "  How to fix: ")
            for t in group.items[:limit]:
                f = t.finding
                extra = [f"client {f.client_id}"] if _names_other_client(f) else []
                if f.due_date:
                    extra.append(f"due {f.due_date}")
                risk = _at_risk(p.exposure(f) if p.exposure else None)
                if risk:
                    extra.append(risk)
                tail = f" ({', '.join(extra)})" if extra else ""
                lines += _wrap(f.message + tail, "    ", "  - ")
            if len(group.items) > limit:
                lines.append(
                    f"  ... and {_plural(len(group.items) - limit, 'more record')}: {p.where_more}"
                )
            lines.append("")
    if p.open_groups:
        lines += _heading("Still open")
        for g in p.open_groups:
            risk = p.group_at_risk(g)
            at_risk = f", {risk} at risk" if risk else ""
            lines += _wrap(
                f"[{g.rule_id}] {g.title} ({g.severity}): {_plural(len(g.items), 'record')}"
                f"{at_risk}, oldest {record_label(g.oldest.finding)} since {g.oldest_first_seen}",
                "    ",
                "  - ",
            )
    if p.resolved_groups:
        lines += _heading("Resolved since the last run")
        per_rule = max(min(limit, RESOLVED_PER_RULE_LIMIT), 0)
        for g in p.resolved_groups:
            shown = ", ".join(record_label(t.finding) for t in g.items[:per_rule])
            hidden = len(g.items) - per_rule
            if hidden > 0:
                shown += f"{', ' if shown else ''}... {_plural(hidden, 'more')}"
            lines += _wrap(
                f"[{g.rule_id}] {g.title}: {_plural(len(g.items), 'record')} fixed: {shown}",
                "    ",
                "  - ",
            )
    if p.due:
        lines += _heading("Coming due within 7 days")
        due_limit = min(DUE_LIST_LIMIT, max(limit * 2, 5))
        for t in p.due[:due_limit]:
            f = t.finding
            client = f" (client {f.client_id})" if f.client_id else ""
            lines += _wrap(
                f"{f.due_date or 'soon'}  {f.message}{client} [{f.rule_id}]", "    ", "  - "
            )
        if len(p.due) > due_limit:
            lines.append(
                f"  ... and {_plural(len(p.due) - due_limit, 'more notice')}: {p.where_more}"
            )
    if p.accepted:
        lines += _heading("Accepted (not counted open)")
        for f, until, by in p.accepted[:ACCEPTED_LIST_LIMIT]:
            lines += _wrap(
                f"[{f.rule_id}] {record_label(f)}: accepted by {by} until {until}", "    ", "  - "
            )
        if len(p.accepted) > ACCEPTED_LIST_LIMIT:
            hidden = len(p.accepted) - ACCEPTED_LIST_LIMIT
            lines.append(f"  ... and {_plural(hidden, 'more accepted finding')}: {p.where_more}")
    lines += [
        "",
        "--",
        *_wrap(
            "Sent by MET Audit to the compliance leads of this practice. This email names "
            "records and clients by id only: open the practice's records or audit packets "
            "for details."
        ),
    ]
    return "\n".join(lines).rstrip() + "\n"


# ------------------------------------------------------------------ the message


def _draft_limit(limit: int) -> int:
    """How many draft-claim findings the "fix before billing" block lists (scales with
    the records listed per rule, so a huge night still fits)."""
    return min(FIX_BEFORE_BILLING_LIMIT, max(limit * 2, 5))


def _limits(start: int) -> list[int]:
    out, limit = [], start
    while limit > 1:
        out.append(limit)
        limit //= 2
    return [*out, 1, 0]


def build_email(
    digest: PracticeDigest,
    recipients: Sequence[str],
    *,
    airflow_base_url: str | None,
    packets_base_url: str | None,
    sender: str,
    all_clear: bool = True,
    practice_name: str | None = None,
    run_id: str | None = None,
    reply_to: str | None = None,
    categories: Sequence[str] = ("met-audit",),
    max_records_per_rule: int = 20,
    max_html_bytes: int = MAX_HTML_BYTES,
) -> OutgoingEmail | None:
    """The morning email of one practice and as-of date, or None when there is nothing to
    say and ``all_clear`` is off.

    ``practice_name`` (from the configuration) wins over the digest's name.
    ``run_id`` makes the Airflow link point at the run itself. Records listed
    per rule are capped at ``max_records_per_rule`` and, when the HTML would
    still exceed ``max_html_bytes``, halved until it fits (counts stay exact).
    """
    parts = _parts(digest, practice_name, airflow_base_url, packets_base_url, run_id)
    if parts.counts.nothing_to_report and not all_clear:
        return None
    html_part = ""
    limit = max_records_per_rule
    for limit in _limits(max_records_per_rule):
        html_part = _render_html(digest, parts, limit)
        if len(html_part.encode("utf-8")) < max_html_bytes:
            break
    else:
        log.warning(
            "the email of practice %s is %d bytes even with no records listed",
            digest.practice_id,
            len(html_part.encode("utf-8")),
        )
    if limit < max_records_per_rule:
        log.info(
            "practice %s: listing %d records per rule to keep the email under %d bytes",
            digest.practice_id,
            limit,
            max_html_bytes,
        )
    kind = "all-clear" if parts.counts.nothing_to_report else "morning-report"
    return OutgoingEmail(
        subject=parts.subject,
        html=html_part,
        text=_render_text(digest, parts, limit),
        to=tuple(recipients),
        sender=sender,
        categories=tuple(dict.fromkeys((*categories, kind))),
        custom_args={"practice_id": digest.practice_id, "as_of": digest.as_of, "kind": kind},
        reply_to=reply_to,
    )


def build_alert(
    subject: str,
    text: str,
    recipients: Sequence[str],
    *,
    sender: str,
    as_of: str,
    alert_key: str,
    reply_to: str | None = None,
    categories: Sequence[str] = ("met-audit",),
) -> OutgoingEmail:
    """A failure alert for the admins: the given text, escaped, as HTML and plain text."""
    title = one_line(
        f"{SUBJECT_PREFIX} {subject}" if not subject.startswith(SUBJECT_PREFIX) else subject, 200
    )
    body = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title></head>"
        f'<body style="margin:0;padding:16px;background:{PAGE};">'
        '<table role="presentation" width="600" cellpadding="0" cellspacing="0" border="0" '
        f'style="width:100%;max-width:600px;background:#ffffff;border:1px solid {RULE_LINE};'
        f'font-family:{FONT};color:{INK};">'
        f'<tr><td style="background:{SEVERITY_COLOURS["critical"]};padding:14px 20px;color:#ffffff;'
        f'font-size:16px;font-weight:bold;">{_e(title)}</td></tr>'
        f'<tr><td style="padding:16px 20px;font-family:{MONO};font-size:13px;white-space:pre-wrap;">'
        f"{_e(text)}</td></tr></table></body></html>"
    )
    return OutgoingEmail(
        subject=title,
        html=body,
        text=text if text.endswith("\n") else text + "\n",
        to=tuple(recipients),
        sender=sender,
        categories=tuple(dict.fromkeys((*categories, "alert"))),
        custom_args={"kind": "alert", "as_of": as_of, "alert_key": alert_key[:200]},
        reply_to=reply_to,
    )
