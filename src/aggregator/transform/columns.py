"""Column steps: select, drop, rename, cast, normalize names, map values and schema
mapping (Arrow compute kernels; failing values are rejected with their row)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from aggregator.core.errors import ConfigError
from aggregator.core.schema import normalize_column_names
from aggregator.core.types import type_from_string, type_to_string
from aggregator.transform.base import (
    ROW,
    Context,
    Out,
    Step,
    cast_values,
    failing_casts,
    reject_mask,
    reject_rows,
    require,
)


class Select(Step):
    def apply(self, table: pa.Table, ctx: Context) -> Out:
        require(table, self.cfg.columns, self.label)
        return Out(table.select([*self.cfg.columns, ROW]))


class Drop(Step):
    def apply(self, table: pa.Table, ctx: Context) -> Out:
        require(table, self.cfg.columns, self.label)
        return Out(table.drop_columns(self.cfg.columns))


class Rename(Step):
    def apply(self, table: pa.Table, ctx: Context) -> Out:
        require(table, list(self.cfg.columns), self.label)
        return Out(table.rename_columns([self.cfg.columns.get(n, n) for n in table.column_names]))


def cast_column(table: pa.Table, column: str, dtype: pa.DataType, label: str) -> Out:
    """Cast one column; rows whose value does not cast are rejected with the value."""
    values = table.column(column)
    try:
        cast = cast_values(values, dtype)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        bad = failing_casts(values, dtype)
        name = type_to_string(dtype)
        out = reject_rows(
            table,
            {r: f"{label}: column {column!r}: cannot cast {v!r} to {name}" for r, v in bad.items()},
        )
        if not bad:  # the cast fails as a whole only (e.g. unsupported types)
            raise ConfigError(f"{label}: cannot cast column {column!r} to {name}") from None
        out.table = out.table.set_column(
            out.table.schema.get_field_index(column),
            column,
            cast_values(out.table.column(column), dtype),
        )
        return out
    return Out(table.set_column(table.schema.get_field_index(column), column, cast))


class Cast(Step):
    def apply(self, table: pa.Table, ctx: Context) -> Out:
        require(table, list(self.cfg.columns), self.label)
        rejected: dict[int, str] = {}
        for column, type_name in self.cfg.columns.items():
            out = cast_column(table, column, type_from_string(type_name), self.label)
            table, rejected = out.table, {**out.rejected, **rejected}
        return Out(table, rejected)


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake_case(name: str) -> str:
    """``OrderID`` -> ``order_id``, ``Unit Price ($)`` -> ``unit_price``."""
    text = _CAMEL.sub("_", name.strip())
    return re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower() or "column"


class NormalizeNames(Step):
    def apply(self, table: pa.Table, ctx: Context) -> Out:
        names = [n for n in table.column_names if n != ROW]
        fix = snake_case if self.cfg.style == "snake_case" else str.lower
        new = iter(normalize_column_names([fix(n) for n in names]))
        return Out(table.rename_columns([n if n == ROW else next(new) for n in table.column_names]))


class MapValues(Step):
    def apply(self, table: pa.Table, ctx: Context) -> Out:
        require(table, [self.cfg.column], self.label)
        column = table.column(self.cfg.column).combine_chunks()
        keys = pa.array(list(self.cfg.mapping)).cast(column.type)
        if self.cfg.keep_unmapped:
            values = pa.array(list(self.cfg.mapping.values())).cast(column.type)
        else:
            values = pa.array(list(self.cfg.mapping.values()))
        index = pc.index_in(column, value_set=keys)
        mapped = pc.take(values, index)
        if self.cfg.keep_unmapped:
            result = pc.if_else(pc.is_null(index), column, mapped)
        else:
            default = pa.scalar(self.cfg.default, values.type)
            result = pc.if_else(pc.is_null(index), default, mapped)
        at = table.schema.get_field_index(self.cfg.column)
        return Out(table.set_column(at, self.cfg.column, result))


class MapSchema(Step):
    def apply(self, table: pa.Table, ctx: Context) -> Out:
        targets = self.cfg.columns
        sources = {name: t.from_ or name for name, t in targets.items()}
        unmapped = [n for n in table.column_names if n != ROW and n not in sources.values()]
        if unmapped and self.cfg.unmapped == "fail":
            raise ConfigError(f"{self.label}: unmapped columns {', '.join(unmapped)}")
        missing = [
            sources[n]
            for n, t in targets.items()
            if sources[n] not in table.column_names and t.required and t.default is None
        ]
        require(table, missing, self.label)
        rejected: dict[int, str] = {}
        arrays: dict[str, pa.ChunkedArray | pa.Array] = {}
        work = table
        for name, t in targets.items():
            src = sources[name]
            dtype = type_from_string(t.type) if t.type else None
            if src not in work.column_names:
                dtype = dtype or pa.array([t.default]).type
                work = work.append_column(
                    src, pa.repeat(pa.scalar(t.default, dtype), work.num_rows)
                )
            if dtype is not None:
                out = cast_column(work, src, dtype, self.label)
                work, rejected = out.table, {**out.rejected, **rejected}
            if t.default is not None:
                col = work.column(src)
                work = work.set_column(
                    work.schema.get_field_index(src),
                    src,
                    pc.fill_null(col, pa.scalar(t.default).cast(col.type)),
                )
            if t.required:
                out = reject_mask(
                    work,
                    pc.is_null(work.column(src)),
                    _fixed(f"{self.label}: required column {name!r} is null"),
                )
                work, rejected = out.table, {**out.rejected, **rejected}
        for name in targets:
            arrays[name] = work.column(sources[name])
        if self.cfg.unmapped == "keep":
            for n in unmapped:
                arrays.setdefault(n, work.column(n))
        arrays[ROW] = work.column(ROW)
        return Out(pa.table(arrays), rejected)


def _fixed(text: str) -> Callable[[int], str]:
    return lambda _row: text
