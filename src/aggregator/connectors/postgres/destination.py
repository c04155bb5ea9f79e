"""PostgreSQL destination.

Each stream writer borrows a pooled ADBC connection (the session's pool, at most
``pool_size``, closed with the session) and holds one open transaction: batches are
bulk-loaded with ``COPY`` binary (ADBC ingestion), quarantined rows and the new stream state
are written in the same transaction, and ``COMMIT`` makes them visible together. ``merge``
loads each batch into a temporary table and upserts the last row per key with
``INSERT ... ON CONFLICT`` (the key gets a primary key or unique index); ``replace`` builds
``<table>__staging`` and swaps it in by rename inside the final transaction. Schema changes
are ``ALTER TABLE`` statements in the same transaction. Child tables
(:class:`PostgresChildTable`) are written with the same statements, in the parent writer's
transaction.

Bookkeeping tables as in DuckDB: ``_aggregator_state`` (a NULL state is a reset; each
commit deletes its stream's older rows, so it keeps one row per stream) and
``_aggregator_schemas`` (the exact Arrow schema of each table, as JSON).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar

import psycopg
import pyarrow as pa
from psycopg import sql
from pydantic import Field

from aggregator.connectors._bookkeeping import next_seq
from aggregator.connectors.postgres.connection import Pools, PostgresConnection
from aggregator.connectors.postgres.discovery import quote
from aggregator.connectors.postgres.types import pg_type
from aggregator.connectors.sdk import (
    CheckResult,
    ChildTable,
    Destination,
    DestinationSession,
    StreamWriter,
)
from aggregator.core.catalog import ConfiguredStream, WriteMode
from aggregator.core.errors import ConfigError, ConnectorError
from aggregator.core.types import schema_from_json, schema_to_json

_SEQ_COLUMN = "__aggregator_seq"
#: Rows carrying ``true`` in this column are deletions (CDC); merge applies them as deletes.
DELETED = "_aggregator_deleted"


def _literal(value: object) -> str:
    return sql.Literal(value).as_string()


class PostgresDestinationConfig(PostgresConnection):
    """Where to write."""

    schema_name: str = Field("public", alias="schema", description="Schema for the tables.")


class PostgresDestination(Destination[PostgresDestinationConfig]):
    """Loads streams into PostgreSQL tables."""

    name: ClassVar[str] = "postgres"
    config_model = PostgresDestinationConfig
    description: ClassVar[str] = "PostgreSQL database (COPY bulk load, merge, atomic replace)"

    def check(self) -> CheckResult:
        """Connect and check that the schema can be created."""
        try:
            with self.open("_check"):
                pass
        except ConnectorError as exc:
            return CheckResult(False, exc.message)
        return CheckResult(True, f"PostgreSQL at {self.config.where()} is writable")

    def open(self, pipeline: str) -> DestinationSession:
        """Connect and create the bookkeeping tables."""
        return PostgresSession(self.config, pipeline)


class PostgresSession(DestinationSession):
    """A psycopg connection for bookkeeping; writers borrow pooled ADBC connections."""

    def __init__(self, config: PostgresDestinationConfig, pipeline: str) -> None:
        self.config = config
        self.schema = config.schema_name
        self.pipeline = pipeline
        self.pools = Pools(config, "postgres destination")
        self.con = self.pools.psycopg.acquire()
        try:
            self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(self.schema)}")
            self.con.execute(
                f"CREATE TABLE IF NOT EXISTS {self.qualified('_aggregator_state')} ("
                "pipeline text, stream text, seq bigint, run_id text, state jsonb, "
                "committed_at timestamptz)"
            )
            self.con.execute(
                f"CREATE TABLE IF NOT EXISTS {self.qualified('_aggregator_schemas')} ("
                "table_name text, seq bigint, columns jsonb)"
            )
        except psycopg.Error as exc:
            self.pools.psycopg.release(self.con)
            self.pools.close()
            raise config.error(exc, "prepare schema in") from None

    def qualified(self, table: str) -> str:
        """``schema.table``, quoted."""
        return f"{quote(self.schema)}.{quote(table)}"

    def read_state(self, stream: str) -> dict[str, Any] | None:
        """Latest committed state of ``stream`` (a reset is stored as a NULL state)."""
        row = self.con.execute(
            f"SELECT state FROM {self.qualified('_aggregator_state')} "
            "WHERE pipeline = %s AND stream = %s ORDER BY seq DESC LIMIT 1",
            [self.pipeline, stream],
        ).fetchone()
        if row is None or row[0] is None:
            return None
        state: dict[str, Any] = row[0]
        return state

    def reset_state(self, stream: str | None = None) -> None:
        """Append NULL states, so the next run starts from scratch."""
        if stream:
            streams = [stream]
        else:
            rows = self.con.execute(
                f"SELECT DISTINCT stream FROM {self.qualified('_aggregator_state')} "
                "WHERE pipeline = %s",
                [self.pipeline],
            ).fetchall()
            streams = [r[0] for r in rows]
        for name in streams:
            self.con.execute(
                f"INSERT INTO {self.qualified('_aggregator_state')} "
                "VALUES (%s, %s, %s, 'reset', NULL, now())",
                [self.pipeline, name, next_seq()],
            )

    def stored_schema(self, table: str) -> pa.Schema | None:
        """The Arrow schema last applied to ``table``, if the table exists."""
        exists = self.con.execute(
            "SELECT to_regclass(%s) IS NOT NULL", [self.qualified(table)]
        ).fetchone()
        if not exists or not exists[0]:
            return None
        row = self.con.execute(
            f"SELECT columns FROM {self.qualified('_aggregator_schemas')} "
            "WHERE table_name = %s ORDER BY seq DESC LIMIT 1",
            [table],
        ).fetchone()
        if row is not None:
            return schema_from_json(row[0])
        from aggregator.connectors.postgres.discovery import relations

        for rel in relations(self.con, [self.schema]):
            if rel.name == table:
                return pa.schema([pa.field(c.name, c.arrow_type) for c in rel.columns])
        return None

    def writer(self, stream: ConfiguredStream, run_id: str) -> StreamWriter:
        """A writer with its own connection and transaction."""
        if stream.write_mode is WriteMode.MERGE and not stream.primary_key:
            raise ConfigError(
                f"stream {stream.name!r}: write_mode merge needs a primary_key (the source "
                "table has none: set `primary_key` on the stream, or use append/replace)"
            )
        return PostgresWriter(self, stream, run_id)

    def close(self) -> None:
        """Compact superseded state rows and close."""
        try:
            self.con.execute(
                f"DELETE FROM {self.qualified('_aggregator_state')} s WHERE pipeline = %s AND "
                f"seq < (SELECT max(seq) FROM {self.qualified('_aggregator_state')} t "
                "WHERE t.pipeline = s.pipeline AND t.stream = s.stream)",
                [self.pipeline],
            )
        finally:
            self.pools.psycopg.release(self.con)
            self.pools.close()


class PostgresWriter(StreamWriter):
    """Writes one stream inside transactions that also record its state."""

    def __init__(self, session: PostgresSession, stream: ConfiguredStream, run_id: str) -> None:
        self.session = session
        self.stream = stream
        self.run_id = run_id
        self.mode = stream.write_mode
        self.target = stream.table
        self.staging = f"{self.target}__staging"
        self._schema = session.stored_schema(self.target)
        self._table_schema = None if self.mode is WriteMode.REPLACE else self._schema
        self._pending_state: dict[str, Any] | None = None
        self._temp = f"_aggregator_merge_{abs(hash((stream.name, run_id))) % 10**9}"
        self._temp_columns: pa.Schema | None = None
        self._quarantine_ready = False
        self._key_checked = self._schema is None
        self.con = session.pools.adbc.acquire()  # errors name the server, not the password
        self._broken = False
        self.cur = self.con.cursor()

    @property
    def _table(self) -> str:
        return self.staging if self.mode is WriteMode.REPLACE else self.target

    def _exec(self, statement: str) -> None:
        try:
            self.cur.execute(statement)
        except Exception as exc:
            raise ConnectorError(
                f"PostgreSQL rejected a statement for stream {self.stream.name!r}: "
                f"{self.session.config.redact(str(exc))}"
            ) from None

    def _ingest(self, table: str, data: pa.RecordBatch | pa.Table, temporary: bool) -> None:
        try:
            self.cur.adbc_ingest(
                table,
                data,
                mode="append",
                db_schema_name=None if temporary else self.session.schema,
                temporary=temporary,
            )
        except Exception as exc:
            raise ConnectorError(
                f"COPY into {table!r} failed for stream {self.stream.name!r}: "
                f"{self.session.config.redact(str(exc))}"
            ) from None

    def current_schema(self) -> pa.Schema | None:
        """Schema of the destination table as last applied."""
        return self._schema

    def apply_schema(self, schema: pa.Schema) -> None:
        """Create the (staging) table or alter it to ``schema``, inside the transaction."""
        table = self.session.qualified(self._table)
        virtual = self.mode is WriteMode.MERGE and DELETED in schema.names
        ddl = schema.remove(schema.get_field_index(DELETED)) if virtual else schema
        merge = self.mode is WriteMode.MERGE
        self._shape_table(
            self._table, self._table_schema, ddl, self.stream.primary_key if merge else []
        )
        if merge and self._table_schema is not None:
            self._ensure_key(table)
        self._key_checked = True
        self._table_schema = schema
        self._schema = schema
        self._temp_columns = None
        if self.mode is not WriteMode.REPLACE:
            self._record_schema(self.target, schema)

    def _shape_table(
        self, name: str, old: pa.Schema | None, schema: pa.Schema, key: Sequence[str]
    ) -> None:
        """Create table ``name`` with ``schema`` and primary ``key`` (``replace``: over any
        old one), or add the columns and change the types that differ from ``old``."""
        table = self.session.qualified(name)
        if old is None:
            columns = [f"{quote(f.name)} {pg_type(f.type)}" for f in schema]
            if key:
                columns.append(f"PRIMARY KEY ({', '.join(quote(k) for k in key)})")
            if self.mode is WriteMode.REPLACE:
                self._exec(f"DROP TABLE IF EXISTS {table}")
            self._exec(f"CREATE TABLE {table} ({', '.join(columns)})")
            return
        types = {f.name: f.type for f in old}
        for f in schema:
            new = pg_type(f.type)
            if f.name not in types:
                self._exec(f"ALTER TABLE {table} ADD COLUMN {quote(f.name)} {new}")
            elif pg_type(types[f.name]) != new:
                self._exec(
                    f"ALTER TABLE {table} ALTER COLUMN {quote(f.name)} TYPE {new} "
                    f"USING {quote(f.name)}::{new}"
                )

    def _ensure_key(self, table: str) -> None:
        """A unique index on the merge key, for ``ON CONFLICT`` (existing tables)."""
        keys = ", ".join(quote(k) for k in self.stream.primary_key)
        name = quote(f"{self.target}__merge_key")
        self._exec(f"CREATE UNIQUE INDEX IF NOT EXISTS {name} ON {table} ({keys})")

    def _record_schema(self, table: str, schema: pa.Schema) -> None:
        self._exec(
            f"INSERT INTO {self.session.qualified('_aggregator_schemas')} VALUES ("
            f"{_literal(table)}, {next_seq()}, "
            f"{_literal(json.dumps(schema_to_json(schema)))}::jsonb)"
        )

    def _delete_keys(self, name: str, keys: pa.Table) -> None:
        """Delete the rows of table ``name`` whose ``keys.column_names`` match ``keys``
        (loaded into a temporary table first)."""
        temp = quote(f"{self._temp}_keys")
        columns = ", ".join(f"{quote(f.name)} {pg_type(f.type)}" for f in keys.schema)
        self._exec(f"DROP TABLE IF EXISTS {temp}")
        self._exec(f"CREATE TEMP TABLE {temp} ({columns})")
        self._ingest(f"{self._temp}_keys", keys, temporary=True)
        table = self.session.qualified(name)
        match = " AND ".join(f"{table}.{quote(k)} = k.{quote(k)}" for k in keys.column_names)
        self._exec(f"DELETE FROM {table} USING {temp} k WHERE {match}")

    def _swap(self, staging: str, target: str, schema: pa.Schema) -> None:
        """Replace table ``target`` by ``staging`` and record ``schema`` (in the transaction)."""
        self._exec(f"DROP TABLE IF EXISTS {self.session.qualified(target)}")
        self._exec(f"ALTER TABLE {self.session.qualified(staging)} RENAME TO {quote(target)}")
        self._record_schema(target, schema)

    def child_table(self, name: str) -> ChildTable:
        """The child table ``name``, written in this writer's transaction."""
        return PostgresChildTable(self, name)

    def write(self, batch: pa.RecordBatch) -> None:
        """COPY ``batch`` into the table (append/replace) or upsert it (merge)."""
        if batch.num_rows == 0:
            return
        if self.mode is WriteMode.MERGE:
            self._merge(batch)
        else:
            self._ingest(self._table, batch, temporary=False)

    def _merge(self, batch: pa.RecordBatch) -> None:
        if not self._key_checked:
            self._ensure_key(self.session.qualified(self.target))
            self._key_checked = True
        seq = pa.array(range(batch.num_rows), pa.int64())
        data = batch.append_column(_SEQ_COLUMN, seq)
        if self._temp_columns != data.schema:
            columns = ", ".join(f"{quote(f.name)} {pg_type(f.type)}" for f in data.schema)
            self._exec(f"DROP TABLE IF EXISTS {quote(self._temp)}")
            self._exec(f"CREATE TEMP TABLE {quote(self._temp)} ({columns}) ON COMMIT DELETE ROWS")
            self._temp_columns = data.schema
        else:
            self._exec(f"TRUNCATE {quote(self._temp)}")
        self._ingest(self._temp, data, temporary=True)
        deletes = DELETED in batch.schema.names
        names = [quote(n) for n in batch.schema.names if n != DELETED]
        keys = [quote(k) for k in self.stream.primary_key]
        updates = ", ".join(f"{n} = EXCLUDED.{n}" for n in names if n not in keys)
        action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
        target = self.session.qualified(self.target)
        latest = (
            f"SELECT DISTINCT ON ({', '.join(keys)}) * FROM {quote(self._temp)} "
            f"ORDER BY {', '.join(keys)}, {quote(_SEQ_COLUMN)} DESC"
        )
        prefix, where = "", ""
        if deletes:  # the last change of a key may be its deletion
            match = " AND ".join(f"t.{k} = l.{k}" for k in keys)
            flag = f"coalesce(l.{quote(DELETED)}, false)"
            prefix = (
                f"WITH latest AS ({latest}), gone AS (DELETE FROM {target} t USING latest l "
                f"WHERE {match} AND {flag}) "
            )
            latest, where = "SELECT * FROM latest", f" WHERE NOT coalesce({quote(DELETED)}, false)"
        self._exec(
            f"{prefix}INSERT INTO {target} ({', '.join(names)}) "
            f"SELECT {', '.join(names)} FROM ({latest}) s{where} "
            f"ON CONFLICT ({', '.join(keys)}) {action}"
        )

    def quarantine(self, rows: pa.Table) -> None:
        """Append rows to ``<table>__quarantine`` inside the transaction."""
        if rows.num_rows == 0:
            return
        table = self.session.qualified(f"{self.target}__quarantine")
        if not self._quarantine_ready:
            self._exec(
                f"CREATE TABLE IF NOT EXISTS {table} (run_id text, stream text, reason text, "
                "position text, raw text, quarantined_at timestamptz DEFAULT now())"
            )
            self._quarantine_ready = True
        n = rows.num_rows
        data = rows.append_column("run_id", pa.array([self.run_id] * n, pa.string()))
        data = data.append_column("stream", pa.array([self.stream.name] * n, pa.string()))
        self._ingest(f"{self.target}__quarantine", data, temporary=False)

    def _save_state(self, state: dict[str, Any] | None) -> None:
        """Record ``state`` and drop this stream's older rows, in the open transaction: the
        table keeps one row per stream however many commits a ``--follow`` run makes."""
        value = "NULL" if state is None else f"{_literal(json.dumps(state))}::jsonb"
        seq, table = next_seq(), self.session.qualified("_aggregator_state")
        pipeline, stream = _literal(self.session.pipeline), _literal(self.stream.name)
        self._exec(
            f"INSERT INTO {table} VALUES ({pipeline}, {stream}, {seq}, "
            f"{_literal(self.run_id)}, {value}, now())"
        )
        self._exec(
            f"DELETE FROM {table} WHERE pipeline = {pipeline} AND stream = {stream} AND seq < {seq}"
        )

    def _commit(self) -> None:
        try:
            self.con.commit()
        except Exception as exc:
            raise ConnectorError(
                f"COMMIT failed for stream {self.stream.name!r}: "
                f"{self.session.config.redact(str(exc))}"
            ) from None

    def commit(self, state: dict[str, Any] | None) -> None:
        """Commit staged rows with ``state``; in replace mode, wait for :meth:`finish`."""
        if self.mode is WriteMode.REPLACE:
            self._pending_state = state
            return
        if state is not None:
            self._save_state(state)
        self._commit()

    def finish(self, state: dict[str, Any] | None) -> None:
        """Commit the rest; for replace, swap the staging table in atomically."""
        try:
            if self.mode is not WriteMode.REPLACE:
                self.commit(state)
                return
            state = state if state is not None else self._pending_state
            if self._table_schema is not None:
                self._swap(self.staging, self.target, self._table_schema)
            if state is not None:
                self._save_state(state)
            self._commit()
        finally:
            self._close()

    def abort(self) -> None:
        """Roll back the open transaction."""
        self._close()  # giving the connection back rolls it back (or replaces it)

    def _close(self) -> None:
        try:
            self.cur.close()
        except Exception:
            self._broken = True
        self.session.pools.adbc.release(self.con, self._broken)


class PostgresChildTable(ChildTable):
    """A child table written with its parent :class:`PostgresWriter`'s statements, in its
    transaction (``replace``: into ``<name>__staging``, swapped in by :meth:`finish`)."""

    def __init__(self, writer: PostgresWriter, name: str) -> None:
        super().__init__(name, replace=writer.mode is WriteMode.REPLACE)
        self.writer = writer

    def _stored_schema(self) -> pa.Schema | None:
        return self.writer.session.stored_schema(self.name)

    def _shape(self, old: pa.Schema | None, new: pa.Schema) -> None:
        # no primary key: a parent has many children
        self.writer._shape_table(self.table, old, new, [])

    def _record_schema(self, schema: pa.Schema) -> None:
        self.writer._record_schema(self.name, schema)

    def _insert(self, rows: pa.Table) -> None:
        self.writer._ingest(self.table, rows, temporary=False)

    def _delete(self, keys: pa.Table) -> None:
        self.writer._delete_keys(self.table, keys)

    def _swap(self, schema: pa.Schema) -> None:
        self.writer._swap(self.table, self.name, schema)

    def _empty(self) -> None:
        self.writer._exec(f"DELETE FROM {self.writer.session.qualified(self.name)}")
