"""The morning email's content: built by pure functions from a digest, asserted here."""

from __future__ import annotations

import dataclasses
import re
from html.parser import HTMLParser
from typing import ClassVar

import pytest
from mail_builders import (
    AS_OF,
    PRACTICE,
    empty_digest,
    finding,
    money_digest,
    sample_digest,
    tracked,
)

from metaudit.mail.content import (
    MAX_HTML_BYTES,
    OutgoingEmail,
    build_alert,
    build_email,
    build_subject,
    count_digest,
    exposure_totals,
    fix_before_billing,
    group_by_rule,
    money,
)
from metaudit.results.digest import FindingExposure
from metaudit.spec.rulebook import RULES

BASE = "https://airflow.example.org"
SENDER = "MET Audit <audit@example.org>"
LEADS = ("Jo Lead <jo@riverside.example>", "kim@riverside.example")


def build(digest=None, **kwargs):  # type: ignore[no-untyped-def]
    options = {
        "airflow_base_url": BASE,
        "packets_base_url": BASE,
        "sender": SENDER,
        "run_id": "scheduled__2026-03-31T04:30:00+00:00",
    }
    options.update(kwargs)
    return build_email(digest or sample_digest(), LEADS, **options)


# ------------------------------------------------------------------ subject


def test_subject_reads_like_the_issue_example() -> None:
    assert build_subject(sample_digest()) == (
        "[MET Audit] Riverside Medical Exercise: 3 new critical, 12 open, 4 due this week "
        "(2026-03-31)"
    )


def test_counts_open_is_new_plus_still_open() -> None:
    counts = count_digest(sample_digest())
    assert (counts.new, counts.new_critical, counts.open, counts.due_soon, counts.resolved) == (
        5,
        3,
        12,
        4,
        2,
    )
    assert counts.open_by_severity == {"critical": 5, "warning": 3, "notice": 4}


def test_subject_without_new_critical_leads_with_the_new_count() -> None:
    digest = sample_digest()
    only_warning = [t for t in digest.new if t.finding.severity != "critical"]
    subject = build_subject(dataclasses.replace(digest, new=only_warning))
    assert subject.startswith("[MET Audit] Riverside Medical Exercise: 2 new, 9 open,")


def test_subject_all_clear_and_resolved() -> None:
    assert build_subject(empty_digest()) == (
        "[MET Audit] Riverside Medical Exercise: all clear (2026-03-31)"
    )
    digest = dataclasses.replace(empty_digest(), resolved=sample_digest().resolved)
    assert build_subject(digest) == (
        "[MET Audit] Riverside Medical Exercise: all clear, 2 resolved (2026-03-31)"
    )


def test_configured_name_wins_and_header_breaks_are_removed() -> None:
    digest = sample_digest(name="Evil\r\nBcc: victim@example.org")
    subject = build_subject(digest)
    assert "\n" not in subject and "\r" not in subject
    assert "Evil Bcc: victim@example.org" in subject
    assert build_subject(digest, "Riverside MET").startswith("[MET Audit] Riverside MET:")
    nameless = dataclasses.replace(digest, practice_name="")
    assert build_subject(nameless).startswith(f"[MET Audit] {PRACTICE}:")


# ------------------------------------------------------------------ order and grouping


def test_groups_come_by_severity_then_rule_and_records_sorted() -> None:
    groups = group_by_rule(sample_digest().new)
    assert [(g.severity, g.rule_id) for g in groups][:2] == [
        ("critical", "REF-001"),
        ("critical", "REF-002"),
    ]
    assert [g.severity for g in groups] == sorted(
        (g.severity for g in groups), key=["critical", "warning", "notice"].index
    )
    ref002 = groups[1]
    assert [t.finding.entity_id for t in ref002.items] == ["SE000201", "SE000202"]


def _positions(text: str, *needles: str) -> list[int]:
    found = [text.find(n) for n in needles]
    assert all(p >= 0 for p in found), list(zip(needles, found, strict=True))
    return found


@pytest.mark.parametrize("part", ["html", "text"])
def test_sections_in_reading_order(part: str) -> None:
    email = build()
    assert email is not None
    body = getattr(email, part)
    if part == "html":
        headings = (
            "New findings",
            "Still open",
            "Resolved since the last run",
            "Coming due within 7 days",
        )
    else:
        headings = (
            "NEW FINDINGS",
            "STILL OPEN",
            "RESOLVED SINCE THE LAST RUN",
            "COMING DUE WITHIN 7 DAYS",
        )
    positions = _positions(body, *headings)
    assert positions == sorted(positions)
    # Critical before warning before notice inside "New findings".
    new_part = body[positions[0] : positions[1]]
    sev = _positions(
        new_part.lower(),
        ">critical<" if part == "html" else "critical:",
        ">warning<" if part == "html" else "warning:",
        ">notice<" if part == "html" else "notice:",
    )
    assert sev == sorted(sev)


@pytest.mark.parametrize("part", ["html", "text"])
def test_new_findings_carry_meaning_fix_ids_and_message(part: str) -> None:
    email = build()
    assert email is not None
    body = getattr(email, part)
    plain = _unescape(body) if part == "html" else _unwrap(body)
    for t in sample_digest().new:
        rule = RULES[t.finding.rule_id]
        assert rule.title in plain
        assert _unwrap(rule.meaning) in plain
        assert _unwrap(rule.fix) in plain
        assert t.finding.message in plain
        assert t.finding.entity_id in plain
    # A client id beside a record that is not the client itself.
    assert "CL000102" in plain


def test_still_open_shows_count_and_oldest_first_seen() -> None:
    email = build()
    assert email is not None
    text = _unwrap(email.text)
    assert (
        "[REF-006] Referral not signed (critical): 2 records, oldest Referral RF000502 since 2026-02-27"
        in text
    )
    html_plain = _unescape(email.html)
    assert "Referral RF000502" in html_plain and "since 2026-02-27" in html_plain


def test_resolved_lists_the_records_fixed() -> None:
    email = build()
    assert email is not None
    text = _unwrap(email.text)
    assert "2 records fixed: Referral RF000601, Referral RF000602" in text
    assert "Referral RF000601, Referral RF000602" in _unescape(email.html)


def test_due_soon_sorted_by_due_date_with_dates() -> None:
    email = build()
    assert email is not None
    text = email.text[email.text.index("COMING DUE") :]
    dates = re.findall(r"^  - (\d{4}-\d{2}-\d{2})", text, flags=re.M)
    assert dates == ["2026-04-01", "2026-04-02", "2026-04-03", "2026-04-06"]
    html_due = email.html[email.html.index("Coming due within 7 days") :]
    assert _positions(html_due, "2026-04-01", "2026-04-02", "2026-04-03", "2026-04-06") == sorted(
        _positions(html_due, "2026-04-01", "2026-04-02", "2026-04-03", "2026-04-06")
    )


# ------------------------------------------------------------------ money


def test_money_is_dollars_from_exact_cents() -> None:
    assert money(0) == "$0.00"
    assert money(123456) == "$1,234.56"
    assert money(-5) == "-$0.05"
    assert money(10**20 + 1) == "$1,000,000,000,000,000,000.01"


def test_totals_per_class_sum_the_open_findings_exposure() -> None:
    digest = money_digest()
    # Open = new + still open; resolved findings carry no money in the totals.
    assert exposure_totals(digest) == {
        "fix_before_billing": 8000 + 45000 + 9900,
        "in_flight": 10000 + 2500 + 30000 + 7000 + 60000,
        "recoupment_risk": 12550 + 500,
    }


@pytest.mark.parametrize("part", ["html", "text"])
def test_the_email_leads_with_the_money_per_class(part: str) -> None:
    email = build(money_digest())
    assert email is not None
    body = getattr(email, part)
    plain = _unescape(body) if part == "html" else _unwrap(body)
    if part == "html":
        assert "Money at risk $629.00 fix before billing $1,095.00 in flight $130.50 " in plain
        first_count = "new critical"
    else:
        assert (
            "Money at risk: $629.00 fix before billing | $1,095.00 in flight | "
            "$130.50 recoupment risk" in plain
        )
        first_count = "5 new critical"
    # Before the counts, the fix-before-billing block and every finding.
    heading = "Fix before billing" if part == "html" else "FIX BEFORE BILLING"
    new = "New findings" if part == "html" else "NEW FINDINGS"
    body_start = plain.index("Records as of")  # after the HTML's preheader
    positions = _positions(plain[body_start:], "Money at risk", first_count, heading, new)
    assert positions == sorted(positions)


def test_without_exposure_the_email_has_no_money_parts() -> None:
    email = build()
    assert email is not None
    for body in (email.html, email.text):
        assert "Money at risk" not in body and "at risk" not in body
        assert "FIX BEFORE BILLING" not in body and "Draft claims that fail" not in body


def test_within_each_severity_rules_and_records_come_by_exposure() -> None:
    digest = money_digest()
    groups = group_by_rule(digest.new, digest.exposure_of)
    # Critical: ELG-001 $450.00, REF-002 $150.50, REF-001 $100.00, COD-001 $80.00;
    # then warning: COD-009 $99.00, REF-007 $0.00; then notice.
    assert [(g.severity, g.rule_id) for g in groups] == [
        ("critical", "ELG-001"),
        ("critical", "REF-002"),
        ("critical", "REF-001"),
        ("critical", "COD-001"),
        ("warning", "COD-009"),
        ("warning", "REF-007"),
        ("notice", "REF-009"),
    ]
    ref002 = groups[1]
    # SE000201 ($125.50) before SE000202 ($25.00); with the amounts swapped, the other way.
    assert [t.finding.entity_id for t in ref002.items] == ["SE000201", "SE000202"]
    swapped = dataclasses.replace(
        digest,
        exposure={
            **digest.exposure,
            digest.new[1].finding.fingerprint: FindingExposure(1, 0, 99999, 0),
        },
    )
    (ref002,) = [
        g for g in group_by_rule(swapped.new, swapped.exposure_of) if g.rule_id == "REF-002"
    ]
    assert [t.finding.entity_id for t in ref002.items] == ["SE000202", "SE000201"]


def test_ties_in_exposure_keep_todays_order() -> None:
    digest = money_digest()
    flat = dataclasses.replace(digest, exposure=dict.fromkeys(digest.exposure, FindingExposure()))
    today = group_by_rule(flat.new)
    assert group_by_rule(flat.new, flat.exposure_of) == today
    # Equal money: the order by rule id, and by due date, client and record id.
    even = dataclasses.replace(
        digest, exposure=dict.fromkeys(digest.exposure, FindingExposure(1, 0, 100, 0))
    )
    ordered = group_by_rule(even.new, even.exposure_of)
    critical = [g.rule_id for g in ordered if g.severity == "critical"]
    # REF-002 has two records of $1.00: ahead of the one-record rules.
    assert critical == ["REF-002", "COD-001", "ELG-001", "REF-001"]
    assert [t.finding.entity_id for t in ordered[0].items] == ["SE000201", "SE000202"]


@pytest.mark.parametrize("part", ["html", "text"])
def test_findings_in_the_email_come_by_exposure_with_their_amounts(part: str) -> None:
    email = build(money_digest())
    assert email is not None
    body = getattr(email, part)
    plain = _unescape(body) if part == "html" else _unwrap(body)
    new_part = plain[plain.index("New findings" if part == "html" else "NEW FINDINGS") :]
    order = _positions(
        new_part,
        "Claim CM000008 is billed",
        "Session SE000201 took place",
        "Session SE000202 took place",
        "Client CL000101 has completed",
        "Claim line LN000702 bills",
    )
    assert order == sorted(order)
    for amount in ("$450.00 at risk", "$125.50 at risk", "$25.00 at risk", "$80.00 at risk"):
        assert amount in new_part
    # Still open: per rule, the rule's money; by it within each severity.
    still = new_part[new_part.index("Still open" if part == "html" else "STILL OPEN") :]
    if part == "html":
        assert "ELG-001 Claim to a Medicare or Medicaid plan critical 1 $600.00" in still
        assert "REF-006 Referral not signed critical 2 $305.00" in still
    else:
        assert "(critical): 1 record, $600.00 at risk, oldest Claim CM000009" in still
        assert "(critical): 2 records, $305.00 at risk, oldest Referral RF000502" in still
    assert still.index("ELG-001") < still.index("REF-006")


@pytest.mark.parametrize("part", ["html", "text"])
def test_fix_before_billing_lists_the_draft_claims_failing_a_critical_rule(part: str) -> None:
    digest = money_digest()
    items = fix_before_billing(digest)
    # Critical findings on draft claims only: not the warning on a draft claim
    # (CM000010), not the critical one on a submitted claim (CM000009).
    assert [(i.claim_id, i.finding.rule_id, i.amount) for i in items] == [
        ("CM000008", "ELG-001", 45000),
        ("CM000007", "COD-001", 8000),
    ]
    email = build(digest)
    assert email is not None
    body = getattr(email, part)
    plain = _unescape(body) if part == "html" else _unwrap(body)
    start = plain.index("Fix before billing" if part == "html" else "FIX BEFORE BILLING")
    block = plain[start : plain.index("New findings" if part == "html" else "NEW FINDINGS")]
    if part == "html":
        rows = [
            "CM000008 ELG-001 Claim to a Medicare or Medicaid plan Claim CM000008 $450.00",
            "CM000007 COD-001 CPT code outside the medical exercise codes "
            "Claim line LN000702 $80.00",
        ]
    else:
        rows = [
            "Claim CM000008 [ELG-001] Claim to a Medicare or Medicaid plan: Claim CM000008, "
            "$450.00",
            "Claim CM000007 [COD-001] CPT code outside the medical exercise codes: "
            "Claim line LN000702, $80.00",
        ]
    assert _positions(block, *rows) == sorted(_positions(block, *rows))
    assert "CM000009" not in block and "CM000010" not in block


@pytest.mark.parametrize("part", ["html", "text"])
def test_filing_deadlines_of_the_week_come_soonest_first_with_ids_and_amounts(
    part: str,
) -> None:
    email = build(money_digest())
    assert email is not None
    body = getattr(email, part)
    plain = _unescape(body) if part == "html" else _unwrap(body)
    heading = "Timely filing deadlines this week"
    start = plain.index(heading if part == "html" else heading.upper())
    block = plain[start : plain.index("New findings" if part == "html" else "NEW FINDINGS")]
    if part == "html":
        rows = ["2026-04-01 CM000020 CL000118 $90.00", "2026-04-05 CM000021 CL000119 $132.00"]
    else:
        rows = [
            "2026-04-01 Claim CM000020 (client CL000118), $90.00",
            "2026-04-05 Claim CM000021 (client CL000119), $132.00",
        ]
    assert _positions(block, *rows) == sorted(_positions(block, *rows))
    # After the fix-before-billing block: the money first, then the deadlines.
    assert plain.index("CM000008") < start


def test_an_all_clear_practice_still_reads_its_filing_deadlines() -> None:
    digest = dataclasses.replace(empty_digest(), filing_deadlines=money_digest().filing_deadlines)
    email = build(digest)
    assert email is not None
    for body in (_unescape(email.html), email.text):
        assert "All clear" in body and "CM000020" in body and "2026-04-01" in body


def test_no_filing_block_without_deadlines() -> None:
    digest = dataclasses.replace(money_digest(), filing_deadlines=[])
    email = build(digest)
    assert email is not None
    assert "Timely filing" not in email.html and "TIMELY FILING" not in email.text


def test_many_draft_claims_stay_under_100_kb_and_say_how_many_more() -> None:
    new = [
        tracked(finding("COD-001", f"LN{i:06d}", f"CL{i:06d}", entity_type="claim_line"))
        for i in range(3000)
    ]
    exposure = {
        t.finding.fingerprint: FindingExposure(1, 1000 + i, 0, 0, f"CM{i:06d}")
        for i, t in enumerate(new)
    }
    digest = dataclasses.replace(
        sample_digest(), new=new, still_open=[], due_soon=[], resolved=[], exposure=exposure
    )
    email = build(digest)
    assert email is not None
    assert len(email.html.encode("utf-8")) < MAX_HTML_BYTES
    total = sum(1000 + i for i in range(3000))
    assert money(total) in email.text and money(total) in email.html
    # The largest first, and the rest counted.
    block = email.text[email.text.index("FIX BEFORE BILLING") : email.text.index("NEW FINDINGS")]
    assert block.index("CM002999") < block.index("CM002998")
    assert re.search(r"\.\.\. and \d+ more", block)
    assert "… and" in email.html[: email.html.index("New findings")]


# ------------------------------------------------------------------ links


def test_links_to_the_run_and_the_packets_page() -> None:
    email = build()
    assert email is not None
    run = f"{BASE}/dags/met_compliance_nightly/runs/scheduled__2026-03-31T04%3A30%3A00%2B00%3A00"
    packets = f"{BASE}/metaudit/packets?practice_id={PRACTICE}&as_of={AS_OF}"
    assert f'href="{run}"' in email.html
    assert f'href="{packets.replace("&", "&amp;")}"' in email.html
    assert run in email.text and packets in email.text


def test_digest_links_win_and_non_web_links_are_dropped() -> None:
    digest = dataclasses.replace(
        sample_digest(), run_url="https://ui.example.org/run/1", packets_url="javascript:alert(1)"
    )
    email = build(digest)
    assert email is not None
    assert 'href="https://ui.example.org/run/1"' in email.html
    assert "javascript:" not in email.html and "javascript:" not in email.text
    assert "Audit packets" not in email.html


def test_no_links_without_base_urls() -> None:
    email = build(airflow_base_url=None, packets_base_url=None, run_id=None)
    assert email is not None
    assert "href=" not in email.html
    assert "Open the run" not in email.text


# ------------------------------------------------------------------ escaping and safety


def test_everything_is_escaped() -> None:
    hostile = "<script>alert('x')</script> & \"Co\""
    f = dataclasses.replace(finding("REF-001", "CL<b>9", "CL<b>9"), message=f"{hostile} message")
    digest = dataclasses.replace(sample_digest(name=hostile), new=[tracked(f)])
    email = build(digest)
    assert email is not None
    assert "<script>" not in email.html and "<b>9" not in email.html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;Co&quot;" in email.html
    # The plain-text part shows the text as it is (nothing there is interpreted).
    assert hostile in email.text


class _Balance(HTMLParser):
    VOID: ClassVar[set[str]] = {"meta", "br", "img", "hr", "link", "input"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: set[str] = set()
        self.attrs: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attrs.update(a for a, _ in attrs)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, (tag, self.stack[-5:])
        self.stack.pop()


@pytest.mark.parametrize(
    "digest",
    [sample_digest(), empty_digest(), money_digest()],
    ids=["report", "all-clear", "with-money"],
)
def test_html_is_balanced_table_layout_with_inline_css(digest) -> None:  # type: ignore[no-untyped-def]
    email = build(digest)
    assert email is not None
    parser = _Balance()
    parser.feed(email.html)
    assert parser.stack == []
    # Mail programs drop <style> and external sheets; layout is tables, width 600.
    assert not {"style", "link", "script"} & parser.tags
    assert "class" not in parser.attrs
    assert 'width="600"' in email.html and "max-width:600px" in email.html
    assert "table" in parser.tags
    assert len(email.html.encode("utf-8")) < MAX_HTML_BYTES


# ------------------------------------------------------------------ all clear and size


def test_all_clear_is_short_and_can_be_switched_off() -> None:
    email = build(empty_digest())
    assert email is not None
    assert "All clear" in email.html and "All clear" in email.text
    assert "NEW FINDINGS" not in email.text
    assert email.custom_args["kind"] == "all-clear"
    assert len(email.text.splitlines()) < 15
    assert build(empty_digest(), all_clear=False) is None
    # Something resolved is worth a mail even with the all-clear off.
    resolved = dataclasses.replace(empty_digest(), resolved=sample_digest().resolved)
    email = build(resolved, all_clear=False)
    assert email is not None and "RESOLVED SINCE THE LAST RUN" in email.text


def test_a_huge_night_stays_under_100_kb_with_exact_counts() -> None:
    rules = [
        r.id for r in RULES.values() if r.entity_type not in ("client_date",) and not r.has_due_date
    ][:12]
    new = [
        tracked(finding(rule, f"E{rule[-3:]}{i:05d}", f"CL{i:06d}"))
        for rule in rules
        for i in range(400)
    ]
    digest = dataclasses.replace(sample_digest(), new=new, still_open=[], due_soon=[], resolved=[])
    email = build(digest)
    assert email is not None
    assert len(email.html.encode("utf-8")) < MAX_HTML_BYTES
    assert f"{len(new)} new findings in all" in email.html
    assert "more record" in email.html and "more record" in email.text
    # Every rule still has its group, each with its true count.
    for rule in rules:
        assert f"[{rule}] {RULES[rule].title} (400 records)" in email.text


# ------------------------------------------------------------------ message fields


def test_addresses_categories_and_custom_args() -> None:
    email = build(reply_to="desk@example.org", categories=("met-audit", "riverside"))
    assert email is not None
    assert email.to == LEADS and email.sender == SENDER and email.reply_to == "desk@example.org"
    assert email.categories == ("met-audit", "riverside", "morning-report")
    assert email.custom_args == {"practice_id": PRACTICE, "as_of": AS_OF, "kind": "morning-report"}
    assert OutgoingEmail.from_dict(email.to_dict()) == email


def test_alert_is_escaped_and_tagged() -> None:
    alert = build_alert(
        "audit failed for PR0001",
        "Task audit_practice <PR0001> failed",
        ("ops@example.org",),
        sender=SENDER,
        as_of=AS_OF,
        alert_key="run-1",
    )
    assert alert.subject == "[MET Audit] audit failed for PR0001"
    assert "&lt;PR0001&gt;" in alert.html and "<PR0001>" in alert.text
    assert alert.custom_args == {"kind": "alert", "as_of": AS_OF, "alert_key": "run-1"}
    assert "alert" in alert.categories


# ------------------------------------------------------------------ helpers


def _unescape(html_text: str) -> str:
    import html

    return _unwrap(html.unescape(re.sub(r"<[^>]+>", " ", html_text)))


def _unwrap(text: str) -> str:
    return " ".join(text.split())
