"""Packet downloads and rebuild requests: the audit trail of the packets page.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

PRACTICE_ID = sa.String(64)
USER_NAME = sa.String(250)


def upgrade() -> None:
    op.create_table(
        "packet_downloads",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("downloaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_name", USER_NAME, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("practice_id", PRACTICE_ID, nullable=False),
        sa.Column("client_id", sa.String(64), nullable=True),
        sa.Column("period", sa.String(10), nullable=False),
        sa.Column("packet", sa.String(500), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("remote_addr", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_packet_downloads"),
    )
    op.create_index("ix_packet_downloads_practice_id", "packet_downloads", ["practice_id"])
    op.create_index("ix_packet_downloads_downloaded_at", "packet_downloads", ["downloaded_at"])

    op.create_table(
        "packet_rebuilds",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_name", USER_NAME, nullable=False),
        sa.Column("practice_id", PRACTICE_ID, nullable=False),
        sa.Column("client_id", sa.String(64), nullable=True),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("dag_run_id", sa.String(250), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_packet_rebuilds"),
    )
    op.create_index("ix_packet_rebuilds_requested_at", "packet_rebuilds", ["requested_at"])


def downgrade() -> None:
    op.drop_table("packet_rebuilds")
    op.drop_table("packet_downloads")
