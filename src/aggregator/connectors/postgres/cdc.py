"""Change data capture through logical replication (pgoutput), delivered for ``merge``.

The connector manages one publication and one logical replication slot per stream
(``<slot_prefix>_<table>``). The first read creates the slot (its LSN marks where changes
start), reads a full snapshot, and checkpoints ``{"lsn": ...}``; later reads first advance
the slot to the LSN the destination committed, then peek the changes after it
(``pg_logical_slot_peek_binary_changes``), decode the pgoutput messages for the changed
keys, and look the current rows up by key through the exact bulk path. Keys that no longer
exist are delivered as rows with ``_aggregator_deleted = true`` (key columns set), which
merge writers apply as deletes. Replaying a change twice is harmless: merge is idempotent
and the lookup returns the latest row, so the destination converges to the source.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from aggregator.core.errors import ConfigError
from aggregator.core.messages import Checkpoint, Log, Message, Records

DELETED = "_aggregator_deleted"
_NAME = re.compile(r"[^a-z0-9_]+")


@dataclass(frozen=True)
class Change:
    """One row change: the operation, the key values as text, and the commit LSN."""

    op: str  # I, U, D
    key: tuple[str | None, ...]
    lsn: int


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


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return value

    def string(self) -> str:
        end = self.data.index(b"\0", self.pos)
        text = self.data[self.pos : end].decode()
        self.pos = end + 1
        return text

    def tuple_data(self) -> list[str | None]:
        values: list[str | None] = []
        for _ in range(self.take("!h")):
            kind = self.take("!c")
            if kind == b"t":
                size = self.take("!i")
                values.append(self.data[self.pos : self.pos + size].decode())
                self.pos += size
            else:  # n: null, u: unchanged TOAST value (never a key column)
                values.append(None)
        return values


def decode(messages: list[tuple[str, bytes]], table: tuple[str, str]) -> list[Change]:
    """Changes of ``(schema, table)`` in pgoutput messages ``(lsn, data)`` (protocol 1)."""
    keys: dict[int, list[int]] = {}
    wanted: set[int] = set()
    changes: list[Change] = []
    pending: list[tuple[str, tuple[str | None, ...]]] = []
    for _lsn, data in messages:
        r = _Reader(bytes(data))
        kind = r.take("!c")
        if kind == b"R":
            oid = r.take("!I")
            namespace, name = r.string(), r.string()
            r.take("!b")
            positions = []
            for i in range(r.take("!h")):
                flags = r.take("!b")
                r.string()
                r.take("!I")
                r.take("!i")
                if flags & 1:
                    positions.append(i)
            keys[oid] = positions
            if (namespace, name) == table:
                wanted.add(oid)
        elif kind in (b"I", b"U", b"D"):
            oid = r.take("!I")
            if oid not in wanted:
                continue
            marker = r.take("!c")
            if kind == b"U" and marker in (b"K", b"O"):
                r.tuple_data()  # the old key/row: a changed key shows up as the new one too
                marker = r.take("!c")
            values = r.tuple_data()
            key = tuple(values[i] for i in keys[oid])
            pending.append((kind.decode(), key))
        elif kind == b"C":
            r.take("!b")
            commit_lsn = r.take("!Q")
            changes.extend(Change(op, key, commit_lsn) for op, key in pending)
            pending.clear()
    return changes


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
        self.slot = slot_name(prefix, rel.name)
        self.publication = self.slot
        self.max_changes = max_changes

    def _check_wal_level(self, con: Any) -> None:
        level = con.execute("SHOW wal_level").fetchone()[0]
        if level != "logical":
            raise ConfigError(
                f"PostgreSQL at {self.t.config.where()} has wal_level = {level}; change data "
                "capture needs wal_level = logical: set it in postgresql.conf (or ALTER SYSTEM "
                "SET wal_level = logical) and restart the server"
            )

    def read(self, state: dict[str, Any]) -> Iterator[Message]:
        """Snapshot then changes (first run), or the changes after ``state['lsn']``."""
        rel = self.t.rel
        with self.t.config.connect(autocommit=True) as con:
            self._check_wal_level(con)
            exists = con.execute(
                "SELECT 1 FROM pg_publication WHERE pubname = %s", [self.publication]
            ).fetchone()
            if not exists:
                con.execute(f"CREATE PUBLICATION {self.publication} FOR TABLE {rel.qualified}")
            slot = con.execute(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s",
                [self.slot],
            ).fetchone()
            if state.get("lsn") is None:
                if slot is not None:
                    raise ConfigError(
                        f"replication slot {self.slot!r} already exists but this pipeline has "
                        "no saved position: drop it (SELECT pg_drop_replication_slot("
                        f"'{self.slot}')) or set another `slot_prefix`"
                    )
                created = con.execute(
                    "SELECT lsn::text FROM pg_create_logical_replication_slot(%s, 'pgoutput')",
                    [self.slot],
                ).fetchone()
                start = str(created[0])
                yield Log("info", f"{rel.stream}: created replication slot {self.slot} at {start}")
                yield from self.t.snapshot_messages()
                yield Checkpoint({"lsn": start})
                last = lsn_to_int(start)
            else:
                if slot is None:
                    raise ConfigError(
                        f"replication slot {self.slot!r} is gone: changes since the last run are "
                        "lost; reset the stream's state to take a new snapshot"
                    )
                last = lsn_to_int(str(state["lsn"]))
                if lsn_to_int(str(slot[0])) < last:
                    con.execute(
                        "SELECT pg_replication_slot_advance(%s, %s::pg_lsn)",
                        [self.slot, lsn_to_text(last)],
                    )
            # decoding stops at the flushed WAL position; with synchronous_commit = off on
            # the server, recent commits may not be flushed yet: a synchronous commit of our
            # own flushes everything before it
            with con.transaction():
                con.execute("SET LOCAL synchronous_commit = on")
                con.execute("SELECT pg_logical_emit_message(true, 'aggregator', 'sync')")
            rows = con.execute(
                "SELECT lsn::text, data FROM pg_logical_slot_peek_binary_changes(%s, NULL, %s, "
                "'proto_version', '1', 'publication_names', %s)",
                [self.slot, self.max_changes, self.publication],
            ).fetchall()
        changes = [c for c in decode(rows, (rel.schema, rel.name)) if c.lsn > last]
        if not changes:
            return
        yield from self._deliver(changes)
        yield Checkpoint({"lsn": lsn_to_text(max(c.lsn for c in changes))})

    def _deliver(self, changes: list[Change]) -> Iterator[Message]:
        """Current rows of the changed keys; vanished keys as deletions."""
        key = self.t.rel.primary_key[0]
        declared = next(c.declared for c in self.t.rel.columns if c.name == key)
        wanted = list(dict.fromkeys(c.key[0] for c in changes if c.key[0] is not None))
        found: list[pa.RecordBatch] = []
        for start in range(0, len(wanted), 10_000):
            chunk = wanted[start : start + 10_000]
            literal = sql.Literal(chunk).as_string()
            where = f"{sql.Identifier(key).as_string()} = ANY({literal}::{declared}[])"
            found += [m.batch for m in self.t.query_messages(where) if isinstance(m, Records)]
        schema = self.t.schema.append(pa.field(DELETED, pa.bool_(), nullable=False))
        present: set[str] = set()
        for batch in found:
            present.update(str(v) for v in pc.cast(batch.column(key), pa.string()).to_pylist())
            flags = pa.array([False] * batch.num_rows, pa.bool_())
            yield Records(batch.append_column(schema.field(DELETED), flags))
        gone = [k for k in wanted if k not in present]
        if gone:
            key_type = self.t.schema.field(key).type
            columns = [
                pc.cast(pa.array(gone, pa.string()), key_type)
                if f.name == key
                else pa.nulls(len(gone), f.type)
                for f in self.t.schema
            ]
            columns.append(pa.array([True] * len(gone), pa.bool_()))
            yield Records(pa.RecordBatch.from_arrays(columns, schema=schema))
