"""Schemas of a pipeline's destination tables and their history (versions with diffs)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import select

from aggregator.api.deps import SessionDep, requires
from aggregator.api.schemas import Timestamp
from aggregator.api.services import datasets, lineage_query
from aggregator.api.services import pipelines as pipelines_svc
from aggregator.metadata.models import SchemaVersion
from aggregator.security.identity import Principal
from aggregator.security.rbac import Permission as P

router = APIRouter(prefix="/pipelines", tags=["schemas"])
Reader = Annotated[Principal, requires(P.PIPELINES_READ)]


class SchemaColumn(BaseModel):
    """A column: name, logical type (``decimal(12,2)``, ``timestamp[us, UTC]``...), nullability."""

    name: str
    type: str
    nullable: bool = True


class StreamSchema(BaseModel):
    """The current schema of a stream's table."""

    stream: str
    table: str
    version: int | None
    columns: list[SchemaColumn]


class SchemaVersionPublic(BaseModel):
    """One version of a table's schema and what changed from the previous one."""

    version: int
    columns: list[SchemaColumn]
    diff: dict[str, Any]
    #: what the source reported: primary_key, cursor_candidates, cursor_field, sync_mode,
    #: declared_types (source-native), estimated_rows, estimated_bytes and source specifics
    stream_metadata: dict[str, Any] | None = None
    run_id: str | None
    created_at: Timestamp


def _columns(raw: list[dict[str, Any]]) -> list[SchemaColumn]:
    return [SchemaColumn.model_validate(c) for c in raw]


@router.get("/{pipeline_id}/schemas")
def pipeline_schemas(pipeline_id: str, s: SessionDep, who: Reader) -> list[StreamSchema]:
    """Every stream with its table's newest schema (none before a first load)."""
    row = pipelines_svc.get(s, who.workspace_id, pipeline_id)
    latest = lineage_query.latest_columns(s, row.name)
    versions = dict(
        s.execute(
            select(SchemaVersion.stream, SchemaVersion.version)
            .where(SchemaVersion.pipeline == row.name)
            .order_by(SchemaVersion.version)
        ).all()
    )
    return [
        StreamSchema(
            stream=stream,
            table=table,
            version=versions.get(table),
            columns=_columns(latest.get(table, [])),
        )
        for stream, table in datasets.stream_tables(s, row).items()
    ]


@router.get("/{pipeline_id}/streams/{stream}/schemas")
def schema_history(
    pipeline_id: str, stream: str, s: SessionDep, who: Reader
) -> list[SchemaVersionPublic]:
    """Every version of the stream's table schema, oldest first, with diffs."""
    row = pipelines_svc.get(s, who.workspace_id, pipeline_id)
    table = datasets.table_of(s, row, stream)
    query = (
        select(SchemaVersion)
        .where(SchemaVersion.pipeline == row.name, SchemaVersion.stream == table)
        .order_by(SchemaVersion.version)
    )
    return [
        SchemaVersionPublic(
            version=v.version,
            columns=_columns(v.columns),
            diff=v.diff,
            stream_metadata=v.stream_metadata,
            run_id=v.run_id,
            created_at=v.created_at,
        )
        for v in s.scalars(query)
    ]
