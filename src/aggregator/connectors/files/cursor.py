"""Cursor-column incremental reads: a vectorized ``cursor > saved`` filter and the running max."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from aggregator.core.errors import ConfigError
from aggregator.core.types import type_from_string, type_to_string, widen

_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError)


def to_json_value(value: pa.Array) -> Any:
    """The single value of ``value`` as JSON: ISO text for timestamps/dates, str for decimals."""
    dtype = value.type
    if pa.types.is_timestamp(dtype) and dtype.unit == "ns":
        return pc.cast(value, pa.string())[0].as_py()
    item = value[0].as_py()
    if isinstance(item, datetime | date):
        return item.isoformat()
    if pa.types.is_decimal(dtype):
        return str(item)
    if isinstance(item, bool | int | float | str) or item is None:
        return item
    return str(item)


def from_json_value(value: Any, type_name: str) -> pa.Array:
    """Inverse of :func:`to_json_value`: a one-element array of the logical type."""
    try:
        dtype = type_from_string(type_name)
        if pa.types.is_timestamp(dtype) or pa.types.is_date(dtype) or pa.types.is_decimal(dtype):
            return pc.cast(pa.array([str(value)], pa.string()), dtype)
        return pa.array([value], dtype)
    except (ValueError, TypeError, *_ERRORS) as exc:
        raise ConfigError(f"cannot restore cursor {value!r} of type {type_name!r}: {exc}") from exc


def _comparable(column: pa.Array, ref: pa.Array) -> tuple[pa.Array, pa.Array]:
    """``column`` and ``ref`` cast to a common type (exact when one exists, else text)."""
    if column.type == ref.type:
        return column, ref
    common = widen(column.type, ref.type)
    candidates = [common] if common is not None else []
    candidates += [column.type, ref.type]
    for dtype in candidates:
        try:
            return pc.cast(column, dtype), pc.cast(ref, dtype)
        except _ERRORS:
            continue
    return pc.cast(column, pa.string()), pc.cast(ref, pa.string())


class CursorFilter:
    """Keeps rows whose cursor is greater than the saved value and tracks the max seen."""

    def __init__(
        self,
        stream: str,
        field: str,
        floor: dict[str, Any] | None,
        best: dict[str, Any] | None = None,
    ) -> None:
        """``floor``/``best``: ``{"value", "type"}`` of the filter value and of the max so far."""
        self.stream = stream
        self.field = field
        self.floor: pa.Array | None = None
        if floor is not None and floor.get("value") is not None and floor.get("type"):
            self.floor = from_json_value(floor["value"], str(floor["type"]))
        self.best: pa.Array | None = self.floor
        if best is not None and best.get("value") is not None and best.get("type"):
            self.best = from_json_value(best["value"], str(best["type"]))
        self.seen_column = False

    def require(self, columns: list[str], where: str) -> None:
        """Raise :class:`ConfigError` when the cursor column is not among ``columns``."""
        if self.field not in columns:
            raise ConfigError(
                f"stream {self.stream!r}: cursor column {self.field!r} not found in {where} "
                f"(columns: {', '.join(columns)})"
            )
        self.seen_column = True

    def apply(self, batch: pa.RecordBatch, where: str) -> pa.RecordBatch:
        """Rows with ``cursor > saved`` (all rows when nothing is saved); updates the max."""
        if self.field not in batch.schema.names:
            if not self.seen_column:
                self.require(batch.schema.names, where)
            return batch if self.floor is None else batch.slice(0, 0)
        self.seen_column = True
        column = batch.column(self.field)
        if self.floor is not None:
            values, floor = _comparable(column, self.floor)
            batch = batch.filter(pc.greater(values, floor[0]))
            column = batch.column(self.field)
        if batch.num_rows == 0 or column.null_count == len(column):
            return batch
        top = pa.array([pc.max(column)])
        if self.best is None:
            self.best = top
        else:
            new, old = _comparable(top, self.best)
            if pc.greater(new, old)[0].as_py():
                self.best = top
        return batch

    def state(self) -> dict[str, Any]:
        """``{"cursor": ..., "cursor_type": ...}`` for the max seen (or saved) value."""
        if self.best is None:
            return {}
        return {"cursor": to_json_value(self.best), "cursor_type": type_to_string(self.best.type)}
