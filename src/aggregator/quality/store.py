"""Reads and writes of quality results and profiles in the metadata store."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from sqlalchemy import select

from aggregator.metadata.models import Base
from aggregator.metadata.quality_models import QualityResult, StreamProfile
from aggregator.metadata.store import MetadataStore
from aggregator.quality.checks import CheckResult
from aggregator.quality.metrics import StreamMetrics

_READY: set[int] = set()
_LOCK = threading.Lock()


def ensure_tables(store: MetadataStore) -> None:
    """Create the quality tables if the store was created before they were imported."""
    with _LOCK:
        if id(store.engine) not in _READY:
            tables = [QualityResult.__table__, StreamProfile.__table__]
            Base.metadata.create_all(store.engine, tables=tables, checkfirst=True)  # type: ignore[arg-type]
            _READY.add(id(store.engine))


def save_stream(
    store: MetadataStore,
    run_id: str,
    pipeline: str,
    stream: str,
    metrics: StreamMetrics,
    results: list[CheckResult],
) -> None:
    """Store a stream's metrics, profile and check results for a run."""
    ensure_tables(store)
    now = datetime.now(UTC)
    with store.session() as s, s.begin():
        s.add(
            StreamProfile(
                run_id=run_id,
                pipeline=pipeline,
                stream=stream,
                rows_in=metrics.rows_in,
                rows_out=metrics.rows_out,
                rows_rejected=metrics.rows_rejected,
                rows_dropped=metrics.rows_dropped,
                seconds=metrics.seconds,
                freshness_seconds=metrics.freshness_seconds,
                columns=metrics.columns,
                created_at=now,
            )
        )
        for r in results:
            s.add(
                QualityResult(
                    run_id=run_id,
                    pipeline=pipeline,
                    stream=stream,
                    check=r.check,
                    kind=r.kind,
                    column=r.column,
                    severity=r.severity,
                    status=r.status,
                    checked=r.checked,
                    failed=r.failed,
                    detail=r.detail,
                    samples=[
                        v if isinstance(v, int | float | str | None) else str(v) for v in r.samples
                    ],
                    created_at=now,
                )
            )


def history(
    store: MetadataStore, pipeline: str, stream: str, limit: int = 30
) -> list[StreamProfile]:
    """Earlier metrics of a stream, newest first."""
    ensure_tables(store)
    with store.session() as s:
        query = (
            select(StreamProfile)
            .where(StreamProfile.pipeline == pipeline, StreamProfile.stream == stream)
            .order_by(StreamProfile.created_at.desc(), StreamProfile.id.desc())
            .limit(limit)
        )
        return list(s.scalars(query))


def latest_profile(
    store: MetadataStore, pipeline: str, stream: str, run_id: str | None = None
) -> StreamProfile | None:
    """The newest stored profile of a stream (optionally of one run)."""
    ensure_tables(store)
    with store.session() as s:
        query = select(StreamProfile).where(
            StreamProfile.pipeline == pipeline,
            StreamProfile.stream == stream,
            StreamProfile.columns.is_not(None),
        )
        if run_id:
            query = query.where(StreamProfile.run_id.startswith(run_id))
        query = query.order_by(StreamProfile.created_at.desc(), StreamProfile.id.desc()).limit(1)
        return s.scalars(query).first()


def run_results(store: MetadataStore, run_id: str) -> list[QualityResult]:
    """Every check result of a run (id or unique prefix)."""
    ensure_tables(store)
    with store.session() as s:
        query = (
            select(QualityResult)
            .where(QualityResult.run_id.startswith(run_id))
            .order_by(QualityResult.stream, QualityResult.id)
        )
        return list(s.scalars(query))


def run_profiles(store: MetadataStore, run_id: str) -> list[StreamProfile]:
    """Every stream's metrics (and profile, when one was taken) stored with a run."""
    ensure_tables(store)
    with store.session() as s:
        query = (
            select(StreamProfile)
            .where(StreamProfile.run_id.startswith(run_id))
            .order_by(StreamProfile.stream, StreamProfile.id)
        )
        return list(s.scalars(query))
