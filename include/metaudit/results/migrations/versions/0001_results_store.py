"""The results store: runs, practices, per-practice run status, findings, history, alerts.

Revision ID: 0001
Revises:
Create Date: 2026-04-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

PRACTICE_ID = sa.String(64)
RUN_ID = sa.String(250)
FINGERPRINT = sa.String(400)


def upgrade() -> None:
    op.create_table(
        "audit_runs",
        sa.Column("run_id", RUN_ID, nullable=False),
        sa.Column("dag_id", sa.String(250), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("requested_practices", sa.JSON(), nullable=False),
        sa.Column("practice_ids", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("failed_practices", sa.JSON(), nullable=False),
        sa.Column("unattributed_findings", sa.Integer(), nullable=True),
        sa.Column("timings", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("run_id", name="pk_audit_runs"),
    )
    op.create_index("ix_audit_runs_as_of", "audit_runs", ["as_of"])

    op.create_table(
        "practices",
        sa.Column("practice_id", PRACTICE_ID, nullable=False),
        sa.Column("name", sa.String(250), nullable=False),
        sa.PrimaryKeyConstraint("practice_id", name="pk_practices"),
    )

    op.create_table(
        "practice_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("practice_id", PRACTICE_ID, nullable=True),
        sa.Column("run_id", RUN_ID, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("has_results", sa.Boolean(), nullable=False),
        sa.Column("findings", sa.Integer(), nullable=False),
        sa.Column("critical", sa.Integer(), nullable=False),
        sa.Column("warning", sa.Integer(), nullable=False),
        sa.Column("notice", sa.Integer(), nullable=False),
        sa.Column("results_dir", sa.String(1000), nullable=True),
        sa.Column("timings", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_practice_runs"),
        sa.UniqueConstraint("as_of", "practice_id", name="uq_practice_runs_as_of_practice_id"),
    )
    op.create_index("ix_practice_runs_practice_id", "practice_runs", ["practice_id"])

    op.create_table(
        "findings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("practice_id", PRACTICE_ID, nullable=True),
        sa.Column("fingerprint", FINGERPRINT, nullable=False),
        sa.Column("rule_id", sa.String(16), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("entity_type", sa.String(32), nullable=False),
        sa.Column("entity_id", sa.String(300), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_findings"),
        sa.UniqueConstraint(
            "as_of", "practice_id", "fingerprint", name="uq_findings_as_of_practice_id_fingerprint"
        ),
    )
    op.create_index(
        "ix_findings_practice_id_fingerprint", "findings", ["practice_id", "fingerprint"]
    )

    op.create_table(
        "finding_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("practice_id", PRACTICE_ID, nullable=True),
        sa.Column("fingerprint", FINGERPRINT, nullable=False),
        sa.Column("rule_id", sa.String(16), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("entity_type", sa.String(32), nullable=False),
        sa.Column("entity_id", sa.String(300), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=True),
        sa.Column("first_seen", sa.Date(), nullable=False),
        sa.Column("last_seen", sa.Date(), nullable=False),
        sa.Column("resolved_on", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_finding_history"),
        sa.UniqueConstraint(
            "practice_id", "fingerprint", name="uq_finding_history_practice_id_fingerprint"
        ),
    )

    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dag_id", sa.String(250), nullable=False),
        sa.Column("run_id", RUN_ID, nullable=False),
        sa.Column("task_id", sa.String(250), nullable=False),
        sa.Column("map_index", sa.Integer(), nullable=False),
        sa.Column("try_number", sa.Integer(), nullable=True),
        sa.Column("practice_id", PRACTICE_ID, nullable=True),
        sa.Column("as_of", sa.Date(), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("log_url", sa.String(1000), nullable=True),
        sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
    )
    op.create_index("ix_alerts_run_id", "alerts", ["run_id"])


def downgrade() -> None:
    op.drop_table("alerts")
    op.drop_table("finding_history")
    op.drop_table("findings")
    op.drop_table("practice_runs")
    op.drop_table("practices")
    op.drop_table("audit_runs")
