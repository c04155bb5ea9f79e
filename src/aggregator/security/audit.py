"""The append-only, hash-chained audit log.

Each event's hash is SHA-256 over the previous hash and the event's canonical JSON, so
changing, removing or reordering any event breaks every later hash; the ``audit_head`` row
holds the last sequence number and hash, so cutting the tail is detected too. The
database refuses UPDATE and DELETE on ``audit_events`` (triggers, see migration 0002).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from aggregator.metadata.control_models import AuditEvent, AuditHead

GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditContext:
    """Who acts, from where (filled by the API per request, or by the CLI)."""

    actor: str
    workspace_id: str | None = None
    ip: str | None = None
    request_id: str | None = None


def _canonical(event: AuditEvent) -> bytes:
    body = {
        "seq": event.seq,
        "at": event.at.astimezone(UTC).isoformat(timespec="microseconds"),
        "workspace_id": event.workspace_id,
        "actor": event.actor,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "outcome": event.outcome,
        "ip": event.ip,
        "request_id": event.request_id,
        "details": event.details,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


def _hash(prev: str, event: AuditEvent) -> str:
    return hashlib.sha256(prev.encode() + b"\n" + _canonical(event)).hexdigest()


def append(
    s: Session,
    ctx: AuditContext,
    action: str,
    *,
    object_type: str | None = None,
    object_id: str | None = None,
    outcome: str = "success",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add an event to the caller's transaction (it commits with the change it records)."""
    s.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq + 1))
    head = s.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).one()
    event = AuditEvent(
        seq=head.seq,
        at=datetime.now(UTC),
        workspace_id=ctx.workspace_id,
        actor=ctx.actor,
        action=action,
        object_type=object_type,
        object_id=object_id,
        outcome=outcome,
        ip=ctx.ip,
        request_id=ctx.request_id,
        details=details or {},
        prev_hash=head.hash,
    )
    event.hash = _hash(head.hash, event)
    s.add(event)
    s.execute(update(AuditHead).where(AuditHead.id == 1).values(hash=event.hash))
    return event


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :func:`verify`."""

    ok: bool
    events: int
    problem: str | None = None


def verify(s: Session, batch: int = 1000) -> VerifyResult:
    """Recompute the chain from the first event; report the first break."""
    prev, expected, count, last = GENESIS, 1, 0, 0
    while True:
        rows = list(
            s.scalars(
                select(AuditEvent)
                .where(AuditEvent.seq > last)
                .order_by(AuditEvent.seq)
                .limit(batch)
            )
        )
        for event in rows:
            if event.seq != expected:
                return VerifyResult(False, count, f"event {expected} is missing")
            if event.prev_hash != prev or _hash(prev, event) != event.hash:
                return VerifyResult(False, count, f"event {event.seq} was altered")
            prev, expected, count, last = event.hash, expected + 1, count + 1, event.seq
        if len(rows) < batch:
            break
    head = s.get(AuditHead, 1)
    if head is None or head.seq != count or head.hash != prev:
        return VerifyResult(False, count, "the chain head does not match the last event")
    return VerifyResult(True, count)
