"""Helpers for PostgreSQL integration tests: a private schema per test, engine runs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from aggregator.engines.local import LocalEngine
from aggregator.metadata.store import MetadataStore, RunRecord
from aggregator.pipeline.spec import PipelineSpec

WIDE_SQL = Path(__file__).parents[3] / "bench" / "data.sql"


class PgSchema:
    """A fresh schema in the test server, dropped at the end."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.name = f"t_{uuid.uuid4().hex[:10]}"
        self.con = psycopg.connect(url, autocommit=True)
        self.con.execute(f'CREATE SCHEMA "{self.name}"')
        self.con.execute(f'SET search_path TO "{self.name}"')

    def execute(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        cur = self.con.execute(sql, params)
        return cur.fetchall() if cur.description else []

    def source(self, **extra: Any) -> dict[str, Any]:
        return {"url": self.url, "schemas": [self.name], **extra}

    def destination(self, schema: str | None = None) -> dict[str, Any]:
        return {"url": self.url, "schema": schema or self.name}

    def load_wide(self, rows: int) -> None:
        """The benchmark's wide table, ``rows`` rows, in this schema."""
        text = WIDE_SQL.read_text().replace(":rows", str(rows))
        text = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
        for statement in text.split(";"):
            if statement.strip():
                self.con.execute(statement)

    def drop(self) -> None:
        self.con.execute(f'DROP SCHEMA "{self.name}" CASCADE')
        self.con.close()


def pg_schema(url: str) -> Iterator[PgSchema]:
    schema = PgSchema(url)
    try:
        yield schema
    finally:
        schema.drop()


def run(
    store: MetadataStore,
    source: dict[str, Any],
    destination: dict[str, Any],
    streams: list[dict[str, Any]],
    full_refresh: bool = False,
    name: str = "pgtest",
) -> RunRecord:
    spec = PipelineSpec.model_validate(
        {
            "name": name,
            "sources": [{"name": "db", "type": "postgres", "config": source, "streams": streams}],
            "destination": destination,
        }
    )
    return LocalEngine(store).run(spec, full_refresh=full_refresh)
