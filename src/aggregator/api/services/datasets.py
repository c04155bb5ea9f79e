"""Which streams a pipeline has and which destination table each writes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from aggregator.api.errors import ApiError
from aggregator.metadata.control_models import Pipeline
from aggregator.metadata.models import Run, RunStream, SchemaVersion


def declared_streams(spec: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """``stream -> (source name, table)`` for streams listed in a stored spec."""
    out: dict[str, tuple[str, str]] = {}
    for source in spec.get("sources") or []:
        if not isinstance(source, dict):
            continue
        for stream in source.get("streams") or []:
            if isinstance(stream, dict) and isinstance(stream.get("name"), str):
                table = stream.get("table") or stream["name"]
                out[stream["name"]] = (str(source.get("name", "")), str(table))
    return out


def stream_tables(s: Session, row: Pipeline) -> dict[str, str]:
    """``stream -> table``: declared streams, streams seen in runs and tables with schemas."""
    tables = {name: table for name, (_, table) in declared_streams(row.spec).items()}
    seen = s.scalars(select(RunStream.stream).join(Run).where(Run.pipeline == row.name).distinct())
    for name in seen:
        tables.setdefault(name, name)
    written = set(tables.values())
    for table in s.scalars(
        select(SchemaVersion.stream).where(SchemaVersion.pipeline == row.name).distinct()
    ):
        if table not in written:
            tables.setdefault(table, table)
    return dict(sorted(tables.items()))


def table_of(s: Session, row: Pipeline, stream: str) -> str:
    """The destination table of ``stream`` (404 for a stream the pipeline does not have)."""
    tables = stream_tables(s, row)
    if stream not in tables:
        raise ApiError(404, "not_found", f"pipeline {row.name!r} has no stream {stream!r}")
    return tables[stream]
