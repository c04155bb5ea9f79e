"""DuckDB destination.

Every write happens inside a DuckDB transaction that also appends the stream's state to
``_aggregator_state``; a crash before ``COMMIT`` leaves the database as of the previous
checkpoint. ``replace`` fills ``<table>__staging`` (committed at checkpoints, so memory
stays bounded; a crash leaves it to be rebuilt by the next run) and swaps it in with the
state in one transaction at the end, so readers see the old table or the new one, never a
half-loaded one. ``merge`` deletes the keys of each batch and inserts the last row per key.
Child tables (:class:`DuckDBChildTable`) are written with the same statements, in the
parent writer's transactions.

Bookkeeping tables (rows are inserted, never updated, so concurrent stream transactions
never conflict): ``_aggregator_state`` (pipeline, stream, seq, state; each commit also
deletes its stream's older rows, so a long ``--follow`` run keeps one row per stream) and
``_aggregator_schemas`` (table_name, seq, columns).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import pyarrow as pa
from pydantic import Field

from aggregator.connectors._bookkeeping import next_seq
from aggregator.connectors.duckdb.types import duckdb_type, quote, to_duckdb_batch
from aggregator.connectors.sdk import (
    CheckResult,
    ChildTable,
    ConnectorConfig,
    Destination,
    DestinationSession,
    StreamWriter,
)
from aggregator.core.catalog import ConfiguredStream, WriteMode
from aggregator.core.types import schema_from_json, schema_to_json

#: Rows carrying ``true`` in this column are deletions (CDC); merge applies them as deletes.
DELETED = "_aggregator_deleted"


class DuckDBConfig(ConnectorConfig):
    """Where the DuckDB warehouse lives."""

    path: str = Field("warehouse.duckdb", description="Database file (':memory:' for tests).")
    schema_name: str = Field("main", alias="schema", description="Schema for the tables.")
    memory_limit: str | None = Field(
        "128MB",
        description="DuckDB memory_limit, e.g. '2GB' (None: DuckDB's own, 80% of RAM). DuckDB "
        "keeps written blocks cached until it reaches the limit, so a bounded default keeps a "
        "load's memory from growing with the table (128MB: 5M narrow rows load in ~100 MB "
        "less than with 256MB, at the same speed).",
    )
    threads: int = Field(
        1,
        ge=1,
        le=256,
        description="DuckDB worker threads. The engine already reads, transforms and writes "
        "in parallel; DuckDB's own threads on each 65k-row insert cost more CPU than they "
        "save (5M rows: 1.3 s of insert CPU with 1 thread, 2.2 s with 2).",
    )

    def connect_options(self) -> dict[str, str | bool | int | float | list[str]]:
        """DuckDB ``config`` for a connection to this file: every connection of a process to
        one file must pass the same (the writer's and the transform reference loader's)."""
        options: dict[str, str | bool | int | float | list[str]] = {"threads": self.threads}
        if self.memory_limit:
            options["memory_limit"] = self.memory_limit
        return options


class DuckDBDestination(Destination[DuckDBConfig]):
    """Loads streams into a DuckDB database file."""

    name: ClassVar[str] = "duckdb"
    config_model = DuckDBConfig
    description: ClassVar[str] = "DuckDB database file (the embedded default warehouse)"

    def check(self) -> CheckResult:
        """Open the database and run a query."""
        try:
            with self.open("_check") as session:
                assert isinstance(session, DuckDBSession)
                session.con.execute("SELECT 1").fetchall()
        except (duckdb.Error, OSError) as exc:
            return CheckResult(False, f"cannot open DuckDB database {self.config.path!r}: {exc}")
        return CheckResult(True, f"DuckDB database {self.config.path!r} is writable")

    def open(self, pipeline: str) -> DestinationSession:
        """Open (and create) the database file."""
        if self.config.path != ":memory:":
            Path(self.config.path).parent.mkdir(parents=True, exist_ok=True)
        return DuckDBSession(self.config, pipeline)


class DuckDBSession(DestinationSession):
    """One connection to the database; each stream writer uses its own cursor."""

    def __init__(self, config: DuckDBConfig, pipeline: str) -> None:
        self.con = duckdb.connect(config.path, config=config.connect_options())
        self.schema = config.schema_name
        self.pipeline = pipeline
        self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(self.schema)}")
        self.con.execute(
            f"CREATE TABLE IF NOT EXISTS {self.qualified('_aggregator_state')} ("
            "pipeline VARCHAR, stream VARCHAR, seq BIGINT, run_id VARCHAR, state JSON, "
            "committed_at TIMESTAMPTZ)"
        )
        self.con.execute(
            f"CREATE TABLE IF NOT EXISTS {self.qualified('_aggregator_schemas')} ("
            "table_name VARCHAR, seq BIGINT, columns JSON)"
        )

    def qualified(self, table: str) -> str:
        """``schema.table``, quoted."""
        return f"{quote(self.schema)}.{quote(table)}"

    def read_state(self, stream: str) -> dict[str, Any] | None:
        """Latest committed state of ``stream`` (a reset is stored as a NULL state)."""
        with self.con.cursor() as cursor:
            row = cursor.execute(
                f"SELECT state FROM {self.qualified('_aggregator_state')} "
                "WHERE pipeline = ? AND stream = ? ORDER BY seq DESC LIMIT 1",
                [self.pipeline, stream],
            ).fetchone()
        if row is None or row[0] is None:
            return None
        state: dict[str, Any] = json.loads(row[0])
        return state

    def reset_state(self, stream: str | None = None) -> None:
        """Append NULL states, so the next run starts from scratch."""
        streams = [stream] if stream else self._streams_with_state()
        with self.con.cursor() as cursor:
            for name in streams:
                cursor.execute(
                    f"INSERT INTO {self.qualified('_aggregator_state')} "
                    "VALUES (?, ?, ?, 'reset', NULL, now())",
                    [self.pipeline, name, next_seq()],
                )

    def _streams_with_state(self) -> list[str]:
        with self.con.cursor() as cursor:
            rows = cursor.execute(
                f"SELECT DISTINCT stream FROM {self.qualified('_aggregator_state')} "
                "WHERE pipeline = ?",
                [self.pipeline],
            ).fetchall()
        return [r[0] for r in rows]

    def stored_schema(self, cursor: duckdb.DuckDBPyConnection, table: str) -> pa.Schema | None:
        """The Arrow schema last applied to ``table``, if the table exists."""
        exists = cursor.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? "
            "AND table_name = ?",
            [self.schema, table],
        ).fetchone()
        if not exists or not exists[0]:
            return None
        row = cursor.execute(
            f"SELECT columns FROM {self.qualified('_aggregator_schemas')} "
            "WHERE table_name = ? ORDER BY seq DESC LIMIT 1",
            [table],
        ).fetchone()
        if row is not None:
            return schema_from_json(json.loads(row[0]))
        result = cursor.execute(f"SELECT * FROM {self.qualified(table)} LIMIT 0")
        arrow_schema: pa.Schema = result.to_arrow_table().schema  # type: ignore[union-attr]
        return arrow_schema

    def writer(self, stream: ConfiguredStream, run_id: str) -> StreamWriter:
        """A writer with its own cursor (DuckDB connections are per thread)."""
        return DuckDBWriter(self, stream, run_id)

    def close(self) -> None:
        """Compact superseded state rows and close."""
        try:
            self.con.execute(
                f"DELETE FROM {self.qualified('_aggregator_state')} s WHERE pipeline = ? AND seq < "
                f"(SELECT max(seq) FROM {self.qualified('_aggregator_state')} t "
                "WHERE t.pipeline = s.pipeline AND t.stream = s.stream)",
                [self.pipeline],
            )
        finally:
            self.con.close()


class DuckDBWriter(StreamWriter):
    """Writes one stream inside transactions that also record its state."""

    def __init__(self, session: DuckDBSession, stream: ConfiguredStream, run_id: str) -> None:
        self.session = session
        self.stream = stream
        self.run_id = run_id
        self.con = session.con.cursor()
        self.mode = stream.write_mode
        self.target = stream.table
        self.staging = f"{self.target}__staging"
        self._schema = session.stored_schema(self.con, self.target)
        self._table_schema = None if self.mode is WriteMode.REPLACE else self._schema
        self._in_txn = False
        self._pending_state: dict[str, Any] | None = None
        self._view = f"_aggregator_batch_{abs(hash((stream.name, run_id))) % 10**9}"
        self._quarantine_ready = False

    @property
    def _table(self) -> str:
        return self.staging if self.mode is WriteMode.REPLACE else self.target

    def _begin(self) -> None:
        if not self._in_txn:
            self.con.execute("BEGIN TRANSACTION")
            self._in_txn = True

    def current_schema(self) -> pa.Schema | None:
        """Schema of the destination table as last applied."""
        return self._schema

    def apply_schema(self, schema: pa.Schema) -> None:
        """Create the (staging) table or alter it to ``schema``, inside the transaction."""
        self._begin()
        if self.mode is WriteMode.MERGE and DELETED in schema.names:
            schema_ddl = schema.remove(schema.get_field_index(DELETED))
        else:
            schema_ddl = schema
        self._shape_table(self._table, self._table_schema, schema_ddl)
        self._table_schema = schema
        self._schema = schema
        if self.mode is not WriteMode.REPLACE:
            self._record_schema(self.target, schema)

    def _shape_table(self, name: str, old: pa.Schema | None, schema: pa.Schema) -> None:
        """Create table ``name`` with ``schema`` (``replace``: over any old one), or add the
        columns and change the types that differ from ``old``."""
        table = self.session.qualified(name)
        if old is None:
            columns = ", ".join(f"{quote(f.name)} {duckdb_type(f.type)}" for f in schema)
            verb = "CREATE OR REPLACE TABLE" if self.mode is WriteMode.REPLACE else "CREATE TABLE"
            self.con.execute(f"{verb} {table} ({columns})")
            return
        types = {f.name: f.type for f in old}
        for f in schema:
            if f.name not in types:
                self.con.execute(
                    f"ALTER TABLE {table} ADD COLUMN {quote(f.name)} {duckdb_type(f.type)}"
                )
            elif duckdb_type(types[f.name]) != duckdb_type(f.type):
                self.con.execute(
                    f"ALTER TABLE {table} ALTER COLUMN {quote(f.name)} "
                    f"SET DATA TYPE {duckdb_type(f.type)}"
                )

    def _record_schema(self, table: str, schema: pa.Schema) -> None:
        self.con.execute(
            f"INSERT INTO {self.session.qualified('_aggregator_schemas')} VALUES (?, ?, ?)",
            [table, next_seq(), json.dumps(schema_to_json(schema))],
        )

    def _stored_schema(self, table: str) -> pa.Schema | None:
        found = self.session.stored_schema(self.con, table)
        self.con.fetchall()  # finish its last result: DuckDB registers nothing before that
        return found

    @contextmanager
    def _as_view(self, data: pa.RecordBatch | pa.Table) -> Iterator[str]:
        """``data`` registered as this writer's view, for one statement; yields its name."""
        self.con.register(self._view, data)
        try:
            yield quote(self._view)
        finally:
            self.con.unregister(self._view)

    def _insert(self, name: str, data: pa.RecordBatch | pa.Table) -> None:
        """Insert ``data`` (DuckDB-ready Arrow) into table ``name`` by column name."""
        with self._as_view(data) as view:
            self.con.execute(
                f"INSERT INTO {self.session.qualified(name)} BY NAME SELECT * FROM {view}"
            )

    def _delete_keys(self, name: str, keys: pa.Table) -> None:
        """Delete the rows of table ``name`` whose ``keys.column_names`` match ``keys``."""
        table = self.session.qualified(name)
        match = " AND ".join(f"{table}.{quote(k)} = k.{quote(k)}" for k in keys.column_names)
        with self._as_view(_duckdb_table(keys)) as view:
            self.con.execute(f"DELETE FROM {table} USING {view} k WHERE {match}")

    def _swap(self, staging: str, target: str, schema: pa.Schema) -> None:
        """Replace table ``target`` by ``staging`` and record ``schema`` (in the transaction)."""
        self.con.execute(f"DROP TABLE IF EXISTS {self.session.qualified(target)}")
        self.con.execute(f"ALTER TABLE {self.session.qualified(staging)} RENAME TO {quote(target)}")
        self._record_schema(target, schema)

    def child_table(self, name: str) -> ChildTable:
        """The child table ``name``, written in this writer's transactions."""
        return DuckDBChildTable(self, name)

    def write(self, batch: pa.RecordBatch) -> None:
        """Insert (append/replace) or upsert (merge) ``batch`` inside the transaction."""
        if batch.num_rows == 0:
            return
        self._begin()
        data = to_duckdb_batch(batch)
        if self.mode is WriteMode.MERGE:
            self._merge(self.session.qualified(self._table), data)
            return
        self._insert(self._table, data)

    def _merge(self, table: str, batch: pa.RecordBatch) -> None:
        keys = self.stream.primary_key
        seq = pa.array(range(batch.num_rows), pa.int64())
        data = batch.append_column("__aggregator_seq", seq)
        view = quote(self._view)
        match = " AND ".join(f"{table}.{quote(k)} = {view}.{quote(k)}" for k in keys)
        partition = ", ".join(quote(k) for k in keys)
        deletes = DELETED in batch.schema.names
        exclude = f"__aggregator_seq, {quote(DELETED)}" if deletes else "__aggregator_seq"
        with self._as_view(data):
            self.con.execute(f"DELETE FROM {table} USING {view} WHERE {match}")
            latest = (
                f"SELECT * FROM {view} QUALIFY row_number() OVER (PARTITION BY {partition} "
                "ORDER BY __aggregator_seq DESC) = 1"
            )
            if deletes:  # the last change of a key may be its deletion
                latest = f"SELECT * FROM ({latest}) WHERE NOT coalesce({quote(DELETED)}, false)"
            self.con.execute(
                f"INSERT INTO {table} BY NAME SELECT * EXCLUDE ({exclude}) FROM ({latest})"
            )

    def quarantine(self, rows: pa.Table) -> None:
        """Append rows to ``<table>__quarantine`` inside the transaction."""
        if rows.num_rows == 0:
            return
        self._begin()
        table = self.session.qualified(f"{self.target}__quarantine")
        if not self._quarantine_ready:
            self.con.execute(
                f"CREATE TABLE IF NOT EXISTS {table} (run_id VARCHAR, stream VARCHAR, "
                "reason VARCHAR, position VARCHAR, raw VARCHAR, quarantined_at TIMESTAMPTZ)"
            )
            self._quarantine_ready = True
        with self._as_view(rows) as view:
            self.con.execute(
                f"INSERT INTO {table} SELECT ?, ?, reason, position, raw, now() FROM {view}",
                [self.run_id, self.stream.name],
            )

    def _save_state(self, state: dict[str, Any] | None) -> None:
        """Record ``state`` and drop this stream's older rows, in the open transaction: the
        table keeps one row per stream however many commits a ``--follow`` run makes."""
        seq, table = next_seq(), self.session.qualified("_aggregator_state")
        self.con.execute(
            f"INSERT INTO {table} VALUES (?, ?, ?, ?, ?, now())",
            [
                self.session.pipeline,
                self.stream.name,
                seq,
                self.run_id,
                None if state is None else json.dumps(state),
            ],
        )
        self.con.execute(
            f"DELETE FROM {table} WHERE pipeline = ? AND stream = ? AND seq < ?",
            [self.session.pipeline, self.stream.name, seq],
        )

    def commit(self, state: dict[str, Any] | None) -> None:
        """Commit staged rows with ``state``.

        In replace mode the rows go to the staging table, which is committed (so memory stays
        bounded) but not yet visible as the target; the state waits for :meth:`finish`.
        """
        if self.mode is WriteMode.REPLACE:
            self._pending_state = state
            if self._in_txn:
                self.con.execute("COMMIT")
                self._in_txn = False
            return
        self._begin()
        if state is not None:
            self._save_state(state)
        self.con.execute("COMMIT")
        self._in_txn = False

    def finish(self, state: dict[str, Any] | None) -> None:
        """Commit the rest; for replace, swap the staging table in atomically."""
        if self.mode is not WriteMode.REPLACE:
            self.commit(state)
            return
        state = state if state is not None else self._pending_state
        self._begin()
        if self._table_schema is not None:
            self._swap(self.staging, self.target, self._table_schema)
        if state is not None:
            self._save_state(state)
        self.con.execute("COMMIT")
        self._in_txn = False

    def abort(self) -> None:
        """Roll back the open transaction."""
        if self._in_txn:
            self.con.execute("ROLLBACK")
            self._in_txn = False


def _duckdb_table(data: pa.Table) -> pa.Table:
    """``data`` (at least one row) with DuckDB-ready column types."""
    return pa.Table.from_batches([to_duckdb_batch(b) for b in data.combine_chunks().to_batches()])


class DuckDBChildTable(ChildTable):
    """A child table written with its parent :class:`DuckDBWriter`'s statements and
    transactions (``replace``: into ``<name>__staging``, swapped in by :meth:`finish`)."""

    def __init__(self, writer: DuckDBWriter, name: str) -> None:
        super().__init__(name, replace=writer.mode is WriteMode.REPLACE)
        self.writer = writer

    def _stored_schema(self) -> pa.Schema | None:
        self.writer._begin()
        return self.writer._stored_schema(self.name)

    def _shape(self, old: pa.Schema | None, new: pa.Schema) -> None:
        self.writer._begin()
        self.writer._shape_table(self.table, old, new)

    def _record_schema(self, schema: pa.Schema) -> None:
        self.writer._record_schema(self.name, schema)

    def _insert(self, rows: pa.Table) -> None:
        self.writer._begin()
        self.writer._insert(self.table, _duckdb_table(rows))

    def _delete(self, keys: pa.Table) -> None:
        self.writer._begin()
        self.writer._delete_keys(self.table, keys)

    def _swap(self, schema: pa.Schema) -> None:
        self.writer._begin()
        self.writer._swap(self.table, self.name, schema)

    def _empty(self) -> None:
        self.writer._begin()
        self.writer.con.execute(f"DELETE FROM {self.writer.session.qualified(self.name)}")
