"""Row and shape steps: deduplicate, lookup (enrich from a reference table), flatten
(structs / JSON objects to columns) and unnest (lists to rows, or to a child stream)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from aggregator.core.errors import ConfigError, RunError
from aggregator.transform import config as c
from aggregator.transform.base import (
    INDEX,
    ROW,
    Context,
    Out,
    Step,
    reject_mask,
    require,
    sql_table,
)
from aggregator.transform.expr import quote
from aggregator.transform.seen import SortedRuns, as_int64, first_mask, integer_like


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

    def __init__(self, cfg: c.UnnestStep, index: int) -> None:
        super().__init__(cfg, index)
        self.keeps_origins = cfg.into is not None  # a child stream leaves the parent rows be

    def apply(self, table: pa.Table, ctx: Context) -> Out:
        require(table, [self.cfg.column], self.label)
        lists = table.column(self.cfg.column).combine_chunks()
        if not pa.types.is_list(lists.type) and not pa.types.is_large_list(lists.type):
            raise ConfigError(f"{self.label}: column {self.cfg.column!r} is not a list")
        if self.cfg.into is not None:
            child = child_rows(lists, table.column(ROW), self.cfg.column)
            return Out(table.drop_columns([self.cfg.column]), children={self.cfg.into: child})
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


def child_rows(lists: pa.Array, origins: pa.ChunkedArray, column: str) -> pa.Table:
    """One row per element: the parent's origin, the element's position in its list
    (:data:`INDEX`) and the element (a struct's fields as columns, else ``column``)."""
    values = pc.list_flatten(lists)
    parents = pc.list_parent_indices(lists)
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False)
    starts = np.cumsum(lengths) - lengths
    position = np.arange(len(values), dtype=np.int64) - starts[parents.to_numpy()]
    columns: dict[str, pa.Array | pa.ChunkedArray] = {
        ROW: pc.take(origins, parents),
        INDEX: pa.array(position, pa.int64()),
    }
    if pa.types.is_struct(values.type):
        for offset, field in enumerate(values.type):
            columns[field.name] = pc.struct_field(values, [offset])
    else:
        columns[column] = values
    return pa.table(columns)


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
