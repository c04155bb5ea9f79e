"""Tables of API-triggered runs: who started them (and at which pipeline version), cancel
requests, the captured run log and live per-stream progress.

Lineage itself is derived from the pipeline version a run used (no table of its own).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from aggregator.metadata.models import Base

_ID = 36


class RunControl(Base):
    """A run started through the API: its workspace, pipeline version and cancel request.

    Cancellation goes through this row, so any API worker process can cancel a run that
    another worker executes (the executing process polls it).
    """

    __tablename__ = "run_controls"

    run_id: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(_ID), index=True)
    pipeline_id: Mapped[str] = mapped_column(String(_ID), index=True)
    pipeline_version: Mapped[int] = mapped_column(Integer)
    triggered_by: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    cancel_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_requested_by: Mapped[str | None] = mapped_column(String(300))


class RunLogLine(Base):
    """One line of a run's log: engine events and the sources' ``Log`` messages."""

    __tablename__ = "run_logs"
    __table_args__ = (UniqueConstraint("run_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(_ID), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    level: Mapped[str] = mapped_column(String(10))
    stream: Mapped[str | None] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(Text)


class RunProgress(Base):
    """Live counters of a stream while its run is going (final numbers: ``run_streams``)."""

    __tablename__ = "run_progress"
    __table_args__ = (UniqueConstraint("run_id", "stream"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(_ID), index=True)
    stream: Mapped[str] = mapped_column(String(200))
    rows_read: Mapped[int] = mapped_column(Integer, default=0)
    rows_loaded: Mapped[int] = mapped_column(Integer, default=0)
    rows_committed: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
