"""Steps running user code: ``derive`` / ``filter`` SQL expressions, ``sql`` queries
(DuckDB over Arrow) and ``python`` functions (Arrow or Polars).

Failing rows are found by bisection (expressions) or the whole batch is rejected with the
error (queries, functions), unless ``on_error: fail``.
"""

from __future__ import annotations

import importlib
import traceback
from collections.abc import Callable
from typing import Any

import duckdb
import pyarrow as pa
import structlog

from aggregator.core.errors import ConfigError, RunError
from aggregator.transform import config as c
from aggregator.transform.base import (
    ROW,
    Context,
    Out,
    Step,
    Unvalidated,
    bisect_errors,
    reject_rows,
    sql_table,
)
from aggregator.transform.expr import check_columns, parse_expression

log = structlog.get_logger(__name__)


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
