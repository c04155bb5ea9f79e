"""The local engine: runs a pipeline's streams concurrently in this process."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import structlog

from aggregator.connectors import registry
from aggregator.connectors.sdk import DestinationSession, Source
from aggregator.core.catalog import ConfiguredStream, SyncMode, WriteMode
from aggregator.core.errors import AggregatorError, ConfigError
from aggregator.engines.follow import Follow, FollowingSource, check_followable
from aggregator.engines.observer import RunFinished, RunObserver, notify_run_finished
from aggregator.engines.processing import StreamProcessor
from aggregator.engines.stream_task import StreamTask
from aggregator.metadata.store import MetadataStore, RunRecord, StreamRunRecord
from aggregator.pipeline.spec import PipelineSpec, SourceSpec

log = structlog.get_logger(__name__)
ProcessorFactory = Callable[[PipelineSpec, ConfiguredStream], StreamProcessor]


@dataclass(frozen=True)
class PlannedStream:
    """A stream of a source, configured for this run."""

    source: Source  # type: ignore[type-arg]
    source_name: str
    stream: ConfiguredStream


def plan(spec: PipelineSpec, only: list[str] | None = None) -> list[PlannedStream]:
    """Instantiate sources and resolve each stream's configuration."""
    planned: list[PlannedStream] = []
    for i, source_spec in enumerate(spec.sources):
        source = registry.source_class(source_spec.type).from_config(
            source_spec.config, where=f"sources.{i}.config"
        )
        assert isinstance(source, Source)
        names = _stream_names(source, source_spec)
        for stream in spec.configured_streams(source_spec, names):
            if only and stream.name not in only:
                continue
            planned.append(PlannedStream(source, source_spec.name, stream))
    if only:
        missing = set(only) - {p.stream.name for p in planned}
        if missing:
            raise ConfigError(f"no stream named {', '.join(sorted(missing))} in the pipeline")
    return planned


def close_sources(planned: list[PlannedStream]) -> None:
    """Let each source release what it keeps for a run (pooled connections)."""
    for source in {id(p.source): p.source for p in planned}.values():
        close = getattr(source, "close", None)
        if callable(close):
            try:
                close()
            except Exception:
                log.exception("source.close_failed", source=type(source).__name__)


def _stream_names(source: Source, spec: SourceSpec) -> list[str]:  # type: ignore[type-arg]
    if spec.streams is not None:
        return [s.name for s in spec.streams]
    return source.stream_names()


def _default_processors(store: MetadataStore) -> ProcessorFactory:
    """Transforms and checks from the spec; their modules (and sqlglot, DuckDB) are imported
    only when a stream of the pipeline has steps, checks, profiling or anomaly detection."""

    def build(spec: PipelineSpec, stream: ConfiguredStream) -> StreamProcessor:
        if not any(s.has_processing for source in spec.sources for s in source.streams or []):
            return StreamProcessor()
        from aggregator.transform.processor import processor_factory

        return processor_factory(store)(spec, stream)

    return build


class LocalEngine:
    """Runs pipelines in this process; streams run concurrently in threads."""

    def __init__(
        self,
        store: MetadataStore,
        observer: RunObserver | None = None,
        processors: ProcessorFactory | None = None,
        on_finished: RunFinished | None = None,
    ) -> None:
        self.store = store
        self.observer = observer or RunObserver()
        self.on_finished = on_finished or notify_run_finished  # alerts and webhooks
        self.processors = processors or _default_processors(store)
        self.cancel_event = threading.Event()

    def run(
        self,
        spec: PipelineSpec,
        *,
        full_refresh: bool = False,
        streams: list[str] | None = None,
        spec_path: str | None = None,
        run_id: str | None = None,
        follow: Follow | None = None,
    ) -> RunRecord:
        """Run the pipeline; returns the run record (status ``succeeded`` or ``failed``).

        ``full_refresh`` ignores saved state and replaces every table. With ``follow``, every
        stream reads changes continuously until ``follow.stop`` is set (see ``follow.py``).
        """
        run_id = run_id or str(uuid.uuid4())
        self.store.mark_interrupted(spec.name)
        self.store.start_run(run_id, spec.name, full_refresh, spec_path)
        record = RunRecord(
            run_id, spec.name, "running", datetime.now(UTC), full_refresh=full_refresh
        )
        planned: list[PlannedStream] = []
        try:
            planned = plan(spec, streams)
            if follow is not None:
                check_followable(planned)
            if full_refresh:
                planned = [
                    replace(p, stream=replace(p.stream, write_mode=WriteMode.REPLACE))
                    for p in planned
                ]
            destination = registry.destination_class(spec.destination.type).from_config(
                spec.destination.config, where="destination.config"
            )
            self.observer.run_started(run_id, [p.stream.name for p in planned])
            with destination.open(spec.name) as session:  # type: ignore[attr-defined]
                record.streams = self._run_streams(
                    spec, session, planned, run_id, full_refresh, follow
                )
            failed = [s for s in record.streams if s.status != "succeeded"]
            record.status = "failed" if failed else "succeeded"
            if self.cancel_event.is_set() and failed:
                record.status, record.error = "cancelled", "cancelled at a batch boundary"
            elif failed:
                record.error = "; ".join(f"{s.name}: {s.error}" for s in failed)
        except AggregatorError as exc:
            record.status = "failed"
            record.error = exc.message
        except Exception as exc:
            record.status = "failed"
            record.error = f"{type(exc).__name__}: {exc}"
            log.exception("run.crashed", run_id=run_id)
        finally:
            close_sources(planned)
        record.finished_at = datetime.now(UTC)
        self.store.finish_run(record)
        self.on_finished(self.store, record)
        return record

    def _run_streams(
        self,
        spec: PipelineSpec,
        session: DestinationSession,
        planned: list[PlannedStream],
        run_id: str,
        full_refresh: bool,
        follow: Follow | None = None,
    ) -> list[StreamRunRecord]:
        observer = self.observer if follow is None else follow.observing(self.observer)

        def run_one(p: PlannedStream) -> StreamRunRecord:
            try:
                incremental = p.stream.sync_mode is SyncMode.INCREMENTAL and not full_refresh
                state = session.read_state(p.stream.name) if incremental else None
                writer = session.writer(p.stream, run_id)
                if follow is None:
                    messages = p.source.read(p.stream, state)
                else:
                    assert isinstance(p.source, FollowingSource)
                    messages = p.source.read_following(p.stream, state, follow)
            except AggregatorError as exc:
                return self._failed(p, exc.message)
            except Exception as exc:
                return self._failed(p, f"{type(exc).__name__}: {exc}")
            task = StreamTask(
                pipeline=spec.name,
                run_id=run_id,
                stream=p.stream,
                messages=iter(messages),
                writer=writer,
                store=self.store,
                observer=observer,
                queue_size=spec.engine.queue_size,
                stop=self.cancel_event,
                make_processor=lambda: self.processors(spec, p.stream),
            )
            return task.run()

        workers = min(spec.engine.concurrency, max(1, len(planned)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="stream") as pool:
            return list(pool.map(run_one, planned))

    def _failed(self, p: PlannedStream, error: str) -> StreamRunRecord:
        log.error("stream.failed", stream=p.stream.name, error=error)
        record = StreamRunRecord(name=p.stream.name, status="failed", error=error)
        self.observer.stream_finished(record)
        return record

    def cancel(self) -> None:
        """Ask running streams to stop at the next message; nothing uncommitted is kept."""
        self.cancel_event.set()


def default_store(spec_path: Path | None = None) -> MetadataStore:
    """The metadata store configured by settings (SQLite under ``.aggregator`` by default)."""
    from aggregator.settings import load_settings

    return MetadataStore(load_settings().metadata_database_url())
