"""Alembic migrations on SQLite and the real PostgreSQL: they agree with the models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import DBAPIError

from aggregator.metadata import migrate, revision
from aggregator.metadata.models import Base
from aggregator.metadata.store import MetadataStore, RunRecord
from tests.integration.api.pgdb import fresh_database

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pg_db(pg_url: str) -> Iterator[str]:
    with fresh_database(pg_url) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'm.db'}"
        return
    url = request.getfixturevalue("pg_db")
    if _revision(url):  # start every test from an empty database
        engine = create_engine(url)
        migrate.downgrade(engine, "base")
        engine.dispose()
    yield url


def _revision(url: str) -> frozenset[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return migrate.current_revisions(conn)
    finally:
        engine.dispose()


def test_models_and_migrations_agree(db_url: str) -> None:
    store = MetadataStore(db_url)
    with store.engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}),
            migrate.all_metadata(),
        )
    store.engine.dispose()
    assert diff == []


def test_every_table_on_base_is_migrated(db_url: str) -> None:
    store = MetadataStore(db_url)
    tables = set(inspect(store.engine).get_table_names())
    store.engine.dispose()
    assert set(migrate.all_metadata().tables) <= tables
    assert _revision(db_url) == migrate.head_revisions()


def test_downgrade_to_base_and_up_again(db_url: str) -> None:
    engine = create_engine(db_url)
    migrate.upgrade(engine)
    migrate.downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(engine)
    assert "audit_events" in inspect(engine).get_table_names()
    engine.dispose()


def test_seeded_roles_and_default_workspace(db_url: str) -> None:
    store = MetadataStore(db_url)
    with store.engine.connect() as conn:
        roles = {r for (r,) in conn.execute(text("SELECT name FROM roles"))}
        workspaces = [w for (w,) in conn.execute(text("SELECT name FROM workspaces"))]
    store.engine.dispose()
    assert roles == {"admin", "editor", "operator", "viewer"}
    assert workspaces == ["default"]


def test_audit_table_refuses_update_and_delete(db_url: str) -> None:
    store = MetadataStore(db_url)
    insert = text(
        "INSERT INTO audit_events (seq, at, actor, action, outcome, details, prev_hash, hash) "
        "VALUES (1, CURRENT_TIMESTAMP, 'a', 'x', 'ok', '{}', '0', 'h1')"
    )
    with store.engine.begin() as conn:
        conn.execute(insert)
    for statement in ("UPDATE audit_events SET actor = 'b'", "DELETE FROM audit_events"):
        with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as conn:
            conn.execute(text(statement))
    store.engine.dispose()


def test_store_methods_work_after_migration(db_url: str) -> None:
    store = MetadataStore(db_url)
    store.start_run("r1", "p", False, None)
    record = store.get_run("r1")
    assert record is not None and record.status == "running"
    store.finish_run(RunRecord("r1", "p", "succeeded", record.started_at))
    assert [r.id for r in store.list_runs("p")] == ["r1"]
    assert store.add_schema_version("p", "s", [], {}, "r1") == 1
    assert store.mark_interrupted("p") == 0
    store.engine.dispose()


def test_pre_alembic_database_is_stamped_and_upgraded(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'legacy.db'}"
    engine = create_engine(url)
    legacy = [Base.metadata.tables[t] for t in ("runs", "run_streams", "schema_versions")]
    Base.metadata.create_all(engine, tables=legacy)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO runs (id, pipeline, status, started_at, full_refresh) "
                "VALUES ('old', 'p', 'succeeded', '2026-01-01 00:00:00', 0)"
            )
        )
    engine.dispose()
    store = MetadataStore(url)
    assert store.get_run("old") is not None
    assert "users" in inspect(store.engine).get_table_names()
    store.engine.dispose()


def test_quality_tables_made_by_create_all_are_adopted(tmp_path: Path) -> None:
    """The quality service used ``create_all`` before migration 0003 existed."""
    url = f"sqlite:///{tmp_path / 'q.db'}"
    engine = create_engine(url)
    migrate.upgrade(engine, "0002")
    metadata = migrate.all_metadata()
    quality = [metadata.tables[t] for t in ("quality_results", "stream_profiles")]
    metadata.create_all(engine, tables=quality)
    migrate.upgrade(engine)
    with engine.connect() as conn:
        assert migrate.current_revisions(conn) == migrate.head_revisions()
    engine.dispose()


def test_database_migrated_on_branches_upgrades_after_they_are_chained(tmp_path: Path) -> None:
    """0005-0007 were written as parallel branches of 0004 and later chained: a database
    that recorded all three as heads is stamped at the newest and upgrades normally."""
    url = f"sqlite:///{tmp_path / 'branches.db'}"
    engine = create_engine(url)
    migrate.upgrade(engine)
    newest = max(migrate.head_revisions())
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM alembic_version"))
        for revision in ("0005", "0006", newest):
            conn.execute(text("INSERT INTO alembic_version VALUES (:r)"), {"r": revision})
    migrate.upgrade(engine)
    with engine.connect() as conn:
        assert migrate.current_revisions(conn) == migrate.head_revisions() == {newest}
    engine.dispose()


def test_expected_heads_match_the_migration_scripts(tmp_path: Path) -> None:
    """``revision.HEADS`` (checked on every store open without Alembic) is the scripts' heads."""
    assert migrate.head_revisions() == revision.HEADS
    engine = create_engine(f"sqlite:///{tmp_path / 'h.db'}")
    assert not revision.is_current(engine)
    migrate.upgrade(engine)
    assert revision.is_current(engine)
    engine.dispose()
