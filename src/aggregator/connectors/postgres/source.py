"""PostgreSQL source: discovery, bulk full refresh, block-range parallelism, incremental.

Rows are read with ADBC (libpq ``COPY`` binary decoded into Arrow in C, streamed batch by
batch; ADR 0002) and conformed to exact types (:mod:`.types`). Full refreshes of tables
(and materialized views) with more than ``range_rows`` rows are split into ranges of
physical blocks (``ctid``: TID range scans, sequential on the server) of about
``range_rows`` rows, read by ``parallel`` connections sharing one exported snapshot; a
checkpoint ``{"blocks": [blocks_per_range, n], "done": [...]}`` follows each finished range
so an interrupted read can skip them, and ``{"complete": true}`` ends the read.
Incremental streams read ``WHERE cursor > last ORDER BY cursor`` and checkpoint
``{"cursor": value}`` only at batch boundaries where the cursor value changes, so no row
sharing the saved value is ever skipped.
"""

from __future__ import annotations

import datetime as dt
import decimal
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa
from psycopg import sql
from pydantic import Field

from aggregator.connectors._bookkeeping import select_tables, table_stream
from aggregator.connectors.postgres.connection import Pools, PostgresConnection
from aggregator.connectors.postgres.discovery import PgRelation, quote, relations
from aggregator.connectors.postgres.types import conform
from aggregator.connectors.sdk import CheckResult, Source
from aggregator.core.catalog import Catalog, ConfiguredStream, Stream, SyncMode
from aggregator.core.errors import ConfigError, ConnectorError
from aggregator.core.messages import Checkpoint, Log, Message, Quarantined, Records
from aggregator.core.queues import put_unless_stopped
from aggregator.core.schema import row_json

if TYPE_CHECKING:
    from aggregator.engines.follow import Follow


#: ADBC decodes into Arrow batches of about this many bytes (its default is 16 MiB). Batches
#: waiting in queues dominate the memory of a run; 8 MiB halves it at the same speed.
_BATCH_BYTES = "adbc.postgresql.batch_size_hint_bytes"
_BATCH_BYTES_HINT = 8 << 20


class PostgresSourceConfig(PostgresConnection):
    """Where to read and how."""

    schemas: list[str] = Field(["public"], description="Schemas whose tables are offered.")
    tables: list[str] | None = Field(
        None, description="Tables/views to offer, as 'table' or 'schema.table' (default: all)."
    )
    batch_size: int | None = Field(
        None, gt=0, description="Maximum rows per batch (default: the stream's batch_size)."
    )
    parallel: int = Field(
        2, ge=1, le=32, description="Connections reading block ranges of one big table at once."
    )
    cdc: bool = Field(
        False,
        description="Incremental streams read changes through logical replication (needs "
        "wal_level = logical, a single-column primary key, and merge).",
    )
    slot_prefix: str = Field(
        "aggregator", description="Prefix of the replication slot and publication per table."
    )
    cdc_max_changes: int = Field(
        100_000, gt=0, description="Changes read from the slot per run (at most)."
    )
    range_rows: int = Field(
        250_000,
        ge=0,
        description="Rows per block range of a full refresh (0: one query per table).",
    )


class PostgresSource(Source[PostgresSourceConfig]):
    """Reads tables and views of a PostgreSQL database."""

    name: ClassVar[str] = "postgres"
    config_model = PostgresSourceConfig
    description: ClassVar[str] = "PostgreSQL tables and views (bulk COPY into Arrow)"

    @property
    def pools(self) -> Pools:
        """This source's connection pools (opened on first use, closed by :meth:`close`)."""
        with _POOLS_LOCK:
            pools: Pools | None = self.__dict__.get("_pools")
            if pools is None:
                pools = self.__dict__["_pools"] = Pools(self.config, "postgres source")
            return pools

    def close(self) -> None:
        """Close the pooled connections (the end of a run)."""
        with _POOLS_LOCK:
            pools: Pools | None = self.__dict__.pop("_pools", None)
        if pools is not None:
            pools.close()

    def check(self) -> CheckResult:
        """Connect and list the offered tables (one-shot: the connection is closed)."""
        try:
            found = self._relations()
        except (ConnectorError, ConfigError) as exc:
            return CheckResult(False, exc.message)
        finally:
            self.close()
        return CheckResult(True, f"PostgreSQL at {self.config.where()}: {len(found)} tables/views")

    def _relations(self) -> list[PgRelation]:
        with self.pools.psycopg.connection() as con:
            found = relations(con, self.config.schemas)
        return select_tables(
            found,
            self.config.tables,
            lambda r: (r.stream, f"{r.schema}.{r.name}"),
            lambda missing: (
                f"tables not found in schemas {', '.join(self.config.schemas)} of "
                f"{self.config.where()}: {', '.join(missing)} (check `tables` and `schemas`)"
            ),
        )

    def stream_names(self) -> list[str]:
        """Stream names without reading column details twice."""
        return [r.stream for r in self._relations()]

    def discover(self) -> Catalog:
        """Tables and views with exact Arrow schemas, keys and cursor candidates (one-shot:
        the connection is closed)."""
        try:
            return Catalog(tuple(_stream(r) for r in self._relations()))
        finally:
            self.close()

    # ------------------------------------------------------------------ reading

    def _reader(self, stream: ConfiguredStream) -> _TableReader:
        rel = next((r for r in self._relations() if r.stream == stream.name), None)
        if rel is None:
            raise ConfigError(
                f"stream {stream.name!r} is not a table or view in schemas "
                f"{', '.join(self.config.schemas)} of {self.config.where()}"
            )
        return _TableReader(self.config, rel, stream, self.pools)

    def follows(self, stream: ConfiguredStream) -> bool:
        """CDC streams can be read continuously (``aggregator run --follow``)."""
        return self.config.cdc and stream.sync_mode is SyncMode.INCREMENTAL

    def read_following(
        self, stream: ConfiguredStream, state: dict[str, Any] | None, follow: Follow
    ) -> Iterator[Message]:
        """Changes of a CDC stream, committed in cycles until ``follow.stop`` is set."""
        from aggregator.connectors.postgres.cdc import CdcReader

        reader = self._reader(stream)
        yield from reader.notes()
        cdc = CdcReader(reader, self.config.slot_prefix, self.config.cdc_max_changes)
        yield from cdc.follow(state or {}, follow)

    def read(self, stream: ConfiguredStream, state: dict[str, Any] | None) -> Iterator[Message]:
        """Yield batches of ``stream``, resuming after ``state``."""
        reader = self._reader(stream)
        yield from reader.notes()
        if stream.sync_mode is SyncMode.INCREMENTAL and self.config.cdc:
            from aggregator.connectors.postgres.cdc import CdcReader

            cdc = CdcReader(reader, self.config.slot_prefix, self.config.cdc_max_changes)
            yield from cdc.read(state or {})
        elif stream.sync_mode is SyncMode.INCREMENTAL:
            yield from reader.incremental((state or {}).get("cursor"))
        else:
            yield from reader.full(state or {})


_POOLS_LOCK = threading.Lock()


def _stream(rel: PgRelation) -> Stream:
    schema = pa.schema([pa.field(c.name, c.arrow_type, not c.not_null) for c in rel.columns])
    return table_stream(
        rel.stream,
        schema,
        rel.primary_key,
        {
            "kind": rel.kind,
            "schema": rel.schema,
            "table": rel.name,
            "declared_types": {c.name: c.declared for c in rel.columns},
            "estimated_rows": rel.estimated_rows,
            "estimated_bytes": rel.pages * 8192,
        },
    )


class _TableReader:
    """Reads one relation through pooled ADBC connections."""

    def __init__(
        self,
        config: PostgresSourceConfig,
        rel: PgRelation,
        stream: ConfiguredStream,
        pools: Pools,
    ) -> None:
        self.config = config
        self.pools = pools
        self.rel = rel
        self.stream = stream
        base = _stream(rel).schema
        self.schema = pa.schema(
            [pa.field(f.name, stream.column_types.get(f.name, f.type), f.nullable) for f in base]
        )
        self.columns = ", ".join(c.select(quote(c.name)) for c in rel.columns)
        self.size = config.batch_size or stream.batch_size

    def notes(self) -> Iterator[Message]:
        """The stream's metadata, then a log of columns loaded as text (no exact type)."""
        yield _stream(self.rel).info()
        for c in self.rel.columns:
            if c.as_text:
                yield Log(
                    "warning",
                    f"{self.rel.stream}.{c.name}: PostgreSQL type {c.declared} has no exact "
                    "Arrow type here; loading its text form as string",
                )

    # -------------------------------------------------------------- queries

    @contextmanager
    def connection(self, snapshot: str | None = None) -> Iterator[Any]:
        """A pooled ADBC connection in a fresh transaction; with ``snapshot``, one that
        reads that exported snapshot."""
        with self.pools.adbc.connection() as con:
            if snapshot is not None:
                cur = con.cursor()
                try:
                    cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    cur.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
                except Exception as exc:
                    raise self.config.error(exc, "share a snapshot on") from None
                finally:
                    cur.close()
            yield con

    def _batches(self, con: Any, query: str) -> Iterator[pa.RecordBatch]:
        """Conformed batches of at most ``size`` rows of ``query`` (quarantine on the side)."""
        cursor = con.cursor()
        try:
            try:
                cursor.adbc_statement.set_options(**{_BATCH_BYTES: str(_BATCH_BYTES_HINT)})
                cursor.execute(query)
                reader = cursor.fetch_record_batch()
            except Exception as exc:
                raise self.config.error(exc, f"read {self.rel.stream} from") from None
            for raw in reader:
                for start in range(0, raw.num_rows, self.size):
                    yield raw.slice(start, self.size)
        finally:
            cursor.close()

    def _messages(self, batch: pa.RecordBatch) -> Iterator[Message]:
        data, bad = conform(batch, self.schema)
        if bad:
            keys = [k for k in self.rel.primary_key if k in data.schema.names]
            positions: list[str | None] = [
                f"{self.rel.stream}:"
                + (
                    ", ".join(f"{k}={data.column(k)[row].as_py()!r}" for k in keys)
                    if keys
                    else f"row {row + 1} of batch"
                )
                for row in sorted(bad)
            ]
            yield Quarantined.of(
                [bad[r] for r in sorted(bad)], positions, [row_json(batch, r) for r in sorted(bad)]
            )
            data = data.filter(pa.array([i not in bad for i in range(data.num_rows)]))
        if data.num_rows:
            yield Records(data)

    # -------------------------------------------------------------- full refresh

    def query_messages(self, where: str) -> Iterator[Message]:
        """Rows matching ``where`` (exact types, quarantine on the side)."""
        with self.connection() as con:
            query = f"SELECT {self.columns} FROM {self.rel.qualified} WHERE {where}"
            for batch in self._batches(con, query):
                yield from self._messages(batch)

    def snapshot_messages(self) -> Iterator[Message]:
        """A full read without its checkpoints (CDC's initial snapshot)."""
        for message in self.full({}):
            if not isinstance(message, Checkpoint):
                yield message

    def full(self, state: dict[str, Any]) -> Iterator[Message]:
        """The whole relation; big tables in block ranges read by parallel connections."""
        plan = self._plan(state)
        if plan is None:
            with self.connection() as con:
                select = f"SELECT {self.columns} FROM {self.rel.qualified}"
                for batch in self._batches(con, select):
                    yield from self._messages(batch)
            yield Checkpoint({"complete": True})
            return
        per_range, count, done = plan
        yield from self._parallel(per_range, count, done)
        yield Checkpoint({"complete": True})

    def _plan(self, state: dict[str, Any]) -> tuple[int, int, set[int]] | None:
        """``(blocks per range, ranges, done)`` for a block-range read, or ``None`` for one
        query (views, small tables, PostgreSQL before 14 which has no TID range scans)."""
        rel, rows = self.rel, self.config.range_rows
        if rel.relkind not in ("r", "m") or not rows or rel.estimated_rows <= rows:
            return None
        saved = state.get("blocks")
        if isinstance(saved, list) and len(saved) == 2 and not state.get("complete"):
            return int(saved[0]), int(saved[1]), {int(i) for i in state.get("done", [])}
        with self.pools.psycopg.connection() as con:
            row = con.execute(
                "SELECT current_setting('server_version_num')::int, "
                "pg_relation_size(%s::regclass) / current_setting('block_size')::int",
                [rel.qualified],
            ).fetchone()
        if row is None or int(row[0]) < 140000 or not row[1]:
            return None
        blocks = int(row[1])
        density = rel.estimated_rows / rel.pages if rel.pages > 0 else 50.0
        per_range = max(1, int(rows / max(density, 1.0)))
        return per_range, -(-blocks // per_range), set()

    def _range_query(self, per_range: int, count: int, index: int) -> str:
        """Rows of block range ``index``; the last one is open-ended (the table may grow)."""
        conds = [f"ctid >= '({index * per_range},0)'::tid"] if index > 0 else []
        if index < count - 1:
            conds.append(f"ctid < '({(index + 1) * per_range},0)'::tid")
        where = f" WHERE {' AND '.join(conds)}" if conds else ""
        return f"SELECT {self.columns} FROM {self.rel.qualified}{where}"

    def _parallel(self, per_range: int, count: int, done: set[int]) -> Iterator[Message]:
        todo: queue.Queue[int] = queue.Queue()
        for i in range(count):
            if i not in done:
                todo.put(i)
        out: queue.Queue[tuple[int, object]] = queue.Queue(maxsize=self.config.parallel)
        stop = threading.Event()
        finished = object()

        def put(item: tuple[int, object]) -> bool:
            return put_unless_stopped(out, item, stop)

        # every range reads the same snapshot, exported by a transaction kept open meanwhile
        pool = self.pools.psycopg
        exporter = pool.acquire()
        try:
            exporter.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            row = exporter.execute("SELECT pg_export_snapshot()").fetchone()
        except Exception as exc:
            pool.release(exporter, broken=True)
            raise self.config.error(exc, "export a snapshot from") from None
        snapshot = str(row[0]) if row else None

        def work() -> None:
            try:
                with self.connection(snapshot) as con:
                    while not stop.is_set():
                        try:
                            index = todo.get_nowait()
                        except queue.Empty:
                            break
                        query = self._range_query(per_range, count, index)
                        for batch in self._batches(con, query):
                            if not put((index, batch)):
                                return
                        put((index, finished))
            except Exception as exc:
                put((-1, exc))
            finally:
                put((-2, finished))

        # at most pool_size readers: each holds a pooled connection until the ranges run out
        readers = min(self.config.parallel, self.config.pool_size, todo.qsize())
        workers = [
            threading.Thread(target=work, name=f"pg-range-{i}", daemon=True) for i in range(readers)
        ]
        for w in workers:
            w.start()
        alive = len(workers)
        try:
            while alive:
                index, item = out.get()
                if index == -2:
                    alive -= 1
                elif isinstance(item, BaseException):
                    raise item
                elif item is finished:
                    done.add(index)
                    yield Checkpoint({"blocks": [per_range, count], "done": sorted(done)})
                else:
                    assert isinstance(item, pa.RecordBatch)
                    yield from self._messages(item)
        finally:
            stop.set()
            for w in workers:
                w.join(timeout=10)
            pool.release(exporter)

    # -------------------------------------------------------------- incremental

    def incremental(self, last: Any) -> Iterator[Message]:
        """Rows with ``cursor > last`` in cursor order; checkpoints at value changes."""
        cursor = self.stream.cursor_field
        if not cursor or cursor not in self.schema.names:
            raise ConfigError(
                f"stream {self.stream.name!r}: incremental sync needs a cursor_field that is a "
                f"column of {self.rel.qualified} (got {cursor!r})"
            )
        declared = next(c.declared for c in self.rel.columns if c.name == cursor)
        query = f"SELECT {self.columns} FROM {self.rel.qualified}"
        if last is not None:
            literal = sql.Literal(str(last)).as_string()
            query += f" WHERE {quote(cursor)} > {literal}::{declared}"
        query += f" ORDER BY {quote(cursor)}"
        previous: Any = None
        with self.connection() as con:
            for batch in self._batches(con, query):
                column = batch.column(self.schema.get_field_index(cursor))
                first = column[0].as_py()
                if previous is not None and first is not None and first != previous:
                    yield Checkpoint({"cursor": _jsonable(previous)})
                yield from self._messages(batch)
                tail = column[-1].as_py()
                if tail is not None:
                    previous = tail
                    last = tail
        yield Checkpoint({"cursor": _jsonable(last)})


def _jsonable(value: Any) -> Any:
    """A cursor value as JSON state: numbers stay numbers, the rest becomes exact text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return str(value)
