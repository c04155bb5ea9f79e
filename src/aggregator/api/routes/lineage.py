"""Lineage: the dataset/column graph, pipeline dependencies and OpenLineage events."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from aggregator.api.deps import PlatformDep, SessionDep, requires
from aggregator.api.services import lineage, lineage_query, openlineage
from aggregator.api.services import pipelines as pipelines_svc
from aggregator.api.services import runs as runs_svc
from aggregator.metadata.control_models import Pipeline
from aggregator.metadata.models import Run
from aggregator.metadata.store import MetadataStore
from aggregator.security.identity import Principal
from aggregator.security.rbac import Permission as P

router = APIRouter(tags=["lineage"])
Reader = Annotated[Principal, requires(P.PIPELINES_READ)]


class LineageNode(BaseModel):
    """A dataset or a pipeline (job)."""

    id: str
    kind: Literal["dataset", "job"]
    namespace: str
    name: str


class LineageEdge(BaseModel):
    """Data flows from ``source`` to ``target`` for ``stream``."""

    source: str
    target: str
    stream: str


class ColumnRef(BaseModel):
    """A column of a dataset."""

    dataset: str
    column: str


class ColumnLineage(BaseModel):
    """Where an output column comes from."""

    pipeline: str
    stream: str
    dataset: str
    column: str
    transformation: str
    inputs: list[ColumnRef]


class StreamCoverage(BaseModel):
    """Whether column lineage of a stream is complete (unknown after flatten/unnest/...)."""

    pipeline: str
    stream: str
    complete: bool


class LineageGraph(BaseModel):
    """Datasets and pipelines as a graph, with column lineage where known."""

    nodes: list[LineageNode]
    edges: list[LineageEdge]
    columns: list[ColumnLineage]
    coverage: list[StreamCoverage]


class PipelineRef(BaseModel):
    """A pipeline linked through a dataset."""

    id: str
    name: str
    datasets: list[str]


class Dependencies(BaseModel):
    """Pipelines writing what this one reads (upstream) and reading what it writes."""

    pipeline: str
    upstream: list[PipelineRef]
    downstream: list[PipelineRef]


class OpenLineageRunEvent(BaseModel):
    """An OpenLineage RunEvent (https://openlineage.io/spec/2-0-2/OpenLineage.json)."""

    model_config = ConfigDict(populate_by_name=True)

    event_type: Literal["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"] = Field(
        alias="eventType"
    )
    event_time: str = Field(alias="eventTime")
    run: dict[str, Any]
    job: dict[str, Any]
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    producer: str
    schema_url: str = Field(alias="schemaURL")


def _graph(streams: dict[str, list[lineage.StreamLineage]], names: dict[str, str]) -> LineageGraph:
    nodes: dict[str, LineageNode] = {}
    edges: list[LineageEdge] = []
    columns: list[ColumnLineage] = []
    coverage: list[StreamCoverage] = []
    for pipeline_id, items in streams.items():
        job = f"job:{names[pipeline_id]}"
        nodes[job] = LineageNode(
            id=job, kind="job", namespace=openlineage.JOB_NAMESPACE, name=names[pipeline_id]
        )
        for item in items:
            for d in (item.source, item.destination):
                nodes.setdefault(
                    d.key, LineageNode(id=d.key, kind="dataset", namespace=d.namespace, name=d.name)
                )
            edges.append(LineageEdge(source=item.source.key, target=job, stream=item.stream))
            edges.append(LineageEdge(source=job, target=item.destination.key, stream=item.stream))
            coverage.append(
                StreamCoverage(pipeline=item.pipeline, stream=item.stream, complete=item.complete)
            )
            for column, inputs in item.columns.items():
                columns.append(
                    ColumnLineage(
                        pipeline=item.pipeline,
                        stream=item.stream,
                        dataset=item.destination.key,
                        column=column,
                        transformation=item.transformations.get(column, "IDENTITY"),
                        inputs=[ColumnRef(dataset=d.key, column=c) for d, c in inputs],
                    )
                )
    return LineageGraph(nodes=list(nodes.values()), edges=edges, columns=columns, coverage=coverage)


def _names(s: SessionDep, workspace_id: str) -> dict[str, str]:
    query = select(Pipeline.id, Pipeline.name).where(Pipeline.workspace_id == workspace_id)
    return {str(i): str(n) for i, n in s.execute(query).all()}


@router.get("/lineage")
def lineage_graph(
    s: SessionDep,
    who: Reader,
    pipeline_id: Annotated[str | None, Query(max_length=36)] = None,
) -> LineageGraph:
    """The workspace's lineage graph (or one pipeline's): datasets, pipelines, columns."""
    names = _names(s, who.workspace_id)
    if pipeline_id is not None:
        row = pipelines_svc.get(s, who.workspace_id, pipeline_id)
        return _graph({row.id: lineage_query.of_pipeline(s, row)[0]}, names)
    return _graph(lineage_query.of_workspace(s, who.workspace_id), names)


@router.get("/pipelines/{pipeline_id}/dependencies")
def pipeline_dependencies(pipeline_id: str, s: SessionDep, who: Reader) -> Dependencies:
    """Pipelines linked to this one through the datasets they read and write."""
    row = pipelines_svc.get(s, who.workspace_id, pipeline_id)
    everything = lineage_query.of_workspace(s, who.workspace_id)
    names = _names(s, who.workspace_id)
    mine = everything.get(row.id, [])
    reads = {i.source.key for i in mine}
    writes = {i.destination.key for i in mine}
    upstream, downstream = [], []
    for other_id, items in everything.items():
        if other_id == row.id:
            continue
        feeds = sorted(reads & {i.destination.key for i in items})
        fed = sorted(writes & {i.source.key for i in items})
        if feeds:
            upstream.append(PipelineRef(id=other_id, name=names[other_id], datasets=feeds))
        if fed:
            downstream.append(PipelineRef(id=other_id, name=names[other_id], datasets=fed))
    return Dependencies(pipeline=row.name, upstream=upstream, downstream=downstream)


def _events(s: SessionDep, workspace_id: str, run: Run) -> list[OpenLineageRunEvent]:
    row = s.scalar(
        select(Pipeline).where(Pipeline.workspace_id == workspace_id, Pipeline.name == run.pipeline)
    )
    record = MetadataStore._record(run)
    if row is None:
        return []
    spec = lineage_query.spec_of_run(s, row, run.id)
    streams, schemas = lineage_query.of_pipeline(s, row, spec)
    return [
        OpenLineageRunEvent.model_validate(e)
        for e in openlineage.run_events(record, streams, schemas)
    ]


@router.get("/runs/{run_id}/openlineage")
def run_openlineage(
    run_id: str, platform: PlatformDep, s: SessionDep, who: Reader
) -> list[OpenLineageRunEvent]:
    """The run's OpenLineage events (START, then COMPLETE/ABORT/FAIL or RUNNING)."""
    record = runs_svc.get_run(platform, s, who.workspace_id, run_id)
    run = s.get(Run, record.id)
    assert run is not None
    return _events(s, who.workspace_id, run)


@router.get("/lineage/events")
def openlineage_events(
    s: SessionDep,
    who: Reader,
    pipeline: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[OpenLineageRunEvent]:
    """OpenLineage events of the newest ``limit`` runs, oldest first (for an exporter)."""
    names = runs_svc.workspace_pipelines(s, who.workspace_id)
    if pipeline is not None:
        names = [n for n in names if n == pipeline]
    runs = list(
        s.scalars(
            select(Run).where(Run.pipeline.in_(names)).order_by(Run.started_at.desc()).limit(limit)
        )
    )
    events: list[OpenLineageRunEvent] = []
    for run in reversed(runs):
        events += _events(s, who.workspace_id, run)
    return events
