"""Pipelines (YAML or JSON, validated, versioned) and their runs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel
from sqlalchemy import Row, Text, cast, select

from aggregator.api import cache
from aggregator.api.deps import MAX_DB_INT, PlatformDep, SessionDep, audit_context, requires
from aggregator.api.errors import ApiError
from aggregator.api.schemas import (
    PipelinePublic,
    PipelineVersionPublic,
    PipelineWrite,
    RunAccepted,
    RunCreate,
    Timestamp,
)
from aggregator.api.services import pipelines as svc
from aggregator.api.services import runs
from aggregator.metadata.control_models import Pipeline
from aggregator.security import audit
from aggregator.security.identity import Principal
from aggregator.security.rbac import Permission as P

router = APIRouter(prefix="/pipelines", tags=["pipelines"])


class _Head(BaseModel):
    """:class:`PipelinePublic` without ``spec`` (the list splices the stored JSON in)."""

    id: str
    name: str
    version: int
    created_by: str | None
    created_at: Timestamp
    updated_at: Timestamp


_HEAD_COLUMNS = (
    Pipeline.id,
    Pipeline.name,
    Pipeline.current_version,
    Pipeline.created_by,
    Pipeline.created_at,
    Pipeline.updated_at,
)
_TO_JSON = _Head.__pydantic_serializer__.to_json


def _list_item(row: Row[str, str, int, str | None, datetime, datetime, str]) -> bytes:
    """One list entry as JSON: the spec's stored JSON text is copied, never decoded (it is
    the same document ``PipelinePublic`` shows, as the metadata database stores it)."""
    pid, name, version, created_by, created_at, updated_at, spec = row
    head = _Head(
        id=pid, name=name, version=version, created_by=created_by,
        created_at=created_at, updated_at=updated_at,
    )  # fmt: skip
    rest: bytes = _TO_JSON(head)[1:]
    return b'{"spec":' + spec.encode() + b"," + rest


def _public(row: Pipeline) -> PipelinePublic:
    return PipelinePublic(
        id=row.id,
        name=row.name,
        version=row.current_version,
        spec=row.spec,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@router.get("", response_model=list[PipelinePublic])
def list_pipelines(
    request: Request,
    s: SessionDep,
    who: Annotated[Principal, requires(P.PIPELINES_READ)],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_DB_INT)] = 0,
) -> Response:
    """The workspace's pipelines, by name (cached in Redis when configured)."""

    def load() -> bytes:
        query = (
            select(*_HEAD_COLUMNS, cast(Pipeline.spec, Text))
            .where(Pipeline.workspace_id == who.workspace_id)
            .order_by(Pipeline.name)
            .limit(max(1, min(limit, 500)))
            .offset(max(0, offset))
        )
        return b"[" + b",".join(_list_item(row) for row in s.execute(query)) + b"]"

    scope = cache.pipelines_scope(who.workspace_id)
    body = cache.get_cache(request).get_or_load(scope, f"list:{limit}:{offset}", load)
    return Response(body, media_type="application/json")


@router.post("", status_code=201)
def create_pipeline(
    body: PipelineWrite,
    request: Request,
    platform: PlatformDep,
    s: SessionDep,
    who: Annotated[Principal, requires(P.PIPELINES_WRITE)],
) -> PipelinePublic:
    """Create a pipeline from a JSON spec or YAML text (validated like the CLI does)."""
    ctx = audit_context(request, platform, who)
    row = svc.create(s, platform.box, ctx, who.user_id, body)
    cache.get_cache(request).invalidate(cache.pipelines_scope(who.workspace_id))
    return _public(row)


@router.get("/{pipeline_id}")
def get_pipeline(
    pipeline_id: str, s: SessionDep, who: Annotated[Principal, requires(P.PIPELINES_READ)]
) -> PipelinePublic:
    """One pipeline at its current version."""
    return _public(svc.get(s, who.workspace_id, pipeline_id))


@router.put("/{pipeline_id}")
def update_pipeline(
    pipeline_id: str,
    body: PipelineWrite,
    request: Request,
    platform: PlatformDep,
    s: SessionDep,
    who: Annotated[Principal, requires(P.PIPELINES_WRITE)],
) -> PipelinePublic:
    """Replace the spec; the previous one stays as a version."""
    row = svc.get(s, who.workspace_id, pipeline_id)
    ctx = audit_context(request, platform, who)
    row = svc.update(s, platform.box, ctx, who.user_id, row, body)
    cache.get_cache(request).invalidate(cache.pipelines_scope(who.workspace_id))
    return _public(row)


@router.delete("/{pipeline_id}", status_code=204)
def delete_pipeline(
    pipeline_id: str,
    request: Request,
    platform: PlatformDep,
    s: SessionDep,
    who: Annotated[Principal, requires(P.PIPELINES_WRITE)],
) -> Response:
    """Delete a pipeline and its versions (runs and the audit log remain)."""
    row = svc.get(s, who.workspace_id, pipeline_id)
    svc.delete(s, audit_context(request, platform, who), row)
    cache.get_cache(request).invalidate(cache.pipelines_scope(who.workspace_id))
    return Response(status_code=204)


@router.get("/{pipeline_id}/versions")
def list_versions(
    pipeline_id: str, s: SessionDep, who: Annotated[Principal, requires(P.PIPELINES_READ)]
) -> list[PipelineVersionPublic]:
    """Every version: what, who and when."""
    row = svc.get(s, who.workspace_id, pipeline_id)
    return [
        PipelineVersionPublic.model_validate(v, from_attributes=True) for v in svc.versions(s, row)
    ]


@router.get("/{pipeline_id}/versions/{version}")
def get_version(
    pipeline_id: str,
    version: Annotated[int, Path(ge=1, le=MAX_DB_INT)],
    s: SessionDep,
    who: Annotated[Principal, requires(P.PIPELINES_READ)],
) -> PipelineVersionPublic:
    """One version."""
    row = svc.get(s, who.workspace_id, pipeline_id)
    for v in svc.versions(s, row):
        if v.version == version:
            return PipelineVersionPublic.model_validate(v, from_attributes=True)
    raise ApiError(404, "not_found", "no such version")


@router.post("/{pipeline_id}/runs", status_code=202)
def trigger_run(
    pipeline_id: str,
    body: RunCreate,
    request: Request,
    platform: PlatformDep,
    s: SessionDep,
    who: Annotated[Principal, requires(P.RUNS_TRIGGER)],
) -> RunAccepted:
    """Start a run in the background; poll ``GET /runs/{run_id}``."""
    row = svc.get(s, who.workspace_id, pipeline_id)
    spec = svc.runnable_spec(s, platform.box, row)
    origin = runs.Origin(who.workspace_id, row.id, row.current_version, who.actor)
    run_id = runs.trigger(platform, spec, body.full_refresh, body.streams, origin)
    ctx = audit_context(request, platform, who)
    audit.append(
        s, ctx, "run.triggered", object_type="run", object_id=run_id,
        details={"pipeline": row.name, "version": row.current_version,
                 "full_refresh": body.full_refresh},
    )  # fmt: skip
    s.commit()
    return RunAccepted(run_id=run_id, status="running")
