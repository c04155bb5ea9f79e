"""The engine's default :class:`StreamProcessor`: transform steps, checks, profile, anomalies."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import structlog

from aggregator.core.catalog import ConfiguredStream
from aggregator.core.errors import ConfigError, RunError
from aggregator.engines.processing import PARENT, Processed, StreamProcessor
from aggregator.pipeline.spec import PipelineSpec, StreamSpec
from aggregator.quality.checks import (
    CheckResult,
    RowCheck,
    StreamStats,
    age_seconds,
    evaluate_stream_check,
)
from aggregator.quality.config import STREAM_CHECKS
from aggregator.quality.metrics import StreamMetrics
from aggregator.quality.profile import Profiler
from aggregator.transform.base import ROW, Context, require
from aggregator.transform.config import UnnestStep
from aggregator.transform.expr import quote
from aggregator.transform.plan import compile_steps, run_steps, with_origin
from aggregator.transform.steps import Unvalidated

if TYPE_CHECKING:  # the metadata store (SQLAlchemy) loads only when results are stored
    from aggregator.metadata.store import MetadataStore

log = structlog.get_logger(__name__)


DuckDBOptions = dict[str, str | bool | int | float | list[str]]


def duckdb_destination(spec: PipelineSpec) -> tuple[str, str, DuckDBOptions]:
    """(path, schema, connection options) of a DuckDB destination, with the connector's
    defaults, so that a second connection opens the file with the same configuration."""
    from aggregator.connectors.duckdb.destination import DuckDBConfig

    config = DuckDBConfig.model_validate(spec.destination.config)
    return config.path, config.schema_name, config.connect_options()


def reference_loader(spec: PipelineSpec) -> Callable[[str | None, str | None], pa.Table]:
    """Loads a reference: a table of the destination DuckDB, or a CSV/Parquet/JSON file."""

    def load(table: str | None, file: str | None) -> pa.Table:
        if file is not None:
            reader = {".parquet": "read_parquet", ".json": "read_json_auto"}
            fn = reader.get(
                Path(file).suffix, "read_json_auto" if file.endswith("l") else "read_csv_auto"
            )
            with duckdb.connect() as con:
                return con.sql(f"SELECT * FROM {fn}(?)", params=[file]).to_arrow_table()
        if spec.destination.type != "duckdb":
            raise ConfigError(f"reference table {table!r} needs a duckdb destination (or use file)")
        path, schema, options = duckdb_destination(spec)
        try:
            with duckdb.connect(path, config=options) as con:
                query = f"SELECT * FROM {quote(schema)}.{quote(str(table))}"
                return con.sql(query).to_arrow_table()
        except duckdb.Error as exc:
            raise ConfigError(f"reference table {table!r}: {str(exc).splitlines()[0]}") from exc

    return load


class QualityProcessor(StreamProcessor):
    """Applies a stream's steps and row checks to each batch; stream checks at finish."""

    def __init__(
        self,
        spec: PipelineSpec,
        stream: StreamSpec,
        store: MetadataStore | None = None,
        primary_key: list[str] | None = None,
    ) -> None:
        self.spec = spec
        self.stream = stream
        self.store = store
        self.primary_key = list(
            primary_key if primary_key is not None else stream.primary_key or []
        )
        self.child_streams = tuple(
            t.into for t in stream.transforms if isinstance(t, UnnestStep) and t.into is not None
        )
        if self.child_streams and not self.primary_key:
            raise ConfigError(
                f"stream {stream.name!r}: unnest into {self.child_streams[0]!r} needs the "
                "stream's primary_key (child rows are keyed by their parent's key)"
            )
        self.run_id: str | None = None
        # one thread: batches are small and the pipeline already runs its stages in parallel
        self.con = duckdb.connect(config={"threads": 1})
        self.ctx = Context(stream.name, self.con, reference_loader(spec))
        self.steps = compile_steps(stream)
        indexed = list(enumerate(stream.checks))
        self.row_checks = [
            RowCheck(c, i, stream.name) for i, c in indexed if not isinstance(c, STREAM_CHECKS)
        ]
        self.stream_checks = [(i, c) for i, c in indexed if isinstance(c, STREAM_CHECKS)]
        self.fresh_columns = [c.column for _, c in self.stream_checks if c.check == "freshness"]
        if stream.anomalies and stream.anomalies.freshness_column:
            self.fresh_columns.append(stream.anomalies.freshness_column)
        needs_profile = any(
            c.check in ("null_rate", "distinct_ratio") for _, c in self.stream_checks
        )
        wants_nulls = bool(stream.anomalies and "null_rate" in stream.anomalies.metrics)
        self.profiler = (
            Profiler(self.con) if stream.profile or needs_profile or wants_nulls else None
        )
        self.stats = StreamStats()
        self.rows_in = 0
        self.rejected = 0
        self.dropped = 0
        self.validated: pa.Schema | None = None
        self.results: list[CheckResult] = []
        self.started = time.perf_counter()

    def _validate(self, table: pa.Table) -> None:
        """Run the steps on no rows: unknown columns and bad SQL fail before data moves."""
        try:
            result = run_steps(table.slice(0, 0), self.steps, self.ctx)
        except Unvalidated as exc:
            log.warning("transform.not_validated", stream=self.stream.name, reason=str(exc))
            self.validated = table.schema
            return
        if self.child_streams:
            require(result.table, self.primary_key, f"stream {self.stream.name!r}: primary_key")
        for name, child in result.children.items():
            clash = sorted(set(self.primary_key) & set(child.column_names))
            if clash:
                raise ConfigError(
                    f"stream {self.stream.name!r}: child stream {name!r}: element column "
                    f"{clash[0]!r} has the name of a key column of the parent"
                )
        for check in self.row_checks:
            check.validate(result.table.schema)
        for i, c in self.stream_checks:
            column = getattr(c, "column", None)
            if column is not None and column not in result.table.column_names:
                shown = ", ".join(n for n in result.table.column_names if n != ROW)
                raise ConfigError(
                    f"stream {self.stream.name!r}: checks[{i}] ({c.check}): unknown column "
                    f"{column!r}; columns: {shown}"
                )
        self.validated = table.schema

    def transform(self, batch: pa.RecordBatch | pa.Table) -> tuple[pa.Table, dict[int, str], int]:
        """Steps and row checks over one batch: (rows kept, rejected origins, rows dropped)."""
        out, rejected, dropped, _ = self.transform_all(batch)
        return out, rejected, dropped

    def transform_all(
        self, batch: pa.RecordBatch | pa.Table
    ) -> tuple[pa.Table, dict[int, str], int, dict[str, pa.Table]]:
        """:meth:`transform` plus the child-stream rows of the rows kept."""
        table = with_origin(batch)
        if table.schema != self.validated:
            self._validate(table)
        result = run_steps(table, self.steps, self.ctx)
        rejected = result.rejected
        out = result.table
        for check in self.row_checks:
            checked = check.apply(out, self.ctx)
            out = checked.table
            for origin, why in checked.rejected.items():
                rejected.setdefault(origin, why)
        if rejected and out.num_rows:
            gone = pa.array(list(rejected), pa.int64())
            out = out.filter(pc.invert(pc.is_in(out.column(ROW), value_set=gone)))
        children = {name: self._keyed(child, out) for name, child in result.children.items()}
        return out.drop_columns([ROW]), rejected, result.dropped, children

    def _keyed(self, child: pa.Table, parents: pa.Table) -> pa.Table:
        """Child rows of the kept parents: the parent's key columns, the child's columns and
        ``PARENT`` (the parent's row in the output batch)."""
        position = pc.index_in(child.column(ROW), value_set=parents.column(ROW))
        kept = pc.is_valid(position)
        child, position = child.filter(kept), pc.filter(position, kept)
        keys = parents.select(self.primary_key).take(position)
        for name in reversed(keys.column_names):
            child = child.add_column(0, name, keys.column(name))
        return child.drop_columns([ROW]).append_column(PARENT, position.cast(pa.int64()))

    def process(self, batch: pa.RecordBatch) -> Processed:
        """Transform and check a batch for the engine."""
        self.rows_in += batch.num_rows
        out, rejected, dropped, children = self.transform_all(batch)
        self.rejected += len(rejected)
        self.dropped += dropped
        self.stats.update(out, self.fresh_columns)
        if self.profiler is not None:
            self.profiler.update(out)
        combined = out.combine_chunks().to_batches()
        result = combined[0] if combined else pa.RecordBatch.from_pylist([], schema=out.schema)
        return Processed(result, rejected, children)

    def start(self, run_id: str) -> None:
        """Remember the run, to store results under it."""
        self.run_id = run_id

    def close(self) -> None:
        """Release the DuckDB connection (also when the stream failed)."""
        self.con.close()

    def finish(self) -> None:
        """Stream checks, anomalies, and storage of results; a ``fail`` raises."""
        profile = self.profiler.to_json() if self.profiler is not None else {}
        results: list[CheckResult] = [c.result for c in self.row_checks]
        results += [
            evaluate_stream_check(c, i, self.stream.name, self.stats, profile)
            for i, c in self.stream_checks
        ]
        fresh = self.stats.latest.get(self.fresh_columns[-1]) if self.fresh_columns else None
        metrics = StreamMetrics(
            rows_in=self.rows_in,
            rows_out=self.stats.rows,
            rows_rejected=self.rejected,
            rows_dropped=self.dropped,
            seconds=time.perf_counter() - self.started,
            freshness_seconds=age_seconds(fresh, datetime.now(UTC)),
            columns=profile or None,
        )
        if self.store is not None:
            from aggregator.quality import anomaly
            from aggregator.quality import store as quality_store
        if self.stream.anomalies and self.store is not None:
            past = quality_store.history(self.store, self.spec.name, self.stream.name)
            results += anomaly.detect(self.stream.anomalies, self.stream.name, metrics, past)
        for r in results:
            if r.failed and r.severity == "warn":
                log.warning(
                    "quality.warning", stream=self.stream.name, check=r.check, detail=r.detail
                )
        if self.store is not None and self.run_id is not None:
            quality_store.save_stream(
                self.store, self.run_id, self.spec.name, self.stream.name, metrics, results
            )
        self.results = results
        failed = [r for r in results if r.failed and r.severity == "fail"]
        if failed:
            raise RunError("; ".join(f"{r.check}: {r.detail or r.status}" for r in failed))


def processor_factory(
    store: MetadataStore | None = None,
) -> Callable[[PipelineSpec, ConfiguredStream], StreamProcessor]:
    """The engine's default factory: pass-through (zero overhead) unless the stream has work."""

    def build(spec: PipelineSpec, stream: ConfiguredStream) -> StreamProcessor:
        declared = next(
            (
                s
                for source in spec.sources
                for s in source.streams or []
                if s.name == stream.name and s.table == stream.destination_table
            ),
            None,
        )
        if declared is None or not declared.has_processing:
            return StreamProcessor()
        return QualityProcessor(spec, declared, store, list(stream.primary_key))

    return build
