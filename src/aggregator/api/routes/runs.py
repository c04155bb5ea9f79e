"""Runs: list, detail, cancel, logs and per-stream metrics."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from sqlalchemy import select

from aggregator.api.deps import MAX_DB_INT, PlatformDep, SessionDep, audit_context, requires
from aggregator.api.schemas import RunPublic, StreamMetrics, Timestamp
from aggregator.api.services import runs as svc
from aggregator.metadata.lineage_models import RunLogLine
from aggregator.security import audit
from aggregator.security.identity import Principal
from aggregator.security.rbac import Permission as P

router = APIRouter(prefix="/runs", tags=["runs"])
Reader = Annotated[Principal, requires(P.RUNS_READ)]
_LEVEL_RANK = {"debug": 10, "info": 20, "warning": 30, "error": 40}


class RunLogLinePublic(BaseModel):
    """One line of a run's log."""

    seq: int
    at: Timestamp
    level: str
    stream: str | None
    message: str


class RunLogPage(BaseModel):
    """A page of log lines; pass ``next_after_seq`` as ``after_seq`` for the next page."""

    run_id: str
    status: str
    lines: list[RunLogLinePublic]
    next_after_seq: int
    has_more: bool


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


@router.post("/{run_id}/cancel", status_code=202, responses={409: {}})
def cancel_run(
    run_id: str,
    request: Request,
    platform: PlatformDep,
    s: SessionDep,
    who: Annotated[Principal, requires(P.RUNS_TRIGGER)],
) -> RunPublic:
    """Ask a running run to stop at its next batch boundary (it ends ``cancelled``).

    Data committed at earlier checkpoints stays; the uncommitted rest is rolled back.
    """
    record = svc.cancel(s, who.workspace_id, run_id, who.actor)
    audit.append(
        s, audit_context(request, platform, who), "run.cancel_requested",
        object_type="run", object_id=record.id, details={"pipeline": record.pipeline},
    )  # fmt: skip
    s.commit()
    return RunPublic.model_validate(svc.public(record))


@router.get("/{run_id}/logs")
def run_logs(
    run_id: str,
    platform: PlatformDep,
    s: SessionDep,
    who: Reader,
    after_seq: Annotated[int, Query(ge=0, le=MAX_DB_INT)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    level: Literal["debug", "info", "warning", "error"] = "debug",
    stream: Annotated[str | None, Query(max_length=200)] = None,
) -> RunLogPage:
    """Log lines of a run in order, from ``after_seq`` on (at ``level`` or above)."""
    record = svc.get_run(platform, s, who.workspace_id, run_id)
    levels = [name for name, rank in _LEVEL_RANK.items() if rank >= _LEVEL_RANK[level]]
    query = (
        select(RunLogLine)
        .where(
            RunLogLine.run_id == record.id,
            RunLogLine.seq > after_seq,
            RunLogLine.level.in_(levels),
        )
        .order_by(RunLogLine.seq)
        .limit(limit + 1)
    )
    if stream is not None:
        query = query.where(RunLogLine.stream == stream)
    rows = list(s.scalars(query))
    page = rows[:limit]
    return RunLogPage(
        run_id=record.id,
        status=record.status,
        lines=[RunLogLinePublic.model_validate(r, from_attributes=True) for r in page],
        next_after_seq=page[-1].seq if page else after_seq,
        has_more=len(rows) > limit,
    )


@router.get("/{run_id}/metrics")
def run_metrics(
    run_id: str, platform: PlatformDep, s: SessionDep, who: Reader
) -> list[StreamMetrics]:
    """Per-stream rows read, loaded and quarantined, bytes, seconds and rows/s.

    While the run is going, the numbers are live (quarantine counts come at the end).
    """
    record = svc.get_run(platform, s, who.workspace_id, run_id)
    return [StreamMetrics.model_validate(x) for x in svc.stream_metrics(s, record)]
