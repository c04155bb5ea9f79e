"""Transformation and data-quality commands: ``transform preview``, ``profile``, ``check-data``
and ``runs quality``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from aggregator.core.errors import AggregatorError, ConfigError

# DuckDB, pyarrow and the pipeline spec load when a command runs, not when the CLI starts
# (see tests/unit/test_startup.py).
if TYPE_CHECKING:
    import pyarrow as pa

    from aggregator.pipeline.spec import PipelineSpec, StreamSpec

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")
PipelineArg = Annotated[Path, typer.Argument(help="Pipeline YAML file.", show_default=False)]
StreamOpt = Annotated[str, typer.Option("--stream", "-s", help="Stream name.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def _guard(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except AggregatorError as exc:
        err.print(f"[red]error:[/red] {exc.message}", highlight=False)
        raise typer.Exit(2) from None


def _stream(spec: PipelineSpec, name: str) -> StreamSpec:
    declared = spec.stream_spec(name)
    if declared is None:
        raise ConfigError(f"stream {name!r} is not declared in pipeline {spec.name!r}")
    return declared


def _store() -> Any:
    from aggregator.engines.local import default_store

    return default_store()


def _rows_table(data: pa.Table, title: str, limit: int) -> Table:
    table = Table(title=title, title_justify="left")
    for name in data.column_names:
        table.add_column(name, overflow="fold")
    for row in data.slice(0, limit).to_pylist():
        table.add_row(*["∅" if v is None else str(v) for v in row.values()])
    return table


def _short(value: Any, width: int = 12) -> str:
    text = "∅" if value is None else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def profile_table(columns: dict[str, dict[str, Any]], title: str) -> Table:
    """One row per column of a stored profile."""
    table = Table(title=title, title_justify="left")
    for head in ("column", "count", "nulls", "distinct", "min", "max", "mean", "stddev"):
        table.add_column(head, no_wrap=True, min_width=min(len(head), 8))
    table.add_column("top values", no_wrap=True)
    for name, p in columns.items():
        approx = "~" if p.get("distinct_approximate") else ""
        mean, std = p.get("mean"), p.get("stddev")
        top = ", ".join(f"{_short(v, 8)} ({n})" for v, n in (p.get("top") or [])[:2])
        table.add_row(
            _short(name),
            str(p.get("count")),
            str(p.get("nulls")),
            f"{approx}{p.get('distinct')}",
            _short(p.get("min")),
            _short(p.get("max")),
            "" if mean is None else f"{mean:.4g}",
            "" if std is None else f"{std:.4g}",
            top,
        )
    return table


def _first_batch(spec: PipelineSpec, stream: str) -> pa.RecordBatch:
    from aggregator.core.messages import Records
    from aggregator.engines.local import plan

    planned = plan(spec, [stream])[0]
    messages = planned.source.read(planned.stream, None)
    try:
        for message in messages:
            if isinstance(message, Records) and message.batch.num_rows:
                return message.batch
    finally:
        close = getattr(messages, "close", None)
        if close is not None:
            close()
    raise ConfigError(f"stream {stream!r} has no rows to preview")


def preview(
    pipeline: PipelineArg,
    stream: StreamOpt,
    limit: Annotated[int, typer.Option(help="Rows shown.")] = 10,
) -> None:
    """Show the first batch of a stream before and after its transform steps and checks."""
    import pyarrow as pa

    from aggregator.pipeline.spec import load_pipeline
    from aggregator.transform.processor import QualityProcessor

    spec = _guard(lambda: load_pipeline(pipeline))
    declared = _guard(lambda: _stream(spec, stream))
    batch = _guard(lambda: _first_batch(spec, stream))
    processor = _guard(lambda: QualityProcessor(spec, declared))
    after, rejected, dropped = _guard(lambda: processor.transform(batch))
    out.print(_rows_table(pa.Table.from_batches([batch]), f"{stream}: before", limit))
    out.print(_rows_table(after, f"{stream}: after {len(declared.transforms)} step(s)", limit))
    if rejected:
        out.print(f"[bold]quarantined[/bold] {len(rejected)} of {batch.num_rows} rows:")
        for row, why in sorted(rejected.items())[:limit]:
            out.print(f"  row {row + 1}: {why}", highlight=False)
    if dropped:
        out.print(f"dropped (on_drop: drop): {dropped}")


def _table_batches(spec: PipelineSpec, table: str) -> Iterator[pa.RecordBatch]:
    import duckdb

    from aggregator.transform.processor import duckdb_destination

    if spec.destination.type != "duckdb":
        raise ConfigError("this command needs a duckdb destination")
    path, schema, options = duckdb_destination(spec)
    if not Path(path).exists():
        raise ConfigError(f"no warehouse at {path}; run the pipeline first")
    with duckdb.connect(path, config=options) as con:
        try:
            reader = con.sql(f'SELECT * FROM "{schema}"."{table}"').to_arrow_reader(65_536)
        except duckdb.Error as exc:
            raise ConfigError(f"table {table!r}: {str(exc).splitlines()[0]}") from exc
        yield from reader


def profile(
    pipeline: PipelineArg,
    stream: StreamOpt,
    run: Annotated[str | None, typer.Option(help="Profile stored with this run.")] = None,
    live: Annotated[bool, typer.Option(help="Profile the destination table now.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show a stream's column profile (the latest stored one, or ``--live`` from the table)."""
    import duckdb
    import pyarrow as pa

    from aggregator.pipeline.spec import load_pipeline
    from aggregator.quality import store as qstore
    from aggregator.quality.profile import Profiler

    spec = _guard(lambda: load_pipeline(pipeline))
    declared = _guard(lambda: _stream(spec, stream))
    columns: dict[str, dict[str, Any]] | None = None
    title = f"{stream}: profile"
    if not live:
        stored = qstore.latest_profile(_store(), spec.name, stream, run)
        if stored is not None and stored.columns:
            columns, title = stored.columns, f"{stream}: profile of run {stored.run_id[:8]}"
    if columns is None:
        with duckdb.connect() as con:
            profiler = Profiler(con)

            def scan() -> None:
                for batch in _table_batches(spec, declared.table or stream):
                    profiler.update(pa.Table.from_batches([batch]))

            _guard(scan)
            columns, title = profiler.to_json(), f"{stream}: profile of the destination table"
    if as_json:
        out.print_json(json.dumps(columns, default=str))
    else:
        out.print(profile_table(columns, title))


def check_data(
    pipeline: PipelineArg,
    stream: StreamOpt,
    table: Annotated[str | None, typer.Option(help="Table (default: the stream's).")] = None,
) -> None:
    """Run a stream's checks on its existing destination table; exit 1 when any fails."""
    from aggregator.pipeline.spec import load_pipeline
    from aggregator.transform.processor import QualityProcessor

    spec = _guard(lambda: load_pipeline(pipeline))
    declared = _guard(lambda: _stream(spec, stream))
    checks_only = declared.model_copy(update={"transforms": [], "anomalies": None})
    processor = _guard(lambda: QualityProcessor(spec, checks_only))
    for check in processor.row_checks:
        check.cfg = check.cfg.model_copy(update={"severity": "warn"})
    name = table or declared.table or stream

    def scan() -> None:  # streams the table batch by batch (bounded memory)
        for batch in _table_batches(spec, name):
            processor.process(batch)

    _guard(scan)
    with suppress(AggregatorError):
        processor.finish()
    results = processor.results
    out.print(results_table(results, f"{stream}: checks on {name}"))
    if any(r.failed for r in results):
        raise typer.Exit(1)


def results_table(results: list[Any], title: str) -> Table:
    """Check results (live ``CheckResult`` or stored ``QualityResult``)."""
    table = Table(title=title, title_justify="left")
    for head in ("check", "severity", "status", "failed", "checked", "detail"):
        table.add_column(head, overflow="fold")
    for r in results:
        status = r.status
        color = {"passed": "green", "warned": "yellow"}.get(status, "red")
        samples = ", ".join(_short(v, 16) for v in (r.samples or []))
        detail = (r.detail or "") + (f" (e.g. {samples})" if samples else "")
        table.add_row(
            r.check.split(": ", 1)[-1] if r.check.startswith("stream ") else r.check,
            r.severity,
            f"[{color}]{status}[/{color}]",
            str(r.failed),
            str(r.checked),
            detail,
        )
    return table


def result_json(r: Any) -> dict[str, Any]:
    """A check result as JSON."""
    keys = ("check", "kind", "column", "severity", "status", "checked", "failed", "detail")
    return {k: getattr(r, k) for k in keys} | {"samples": r.samples}


def runs_quality(
    run_id: Annotated[str, typer.Argument(help="Run id (a unique prefix is enough).")],
    as_json: JsonOpt = False,
) -> None:
    """Check results and anomalies recorded with a run."""
    from aggregator.quality import store as qstore

    results = qstore.run_results(_store(), run_id)
    if as_json:
        out.print_json(json.dumps([result_json(r) for r in results], default=str))
        return
    if not results:
        out.print(f"no quality results for run {run_id!r}")
        return
    out.print(results_table(results, f"run {run_id[:8]}: data quality"))


def run_quality_json(run_id: str) -> dict[str, Any]:
    """Check results and stream profiles of a run, for ``runs show --json``."""
    from aggregator.quality import store as qstore

    store = _store()
    return {
        "quality": [result_json(r) for r in qstore.run_results(store, run_id)],
        "profiles": {
            p.stream: {
                "rows_in": p.rows_in,
                "rows_out": p.rows_out,
                "rows_rejected": p.rows_rejected,
                "rows_dropped": p.rows_dropped,
                "columns": p.columns,
            }
            for p in qstore.run_profiles(store, run_id)
        },
    }


def print_run_quality(run_id: str) -> None:
    """The check results and column profiles stored with a run (for ``runs show``)."""
    from aggregator.quality import store as qstore

    store = _store()
    results = qstore.run_results(store, run_id)
    if results:
        out.print(results_table(results, "data quality"))
    for p in qstore.run_profiles(store, run_id):
        if p.columns:
            out.print(profile_table(p.columns, f"{p.stream}: profile"))


def register(app: typer.Typer) -> None:
    """Add ``transform preview``, ``profile``, ``check-data`` and ``runs quality``."""
    transform_app = typer.Typer(help="Transform steps.", no_args_is_help=True)
    transform_app.command("preview")(preview)
    app.add_typer(transform_app, name="transform")
    app.command("profile")(profile)
    app.command("check-data")(check_data)
    for group in app.registered_groups:
        if group.name == "runs" and group.typer_instance is not None:
            group.typer_instance.command("quality")(runs_quality)
