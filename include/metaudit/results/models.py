"""The results store's tables (SQLAlchemy models); Alembic migrations create them.

Twelve tables, each keyed the way a rerun must find its own rows again:

- ``audit_runs``: one row per Airflow run (run id, as-of date, the practices it
  planned, its status, the practices that failed, extract timings).
- ``practices``: practice id and name as last read from the source (the digest
  and the emails name practices by name).
- ``practice_runs``: one row per as-of date and practice (practice NULL: the
  run-level findings of rows whose parent is missing): the latest attempt's
  status, finding counts, stage timings and error; ``has_results`` stays true
  once the date's findings were stored, also when a later attempt failed.
- ``findings``: the findings of each as-of date and practice, one row per
  fingerprint; a rerun of the date replaces them.
- ``finding_history``: per practice and fingerprint, the latest stretch of
  consecutive as-of dates with results that found it (``first_seen`` to
  ``last_seen``) and ``resolved_on``, the first as-of date with results after
  ``last_seen`` (NULL while still open). Recomputed from ``findings`` after every
  store, so a rerun of an earlier date keeps it consistent.
- ``finding_exposure``: the money each stored finding puts at risk (integer
  cents per class, as the validate stage's ``exposure.jsonl`` gives it), keyed
  like ``findings`` by as-of date, practice and fingerprint, and replaced with
  them; ``claim_id`` is the claim the finding's record is, if any.
- ``finding_attribution``: who and what each stored finding concerns beyond its
  record, for the dashboard: the staff member who delivered a session's finding
  (``staff_id``) and the payer of the finding's claim (``payer``), keyed and replaced
  like ``findings``.
- ``filing_deadlines``: the draft claims of each as-of date and practice with
  their timely-filing deadline (``filing_deadlines.jsonl``), one row per claim,
  replaced with the findings.
- ``alerts``: task failures recorded by the failure callback for the admins;
  ``notified_at`` is set by whatever delivers them.
- ``packet_downloads``: every packet served by the packets page (who, when,
  which file, its size and SHA-256, whether it verified), written before the
  first byte is sent; the answers to records requests too (kind ``request``, with
  the requester's ``reference``).
- ``packet_rebuilds``: every packet rebuild an admin asked for from the page,
  with the Airflow run it triggered or the error that stopped it.
- ``finding_acceptances``: the append-only trail of acceptances of findings (a
  compliance lead's "accepted, until", e.g. a payer's written exception) and their
  withdrawals, per practice and fingerprint; the latest row of a finding says
  whether an acceptance is in force (rows are never updated or deleted).

``practice_id`` is NULL for findings that name no practice, so those rows are
keyed by a surrogate id and the store keeps (as-of, practice, fingerprint)
unique itself (a unique constraint does it for named practices).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# The store's own Alembic version table: it may share a database with Airflow's metadata.
VERSION_TABLE = "metaudit_alembic_version"
# Lengths bound the keys (MySQL indexes need them); ids of the contract are short.
PRACTICE_ID = sa.String(64)
RUN_ID = sa.String(250)
FINGERPRINT = sa.String(400)
USER_NAME = sa.String(250)


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING)


class AuditRun(Base):
    __tablename__ = "audit_runs"

    run_id: Mapped[str] = mapped_column(RUN_ID, primary_key=True)
    dag_id: Mapped[str] = mapped_column(sa.String(250))
    as_of: Mapped[date] = mapped_column(sa.Date, index=True)
    requested_practices: Mapped[list[str]] = mapped_column(sa.JSON)
    practice_ids: Mapped[list[str]] = mapped_column(sa.JSON)
    status: Mapped[str] = mapped_column(sa.String(16))
    failed_practices: Mapped[list[str]] = mapped_column(sa.JSON)
    unattributed_findings: Mapped[int | None] = mapped_column(sa.Integer)
    timings: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    started_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class Practice(Base):
    __tablename__ = "practices"

    practice_id: Mapped[str] = mapped_column(PRACTICE_ID, primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(250))


class PracticeRun(Base):
    __tablename__ = "practice_runs"
    __table_args__ = (sa.UniqueConstraint("as_of", "practice_id"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    as_of: Mapped[date] = mapped_column(sa.Date)
    practice_id: Mapped[str | None] = mapped_column(PRACTICE_ID, index=True)
    run_id: Mapped[str] = mapped_column(RUN_ID)
    status: Mapped[str] = mapped_column(sa.String(16))
    has_results: Mapped[bool] = mapped_column(sa.Boolean)
    findings: Mapped[int] = mapped_column(sa.Integer)
    critical: Mapped[int] = mapped_column(sa.Integer)
    warning: Mapped[int] = mapped_column(sa.Integer)
    notice: Mapped[int] = mapped_column(sa.Integer)
    results_dir: Mapped[str | None] = mapped_column(sa.String(1000))
    timings: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    error: Mapped[str | None] = mapped_column(sa.Text)
    started_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class StoredFinding(Base):
    __tablename__ = "findings"
    __table_args__ = (
        sa.UniqueConstraint("as_of", "practice_id", "fingerprint"),
        sa.Index(None, "practice_id", "fingerprint"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    as_of: Mapped[date] = mapped_column(sa.Date)
    practice_id: Mapped[str | None] = mapped_column(PRACTICE_ID)
    fingerprint: Mapped[str] = mapped_column(FINGERPRINT)
    rule_id: Mapped[str] = mapped_column(sa.String(16))
    severity: Mapped[str] = mapped_column(sa.String(16))
    entity_type: Mapped[str] = mapped_column(sa.String(32))
    entity_id: Mapped[str] = mapped_column(sa.String(300))
    client_id: Mapped[str | None] = mapped_column(sa.String(64))
    message: Mapped[str] = mapped_column(sa.Text)
    due_date: Mapped[date | None] = mapped_column(sa.Date)


class StoredExposure(Base):
    __tablename__ = "finding_exposure"
    __table_args__ = (sa.UniqueConstraint("as_of", "practice_id", "fingerprint"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    as_of: Mapped[date] = mapped_column(sa.Date)
    practice_id: Mapped[str | None] = mapped_column(PRACTICE_ID)
    fingerprint: Mapped[str] = mapped_column(FINGERPRINT)
    lines: Mapped[int] = mapped_column(sa.Integer)
    # Integer cents.
    fix_before_billing: Mapped[int] = mapped_column(sa.BigInteger)
    in_flight: Mapped[int] = mapped_column(sa.BigInteger)
    recoupment_risk: Mapped[int] = mapped_column(sa.BigInteger)
    claim_id: Mapped[str | None] = mapped_column(sa.String(64))


class StoredAttribution(Base):
    __tablename__ = "finding_attribution"
    __table_args__ = (sa.UniqueConstraint("as_of", "practice_id", "fingerprint"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    as_of: Mapped[date] = mapped_column(sa.Date)
    practice_id: Mapped[str | None] = mapped_column(PRACTICE_ID)
    fingerprint: Mapped[str] = mapped_column(FINGERPRINT)
    staff_id: Mapped[str | None] = mapped_column(sa.String(64))
    payer: Mapped[str | None] = mapped_column(sa.String(250))


class StoredFilingDeadline(Base):
    __tablename__ = "filing_deadlines"
    __table_args__ = (sa.UniqueConstraint("as_of", "practice_id", "claim_id"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    as_of: Mapped[date] = mapped_column(sa.Date)
    practice_id: Mapped[str | None] = mapped_column(PRACTICE_ID)
    claim_id: Mapped[str] = mapped_column(sa.String(64))
    client_id: Mapped[str | None] = mapped_column(sa.String(64))
    earliest_service_date: Mapped[date] = mapped_column(sa.Date)
    timely_filing_days: Mapped[int] = mapped_column(sa.Integer)
    deadline: Mapped[date] = mapped_column(sa.Date)
    charges: Mapped[int] = mapped_column(sa.BigInteger)  # integer cents


class FindingHistory(Base):
    __tablename__ = "finding_history"
    __table_args__ = (sa.UniqueConstraint("practice_id", "fingerprint"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    practice_id: Mapped[str | None] = mapped_column(PRACTICE_ID)
    fingerprint: Mapped[str] = mapped_column(FINGERPRINT)
    rule_id: Mapped[str] = mapped_column(sa.String(16))
    severity: Mapped[str] = mapped_column(sa.String(16))
    entity_type: Mapped[str] = mapped_column(sa.String(32))
    entity_id: Mapped[str] = mapped_column(sa.String(300))
    client_id: Mapped[str | None] = mapped_column(sa.String(64))
    first_seen: Mapped[date] = mapped_column(sa.Date)
    last_seen: Mapped[date] = mapped_column(sa.Date)
    resolved_on: Mapped[date | None] = mapped_column(sa.Date)


class Alert(Base):
    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    dag_id: Mapped[str] = mapped_column(sa.String(250))
    run_id: Mapped[str] = mapped_column(RUN_ID, index=True)
    task_id: Mapped[str] = mapped_column(sa.String(250))
    map_index: Mapped[int] = mapped_column(sa.Integer)
    try_number: Mapped[int | None] = mapped_column(sa.Integer)
    practice_id: Mapped[str | None] = mapped_column(PRACTICE_ID)
    as_of: Mapped[date | None] = mapped_column(sa.Date)
    error: Mapped[str] = mapped_column(sa.Text)
    log_url: Mapped[str | None] = mapped_column(sa.String(1000))
    notified_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class PacketDownload(Base):
    __tablename__ = "packet_downloads"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    downloaded_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), index=True)
    user_name: Mapped[str] = mapped_column(USER_NAME)
    kind: Mapped[str] = mapped_column(sa.String(16))
    practice_id: Mapped[str] = mapped_column(PRACTICE_ID, index=True)
    client_id: Mapped[str | None] = mapped_column(sa.String(64))
    period: Mapped[str] = mapped_column(sa.String(10))  # as-of date, or YYYY-MM
    packet: Mapped[str] = mapped_column(sa.String(500))  # path below the packets folder
    size: Mapped[int] = mapped_column(sa.BigInteger)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    verified: Mapped[bool] = mapped_column(sa.Boolean)
    remote_addr: Mapped[str | None] = mapped_column(sa.String(64))
    # A records request's answer: the requester's reference (NULL for other packets).
    reference: Mapped[str | None] = mapped_column(sa.String(250))


class PacketRebuild(Base):
    __tablename__ = "packet_rebuilds"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    requested_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), index=True)
    user_name: Mapped[str] = mapped_column(USER_NAME)
    practice_id: Mapped[str] = mapped_column(PRACTICE_ID)
    client_id: Mapped[str | None] = mapped_column(sa.String(64))
    as_of: Mapped[date] = mapped_column(sa.Date)
    dag_run_id: Mapped[str | None] = mapped_column(RUN_ID)
    status: Mapped[str] = mapped_column(sa.String(16))  # triggered | failed
    error: Mapped[str | None] = mapped_column(sa.Text)


class FindingAcceptanceEvent(Base):
    __tablename__ = "finding_acceptances"
    __table_args__ = (sa.Index(None, "practice_id", "fingerprint"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    recorded_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    practice_id: Mapped[str] = mapped_column(PRACTICE_ID)
    fingerprint: Mapped[str] = mapped_column(FINGERPRINT)
    action: Mapped[str] = mapped_column(sa.String(16))  # accepted | withdrawn
    user_name: Mapped[str] = mapped_column(USER_NAME)
    reason: Mapped[str] = mapped_column(sa.Text)
    # The last audit date the acceptance covers (NULL on a withdrawal).
    until: Mapped[date | None] = mapped_column(sa.Date)
