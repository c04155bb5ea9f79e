"""Runs triggered through the API execute in a background thread with the local engine.

Each API run has a :class:`RunControl` row (workspace, pipeline version, who, cancel
request). Cancelling sets the request in the database and, when this process executes the
run, the engine's cancel event at once; otherwise the executing process notices the
request within :data:`CANCEL_POLL_SECONDS` (so any uvicorn worker can cancel any run). The
engine stops at the next batch boundary: committed checkpoints stay, the rest is rolled
back, and the run ends ``cancelled``.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from aggregator.api.errors import ApiError
from aggregator.api.platform import Platform
from aggregator.api.services.run_log import RunRecorder
from aggregator.engines.local import LocalEngine
from aggregator.metadata.control_models import Pipeline
from aggregator.metadata.lineage_models import RunControl, RunProgress
from aggregator.metadata.models import Run
from aggregator.metadata.store import MetadataStore, RunRecord
from aggregator.pipeline.spec import PipelineSpec

log = structlog.get_logger(__name__)
_STARTED_WAIT = 30.0
CANCEL_POLL_SECONDS = 0.5
_engines: dict[str, LocalEngine] = {}  # run id -> engine, for runs executing in this process
_engines_lock = threading.Lock()


@dataclass(frozen=True)
class Origin:
    """Where an API run comes from: recorded in its :class:`RunControl` row."""

    workspace_id: str
    pipeline_id: str
    pipeline_version: int
    actor: str


def trigger(
    platform: Platform,
    spec: PipelineSpec,
    full_refresh: bool,
    streams: list[str] | None,
    origin: Origin | None = None,
) -> str:
    """Start a run; returns its id. One run per pipeline at a time (409 otherwise)."""
    with platform.lock:
        if spec.name in platform.running:
            raise ApiError(409, "run_in_progress", "this pipeline is already running")
        platform.running[spec.name] = "starting"
    run_id = str(uuid.uuid4())
    try:
        if origin is not None:
            _record_origin(platform.store, run_id, origin)
        recorder = RunRecorder(platform.store, run_id)
        hook = platform.webhooks.on_run_finished if platform.webhooks is not None else None
        engine = LocalEngine(platform.store, recorder, on_finished=hook)  # alerts, webhooks
    except BaseException:
        with platform.lock:
            platform.running.pop(spec.name, None)
        raise
    with _engines_lock:
        _engines[run_id] = engine
    done = threading.Event()

    def execute() -> RunRecord:
        watcher = threading.Thread(
            target=_watch_cancel, args=(platform.store, run_id, engine, done), daemon=True
        )
        watcher.start()
        try:
            record = engine.run(spec, full_refresh=full_refresh, streams=streams, run_id=run_id)
            ended = f"run {record.status} in {record.seconds:.3f} s"
            level = "info" if record.status == "succeeded" else "error"
            recorder.log(None, level, f"{ended}: {record.error}" if record.error else ended)
            return record
        finally:
            done.set()
            recorder.close()
            with _engines_lock:
                _engines.pop(run_id, None)
            with platform.lock:
                platform.running.pop(spec.name, None)

    future: Future[RunRecord] = platform.runs.submit(execute)
    future.add_done_callback(lambda f: recorder.started.set())
    recorder.started.wait(_STARTED_WAIT)
    if recorder.started.is_set():
        if future.done() and future.exception() is not None:
            raise ApiError(500, "run_failed", "the run could not start; see the server log")
        return run_id
    raise ApiError(503, "run_not_started", "the run did not start in time; see the run list")


def _record_origin(store: MetadataStore, run_id: str, origin: Origin) -> None:
    with store.session() as s, s.begin():
        s.add(
            RunControl(
                run_id=run_id,
                workspace_id=origin.workspace_id,
                pipeline_id=origin.pipeline_id,
                pipeline_version=origin.pipeline_version,
                triggered_by=origin.actor,
                created_at=datetime.now(UTC),
            )
        )


def _watch_cancel(
    store: MetadataStore, run_id: str, engine: LocalEngine, done: threading.Event
) -> None:
    """Poll the run's cancel request (set by any API process) until the run ends."""
    while not done.wait(CANCEL_POLL_SECONDS):
        try:
            with store.session() as s:
                requested = s.scalar(
                    select(RunControl.cancel_requested_at).where(RunControl.run_id == run_id)
                )
        except Exception as exc:  # a metadata hiccup must not end the run
            log.warning("run.cancel_poll_failed", run_id=run_id, error=str(exc))
            continue
        if requested is not None:
            engine.cancel()
            return


def cancel(s: Session, workspace_id: str, run_id: str, actor: str) -> RunRecord:
    """Request cancellation of a running API run of the workspace (409 when not running)."""
    run = _workspace_run(s, workspace_id, run_id)
    if run.status != "running":
        raise ApiError(409, "not_running", f"the run is {run.status}, not running")
    control = s.get(RunControl, run.id)
    if control is None:
        raise ApiError(409, "not_cancellable", "the run was not started through the API")
    if control.cancel_requested_at is None:
        control.cancel_requested_at = datetime.now(UTC)
        control.cancel_requested_by = actor
    s.flush()
    with _engines_lock:
        engine = _engines.get(run.id)
    if engine is not None:
        engine.cancel()
    return MetadataStore._record(run)


def workspace_pipelines(s: Session, workspace_id: str) -> list[str]:
    """Names of the workspace's pipelines (runs are keyed by pipeline name)."""
    return list(s.scalars(select(Pipeline.name).where(Pipeline.workspace_id == workspace_id)))


def list_runs(
    s: Session, workspace_id: str, pipeline: str | None, status: str | None, limit: int
) -> list[RunRecord]:
    """Recent runs of the workspace's pipelines, newest first."""
    names = workspace_pipelines(s, workspace_id)
    if pipeline is not None:
        names = [n for n in names if n == pipeline]
    query = (
        select(Run)
        .options(selectinload(Run.streams))
        .where(Run.pipeline.in_(names))
        .order_by(Run.started_at.desc())
        .limit(limit)
    )
    if status is not None:
        query = query.where(Run.status == status)
    return [MetadataStore._record(r) for r in s.scalars(query)]


def _workspace_run(s: Session, workspace_id: str, run_id: str) -> Run:
    run = s.get(Run, run_id, options=[selectinload(Run.streams)]) if len(run_id) == 36 else None
    if run is None or run.pipeline not in workspace_pipelines(s, workspace_id):
        raise ApiError(404, "not_found", "no such run")
    return run


def get_run(platform: Platform, s: Session, workspace_id: str, run_id: str) -> RunRecord:
    """A run of the workspace, or 404."""
    return MetadataStore._record(_workspace_run(s, workspace_id, run_id))


def public(record: RunRecord) -> dict[str, Any]:
    """The API shape of a run."""
    data = record.to_json()
    for stream in data["streams"]:
        stream.setdefault("rows_per_second", 0.0)
    return data


def stream_metrics(s: Session, record: RunRecord) -> list[dict[str, Any]]:
    """Per-stream numbers: final ones of a finished run, live ones while it runs."""
    if record.status != "running" or record.streams:
        return list(public(record)["streams"])
    now = datetime.now(UTC)
    rows = s.scalars(
        select(RunProgress).where(RunProgress.run_id == record.id).order_by(RunProgress.stream)
    )
    out = []
    for p in rows:
        started = p.started_at if p.started_at.tzinfo else p.started_at.replace(tzinfo=UTC)
        seconds = max((now - started).total_seconds(), 0.0)
        out.append(
            {
                "name": p.stream,
                "status": "running",
                "rows_read": p.rows_read,
                "rows_loaded": p.rows_loaded,
                "rows_quarantined": 0,
                "bytes": 0,
                "seconds": round(seconds, 3),
                "rows_per_second": round(p.rows_read / seconds, 1) if seconds > 0 else 0.0,
                "error": None,
            }
        )
    return out
