"""SQLite source: tables and views of a database file, read in Arrow batches.

Columns are typed from their declared types (or, for tables written by the SQLite
destination, from the Arrow schema it recorded in ``_aggregator_schemas``). SQLite is
dynamically typed, so each fetched batch is converted column by column and any value that
does not fit its column's type sends its row to quarantine with the reason and the rowid.

Resumption: incremental streams are read ``ORDER BY cursor, rowid`` and checkpoint
``{"cursor": value, "rowid": n}`` after each batch, so a resume continues exactly after the
last row even when several rows share a cursor value (without a rowid, only
``{"cursor": value}`` is checkpointed, at the end of the read). Full refreshes of rowid
tables checkpoint ``{"after_rowid": n}`` after each batch and ``{"complete": true}`` at the
end (the next full refresh starts over); other relations only checkpoint at the end.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
from pydantic import Field

from aggregator.connectors.sdk import CheckResult, ConnectorConfig, Source
from aggregator.connectors.sqlite.types import arrow_type, convert_column, quote, row_raw
from aggregator.core.catalog import Catalog, ConfiguredStream, Stream, SyncMode
from aggregator.core.errors import ConfigError, ConnectorError
from aggregator.core.messages import Checkpoint, Message, Quarantined, Records
from aggregator.core.types import schema_from_json

_BOOKKEEPING = ("_aggregator_state", "_aggregator_schemas")


class SQLiteSourceConfig(ConnectorConfig):
    """Which database file, and which tables of it."""

    path: str = Field(description="SQLite database file.")
    tables: list[str] | None = Field(
        None, description="Tables or views to offer (default: all user tables and views)."
    )
    batch_size: int | None = Field(
        None, gt=0, description="Rows per batch (default: the stream's batch size)."
    )


@dataclass(frozen=True)
class _Relation:
    name: str
    kind: str
    schema: pa.Schema
    declared: dict[str, str]
    primary_key: tuple[str, ...]
    rowid: str | None


def _is_cursor_type(dtype: pa.DataType) -> bool:
    return bool(
        pa.types.is_integer(dtype) or pa.types.is_date(dtype) or pa.types.is_timestamp(dtype)
    )


class SQLiteSource(Source[SQLiteSourceConfig]):
    """Reads tables and views of a SQLite database."""

    name: ClassVar[str] = "sqlite"
    config_model = SQLiteSourceConfig
    description: ClassVar[str] = "SQLite database file (tables and views)"

    # ------------------------------------------------------------------ connection

    def _connect(self) -> sqlite3.Connection:
        """Open read-only; never creates a database file."""
        path = Path(self.config.path)
        if not path.exists():
            raise ConnectorError(f"SQLite database {self.config.path!r} does not exist")
        if not path.is_file():
            raise ConnectorError(f"SQLite database {self.config.path!r} is not a file")
        uri = path.resolve().as_uri() + "?mode=ro"
        try:
            con = sqlite3.connect(uri, uri=True)
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as exc:
            raise ConnectorError(
                f"{self.config.path!r} is not a readable SQLite database: {exc}"
            ) from exc
        return con

    def check(self) -> CheckResult:
        """The file exists and is a SQLite database."""
        try:
            with closing(self._connect()) as con:
                count = con.execute(
                    "SELECT count(*) FROM sqlite_master WHERE type IN ('table', 'view')"
                ).fetchone()
        except ConnectorError as exc:
            return CheckResult(False, exc.message)
        n = count[0] if count else 0
        return CheckResult(True, f"SQLite database {self.config.path!r} has {n} tables/views")

    # ------------------------------------------------------------------ discovery

    def _relation_names(self, con: sqlite3.Connection) -> list[tuple[str, str]]:
        rows = con.execute(
            "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') "
            "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
        ).fetchall()
        found = [(str(r[0]), str(r[1])) for r in rows]
        if self.config.tables is not None:
            by_name = dict(found)
            missing = [t for t in self.config.tables if t not in by_name]
            if missing:
                raise ConfigError(f"tables not found in {self.config.path!r}: {', '.join(missing)}")
            return [(t, by_name[t]) for t in self.config.tables]
        return [(n, k) for n, k in found if n not in _BOOKKEEPING and not n.endswith("__staging")]

    def _recorded(self, con: sqlite3.Connection, table: str) -> dict[str, pa.Field]:
        """Types the SQLite destination recorded for ``table`` (exact Arrow types)."""
        has = con.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_aggregator_schemas'"
        ).fetchone()
        if not has:
            return {}
        row = con.execute(
            "SELECT columns FROM _aggregator_schemas WHERE table_name = ? "
            "ORDER BY seq DESC LIMIT 1",
            (table,),
        ).fetchone()
        if row is None:
            return {}
        try:
            schema = schema_from_json(json.loads(row[0]))
        except (ValueError, KeyError, TypeError):
            return {}
        return {f.name: f for f in schema}

    def _relation(self, con: sqlite3.Connection, name: str, kind: str) -> _Relation:
        info = con.execute(f"PRAGMA table_info({quote(name)})").fetchall()
        if not info:
            raise ConnectorError(f"table {name!r} not found in {self.config.path!r}")
        recorded = self._recorded(con, name)
        fields, declared, keys = [], {}, []
        for _cid, column, decl, notnull, _default, pk in info:
            declared[column] = decl or ""
            known = recorded.get(column)
            if known is not None:
                fields.append(pa.field(column, known.type, nullable=known.nullable and not notnull))
            else:
                fields.append(pa.field(column, arrow_type(decl or ""), nullable=not notnull))
            if pk:
                keys.append((pk, column))
        names = {f.name.lower() for f in fields}
        rowid = None
        if kind == "table":
            for alias in ("rowid", "_rowid_", "oid"):
                if alias in names:
                    continue
                try:
                    con.execute(f"SELECT {alias} FROM {quote(name)} LIMIT 0")
                except sqlite3.OperationalError:
                    break  # WITHOUT ROWID
                rowid = alias
                break
        return _Relation(
            name, kind, pa.schema(fields), declared, tuple(c for _, c in sorted(keys)), rowid
        )

    def discover(self) -> Catalog:
        """Tables and views, typed columns, primary keys and cursor candidates."""
        with closing(self._connect()) as con:
            return Catalog(
                tuple(
                    _stream(name, kind, self._relation(con, name, kind))
                    for name, kind in self._relation_names(con)
                )
            )

    # ------------------------------------------------------------------ reading

    def read(self, stream: ConfiguredStream, state: dict[str, Any] | None) -> Iterator[Message]:
        """Yield batches of ``stream``, resuming after ``state``."""
        with closing(self._connect()) as con:
            kinds = dict(self._relation_names(con))
            if stream.name not in kinds:
                raise ConfigError(f"stream {stream.name!r} is not a table or view of the source")
            rel = self._relation(con, stream.name, kinds[stream.name])
            yield _stream(stream.name, kinds[stream.name], rel).info()
            yield from self._read(con, rel, stream, state or {})

    def _read(
        self,
        con: sqlite3.Connection,
        rel: _Relation,
        stream: ConfiguredStream,
        state: dict[str, Any],
    ) -> Iterator[Message]:
        schema = pa.schema(
            [
                pa.field(f.name, stream.column_types.get(f.name, f.type), f.nullable)
                for f in rel.schema
            ]
        )
        size = self.config.batch_size or stream.batch_size
        columns = ", ".join(quote(f.name) for f in schema)
        table = quote(rel.name)
        rowid = rel.rowid
        select = f"SELECT {rowid + ', ' if rowid else ''}{columns} FROM {table}"
        incremental = stream.sync_mode is SyncMode.INCREMENTAL
        params: list[Any] = []
        if incremental:
            cursor = stream.cursor_field
            if not cursor or cursor not in schema.names:
                raise ConfigError(
                    f"stream {stream.name!r}: incremental sync needs a cursor_field that is a "
                    f"column of the table (got {cursor!r})"
                )
            qc = quote(cursor)
            last = state.get("cursor")
            where = ""
            if last is not None and rowid and state.get("rowid") is not None:
                where = f" WHERE {qc} > ? OR ({qc} = ? AND {rowid} > ?)"
                params = [last, last, state["rowid"]]
            elif last is not None:
                where = f" WHERE {qc} > ?"
                params = [last]
            order = f" ORDER BY {qc}" + (f", {rowid}" if rowid else "")
            sql = select + where + order
            cursor_index = schema.names.index(cursor) + (1 if rowid else 0)
        else:
            after = state.get("after_rowid")
            if rowid and isinstance(after, int):
                sql = select + f" WHERE {rowid} > ? ORDER BY {rowid}"
                params = [after]
            elif rowid:
                sql = select + f" ORDER BY {rowid}"
            else:
                order = ", ".join(quote(k) for k in rel.primary_key)
                sql = select + (f" ORDER BY {order}" if order else "")
            cursor_index = -1

        cur = con.execute(sql, params)
        ordinal = 0
        last_cursor, last_rowid = state.get("cursor"), state.get("rowid")
        while True:
            rows = cur.fetchmany(size)
            if not rows:
                break
            batch, quarantined = self._convert(rel, schema, rows, ordinal)
            ordinal += len(rows)
            if batch.num_rows:
                yield Records(batch)
            if quarantined is not None:
                yield quarantined
            tail = rows[-1]
            if incremental:
                value = tail[cursor_index]
                if value is not None:
                    if isinstance(value, bytes):
                        raise ConnectorError(
                            f"stream {stream.name!r}: cursor {stream.cursor_field!r} holds a "
                            "blob, which cannot be stored in the state"
                        )
                    last_cursor = value
                    last_rowid = tail[0] if rowid else None
                    if rowid:
                        yield Checkpoint({"cursor": last_cursor, "rowid": last_rowid})
            elif rowid:
                yield Checkpoint({"after_rowid": tail[0]})
        if incremental:
            final: dict[str, Any] = {"cursor": last_cursor}
            if rowid and last_rowid is not None:
                final["rowid"] = last_rowid
            yield Checkpoint(final)
        else:
            yield Checkpoint({"complete": True})

    def _convert(
        self, rel: _Relation, schema: pa.Schema, rows: list[tuple[Any, ...]], ordinal: int
    ) -> tuple[pa.RecordBatch, Quarantined | None]:
        """Column-wise conversion of fetched rows; rows with misfit values are quarantined."""
        offset = 1 if rel.rowid else 0
        columns = list(zip(*rows, strict=True))
        arrays: list[pa.Array] = []
        rejected: dict[int, list[str]] = {}
        for i, field in enumerate(schema):
            array, bad = convert_column(columns[i + offset], field.type, field.name)
            arrays.append(array)
            for row, reason in bad.items():
                rejected.setdefault(row, []).append(reason)
        batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
        if not rejected:
            return batch, None
        keep = pa.array([i not in rejected for i in range(len(rows))])
        reasons, positions, raws = [], [], []
        for row in sorted(rejected):
            reasons.append("; ".join(rejected[row]))
            if rel.rowid:
                positions.append(f"{rel.name}:rowid={rows[row][0]}")
            else:
                positions.append(f"{rel.name}:row={ordinal + row + 1}")
            raws.append(row_raw(schema.names, rows[row][offset:]))
        return batch.filter(keep), Quarantined.of(reasons, positions, raws)  # type: ignore[arg-type]


def _stream(name: str, kind: str, rel: _Relation) -> Stream:
    cursors = tuple(f.name for f in rel.schema if _is_cursor_type(f.type))
    modes = (SyncMode.FULL_REFRESH, SyncMode.INCREMENTAL)
    return Stream(
        name=name,
        schema=rel.schema,
        primary_key=rel.primary_key,
        cursor_candidates=cursors,
        sync_modes=modes if cursors else (SyncMode.FULL_REFRESH,),
        metadata={"kind": kind, "declared_types": rel.declared, "rowid": rel.rowid is not None},
    )
