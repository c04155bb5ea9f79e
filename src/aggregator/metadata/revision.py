"""The metadata schema revision this package expects, checked without loading Alembic.

Opening a store on an up-to-date database (every run does) only reads ``alembic_version``;
Alembic and its migration scripts load only when an upgrade is needed. A test keeps
:data:`HEADS` equal to the migration scripts' heads.
"""

from __future__ import annotations

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

#: The newest migration revision(s); update together with a new migration script.
HEADS = frozenset({"0009"})


def is_current(engine: Engine) -> bool:
    """True when the database records exactly :data:`HEADS` (nothing to migrate)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return False
        found = frozenset(
            r for (r,) in conn.execute(text("SELECT version_num FROM alembic_version"))
        )
    return found == HEADS
