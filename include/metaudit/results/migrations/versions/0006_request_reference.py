"""The download trail names a records request's reference (the answers to records requests).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("packet_downloads") as batch:
        batch.add_column(sa.Column("reference", sa.String(250), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("packet_downloads") as batch:
        batch.drop_column("reference")
