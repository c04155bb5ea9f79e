"""MySQL / MariaDB destination (InnoDB).

Rows are inserted with multi-row ``INSERT`` statements (pymysql escapes values in Python:
the slower path, documented) inside a transaction that also appends the stream state to
``_aggregator_state``; ``COMMIT`` makes data, quarantine and state visible together.
``merge`` uses ``INSERT ... ON DUPLICATE KEY UPDATE`` on the table's primary key (within a
batch the last row per key wins); rows flagged ``_aggregator_deleted`` (change data capture)
delete their key instead, and the flag is no column of the table. ``replace`` fills
``<table>__staging`` and swaps it in with one atomic ``RENAME TABLE``. MySQL commits
implicitly around DDL, so schema changes (``CREATE``/``ALTER``) and the replace swap commit
on their own: a crash right after one can make ``append`` repeat the rows of one batch;
``merge`` and ``replace`` stay exact.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from aggregator.connectors._bookkeeping import next_seq
from aggregator.connectors.mysql.connection import MySQLConnection
from aggregator.connectors.mysql.source import quote
from aggregator.connectors.sdk import CheckResult, Destination, DestinationSession, StreamWriter
from aggregator.core.catalog import ConfiguredStream, WriteMode
from aggregator.core.errors import ConfigError, ConnectorError
from aggregator.core.types import schema_from_json, schema_to_json


def mysql_type(dtype: pa.DataType, key: bool = False) -> str:
    """The MySQL column type holding ``dtype`` exactly (indexable variants for keys)."""
    if isinstance(dtype, pa.JsonType):
        return "JSON"
    if isinstance(dtype, pa.UuidType):
        return "CHAR(36)"
    if pa.types.is_decimal(dtype):
        return f"DECIMAL({dtype.precision},{dtype.scale})" if dtype.precision <= 65 else "LONGTEXT"
    if pa.types.is_timestamp(dtype):
        return "DATETIME(6)"  # timestamptz: stored as UTC, the Arrow schema is recorded
    if pa.types.is_boolean(dtype):
        return "BOOLEAN"
    if pa.types.is_integer(dtype):
        base = {8: "TINYINT", 16: "SMALLINT", 32: "INT", 64: "BIGINT"}[dtype.bit_width]
        return base + (" UNSIGNED" if pa.types.is_unsigned_integer(dtype) else "")
    if pa.types.is_floating(dtype):
        return "DOUBLE" if dtype == pa.float64() else "FLOAT"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_null(dtype):
        return "VARCHAR(768)" if key else "LONGTEXT"
    if pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype):
        return "VARBINARY(3072)" if key else "LONGBLOB"
    if pa.types.is_date(dtype):
        return "DATE"
    if pa.types.is_time(dtype):
        return "TIME(6)"
    if pa.types.is_list(dtype) or pa.types.is_struct(dtype) or pa.types.is_large_list(dtype):
        return "JSON"
    raise TypeError(f"no exact MySQL type for {dtype}")


DELETED = "_aggregator_deleted"


def _last_per_key(batch: pa.RecordBatch, keys: list[str]) -> pa.RecordBatch:
    """The last row of each key, in the batch's order (a later change of a key wins)."""
    position = "__aggregator_position"
    numbered = pa.Table.from_batches([batch]).append_column(
        position, pa.array(range(batch.num_rows), pa.int64())
    )
    last = numbered.group_by(keys, use_threads=False).aggregate([(position, "max")])
    rows = last.column(f"{position}_max").combine_chunks()
    return batch.take(pc.take(rows, pc.sort_indices(rows)))


def _values(column: pa.Array) -> list[Any]:
    """Python values pymysql escapes exactly."""
    dtype = column.type
    if isinstance(dtype, pa.JsonType):
        return column.storage.to_pylist()  # type: ignore[no-any-return]
    if isinstance(dtype, pa.UuidType):
        return [None if b is None else str(uuid.UUID(bytes=b)) for b in column.storage.to_pylist()]
    if pa.types.is_timestamp(dtype) and dtype.tz is not None:
        naive = pc.cast(column, pa.timestamp(dtype.unit))  # UTC wall time
        return naive.to_pylist()  # type: ignore[no-any-return]
    if pa.types.is_list(dtype) or pa.types.is_struct(dtype) or pa.types.is_large_list(dtype):
        return [None if v is None else json.dumps(v, default=str) for v in column.to_pylist()]
    return column.to_pylist()  # type: ignore[no-any-return]


class MySQLDestinationConfig(MySQLConnection):
    """Where to write (``database`` is created when missing)."""

    insert_rows: int = Field(5000, gt=0, description="Rows per INSERT statement.")


class MySQLDestination(Destination[MySQLDestinationConfig]):
    """Loads streams into MySQL / MariaDB tables."""

    name: ClassVar[str] = "mysql"
    config_model = MySQLDestinationConfig
    description: ClassVar[str] = "MySQL / MariaDB database (InnoDB; merge, atomic replace)"

    def check(self) -> CheckResult:
        """Connect and create the bookkeeping tables."""
        try:
            self.open("_check").close()
        except (ConnectorError, ConfigError) as exc:
            return CheckResult(False, exc.message)
        return CheckResult(True, f"MySQL at {self.config.where()} is writable")

    def open(self, pipeline: str) -> DestinationSession:
        """Connect and prepare the database."""
        return MySQLSession(self.config, pipeline)


class MySQLSession(DestinationSession):
    """Bookkeeping connection; each writer has its own connection and transaction."""

    def __init__(self, config: MySQLDestinationConfig, pipeline: str) -> None:
        self.config = config
        self.pipeline = pipeline
        self.database = config.params()["database"]
        if not self.database:
            raise ConfigError("mysql destination: set `database` (or a database in `url`)")
        params = config.params() | {"database": None}
        bootstrap = MySQLConnection.model_validate(
            {k: v for k, v in params.items() if v is not None} | {"database": None}
        )
        with bootstrap.connect() as con, con.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS {quote(self.database)}")
        self.con = config.connect()
        with self.con.cursor() as cur:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS _aggregator_state (pipeline VARCHAR(255), "
                "stream VARCHAR(255), seq BIGINT, run_id VARCHAR(64), state LONGTEXT, "
                "committed_at DATETIME(6)) ENGINE=InnoDB"
            )
            cur.execute(
                "CREATE TABLE IF NOT EXISTS _aggregator_schemas (table_name VARCHAR(255), "
                "seq BIGINT, columns LONGTEXT) ENGINE=InnoDB"
            )

    def _one(self, sql: str, params: list[Any]) -> Any:
        with self.con.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchone()

    def read_state(self, stream: str) -> dict[str, Any] | None:
        """Latest committed state (NULL = reset)."""
        row = self._one(
            "SELECT state FROM _aggregator_state WHERE pipeline = %s AND stream = %s "
            "ORDER BY seq DESC LIMIT 1",
            [self.pipeline, stream],
        )
        if row is None or row[0] is None:
            return None
        state: dict[str, Any] = json.loads(row[0])
        return state

    def reset_state(self, stream: str | None = None) -> None:
        """Append NULL states."""
        with self.con.cursor() as cur:
            if stream:
                names = [stream]
            else:
                cur.execute(
                    "SELECT DISTINCT stream FROM _aggregator_state WHERE pipeline = %s",
                    [self.pipeline],
                )
                names = [r[0] for r in cur.fetchall()]
            for name in names:
                cur.execute(
                    "INSERT INTO _aggregator_state VALUES (%s, %s, %s, 'reset', NULL, "
                    "UTC_TIMESTAMP(6))",
                    [self.pipeline, name, next_seq()],
                )

    def stored_schema(self, table: str) -> pa.Schema | None:
        """The recorded Arrow schema of ``table`` when it exists."""
        exists = self._one(
            "SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
            "AND TABLE_NAME = %s",
            [self.database, table],
        )
        if not exists or not exists[0]:
            return None
        row = self._one(
            "SELECT columns FROM _aggregator_schemas WHERE table_name = %s "
            "ORDER BY seq DESC LIMIT 1",
            [table],
        )
        return schema_from_json(json.loads(row[0])) if row else None

    def writer(self, stream: ConfiguredStream, run_id: str) -> StreamWriter:
        """A writer with its own transaction."""
        if stream.write_mode is WriteMode.MERGE and not stream.primary_key:
            raise ConfigError(
                f"stream {stream.name!r}: write_mode merge needs a primary_key (set "
                "`primary_key` on the stream, or use append/replace)"
            )
        return MySQLWriter(self, stream, run_id)

    def close(self) -> None:
        """Close the bookkeeping connection."""
        self.con.close()


class MySQLWriter(StreamWriter):
    """Writes one stream; rows and state commit together."""

    def __init__(self, session: MySQLSession, stream: ConfiguredStream, run_id: str) -> None:
        self.session = session
        self.stream = stream
        self.run_id = run_id
        self.mode = stream.write_mode
        self.target = stream.table
        self.staging = f"{self.target}__staging"
        self._schema = session.stored_schema(self.target)
        self._table_schema = None if self.mode is WriteMode.REPLACE else self._schema
        self._pending: dict[str, Any] | None = None
        self._quarantine_ready = False
        self.con = session.config.connect()
        self.con.autocommit(False)

    @property
    def _table(self) -> str:
        return self.staging if self.mode is WriteMode.REPLACE else self.target

    def _exec(self, sql: str, params: Any = None, many: bool = False) -> None:
        try:
            with self.con.cursor() as cur:
                if many:
                    cur.executemany(sql, params)
                else:
                    cur.execute(sql, params)
        except Exception as exc:
            raise ConnectorError(
                f"MySQL rejected a statement for stream {self.stream.name!r}: "
                f"{self.session.config.redact(str(exc))}"
            ) from None

    def current_schema(self) -> pa.Schema | None:
        """Schema of the destination table as last applied."""
        return self._schema

    def apply_schema(self, schema: pa.Schema) -> None:
        """Create or alter the (staging) table (DDL commits implicitly in MySQL)."""
        keys = set(self.stream.primary_key) if self.mode is not WriteMode.APPEND else set()
        ddl = schema
        if self.mode is WriteMode.MERGE and DELETED in schema.names:
            ddl = schema.remove(schema.get_field_index(DELETED))
        if self._table_schema is None:
            cols = [f"{quote(f.name)} {mysql_type(f.type, f.name in keys)}" for f in ddl]
            if keys:
                cols.append(f"PRIMARY KEY ({', '.join(quote(k) for k in self.stream.primary_key)})")
            if self.mode is WriteMode.REPLACE:
                self._exec(f"DROP TABLE IF EXISTS {quote(self.staging)}")
            self._exec(f"CREATE TABLE {quote(self._table)} ({', '.join(cols)}) ENGINE=InnoDB")
        else:
            old = {f.name: f.type for f in self._table_schema}
            for f in ddl:
                new = mysql_type(f.type, f.name in keys)
                if f.name not in old:
                    self._exec(f"ALTER TABLE {quote(self._table)} ADD COLUMN {quote(f.name)} {new}")
                elif mysql_type(old[f.name], f.name in keys) != new:
                    self._exec(f"ALTER TABLE {quote(self._table)} MODIFY {quote(f.name)} {new}")
        self._table_schema = self._schema = schema
        if self.mode is not WriteMode.REPLACE:
            self._record_schema(schema)

    def _record_schema(self, schema: pa.Schema) -> None:
        self._exec(
            "INSERT INTO _aggregator_schemas VALUES (%s, %s, %s)",
            [self.target, next_seq(), json.dumps(schema_to_json(schema))],
        )

    def write(self, batch: pa.RecordBatch) -> None:
        """Insert (or upsert, or delete flagged keys) the batch inside the open transaction."""
        if batch.num_rows == 0:
            return
        if self.mode is WriteMode.MERGE and DELETED in batch.schema.names:
            batch = _last_per_key(batch, list(self.stream.primary_key))
            flags = batch.column(DELETED).fill_null(False)
            self._delete(batch.filter(flags).select(list(self.stream.primary_key)))
            batch = batch.filter(pc.invert(flags)).drop_columns([DELETED])
            if batch.num_rows == 0:
                return
        names = [quote(n) for n in batch.schema.names]
        marks = "(" + ", ".join(["%s"] * len(names)) + ")"
        sql = f"INSERT INTO {quote(self._table)} ({', '.join(names)}) VALUES {marks}"
        if self.mode is WriteMode.MERGE:
            keys = {quote(k) for k in self.stream.primary_key}
            updates = ", ".join(f"{n} = VALUES({n})" for n in names if n not in keys)
            sql += f" ON DUPLICATE KEY UPDATE {updates or names[0] + ' = ' + names[0]}"
        rows = list(zip(*(_values(c) for c in batch.columns), strict=True))
        step = self.session.config.insert_rows
        for start in range(0, len(rows), step):
            self._exec(sql, rows[start : start + step], many=True)

    def _delete(self, keys: pa.RecordBatch) -> None:
        """Delete the rows of ``keys`` (key columns) inside the open transaction."""
        if keys.num_rows == 0:
            return
        names = ", ".join(quote(n) for n in keys.schema.names)
        rows = list(zip(*(_values(c) for c in keys.columns), strict=True))
        one = "(" + ", ".join(["%s"] * keys.num_columns) + ")"
        step = self.session.config.insert_rows
        for start in range(0, len(rows), step):
            chunk = rows[start : start + step]
            self._exec(
                f"DELETE FROM {quote(self._table)} WHERE ({names}) IN "
                f"({', '.join([one] * len(chunk))})",
                [v for row in chunk for v in row],
            )

    def quarantine(self, rows: pa.Table) -> None:
        """Append to ``<table>__quarantine`` in the transaction."""
        if rows.num_rows == 0:
            return
        table = quote(f"{self.target}__quarantine")
        if not self._quarantine_ready:
            self._exec(
                f"CREATE TABLE IF NOT EXISTS {table} (run_id VARCHAR(64), stream VARCHAR(255), "
                "reason LONGTEXT, position LONGTEXT, raw LONGTEXT, quarantined_at DATETIME(6)) "
                "ENGINE=InnoDB"
            )
            self._quarantine_ready = True
        values = [
            (self.run_id, self.stream.name, r["reason"], r["position"], r["raw"])
            for r in rows.to_pylist()
        ]
        self._exec(
            f"INSERT INTO {table} VALUES (%s, %s, %s, %s, %s, UTC_TIMESTAMP(6))", values, True
        )

    def _save_state(self, state: dict[str, Any]) -> None:
        self._exec(
            "INSERT INTO _aggregator_state VALUES (%s, %s, %s, %s, %s, UTC_TIMESTAMP(6))",
            [self.session.pipeline, self.stream.name, next_seq(), self.run_id, json.dumps(state)],
        )

    def commit(self, state: dict[str, Any] | None) -> None:
        """Commit rows with ``state`` (replace: at :meth:`finish`)."""
        if self.mode is WriteMode.REPLACE:
            self._pending = state
            self.con.commit()
            return
        if state is not None:
            self._save_state(state)
        self.con.commit()

    def finish(self, state: dict[str, Any] | None) -> None:
        """Commit the rest; replace swaps the staging table in with one RENAME."""
        try:
            if self.mode is not WriteMode.REPLACE:
                self.commit(state)
                return
            state = state if state is not None else self._pending
            self.con.commit()
            if self._table_schema is not None:
                old = quote(f"{self.target}__old")
                self._exec(f"DROP TABLE IF EXISTS {old}")
                if self.session.stored_schema(self.target) is not None or self._exists():
                    self._exec(
                        f"RENAME TABLE {quote(self.target)} TO {old}, "
                        f"{quote(self.staging)} TO {quote(self.target)}"
                    )
                    self._exec(f"DROP TABLE {old}")
                else:
                    self._exec(f"RENAME TABLE {quote(self.staging)} TO {quote(self.target)}")
                self._record_schema(self._table_schema)
            if state is not None:
                self._save_state(state)
            self.con.commit()
        finally:
            self.con.close()

    def _exists(self) -> bool:
        row = self.session._one(
            "SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
            "AND TABLE_NAME = %s",
            [self.session.database, self.target],
        )
        return bool(row and row[0])

    def abort(self) -> None:
        """Roll back the open transaction."""
        try:
            self.con.rollback()
        finally:
            self.con.close()
