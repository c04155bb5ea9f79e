"""Lineage of stored pipelines and runs, read from the metadata store."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aggregator.api.errors import ApiError
from aggregator.api.services import lineage
from aggregator.api.services import pipelines as pipelines_svc
from aggregator.metadata.control_models import Pipeline, PipelineVersion
from aggregator.metadata.lineage_models import RunControl
from aggregator.metadata.models import SchemaVersion


def redacted_spec(s: Session, row: Pipeline, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    """The spec with connection references replaced by their redacted configs."""
    resolved: dict[str, Any] = pipelines_svc._resolve(
        s, None, row.workspace_id, spec if spec is not None else row.spec, check_inline=False
    )
    return resolved


def latest_columns(s: Session, pipeline: str) -> dict[str, list[dict[str, Any]]]:
    """``table -> columns`` of the newest schema version of each table of ``pipeline``."""
    newest = (
        select(SchemaVersion.stream, func.max(SchemaVersion.version).label("v"))
        .where(SchemaVersion.pipeline == pipeline)
        .group_by(SchemaVersion.stream)
        .subquery()
    )
    rows = s.execute(
        select(SchemaVersion.stream, SchemaVersion.columns)
        .join(
            newest,
            (SchemaVersion.stream == newest.c.stream) & (SchemaVersion.version == newest.c.v),
        )
        .where(SchemaVersion.pipeline == pipeline)
    )
    return {table: list(columns) for table, columns in rows}


def of_pipeline(
    s: Session, row: Pipeline, spec: dict[str, Any] | None = None
) -> tuple[list[lineage.StreamLineage], dict[str, list[dict[str, Any]]]]:
    """Stream lineage of a pipeline (at ``spec``, default: current) and dataset schemas."""
    columns = latest_columns(s, row.name)
    names = {t: [str(c["name"]) for c in cols] for t, cols in columns.items()}
    streams = lineage.pipeline_lineage(row.name, redacted_spec(s, row, spec), names)
    schemas = {}
    for item in streams:
        table = item.destination.name.rsplit(".", 1)[-1]
        if table in columns:
            schemas[item.destination.key] = columns[table]
    return streams, schemas


def of_workspace(s: Session, workspace_id: str) -> dict[str, list[lineage.StreamLineage]]:
    """``pipeline id -> stream lineage`` of every pipeline of the workspace (broken
    connection references are skipped)."""
    out: dict[str, list[lineage.StreamLineage]] = {}
    rows = s.scalars(
        select(Pipeline).where(Pipeline.workspace_id == workspace_id).order_by(Pipeline.name)
    )
    for row in rows:
        try:
            out[row.id] = of_pipeline(s, row)[0]
        except ApiError:
            continue
    return out


def spec_of_run(s: Session, row: Pipeline, run_id: str) -> dict[str, Any] | None:
    """The spec version an API run used (``None``: the run did not come through the API)."""
    control = s.get(RunControl, run_id)
    if control is None or control.pipeline_id != row.id:
        return None
    version = s.scalar(
        select(PipelineVersion.spec).where(
            PipelineVersion.pipeline_id == row.id,
            PipelineVersion.version == control.pipeline_version,
        )
    )
    return dict(version) if version is not None else None
