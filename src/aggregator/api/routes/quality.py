"""Data-quality results and stream profiles, as stored by the quality service (read-only)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import select

from aggregator.api.deps import PlatformDep, SessionDep, requires
from aggregator.api.errors import ApiError
from aggregator.api.schemas import Timestamp
from aggregator.api.services import pipelines as pipelines_svc
from aggregator.api.services import runs as runs_svc
from aggregator.metadata.quality_models import QualityResult, StreamProfile
from aggregator.security.identity import Principal
from aggregator.security.rbac import Permission as P

router = APIRouter(tags=["quality"])
PipelineReader = Annotated[Principal, requires(P.PIPELINES_READ)]


class QualityResultPublic(BaseModel):
    """The outcome of one check for a stream in a run."""

    run_id: str
    stream: str
    check: str
    kind: str
    column: str | None
    severity: str
    status: str
    checked: int
    failed: int
    detail: str | None
    samples: list[Any] | None
    created_at: Timestamp


class StreamProfilePublic(BaseModel):
    """A stream's processing metrics in a run, with column profiles when profiling is on."""

    run_id: str
    stream: str
    rows_in: int
    rows_out: int
    rows_rejected: int
    rows_dropped: int
    seconds: float
    freshness_seconds: float | None
    columns: dict[str, Any] | None
    created_at: Timestamp


def _result(r: QualityResult) -> QualityResultPublic:
    return QualityResultPublic.model_validate(r, from_attributes=True)


def _profile(p: StreamProfile) -> StreamProfilePublic:
    return StreamProfilePublic.model_validate(p, from_attributes=True)


@router.get("/runs/{run_id}/quality")
def run_quality(
    run_id: str,
    platform: PlatformDep,
    s: SessionDep,
    who: Annotated[Principal, requires(P.RUNS_READ)],
) -> list[QualityResultPublic]:
    """Every check result of a run, by stream."""
    record = runs_svc.get_run(platform, s, who.workspace_id, run_id)
    query = (
        select(QualityResult)
        .where(QualityResult.run_id == record.id)
        .order_by(QualityResult.stream, QualityResult.id)
    )
    return [_result(r) for r in s.scalars(query)]


@router.get("/pipelines/{pipeline_id}/quality")
def pipeline_quality(
    pipeline_id: str,
    s: SessionDep,
    who: PipelineReader,
    stream: Annotated[str | None, Query(max_length=200)] = None,
    status: Literal["passed", "warned", "quarantined", "failed"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[QualityResultPublic]:
    """Recent check results of a pipeline, newest first."""
    row = pipelines_svc.get(s, who.workspace_id, pipeline_id)
    query = select(QualityResult).where(QualityResult.pipeline == row.name)
    if stream is not None:
        query = query.where(QualityResult.stream == stream)
    if status is not None:
        query = query.where(QualityResult.status == status)
    query = query.order_by(QualityResult.created_at.desc(), QualityResult.id.desc()).limit(limit)
    return [_result(r) for r in s.scalars(query)]


@router.get("/pipelines/{pipeline_id}/streams/{stream}/profiles")
def stream_profiles(
    pipeline_id: str,
    stream: str,
    s: SessionDep,
    who: PipelineReader,
    limit: Annotated[int, Query(ge=1, le=500)] = 30,
) -> list[StreamProfilePublic]:
    """A stream's metrics (and column profiles) per run, newest first."""
    row = pipelines_svc.get(s, who.workspace_id, pipeline_id)
    query = (
        select(StreamProfile)
        .where(StreamProfile.pipeline == row.name, StreamProfile.stream == stream)
        .order_by(StreamProfile.created_at.desc(), StreamProfile.id.desc())
        .limit(limit)
    )
    return [_profile(p) for p in s.scalars(query)]


@router.get("/pipelines/{pipeline_id}/streams/{stream}/profile")
def stream_profile(
    pipeline_id: str, stream: str, s: SessionDep, who: PipelineReader
) -> StreamProfilePublic:
    """The newest column profile of a stream (404 when the stream is not profiled)."""
    row = pipelines_svc.get(s, who.workspace_id, pipeline_id)
    query = (
        select(StreamProfile)
        .where(
            StreamProfile.pipeline == row.name,
            StreamProfile.stream == stream,
            StreamProfile.columns.is_not(None),
        )
        .order_by(StreamProfile.created_at.desc(), StreamProfile.id.desc())
        .limit(1)
    )
    found = s.scalars(query).first()
    if found is None:
        raise ApiError(404, "not_found", f"no profile of stream {stream!r} yet")
    return _profile(found)
