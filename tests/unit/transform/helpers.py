"""Build a processor for one stream from step/check dicts."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from aggregator.pipeline.spec import PipelineSpec
from aggregator.transform.processor import QualityProcessor


def processor(
    transforms: list[dict[str, Any]] | None = None,
    checks: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> QualityProcessor:
    stream = {"name": "s", "transforms": transforms or [], "checks": checks or [], **extra}
    spec = PipelineSpec.model_validate(
        {"name": "p", "sources": [{"name": "src", "type": "files", "streams": [stream]}]}
    )
    return QualityProcessor(spec, spec.sources[0].streams[0])  # type: ignore[index]


def run(
    batch: dict[str, Any] | pa.RecordBatch,
    transforms: list[dict[str, Any]] | None = None,
    checks: list[dict[str, Any]] | None = None,
) -> tuple[list[dict[str, Any]], dict[int, str]]:
    rb = batch if isinstance(batch, pa.RecordBatch) else pa.record_batch(batch)
    out = processor(transforms, checks).process(rb)
    return out.batch.to_pylist(), out.rejected
