"""Runs: list, detail and per-stream metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from aggregator.api.deps import PlatformDep, SessionDep, requires
from aggregator.api.schemas import RunPublic, StreamMetrics
from aggregator.api.services import runs as svc
from aggregator.security.identity import Principal
from aggregator.security.rbac import Permission as P

router = APIRouter(prefix="/runs", tags=["runs"])
Reader = Annotated[Principal, requires(P.RUNS_READ)]


@router.get("")
def list_runs(
    s: SessionDep,
    who: Reader,
    pipeline: Annotated[str | None, Query(max_length=200)] = None,
    status: Annotated[str | None, Query(max_length=20)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[RunPublic]:
    """Recent runs of the workspace's pipelines, newest first."""
    records = svc.list_runs(s, who.workspace_id, pipeline, status, limit)
    return [RunPublic.model_validate(svc.public(r)) for r in records]


@router.get("/{run_id}")
def get_run(run_id: str, platform: PlatformDep, s: SessionDep, who: Reader) -> RunPublic:
    """One run with its streams."""
    record = svc.get_run(platform, s, who.workspace_id, run_id)
    return RunPublic.model_validate(svc.public(record))


@router.get("/{run_id}/metrics")
def run_metrics(
    run_id: str, platform: PlatformDep, s: SessionDep, who: Reader
) -> list[StreamMetrics]:
    """Per-stream rows read, loaded and quarantined, bytes and time."""
    record = svc.get_run(platform, s, who.workspace_id, run_id)
    return [StreamMetrics.model_validate(x) for x in svc.public(record)["streams"]]
