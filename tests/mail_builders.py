"""Findings and digests for the mail tests, with the rulebook's real messages."""

from __future__ import annotations

from metaudit.results.digest import PracticeDigest, TrackedFinding
from metaudit.spec.findings import Finding
from metaudit.spec.rulebook import RULES, message

AS_OF = "2026-03-31"
PRACTICE = "PR0001"


def finding(
    rule_id: str,
    entity_id: str,
    client_id: str | None = "CL000001",
    *,
    due_date: str | None = None,
    practice_id: str = PRACTICE,
    as_of: str = AS_OF,
    entity_type: str | None = None,
) -> Finding:
    """A finding of ``rule_id`` with the sentence the rulebook writes for it."""
    rule = RULES[rule_id]
    kind = entity_type or rule.entity_type
    return Finding(
        as_of=as_of,
        practice_id=practice_id,
        rule_id=rule_id,
        severity=rule.severity,
        entity_type=kind,
        entity_id=entity_id,
        client_id=client_id,
        message=message(rule_id, kind, entity_id, None, due_date),
        due_date=due_date,
    )


def tracked(f: Finding, first_seen: str = AS_OF, resolved_on: str | None = None) -> TrackedFinding:
    return TrackedFinding(f, first_seen, resolved_on)


def rule_with(severity: str, *, due: bool | None = None, exclude: tuple[str, ...] = ()) -> str:
    """The first rule of a severity (with or without a due date) whose entity is not a client_date."""
    for rule in RULES.values():
        if rule.severity != severity or rule.id in exclude or rule.entity_type == "client_date":
            continue
        if due is not None and rule.has_due_date != due:
            continue
        return rule.id
    raise LookupError(severity)


def sample_digest(name: str = "Riverside Medical Exercise") -> PracticeDigest:
    """3 new critical, 12 open, 4 due this week, 2 resolved: the issue's example subject."""
    notice = rule_with("notice", due=True)
    notice2 = rule_with("notice", due=True, exclude=(notice,))
    warning = rule_with("warning")
    new = [
        tracked(finding("REF-001", "CL000101", "CL000101")),
        tracked(finding("REF-002", "SE000202", "CL000102")),
        tracked(finding("REF-002", "SE000201", "CL000102")),
        tracked(finding(warning, "X000301", "CL000103")),
        tracked(finding(notice, "N000401", "CL000104", due_date="2026-04-03")),
    ]
    still_open = [
        tracked(finding("REF-006", "RF000501", "CL000105"), "2026-03-10"),
        tracked(finding("REF-006", "RF000502", "CL000106"), "2026-02-27"),
        tracked(finding(warning, "X000302", "CL000107"), "2026-03-20"),
        tracked(finding(warning, "X000303", "CL000108"), "2026-03-21"),
        tracked(finding(notice, "N000402", "CL000109", due_date="2026-04-06"), "2026-03-28"),
        tracked(finding(notice2, "N000403", "CL000110", due_date="2026-04-01"), "2026-03-29"),
        tracked(finding(notice2, "N000404", "CL000111", due_date="2026-04-02"), "2026-03-30"),
    ]
    due_soon = [new[4], still_open[4], still_open[5], still_open[6]]
    resolved = [
        tracked(finding("REF-004", "RF000601", "CL000112"), "2026-03-01", AS_OF),
        tracked(finding("REF-004", "RF000602", "CL000113"), "2026-03-02", AS_OF),
    ]
    return PracticeDigest(
        practice_id=PRACTICE,
        practice_name=name,
        as_of=AS_OF,
        new=new,
        still_open=still_open,
        resolved=resolved,
        due_soon=due_soon,
    )


def empty_digest(name: str = "Riverside Medical Exercise") -> PracticeDigest:
    return PracticeDigest(practice_id=PRACTICE, practice_name=name, as_of=AS_OF)


def money_digest(name: str = "Riverside Medical Exercise") -> PracticeDigest:
    """The sample digest with exposure (integer cents), and draft claims failing critical
    rules: COD-001 on line LN000702 of draft claim CM000007 ($80.00), ELG-001 on draft
    claim CM000008 ($450.00); a warning on a draft claim and a critical finding on a
    submitted claim, which are not to be fixed before billing; two draft claims to file
    this week (CM000020 by 2026-04-01, CM000021 by 2026-04-05)."""
    from dataclasses import replace

    from metaudit.results.digest import FilingDeadline, FindingExposure

    base = sample_digest(name)
    warning_claim = rule_with(
        "warning", exclude=tuple(r for r in RULES if RULES[r].entity_type != "claim")
    )
    draft_line = tracked(finding("COD-001", "LN000702", "CL000114", entity_type="claim_line"))
    draft_claim = tracked(finding("ELG-001", "CM000008", "CL000115"))
    submitted = tracked(finding("ELG-001", "CM000009", "CL000116"), "2026-03-15")
    warned = tracked(finding(warning_claim, "CM000010", "CL000117"))
    new = [*base.new, draft_line, draft_claim, warned]
    still_open = [*base.still_open, submitted]
    by_id = {t.finding.entity_id: t.finding.fingerprint for t in (*new, *still_open)}
    exposure = {
        # REF-002 on SE000201 outweighs SE000202, and REF-002 as a rule outweighs REF-001.
        by_id["CL000101"]: FindingExposure(1, 0, 10000, 0),
        by_id["SE000201"]: FindingExposure(2, 0, 0, 12550),
        by_id["SE000202"]: FindingExposure(1, 0, 2500, 0),
        by_id["RF000501"]: FindingExposure(3, 0, 30000, 0),
        by_id["RF000502"]: FindingExposure(1, 0, 0, 500),
        by_id["X000302"]: FindingExposure(1, 0, 7000, 0),
        by_id["LN000702"]: FindingExposure(1, 8000, 0, 0, "CM000007"),
        by_id["CM000008"]: FindingExposure(3, 45000, 0, 0, "CM000008"),
        by_id["CM000009"]: FindingExposure(2, 0, 60000, 0, "CM000009"),
        by_id["CM000010"]: FindingExposure(2, 9900, 0, 0, "CM000010"),
    }
    deadlines = [
        FilingDeadline("CM000021", "CL000119", "2026-01-05", 90, "2026-04-05", 13200),
        FilingDeadline("CM000020", "CL000118", "2026-01-01", 90, "2026-04-01", 9000),
    ]
    return replace(
        base, new=new, still_open=still_open, exposure=exposure, filing_deadlines=deadlines
    )
