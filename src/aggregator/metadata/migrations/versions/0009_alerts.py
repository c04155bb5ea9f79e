"""Alert rules on finished runs and the alerts they raised.

Revision ID: 0009
Revises: 0007
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply the change."""
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("workspace_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("condition", sa.String(length=40), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("pipelines", sa.JSON(), nullable=True),
        sa.Column("webhook_id", sa.String(length=36), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=300), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"]),
        sa.ForeignKeyConstraint(["webhook_id"], ["webhooks.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("workspace_id", "name"),
    )
    op.create_index("ix_alert_rules_workspace_id", "alert_rules", ["workspace_id"])
    op.create_index("ix_alert_rules_webhook_id", "alert_rules", ["webhook_id"])
    op.create_table(
        "alert_events",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("workspace_id", sa.String(length=36), nullable=False),
        sa.Column("rule_id", sa.String(length=36), nullable=False),
        sa.Column("rule_name", sa.String(length=100), nullable=False),
        sa.Column("condition", sa.String(length=40), nullable=False),
        sa.Column("pipeline", sa.String(length=200), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("message", sa.String(length=1000), nullable=False),
        sa.Column("observed", sa.JSON(), nullable=False),
        sa.Column("delivery_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    for column in ("workspace_id", "rule_id", "pipeline", "run_id", "created_at"):
        op.create_index(f"ix_alert_events_{column}", "alert_events", [column])


def downgrade() -> None:
    """Revert the change."""
    for column in ("workspace_id", "rule_id", "pipeline", "run_id", "created_at"):
        op.drop_index(f"ix_alert_events_{column}", table_name="alert_events")
    op.drop_table("alert_events")
    op.drop_index("ix_alert_rules_webhook_id", table_name="alert_rules")
    op.drop_index("ix_alert_rules_workspace_id", table_name="alert_rules")
    op.drop_table("alert_rules")
