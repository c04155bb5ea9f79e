"""Catalog queries: relations, columns (domains and arrays resolved), primary keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from aggregator.connectors.postgres.types import PgColumn

_COLUMNS = """
SELECT n.nspname, c.relname, c.relkind, a.attname, a.attnotnull,
       format_type(a.atttypid, a.atttypmod),
       rt.typname, rt.typtype,
       et.typname,
       CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END,
       greatest(c.reltuples, 0)::bigint, greatest(c.relpages, 0)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_type rt ON rt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
LEFT JOIN pg_type et ON et.oid = rt.typelem AND rt.typcategory = 'A'
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname = ANY(%s)
  AND NOT c.relispartition
ORDER BY n.nspname, c.relname, a.attnum
"""

_KEYS = """
SELECT n.nspname, c.relname, a.attname
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
WHERE i.indisprimary AND n.nspname = ANY(%s)
ORDER BY n.nspname, c.relname, k.ord
"""

_KINDS = {"r": "table", "p": "table", "v": "view", "m": "materialized view", "f": "foreign table"}


@dataclass(frozen=True)
class PgRelation:
    """A table or view with its columns and key."""

    schema: str
    name: str
    kind: str
    columns: tuple[PgColumn, ...]
    primary_key: tuple[str, ...]
    estimated_rows: int
    stream: str  # the table name, or ``schema.table`` when the name is in several schemas
    relkind: str = "r"  # pg_class.relkind: r table, p partitioned, v view, m matview, f foreign
    pages: int = 0  # pg_class.relpages as of the last VACUUM / ANALYZE (an estimate)

    @property
    def qualified(self) -> str:
        """Quoted ``schema.table``."""
        return f"{quote(self.schema)}.{quote(self.name)}"


def quote(name: str) -> str:
    """Quote an identifier for PostgreSQL."""
    return '"' + name.replace('"', '""') + '"'


def relations(con: psycopg.Connection[Any], schemas: list[str]) -> list[PgRelation]:
    """Every table and view of ``schemas`` (bookkeeping and staging tables left out)."""
    keys: dict[tuple[str, str], list[str]] = {}
    for schema, table, column in con.execute(_KEYS, [schemas]).fetchall():
        keys.setdefault((schema, table), []).append(column)
    grouped: dict[tuple[str, str], tuple[str, int, int, list[PgColumn]]] = {}
    for row in con.execute(_COLUMNS, [schemas]).fetchall():
        schema, table, kind, column, not_null, declared, typname, typtype, elem, mod, est, pages = (
            row
        )
        entry = grouped.setdefault((schema, table), (kind, int(est), int(pages), []))
        entry[3].append(
            PgColumn(column, declared, typname, typtype, elem, int(mod), bool(not_null))
        )
    wanted = [
        key
        for key in grouped
        if not key[1].startswith("_aggregator_")
        and not key[1].endswith(("__staging", "__quarantine"))
    ]
    seen: dict[str, int] = {}
    for _, table in wanted:
        seen[table] = seen.get(table, 0) + 1
    found = []
    for schema, table in wanted:
        relkind, est, pages, columns = grouped[(schema, table)]
        pk = tuple(keys.get((schema, table), ()))
        stream = table if seen[table] == 1 else f"{schema}.{table}"
        found.append(
            PgRelation(
                schema, table, _KINDS[relkind], tuple(columns), pk, est, stream, relkind, pages
            )
        )
    return found
