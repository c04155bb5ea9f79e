"""Runtime pieces shared by steps and checks: the row-origin column and rejection helpers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from aggregator.core.errors import ConfigError

if TYPE_CHECKING:  # DuckDB loads with the first step or check that runs SQL
    import duckdb

ROW = "__agg_row"  # index of the row in the engine's input batch (its origin)
INDEX = "_index"  # position of an element in its parent's list (child streams)


@dataclass
class Out:
    """A step's result: the rows kept, the origins rejected with a reason, and child-stream
    rows (by child stream name; each row carries its parent's origin in :data:`ROW`)."""

    table: pa.Table
    rejected: dict[int, str] = field(default_factory=dict)
    children: dict[str, pa.Table] = field(default_factory=dict)


@dataclass
class Context:
    """What steps share for one stream: its name, a DuckDB connection (``None``: opened on
    first use, with one thread) and reference loading."""

    stream: str
    _con: duckdb.DuckDBPyConnection | None
    load_reference: Callable[[str | None, str | None], pa.Table]

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """The connection (opened now if there is none yet)."""
        if self._con is None:
            import duckdb

            self._con = duckdb.connect(config={"threads": 1})
        return self._con

    def close(self) -> None:
        """Close the connection, if one was opened."""
        if self._con is not None:
            self._con.close()


def require(table: pa.Table | pa.Schema, columns: list[str], label: str) -> None:
    """Raise :class:`ConfigError` naming the step and the first missing column."""
    names = table.schema.names if isinstance(table, pa.Table) else table.names
    for column in columns:
        if column not in names:
            shown = ", ".join(n for n in names if n != ROW)
            raise ConfigError(f"{label}: unknown column {column!r}; columns: {shown}")


def reject_mask(table: pa.Table, bad: pa.Array, reason: Callable[[int], str]) -> Out:
    """Remove rows where ``bad`` is true; ``reason(i)`` names row ``i`` (error path only)."""
    bad = pc.fill_null(bad, False)
    if not pc.any(bad).as_py():
        return Out(table)
    rows = pc.indices_nonzero(bad).to_pylist()
    origins = pc.take(table.column(ROW), pa.array(rows)).to_pylist()
    rejected = {int(o): reason(r) for o, r in zip(origins, rows, strict=True) if o is not None}
    return Out(table.filter(pc.invert(bad)), rejected)


def reject_rows(table: pa.Table, rows: dict[int, str]) -> Out:
    """Remove rows by index with their reasons."""
    if not rows:
        return Out(table)
    mask = pc.is_in(pa.array(range(table.num_rows), pa.int64()), pa.array(list(rows), pa.int64()))
    origins = table.column(ROW).to_pylist()
    rejected = {int(origins[r]): why for r, why in rows.items() if origins[r] is not None}
    return Out(table.filter(pc.invert(mask)), rejected)


def value_of(table: pa.Table, column: str, row: int) -> Any:
    """One value for a reason text (error path only)."""
    return table.column(column)[row].as_py()


def bisect_errors(
    table: pa.Table, run: Callable[[pa.Table], object], limit: int = 10_000
) -> dict[int, str]:
    """Rows (by index) on which ``run`` raises, found by halving (error path only)."""
    found: dict[int, str] = {}

    def walk(offset: int, part: pa.Table) -> None:
        if len(found) >= limit or part.num_rows == 0:
            return
        try:
            run(part)
        except Exception as exc:
            if part.num_rows == 1:
                found[offset] = str(exc).split("\n")[0]
                return
            half = part.num_rows // 2
            walk(offset, part.slice(0, half))
            walk(offset + half, part.slice(half))

    walk(0, table)
    return found


def sql_table(
    ctx: Context,
    table: pa.Table,
    sql: str,
    params: list[Any] | None = None,
    columns: list[str] | None = None,
) -> pa.Table:
    """Run DuckDB ``sql`` over ``table`` (only ``columns`` of it, if given) as ``__agg_t``."""
    if columns is not None:
        table = table.select(list(dict.fromkeys([*columns, ROW])))
    ctx.con.register("__agg_t", table)
    try:
        return ctx.con.sql(sql, params=params or None).to_arrow_table()
    finally:
        ctx.con.unregister("__agg_t")


def bound(value: Any, dtype: pa.DataType) -> pa.Scalar:
    """A YAML value as a scalar comparable with a column of ``dtype``."""
    if pa.types.is_decimal(dtype):
        from decimal import Decimal

        return pa.scalar(Decimal(str(value)))
    try:
        return pa.scalar(value).cast(dtype)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return pa.scalar(value)


def cast_values(values: pa.Array | pa.ChunkedArray, dtype: pa.DataType) -> pa.Array:
    """Cast exactly: text with the engine's text typing, other types with a safe cast."""
    from aggregator.core.inference import cast_text
    from aggregator.core.schema import cast_array

    array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        return cast_text(array.cast(pa.string()), dtype)
    return cast_array(array, dtype)


def failing_casts(values: pa.Array | pa.ChunkedArray, dtype: pa.DataType) -> dict[int, Any]:
    """Rows whose value does not cast to ``dtype`` (error path only)."""
    array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    bad: dict[int, Any] = {}
    for i in range(len(array)):
        if not array[i].is_valid:
            continue
        try:
            cast_values(array.slice(i, 1), dtype)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            bad[i] = array[i].as_py()
    return bad


class Unvalidated(Exception):
    """A step cannot be checked on an empty batch (a Python function that needs rows)."""


class Step:
    """A compiled step; ``apply`` returns kept rows and rejected origins."""

    can_drop = False
    #: the output rows are a subset of the input rows, each once (no new or repeated origins)
    keeps_origins = True
    drop_reason = "dropped"

    def __init__(self, cfg: Any, index: int) -> None:
        self.cfg = cfg
        self.index = index
        self.label = f"transforms[{index}] ({cfg.step})"
        self.on_error: str = cfg.on_error
        self.on_drop: str = getattr(cfg, "on_drop", "quarantine")

    def apply(self, table: pa.Table, ctx: Context) -> Out:
        """Transform ``table``."""
        raise NotImplementedError
