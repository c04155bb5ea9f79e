"""Runs started through the API: run controls (cancel), run logs and live progress.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply the change."""
    op.create_table(
        "run_controls",
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("workspace_id", sa.String(length=36), nullable=False),
        sa.Column("pipeline_id", sa.String(length=36), nullable=False),
        sa.Column("pipeline_version", sa.Integer(), nullable=False),
        sa.Column("triggered_by", sa.String(length=300), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancel_requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_requested_by", sa.String(length=300), nullable=True),
        sa.PrimaryKeyConstraint("run_id"),
    )
    op.create_index("ix_run_controls_workspace_id", "run_controls", ["workspace_id"])
    op.create_index("ix_run_controls_pipeline_id", "run_controls", ["pipeline_id"])
    op.create_table(
        "run_logs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("level", sa.String(length=10), nullable=False),
        sa.Column("stream", sa.String(length=200), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "seq"),
    )
    op.create_index("ix_run_logs_run_id", "run_logs", ["run_id"])
    op.create_table(
        "run_progress",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("stream", sa.String(length=200), nullable=False),
        sa.Column("rows_read", sa.Integer(), nullable=False),
        sa.Column("rows_loaded", sa.Integer(), nullable=False),
        sa.Column("rows_committed", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "stream"),
    )
    op.create_index("ix_run_progress_run_id", "run_progress", ["run_id"])


def downgrade() -> None:
    """Revert the change."""
    op.drop_index("ix_run_progress_run_id", table_name="run_progress")
    op.drop_table("run_progress")
    op.drop_index("ix_run_logs_run_id", table_name="run_logs")
    op.drop_table("run_logs")
    op.drop_index("ix_run_controls_pipeline_id", table_name="run_controls")
    op.drop_index("ix_run_controls_workspace_id", table_name="run_controls")
    op.drop_table("run_controls")
