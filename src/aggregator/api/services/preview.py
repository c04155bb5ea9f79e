"""Data preview: a page of a stream's destination table, filtered and sorted safely.

The table's columns are read from the destination's catalog first; the filter and sort
may name only those (:mod:`preview_filter`), values are bound as parameters, the
connection is read-only (DuckDB ``read_only``, SQLite ``mode=ro``, PostgreSQL
``default_transaction_read_only``) and PostgreSQL queries have a statement timeout.
"""

from __future__ import annotations

import base64
import math
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

from aggregator.api.errors import ApiError
from aggregator.api.services.preview_filter import (
    FilterCompiler,
    FilterError,
    compile_sort,
    quote_ident,
)
from aggregator.pipeline.spec import DestinationSpec

STATEMENT_TIMEOUT_MS = 10_000
SUPPORTED = ("duckdb", "postgres", "sqlite")


@dataclass
class PreviewRequest:
    """What to show: a filter, a sort, a page and whether to count matches."""

    filter: str | None
    sort: str | None
    limit: int
    offset: int
    count: bool
    key: tuple[str, ...] = ()  # the stream's primary key: the order when no ``sort`` is given


@dataclass
class PreviewResult:
    """Column names and types, rows as JSON-ready mappings, paging facts."""

    columns: list[tuple[str, str]]
    rows: list[dict[str, Any]]
    has_more: bool
    total: int | None


class _Reader(Protocol):
    placeholder: str
    ilike: bool
    decimals: bool
    row_order: str

    def columns(self, table: str) -> list[tuple[str, str]]: ...

    def qualified(self, table: str) -> str: ...

    def fetch(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]: ...


class _DuckDB:
    placeholder, ilike, decimals = "?", True, True
    row_order = "rowid"  # last sort key: pages are stable without a ``sort``

    def __init__(self, con: Any, schema: str) -> None:
        self.con, self.schema = con, schema

    def columns(self, table: str) -> list[tuple[str, str]]:
        return [
            (str(n), str(t))
            for n, t in self.fetch(
                "SELECT column_name, data_type FROM information_schema.columns WHERE "  # nosec B608
                f"table_schema = {self.placeholder} AND table_name = {self.placeholder} "
                "ORDER BY ordinal_position",
                [self.schema, table],
            )
        ]

    def qualified(self, table: str) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(table)}"

    def fetch(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = self.con.execute(sql, params).fetchall()
        return rows


class _Postgres(_DuckDB):
    placeholder = "%s"
    row_order = "ctid"

    def fetch(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        with self.con.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())


class _SQLite:
    placeholder, ilike, decimals = "?", False, False
    row_order = "rowid"

    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con

    def columns(self, table: str) -> list[tuple[str, str]]:
        rows = self.fetch("SELECT name, type FROM pragma_table_info(?) ORDER BY cid", [table])
        return [(str(n), str(t) or "ANY") for n, t in rows]

    def qualified(self, table: str) -> str:
        return quote_ident(table)

    def fetch(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        return list(self.con.execute(sql, params).fetchall())


@contextmanager
def _open(destination: DestinationSpec) -> Iterator[_Reader]:
    config = destination.config
    if destination.type == "duckdb":
        import duckdb

        path = str(config.get("path", "warehouse.duckdb"))
        _require_file(path)
        try:
            con = duckdb.connect(path, read_only=True)
        except duckdb.Error as exc:
            raise ApiError(409, "destination_busy", _busy(exc)) from None
        try:
            yield _DuckDB(con, str(config.get("schema", "main")))
        finally:
            con.close()
    elif destination.type == "sqlite":
        path = str(config.get("path", "warehouse.sqlite"))
        _require_file(path)
        lite = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            yield _SQLite(lite)
        finally:
            lite.close()
    elif destination.type == "postgres":
        from aggregator.connectors.postgres.destination import PostgresDestinationConfig

        pg = PostgresDestinationConfig.model_validate(config)
        options = f"-c default_transaction_read_only=on -c statement_timeout={STATEMENT_TIMEOUT_MS}"
        try:
            pgcon = pg.connect(autocommit=True, options=options)
        except Exception:
            raise ApiError(
                502, "destination_unreachable", "cannot connect to the destination"
            ) from None
        try:
            yield _Postgres(pgcon, pg.schema_name)
        finally:
            pgcon.close()
    else:
        raise ApiError(
            422,
            "preview_unsupported",
            f"preview reads {', '.join(SUPPORTED)} destinations, not {destination.type!r}",
        )


def _require_file(path: str) -> None:
    if path == ":memory:" or not Path(path).is_file():
        raise ApiError(404, "not_found", "the destination has no data yet")


def _busy(exc: Exception) -> str:
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "lock" in first.lower() or "different configuration" in first.lower():
        return "the destination database is being written (a run holds it); retry after the run"
    return "cannot open the destination database read-only"


def preview(destination: DestinationSpec, table: str, request: PreviewRequest) -> PreviewResult:
    """A page of ``table`` in ``destination``."""
    with _open(destination) as reader:
        columns = reader.columns(table)
        if not columns:
            raise ApiError(404, "not_found", f"no table {table!r} in the destination")
        compiler = FilterCompiler(
            [c for c, _ in columns], reader.placeholder, reader.ilike, reader.decimals
        )
        try:
            where = compiler.compile(request.filter) if request.filter else None
            order = (
                compile_sort(request.sort, compiler)
                if request.sort
                else _key_order(request.key, columns)
            )
        except FilterError as exc:
            raise ApiError(422, "invalid_filter", str(exc)) from None
        source = reader.qualified(table)
        clause = f" WHERE {where.sql}" if where else ""
        params = list(where.params) if where else []
        listed = ", ".join(quote_ident(c) for c, _ in columns)
        sql = f"SELECT {listed} FROM {source}{clause}"  # nosec B608 - validated identifiers, bound values
        # the physical row id breaks ties, so that offsets page through a stable order
        keys = f"{order}, {reader.row_order}" if order else reader.row_order
        sql += f" ORDER BY {keys}"
        sql += f" LIMIT {int(request.limit) + 1} OFFSET {int(request.offset)}"
        rows = _run(reader, sql, params)
        total = None
        if request.count:
            counted = _run(reader, f"SELECT count(*) FROM {source}{clause}", params)  # nosec B608
            total = int(counted[0][0])
    names = [c for c, _ in columns]
    page = rows[: request.limit]
    return PreviewResult(
        columns=columns,
        rows=[{n: jsonable(v) for n, v in zip(names, row, strict=True)} for row in page],
        has_more=len(rows) > request.limit,
        total=total,
    )


def _key_order(key: tuple[str, ...], columns: list[tuple[str, str]]) -> str:
    """``ORDER BY`` items for the primary key, when the table has all its columns."""
    present = {c for c, _ in columns}
    return ", ".join(quote_ident(k) for k in key) if key and set(key) <= present else ""


def _run(reader: _Reader, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    """Run a query; a value the column cannot be compared with is the caller's error."""
    try:
        return reader.fetch(sql, params)
    except Exception as exc:
        message = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        raise ApiError(
            422, "invalid_filter", f"the destination refused the filter: {message}"
        ) from None


def jsonable(value: Any) -> Any:
    """A JSON-ready form of a database value (exact decimals as strings)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return str(value)
