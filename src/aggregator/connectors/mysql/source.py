"""MySQL / MariaDB source: discovery, full refresh, incremental reads (and CDC, :mod:`.cdc`).

Reads go through connectorx when it is installed: it decodes the binary protocol into Arrow
in Rust, several times faster than pymysql. Columns without an exact native mapping are
selected as their text (``CAST(... AS CHAR)``). The pymysql path (the CDC snapshot and
lookups, or without connectorx) fetches rows unbuffered **without** per-value conversion
(every value stays the server's text or bytes). Either way each column is then typed with
Arrow's vectorized casts (integers, exact decimals, dates, ``DATETIME`` naive, ``TIMESTAMP``
as UTC instants with the session time zone at UTC, JSON). Values that do not cast (zero
dates such as ``0000-00-00``) send their row to quarantine with its key. Full refreshes of
tables with a primary key read in key order with a checkpoint ``{"after": [key]}`` every
``checkpoint_rows`` rows (at batch ends).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pymysql.converters  # type: ignore[import-untyped]
import pymysql.cursors  # type: ignore[import-untyped]
from pydantic import Field

from aggregator.connectors._bookkeeping import select_tables, table_stream
from aggregator.connectors.mysql.connection import MySQLConnection
from aggregator.connectors.postgres.types import conform
from aggregator.connectors.sdk import CheckResult, Source
from aggregator.connectors.sql.ordered import jsonable, ordered_read
from aggregator.core.catalog import Catalog, ConfiguredStream, Stream, SyncMode
from aggregator.core.errors import ConfigError, ConnectorError
from aggregator.core.messages import Checkpoint, Log, Message, Quarantined, Records
from aggregator.core.schema import row_json
from aggregator.core.types import JSON, TIMESTAMP, TIMESTAMPTZ, UUID, decimal_type

if TYPE_CHECKING:
    from aggregator.engines.follow import Follow

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
    checkpoint_rows: int = Field(
        250_000,
        gt=0,
        description="Rows between checkpoints of a keyed full refresh or CDC snapshot (the "
        "most rows a destination holds in one transaction).",
    )
    cdc: bool = Field(
        False,
        description="Incremental streams read changes from the row-based binlog (needs "
        "log_bin, binlog_format = ROW, a primary key, and merge).",
    )
    cdc_max_changes: int = Field(
        100_000, gt=0, description="Changed rows read from the binlog per run (at most)."
    )
    server_id: int | None = Field(
        None,
        gt=0,
        lt=2**32,
        description="Replication client id, unique among the server's replicas "
        "(default: a random one per read).",
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
        if t == "uuid":  # MariaDB 10.7+
            return UUID, False
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
    estimated_rows: int | None = None  # information_schema.TABLES.TABLE_ROWS (InnoDB: approx.)
    estimated_bytes: int | None = None  # DATA_LENGTH

    @property
    def qualified(self) -> str:
        return f"{quote(self.database)}.{quote(self.name)}"


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


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
                "c.COLUMN_TYPE, c.NUMERIC_PRECISION, c.NUMERIC_SCALE, c.IS_NULLABLE, c.COLUMN_KEY, "
                "t.TABLE_ROWS, t.DATA_LENGTH "
                "FROM information_schema.COLUMNS c JOIN information_schema.TABLES t "
                "ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME "
                f"WHERE c.TABLE_SCHEMA IN ({marks}) ORDER BY c.TABLE_SCHEMA, c.TABLE_NAME, "
                "c.ORDINAL_POSITION",
                dbs,
            )
            rows = cur.fetchall()
            json_columns = _json_columns(cur, dbs, marks)
        grouped: dict[tuple[str, str], tuple[str, list[_Column], list[str]]] = {}
        sizes: dict[tuple[str, str], tuple[int | None, int | None]] = {}
        for db, table, ttype, col, dtype, ctype, prec, scale, nullable, key, trows, tbytes in rows:
            kind = "view" if "VIEW" in str(ttype) else "table"
            entry = grouped.setdefault((db, table), (kind, [], []))
            sizes[(db, table)] = (_int_or_none(trows), _int_or_none(tbytes))
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
                *sizes[(db, table)],
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

    def follows(self, stream: ConfiguredStream) -> bool:
        """CDC streams can be read continuously (``aggregator run --follow``)."""
        return self.config.cdc and stream.sync_mode is SyncMode.INCREMENTAL

    def read_following(
        self, stream: ConfiguredStream, state: dict[str, Any] | None, follow: Follow
    ) -> Iterator[Message]:
        """Changes of a CDC stream from the binlog, in cycles until ``follow.stop`` is set."""
        from aggregator.connectors.mysql.cdc import BinlogReader

        reader = self._reader(stream)
        yield from reader.notes()
        yield from BinlogReader(reader).follow(state or {}, follow)

    def _reader(self, stream: ConfiguredStream) -> TableReader:
        table = next((t for t in self._tables() if t.stream == stream.name), None)
        if table is None:
            raise ConfigError(
                f"stream {stream.name!r} is not a table or view of {', '.join(self._databases())}"
            )
        return TableReader(self.config, table, stream)

    def read(self, stream: ConfiguredStream, state: dict[str, Any] | None) -> Iterator[Message]:
        """Yield batches of ``stream``; incremental reads resume after ``state['cursor']``."""
        reader = self._reader(stream)
        yield from reader.notes()
        if stream.sync_mode is SyncMode.INCREMENTAL and self.config.cdc:
            from aggregator.connectors.mysql.cdc import BinlogReader

            yield from BinlogReader(reader).read(state or {})
        elif stream.sync_mode is SyncMode.INCREMENTAL:
            yield from reader.incremental((state or {}).get("cursor"))
        else:
            yield from reader.full(state or {})


class TableReader:
    """Reads one table through unbuffered connections whose values stay raw text."""

    def __init__(self, config: MySQLSourceConfig, table: _Table, stream: ConfiguredStream) -> None:
        self.config = config
        self.table = table
        self.stream = stream
        base = _stream(table).schema
        self.schema = pa.schema(
            [pa.field(f.name, stream.column_types.get(f.name, f.type), f.nullable) for f in base]
        )
        self.select = (
            f"SELECT {', '.join(quote(c.name) for c in table.columns)} FROM {table.qualified}"
        )
        self.size = config.batch_size or stream.batch_size

    def notes(self) -> Iterator[Message]:
        """The stream's metadata, then a log of columns loaded as raw bytes (no exact type)."""
        yield _stream(self.table).info()
        for c in self.table.columns:
            if c.arrow[1]:
                yield Log(
                    "warning",
                    f"{self.table.stream}.{c.name}: MySQL type {c.column_type} has no exact Arrow "
                    "type here; loading its raw bytes as binary",
                )

    def connect(self) -> Any:
        """An unbuffered connection: parameters are escaped, result values stay text/bytes."""
        raw = dict(pymysql.converters.encoders)
        return self.config.connect(cursorclass=pymysql.cursors.SSCursor, conv=raw)

    def fetch(
        self, con: Any, sql: str, params: Sequence[Any] = ()
    ) -> Iterator[tuple[pa.RecordBatch, list[Message]]]:
        """``(typed batch with every row, messages to yield)`` per fetched batch of ``sql``.

        The typed batch keeps rows whose values do not fit (as nulls) so callers can read
        their cursor or key; the messages hold the loadable rows and the quarantined ones.
        """
        with con.cursor() as cur:
            try:
                cur.execute(sql, list(params))
            except pymysql.MySQLError as exc:
                raise self.config.error(exc, f"read {self.stream.name} from") from None
            while rows := cur.fetchmany(self.size):
                yield self._typed(_raw_batch(rows, self.schema))

    def _typed(self, raw: pa.RecordBatch) -> tuple[pa.RecordBatch, list[Message]]:
        batch, bad = conform(raw, self.schema)
        out: list[Message] = []
        loaded = batch
        if bad:
            out.append(_quarantined(self.table, raw, batch, bad))
            loaded = batch.filter(pa.array([i not in bad for i in range(raw.num_rows)]))
        if loaded.num_rows:
            out.append(Records(loaded))
        return batch, out

    def read_rows(
        self, sql: str, params: Sequence[Any] = ()
    ) -> Iterator[tuple[pa.RecordBatch, list[Message]]]:
        """Like :meth:`fetch` on a connection of its own, through connectorx when installed.

        connectorx decodes the binary protocol into Arrow in Rust (several times faster than
        pymysql); columns without an exact native mapping are selected as their text
        (``CAST(... AS CHAR)``) and typed by the same Arrow casts as the pymysql path.
        """
        connectorx: Any
        try:
            import connectorx  # type: ignore[import-untyped,no-redef]
        except ImportError:
            connectorx = None
        if connectorx is None:
            con = self.connect()
            try:
                yield from self.fetch(con, sql, params)
            finally:
                con.close()
            return
        parts, rest = [self._cx_select()], sql[len(self.select) :]  # with %s placeholders
        for value in params:
            head, _, rest = rest.partition("%s")
            parts += [head, pymysql.converters.escape_item(value, "utf8mb4")]
        query = "".join([*parts, rest])
        try:
            reader = connectorx.read_sql(
                self.config.cx_url(),
                query,
                return_type="arrow_stream",
                batch_size=self.size,
                pre_execution_query=["SET time_zone = '+00:00'", "SET NAMES utf8mb4"],
            )
            for batch in reader:
                if batch.num_rows:
                    yield self._typed(self._cx_raw(batch))
        except BaseException as exc:  # connectorx raises Rust panics as BaseException
            if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit):
                raise
            raise ConnectorError(
                f"cannot read {self.stream.name} from MySQL at {self.config.where()}: "
                f"{self.config.redact(str(exc).splitlines()[0] if str(exc) else repr(exc))}"
            ) from None

    def _cx_select(self) -> str:
        """``SELECT`` whose columns connectorx maps exactly (the rest as their text)."""
        exprs = []
        for c in self.table.columns:
            name = quote(c.name)
            native = (
                c.data_type in _INTS
                or c.data_type in ("float", "double", "year")
                or c.data_type in _BINARY
                or c.data_type in _TEXT - {"enum", "set"}
            ) and not c.arrow[1]
            is_json_text = c.is_json and c.data_type in _TEXT
            if native and not is_json_text:
                exprs.append(name)
            else:
                exprs.append(f"CAST({name} AS CHAR CHARACTER SET utf8mb4) AS {name}")
        return f"SELECT {', '.join(exprs)} FROM {self.table.qualified}"

    def _cx_raw(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """connectorx's batch shaped like :func:`_raw_batch` (text where casts follow)."""
        arrays = []
        for field, column in zip(self.schema, batch.columns, strict=True):
            if pa.types.is_large_binary(column.type):
                column = column.cast(pa.binary())
            elif pa.types.is_large_string(column.type):
                column = column.cast(pa.string())
            if pa.types.is_string(column.type):
                if pa.types.is_timestamp(field.type) and field.type.tz is not None:
                    column = column.cast(pa.timestamp(field.type.unit))
                elif isinstance(field.type, pa.JsonType):
                    column = pa.ExtensionArray.from_storage(JSON, column)
                elif isinstance(field.type, pa.UuidType):
                    column = uuid_from_text(column)
            arrays.append(column)
        return pa.RecordBatch.from_arrays(arrays, names=self.schema.names)

    def full(self, state: dict[str, Any]) -> Iterator[Message]:
        """The whole table, then ``{"complete": true}``.

        Tables with a primary key are read in key order (InnoDB's own order, so no sort)
        with a checkpoint ``{"after": [key]}`` at the first batch end after every
        ``checkpoint_rows`` rows: destinations commit as the read goes, and a read given such
        a state continues after that key.
        """
        keys = list(self.table.primary_key) if self.table.kind == "table" else []
        sql, params = self.select, list(state.get("after") or [])
        if keys:
            names = ", ".join(quote(k) for k in keys)
            if params and len(params) == len(keys) and not state.get("complete"):
                sql += f" WHERE ({names}) > ({', '.join(['%s'] * len(keys))})"
            else:
                params = []
            sql += f" ORDER BY {names}"
        yield from ordered_read(
            self.read_rows(sql, params),
            after=(lambda batch: {"after": self.last_key(batch)}) if keys else None,
            every=self.config.checkpoint_rows,
        )
        yield Checkpoint({"complete": True})

    def last_key(self, batch: pa.RecordBatch) -> list[Any]:
        """The primary key of the last row of ``batch`` as JSON values."""
        return [jsonable(batch.column(k)[-1].as_py()) for k in self.table.primary_key]

    def incremental(self, last: Any) -> Iterator[Message]:
        """Rows with ``cursor > last`` in cursor order; checkpoints where the value changes."""
        cursor_field = self.stream.cursor_field
        if not cursor_field or cursor_field not in self.schema.names:
            raise ConfigError(
                f"stream {self.stream.name!r}: incremental sync needs a cursor_field that is a "
                f"column of {self.table.qualified} (got {cursor_field!r})"
            )
        sql = self.select
        params: list[Any] = []
        if last is not None:
            sql += f" WHERE {quote(cursor_field)} > %s"
            params.append(last)
        sql += f" ORDER BY {quote(cursor_field)}"
        last = yield from ordered_read(self.read_rows(sql, params), cursor=cursor_field, last=last)
        yield Checkpoint({"cursor": jsonable(last)})


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
    return table_stream(
        table.stream,
        schema,
        table.primary_key,
        {
            "kind": table.kind,
            "database": table.database,
            "table": table.name,
            "declared_types": {c.name: c.column_type for c in table.columns},
            "estimated_rows": table.estimated_rows,
            "estimated_bytes": table.estimated_bytes,
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
            elif isinstance(field.type, pa.UuidType):
                text = uuid_from_text(text)
            arrays.append(text)
    return pa.RecordBatch.from_arrays(arrays, names=schema.names)


_HEX = np.full(256, 255, np.uint8)
_HEX[np.frombuffer(b"0123456789", np.uint8)] = np.arange(10)
_HEX[np.frombuffer(b"abcdef", np.uint8)] = np.arange(10, 16)
_HEX[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16)


def uuid_from_text(text: pa.Array) -> pa.Array:
    """UUID text (``8-4-4-4-12`` hex digits, as MariaDB sends it) as Arrow UUIDs, vectorized."""
    plain = pc.replace_substring(text.fill_null("0" * 32), "-", "").cast(pa.string())
    lengths = pc.binary_length(plain)
    if len(plain) and set(pc.min_max(lengths).values()) != {pa.scalar(32, lengths.type)}:
        odd = text.filter(pc.not_equal(lengths, 32))[0].as_py()
        raise ConnectorError(f"a uuid column sent {odd!r}, which is not a UUID")
    offsets = np.frombuffer(plain.buffers()[1], np.int32)[plain.offset : plain.offset + 2]
    start = int(offsets[0]) if len(plain) else 0
    digits = _HEX[np.frombuffer(plain.buffers()[2], np.uint8)[start : start + 32 * len(plain)]]
    if (digits == 255).any():
        odd = pc.invert(pc.match_substring_regex(plain, "^[0-9a-fA-F]{32}$"))
        raise ConnectorError(f"a uuid column sent {text.filter(odd)[0].as_py()!r}, not a UUID")
    packed = (digits[0::2] << 4) | digits[1::2]
    storage = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(16),
        len(text),
        [text.is_valid().buffers()[1] if text.null_count else None, pa.py_buffer(packed.tobytes())],
    )
    return pa.ExtensionArray.from_storage(UUID, storage)


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
