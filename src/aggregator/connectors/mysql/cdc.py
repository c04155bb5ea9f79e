"""Change data capture from the row-based binlog, delivered for ``merge``.

State is the binlog position ``{"binlog": {"file": ..., "pos": ...}}`` after the last
delivered transaction. The first read opens a consistent snapshot (``START TRANSACTION WITH
CONSISTENT SNAPSHOT``; MariaDB reports the binlog position of that very snapshot, MySQL's is
taken just before it), reads the table in primary-key order and checkpoints ``{"binlog":
..., "after": [key]}`` every ``checkpoint_rows`` rows, so a crash resumes the snapshot after
the last committed key. Then, and on every later read, the binlog is read from the saved
position with mysql-replication (``COM_BINLOG_DUMP``, non-blocking: up to the server's
current end; only key columns are decoded, the others are skipped by size) for the keys of
inserted, updated and deleted rows; the current rows of those keys are looked up in batches
through the same reader as a full refresh, so the values keep their exact types. Keys that
no longer exist are delivered as rows with ``_aggregator_deleted = true`` (key columns set),
which merge writers apply as deletes. Deliveries end at transaction boundaries and each is
followed by its checkpoint; replaying changes after a crash is harmless because merge is
idempotent and lookups return the latest row, so the destination converges to the source.

``aggregator run --follow`` (:meth:`BinlogReader.follow`) reads the binlog to its current end
once per commit interval; each delivery is followed by its checkpoint and the log line
``committed changes up to binlog FILE:POS`` (the engine logs it after the destination
committed), which the lag benchmark reads.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pymysql  # type: ignore[import-untyped]

from aggregator.connectors.mysql.source import TableReader, quote
from aggregator.connectors.sql.ordered import ordered_read
from aggregator.core.errors import ConfigError, ConnectorError
from aggregator.core.messages import Checkpoint, Log, Message, Records

if TYPE_CHECKING:
    from aggregator.engines.follow import Follow

DELETED = "_aggregator_deleted"
IDLE_CHECKPOINT_SECONDS = 30.0  # --follow: checkpoint a position moved by other tables
_LOOKUP_KEYS = 5_000  # keys per lookup query
_DELIVER_KEYS = 20_000  # distinct changed keys per delivery (and checkpoint)


def _key_type_ok(dtype: pa.DataType) -> bool:
    return bool(
        pa.types.is_integer(dtype)
        or pa.types.is_string(dtype)
        or pa.types.is_decimal(dtype)
        or pa.types.is_date(dtype)
        or pa.types.is_timestamp(dtype)
    )


class BinlogReader:
    """Snapshot plus binlog changes for one table."""

    def __init__(self, reader: TableReader) -> None:
        self.t = reader
        table = reader.table
        self.keys = list(table.primary_key)
        if not self.keys:
            raise ConfigError(
                f"stream {table.stream!r}: change data capture needs a primary key on "
                f"{table.qualified}; add one or read it incrementally by a cursor column"
            )
        if table.kind != "table":
            raise ConfigError(
                f"stream {table.stream!r}: change data capture reads tables, and "
                f"{table.qualified} is a view"
            )
        odd = [k for k in self.keys if not _key_type_ok(reader.schema.field(k).type)]
        if odd:
            raise ConfigError(
                f"stream {table.stream!r}: change data capture needs primary key columns of "
                f"integer, text, decimal, date or time types ({', '.join(odd)} is not)"
            )
        self.key_schema = pa.schema([reader.schema.field(k) for k in self.keys])
        names = [c.name for c in table.columns]
        #: (column position, signed) of each integer key column, for :func:`_integer_keys`
        self._key_positions = (
            [
                (names.index(k), not pa.types.is_unsigned_integer(reader.schema.field(k).type))
                for k in self.keys
            ],
            len(names),
        )
        self.out_schema = reader.schema.append(pa.field(DELETED, pa.bool_(), nullable=False))
        self._delivered = 0  # changed keys delivered by the last _changes()

    # ------------------------------------------------------------------ server checks

    def _error(self, exc: BaseException, doing: str) -> ConnectorError:
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
        if code in (1227, 1045, 1142) and "privilege" in str(exc).lower():
            where = self.t.config.where()
            return ConnectorError(
                f"cannot {doing} MySQL at {where}: the user needs the REPLICATION SLAVE and "
                "REPLICATION CLIENT privileges (MariaDB: REPLICATION SLAVE and BINLOG MONITOR) "
                f"for change data capture ({self.t.config.redact(str(exc))})"
            )
        return self.t.config.error(exc, doing)

    def _check_server(self, cur: Any) -> tuple[bool, list[str]]:
        """``(is MariaDB, binlog files)``; a clear error when the binlog is unusable."""
        cur.execute("SELECT @@version, @@log_bin, @@GLOBAL.binlog_format")
        version, log_bin, fmt = (_text(v) for v in cur.fetchone())
        where = self.t.config.where()
        if log_bin not in ("1", "ON"):
            raise ConfigError(
                f"MySQL at {where} has no binary log; change data capture needs one: start the "
                "server with log_bin (e.g. --log-bin=mysql-bin --binlog-format=ROW "
                "--server-id=1) and restart it"
            )
        if fmt.upper() != "ROW":
            raise ConfigError(
                f"MySQL at {where} has binlog_format = {fmt}; change data capture needs "
                "binlog_format = ROW: set it in the server configuration (or SET GLOBAL "
                "binlog_format = 'ROW') and reconnect the writers"
            )
        try:
            cur.execute("SHOW BINARY LOGS")
            files = [_text(r[0]) for r in cur.fetchall()]
        except pymysql.MySQLError as exc:
            raise self._error(exc, "list the binary logs of") from None
        return "mariadb" in version.lower(), files

    def _master_position(self, cur: Any) -> dict[str, Any]:
        for statement in ("SHOW MASTER STATUS", "SHOW BINARY LOG STATUS"):
            try:
                cur.execute(statement)
            except pymysql.MySQLError as exc:
                if statement == "SHOW BINARY LOG STATUS":
                    raise self._error(exc, "read the binlog position of") from None
                continue
            row = cur.fetchone()
            if row:
                return {"file": _text(row[0]), "pos": int(row[1])}
        raise ConfigError(f"MySQL at {self.t.config.where()} reports no binlog position")

    # ------------------------------------------------------------------ reading

    def read(self, state: dict[str, Any]) -> Iterator[Message]:
        """Snapshot (first run, or resumed) then the changes after the saved position."""
        position = yield from self._start(state)
        yield from self._changes(position, [])

    def follow(self, state: dict[str, Any], follow: Follow) -> Iterator[Message]:
        """Like :meth:`read`, then the binlog to its end once per ``follow.interval``
        (at once while more than ``cdc_max_changes`` keys wait), until ``follow.stop``."""
        position = yield from self._start(state)
        checkpointed = time.monotonic()
        while not follow.stop.is_set():
            started = time.monotonic()
            full: list[bool] = []
            idle = started - checkpointed >= IDLE_CHECKPOINT_SECONDS
            before = position
            position = yield from self._changes(position, full, idle)
            if full or (position != before and (idle or self._delivered)):
                checkpointed = time.monotonic()
            if not full:
                follow.wait(follow.interval - (time.monotonic() - started))

    def _start(self, state: dict[str, Any]) -> Generator[Message, None, dict[str, Any]]:
        """Server checks and the snapshot when due; the binlog position to read from."""
        with self.t.config.connect() as con, con.cursor() as cur:
            mariadb, files = self._check_server(cur)
        position = state.get("binlog")
        if position is not None and position.get("file") not in files:
            raise ConfigError(
                f"binlog file {position.get('file')!r} of stream {self.t.table.stream!r} is gone "
                f"from MySQL at {self.t.config.where()} (expired or purged): changes since the "
                "last run are lost; reset the stream's state to take a new snapshot, and keep "
                "binlogs longer than the time between runs (binlog_expire_logs_seconds)"
            )
        if position is None or "after" in state:
            position = yield from self._snapshot(position, state.get("after"), mariadb)
        return dict(position)

    def _snapshot(
        self, position: dict[str, Any] | None, after: list[Any] | None, mariadb: bool
    ) -> Generator[Message, None, dict[str, Any]]:
        """Rows in key order (after ``after``); returns the binlog position to read from."""
        table = self.t.table
        con = self.t.connect()
        try:
            with con.cursor() as cur:
                try:
                    if position is None and not mariadb:
                        position = self._master_position(cur)
                    cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
                    if position is None:
                        cur.execute("SHOW STATUS LIKE 'binlog_snapshot_%'")
                        found = {_text(k).lower(): _text(v) for k, v in cur.fetchall()}
                        position = {
                            "file": found["binlog_snapshot_file"],
                            "pos": int(found["binlog_snapshot_position"]),
                        }
                except pymysql.MySQLError as exc:
                    raise self._error(exc, "start a consistent snapshot on") from None
            if after is None:
                yield Log("info", f"{table.stream}: snapshot at binlog {_where(position)}")
            else:
                yield Log("info", f"{table.stream}: snapshot resumed after key {after}")
            keys = ", ".join(quote(k) for k in self.keys)
            sql, params = self.t.select, list(after or [])
            if after is not None:
                marks = ", ".join(["%s"] * len(self.keys))
                sql += f" WHERE ({keys}) > ({marks})"
            sql += f" ORDER BY {keys}"
            at = position
            yield from ordered_read(
                self.t.fetch(con, sql, params),
                after=lambda batch: {"binlog": at, "after": self.t.last_key(batch)},
                every=self.t.config.checkpoint_rows,
            )
        finally:
            con.close()
        assert position is not None
        yield Checkpoint({"binlog": position})
        return position

    def _changes(
        self, position: dict[str, Any], full: list[bool], idle_checkpoint: bool = True
    ) -> Generator[Message, None, dict[str, Any]]:
        """Deliveries of changed keys from ``position`` to the binlog's current end (at
        most ``cdc_max_changes``: then ``full`` gets True); the position reached.

        A position that moved past other tables' transactions only is checkpointed when
        ``idle_checkpoint`` (a ``--follow`` run does so every ``IDLE_CHECKPOINT_SECONDS``,
        not every cycle)."""
        from pymysqlreplication import (  # type: ignore[import-untyped]
            BinLogStreamReader,
            row_event,
        )
        from pymysqlreplication.event import QueryEvent, XidEvent  # type: ignore[import-untyped]

        logging.getLogger("pymysqlreplication").setLevel(logging.ERROR)  # no advice to stderr
        table = self.t.table
        params = self.t.config.params()
        settings = {
            "host": params["host"],
            "port": params["port"],
            "user": params["user"],
            "password": params["password"],
            "connect_timeout": self.t.config.connect_timeout,
        }
        row_event._COLUMN_NAME_CACHE.clear()  # column names may have changed since last time
        stream = BinLogStreamReader(
            connection_settings=settings,
            server_id=self.t.config.server_id or random.randint(1 << 20, (1 << 32) - 1),  # noqa: S311
            resume_stream=True,
            blocking=False,
            log_file=position["file"],
            log_pos=int(position["pos"]),
            only_events=[
                row_event.WriteRowsEvent,
                row_event.UpdateRowsEvent,
                row_event.DeleteRowsEvent,
                XidEvent,
                QueryEvent,
            ],
            only_schemas=[table.database],
            only_tables=[table.name],
            is_mariadb=False,  # file+position dump (the library's MariaDB mode is GTID-only)
            use_column_name_cache=True,
            enable_logging=False,
        )
        pending: list[tuple[Any, ...]] = []  # keys of the open transaction
        ready: dict[tuple[Any, ...], None] = {}  # keys of committed transactions, in order
        committed = saved = dict(position)
        delivered = 0
        try:
            while True:
                try:
                    event = stream.fetchone()
                except pymysql.MySQLError as exc:
                    raise self._error(exc, "read the binlog of") from None
                if event is None:
                    break
                if isinstance(
                    event,
                    row_event.WriteRowsEvent
                    | row_event.UpdateRowsEvent
                    | row_event.DeleteRowsEvent,
                ):
                    if event.schema == table.database and event.table == table.name:
                        pending.extend(self._event_keys(event))
                    continue
                if isinstance(event, QueryEvent) and _text(event.query).upper() == "BEGIN":
                    continue
                # a commit (XID), or a statement that commits on its own (COMMIT, DDL)
                ready.update(dict.fromkeys(pending))
                pending.clear()
                committed = {"file": stream.log_file, "pos": int(stream.log_pos)}
                if len(ready) >= min(self.t.size, _DELIVER_KEYS):
                    yield from self._deliver(list(ready))
                    yield from self._committed(committed, len(ready))
                    saved = committed
                    delivered += len(ready)
                    ready.clear()
                    if delivered >= self.t.config.cdc_max_changes:
                        full.append(True)
                        break
        finally:
            stream.close()
        if ready:
            yield from self._deliver(list(ready))
            delivered += len(ready)
        self._delivered = delivered
        if committed != saved and (delivered or idle_checkpoint):
            yield from self._committed(committed, len(ready))
        if delivered:
            yield Log("info", f"{table.stream}: {delivered} changed keys up to {_where(committed)}")
        return committed

    def _committed(self, position: dict[str, Any], keys: int) -> Iterator[Message]:
        """The checkpoint of a delivery, and (when it had keys) the line saying so."""
        yield Checkpoint({"binlog": position})
        if keys:
            yield Log(
                "info",
                f"{self.t.table.stream}: committed changes up to binlog {_where(position)} "
                f"({keys} changed keys)",
            )

    def _event_keys(self, event: Any) -> Iterator[tuple[Any, ...]]:
        """Key values of each row of a row event (old and new key of an update)."""
        fast = _integer_keys(event, self._key_positions)
        if fast is not None:
            yield from fast
            return
        _decode_keys_only(event, set(self.keys))
        for row in event.rows:
            images = (
                [row["before_values"], row["after_values"]]
                if "before_values" in row
                else [row["values"]]
            )
            for values in images:
                if all(k in values for k in self.keys):
                    yield tuple(values[k] for k in self.keys)

    def _deliver(self, keys: list[tuple[Any, ...]]) -> Iterator[Message]:
        """Current rows of ``keys`` flagged not deleted, then the vanished keys as deletions."""
        found: list[pa.RecordBatch] = []
        for start in range(0, len(keys), _LOOKUP_KEYS):
            chunk = keys[start : start + _LOOKUP_KEYS]
            if len(self.keys) == 1:
                where = f"{quote(self.keys[0])} IN ({', '.join(['%s'] * len(chunk))})"
                params: list[Any] = [k[0] for k in chunk]
            else:
                row = "(" + ", ".join(["%s"] * len(self.keys)) + ")"
                names = ", ".join(quote(k) for k in self.keys)
                where = f"({names}) IN ({', '.join([row] * len(chunk))})"
                params = [v for k in chunk for v in k]
            for batch, out in self.t.read_rows(f"{self.t.select} WHERE {where}", params):
                found.append(batch.select(self.keys))
                for message in out:
                    if isinstance(message, Records):
                        flags = pa.array([False] * message.batch.num_rows, pa.bool_())
                        yield Records(
                            message.batch.append_column(self.out_schema.field(DELETED), flags)
                        )
                    else:
                        yield message
        wanted = pa.Table.from_arrays(
            [
                pa.array([k[i] for k in keys], self.key_schema.field(i).type)
                for i in range(len(self.keys))
            ],
            schema=self.key_schema,
        )
        present = pa.Table.from_batches(found, schema=self.key_schema)
        gone = wanted.join(present, self.keys, join_type="left anti")
        if gone.num_rows:
            columns = [
                gone.column(f.name).combine_chunks()
                if f.name in self.keys
                else pa.nulls(gone.num_rows, f.type)
                for f in self.t.schema
            ]
            columns.append(pa.array([True] * gone.num_rows, pa.bool_()))
            yield Records(pa.RecordBatch.from_arrays(columns, schema=self.out_schema))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _where(position: dict[str, Any]) -> str:
    return f"{position['file']}:{position['pos']}"


_FIXED_SIZES = {1: 1, 2: 2, 3: 4, 4: 4, 5: 8, 7: 4, 8: 8, 9: 3, 10: 3, 11: 3, 12: 8, 13: 1}
# FIELD_TYPE: TINY, SHORT, LONG, FLOAT, DOUBLE, TIMESTAMP, LONGLONG, INT24, DATE, TIME,
# DATETIME, YEAR
_DECIMAL_BYTES = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4]


def _skip_size(column: Any, packet: Any) -> int | None:
    """Bytes of a non-null value of ``column`` at the packet's position (None: unknown)."""
    kind = column.type
    if kind in _FIXED_SIZES:
        return _FIXED_SIZES[kind]
    if kind in (15, 253, 254):  # VARCHAR, VAR_STRING, STRING (CHAR)
        prefix = 2 if int(column.max_length) > 255 else 1
        return prefix + int.from_bytes(_peek(packet, prefix), "little")
    if kind in (252, 245, 255):  # BLOB/TEXT, JSON, GEOMETRY
        prefix = int(column.length_size)
        return prefix + int.from_bytes(_peek(packet, prefix), "little")
    if kind == 246:  # NEWDECIMAL
        scale = int(column.decimals)
        integral = int(column.precision) - scale
        return (
            integral // 9 * 4
            + _DECIMAL_BYTES[integral % 9]
            + scale // 9 * 4
            + _DECIMAL_BYTES[scale % 9]
        )
    if kind in (17, 18, 19):  # TIMESTAMP2, DATETIME2, TIME2
        return {17: 4, 18: 5, 19: 3}[kind] + (int(column.fsp) + 1) // 2
    if kind == 16:  # BIT
        return int(column.bytes)
    return None


_INTEGER_TYPES = {1, 2, 3, 8, 9}  # FIELD_TYPE: TINY, SHORT, LONG, LONGLONG, INT24


def _integer_keys(
    event: Any, positions: tuple[list[tuple[int, bool]], int]
) -> list[tuple[int, ...]] | None:
    """Integer key values of every row image of ``event``, read straight from its bytes.

    mysql-replication decodes each value through several Python calls; this walks the row
    images with one size rule per column (fixed, or a length prefix) and decodes only the
    key integers: about ten times fewer operations. ``None`` when the event does not suit
    (a key that is not an integer, a column of unknown size, another column count, a
    partial JSON update): the caller then takes the library's path.
    """
    keys, count = positions
    columns = getattr(event, "columns", None)
    if not columns or len(columns) != count or event.event_type not in _ROW_EVENT_TYPES:
        return None
    wanted = {i: (k, signed) for k, (i, signed) in enumerate(keys)}
    plan: list[tuple[int, int, int, bool]] = []  # (fixed size or -1, prefix, key index, signed)
    for i, column in enumerate(columns):
        if i in wanted:
            if column.type not in _INTEGER_TYPES:
                return None
            k, signed = wanted[i]
            plan.append((_FIXED_SIZES[column.type], 0, k, signed))
            continue
        if column.type in (15, 253, 254):
            plan.append((-1, 2 if int(column.max_length) > 255 else 1, -1, False))
        elif column.type in (252, 245, 255):
            plan.append((-1, int(column.length_size), -1, False))
        else:
            size = _skip_size(column, None)
            if size is None:
                return None
            plan.append((size, 0, -1, False))
    images = [event.columns_present_bitmap]
    if hasattr(event, "columns_present_bitmap2"):
        images.append(event.columns_present_bitmap2)
    present = [[i for i in range(count) if bitmap[i // 8] >> (i % 8) & 1] for bitmap in images]
    packet = event.packet
    data: bytes = packet.read(event.event_size - packet.read_bytes)
    found: list[tuple[int, ...]] = []
    pos, end, width = 0, len(data), len(keys)
    try:
        while pos < end:
            for columns_in in present:
                nulls = data[pos : pos + (len(columns_in) + 7) // 8]
                pos += len(nulls)
                key: list[int | None] = [None] * width
                for j, i in enumerate(columns_in):
                    if nulls[j >> 3] >> (j & 7) & 1:
                        continue
                    fixed, prefix, k, signed = plan[i]
                    if fixed < 0:
                        pos += prefix + int.from_bytes(data[pos : pos + prefix], "little")
                        continue
                    if k >= 0:
                        key[k] = int.from_bytes(data[pos : pos + fixed], "little", signed=signed)
                    pos += fixed
                if None not in key:
                    found.append(tuple(key))  # type: ignore[arg-type]
    except IndexError:
        pos = end + 1
    if pos != end:  # not the layout assumed: leave the bytes to the library
        packet.unread(data)
        return None
    return found


#: WRITE/UPDATE/DELETE_ROWS_EVENT v1 (MariaDB) and v2 (MySQL); not PARTIAL_UPDATE_ROWS
_ROW_EVENT_TYPES = {23, 24, 25, 30, 31, 32}


def _peek(packet: Any, size: int) -> bytes:
    data: bytes = packet.read(size)
    packet.unread(data)
    return data


def _decode_keys_only(event: Any, keys: set[str]) -> None:
    """Make ``event.rows`` decode only ``keys`` (other columns are skipped, read as None).

    mysql-replication decodes every column in Python; CDC needs only the key, so values of
    other columns whose size is known are skipped over; unknown types decode as usual.
    """
    original = getattr(event, "_RowsEvent__read_values_name", None)
    if original is None:
        return

    def read(
        column: Any,
        null_bitmap: Any,
        null_index: int,
        is_partial: bool,
        cols_bitmap: Any,
        unsigned: bool,
        i: int,
    ) -> Any:
        if column.name in keys or is_partial:
            return original(column, null_bitmap, null_index, is_partial, cols_bitmap, unsigned, i)
        if not cols_bitmap[i // 8] & (1 << (i % 8)) or event._is_null(null_bitmap, null_index):
            return None
        size = _skip_size(column, event.packet)
        if size is None:
            return original(column, null_bitmap, null_index, is_partial, cols_bitmap, unsigned, i)
        event.packet.read(size)
        return None

    event._RowsEvent__read_values_name = read
