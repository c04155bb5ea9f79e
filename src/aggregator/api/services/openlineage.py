"""OpenLineage ``RunEvent`` documents for runs (spec 2-0-2).

A run yields a ``START`` event and, once finished, ``COMPLETE`` (succeeded), ``ABORT``
(cancelled) or ``FAIL`` (failed, interrupted); a run still going yields ``START`` and
``RUNNING``. Inputs and outputs are the run's streams (see :mod:`lineage`); outputs carry
the ``schema``, ``columnLineage`` and ``outputStatistics`` facets where known, a failed run
the ``errorMessage`` facet. The documents can be posted to any OpenLineage endpoint as is.
"""

from __future__ import annotations

from typing import Any

from aggregator import __version__
from aggregator.api.services.lineage import Dataset, StreamLineage
from aggregator.metadata.store import RunRecord

SPEC = "https://openlineage.io/spec"
SCHEMA_URL = f"{SPEC}/2-0-2/OpenLineage.json#/$defs/RunEvent"
PRODUCER = f"urn:aggregator:{__version__}"
JOB_NAMESPACE = "aggregator"
_TERMINAL = {"succeeded": "COMPLETE", "cancelled": "ABORT"}


def _facet(name: str, version: str, body: dict[str, Any]) -> dict[str, Any]:
    url = f"{SPEC}/facets/{version}/{name}.json#/$defs/{name}"
    return {"_producer": PRODUCER, "_schemaURL": url, **body}


def _dataset(d: Dataset, facets: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"namespace": d.namespace, "name": d.name, "facets": facets or {}}


def run_events(
    run: RunRecord, streams: list[StreamLineage], schemas: dict[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """The events of ``run``; ``schemas`` maps a destination dataset key to its columns."""
    ran = {s.name: s for s in run.streams}
    involved = [s for s in streams if not ran or s.stream in ran]
    inputs = [_dataset(s.source) for s in _unique(involved, "source")]
    job = {
        "namespace": JOB_NAMESPACE,
        "name": run.pipeline,
        "facets": {
            "jobType": _facet(
                "JobTypeJobFacet",
                "2-0-2",
                {"processingType": "BATCH", "integration": "AGGREGATOR", "jobType": "PIPELINE"},
            )
        },
    }
    start = {
        "eventType": "START",
        "eventTime": run.started_at.isoformat(),
        "run": {"runId": run.id, "facets": {}},
        "job": job,
        "inputs": inputs,
        "outputs": [_dataset(s.destination) for s in _unique(involved, "destination")],
        "producer": PRODUCER,
        "schemaURL": SCHEMA_URL,
    }
    if run.status == "running" or run.finished_at is None:
        return [start, {**start, "eventType": "RUNNING"}]
    outputs = []
    for item in _unique(involved, "destination"):
        facets: dict[str, Any] = {}
        columns = schemas.get(item.destination.key)
        if columns:
            fields = [{"name": str(c["name"]), "type": str(c["type"])} for c in columns]
            facets["schema"] = _facet("SchemaDatasetFacet", "1-1-1", {"fields": fields})
        if item.columns:
            facets["columnLineage"] = _facet(
                "ColumnLineageDatasetFacet", "1-0-1", {"fields": _column_fields(item)}
            )
        out = _dataset(item.destination, facets)
        record = ran.get(item.stream)
        if record is not None:
            out["outputFacets"] = {
                "outputStatistics": _facet(
                    "OutputStatisticsOutputDatasetFacet",
                    "1-0-2",
                    {"rowCount": record.rows_loaded, "size": record.bytes},
                )
            }
        outputs.append(out)
    end_facets: dict[str, Any] = {}
    event_type = _TERMINAL.get(run.status, "FAIL")
    if event_type == "FAIL":
        end_facets["errorMessage"] = _facet(
            "ErrorMessageRunFacet",
            "1-0-0",
            {"message": run.error or run.status, "programmingLanguage": "python"},
        )
    end = {
        **start,
        "eventType": event_type,
        "eventTime": run.finished_at.isoformat(),
        "run": {"runId": run.id, "facets": end_facets},
        "outputs": outputs,
    }
    return [start, end]


def _column_fields(item: StreamLineage) -> dict[str, Any]:
    return {
        column: {
            "inputFields": [
                {
                    "namespace": d.namespace,
                    "name": d.name,
                    "field": field,
                    "transformation": item.transformations.get(column, "IDENTITY"),
                }
                for d, field in inputs
            ]
        }
        for column, inputs in item.columns.items()
    }


def _unique(streams: list[StreamLineage], side: str) -> list[StreamLineage]:
    seen: dict[str, StreamLineage] = {}
    for s in streams:
        seen.setdefault(getattr(s, side).key, s)
    return list(seen.values())
