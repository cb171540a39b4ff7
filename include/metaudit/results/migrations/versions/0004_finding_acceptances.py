"""The append-only trail of acceptances of findings and their withdrawals.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

PRACTICE_ID = sa.String(64)
FINGERPRINT = sa.String(400)
USER_NAME = sa.String(250)


def upgrade() -> None:
    op.create_table(
        "finding_acceptances",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("practice_id", PRACTICE_ID, nullable=False),
        sa.Column("fingerprint", FINGERPRINT, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("user_name", USER_NAME, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("until", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_finding_acceptances"),
    )
    op.create_index(
        "ix_finding_acceptances_practice_id_fingerprint",
        "finding_acceptances",
        ["practice_id", "fingerprint"],
    )


def downgrade() -> None:
    op.drop_index(
        "ix_finding_acceptances_practice_id_fingerprint", table_name="finding_acceptances"
    )
    op.drop_table("finding_acceptances")
