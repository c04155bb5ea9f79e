"""MySQL / MariaDB source: discovery, full refresh and incremental reads into Arrow.

The slower path next to PostgreSQL's (documented): pymysql parses the text protocol in
Python, so rows are fetched unbuffered in batches **without** per-value conversion (every
value stays the server's text or bytes) and each column is then typed with Arrow's
vectorized casts (integers, exact decimals, dates, ``DATETIME`` naive, ``TIMESTAMP`` as UTC
instants with the session time zone at UTC, JSON). Values that do not cast (zero dates such
as ``0000-00-00``) send their row to quarantine with its key.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa
import pymysql.converters  # type: ignore[import-untyped]
import pymysql.cursors  # type: ignore[import-untyped]
from pydantic import Field

from aggregator.connectors._bookkeeping import select_tables
from aggregator.connectors.mysql.connection import MySQLConnection
from aggregator.connectors.postgres.source import _jsonable
from aggregator.connectors.postgres.types import conform
from aggregator.connectors.sdk import CheckResult, Source
from aggregator.core.catalog import Catalog, ConfiguredStream, Stream, SyncMode
from aggregator.core.errors import ConfigError, ConnectorError
from aggregator.core.messages import Checkpoint, Log, Message, Quarantined, Records
from aggregator.core.schema import row_json
from aggregator.core.types import JSON, TIMESTAMP, TIMESTAMPTZ, decimal_type

_INTS = {
    "tinyint": (pa.int8(), pa.uint8()),
    "smallint": (pa.int16(), pa.uint16()),
    "mediumint": (pa.int32(), pa.uint32()),
    "int": (pa.int32(), pa.uint32()),
    "integer": (pa.int32(), pa.uint32()),
    "bigint": (pa.int64(), pa.uint64()),
}
_TEXT = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set"}
_BINARY = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"}
_SYSTEM = ("information_schema", "mysql", "performance_schema", "sys")


class MySQLSourceConfig(MySQLConnection):
    """Where to read and how."""

    databases: list[str] | None = Field(
        None, description="Databases whose tables are offered (default: `database`)."
    )
    tables: list[str] | None = Field(
        None, description="Tables/views to offer, as 'table' or 'database.table' (default: all)."
    )
    batch_size: int | None = Field(
        None, gt=0, description="Rows per batch (default: the stream's batch_size)."
    )


@dataclass(frozen=True)
class _Column:
    name: str
    data_type: str
    column_type: str
    precision: int | None
    scale: int | None
    nullable: bool
    is_json: bool

    @property
    def arrow(self) -> tuple[pa.DataType, bool]:
        """(Arrow type, loaded as text/bytes because no exact type fits)."""
        t = self.data_type
        if t in _INTS:
            return _INTS[t][1 if "unsigned" in self.column_type else 0], False
        if t == "decimal" and self.precision is not None:
            return decimal_type(self.precision, self.scale or 0), False
        if t == "float":
            return pa.float32(), False
        if t == "double":
            return pa.float64(), False
        if t == "year":
            return pa.int16(), False
        if t == "date":
            return pa.date32(), False
        if t == "datetime":
            return TIMESTAMP, False
        if t == "timestamp":
            return TIMESTAMPTZ, False
        if t == "json" or (self.is_json and t in _TEXT):
            return JSON, False
        if t in _TEXT or t == "time":
            return pa.string(), False
        if t in _BINARY:
            return pa.binary(), False
        return pa.binary(), True


@dataclass(frozen=True)
class _Table:
    database: str
    name: str
    kind: str
    columns: tuple[_Column, ...]
    primary_key: tuple[str, ...]
    stream: str

    @property
    def qualified(self) -> str:
        return f"{quote(self.database)}.{quote(self.name)}"


def quote(name: str) -> str:
    """Quote an identifier for MySQL."""
    return "`" + name.replace("`", "``") + "`"


class MySQLSource(Source[MySQLSourceConfig]):
    """Reads tables and views of MySQL or MariaDB databases."""

    name: ClassVar[str] = "mysql"
    config_model = MySQLSourceConfig
    description: ClassVar[str] = "MySQL / MariaDB tables and views"

    def _databases(self) -> list[str]:
        dbs = self.config.databases or (
            [self.config.params()["database"]] if self.config.params()["database"] else []
        )
        if not dbs:
            raise ConfigError("mysql source: set `database` (or `databases`) to read from")
        return dbs

    def check(self) -> CheckResult:
        """Connect and list the offered tables."""
        try:
            found = self._tables()
        except (ConnectorError, ConfigError) as exc:
            return CheckResult(False, exc.message)
        return CheckResult(True, f"MySQL at {self.config.where()}: {len(found)} tables/views")

    def _tables(self) -> list[_Table]:
        dbs = self._databases()
        marks = ", ".join(["%s"] * len(dbs))
        with self.config.connect() as con, con.cursor() as cur:
            cur.execute(
                "SELECT c.TABLE_SCHEMA, c.TABLE_NAME, t.TABLE_TYPE, c.COLUMN_NAME, c.DATA_TYPE, "
                "c.COLUMN_TYPE, c.NUMERIC_PRECISION, c.NUMERIC_SCALE, c.IS_NULLABLE, c.COLUMN_KEY "
                "FROM information_schema.COLUMNS c JOIN information_schema.TABLES t "
                "ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME "
                f"WHERE c.TABLE_SCHEMA IN ({marks}) ORDER BY c.TABLE_SCHEMA, c.TABLE_NAME, "
                "c.ORDINAL_POSITION",
                dbs,
            )
            rows = cur.fetchall()
            json_columns = _json_columns(cur, dbs, marks)
        grouped: dict[tuple[str, str], tuple[str, list[_Column], list[str]]] = {}
        for db, table, ttype, col, dtype, ctype, prec, scale, nullable, key in rows:
            kind = "view" if "VIEW" in str(ttype) else "table"
            entry = grouped.setdefault((db, table), (kind, [], []))
            entry[1].append(
                _Column(
                    col,
                    str(dtype).lower(),
                    str(ctype).lower(),
                    None if prec is None else int(prec),
                    None if scale is None else int(scale),
                    nullable == "YES",
                    (db, table, col) in json_columns,
                )
            )
            if key == "PRI":
                entry[2].append(col)
        names = [t for _, t in grouped]
        found = [
            _Table(
                db,
                table,
                kind,
                tuple(cols),
                tuple(pk),
                table if names.count(table) == 1 else f"{db}.{table}",
            )
            for (db, table), (kind, cols, pk) in grouped.items()
            if not table.startswith("_aggregator_")
            and not table.endswith(("__staging", "__quarantine"))
        ]
        return select_tables(
            found,
            self.config.tables,
            lambda t: (t.stream, f"{t.database}.{t.name}"),
            lambda missing: (
                f"tables not found in {', '.join(dbs)} at {self.config.where()}: "
                f"{', '.join(missing)} (check `tables` and `databases`)"
            ),
        )

    def stream_names(self) -> list[str]:
        """Stream names of the offered tables."""
        return [t.stream for t in self._tables()]

    def discover(self) -> Catalog:
        """Tables with exact Arrow schemas, keys and cursor candidates."""
        return Catalog(tuple(_stream(t) for t in self._tables()))

    def read(self, stream: ConfiguredStream, state: dict[str, Any] | None) -> Iterator[Message]:
        """Yield batches of ``stream``; incremental reads resume after ``state['cursor']``."""
        table = next((t for t in self._tables() if t.stream == stream.name), None)
        if table is None:
            raise ConfigError(
                f"stream {stream.name!r} is not a table or view of {', '.join(self._databases())}"
            )
        base = _stream(table).schema
        schema = pa.schema(
            [pa.field(f.name, stream.column_types.get(f.name, f.type), f.nullable) for f in base]
        )
        for c in table.columns:
            if c.arrow[1]:
                yield Log(
                    "warning",
                    f"{table.stream}.{c.name}: MySQL type {c.column_type} has no exact Arrow "
                    "type here; loading its raw bytes as binary",
                )
        columns = ", ".join(quote(c.name) for c in table.columns)
        sql = f"SELECT {columns} FROM {table.qualified}"
        params: list[Any] = []
        cursor_field = None
        last = (state or {}).get("cursor")
        if stream.sync_mode is SyncMode.INCREMENTAL:
            cursor_field = stream.cursor_field
            if not cursor_field or cursor_field not in schema.names:
                raise ConfigError(
                    f"stream {stream.name!r}: incremental sync needs a cursor_field that is a "
                    f"column of {table.qualified} (got {cursor_field!r})"
                )
            if last is not None:
                sql += f" WHERE {quote(cursor_field)} > %s"
                params.append(last)
            sql += f" ORDER BY {quote(cursor_field)}"
        size = self.config.batch_size or stream.batch_size
        # encoders only: parameters are escaped, result values stay raw text/bytes
        raw = dict(pymysql.converters.encoders)
        con = self.config.connect(cursorclass=pymysql.cursors.SSCursor, conv=raw)
        previous: Any = None
        try:
            with con.cursor() as cur:
                try:
                    cur.execute(sql, params)
                except pymysql.MySQLError as exc:
                    raise self.config.error(exc, f"read {stream.name} from") from None
                while rows := cur.fetchmany(size):
                    raw = _raw_batch(rows, schema)
                    batch, bad = conform(raw, schema)
                    if cursor_field is not None:
                        column = batch.column(cursor_field)
                        first = column[0].as_py()
                        if previous is not None and first is not None and first != previous:
                            yield Checkpoint({"cursor": _jsonable(previous)})
                        tail = column[-1].as_py()
                        if tail is not None:
                            previous = last = tail
                    if bad:
                        yield _quarantined(table, raw, batch, bad)
                        batch = batch.filter(pa.array([i not in bad for i in range(len(rows))]))
                    if batch.num_rows:
                        yield Records(batch)
        finally:
            con.close()
        if cursor_field is not None:
            yield Checkpoint({"cursor": _jsonable(last)})
        else:
            yield Checkpoint({"complete": True})


def _json_columns(cur: Any, dbs: list[str], marks: str) -> set[tuple[str, str, str]]:
    """MariaDB's JSON columns: text columns with a ``json_valid(col)`` check."""
    try:
        cur.execute(
            "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CHECK_CLAUSE FROM "
            f"information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA IN ({marks})",
            dbs,
        )
    except pymysql.MySQLError:
        return set()
    found = set()
    for db, table, clause in cur.fetchall():
        text = str(clause)
        if text.lower().startswith("json_valid(") and text.count("`") == 2:
            found.add((db, table, text.split("`")[1]))
    return found


def _stream(table: _Table) -> Stream:
    schema = pa.schema([pa.field(c.name, c.arrow[0], c.nullable) for c in table.columns])
    cursors = tuple(
        f.name
        for f in schema
        if pa.types.is_integer(f.type)
        or pa.types.is_timestamp(f.type)
        or pa.types.is_date(f.type)
        or pa.types.is_decimal(f.type)
    )
    modes = (SyncMode.FULL_REFRESH, SyncMode.INCREMENTAL) if cursors else (SyncMode.FULL_REFRESH,)
    return Stream(
        name=table.stream,
        schema=schema,
        primary_key=table.primary_key,
        cursor_candidates=cursors,
        sync_modes=modes,
        metadata={
            "kind": table.kind,
            "database": table.database,
            "table": table.name,
            "declared_types": {c.name: c.column_type for c in table.columns},
        },
    )


def _raw_batch(rows: list[tuple[Any, ...]], schema: pa.Schema) -> pa.RecordBatch:
    """Server text/bytes as string or binary columns (one C-level transpose, no per-value work)."""
    arrays = []
    for field, values in zip(schema, zip(*rows, strict=True), strict=True):
        if pa.types.is_binary(field.type):
            arrays.append(pa.array(values, pa.binary()))
        else:
            text = pa.array(values, pa.binary()).cast(pa.string())
            if pa.types.is_timestamp(field.type) and field.type.tz is not None:
                text = text.cast(pa.timestamp(field.type.unit))
            elif isinstance(field.type, pa.JsonType):
                text = pa.ExtensionArray.from_storage(JSON, text)
            arrays.append(text)
    return pa.RecordBatch.from_arrays(arrays, names=schema.names)


def _quarantined(
    table: _Table, raw: pa.RecordBatch, batch: pa.RecordBatch, bad: dict[int, str]
) -> Quarantined:
    keys = [k for k in table.primary_key if k in batch.schema.names]
    positions: list[str | None] = []
    for row in sorted(bad):
        where = ", ".join(f"{k}={batch.column(k)[row].as_py()!r}" for k in keys)
        positions.append(f"{table.stream}:{where or f'row {row + 1} of batch'}")
    return Quarantined.of(
        [bad[r] for r in sorted(bad)], positions, [row_json(raw, r) for r in sorted(bad)]
    )
