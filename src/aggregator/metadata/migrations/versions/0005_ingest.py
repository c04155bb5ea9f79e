"""Webhook ingest: ingest streams (signing secret encrypted) and their durable events.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply the change."""
    op.create_table(
        "ingest_streams",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("workspace_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("secret_ciphertext", sa.Text(), nullable=False),
        sa.Column("signature_header", sa.String(length=100), nullable=False),
        sa.Column("max_body_bytes", sa.Integer(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(length=300), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("workspace_id", "name"),
    )
    op.create_index(
        op.f("ix_ingest_streams_workspace_id"), "ingest_streams", ["workspace_id"], unique=False
    )
    op.create_table(
        "ingest_events",
        sa.Column("stream_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("delivery_key", sa.String(length=200), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["stream_id"], ["ingest_streams.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("stream_id", "seq"),
    )
    op.create_index(
        "ix_ingest_events_delivery", "ingest_events", ["stream_id", "delivery_key"], unique=False
    )


def downgrade() -> None:
    """Revert the change."""
    op.drop_index("ix_ingest_events_delivery", table_name="ingest_events")
    op.drop_table("ingest_events")
    op.drop_index(op.f("ix_ingest_streams_workspace_id"), table_name="ingest_streams")
    op.drop_table("ingest_streams")
