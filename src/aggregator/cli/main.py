"""``aggregator``: run and inspect pipelines from the command line.

Exit codes: 0 success, 1 a run or check failed, 2 usage or configuration error.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console

from aggregator import __version__
from aggregator.cli.commands import register_all
from aggregator.core.errors import AggregatorError

# Start-up time: a command imports what it uses (pyarrow, SQLAlchemy, the engine, connectors)
# inside its function, so ``--help`` and light commands do not pay for the others.
# tests/unit/test_startup.py lists what importing this module must not load.
if TYPE_CHECKING:
    from aggregator.engines.follow import Follow
    from aggregator.engines.local import LocalEngine
    from aggregator.engines.observer import RunObserver
    from aggregator.metadata.store import MetadataStore
    from aggregator.pipeline.spec import PipelineSpec

app = typer.Typer(
    name="aggregator",
    help="Move data exactly: sources to destinations as Arrow batches, resumable, typed.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
connectors_app = typer.Typer(help="Installed connectors.", no_args_is_help=True)
runs_app = typer.Typer(help="Past runs.", no_args_is_help=True)
state_app = typer.Typer(help="Saved stream state (cursors, files done).", no_args_is_help=True)
app.add_typer(connectors_app, name="connectors")
app.add_typer(runs_app, name="runs")
app.add_typer(state_app, name="state")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")

PipelineArg = Annotated[Path, typer.Argument(help="Pipeline YAML file.", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


_verbose = False


def _guard(fn: Callable[[], T]) -> T:
    """Turn errors into a message on stderr: exit 2 for configuration errors, 1 otherwise.

    A traceback is shown only with ``--verbose``.
    """
    try:
        return fn()
    except AggregatorError as exc:
        err.print(f"[red]error:[/red] {exc.message}", highlight=False, markup=True)
        raise typer.Exit(2) from None
    except Exception as exc:
        if _verbose:
            err.print_exception()
        hint = "" if _verbose else " (run with -v for the traceback)"
        err.print(f"[red]internal error:[/red] {type(exc).__name__}: {exc}{hint}", highlight=False)
        raise typer.Exit(1) from None


def _load(path: Path) -> PipelineSpec:
    from aggregator.pipeline.spec import load_pipeline

    return _guard(lambda: load_pipeline(path))


def _store() -> MetadataStore:
    from aggregator.metadata.store import MetadataStore
    from aggregator.settings import load_settings

    return MetadataStore(load_settings().metadata_database_url())


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at info level.")] = False,
) -> None:
    from pydantic import ValidationError

    from aggregator.observability.logging import configure_logging
    from aggregator.settings import load_settings

    global _verbose
    _verbose = verbose
    try:
        settings = load_settings()
    except ValidationError as exc:
        problems = "; ".join(
            (f"AGGREGATOR_{'_'.join(map(str, e['loc'])).upper()}: " if e["loc"] else "")
            + e["msg"].removeprefix("Value error, ")
            for e in exc.errors()
        )
        err.print(f"[red]error:[/red] invalid settings: {problems}", highlight=False)
        raise typer.Exit(2) from None
    level = "info" if verbose else settings.log_level
    configure_logging(level, settings.log_format)


@app.command()
def version() -> None:
    """Print the version."""
    out.print(__version__)


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Where to create the project.")] = Path(),
) -> None:
    """Create a project with an example pipeline and sample data."""
    from aggregator.cli.scaffold import scaffold_project

    created = _guard(lambda: scaffold_project(directory))
    for path in created:
        out.print(f"created {path}")
    out.print(f"\nnext: aggregator run {directory / 'pipeline.yml'}")


@connectors_app.command("list")
def connectors_list(as_json: JsonOpt = False) -> None:
    """List installed sources and destinations."""
    from rich.table import Table

    from aggregator.connectors import registry

    found = registry.all_connectors()
    if as_json:
        _print_json(
            [
                {"name": c.name, "kind": c.kind, "package": c.package, "description": c.description}
                for c in found
            ]
        )
        return
    table = Table(title="connectors")
    for column in ("name", "kind", "package", "description"):
        table.add_column(column)
    for c in found:
        table.add_row(c.name, c.kind, c.package, c.description)
    out.print(table)


@connectors_app.command("spec")
def connectors_spec(
    name: Annotated[str, typer.Argument(help="Connector name.")],
    kind: Annotated[str | None, typer.Option(help="source or destination.")] = None,
) -> None:
    """Print a connector's configuration JSON Schema."""
    from aggregator.connectors import registry

    info = _guard(lambda: registry.get(name, kind))
    _print_json(info.cls.spec())


@app.command()
def check(pipeline: PipelineArg, as_json: JsonOpt = False) -> None:
    """Check that every source and the destination of a pipeline can be reached."""
    from aggregator.connectors import registry

    spec = _load(pipeline)

    def run_checks() -> list[dict[str, Any]]:
        results = []
        for i, s in enumerate(spec.sources):
            source = registry.source_class(s.type).from_config(s.config, f"sources.{i}.config")
            r = source.check()
            results.append({"name": s.name, "kind": "source", "ok": r.ok, "message": r.message})
        dest_cls = registry.destination_class(spec.destination.type)
        r = dest_cls.from_config(spec.destination.config, "destination.config").check()
        results.append(
            {"name": "destination", "kind": "destination", "ok": r.ok, "message": r.message}
        )
        return results

    results = _guard(run_checks)
    if as_json:
        _print_json(results)
    else:
        for r in results:
            mark = "[green]ok[/green]" if r["ok"] else "[red]FAILED[/red]"
            out.print(f"{mark} {r['kind']} {r['name']}: {r['message']}")
    if not all(r["ok"] for r in results):
        raise typer.Exit(1)


@app.command()
def discover(
    pipeline: PipelineArg,
    source: Annotated[str | None, typer.Option(help="Only this source (by name).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the streams, columns, keys and cursor candidates of the pipeline's sources."""
    from rich.table import Table

    from aggregator.connectors import registry

    spec = _load(pipeline)

    def run_discover() -> dict[str, Any]:
        catalogs = {}
        for i, s in enumerate(spec.sources):
            if source and s.name != source:
                continue
            connector = registry.source_class(s.type).from_config(s.config, f"sources.{i}.config")
            catalogs[s.name] = connector.discover().to_json()  # type: ignore[attr-defined]
        return catalogs

    catalogs = _guard(run_discover)
    if as_json:
        _print_json(catalogs)
        return
    for source_name, catalog in catalogs.items():
        for stream in catalog["streams"]:
            table = Table(title=f"{source_name} · {stream['name']}")
            table.add_column("column")
            table.add_column("type")
            table.add_column("notes")
            for col in stream["columns"]:
                notes = []
                if col["name"] in stream["primary_key"]:
                    notes.append("primary key")
                if col["name"] in stream["cursor_candidates"]:
                    notes.append("cursor candidate")
                table.add_row(col["name"], col["type"], ", ".join(notes))
            out.print(table)


@app.command()
def run(
    pipeline: PipelineArg,
    full_refresh: Annotated[
        bool, typer.Option("--full-refresh", help="Ignore saved state; replace every table.")
    ] = False,
    stream: Annotated[
        list[str] | None, typer.Option("--stream", "-s", help="Only these streams.")
    ] = None,
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing on success.")] = False,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            "-f",
            help="Keep reading changes (CDC streams) until SIGTERM or Ctrl-C, which stop "
            "after the current commit (a second one stops at once).",
        ),
    ] = False,
    commit_interval: Annotated[
        float, typer.Option(help="With --follow: seconds between commits while changes arrive.")
    ] = 1.0,
) -> None:
    """Run a pipeline. Exit code 1 if any stream failed."""
    from aggregator.cli.render import ProgressObserver, run_table
    from aggregator.engines.follow import Follow
    from aggregator.engines.local import LocalEngine

    spec = _load(pipeline)
    store = _guard(_store)
    following = _guard(lambda: Follow(commit_interval)) if follow else None
    progress: ProgressObserver | None = None
    observer: RunObserver | None = None
    if not as_json and not quiet and err.is_terminal:
        progress = ProgressObserver(err)
        observer = progress
    engine = LocalEngine(store, observer)
    if following is not None:
        _stop_on_signals(following, engine)
    try:
        record = _in_thread_if(
            following is not None,
            lambda: engine.run(
                spec,
                full_refresh=full_refresh,
                streams=stream or None,
                spec_path=str(pipeline),
                follow=following,
            ),
        )
    except KeyboardInterrupt:
        engine.cancel()
        raise
    finally:
        if progress is not None:
            progress.stop()
    if as_json:
        _print_json(record.to_json())
    elif not quiet or record.status != "succeeded":
        out.print(run_table(record))
        if record.error:
            err.print(f"[red]error:[/red] {record.error}", highlight=False)
    if record.status != "succeeded":
        raise typer.Exit(1)


def _in_thread_if(condition: bool, call: Callable[[], T]) -> T:
    """Run ``call`` (in a thread when ``condition``, so that the main thread, which alone
    runs Python signal handlers, is never stuck in a wait a signal may not interrupt)."""
    if not condition:
        return call()
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as exc:
            outcome.append((False, exc))

    worker = threading.Thread(target=target, name="run")
    worker.start()
    while worker.is_alive():
        worker.join(0.2)
    ok, value = outcome[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


def _stop_on_signals(follow: Follow, engine: LocalEngine) -> None:
    """SIGTERM / SIGINT: stop after the current commit; a second one cancels at once."""

    def stop(signum: int, _frame: object) -> None:
        if follow.stop.is_set():
            engine.cancel()
            return
        follow.stop.set()
        err.print(f"{signal.Signals(signum).name}: stopping after the current commit")

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


@runs_app.command("list")
def runs_list(
    pipeline: Annotated[str | None, typer.Option(help="Only runs of this pipeline.")] = None,
    limit: Annotated[int, typer.Option(help="How many.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """List recent runs, newest first."""
    from aggregator.cli.render import runs_table

    records = _guard(_store).list_runs(pipeline, limit)
    if as_json:
        _print_json([r.to_json() for r in records])
    else:
        out.print(runs_table(records))


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="Run id (a unique prefix is enough).")],
    as_json: JsonOpt = False,
) -> None:
    """Show one run with per-stream metrics, data-quality results and column profiles."""
    from aggregator.cli.commands.quality import print_run_quality, run_quality_json
    from aggregator.cli.render import run_table

    record = _guard(_store).get_run(run_id)
    if record is None:
        err.print(f"[red]error:[/red] no run {run_id!r}")
        raise typer.Exit(2)
    if as_json:
        _print_json(record.to_json() | run_quality_json(record.id))
        return
    out.print(run_table(record))
    if record.error:
        out.print(f"error: {record.error}", highlight=False)
    print_run_quality(record.id)


def _session_states(spec: PipelineSpec, names: list[str] | None) -> dict[str, Any]:
    from aggregator.connectors import registry
    from aggregator.engines.local import plan

    planned = plan(spec, names)
    destination = registry.destination_class(spec.destination.type).from_config(
        spec.destination.config, "destination.config"
    )
    with destination.open(spec.name) as session:  # type: ignore[attr-defined]
        return {p.stream.name: session.read_state(p.stream.name) for p in planned}


@state_app.command("show")
def state_show(
    pipeline: PipelineArg,
    stream: Annotated[list[str] | None, typer.Option("--stream", "-s")] = None,
) -> None:
    """Print the committed state of each stream (as stored in the destination)."""
    spec = _load(pipeline)
    _print_json(_guard(lambda: _session_states(spec, stream or None)))


@state_app.command("reset")
def state_reset(
    pipeline: PipelineArg,
    stream: Annotated[list[str] | None, typer.Option("--stream", "-s")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Forget saved state, so the next run reads everything again."""
    spec = _load(pipeline)
    what = ", ".join(stream) if stream else "all streams"
    if not yes and not typer.confirm(f"Reset state of {what} in pipeline {spec.name}?"):
        raise typer.Exit(1)

    def reset() -> None:
        from aggregator.connectors import registry
        from aggregator.engines.local import plan

        destination = registry.destination_class(spec.destination.type).from_config(
            spec.destination.config, "destination.config"
        )
        with destination.open(spec.name) as session:  # type: ignore[attr-defined]
            for name in stream or [p.stream.name for p in plan(spec)]:
                session.reset_state(name)

    _guard(reset)
    out.print(f"state reset: {what}")


@app.command()
def preview(
    pipeline: PipelineArg,
    stream: Annotated[str, typer.Option("--stream", "-s", help="Stream to preview.")],
    rows: Annotated[int, typer.Option("--rows", "-n", help="How many rows.")] = 10,
    as_json: JsonOpt = False,
) -> None:
    """Show the first rows of a stream as the source yields them (nothing is written)."""
    import pyarrow as pa

    from aggregator.cli.render import arrow_table
    from aggregator.core.messages import Records
    from aggregator.engines.local import plan

    spec = _load(pipeline)

    def take() -> pa.Table:
        planned = plan(spec, [stream])[0]
        batches: list[pa.RecordBatch] = []
        count = 0
        messages = planned.source.read(planned.stream, None)
        try:
            for message in messages:
                if isinstance(message, Records) and message.batch.num_rows:
                    batches.append(message.batch.slice(0, rows - count))
                    count += batches[-1].num_rows
                    if count >= rows:
                        break
        finally:
            close = getattr(messages, "close", None)
            if close:
                close()
        if not batches:
            return pa.table({})
        tables = [pa.Table.from_batches([b]) for b in batches]
        return pa.concat_tables(tables, promote_options="permissive").slice(0, rows)

    table = _guard(take)
    if as_json:
        _print_json(table.to_pylist())
    else:
        out.print(arrow_table(table, title=f"{stream} (first {table.num_rows} rows)"))


register_all(app)

if __name__ == "__main__":  # pragma: no cover
    app()
