"""Compile a stream's ``transforms:`` into steps and run them over a batch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from aggregator.core.errors import RunError
from aggregator.transform import cleanse, steps
from aggregator.transform.base import ROW, Context, Out
from aggregator.transform.fuse import fuse

if TYPE_CHECKING:
    from aggregator.pipeline.spec import StreamSpec

BUILDERS: dict[str, Any] = {**steps.BUILDERS, **cleanse.BUILDERS}


def expressions_of(stream: StreamSpec) -> list[tuple[tuple[Any, ...], str, str, bool]]:
    """(location, text, label, is_statement) of every SQL text in the stream's steps/checks."""
    found: list[tuple[tuple[Any, ...], str, str, bool]] = []
    for i, step in enumerate(stream.transforms):
        label = f"stream {stream.name!r}: transforms[{i}] ({step.step})"
        for key, statement in (("expr", False), ("where", False), ("query", True)):
            text = getattr(step, key, None)
            if isinstance(text, str):
                found.append((("transforms", i, key), text, label, statement))
    for i, check in enumerate(stream.checks):
        text = getattr(check, "expr", None)
        if isinstance(text, str):
            label = f"stream {stream.name!r}: checks[{i}] ({check.check})"
            found.append((("checks", i, "expr"), text, label, False))
    return found


def compile_steps(stream: StreamSpec) -> list[steps.Step]:
    """Build the runtime steps (parses every expression once)."""
    built = [BUILDERS[s.step](s, i) for i, s in enumerate(stream.transforms)]
    for step in built:
        prefixed = f"stream {stream.name!r}: {step.label}"
        step.drop_reason = step.drop_reason.replace(step.label, prefixed)
        step.label = prefixed
    return fuse(built, _step_by_step)


def _step_by_step(table: pa.Table, members: list[steps.Step], ctx: Context) -> Out:
    """A fused group's batch run one step at a time (exact errors per step)."""
    result = run_steps(table, members, ctx)
    return Out(result.table, result.rejected, result.children)


@dataclass
class StepsResult:
    """Rows after the steps, rejected origins with reasons, and rows dropped by policy."""

    table: pa.Table
    rejected: dict[int, str] = field(default_factory=dict)
    dropped: int = 0
    children: dict[str, pa.Table] = field(default_factory=dict)


def with_origin(batch: pa.RecordBatch | pa.Table) -> pa.Table:
    """The batch as a table with the origin column."""
    table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
    return table.append_column(ROW, pa.array(np.arange(table.num_rows, dtype=np.int64)))


def run_steps(table: pa.Table, plan: list[steps.Step], ctx: Context) -> StepsResult:
    """Apply ``plan`` in order; every input origin ends kept, rejected or dropped."""
    result = StepsResult(table)
    unique = True  # every origin appears once in the table
    for step in plan:
        before = result.table.column(ROW) if step.can_drop else None
        out = step.apply(result.table, ctx)
        if out.rejected and step.on_error == "fail":
            raise RunError(next(iter(out.rejected.values())))
        for origin, why in out.rejected.items():
            result.rejected.setdefault(origin, why)
        result.children.update(out.children)
        if before is not None and ROW in out.table.column_names:
            kept: pa.Array | None = None
            if unique and step.keeps_origins:  # a subset of distinct origins: just count
                missing = len(before) - out.table.num_rows
            else:
                kept = pc.is_in(before, value_set=pc.drop_null(out.table.column(ROW)))
                missing = len(before) - (pc.sum(kept).as_py() or 0)
            if missing > len(out.rejected):
                if step.on_drop == "quarantine":  # error path: one reason per row
                    if kept is None:
                        kept = pc.is_in(before, value_set=out.table.column(ROW))
                    gone = pc.filter(before, pc.invert(kept))
                    for origin in gone.to_pylist():
                        if origin not in out.rejected:
                            result.rejected.setdefault(origin, step.drop_reason)
                else:
                    result.dropped += missing - len(out.rejected)
        result.table = out.table
        unique = unique and step.keeps_origins
    return result
