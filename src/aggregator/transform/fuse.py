"""Fusion of consecutive expression steps (derive, filter, lookup) into one DuckDB query.

Each step alone registers the batch, runs a query and converts its result back to Arrow; a
run of them pays that once. The fused query reads only the columns the expressions use and
returns only what the steps produce, which is stitched onto the batch in Arrow. The SQL of
each expression was parsed and transpiled once (sqlglot); the fused query is built once per
input schema.

Attribution stays exact: a group holds at most one filter (so every row it removes was
removed by that filter), and a batch on which the fused query raises, or where a lookup
with ``on_missing: quarantine | fail`` finds no match, is run again step by step, so each
failing row gets the error of the step that failed on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

from aggregator.transform.base import Context, Out, require
from aggregator.transform.expr import check_columns, quote
from aggregator.transform.steps import Derive, Filter, Lookup, Step

POS = "__agg_pos"  # position of a row in the batch handed to the fused query
Fallback = Callable[[pa.Table, list[Step], Context], Out]


@dataclass
class _Query:
    """The fused query for one input schema."""

    sql: str
    inputs: list[str]  # input columns the query reads
    checked_hits: list[str]  # hit columns of lookups that must match every row


def fusable(step: Step) -> bool:
    """Whether a step can join a fused group (a lookup on one key is an Arrow hash lookup,
    cheaper than a join)."""
    if isinstance(step, Lookup):
        return type(step) is Lookup and len(step.cfg.on) > 1
    return type(step) in (Derive, Filter)


class Fused(Step):
    """A run of derive / filter / lookup steps evaluated as one query per batch."""

    def __init__(self, members: list[Step], fallback: Fallback) -> None:
        self.members = members
        self.fallback = fallback
        self.index = members[0].index
        self.label = " + ".join(m.label for m in members)
        self.on_error = "quarantine"
        filters = [m for m in members if isinstance(m, Filter)]
        self.can_drop = bool(filters)
        self.drop_reason = filters[0].drop_reason if filters else "dropped"
        self.on_drop = filters[0].on_drop if filters else "quarantine"
        self.queries: dict[tuple[str, ...], _Query] = {}

    def apply(self, table: pa.Table, ctx: Context) -> Out:
        if table.num_rows == 0:  # validation: each step names its own errors
            return self.fallback(table, self.members, ctx)
        names = tuple(table.column_names)
        query = self.queries.get(names)
        if query is None:
            query = self.queries[names] = self._compile(list(names), ctx)
        narrow = table.select(query.inputs).append_column(
            POS, pa.array(np.arange(table.num_rows, dtype=np.int64))
        )
        ctx.con.register("__agg_t", narrow)
        try:
            result = ctx.con.sql(query.sql).to_arrow_table()
        except duckdb.Error:
            return self.fallback(table, self.members, ctx)
        finally:
            ctx.con.unregister("__agg_t")
        if any(result.column(hit).null_count for hit in query.checked_hits):
            return self.fallback(table, self.members, ctx)
        return Out(self._stitch(table, result))

    def _compile(self, names: list[str], ctx: Context) -> _Query:
        """The nested query over ``__agg_t`` (the used input columns and ``__agg_pos``)."""
        available, produced = set(names), set[str]()
        inputs: list[str] = []

        def use(columns: list[str]) -> None:
            for name in columns:
                if name not in produced and name not in inputs:
                    inputs.append(name)

        for m in self.members:
            if isinstance(m, Derive | Filter):
                check_columns(m.expr, available | produced, m.label)
                use([ref.name for ref in m.expr.columns])
            elif isinstance(m, Lookup):
                known = pa.schema([(n, pa.null()) for n in [*names, *sorted(produced - available)]])
                require(known, list(m.cfg.on), m.label)
                use(list(m.cfg.on))
            if isinstance(m, Derive):
                produced.add(m.cfg.column)
            elif isinstance(m, Lookup):
                produced.update(m.cfg.prefix + x for x in m.cfg.columns)
        current = [*inputs, POS]
        sql, checked = "SELECT * FROM __agg_t", list[str]()
        for m in self.members:
            if isinstance(m, Derive):
                column = quote(m.cfg.column)
                if m.cfg.column in current:
                    sql = f"SELECT * REPLACE (({m.expr.sql}) AS {column}) FROM ({sql})"
                else:
                    sql = f"SELECT *, ({m.expr.sql}) AS {column} FROM ({sql})"
                    current.append(m.cfg.column)
            elif isinstance(m, Filter):
                # a row an earlier lookup misses (quarantine/fail) stays, so that the check
                # below sees it and the step-by-step run names the lookup, not the filter
                missed = "".join(f" OR {hit} IS NULL" for hit in checked)
                sql = f"SELECT * FROM ({sql}) WHERE coalesce(({m.expr.sql}), false){missed}"
            elif isinstance(m, Lookup):
                if not m.loaded:
                    m._load(ctx)
                new = [m.cfg.prefix + x for x in m.cfg.columns]
                again = [n for n in new if n in current]
                keep = f"l.* EXCLUDE ({', '.join(map(quote, again))})" if again else "l.*"
                cols = ", ".join(
                    f"r.{quote(x)} AS {quote(m.cfg.prefix + x)}" for x in m.cfg.columns
                )
                hit = f"__agg_hit_{m.index}"
                on = " AND ".join(f"l.{quote(a)} = r.{quote(b)}" for a, b in m.cfg.on.items())
                sql = (
                    f"SELECT {keep}, {cols}, r.__agg_hit AS {hit} "
                    f"FROM ({sql}) l LEFT JOIN {m.ref} r ON {on}"
                )
                current = [n for n in current if n not in again] + new + [hit]
                if m.cfg.on_missing != "keep":
                    checked.append(hit)
        wanted = [n for n in current if n in produced] + checked + [POS]
        final = f"SELECT {', '.join(map(quote, wanted))} FROM ({sql})"
        return _Query(final, inputs, checked)

    def _stitch(self, table: pa.Table, result: pa.Table) -> pa.Table:
        """The batch's kept rows with the produced columns placed as each step places them."""
        positions = result.column(POS).to_numpy()
        if len(positions) > 1 and not bool(np.all(positions[1:] > positions[:-1])):
            order = np.argsort(positions, kind="stable")  # a join may reorder rows
            result, positions = result.take(order), positions[order]
        if result.num_rows != table.num_rows:
            table = table.take(positions)
        for m in self.members:
            if isinstance(m, Derive):
                values = result.column(m.cfg.column)
                name = m.cfg.column
                if name in table.column_names:
                    table = table.set_column(table.schema.get_field_index(name), name, values)
                else:
                    table = table.append_column(name, values)
            elif isinstance(m, Lookup):
                for x in m.cfg.columns:
                    name = m.cfg.prefix + x
                    if name in table.column_names:
                        table = table.drop_columns([name])
                    table = table.append_column(name, result.column(name))
        return table


def fuse(steps: list[Step], fallback: Fallback) -> list[Step]:
    """Replace runs of two or more fusable steps (at most one filter each) by :class:`Fused`."""
    out: list[Step] = []
    group: list[Step] = []

    def close() -> None:
        if len(group) > 1:
            out.append(Fused(list(group), fallback))
        else:
            out.extend(group)
        group.clear()

    for step in steps:
        if not fusable(step):
            close()
            out.append(step)
            continue
        if isinstance(step, Filter) and any(isinstance(m, Filter) for m in group):
            close()
        group.append(step)
    close()
    return out
