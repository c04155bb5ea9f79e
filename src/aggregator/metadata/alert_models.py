"""Alert rules and the alerts they raised.

A rule watches finished runs (of some pipelines, or all) for one condition: the run failed
or succeeded, a quality check failed, an anomaly was flagged, or the duration / rows loaded
crossed a threshold. Every match is recorded as an :class:`AlertEvent` (queryable through
the API) and, when the rule names an active webhook, sent through it (signed, retried).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from aggregator.metadata.models import Base

_ID = 36


class AlertRule(Base):
    """A condition on finished runs and the webhook that is told when it holds."""

    __tablename__ = "alert_rules"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    condition: Mapped[str] = mapped_column(String(40))
    threshold: Mapped[float | None] = mapped_column(Float)
    pipelines: Mapped[list[str] | None] = mapped_column(JSON)
    webhook_id: Mapped[str | None] = mapped_column(
        ForeignKey("webhooks.id", ondelete="SET NULL"), index=True
    )
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AlertEvent(Base):
    """One rule matching one run: what was observed and the webhook delivery, if any.

    Rows outlive their rule (``rule_id`` is not a foreign key; ``rule_name`` keeps the name).
    """

    __tablename__ = "alert_events"

    id: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"), index=True)
    rule_id: Mapped[str] = mapped_column(String(_ID), index=True)
    rule_name: Mapped[str] = mapped_column(String(100))
    condition: Mapped[str] = mapped_column(String(40))
    pipeline: Mapped[str] = mapped_column(String(200), index=True)
    run_id: Mapped[str] = mapped_column(String(_ID), index=True)
    message: Mapped[str] = mapped_column(String(1000))
    observed: Mapped[dict[str, Any]] = mapped_column(JSON)
    delivery_id: Mapped[str | None] = mapped_column(String(_ID))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
