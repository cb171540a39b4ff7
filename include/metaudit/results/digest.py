"""What a practice's morning email and packets learn from the results store.

The results store (``metaudit.results``) computes a ``PracticeDigest`` for a
practice and as-of date from the findings history; the email (``metaudit.mail``)
and the packets read only this, so each side is tested without the other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from metaudit.spec.findings import Finding


@dataclass(frozen=True)
class TrackedFinding:
    """A finding with its history: first seen on ``first_seen``; for a resolved
    one, ``resolved_on`` is the as-of date of the run that no longer found it."""

    finding: Finding
    first_seen: str
    resolved_on: str | None = None


@dataclass(frozen=True)
class FindingExposure:
    """The money one finding puts at risk (metaudit.check.exposure), in integer cents per
    class, with the claim its record is (a claim, claim line or claim diagnosis), if any."""

    lines: int = 0
    fix_before_billing: int = 0
    in_flight: int = 0
    recoupment_risk: int = 0
    claim_id: str | None = None

    @property
    def total(self) -> int:
        return self.fix_before_billing + self.in_flight + self.recoupment_risk


@dataclass(frozen=True)
class FindingAttribution:
    """What a finding concerns beyond its record, for the dashboard: the staff member who
    delivered its session (session findings) and the payer of its claim (see
    ``pipeline.stages.stored_attribution``); None where there is none or no single one."""

    staff_id: str | None = None
    payer: str | None = None


@dataclass(frozen=True)
class FilingDeadline:
    """A draft claim's timely-filing deadline, with its lines' charges in cents."""

    claim_id: str
    client_id: str | None
    earliest_service_date: str
    timely_filing_days: int
    deadline: str
    charges: int


@dataclass(frozen=True)
class FindingAcceptance:
    """A compliance lead's acceptance of one finding (e.g. a payer's written exception):
    who recorded it and when (UTC, ISO), why (free text typed by staff: it may hold PHI,
    so the email never carries it), and the last audit date it covers."""

    fingerprint: str
    accepted_by: str
    accepted_at: str
    reason: str
    until: str

    def covers(self, as_of: str) -> bool:
        """Whether the acceptance holds on this audit date (ISO): up to ``until``."""
        return as_of <= self.until


@dataclass(frozen=True)
class PracticeDigest:
    """One practice's findings on one as-of date, split the way a compliance lead reads them.

    ``new``: first seen on this as-of date. ``still_open``: seen on an earlier
    run and still failing. ``resolved``: open on the previous run, gone now.
    ``due_soon``: notices whose due date falls within the coming week (these are
    also in new or still_open). ``exposure``: the money each finding of this
    as-of date puts at risk, by fingerprint (empty when none was stored).
    ``filing_deadlines``: draft claims whose timely-filing deadline falls within the
    coming week, soonest first. ``accepted``: this date's findings under an acceptance
    that covers the date (:class:`FindingAcceptance`, in ``acceptances`` by
    fingerprint); they are in none of new, still_open and due_soon.
    """

    practice_id: str
    practice_name: str
    as_of: str
    new: list[TrackedFinding] = field(default_factory=list)
    still_open: list[TrackedFinding] = field(default_factory=list)
    resolved: list[TrackedFinding] = field(default_factory=list)
    due_soon: list[TrackedFinding] = field(default_factory=list)
    run_url: str | None = None
    packets_url: str | None = None
    exposure: dict[str, FindingExposure] = field(default_factory=dict)
    filing_deadlines: list[FilingDeadline] = field(default_factory=list)
    accepted: list[TrackedFinding] = field(default_factory=list)
    acceptances: dict[str, FindingAcceptance] = field(default_factory=dict)

    def exposure_of(self, finding: Finding) -> FindingExposure:
        """The finding's exposure; zero when none was stored for it."""
        return self.exposure.get(finding.fingerprint, _NO_EXPOSURE)


_NO_EXPOSURE = FindingExposure()


# What a row of filing_deadlines.jsonl must hold (it also names its practice).
_DEADLINE_KEYS = (*(f.name for f in fields(FilingDeadline)), "practice_id")


def read_deadlines(path: Path) -> list[FilingDeadline]:
    """Read a filing_deadlines.jsonl back (money as exact integer cents)."""
    from decimal import Decimal

    out = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            data: dict[str, Any] = json.loads(line, parse_float=Decimal)
            missing = [name for name in _DEADLINE_KEYS if name not in data]
            if missing:
                raise ValueError(f"{path}:{number}: deadline row without {missing}")
            out.append(
                FilingDeadline(
                    claim_id=str(data["claim_id"]),
                    client_id=data["client_id"],
                    earliest_service_date=str(data["earliest_service_date"]),
                    timely_filing_days=int(data["timely_filing_days"]),
                    deadline=str(data["deadline"]),
                    charges=int(Decimal(data["charges"]) * 100),
                )
            )
    return out
