"""Runs triggered through the API execute in a background thread with the local engine."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from aggregator.api.errors import ApiError
from aggregator.api.platform import Platform
from aggregator.engines.local import LocalEngine
from aggregator.engines.observer import RunObserver
from aggregator.metadata.control_models import Pipeline
from aggregator.metadata.models import Run
from aggregator.metadata.store import MetadataStore, RunRecord
from aggregator.pipeline.spec import PipelineSpec

log = structlog.get_logger(__name__)
_STARTED_WAIT = 30.0


class _Started(RunObserver):
    """Learns the run id the engine chose, as soon as the run starts."""

    def __init__(self) -> None:
        self.run_id: str | None = None
        self.event = threading.Event()

    def run_started(self, run_id: str, streams: list[str]) -> None:
        """Record the id and wake the request waiting for it."""
        self.run_id = run_id
        self.event.set()


def trigger(
    platform: Platform, spec: PipelineSpec, full_refresh: bool, streams: list[str] | None
) -> str:
    """Start a run; returns its id. One run per pipeline at a time (409 otherwise)."""
    with platform.lock:
        if spec.name in platform.running:
            raise ApiError(409, "run_in_progress", "this pipeline is already running")
        platform.running[spec.name] = "starting"
    observer = _Started()

    def execute() -> RunRecord:
        try:
            engine = LocalEngine(platform.store, observer)
            return engine.run(spec, full_refresh=full_refresh, streams=streams, spec_path=None)
        finally:
            with platform.lock:
                platform.running.pop(spec.name, None)

    future: Future[RunRecord] = platform.runs.submit(execute)
    future.add_done_callback(lambda f: observer.event.set())
    observer.event.wait(_STARTED_WAIT)
    if observer.run_id is not None:
        return observer.run_id
    if future.done():
        return future.result().id
    raise ApiError(503, "run_not_started", "the run did not start in time; see the run list")


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


def get_run(platform: Platform, s: Session, workspace_id: str, run_id: str) -> RunRecord:
    """A run of the workspace, or 404."""
    record = platform.store.get_run(run_id) if len(run_id) == 36 else None
    if record is None or record.pipeline not in workspace_pipelines(s, workspace_id):
        raise ApiError(404, "not_found", "no such run")
    return record


def public(record: RunRecord) -> dict[str, Any]:
    """The API shape of a run."""
    data = record.to_json()
    for stream in data["streams"]:
        stream.setdefault("rows_per_second", 0.0)
    return data
