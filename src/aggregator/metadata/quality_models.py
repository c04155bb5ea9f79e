"""Metadata tables of the transformation and data-quality services (per run and stream)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from aggregator.metadata.models import Base


class QualityResult(Base):
    """The outcome of one check (or anomaly test) for a stream in a run."""

    __tablename__ = "quality_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(36), index=True)
    pipeline: Mapped[str] = mapped_column(String(200), index=True)
    stream: Mapped[str] = mapped_column(String(200))
    check: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(50))
    column: Mapped[str | None] = mapped_column(String(200))
    severity: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    checked: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    detail: Mapped[str | None] = mapped_column(Text)
    samples: Mapped[list[Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class StreamProfile(Base):
    """Column profiles and processing metrics of a stream in a run."""

    __tablename__ = "stream_profiles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(36), index=True)
    pipeline: Mapped[str] = mapped_column(String(200), index=True)
    stream: Mapped[str] = mapped_column(String(200), index=True)
    rows_in: Mapped[int] = mapped_column(Integer, default=0)
    rows_out: Mapped[int] = mapped_column(Integer, default=0)
    rows_rejected: Mapped[int] = mapped_column(Integer, default=0)
    rows_dropped: Mapped[int] = mapped_column(Integer, default=0)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    freshness_seconds: Mapped[float | None] = mapped_column(Float)
    columns: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
