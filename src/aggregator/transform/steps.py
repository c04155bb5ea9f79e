"""Relational steps: select, drop, rename, cast, derive, filter, deduplicate, flatten, unnest,
normalize names, map values, lookup, schema mapping, SQL and Python.

Every step works on a ``pa.Table`` carrying the origin column :data:`ROW`; row work is done
by Arrow compute kernels or DuckDB over Arrow, Python loops only name failing values.
"""

from __future__ import annotations

import importlib
import re
import traceback
from collections.abc import Callable
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import structlog

from aggregator.core.errors import ConfigError, RunError
from aggregator.core.schema import normalize_column_names
from aggregator.core.types import type_from_string, type_to_string
from aggregator.transform import config as c
from aggregator.transform.base import (
    ROW,
    Context,
    Out,
    bisect_errors,
    cast_values,
    failing_casts,
    reject_mask,
    reject_rows,
    require,
    sql_table,
)
from aggregator.transform.expr import check_columns, parse_expression, quote
from aggregator.transform.seen import SortedRuns, as_int64, first_mask, integer_like

log = structlog.get_logger(__name__)


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


class _SqlExpr(Step):
    """A step evaluating one SQL expression with DuckDB; failing rows found by bisection."""

    def __init__(self, cfg: Any, index: int, text: str) -> None:
        super().__init__(cfg, index)
        self.expr = parse_expression(text, self.label)

    query = "SELECT ({}) AS v FROM __agg_t"

    def combine(self, table: pa.Table, values: pa.ChunkedArray) -> pa.Table:
        raise NotImplementedError

    def apply(self, table: pa.Table, ctx: Context) -> Out:
        check_columns(self.expr, table.column_names, self.label)
        sql = self.query.format(self.expr.sql)
        used = sorted({ref.name for ref in self.expr.columns})

        def evaluate(part: pa.Table) -> pa.ChunkedArray:
            return sql_table(ctx, part, sql, columns=used).column("v")

        try:
            return Out(self.combine(table, evaluate(table)))
        except duckdb.Error as exc:
            if table.num_rows == 0:
                raise ConfigError(f"{self.label}: {str(exc).splitlines()[0]}") from exc
            bad = bisect_errors(table, evaluate)
            if not bad:
                raise
            reasons = {r: f"{self.label}: {why}" for r, why in bad.items()}
            out = reject_rows(table, reasons)
            return Out(self.combine(out.table, evaluate(out.table)), out.rejected)


class Derive(_SqlExpr):
    def __init__(self, cfg: c.DeriveStep, index: int) -> None:
        super().__init__(cfg, index, cfg.expr)

    def combine(self, table: pa.Table, values: pa.ChunkedArray) -> pa.Table:
        name = self.cfg.column
        if name in table.column_names:
            return table.set_column(table.schema.get_field_index(name), name, values)
        return table.append_column(name, values)


class Filter(_SqlExpr):
    can_drop = True
    query = "SELECT coalesce(({}), false) AS v FROM __agg_t"

    def __init__(self, cfg: c.FilterStep, index: int) -> None:
        super().__init__(cfg, index, cfg.where)
        self.drop_reason = f"{self.label}: predicate {cfg.where!r} is not true"

    def combine(self, table: pa.Table, values: pa.ChunkedArray) -> pa.Table:
        return table.filter(values)


class Deduplicate(Step):
    """Keeps one row per key: first/last by ``order_by`` (else arrival) in each batch; with
    ``keep: first`` also across the run (keys seen in earlier batches are dropped)."""

    can_drop = True

    def __init__(self, cfg: c.DeduplicateStep, index: int) -> None:
        super().__init__(cfg, index)
        self.drop_reason = f"{self.label}: duplicate of key ({', '.join(cfg.key)})"
        self.seen_table = f"__agg_seen_{index}"
        self.seen: list[pa.Array] = []  # single non-integer key: seen values
        self.runs = SortedRuns()  # single integer-like key: seen values
        self.started = False

    def apply(self, table: pa.Table, ctx: Context) -> Out:
        cfg = self.cfg
        require(table, [*cfg.key] + ([cfg.order_by] if cfg.order_by else []), self.label)
        if table.num_rows == 0:
            return Out(table)
        table = self._drop_seen(table, ctx)
        order: pa.Array | None = None
        if cfg.order_by:
            direction = "ascending" if cfg.keep == "first" else "descending"
            sort = [(cfg.order_by, direction), (ROW, direction)]
            order = pc.sort_indices(table.select([cfg.order_by, ROW]), sort_keys=sort)
        if self._integer_key(table):
            first = self._first_per_integer_key(table, order)
            kept = table if first.all() else table.filter(first)
        else:
            keys = table.select([*cfg.key, ROW])
            pick = "first" if cfg.order_by or cfg.keep == "first" else "last"
            if order is not None:
                keys = keys.take(order)
            firsts = keys.group_by(cfg.key, use_threads=False).aggregate([(ROW, pick)])
            chosen = firsts.column(f"{ROW}_{pick}")
            kept = table.filter(pc.is_in(table.column(ROW), value_set=chosen))
        if cfg.keep == "first":
            self._remember(kept, ctx)
        return Out(kept)

    def _drop_seen(self, table: pa.Table, ctx: Context) -> pa.Table:
        if not self.started:
            return table
        if self._integer_key(table):
            numbers, valid = as_int64(table.column(self.cfg.key[0]))
            again = self.runs.contains(numbers, valid)
            return table.filter(pa.array(~again)) if again.any() else table
        if len(self.cfg.key) == 1:
            keys = table.column(self.cfg.key[0]).combine_chunks()
            # hash the (small) batch, probe the (large) history, then the few matches
            seen = pa.chunked_array(self.seen, keys.type)
            again = pc.filter(seen, pc.is_in(seen, value_set=keys)).combine_chunks()
            return table.filter(pc.invert(pc.is_in(keys, value_set=again)))
        match = " AND ".join(
            f"s.{quote(k)} IS NOT DISTINCT FROM b.{quote(k)}" for k in self.cfg.key
        )
        seen = f"SELECT 1 FROM {self.seen_table} s WHERE {match}"
        sql = f"SELECT {ROW} FROM __agg_t b WHERE NOT EXISTS ({seen})"
        rows = sql_table(ctx, table, sql, columns=list(self.cfg.key)).column(ROW)
        return table.filter(pc.is_in(table.column(ROW), value_set=rows.combine_chunks()))

    def _first_per_integer_key(self, table: pa.Table, order: pa.Array | None) -> np.ndarray:
        """Mask of the row kept per key: first in ``order`` (else arrival, or last arrival)."""
        numbers, valid = as_int64(table.column(self.cfg.key[0]))
        rows = np.arange(table.num_rows)
        if order is not None:
            rows = order.to_numpy()
        elif self.cfg.keep == "last":
            rows = rows[::-1]
        return first_mask(numbers, valid, rows)

    def _integer_key(self, table: pa.Table) -> bool:
        return len(self.cfg.key) == 1 and integer_like(table.schema.field(self.cfg.key[0]).type)

    def _remember(self, kept: pa.Table, ctx: Context) -> None:
        if self._integer_key(kept):
            self.runs.add(*as_int64(kept.column(self.cfg.key[0])))
        elif len(self.cfg.key) == 1:
            self.seen.append(kept.column(self.cfg.key[0]).combine_chunks())
        else:
            ctx.con.register("__agg_k", kept.select(self.cfg.key))
            verb = "INSERT INTO" if self.started else "CREATE TEMP TABLE"
            tail = "" if self.started else " AS"
            ctx.con.execute(f"{verb} {self.seen_table}{tail} SELECT * FROM __agg_k")
            ctx.con.unregister("__agg_k")
        self.started = True


def _is_json(dtype: pa.DataType) -> bool:
    return isinstance(dtype, pa.ExtensionType) and dtype.extension_name == "arrow.json"


class Flatten(Step):
    def apply(self, table: pa.Table, ctx: Context) -> Out:
        wanted = self.cfg.columns
        if wanted:
            require(table, wanted, self.label)
        todo = [
            f.name
            for f in table.schema
            if (wanted is None and (pa.types.is_struct(f.type) or _is_json(f.type)))
            or (wanted is not None and f.name in wanted)
        ]
        for name in todo:
            table = self._flatten(table, name, ctx)
        return Out(table)

    def _flatten(self, table: pa.Table, name: str, ctx: Context) -> pa.Table:
        column = table.column(name)
        if not pa.types.is_struct(column.type):
            if table.num_rows == 0:
                return table
            q = quote(name)
            found = sql_table(
                ctx, table, f"SELECT json_group_structure({q}::JSON) AS s FROM __agg_t"
            )
            structure = found.column("s")[0].as_py()
            if structure is None or not str(structure).startswith("{"):
                return table
            parsed = sql_table(
                ctx, table, f"SELECT from_json({q}::JSON, ?) AS v FROM __agg_t", [str(structure)]
            )
            column = parsed.column("v")
        index = table.schema.get_field_index(name)
        table = table.remove_column(index)
        for offset, field in enumerate(column.type):
            child = pc.struct_field(column, [offset])
            child_name = f"{name}{self.cfg.separator}{field.name}"
            table = table.add_column(index + offset, child_name, child)
            if pa.types.is_struct(field.type):
                table = self._flatten(table, child_name, ctx)
        return table


class Unnest(Step):
    keeps_origins = False

    def apply(self, table: pa.Table, ctx: Context) -> Out:
        require(table, [self.cfg.column], self.label)
        lists = table.column(self.cfg.column).combine_chunks()
        if not pa.types.is_list(lists.type) and not pa.types.is_large_list(lists.type):
            raise ConfigError(f"{self.label}: column {self.cfg.column!r} is not a list")
        index = table.schema.get_field_index(self.cfg.column)
        if table.num_rows == 0:
            empty = pa.array([], lists.type.value_type)
            return Out(table.set_column(index, self.cfg.column, empty))
        if self.cfg.outer:
            empty = pc.fill_null(pc.equal(pc.list_value_length(lists), 0), True)
            placeholder = pa.array([[None]], lists.type)
            lists = pc.if_else(empty, pa.repeat(placeholder[0], len(lists)), lists)
        values = pc.list_flatten(lists)
        parents = pc.list_parent_indices(lists)
        out = table.drop_columns([self.cfg.column]).take(parents)
        return Out(out.add_column(index, self.cfg.column, values))


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


class Lookup(Step):
    def __init__(self, cfg: c.LookupStep, index: int) -> None:
        super().__init__(cfg, index)
        self.ref = f"__agg_ref_{index}"
        self.loaded = False
        self.arrow_ref: pa.Table | None = None

    def _load(self, ctx: Context) -> None:
        ref = ctx.load_reference(self.cfg.table, self.cfg.file)
        require(ref, [*self.cfg.on.values(), *self.cfg.columns], f"{self.label} reference")
        keys = ", ".join(quote(k) for k in self.cfg.on.values())
        cols = ", ".join(quote(k) for k in [*self.cfg.on.values(), *self.cfg.columns])
        ctx.con.register("__agg_r", ref)
        ctx.con.execute(
            f"CREATE OR REPLACE TEMP TABLE {self.ref} AS SELECT {cols}, true AS __agg_hit "
            f"FROM __agg_r QUALIFY row_number() OVER (PARTITION BY {keys}) = 1"
        )
        ctx.con.unregister("__agg_r")
        self.loaded = True

    def _arrow_rows(self, table: pa.Table, ctx: Context) -> tuple[pa.Array, pa.Table] | None:
        """(reference row per row, null: no match; the reference) by an Arrow hash lookup, for
        one key column of the same kind (integers, text, or one type) on both sides."""
        if len(self.cfg.on) != 1:
            return None
        ((column, ref_column),) = self.cfg.on.items()
        if self.arrow_ref is None:
            self.arrow_ref = ctx.con.sql(f"SELECT * FROM {self.ref}").to_arrow_table()
        ref = self.arrow_ref
        keys, ref_keys = table.column(column), ref.column(ref_column)
        text = (pa.types.is_string, pa.types.is_large_string)
        same_kind = (
            keys.type == ref_keys.type
            or (pa.types.is_integer(keys.type) and pa.types.is_integer(ref_keys.type))
            or (any(f(keys.type) for f in text) and any(f(ref_keys.type) for f in text))
        )
        if not same_kind:
            return None
        try:
            if ref_keys.type != keys.type and pa.types.is_integer(keys.type):
                wide = pc.cast(ref_keys, pa.int64())  # keys the stream's type cannot hold
                info = np.iinfo(keys.type.to_pandas_dtype())  # never match: leave them out
                fits = pc.and_(pc.greater_equal(wide, info.min), pc.less_equal(wide, info.max))
                ref = ref.filter(pc.fill_null(fits, True))
                ref_keys = ref.column(ref_column)
            rows = pc.index_in(keys, value_set=ref_keys.cast(keys.type), skip_nulls=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            return None
        return rows, ref

    def _found(self, table: pa.Table, ctx: Context) -> pa.Table:
        """The looked-up columns and ``__agg_hit`` (null: no match), row by row."""
        arrow = self._arrow_rows(table, ctx)
        if arrow is not None:
            rows, ref = arrow
            found = {self.cfg.prefix + x: pc.take(ref.column(x), rows) for x in self.cfg.columns}
            hit = pc.if_else(pc.is_valid(rows), True, pa.scalar(None, pa.bool_()))
            return pa.table({**found, "__agg_hit": hit})
        on = " AND ".join(f"t.{quote(a)} = r.{quote(b)}" for a, b in self.cfg.on.items())
        cols = ", ".join(f"r.{quote(x)} AS {quote(self.cfg.prefix + x)}" for x in self.cfg.columns)
        sql = (
            f"SELECT {cols}, r.__agg_hit FROM __agg_t t LEFT JOIN {self.ref} r ON {on} "
            f"ORDER BY t.{ROW}"
        )
        return sql_table(ctx, table, sql, columns=list(self.cfg.on))

    def apply(self, table: pa.Table, ctx: Context) -> Out:
        require(table, list(self.cfg.on), self.label)
        if not self.loaded:
            self._load(ctx)
        found = self._found(table, ctx)
        hit = found.column("__agg_hit")
        joined = table
        for name in found.column_names[:-1]:
            if name in joined.column_names:
                joined = joined.drop_columns([name])
            joined = joined.append_column(name, found.column(name))
        if self.cfg.on_missing == "keep":
            return Out(joined)
        keys = list(self.cfg.on)
        out = reject_mask(
            joined,
            pc.is_null(hit),
            lambda r: (
                f"{self.label}: no match for "
                + ", ".join(f"{k}={joined.column(k)[r].as_py()!r}" for k in keys)
            ),
        )
        if out.rejected and self.cfg.on_missing == "fail":
            raise RunError(next(iter(out.rejected.values())))
        return out


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


class Sql(Step):
    can_drop = True
    keeps_origins = False

    def __init__(self, cfg: c.SqlStep, index: int) -> None:
        super().__init__(cfg, index)
        self.expr = parse_expression(cfg.query, self.label, statement=True)
        self.drop_reason = f"{self.label}: row not in the query result"

    def apply(self, table: pa.Table, ctx: Context) -> Out:
        ctx.con.register(ctx.stream, table)
        try:
            return Out(ctx.con.sql(self.expr.sql).to_arrow_table())
        except duckdb.Error as exc:
            if table.num_rows == 0:
                raise ConfigError(f"{self.label}: {str(exc).splitlines()[0]}") from exc
            if self.on_error == "fail":
                raise RunError(f"{self.label}: {str(exc).splitlines()[0]}") from exc
            why = f"{self.label}: {str(exc).splitlines()[0]}"
            return reject_rows(table, dict.fromkeys(range(table.num_rows), why))
        finally:
            ctx.con.unregister(ctx.stream)


def load_function(path: str, label: str) -> Callable[[pa.RecordBatch], Any]:
    """Import ``module:function`` (or ``module.function``)."""
    module, _, name = path.replace(":", ".").rpartition(".")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{label}: cannot import {path!r}: {exc}") from exc
    if not callable(fn):
        raise ConfigError(f"{label}: {path!r} is not callable")
    return fn  # type: ignore[no-any-return]


class Python(Step):
    can_drop = True
    keeps_origins = False

    def __init__(self, cfg: c.PythonStep, index: int) -> None:
        super().__init__(cfg, index)
        self.fn = load_function(cfg.function, self.label)
        self.drop_reason = f"{self.label}: row not returned by {cfg.function}"
        self.polars: Any = None
        if cfg.frame == "polars":
            try:
                self.polars = importlib.import_module("polars")
            except ImportError as exc:
                raise ConfigError(
                    f"{self.label}: frame: polars needs Polars (pip install 'aggregator[polars]')"
                ) from exc

    def call(self, batch: pa.RecordBatch) -> pa.Table:
        """The function over the batch (as a Polars DataFrame with ``frame: polars``)."""
        if self.polars is None:
            result = self.fn(batch)
            return result if isinstance(result, pa.Table) else pa.Table.from_batches([result])
        frame = self.fn(self.polars.from_arrow(batch))
        if not isinstance(frame, self.polars.DataFrame):
            raise TypeError(f"{self.cfg.function} returned {type(frame).__name__}, not a DataFrame")
        return _plain_strings(frame.to_arrow())

    def apply(self, table: pa.Table, ctx: Context) -> Out:
        origins = table.column(ROW)
        data = table.drop_columns([ROW])
        batch = data.combine_chunks().to_batches()
        arg = batch[0] if batch else pa.RecordBatch.from_pylist([], schema=data.schema)
        try:
            out = self.call(arg)
        except Exception as exc:
            why = f"{self.label}: {type(exc).__name__}: {exc}"
            if table.num_rows == 0:
                raise Unvalidated(why) from exc
            log.error("transform.python_failed", step=self.label, traceback=traceback.format_exc())
            if self.on_error == "fail":
                raise RunError(why) from exc
            return reject_rows(table, dict.fromkeys(range(table.num_rows), why))
        if ROW in out.column_names:
            return Out(out)
        if out.num_rows == table.num_rows:
            return Out(out.append_column(ROW, origins))
        return Out(out.append_column(ROW, pa.nulls(out.num_rows, pa.int64())))


def _plain_strings(table: pa.Table) -> pa.Table:
    """Polars' large / view strings as the engine's ``string``."""
    fields = [
        f.with_type(pa.string())
        if pa.types.is_large_string(f.type) or pa.types.is_string_view(f.type)
        else f
        for f in table.schema
    ]
    return table.cast(pa.schema(fields))


BUILDERS: dict[str, Callable[[Any, int], Step]] = {
    "select": Select,
    "drop": Drop,
    "rename": Rename,
    "cast": Cast,
    "derive": Derive,
    "filter": Filter,
    "deduplicate": Deduplicate,
    "flatten": Flatten,
    "unnest": Unnest,
    "normalize_names": NormalizeNames,
    "map_values": MapValues,
    "lookup": Lookup,
    "map_schema": MapSchema,
    "sql": Sql,
    "python": Python,
}
