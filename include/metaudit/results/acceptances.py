"""The results store's acceptances of findings: "accepted, until" with who, when and why.

A compliance lead accepts a finding of a practice (by fingerprint) when it is known
and allowed, e.g. under a payer's written exception, until a date. Every acceptance
and every withdrawal is a row of ``finding_acceptances``, appended and never
changed: the latest row of a finding says whether an acceptance is in force. An
acceptance covers every audit date up to its ``until`` date (earlier dates too: it
states that the finding is accepted, not when it was noticed); after that date it
lapses and the finding counts as open again. A second acceptance of the same finding
renews it (new reason, new date); a withdrawal ends it at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from metaudit.errors import MetAuditError
from metaudit.results.base import ACCEPTANCES, HISTORY, StoreBase, as_date, utc_now
from metaudit.results.digest import FindingAcceptance

ACCEPTED = "accepted"
WITHDRAWN = "withdrawn"
REASON_LENGTH = 1000
# Tabs and line breaks are text; other control characters are not.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class AcceptanceError(MetAuditError, ValueError):
    """An acceptance or withdrawal the store refuses; the message says why, for the user."""


class UnknownFindingError(AcceptanceError, LookupError):
    """The practice has never had a finding of that fingerprint."""


@dataclass(frozen=True)
class AcceptanceEvent:
    """One row of the trail: an acceptance or its withdrawal."""

    id: int
    recorded_at: datetime
    practice_id: str
    fingerprint: str
    action: str
    user_name: str
    reason: str
    until: date | None


def check_reason(reason: str | None, *, required: bool = True) -> str:
    """The reason as stored (stripped); refuses an empty (when required) or overlong one."""
    text = (reason or "").strip()
    if required and not text:
        raise AcceptanceError("a reason is required (e.g. the payer's written exception)")
    if len(text) > REASON_LENGTH:
        raise AcceptanceError(f"the reason must be at most {REASON_LENGTH} characters")
    if _CONTROL.search(text):
        raise AcceptanceError("the reason must not hold control characters")
    return text


def check_until(until: date, today: date) -> date:
    """The until date; refuses one in the past (an acceptance that never holds)."""
    if until < today:
        raise AcceptanceError(
            f"the until date {until.isoformat()} is in the past (today is {today.isoformat()})"
        )
    return until


class AcceptanceRecords(StoreBase):
    """The acceptances of findings and their trail in the results store."""

    def accept_finding(
        self,
        practice_id: str,
        fingerprint: str,
        *,
        user_name: str,
        reason: str,
        until: date,
        today: date | None = None,
    ) -> FindingAcceptance:
        """Accept one finding of a practice until ``until`` (renewing one in force).

        Raises :class:`UnknownFindingError` when the practice never had that finding
        and :class:`AcceptanceError` for an empty or overlong reason or a past date.
        """
        text = check_reason(reason)
        check_until(until, today or utc_now().date())
        if not user_name:
            raise AcceptanceError("an acceptance needs the name of the user who records it")
        with self._transaction() as conn:
            self._known(conn, practice_id, fingerprint)
            when = utc_now()
            conn.execute(
                ACCEPTANCES.insert().values(
                    recorded_at=when,
                    practice_id=practice_id,
                    fingerprint=fingerprint,
                    action=ACCEPTED,
                    user_name=user_name,
                    reason=text,
                    until=until,
                )
            )
        return FindingAcceptance(
            fingerprint=fingerprint,
            accepted_by=user_name,
            accepted_at=when.isoformat(),
            reason=text,
            until=until.isoformat(),
        )

    def withdraw_acceptance(
        self, practice_id: str, fingerprint: str, *, user_name: str, reason: str = ""
    ) -> None:
        """Withdraw the finding's acceptance (lapsed or not): it counts as open again on
        every date. Raises :class:`AcceptanceError` when none is recorded."""
        text = check_reason(reason, required=False)
        with self._transaction() as conn:
            self._known(conn, practice_id, fingerprint)
            current = in_force(conn, practice_id, fingerprint)
            if fingerprint not in current:
                raise AcceptanceError("this finding has no acceptance to withdraw")
            conn.execute(
                ACCEPTANCES.insert().values(
                    recorded_at=utc_now(),
                    practice_id=practice_id,
                    fingerprint=fingerprint,
                    action=WITHDRAWN,
                    user_name=user_name,
                    reason=text,
                    until=None,
                )
            )

    def acceptances(
        self, practice_id: str, as_of: date | None = None
    ) -> dict[str, FindingAcceptance]:
        """The practice's acceptances not withdrawn, by fingerprint; with ``as_of``, only
        those covering that audit date (not lapsed by then)."""
        with self.engine.connect() as conn:
            return in_force(conn, practice_id, as_of=as_of)

    def acceptance_trail(
        self, practice_id: str, fingerprint: str | None = None
    ) -> list[AcceptanceEvent]:
        """Every acceptance and withdrawal of the practice (of one finding), oldest first."""
        table = ACCEPTANCES
        query = sa.select(table).where(table.c.practice_id == practice_id)
        if fingerprint is not None:
            query = query.where(table.c.fingerprint == fingerprint)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(table.c.id)).mappings().all()
        return [
            AcceptanceEvent(
                id=row["id"],
                recorded_at=row["recorded_at"],
                practice_id=row["practice_id"],
                fingerprint=row["fingerprint"],
                action=row["action"],
                user_name=row["user_name"],
                reason=row["reason"],
                until=as_date(row["until"]) if row["until"] is not None else None,
            )
            for row in rows
        ]

    def _known(self, conn: sa.Connection, practice_id: str, fingerprint: str) -> None:
        found = conn.execute(
            sa.select(HISTORY.c.id).where(
                HISTORY.c.practice_id == practice_id, HISTORY.c.fingerprint == fingerprint
            )
        ).first()
        if found is None:
            raise UnknownFindingError(
                f"practice {practice_id} has no finding with fingerprint {fingerprint}"
            )


def in_force(
    conn: sa.Connection,
    practice_id: str,
    fingerprint: str | None = None,
    as_of: date | None = None,
) -> dict[str, FindingAcceptance]:
    """The practice's acceptances not withdrawn (each finding's latest row, when it is an
    acceptance), by fingerprint; with ``as_of``, only those covering that audit date."""
    table = ACCEPTANCES
    latest = sa.select(sa.func.max(table.c.id)).where(table.c.practice_id == practice_id)
    if fingerprint is not None:
        latest = latest.where(table.c.fingerprint == fingerprint)
    latest = latest.group_by(table.c.fingerprint)
    query = sa.select(table).where(table.c.id.in_(latest), table.c.action == ACCEPTED)
    if as_of is not None:
        query = query.where(table.c.until >= as_of)
    return {row["fingerprint"]: _acceptance(row) for row in conn.execute(query).mappings()}


def _acceptance(row: Any) -> FindingAcceptance:
    recorded = row["recorded_at"]
    return FindingAcceptance(
        fingerprint=row["fingerprint"],
        accepted_by=row["user_name"],
        accepted_at=recorded.isoformat() if isinstance(recorded, datetime) else str(recorded),
        reason=row["reason"],
        until=as_date(row["until"]).isoformat(),
    )


def accepted_table(practice_id: str | None = None) -> sa.Subquery:
    """The acceptances in force as a subquery (practice_id, fingerprint, until), of one
    practice or (None) of every practice: each finding's latest row, when an acceptance.
    A finding of audit date D is accepted when it joins a row with ``until >= D``."""
    table = ACCEPTANCES
    latest = sa.select(sa.func.max(table.c.id)).group_by(table.c.practice_id, table.c.fingerprint)
    if practice_id is not None:
        latest = latest.where(table.c.practice_id == practice_id)
    return (
        sa.select(table.c.practice_id, table.c.fingerprint, table.c.until)
        .where(table.c.id.in_(latest), table.c.action == ACCEPTED)
        .subquery("accepted")
    )
