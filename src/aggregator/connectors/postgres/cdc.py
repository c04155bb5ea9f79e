"""Change data capture through logical replication (pgoutput), delivered for ``merge``.

The connector manages one publication and one logical replication slot per stream
(``<slot_prefix>_<table>``). The first read creates the slot and commits ``{"lsn": S,
"snapshot": "pending"}``, reads a full snapshot and commits ``{"lsn": S}`` with it; a run
killed during the snapshot takes it again (the slot keeps every change since ``S``). Later
reads confirm the LSN the destination committed to the slot, peek the changes after it
(``pg_logical_slot_peek_binary_changes``), decode the pgoutput messages for the changed keys
and read the current rows of those keys in one query (through the exact bulk path); keys
that no longer exist arrive as rows with ``_aggregator_deleted = true`` (key set), which
merge writers apply as deletes. Replaying a change is harmless: merge is idempotent and the
lookup returns the latest row, so the destination converges to the source.

A full refresh (``--full-refresh``: write_mode replace) keeps the slot, takes a new snapshot
into the replaced table and commits the slot's confirmed position with it; the next run
replays the changes after that position. It reads no changes itself, and cannot be followed.

``follow`` keeps doing this in cycles (``aggregator run --follow``): one connection, a
checkpoint per cycle with changes, at most ``interval`` seconds between cycles; the slot is
only confirmed up to what the destination has committed. After each committed cycle a log
line names the LSN and the source commit times it covers (lag can be read off it).
"""

from __future__ import annotations

import datetime as dt
import re
import struct
import time
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from aggregator.connectors.postgres.discovery import quote
from aggregator.connectors.postgres.types import conform
from aggregator.core.catalog import WriteMode
from aggregator.core.errors import ConfigError, ConnectorError
from aggregator.core.messages import Checkpoint, Log, Message, Records

if TYPE_CHECKING:
    from aggregator.engines.follow import Follow

DELETED = "_aggregator_deleted"
PENDING = "pending"
_NAME = re.compile(r"[^a-z0-9_]+")
_PG_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_LOOKUP_CHUNK = 10_000
#: A continuous read without changes checkpoints the WAL position this often (seconds).
IDLE_CHECKPOINT_SECONDS = 30.0


@dataclass(frozen=True)
class Change:
    """One row change: the operation (I, U, D, or T for a truncate), key values as text,
    the commit LSN and the source commit time."""

    op: str
    key: tuple[str | None, ...]
    lsn: int
    committed_at: dt.datetime | None = None


def lsn_to_int(text: str) -> int:
    """``'16/B374D848'`` -> integer."""
    high, low = text.split("/")
    return (int(high, 16) << 32) + int(low, 16)


def lsn_to_text(value: int) -> str:
    """Integer -> ``'16/B374D848'``."""
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def slot_name(prefix: str, table: str) -> str:
    """A valid slot/publication name (lower case, digits, underscores; at most 63 chars)."""
    return _NAME.sub("_", f"{prefix}_{table}".lower())[:63]


def wal_level_problem(level: str, where: str) -> str | None:
    """The message for a server whose ``wal_level`` cannot serve logical decoding."""
    if level == "logical":
        return None
    return (
        f"PostgreSQL at {where} has wal_level = {level}; change data capture needs "
        "wal_level = logical: run ALTER SYSTEM SET wal_level = logical (or set it in "
        "postgresql.conf) and restart the server"
    )


_INT16, _INT32, _UINT32 = struct.Struct("!h"), struct.Struct("!i"), struct.Struct("!I")
_INT64, _UINT64 = struct.Struct("!q"), struct.Struct("!Q")


class _Reader:
    """Reads pgoutput fields from one message."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def unpack(self, fmt: struct.Struct) -> Any:
        (value,) = fmt.unpack_from(self.data, self.pos)
        self.pos += fmt.size
        return value

    def byte(self) -> int:
        self.pos += 1
        return self.data[self.pos - 1]

    def string(self) -> str:
        end = self.data.index(b"\0", self.pos)
        text = self.data[self.pos : end].decode()
        self.pos = end + 1
        return text

    def key(self, positions: list[int], last: bool) -> tuple[str | None, ...]:
        """The values at ``positions`` of a TupleData; ``last``: nothing follows it, so
        the columns after the key are not walked."""
        data, pos = self.data, self.pos
        (count,) = _INT16.unpack_from(data, pos)
        pos += 2
        stop = (max(positions) + 1 if positions else 0) if last else count
        found: dict[int, str] = {}
        for i in range(stop):
            kind = data[pos]
            pos += 1
            if kind == 0x74 or kind == 0x62:  # t: text, b: binary
                (size,) = _INT32.unpack_from(data, pos)
                pos += 4
                if i in positions:
                    found[i] = data[pos : pos + size].decode()
                pos += size
            # n: null, u: unchanged TOAST value (never a key column)
        self.pos = pos
        return tuple(found.get(i) for i in positions)


def decode(messages: Sequence[tuple[Any, ...]], table: tuple[str, str]) -> list[Change]:
    """Changes of ``(schema, table)`` in pgoutput messages: rows whose last item is the
    message (protocol 1).

    An update that changes the key yields the old key too (it is gone under that key).
    """
    keys: dict[int, list[int]] = {}
    wanted: set[int] = set()
    changes: list[Change] = []
    pending: list[tuple[str, tuple[str | None, ...]]] = []
    for row in messages:
        data = row[-1]
        kind = data[0]
        if kind in (0x49, 0x55, 0x44):  # I, U, D
            r = _Reader(data)
            r.pos = 1
            oid = r.unpack(_UINT32)
            if oid not in wanted:
                continue
            marker = r.byte()
            if kind == 0x55 and marker in (0x4B, 0x4F):  # U with the old key (K) or row (O)
                pending.append(("D", r.key(keys[oid], last=False)))
                marker = r.byte()
            pending.append((chr(kind), r.key(keys[oid], last=True)))
        elif kind == 0x43:  # C: commit
            r = _Reader(data)
            r.pos = 2
            commit_lsn = r.unpack(_UINT64)
            r.unpack(_UINT64)
            at = _PG_EPOCH + dt.timedelta(microseconds=r.unpack(_INT64))
            changes.extend(Change(op, key, commit_lsn, at) for op, key in pending)
            pending.clear()
        elif kind == 0x52:  # R: relation
            r = _Reader(data)
            r.pos = 1
            oid = r.unpack(_UINT32)
            namespace, name = r.string(), r.string()
            r.byte()
            positions = []
            for i in range(r.unpack(_INT16)):
                flags = r.byte()
                r.string()
                r.pos += 8  # type oid, type modifier
                if flags & 1:
                    positions.append(i)
            keys[oid] = positions
            if (namespace, name) == table:
                wanted.add(oid)
        elif kind == 0x54:  # T: truncate
            r = _Reader(data)
            r.pos = 1
            count = r.unpack(_INT32)
            r.byte()
            if any(r.unpack(_UINT32) in wanted for _ in range(count)):
                pending.append(("T", ()))
    return changes


@dataclass(frozen=True)
class _Slot:
    plugin: str
    database: str
    active_pid: int | None
    confirmed: int


class CdcReader:
    """Slot and publication management plus change delivery for one table."""

    def __init__(self, table_reader: Any, prefix: str, max_changes: int) -> None:
        self.t = table_reader
        rel = table_reader.rel
        if len(rel.primary_key) != 1:
            raise ConfigError(
                f"stream {rel.stream!r}: change data capture needs a single-column primary key "
                f"(found {list(rel.primary_key) or 'none'}); add one or read it incrementally "
                "by a cursor column"
            )
        mode = table_reader.stream.write_mode
        if mode not in (WriteMode.MERGE, WriteMode.REPLACE):
            raise ConfigError(
                f"stream {rel.stream!r}: change data capture delivers updates and deletes, "
                f"which need write_mode: merge (got {mode.value})"
            )
        #: replace (``--full-refresh``): a new slot and snapshot, changes left to the next run
        self.rebuild = mode is WriteMode.REPLACE
        self.slot = slot_name(prefix, rel.name)
        self.publication = self.slot
        self.max_changes = max_changes
        self.where = table_reader.config.where()

    # ------------------------------------------------------------------ entry points

    def read(self, state: dict[str, Any]) -> Iterator[Message]:
        """Snapshot (first run) and the changes after the saved LSN, once."""
        with self._connect() as con:
            last = yield from self._start(con, state)
            if not self.rebuild:  # a replaced table takes the snapshot only
                yield from self._cycle(con, None, last, state, idle=True)

    def follow(self, state: dict[str, Any], follow: Follow) -> Iterator[Message]:
        """Like :meth:`read`, in cycles until ``follow.stop`` is set."""
        if self.rebuild:
            raise ConfigError(
                f"stream {self.t.rel.stream!r}: a full refresh (write_mode replace) of a change "
                "data capture stream commits only when it ends, so it cannot be followed: run "
                "it without --follow first, then follow"
            )
        with self._connect() as con:
            last = yield from self._start(con, state)
            # the last position checkpointed by this run, until the destination commits it
            unconfirmed = None if last == lsn_to_int(str(state.get("lsn", "0/0"))) else last
            quiet_since = time.monotonic()
            with self.t.connection() as adbc:
                while not follow.stop.is_set():
                    started = time.monotonic()
                    committed = self._await_commit(follow, unconfirmed) or state
                    peeked: list[int] = []
                    before = last
                    idle = started - quiet_since >= IDLE_CHECKPOINT_SECONDS
                    last = yield from self._cycle(con, adbc, last, committed, idle, peeked)
                    if last != before:
                        quiet_since = time.monotonic()
                        unconfirmed = last
                    backlog = bool(peeked) and peeked[0] >= self.max_changes
                    if last == before or not backlog:  # else: more is waiting, go on at once
                        follow.wait(follow.interval - (time.monotonic() - started))

    def _await_commit(self, follow: Follow, last: int | None) -> dict[str, Any] | None:
        """The committed state, once it reaches ``last`` (or after a bounded wait): the
        slot is then confirmed up to what was delivered, so the next peek decodes only new
        WAL instead of the last cycle's again."""
        deadline = time.monotonic() + max(1.0, 2 * follow.interval)
        while True:
            committed = follow.committed(self.t.stream.name)
            if last is None:
                return committed
            position = (committed or {}).get("lsn")
            done = position is not None and (committed or {}).get("snapshot") != PENDING
            if done and lsn_to_int(str(position)) >= last:
                return committed
            if time.monotonic() > deadline or follow.wait(0.01):
                return committed

    # ------------------------------------------------------------------ set-up

    @contextmanager
    def _connect(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection for the slot queries, once ``wal_level`` and the
        publication are right."""
        with self.t.pools.psycopg.connection() as con:
            self._check_wal_level(con)
            self._publication(con)
            yield con

    def _check_wal_level(self, con: Any) -> None:
        level = str(con.execute("SHOW wal_level").fetchone()[0])
        problem = wal_level_problem(level, self.where)
        if problem:
            raise ConfigError(problem)

    def _publication(self, con: psycopg.Connection[Any]) -> None:
        rel = self.t.rel
        row = con.execute(
            "SELECT p.puballtables, EXISTS (SELECT 1 FROM pg_publication_tables t WHERE "
            "t.pubname = p.pubname AND t.schemaname = %s AND t.tablename = %s) "
            "FROM pg_publication p WHERE p.pubname = %s",
            [rel.schema, rel.name, self.publication],
        ).fetchone()
        if row is None:
            try:
                con.execute(
                    f"CREATE PUBLICATION {quote(self.publication)} FOR TABLE {rel.qualified}"
                )
            except psycopg.Error as exc:
                raise self.t.config.error(
                    exc, f"create publication {self.publication} on"
                ) from None
        elif not row[1]:
            raise ConfigError(
                f"publication {self.publication!r} exists at {self.where} but does not publish "
                f"{rel.schema}.{rel.name}: it belongs to something else; set another "
                "`slot_prefix`"
            )

    def _slot(self, con: psycopg.Connection[Any]) -> _Slot | None:
        row = con.execute(
            "SELECT plugin, database, active_pid, confirmed_flush_lsn::text "
            "FROM pg_replication_slots WHERE slot_name = %s",
            [self.slot],
        ).fetchone()
        if row is None:
            return None
        return _Slot(str(row[0]), str(row[1]), row[2], lsn_to_int(str(row[3] or "0/0")))

    def _owned(self, con: psycopg.Connection[Any], slot: _Slot) -> None:
        """Refuse a slot that cannot be ours (other plugin, database, or in use)."""
        database = str(con.execute("SELECT current_database()").fetchone()[0])  # type: ignore[index]
        if slot.plugin != "pgoutput" or slot.database != database:
            raise ConfigError(
                f"replication slot {self.slot!r} at {self.where} belongs to something else "
                f"(plugin {slot.plugin}, database {slot.database}); set another `slot_prefix`"
            )
        for _ in range(50):  # a killed run of ours frees the slot when its backend ends
            if slot.active_pid is None:
                return
            time.sleep(0.2)
            slot = self._slot(con) or slot
        if slot.active_pid is not None:
            raise ConfigError(
                f"replication slot {self.slot!r} at {self.where} is in use by another process "
                f"(PID {slot.active_pid}): another pipeline or tool reads it; give this "
                "pipeline its own `slot_prefix`"
            )

    def _start(
        self, con: psycopg.Connection[Any], state: dict[str, Any]
    ) -> Generator[Message, None, int]:
        """Create the slot and take the snapshot when needed; the LSN read up to."""
        rel = self.t.rel
        slot = self._slot(con)
        if self.rebuild and slot is not None:
            # keep the slot: it holds every change after its confirmed position, the new
            # snapshot is newer than that, and the next run replays them (idempotently);
            # a full refresh killed before it commits leaves the old table, state and slot
            self._owned(con, slot)
            start = lsn_to_text(slot.confirmed)
            yield Log(
                "info",
                f"{rel.stream}: full refresh: keeping replication slot {self.slot}; the next "
                f"run applies its changes after {start}",
            )
            yield Checkpoint({"lsn": start, "snapshot": PENDING})
        elif state.get("lsn") is None or self.rebuild:
            if slot is not None:
                active = f"in use by PID {slot.active_pid}" if slot.active_pid else "not in use"
                raise ConfigError(
                    f"replication slot {self.slot!r} already exists at {self.where} "
                    f"(plugin {slot.plugin}, database {slot.database}, {active}) but this "
                    "pipeline has no saved position: it belongs to another pipeline or tool, "
                    "or is left over from a removed one. Set another `slot_prefix`, or drop it "
                    f"(SELECT pg_drop_replication_slot('{self.slot}')) if nothing uses it"
                )
            try:
                created = con.execute(
                    "SELECT lsn::text FROM pg_create_logical_replication_slot(%s, 'pgoutput')",
                    [self.slot],
                ).fetchone()
            except psycopg.Error as exc:
                raise self.t.config.error(exc, f"create replication slot {self.slot} on") from None
            start = str(created[0])  # type: ignore[index]
            yield Log("info", f"{rel.stream}: created replication slot {self.slot} at {start}")
            yield Checkpoint({"lsn": start, "snapshot": PENDING})
        else:
            if slot is None:
                raise ConfigError(
                    f"replication slot {self.slot!r} is gone from {self.where}: changes since "
                    "the last run are lost; reset the stream's state (aggregator state reset "
                    "PIPELINE -s STREAM) to take a new snapshot"
                )
            self._owned(con, slot)
            start = str(state["lsn"])
            if slot.confirmed > lsn_to_int(start):
                raise ConfigError(
                    f"replication slot {self.slot!r} at {self.where} was confirmed up to "
                    f"{lsn_to_text(slot.confirmed)}, past this pipeline's position {start}: "
                    "something else consumed its changes; reset the stream's state and drop "
                    "the slot to take a new snapshot"
                )
            if state.get("snapshot") != PENDING:
                return lsn_to_int(start)
            yield Log("info", f"{rel.stream}: taking the initial snapshot again")
        yield from self.t.snapshot_messages()
        yield Checkpoint({"lsn": start})
        return lsn_to_int(start)

    # ------------------------------------------------------------------ changes

    def _cycle(
        self,
        con: psycopg.Connection[Any],
        adbc: Any,
        last: int,
        committed: dict[str, Any] | None,
        idle: bool,
        peeked: list[int] | None = None,
    ) -> Generator[Message, None, int]:
        """Confirm ``committed``, deliver the changes after ``last``; the new last LSN.

        With ``idle`` and no change of the table, the WAL position flushed before the peek
        is checkpointed (no table change lies before it), so the slot can be confirmed up to
        it and the server can drop WAL written for other tables meanwhile. ``peeked``
        receives how many messages the slot returned (``max_changes``: more are waiting).
        """
        safe = (committed or {}).get("lsn")
        try:
            if safe is not None and (committed or {}).get("snapshot") != PENDING:
                con.execute(
                    "SELECT pg_replication_slot_advance(%s, %s::pg_lsn) FROM pg_replication_slots "
                    "WHERE slot_name = %s AND confirmed_flush_lsn < %s::pg_lsn",
                    [self.slot, safe, self.slot, safe],
                )
            # decoding stops at the flushed WAL position; with synchronous_commit = off on
            # the server, recent commits may not be flushed yet: a synchronous commit of our
            # own flushes everything before it
            with con.transaction():
                con.execute("SET LOCAL synchronous_commit = on")
                con.execute("SELECT pg_logical_emit_message(true, 'aggregator', 'sync')")
            flushed = con.execute("SELECT pg_current_wal_flush_lsn()::text").fetchone()
            rows = con.execute(
                "SELECT data FROM pg_logical_slot_peek_binary_changes(%s, NULL, %s, "
                "'proto_version', '1', 'publication_names', %s)",
                [self.slot, self.max_changes, self.publication],
                binary=True,
            ).fetchall()
        except psycopg.Error as exc:
            raise self.t.config.error(exc, f"read replication slot {self.slot} on") from None
        rel = self.t.rel
        changes = [c for c in decode(rows, (rel.schema, rel.name)) if c.lsn > last]
        if peeked is not None:
            peeked.append(len(rows))
        if not changes:
            horizon = lsn_to_int(str(flushed[0])) if flushed else last
            if idle and len(rows) < self.max_changes and horizon > last:
                yield Checkpoint({"lsn": lsn_to_text(horizon)})
                return horizon
            return last
        truncated = next((c for c in changes if c.op == "T"), None)
        if truncated is not None:
            raise ConnectorError(
                f"stream {rel.stream!r}: {rel.schema}.{rel.name} was truncated (LSN "
                f"{lsn_to_text(truncated.lsn)}); change data capture cannot replay a TRUNCATE: "
                f"reset the stream's state, drop the slot (SELECT pg_drop_replication_slot("
                f"'{self.slot}')) and run again to take a new snapshot"
            )
        newest = max(c.lsn for c in changes)
        yield from self._deliver(changes, adbc)
        yield Checkpoint({"lsn": lsn_to_text(newest)})
        first = min(c.committed_at for c in changes if c.committed_at)
        final = max(c.committed_at for c in changes if c.committed_at)
        yield Log(
            "info",
            f"{rel.stream}: committed changes up to LSN {lsn_to_text(newest)} "
            f"({len(changes)} changes; source commits {first.isoformat()} .. "
            f"{final.isoformat()})",
        )
        return newest

    def _deliver(self, changes: list[Change], adbc: Any) -> Iterator[Message]:
        """Current rows of the changed keys; vanished keys as deletions (one query each
        chunk, so both come from one snapshot)."""
        wanted = list(dict.fromkeys(k for c in changes if (k := c.key[0]) is not None))
        if adbc is None:
            with self.t.connection() as con:
                yield from self._deliver(changes, con)
            return
        for start in range(0, len(wanted), _LOOKUP_CHUNK):
            query = self._lookup(wanted[start : start + _LOOKUP_CHUNK])
            for raw in self.t._batches(adbc, query):
                yield from self._split(raw)
        adbc.rollback()  # end the read transaction: a following run holds the connection

    def _lookup(self, keys: list[str]) -> str:
        rel, key = self.t.rel, self.t.rel.primary_key[0]
        declared = next(c.declared for c in rel.columns if c.name == key)
        inner = ", ".join(
            f"w.{quote(c.name)}" if c.name == key else f"t.{quote(c.name)}" for c in rel.columns
        )
        literal = sql.Literal(keys).as_string()
        return (
            f"SELECT {self.t.columns}, {quote(DELETED)} FROM (SELECT {inner}, "
            f"t.{quote(key)} IS NULL AS {quote(DELETED)} FROM unnest({literal}::{declared}[]) "
            f"AS w({quote(key)}) LEFT JOIN {rel.qualified} AS t ON t.{quote(key)} = "
            f"w.{quote(key)}) AS s"
        )

    def _split(self, raw: pa.RecordBatch) -> Iterator[Message]:
        """Present rows (conformed, bad values quarantined) and deletion rows."""
        flags = raw.column(raw.num_columns - 1)
        base = pa.RecordBatch.from_arrays(raw.columns[:-1], names=raw.schema.names[:-1])
        schema = self.t.schema.append(pa.field(DELETED, pa.bool_(), nullable=False))
        present = base.filter(pc.invert(flags))
        if present.num_rows:
            for message in self.t._messages(present):
                if isinstance(message, Records):
                    falses = pa.array([False] * message.batch.num_rows, pa.bool_())
                    yield Records(message.batch.append_column(schema.field(DELETED), falses))
                else:
                    yield message
        gone = base.filter(flags)
        if gone.num_rows:
            data, _ = conform(gone, self.t.schema)
            trues = pa.array([True] * gone.num_rows, pa.bool_())
            yield Records(data.append_column(schema.field(DELETED), trues))
