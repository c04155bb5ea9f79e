"""Data preview: a page of a stream's destination table with filter, sort and paging."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from aggregator.api.deps import MAX_DB_INT, PlatformDep, SessionDep, requires
from aggregator.api.services import datasets
from aggregator.api.services import pipelines as pipelines_svc
from aggregator.api.services import preview as svc
from aggregator.security.identity import Principal
from aggregator.security.rbac import Permission as P

router = APIRouter(prefix="/pipelines", tags=["data"])


class PreviewColumn(BaseModel):
    """A column of the previewed table, with the destination's type name."""

    name: str
    type: str


class PreviewPage(BaseModel):
    """Rows of a destination table (decimals as strings, binary as base64)."""

    pipeline: str
    stream: str
    table: str
    columns: list[PreviewColumn]
    rows: list[dict[str, Any]]
    limit: int
    offset: int
    has_more: bool
    total: int | None


@router.get("/{pipeline_id}/streams/{stream}/preview", responses={404: {}, 409: {}, 422: {}})
def preview_stream(
    pipeline_id: str,
    stream: str,
    platform: PlatformDep,
    s: SessionDep,
    who: Annotated[Principal, requires(P.DATA_READ)],
    filter: Annotated[
        str | None,
        Query(max_length=2000, description="e.g. `amount > 10 and status in ('paid','sent')`"),
    ] = None,
    sort: Annotated[
        str | None, Query(max_length=1000, description="columns, `-` for descending: `-amount,id`")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_DB_INT)] = 0,
    count: Annotated[bool, Query(description="also count the matching rows")] = False,
) -> PreviewPage:
    """A page of the stream's destination table (DuckDB, PostgreSQL and SQLite).

    Filters allow comparisons of a column with a value, AND/OR/NOT, IS [NOT] NULL,
    IN (values), [I]LIKE and BETWEEN; columns are checked against the table and values
    are bound as parameters.
    """
    row = pipelines_svc.get(s, who.workspace_id, pipeline_id)
    table = datasets.table_of(s, row, stream)
    spec = pipelines_svc.runnable_spec(s, platform.box, row)
    declared = spec.stream_spec(stream)
    key = tuple(declared.primary_key or ()) if declared is not None else ()
    request = svc.PreviewRequest(filter, sort, limit, offset, count, key)
    result = svc.preview(spec.destination, table, request)
    return PreviewPage(
        pipeline=row.name,
        stream=stream,
        table=table,
        columns=[PreviewColumn(name=n, type=t) for n, t in result.columns],
        rows=result.rows,
        limit=limit,
        offset=offset,
        has_more=result.has_more,
        total=result.total,
    )
