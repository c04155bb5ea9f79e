"""Schema versions keep the source's stream metadata (keys, cursor, size, native types).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply the change (a database created from the models before Alembic may have it)."""
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("schema_versions")}
    if "stream_metadata" not in columns:
        op.add_column("schema_versions", sa.Column("stream_metadata", sa.JSON(), nullable=True))


def downgrade() -> None:
    """Revert the change."""
    with op.batch_alter_table("schema_versions") as batch:
        batch.drop_column("stream_metadata")
