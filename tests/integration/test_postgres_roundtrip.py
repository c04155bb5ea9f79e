"""Every column of the benchmark's wide table round-trips exactly, value by value.

PostgreSQL -> DuckDB and PostgreSQL -> PostgreSQL through the engine, then the source and
destination rows are compared: numeric scale, time zone instants, naive timestamps, JSON
text, UUIDs, arrays (with NULL elements and empty ones), dates far in the past, floats.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from aggregator.metadata.store import MetadataStore
from tests.integration.databases.pg import PgSchema, pg_schema, run

pytestmark = pytest.mark.integration

COLUMNS = (
    "id, name, email, amount, created_at, birth, active, payload, uid, score, tags, updated_at"
)
EDGE_ROWS = """
INSERT INTO wide VALUES
 (0, 'ünïcødé ✓ "q" , x', '', -0.01, '1969-12-31 23:59:59.999999+00', '0001-01-01', NULL,
  '{"a": "é", "n": null, "deep": {"x": [1.5, "2", 1e400]}}', '00000000-0000-0000-0000-000000000000',
  -1e-300, ARRAY[]::text[], '1900-01-01 00:00:00.000001'),
 (-1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (-2, 'a', 'b', 9999999999.99, '2262-04-11 23:47:16.854775+05:30', '9999-12-31', true,
  '[]', 'ffffffff-ffff-ffff-ffff-ffffffffffff', 'NaN', ARRAY['x', NULL, ''], '2100-02-28 23:59:59')
"""


@pytest.fixture
def wide(pg_url: str) -> Iterator[PgSchema]:
    for db in pg_schema(pg_url):
        db.load_wide(3000)
        db.execute(EDGE_ROWS)
        yield db


def normalized(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """Decimals by their text (so the scale counts), NaN floats as text."""
    out = []
    for value in row:
        if type(value).__name__ == "Decimal":
            out.append(("decimal", str(value)))
        elif isinstance(value, float) and value != value:
            out.append("nan")
        else:
            out.append(value)
    return tuple(out)


def source_rows(db: PgSchema) -> list[tuple[Any, ...]]:
    select = COLUMNS.replace("payload", "payload::text")
    return [normalized(r) for r in db.execute(f"SELECT {select} FROM wide ORDER BY id")]


def test_wide_roundtrips_to_duckdb(wide: PgSchema, store: MetadataStore, tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    record = run(
        store,
        wide.source(range_rows=1000, parallel=2, batch_size=512),
        {"type": "duckdb", "config": {"path": str(path)}},
        [{"name": "wide", "primary_key": ["id"], "write_mode": "merge"}],
    )
    assert record.status == "succeeded", record.error
    assert record.streams[0].rows_loaded == 3003 and record.streams[0].rows_quarantined == 0
    con = duckdb.connect(str(path))
    types = dict(
        con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'wide'"
        ).fetchall()
    )
    assert types["amount"] == "DECIMAL(12,2)" and types["payload"] == "JSON"
    assert types["uid"] == "UUID" and types["tags"] == "VARCHAR[]"
    assert types["created_at"] == "TIMESTAMP WITH TIME ZONE"
    assert types["updated_at"] == "TIMESTAMP"
    select = COLUMNS.replace("payload", "payload::VARCHAR")
    got = [normalized(r) for r in con.execute(f"SELECT {select} FROM wide ORDER BY id").fetchall()]
    con.close()
    expected = source_rows(wide)
    assert len(got) == len(expected)
    for want, have in zip(expected, got, strict=True):
        assert want == have, f"row id={want[0]} differs"


def test_wide_roundtrips_to_postgres(wide: PgSchema, pg_url: str, store: MetadataStore) -> None:
    target = PgSchema(pg_url)
    try:
        record = run(
            store,
            wide.source(batch_size=700),
            {"type": "postgres", "config": target.destination()},
            [{"name": "wide", "primary_key": ["id"], "write_mode": "merge"}],
        )
        assert record.status == "succeeded", record.error
        declared = (
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attnum > 0 ORDER BY attnum"
        )
        src_types = dict(wide.execute(declared, [f'"{wide.name}".wide']))
        dst_types = dict(target.execute(declared, [f'"{target.name}".wide']))
        src_types["email"] = "text"  # varchar(100) lands as text: same values
        assert dst_types == src_types
        expected, got = source_rows(wide), source_rows(target)
        assert len(got) == len(expected)
        for want, have in zip(expected, got, strict=True):
            assert want == have, f"row id={want[0]} differs"
    finally:
        target.drop()
