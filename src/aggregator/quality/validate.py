"""Data contracts over Arrow batches outside a pipeline run (a file, a table, a frame).

The same row checks as a stream's ``checks:`` (see :mod:`aggregator.quality.checks`), with
their severities; stream checks (row count, freshness, null rate, distinct ratio) are
evaluated by :meth:`Validator.finish`. Loads only what the checks need: DuckDB for SQL
checks and multi-column uniqueness, sqlglot for SQL expressions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import TypeAdapter, ValidationError

from aggregator.core.errors import ConfigError, RunError
from aggregator.quality.checks import CheckResult, RowCheck, StreamStats, evaluate_stream_check
from aggregator.quality.config import STREAM_CHECKS, Check
from aggregator.transform.base import ROW, Context

_CHECKS: TypeAdapter[list[Check]] = TypeAdapter(list[Check])


@dataclass
class Validated:
    """Rows of a batch that passed, and the rejected rows (by index) with their reasons."""

    table: pa.Table
    rejected: dict[int, str] = field(default_factory=dict)


def _no_reference(table: str | None, file: str | None) -> pa.Table:
    raise ConfigError(f"referential check against {table or file!r}: no reference loader given")


class Validator:
    """Runs data-contract checks over batches; ``results`` holds one result per check."""

    def __init__(
        self,
        checks: list[dict[str, Any]],
        stream: str = "data",
        load_reference: Callable[[str | None, str | None], pa.Table] = _no_reference,
    ) -> None:
        try:
            parsed = _CHECKS.validate_python(checks)
        except ValidationError as exc:
            raise ConfigError(f"stream {stream!r}: checks: {exc}") from None
        self.stream = stream
        self.ctx = Context(stream, None, load_reference)
        self.row_checks = [
            RowCheck(c, i, stream) for i, c in enumerate(parsed) if not isinstance(c, STREAM_CHECKS)
        ]
        self.stream_checks = [(i, c) for i, c in enumerate(parsed) if isinstance(c, STREAM_CHECKS)]
        self.fresh = [c.column for _, c in self.stream_checks if c.check == "freshness"]
        self.stats = StreamStats()
        self.results: list[CheckResult] = []
        self._schema: pa.Schema | None = None

    def validate(self, batch: pa.RecordBatch | pa.Table) -> Validated:
        """Check one batch; ``quarantine`` rows are removed, ``fail`` raises ``RunError``."""
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        if table.schema != self._schema:
            for check in self.row_checks:
                check.validate(table.schema)
            self._schema = table.schema
        out = table.append_column(ROW, pa.array(np.arange(table.num_rows, dtype=np.int64)))
        rejected: dict[int, str] = {}
        for check in self.row_checks:
            checked = check.apply(out, self.ctx)
            out = checked.table
            for origin, why in checked.rejected.items():
                rejected.setdefault(origin, why)
        out = out.drop_columns([ROW])
        self.stats.update(out, self.fresh)
        return Validated(out, rejected)

    def finish(self, profile: dict[str, dict[str, Any]] | None = None) -> list[CheckResult]:
        """Row check totals plus stream checks (null rate and distinct ratio read
        ``profile``, see :class:`aggregator.quality.profile.Profiler`); a failed ``fail``
        check raises ``RunError``."""
        self.results = [c.result for c in self.row_checks] + [
            evaluate_stream_check(c, i, self.stream, self.stats, profile or {})
            for i, c in self.stream_checks
        ]
        self.ctx.close()
        failed = [r for r in self.results if r.failed and r.severity == "fail"]
        if failed:
            raise RunError("; ".join(f"{r.check}: {r.detail or r.status}" for r in failed))
        return self.results
