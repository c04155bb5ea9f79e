"""The reader loop shared by the SQL sources (generic ``sql`` and ``mysql``, its CDC snapshot).

A ``SELECT`` read in key or cursor order arrives as ``(typed batch, messages)`` pairs: the
batch holds every fetched row (values that did not fit as nulls, so the key or cursor of
each row is known); the messages are its loadable rows and its quarantined ones.
:func:`ordered_read` yields the messages with the checkpoints that make the read resumable.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Generator, Iterable
from typing import Any

import pyarrow as pa

from aggregator.core.messages import Checkpoint, Message


def jsonable(value: Any) -> Any:
    """A key or cursor value as JSON state: numbers stay numbers, the rest becomes exact text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return str(value)


def ordered_read(
    fetched: Iterable[tuple[pa.RecordBatch, list[Message]]],
    *,
    cursor: str | None = None,
    last: Any = None,
    after: Callable[[pa.RecordBatch], dict[str, Any]] | None = None,
    every: int = 1,
) -> Generator[Message, None, Any]:
    """Messages of each fetched batch, with checkpoints; returns the last cursor value.

    ``cursor`` (rows in cursor order): ``{"cursor": value}`` where the value changes between
    batches, so rows sharing the saved value are never skipped; the caller checkpoints the
    returned value (``last`` when no row had one) at the end. ``after`` (rows in key order):
    its state for the batch's last row, at the first batch end after every ``every`` rows.
    """
    previous: Any = None
    pending = 0
    for batch, messages in fetched:
        if cursor is not None and batch.num_rows:
            column = batch.column(cursor)
            first = column[0].as_py()
            if previous is not None and first is not None and first != previous:
                yield Checkpoint({"cursor": jsonable(previous)})
            tail = column[-1].as_py()
            if tail is not None:
                previous = last = tail
        yield from messages
        pending += batch.num_rows
        if after is not None and batch.num_rows and pending >= every:
            yield Checkpoint(after(batch))
            pending = 0
    return last
