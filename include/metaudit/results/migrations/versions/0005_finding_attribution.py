"""Each stored finding's staff member (session findings) and payer, for the dashboard.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

PRACTICE_ID = sa.String(64)
FINGERPRINT = sa.String(400)


def upgrade() -> None:
    op.create_table(
        "finding_attribution",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("practice_id", PRACTICE_ID, nullable=True),
        sa.Column("fingerprint", FINGERPRINT, nullable=False),
        sa.Column("staff_id", sa.String(64), nullable=True),
        sa.Column("payer", sa.String(250), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_finding_attribution"),
        sa.UniqueConstraint(
            "as_of",
            "practice_id",
            "fingerprint",
            name="uq_finding_attribution_as_of_practice_id_fingerprint",
        ),
    )


def downgrade() -> None:
    op.drop_table("finding_attribution")
