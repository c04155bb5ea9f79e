"""SQLite destination.

One connection per session; SQLite allows one writer at a time, so writers of several
streams (possibly in several threads) share the connection under a lock that a writer takes
at its first write after a commit and releases at that commit: streams interleave at
checkpoint granularity. Every commit is one ``BEGIN IMMEDIATE`` ... ``COMMIT`` transaction
holding the stream's rows *and* its state, so after a crash the database holds exactly the
data of the last committed state.

Bookkeeping tables mirror the DuckDB destination: ``_aggregator_state`` (append-only; a
reset appends a NULL state) and ``_aggregator_schemas`` (the exact Arrow schema of each
table, so types SQLite has no native storage for can be read back exactly).

Storage: decimals and unsigned 64-bit integers as exact text, timestamps as ISO-8601 text
(tz-aware ones in UTC with ``+00:00``), dates/times as ISO text, JSON as text, UUIDs as
canonical text, lists/structs as JSON text, binary as BLOB, booleans as 0/1. Declared column
types say what a column holds and keep the right affinity (see
:mod:`aggregator.connectors.sqlite.types`).

``replace`` loads ``<table>__staging`` (committed at each checkpoint, but invisible as the
target) and swaps it in with ``DROP``/``ALTER TABLE ... RENAME`` in the final transaction,
together with the state. ``merge`` deletes the keys of each batch and inserts the last row
per key (rows later in the batch win). Widened types need no DDL unless the column's
affinity changes (e.g. integer to decimal text), in which case the table is rebuilt in the
same transaction with every stored value converted exactly.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from aggregator.connectors.sdk import (
    CheckResult,
    ConnectorConfig,
    Destination,
    DestinationSession,
    StreamWriter,
)
from aggregator.connectors.sqlite.types import (
    affinity,
    arrow_type,
    convert_column,
    declared_type,
    quote,
    sqlite_values,
)
from aggregator.core.catalog import ConfiguredStream, WriteMode
from aggregator.core.errors import ConfigError, ConnectorError, TransientError
from aggregator.core.schema import cast_array
from aggregator.core.types import schema_from_json, schema_to_json

#: Rows carrying ``true`` in this column are deletions (CDC); merge applies them as deletes.
DELETED = "_aggregator_deleted"
_STATE = "_aggregator_state"
_SCHEMAS = "_aggregator_schemas"
_REBUILD_CHUNK = 10_000


class SQLiteDestinationConfig(ConnectorConfig):
    """Where the SQLite database lives."""

    path: str = Field("warehouse.sqlite", description="Database file (':memory:' for tests).")
    journal_mode: Literal["wal", "delete", "truncate", "persist", "memory"] = Field(
        "wal", description="SQLite journal mode (WAL lets readers run during loads)."
    )
    busy_timeout: float = Field(
        30.0, ge=0, description="Seconds to wait for other processes' locks."
    )


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


class SQLiteDestination(Destination[SQLiteDestinationConfig]):
    """Loads streams into a SQLite database file."""

    name: ClassVar[str] = "sqlite"
    config_model = SQLiteDestinationConfig
    description: ClassVar[str] = "SQLite database file"

    def check(self) -> CheckResult:
        """Open (creating) the database and take the write lock once."""
        try:
            with self.open("_check") as session:
                assert isinstance(session, SQLiteSession)
                with session.transaction():
                    session.con.execute("SELECT 1").fetchall()
        except (sqlite3.Error, OSError, ConnectorError) as exc:
            return CheckResult(False, f"cannot write SQLite database {self.config.path!r}: {exc}")
        return CheckResult(True, f"SQLite database {self.config.path!r} is writable")

    def open(self, pipeline: str) -> DestinationSession:
        """Open (and create) the database file."""
        if self.config.path != ":memory:":
            Path(self.config.path).parent.mkdir(parents=True, exist_ok=True)
        return SQLiteSession(self.config, pipeline)


class SQLiteSession(DestinationSession):
    """One connection; a lock serializes the writers' transactions."""

    def __init__(self, config: SQLiteDestinationConfig, pipeline: str) -> None:
        try:
            self.con = sqlite3.connect(
                config.path,
                check_same_thread=False,
                isolation_level=None,
                timeout=config.busy_timeout,
            )
            self.con.execute(f"PRAGMA journal_mode={config.journal_mode}")
        except sqlite3.Error as exc:
            raise ConnectorError(f"cannot open SQLite database {config.path!r}: {exc}") from exc
        # Renaming the staging table must not rewrite (or validate) views and triggers that
        # refer to the target: after the swap, they refer to the new table again.
        self.con.execute("PRAGMA legacy_alter_table=ON")
        self.pipeline = pipeline
        self._lock = threading.Lock()
        self._owner: object | None = None
        self._owner_thread: int | None = None
        with self.transaction():
            self.con.execute(
                f"CREATE TABLE IF NOT EXISTS {_STATE} (pipeline TEXT, stream TEXT, "
                "seq INTEGER, run_id TEXT, state JSON_TEXT, committed_at TIMESTAMPTZ)"
            )
            self.con.execute(
                f"CREATE INDEX IF NOT EXISTS {_STATE}__stream ON {_STATE} (pipeline, stream, seq)"
            )
            self.con.execute(
                f"CREATE TABLE IF NOT EXISTS {_SCHEMAS} (table_name TEXT, seq INTEGER, "
                "columns JSON_TEXT)"
            )

    # ------------------------------------------------------------------ locking

    def begin(self, owner: object) -> None:
        """Take the write lock for ``owner`` and open its transaction (no-op if held)."""
        if self._owner is owner:
            return
        self._lock.acquire()
        try:
            self.con.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            self._lock.release()
            raise TransientError(f"SQLite database is locked: {exc}") from exc
        self._owner = owner
        self._owner_thread = threading.get_ident()

    def end(self, owner: object, commit: bool) -> None:
        """Commit (or roll back) ``owner``'s transaction and release the lock."""
        if self._owner is not owner:
            return
        try:
            if commit:
                try:
                    self.con.execute("COMMIT")
                except sqlite3.Error:
                    self.con.execute("ROLLBACK")
                    raise
            else:
                self.con.execute("ROLLBACK")
        finally:
            self._owner = None
            self._owner_thread = None
            self._lock.release()

    def holds(self, owner: object) -> bool:
        """Whether ``owner`` has the open transaction."""
        return self._owner is owner

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A short transaction of the session itself (joins the caller's own if open)."""
        if self._owner is not None and self._owner_thread == threading.get_ident():
            yield
            return
        token = object()
        self.begin(token)
        try:
            yield
        except BaseException:
            self.end(token, commit=False)
            raise
        self.end(token, commit=True)

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Hold the lock for reads, so they never see another writer's open transaction."""
        if self._owner is not None and self._owner_thread == threading.get_ident():
            yield
            return
        with self._lock:
            yield

    def next_seq(self, table: str) -> int:
        """Next sequence number of a bookkeeping table (called inside a transaction)."""
        row = self.con.execute(f"SELECT coalesce(max(seq), 0) + 1 FROM {table}").fetchone()
        return int(row[0])

    # ------------------------------------------------------------------ state

    def read_state(self, stream: str) -> dict[str, Any] | None:
        """Latest committed state of ``stream`` (a reset is stored as a NULL state)."""
        with self.reading():
            row = self.con.execute(
                f"SELECT state FROM {_STATE} WHERE pipeline = ? AND stream = ? "
                "ORDER BY seq DESC LIMIT 1",
                (self.pipeline, stream),
            ).fetchone()
        if row is None or row[0] is None:
            return None
        state: dict[str, Any] = json.loads(row[0])
        return state

    def reset_state(self, stream: str | None = None) -> None:
        """Append NULL states, so the next run starts from scratch."""
        with self.transaction():
            if stream:
                streams = [stream]
            else:
                rows = self.con.execute(
                    f"SELECT DISTINCT stream FROM {_STATE} WHERE pipeline = ?", (self.pipeline,)
                ).fetchall()
                streams = [r[0] for r in rows]
            for name in streams:
                self.con.execute(
                    f"INSERT INTO {_STATE} VALUES (?, ?, ?, 'reset', NULL, ?)",
                    (self.pipeline, name, self.next_seq(_STATE), _now()),
                )

    def save_state(self, stream: str, run_id: str, state: dict[str, Any]) -> None:
        """Append ``state`` (inside the caller's transaction)."""
        self.con.execute(
            f"INSERT INTO {_STATE} VALUES (?, ?, ?, ?, ?, ?)",
            (self.pipeline, stream, self.next_seq(_STATE), run_id, json.dumps(state), _now()),
        )

    # ------------------------------------------------------------------ schemas

    def table_exists(self, table: str) -> bool:
        """Whether ``table`` exists."""
        row = self.con.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchone()
        return row is not None

    def stored_schema(self, table: str) -> pa.Schema | None:
        """The Arrow schema last recorded for ``table`` (or derived from its declared types)."""
        with self.reading():
            if not self.table_exists(table):
                return None
            row = self.con.execute(
                f"SELECT columns FROM {_SCHEMAS} WHERE table_name = ? ORDER BY seq DESC LIMIT 1",
                (table,),
            ).fetchone()
            if row is not None:
                return schema_from_json(json.loads(row[0]))
            info = self.con.execute(f"PRAGMA table_info({quote(table)})").fetchall()
        return pa.schema([pa.field(r[1], arrow_type(r[2] or "")) for r in info])

    def record_schema(self, table: str, schema: pa.Schema) -> None:
        """Append ``schema`` for ``table`` (inside the caller's transaction)."""
        self.con.execute(
            f"INSERT INTO {_SCHEMAS} VALUES (?, ?, ?)",
            (table, self.next_seq(_SCHEMAS), json.dumps(schema_to_json(schema))),
        )

    # ------------------------------------------------------------------ lifecycle

    def writer(self, stream: ConfiguredStream, run_id: str) -> StreamWriter:
        """A writer for ``stream``; it shares the session's connection and lock."""
        return SQLiteWriter(self, stream, run_id)

    def close(self) -> None:
        """Roll back any open transaction, compact superseded state rows, and close."""
        try:
            if self._owner is not None:
                self.end(self._owner, commit=False)
            with self.transaction():
                self.con.execute(
                    f"DELETE FROM {_STATE} WHERE pipeline = ? AND seq < (SELECT max(t.seq) "
                    f"FROM {_STATE} t WHERE t.pipeline = {_STATE}.pipeline "
                    f"AND t.stream = {_STATE}.stream)",
                    (self.pipeline,),
                )
        finally:
            self.con.close()


class SQLiteWriter(StreamWriter):
    """Writes one stream inside transactions that also record its state."""

    def __init__(self, session: SQLiteSession, stream: ConfiguredStream, run_id: str) -> None:
        self.session = session
        self.con = session.con
        self.stream = stream
        self.run_id = run_id
        self.mode = stream.write_mode
        self.target = stream.table
        self.staging = f"{self.target}__staging"
        if self.mode is WriteMode.MERGE and not stream.primary_key:
            raise ConfigError(f"stream {stream.name!r}: merge needs a primary_key")
        self._schema = session.stored_schema(self.target)
        self._table_schema = None if self.mode is WriteMode.REPLACE else self._schema
        self._pending_state: dict[str, Any] | None = None
        self._quarantine_ready = False

    @property
    def _table(self) -> str:
        return self.staging if self.mode is WriteMode.REPLACE else self.target

    def _begin(self) -> None:
        self.session.begin(self)

    def current_schema(self) -> pa.Schema | None:
        """Schema of the destination table as last applied."""
        return self._schema

    def _columns_sql(self, schema: pa.Schema) -> str:
        return ", ".join(f"{quote(f.name)} {declared_type(f.type)}" for f in schema)

    def _key_index(self, table: str) -> None:
        if self.mode is WriteMode.MERGE:
            keys = ", ".join(quote(k) for k in self.stream.primary_key)
            self.con.execute(
                f"CREATE INDEX IF NOT EXISTS {quote(table + '__aggregator_key')} "
                f"ON {quote(table)} ({keys})"
            )

    def apply_schema(self, schema: pa.Schema) -> None:
        """Create the (staging) table, add columns, rebuild if a column's affinity changes."""
        virtual = None
        if self.mode is WriteMode.MERGE and DELETED in schema.names:
            # CDC deletions: a marker column applied by merge, never stored in the table
            virtual = schema.field(DELETED)
            schema = schema.remove(schema.get_field_index(DELETED))
        for f in schema:
            declared_type(f.type)  # fail early on types without exact storage
        self._begin()
        table = self._table
        if self._table_schema is None:
            if self.mode is WriteMode.REPLACE:
                self.con.execute(f"DROP TABLE IF EXISTS {quote(table)}")
            self.con.execute(f"CREATE TABLE {quote(table)} ({self._columns_sql(schema)})")
        else:
            old = {f.name: f.type for f in self._table_schema}
            changed = [
                f.name
                for f in schema
                if f.name in old
                and affinity(declared_type(old[f.name])) != affinity(declared_type(f.type))
            ]
            if changed:
                schema = self._rebuild(table, self._table_schema, schema, changed)
            else:
                for f in schema:
                    if f.name not in old:
                        self.con.execute(
                            f"ALTER TABLE {quote(table)} ADD COLUMN {quote(f.name)} "
                            f"{declared_type(f.type)}"
                        )
                kept = [f for f in self._table_schema if f.name not in schema.names]
                schema = pa.schema(list(schema) + kept)
        self._key_index(table)
        self._table_schema = schema
        self._schema = schema if virtual is None else schema.append(virtual)
        if self.mode is not WriteMode.REPLACE:
            self.session.record_schema(self.target, self._schema)

    def _rebuild(self, table: str, old: pa.Schema, new: pa.Schema, changed: list[str]) -> pa.Schema:
        """Recreate ``table`` with ``new`` types, converting changed columns exactly."""
        full = pa.schema(list(new) + [f for f in old if f.name not in new.names])
        tmp = f"{table}__rebuild"
        self.con.execute(f"DROP TABLE IF EXISTS {quote(tmp)}")
        self.con.execute(f"CREATE TABLE {quote(tmp)} ({self._columns_sql(full)})")
        same = [quote(f.name) for f in old if f.name not in changed]
        copied = ", ".join(["rowid", *same])
        self.con.execute(f"INSERT INTO {quote(tmp)} ({copied}) SELECT {copied} FROM {quote(table)}")
        for name in changed:
            source, target = old.field(name).type, new.field(name).type
            cur = self.con.execute(f"SELECT rowid, {quote(name)} FROM {quote(table)}")
            updates: list[tuple[Any, Any]] = []
            while rows := cur.fetchmany(_REBUILD_CHUNK):
                rowids, values = zip(*rows, strict=True)
                decoded, bad = convert_column(values, source, name)
                if bad:
                    raise ConnectorError(
                        f"table {table!r}: cannot convert column {name!r} to {target}: "
                        f"{next(iter(bad.values()))}"
                    )
                converted = sqlite_values(cast_array(decoded, target))
                updates.extend(zip(converted, rowids, strict=True))
            self.con.executemany(
                f"UPDATE {quote(tmp)} SET {quote(name)} = ? WHERE rowid = ?", updates
            )
        self.con.execute(f"DROP TABLE {quote(table)}")
        self.con.execute(f"ALTER TABLE {quote(tmp)} RENAME TO {quote(table)}")
        return full

    def write(self, batch: pa.RecordBatch) -> None:
        """Insert (append/replace) or upsert (merge) ``batch`` inside the transaction."""
        if batch.num_rows == 0:
            return
        self._begin()
        if self._table_schema is None:
            self.apply_schema(batch.schema)
        table = quote(self._table)
        if self.mode is WriteMode.MERGE:
            batch = self._delete_keys(table, batch)
            if DELETED in batch.schema.names:
                index = batch.schema.get_field_index(DELETED)
                keep = pc.invert(pc.fill_null(batch.column(index), False))
                batch = batch.filter(keep).remove_column(index)
                if batch.num_rows == 0:
                    return
        names = ", ".join(quote(n) for n in batch.schema.names)
        marks = ", ".join("?" * batch.num_columns)
        columns = [sqlite_values(column) for column in batch.columns]
        self.con.executemany(
            f"INSERT INTO {table} ({names}) VALUES ({marks})", zip(*columns, strict=True)
        )

    def _delete_keys(self, table: str, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Delete the batch's keys; returns the batch reduced to the last row per key."""
        keys = self.stream.primary_key
        missing = [k for k in keys if k not in batch.schema.names]
        if missing:
            raise ConfigError(
                f"stream {self.stream.name!r}: primary key columns missing: {', '.join(missing)}"
            )
        key_values = [sqlite_values(batch.column(k)) for k in keys]
        last: dict[tuple[Any, ...], int] = {}
        for i, key in enumerate(zip(*key_values, strict=True)):
            last[key] = i
        if len(last) < batch.num_rows:
            batch = batch.take(pa.array(sorted(last.values()), pa.int64()))
        match = " AND ".join(f"{quote(k)} IS ?" for k in keys)
        self.con.executemany(f"DELETE FROM {table} WHERE {match}", list(last))
        return batch

    def quarantine(self, rows: pa.Table) -> None:
        """Append rows to ``<table>__quarantine`` inside the transaction."""
        if rows.num_rows == 0:
            return
        self._begin()
        table = quote(f"{self.target}__quarantine")
        if not self._quarantine_ready:
            self.con.execute(
                f"CREATE TABLE IF NOT EXISTS {table} (run_id TEXT, stream TEXT, reason TEXT, "
                "position TEXT, raw TEXT, quarantined_at TIMESTAMPTZ)"
            )
            self._quarantine_ready = True
        now = _now()
        reasons = rows.column("reason").to_pylist()
        positions = rows.column("position").to_pylist()
        raws = rows.column("raw").to_pylist()
        self.con.executemany(
            f"INSERT INTO {table} VALUES (?, ?, ?, ?, ?, ?)",
            [
                (self.run_id, self.stream.name, r, p, w, now)
                for r, p, w in zip(reasons, positions, raws, strict=True)
            ],
        )

    def commit(self, state: dict[str, Any] | None) -> None:
        """Commit staged rows with ``state``; in replace mode the state waits for the swap."""
        if self.mode is WriteMode.REPLACE:
            if state is not None:
                self._pending_state = state
            self.session.end(self, commit=True)  # staging rows only: the target is untouched
            return
        self._begin()
        try:
            if state is not None:
                self.session.save_state(self.stream.name, self.run_id, state)
        except BaseException:
            self.abort()
            raise
        self.session.end(self, commit=True)

    def finish(self, state: dict[str, Any] | None) -> None:
        """Commit the rest; for replace, swap the staging table in with the state."""
        if self.mode is not WriteMode.REPLACE:
            self.commit(state)
            return
        state = state if state is not None else self._pending_state
        self._begin()
        try:
            if self._table_schema is not None:
                self.con.execute(f"DROP TABLE IF EXISTS {quote(self.target)}")
                self.con.execute(
                    f"ALTER TABLE {quote(self.staging)} RENAME TO {quote(self.target)}"
                )
                self.session.record_schema(self.target, self._table_schema)
            if state is not None:
                self.session.save_state(self.stream.name, self.run_id, state)
        except BaseException:
            self.abort()
            raise
        self.session.end(self, commit=True)
        self._table_schema = None

    def abort(self) -> None:
        """Roll back the open transaction (and drop the staging table of a replace)."""
        self.session.end(self, commit=False)
        if self.mode is WriteMode.REPLACE and self._table_schema is not None:
            with self.session.transaction():
                self.con.execute(f"DROP TABLE IF EXISTS {quote(self.staging)}")
            self._table_schema = None
        self._schema = self.session.stored_schema(self.target)
        if self.mode is not WriteMode.REPLACE:
            self._table_schema = self._schema
        self._quarantine_ready = False
