"""Exposure (the money each stored finding puts at risk) and the draft claims'
timely-filing deadlines, beside the findings.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

PRACTICE_ID = sa.String(64)
FINGERPRINT = sa.String(400)


def upgrade() -> None:
    op.create_table(
        "finding_exposure",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("practice_id", PRACTICE_ID, nullable=True),
        sa.Column("fingerprint", FINGERPRINT, nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("fix_before_billing", sa.BigInteger(), nullable=False),
        sa.Column("in_flight", sa.BigInteger(), nullable=False),
        sa.Column("recoupment_risk", sa.BigInteger(), nullable=False),
        sa.Column("claim_id", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_finding_exposure"),
        sa.UniqueConstraint(
            "as_of",
            "practice_id",
            "fingerprint",
            name="uq_finding_exposure_as_of_practice_id_fingerprint",
        ),
    )

    op.create_table(
        "filing_deadlines",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("practice_id", PRACTICE_ID, nullable=True),
        sa.Column("claim_id", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=True),
        sa.Column("earliest_service_date", sa.Date(), nullable=False),
        sa.Column("timely_filing_days", sa.Integer(), nullable=False),
        sa.Column("deadline", sa.Date(), nullable=False),
        sa.Column("charges", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_filing_deadlines"),
        sa.UniqueConstraint(
            "as_of",
            "practice_id",
            "claim_id",
            name="uq_filing_deadlines_as_of_practice_id_claim_id",
        ),
    )


def downgrade() -> None:
    op.drop_table("filing_deadlines")
    op.drop_table("finding_exposure")
