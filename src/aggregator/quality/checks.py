"""Row checks (vectorized masks over each batch) and stream checks (evaluated at finish)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from aggregator.core.errors import RunError
from aggregator.core.types import type_from_string
from aggregator.quality import config as q
from aggregator.transform.base import (
    ROW,
    Context,
    Out,
    bound,
    cast_values,
    failing_casts,
    reject_mask,
    require,
    sql_table,
)
from aggregator.transform.seen import (
    SortedRuns,
    arrival_order,
    as_int64,
    first_mask,
    integer_like,
)


@dataclass
class CheckResult:
    """Outcome of one check in a run."""

    check: str
    kind: str
    column: str | None
    severity: str
    checked: int = 0
    failed: int = 0
    samples: list[Any] = field(default_factory=list)
    detail: str | None = None

    @property
    def status(self) -> str:
        """``passed``, or what the failures did: ``warned``, ``quarantined``, ``failed``."""
        if not self.failed:
            return "passed"
        return {"warn": "warned", "quarantine": "quarantined", "fail": "failed"}[self.severity]


class RowCheck:
    """A compiled row check."""

    def __init__(self, cfg: Any, index: int, stream: str) -> None:
        self.cfg = cfg
        self.label = f"stream {stream!r}: checks[{index}] ({cfg.check})"
        column = getattr(cfg, "column", None) or ",".join(getattr(cfg, "columns", []) or [])
        self.result = CheckResult(self.label, cfg.check, column or None, cfg.severity)
        self.expr: Any = None
        if cfg.check == "sql":  # sqlglot loads only for SQL checks
            from aggregator.transform.expr import parse_expression

            self.expr = parse_expression(cfg.expr, self.label)
        self.seen = f"__agg_unique_{index}"
        self.runs = SortedRuns()  # one integer-like column: values kept so far
        self.started = False
        self.reference: pa.Array | None = None
        self.repeating = True  # regex: values repeat enough to match each distinct one once

    def columns(self) -> list[str]:
        """Columns the check reads."""
        cols = getattr(self.cfg, "columns", None)
        return list(cols) if cols else [self.cfg.column] if hasattr(self.cfg, "column") else []

    def validate(self, schema: pa.Schema) -> None:
        """Config error before any data moves when a column is missing."""
        require(schema, self.columns(), self.label)
        if self.expr is not None:
            from aggregator.transform.expr import check_columns

            check_columns(self.expr, schema.names, self.label)

    def bad(self, table: pa.Table, ctx: Context) -> tuple[pa.Array, str]:
        """Mask of failing rows and the reason text."""
        cfg = self.cfg
        kind = cfg.check
        col = _array(table.column(cfg.column)) if hasattr(cfg, "column") else None
        if kind == "not_null":
            masks = [pc.is_null(table.column(c)) for c in cfg.columns]
            mask = masks[0]
            for m in masks[1:]:
                mask = pc.or_(mask, m)
            return mask, f"null in {', '.join(cfg.columns)}"
        if kind in ("sql", "unique"):
            return self._sql_or_unique(table, ctx)
        assert col is not None
        if kind == "type":
            dtype = type_from_string(cfg.type)
            try:
                cast_values(col, dtype)
                return pa.repeat(pa.scalar(False), table.num_rows), ""
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                rows = list(failing_casts(col, dtype))
                mask = pc.is_in(pa.array(range(table.num_rows)), pa.array(rows, pa.int64()))
                return mask, f"not of type {cfg.type}"
        if kind == "accepted_values":
            allowed = pa.array(cfg.values).cast(col.type)
            missing = pc.and_(pc.is_valid(col), pc.invert(pc.is_in(col, value_set=allowed)))
            return missing, f"not in {cfg.values!r}"
        if kind == "range":
            mask = pa.repeat(pa.scalar(False), table.num_rows)
            if cfg.min is not None:
                mask = pc.or_(mask, pc.less(col, bound(cfg.min, col.type)))
            if cfg.max is not None:
                mask = pc.or_(mask, pc.greater(col, bound(cfg.max, col.type)))
            return mask, f"outside [{cfg.min}, {cfg.max}]"
        if kind == "regex":
            return self._mismatches(col.cast(pa.string())), f"does not match {cfg.pattern!r}"
        if kind == "length":
            return _bad_lengths(col.cast(pa.string()), cfg.min, cfg.max), (
                f"length outside [{cfg.min}, {cfg.max}]"
            )
        if kind == "referential":
            if self.reference is None:
                ref = ctx.load_reference(cfg.table, cfg.file)
                require(ref, [cfg.ref_column], f"{self.label} reference")
                self.reference = pc.unique(ref.column(cfg.ref_column).combine_chunks())
            values = self.reference.cast(col.type)
            where = cfg.table or cfg.file
            missing = pc.and_(pc.is_valid(col), pc.invert(pc.is_in(col, value_set=values)))
            return missing, f"not found in {where}.{cfg.ref_column}"
        raise AssertionError(kind)

    def _mismatches(self, text: pa.Array) -> pa.Array:
        """Rows not matching the pattern. The pattern runs once per distinct value while
        values repeat (dictionary-encoded batches), else once per row."""
        pattern = f"^(?:{self.cfg.pattern})$"
        if self.repeating:
            encoded = pc.dictionary_encode(text)
            self.repeating = len(encoded.dictionary) * 2 <= max(len(text), 1)
            ok = pc.match_substring_regex(encoded.dictionary, pattern)
            return pc.invert(pc.take(ok, encoded.indices))
        return pc.invert(pc.match_substring_regex(text, pattern))

    def _sql_or_unique(self, table: pa.Table, ctx: Context) -> tuple[pa.Array, str]:
        cfg = self.cfg
        if cfg.check == "sql":
            assert self.expr is not None
            used = sorted({ref.name for ref in self.expr.columns})
            query = f"SELECT coalesce(({self.expr.sql}), false) AS ok FROM __agg_t"
            ok = sql_table(ctx, table, query, columns=used)
            return pc.invert(ok.column("ok").combine_chunks()), f"violates {cfg.expr!r}"
        return self._duplicates(table, ctx), f"duplicate of ({', '.join(cfg.columns)})"

    def _duplicates(self, table: pa.Table, ctx: Context) -> pa.Array:
        if len(self.cfg.columns) == 1 and integer_like(
            table.schema.field(self.cfg.columns[0]).type
        ):
            return self._integer_duplicates(table)
        from aggregator.transform.expr import quote

        keys = ", ".join(quote(k) for k in self.cfg.columns)
        dup = f"row_number() OVER (PARTITION BY {keys} ORDER BY {ROW}) > 1"
        if self.started:
            match = " AND ".join(
                f"s.{quote(k)} IS NOT DISTINCT FROM b.{quote(k)}" for k in self.cfg.columns
            )
            dup += f" OR EXISTS (SELECT 1 FROM {self.seen} s WHERE {match})"
        query = f"SELECT ({dup}) AS d FROM __agg_t b ORDER BY {ROW}"
        flags = sql_table(ctx, table, query, columns=list(self.cfg.columns))
        mask = flags.column("d").combine_chunks()
        if table.num_rows:
            ctx.con.register("__agg_k", table.filter(pc.invert(mask)).select(self.cfg.columns))
            if self.started:
                ctx.con.execute(f"INSERT INTO {self.seen} SELECT * FROM __agg_k")
            else:
                ctx.con.execute(
                    f"CREATE OR REPLACE TEMP TABLE {self.seen} AS SELECT * FROM __agg_k"
                )
            ctx.con.unregister("__agg_k")
            self.started = True
        return mask

    def _integer_duplicates(self, table: pa.Table) -> pa.Array:
        """Duplicates of one integer-like column: earlier in the batch (by origin) or run."""
        numbers, valid = as_int64(table.column(self.cfg.columns[0]))
        rows = arrival_order(table.column(ROW).to_numpy())
        mask = ~first_mask(numbers, valid, rows)
        if self.started:
            mask |= self.runs.contains(numbers, valid)
        self.runs.add(numbers[~mask], valid[~mask])
        self.started = True
        return pa.array(mask)

    def passes(self, table: pa.Table) -> bool:
        """Whether every row passes, decided from whole-column figures (null counts, types,
        bounds, byte lengths) without a mask per row; ``False`` means: look row by row."""
        cfg = self.cfg
        kind = cfg.check
        if kind == "not_null":
            return all(table.column(c).null_count == 0 for c in cfg.columns)
        if kind not in ("type", "range", "length"):
            return False
        col = table.column(cfg.column)
        if col.null_count == len(col):
            return True
        if kind == "type":
            return bool(col.type == type_from_string(cfg.type))
        if kind == "range":
            if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
                return False  # exact comparisons of other types go through the mask
            bounds = pc.min_max(col)
            low, high = bounds["min"].as_py(), bounds["max"].as_py()
            if pa.types.is_floating(col.type) and (low != low or high != high):
                return False  # NaN
            return (cfg.min is None or low >= cfg.min) and (cfg.max is None or high <= cfg.max)
        if cfg.min is not None or not (pa.types.is_string(col.type)):
            return False
        longest = pc.max(pc.binary_length(col)).as_py()  # characters <= bytes
        return longest is None or longest <= cfg.max

    def apply(self, table: pa.Table, ctx: Context) -> Out:
        """Count, quarantine or fail the rows that break the check."""
        if self.passes(table):
            self.result.checked += table.num_rows
            return Out(table)
        mask, what = self.bad(table, ctx)
        mask = pc.fill_null(mask, False)
        self.result.checked += table.num_rows
        failed = pc.sum(pc.cast(mask, pa.int64())).as_py() or 0
        if not failed:
            return Out(table)
        self.result.failed += failed
        self.result.detail = f"{self.result.column or 'row'} {what}"
        column = self.result.column if hasattr(self.cfg, "column") else None
        if len(self.result.samples) < 5 and column:
            picked = pc.filter(table.column(column), mask).slice(0, 5).to_pylist()
            self.result.samples += picked[: 5 - len(self.result.samples)]

        def reason(r: int) -> str:
            shown = f" (value {table.column(column)[r].as_py()!r})" if column else ""
            return f"{self.label}: {self.result.column or 'row'} {what}{shown}"

        if self.cfg.severity == "warn":
            return Out(table)
        if self.cfg.severity == "fail":
            first = pc.indices_nonzero(mask)[0].as_py()
            raise RunError(f"{reason(first)}; {failed} row(s) fail (severity fail)")
        return reject_mask(table, mask, reason)


def _array(column: pa.ChunkedArray) -> pa.Array:
    """One array (no copy when there is one chunk, as in the engine's batches)."""
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _bad_lengths(text: pa.Array, least: int | None, most: int | None) -> pa.Array:
    """Rows whose length in characters is outside [least, most]. A string has at most as
    many characters as bytes, so the (free) byte lengths settle most rows: characters are
    counted only for rows longer than ``most`` bytes, or when ``least`` is set."""
    if least is not None:
        n = pc.utf8_length(text)
        mask = pc.less(n, least)
        return mask if most is None else pc.or_(mask, pc.greater(n, most))
    if most is None:
        return pa.nulls(len(text), pa.bool_())
    longer = pc.greater(pc.binary_length(text), most)
    if not pc.any(longer).as_py():
        return longer
    return pc.and_(longer, pc.greater(pc.utf8_length(text), most))


class StreamStats:
    """Running totals the stream checks need (rows out, freshness maxima)."""

    def __init__(self) -> None:
        self.rows = 0
        self.latest: dict[str, Any] = {}

    def update(self, table: pa.Table, columns: list[str]) -> None:
        """Fold in one output batch."""
        self.rows += table.num_rows
        for name in columns:
            if name in table.column_names and table.num_rows:
                top = pc.max(table.column(name)).as_py()
                if top is not None and (self.latest.get(name) is None or top > self.latest[name]):
                    self.latest[name] = top


def age_seconds(value: Any, now: datetime) -> float | None:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return (now - moment).total_seconds()
    return None


def evaluate_stream_check(
    cfg: Any, index: int, stream: str, stats: StreamStats, profile: dict[str, dict[str, Any]]
) -> CheckResult:
    """Evaluate a stream-level check from the run totals and the column profile."""
    label = f"stream {stream!r}: checks[{index}] ({cfg.check})"
    result = CheckResult(label, cfg.check, getattr(cfg, "column", None), cfg.severity, 1)
    value: Any
    if isinstance(cfg, q.RowCountCheck):
        value = stats.rows
        bad = (cfg.min is not None and value < cfg.min) or (cfg.max is not None and value > cfg.max)
        bound = f"[{cfg.min}, {cfg.max}]"
    elif isinstance(cfg, q.FreshnessCheck):
        value = age_seconds(stats.latest.get(cfg.column), datetime.now(UTC))
        bad = value is None or value > cfg.max_age_seconds
        bound = f"<= {cfg.max_age_seconds}s"
    elif isinstance(cfg, q.NullRateCheck):
        p = profile.get(cfg.column, {})
        value = p.get("nulls", 0) / p["count"] if p.get("count") else 0.0
        bad = value > cfg.max
        bound = f"<= {cfg.max}"
    else:
        p = profile.get(cfg.column, {})
        present = (p.get("count") or 0) - (p.get("nulls") or 0)
        value = (p.get("distinct") or 0) / present if present else 0.0
        bad = (cfg.min is not None and value < cfg.min) or (cfg.max is not None and value > cfg.max)
        bound = f"[{cfg.min}, {cfg.max}]"
    shown = round(value, 4) if isinstance(value, float) else value
    result.detail = f"{cfg.check} = {shown}, expected {bound}"
    result.failed = 1 if bad else 0
    return result
