"""Alert rules (CRUD) and the alerts they raised (query)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from aggregator.api.deps import PlatformDep, SessionDep, audit_context, requires
from aggregator.api.services import alerts as svc
from aggregator.api.services.webhooks import utc
from aggregator.metadata.alert_models import AlertEvent, AlertRule
from aggregator.security.identity import Principal
from aggregator.security.rbac import Permission as P

router = APIRouter(prefix="/alerts", tags=["alerts"])
Condition = Literal[
    "run.failed",
    "run.succeeded",
    "quality.failed",
    "anomaly.detected",
    "duration.above",
    "rows.below",
    "rows.above",
]
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
_THRESHOLD = "Seconds (duration.above) or rows loaded (rows.below/above); only those take one."


class RuleCreate(BaseModel):
    """A new alert rule; ``webhook_id`` (optional) is told when it holds."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=_NAME)
    condition: Condition
    threshold: float | None = Field(None, ge=0, le=1e15, description=_THRESHOLD)
    pipelines: list[str] | None = Field(
        None, max_length=100, description="Only runs of these pipelines (default: all)."
    )
    webhook_id: str | None = Field(None, max_length=36)
    active: bool = True


class RuleUpdate(BaseModel):
    """Fields to change (``null`` clears ``threshold``, ``pipelines`` and ``webhook_id``)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=100, pattern=_NAME)
    condition: Condition | None = None
    threshold: float | None = Field(None, ge=0, le=1e15)
    pipelines: list[str] | None = Field(None, max_length=100)
    webhook_id: str | None = Field(None, max_length=36)
    active: bool | None = None


class RulePublic(BaseModel):
    """An alert rule."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    condition: str
    threshold: float | None
    pipelines: list[str] | None
    webhook_id: str | None
    active: bool
    created_by: str
    created_at: datetime
    updated_at: datetime


class AlertPublic(BaseModel):
    """One alert: a rule that held for a run, and the webhook delivery telling about it."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    rule_id: str
    rule_name: str
    condition: str
    pipeline: str
    run_id: str
    message: str
    observed: dict[str, Any]
    delivery_id: str | None
    created_at: datetime


def _rule(row: AlertRule) -> RulePublic:
    public = RulePublic.model_validate(row)
    stamps = {"created_at": utc(row.created_at), "updated_at": utc(row.updated_at)}
    return public.model_copy(update=stamps)


def _alert(row: AlertEvent) -> AlertPublic:
    return AlertPublic.model_validate(row).model_copy(update={"created_at": utc(row.created_at)})


_CLEARABLE = frozenset({"threshold", "pipelines", "webhook_id"})


@router.get("/rules")
def list_rules(
    s: SessionDep, who: Annotated[Principal, requires(P.ALERTS_READ)]
) -> list[RulePublic]:
    """The workspace's alert rules by name."""
    return [_rule(r) for r in svc.list_for(s, who.workspace_id)]


@router.post("/rules", status_code=201, responses={409: {}, 422: {}})
def create_rule(
    body: RuleCreate,
    request: Request,
    platform: PlatformDep,
    s: SessionDep,
    who: Annotated[Principal, requires(P.ALERTS_WRITE)],
) -> RulePublic:
    """Create a rule (threshold conditions need ``threshold``; others take none)."""
    ctx = audit_context(request, platform, who)
    return _rule(svc.create(s, ctx, who.workspace_id, body.model_dump()))


@router.get("/rules/{rule_id}", responses={404: {}})
def get_rule(
    rule_id: str, s: SessionDep, who: Annotated[Principal, requires(P.ALERTS_READ)]
) -> RulePublic:
    """One rule."""
    return _rule(svc.get(s, who.workspace_id, rule_id))


@router.patch("/rules/{rule_id}", responses={404: {}, 409: {}, 422: {}})
def update_rule(
    rule_id: str,
    body: RuleUpdate,
    request: Request,
    platform: PlatformDep,
    s: SessionDep,
    who: Annotated[Principal, requires(P.ALERTS_WRITE)],
) -> RulePublic:
    """Change a rule."""
    sent = body.model_dump(exclude_unset=True)
    changes = {k: v for k, v in sent.items() if v is not None or k in _CLEARABLE}
    row = svc.get(s, who.workspace_id, rule_id)
    return _rule(svc.update(s, audit_context(request, platform, who), row, changes))


@router.delete("/rules/{rule_id}", status_code=204, responses={404: {}})
def delete_rule(
    rule_id: str,
    request: Request,
    platform: PlatformDep,
    s: SessionDep,
    who: Annotated[Principal, requires(P.ALERTS_WRITE)],
) -> Response:
    """Delete a rule (the alerts it raised stay)."""
    row = svc.get(s, who.workspace_id, rule_id)
    svc.delete(s, audit_context(request, platform, who), row)
    return Response(status_code=204)


@router.get("/events")
def list_alerts(
    s: SessionDep,
    who: Annotated[Principal, requires(P.ALERTS_READ)],
    rule_id: Annotated[str | None, Query(max_length=36)] = None,
    pipeline: Annotated[str | None, Query(max_length=200)] = None,
    run_id: Annotated[str | None, Query(max_length=36)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[AlertPublic]:
    """Alerts raised in the workspace, newest first."""
    rows = svc.events(
        s, who.workspace_id, rule_id=rule_id, pipeline=pipeline, run_id=run_id, limit=limit
    )
    return [_alert(r) for r in rows]
