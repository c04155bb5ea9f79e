"""Webhook ingest tables: configured ingest streams and the events they received.

An event is committed here **before** the sender gets its acknowledgement, so nothing
acknowledged is lost. ``seq`` numbers the events of one stream 1, 2, 3, ... in commit order
(allocated under the stream row's lock, see :mod:`aggregator.connectors.webhook.store`): the
``webhook`` source reads events after its saved ``seq`` and never skips a late commit.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from aggregator.metadata.models import Base

_ID = 36  # uuid4 text


class IngestStream(Base):
    """A webhook endpoint: its signing secret (encrypted at rest) and limits."""

    __tablename__ = "ingest_streams"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    secret_ciphertext: Mapped[str] = mapped_column(Text)
    signature_header: Mapped[str] = mapped_column(String(100))
    max_body_bytes: Mapped[int] = mapped_column(Integer)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    created_by: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class IngestEvent(Base):
    """One JSON event received by an ingest stream (a delivery may carry several)."""

    __tablename__ = "ingest_events"
    __table_args__ = (Index("ix_ingest_events_delivery", "stream_id", "delivery_key"),)

    stream_id: Mapped[str] = mapped_column(
        ForeignKey("ingest_streams.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    delivery_key: Mapped[str] = mapped_column(String(200))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    payload: Mapped[str] = mapped_column(Text)
