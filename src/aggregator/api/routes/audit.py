"""Audit log query and chain verification (admin)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from aggregator.api.deps import MAX_DB_INT, SessionDep, requires
from aggregator.api.schemas import AuditEventPublic
from aggregator.metadata.control_models import AuditEvent
from aggregator.security import audit
from aggregator.security.identity import Principal
from aggregator.security.rbac import Permission as P

router = APIRouter(prefix="/audit", tags=["audit"])
Auditor = Annotated[Principal, requires(P.AUDIT_READ)]


@router.get("")
def query_audit(
    s: SessionDep,
    who: Auditor,
    action: Annotated[str | None, Query(max_length=100)] = None,
    actor: Annotated[str | None, Query(max_length=300)] = None,
    object_id: Annotated[str | None, Query(max_length=200)] = None,
    outcome: Annotated[str | None, Query(max_length=20)] = None,
    since: datetime | None = None,
    after_seq: Annotated[int, Query(ge=0, le=MAX_DB_INT)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditEventPublic]:
    """Events of the workspace (and anonymous ones such as failed logins), oldest first."""
    query = select(AuditEvent).where(
        (AuditEvent.workspace_id == who.workspace_id) | AuditEvent.workspace_id.is_(None),
        AuditEvent.seq > after_seq,
    )
    for column, value in (
        (AuditEvent.action, action),
        (AuditEvent.actor, actor),
        (AuditEvent.object_id, object_id),
        (AuditEvent.outcome, outcome),
    ):
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    rows = s.scalars(query.order_by(AuditEvent.seq).limit(limit))
    return [AuditEventPublic.model_validate(e, from_attributes=True) for e in rows]


@router.get("/verify")
def verify_audit(s: SessionDep, _: Auditor) -> dict[str, object]:
    """Recompute the hash chain."""
    result = audit.verify(s)
    return {"ok": result.ok, "events": result.events, "problem": result.problem}
