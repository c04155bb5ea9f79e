"""Schema migrations of the metadata repository, run programmatically with Alembic.

:func:`upgrade` brings any database to the newest revision. A database created by the
pre-Alembic ``create_all`` (it has ``runs`` but no ``alembic_version``) is stamped at the
baseline revision first, then upgraded. On PostgreSQL an advisory lock serialises
concurrent upgrades (several processes starting at once).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Connection, Engine

from aggregator.metadata.models import Base

BASELINE = "0001"
_LOCK_KEY = 7_310_452_001  # arbitrary, constant: pg_advisory_xact_lock key for migrations
_MODEL_MODULES = (
    "aggregator.metadata.models",
    "aggregator.metadata.control_models",
    "aggregator.metadata.quality_models",
    "aggregator.metadata.ingest_models",
    "aggregator.metadata.lineage_models",
    "aggregator.metadata.webhook_models",
    "aggregator.metadata.alert_models",
)


def all_metadata() -> MetaData:
    """The metadata of every table module (optional ones are skipped when absent)."""
    for name in _MODEL_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    return Base.metadata


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations."""
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.attributes["connection"] = connection
    return cfg


@cache
def head_revisions() -> frozenset[str]:
    """The newest revision(s) shipped with this package (several while branches are open)."""
    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


def current_revisions(connection: Connection) -> frozenset[str]:
    """The revision(s) the database is at (empty when never migrated)."""
    return frozenset(MigrationContext.configure(connection).get_current_heads())


def upgrade(engine: Engine, revision: str = "heads") -> None:
    """Migrate the database to ``revision`` (default: every newest revision)."""
    with _migration_connection(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
        current = current_revisions(conn)
        if revision in ("head", "heads") and current == head_revisions():
            return
        cfg = alembic_config(conn)
        if not current and inspect(conn).has_table("runs"):
            command.stamp(cfg, BASELINE)
        newest = _collapsed(current)
        if newest is not None:
            command.stamp(cfg, newest, purge=True)
        command.upgrade(cfg, revision)


def _collapsed(current: frozenset[str]) -> str | None:
    """The one revision standing for ``current`` when branches it was migrated on have since
    been chained (every other current revision is now its ancestor), else None.

    Migrations written in parallel start as branches of the same parent and are chained
    before a release; a database upgraded while they were branches records several heads.
    """
    if len(current) < 2:
        return None
    scripts = ScriptDirectory.from_config(alembic_config())
    for candidate in current:
        ancestors = {r.revision for r in scripts.iterate_revisions(candidate, "base")}
        if current <= ancestors:
            return candidate
    return None


def downgrade(engine: Engine, revision: str) -> None:
    """Revert the database to ``revision`` (``base`` removes every table)."""
    with _migration_connection(engine) as conn:
        command.downgrade(alembic_config(conn), revision)


@contextmanager
def _migration_connection(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction; on SQLite with foreign keys off meanwhile, because
    batch migrations copy and drop tables and must not trigger ON DELETE CASCADE."""
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
        try:
            with conn.begin():
                yield conn
        finally:
            if sqlite:
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()
