"""Pieces shared by the database connectors: bookkeeping sequence numbers, table selection,
the stream a discovered table becomes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pyarrow as pa

from aggregator.core.catalog import Stream, SyncMode
from aggregator.core.errors import ConfigError

T = TypeVar("T")
_SEQ_LOCK = threading.Lock()
_last_seq = 0


def next_seq() -> int:
    """Increasing across runs and threads: wall-clock nanoseconds, bumped past the last one.

    Orders the rows of the append-only ``_aggregator_state`` and ``_aggregator_schemas``
    tables, so concurrent stream transactions never update the same row.
    """
    global _last_seq
    with _SEQ_LOCK:
        _last_seq = max(time.time_ns(), _last_seq + 1)
        return _last_seq


def select_tables(
    found: Sequence[T],
    wanted: Sequence[str] | None,
    names: Callable[[T], Sequence[str]],
    missing_message: Callable[[list[str]], str],
) -> list[T]:
    """The ``wanted`` tables (by any of their ``names``) in the order asked, or all ``found``.

    Raises :class:`ConfigError` with ``missing_message(missing)`` when some are not found.
    """
    if wanted is None:
        return list(found)
    by_name = {name: item for item in found for name in names(item)}
    missing = [t for t in wanted if t not in by_name]
    if missing:
        raise ConfigError(missing_message(missing))
    return [by_name[t] for t in wanted]


def table_stream(
    name: str, schema: pa.Schema, primary_key: Sequence[str], metadata: dict[str, Any]
) -> Stream:
    """A discovered table as a stream: integer, timestamp, date and decimal columns are
    cursor candidates, and a table with one can sync incrementally."""
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
        name=name,
        schema=schema,
        primary_key=tuple(primary_key),
        cursor_candidates=cursors,
        sync_modes=modes,
        metadata=metadata,
    )
