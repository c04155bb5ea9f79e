"""Outbound webhooks: CRUD, a ping, and the delivery log. URL and secret are write-only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from aggregator.api.deps import PlatformDep, SessionDep, audit_context, requires
from aggregator.api.errors import ApiError
from aggregator.api.services import webhooks as svc
from aggregator.metadata.webhook_models import Webhook
from aggregator.security import outbound
from aggregator.security.identity import Principal
from aggregator.security.rbac import Permission as P

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
Event = Literal["run.succeeded", "run.failed"]
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class WebhookCreate(BaseModel):
    """A new webhook; ``secret`` signs every request (HMAC-SHA256) and is never shown."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=_NAME)
    url: str = Field(min_length=8, max_length=2000, description="http(s) endpoint.")
    secret: str = Field(min_length=24, max_length=256, description="Signing secret.")
    events: list[Event] = Field(min_length=1, max_length=10)
    pipelines: list[str] | None = Field(
        None, max_length=100, description="Only these pipelines' events (default: all)."
    )
    active: bool = True


class WebhookUpdate(BaseModel):
    """Fields to change; a new ``secret`` or ``url`` replaces the stored one."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=100, pattern=_NAME)
    url: str | None = Field(None, min_length=8, max_length=2000)
    secret: str | None = Field(None, min_length=24, max_length=256)
    events: list[Event] | None = Field(None, min_length=1, max_length=10)
    pipelines: list[str] | None = Field(None, max_length=100)
    active: bool | None = None


class WebhookPublic(BaseModel):
    """A webhook as the API shows it: the URL reduced to scheme and host."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    url_display: str
    events: list[str]
    pipelines: list[str] | None
    active: bool
    created_by: str
    created_at: datetime
    updated_at: datetime


class AttemptPublic(BaseModel):
    """One HTTP request of a delivery."""

    number: int
    started_at: datetime
    duration_ms: float
    status_code: int | None
    error: str | None


class DeliveryPublic(BaseModel):
    """One event sent (or being sent) to a webhook."""

    id: str
    event_id: str
    event: str
    status: Literal["pending", "delivered", "failed"]
    attempts: list[AttemptPublic]
    created_at: datetime
    finished_at: datetime | None


class PingAccepted(BaseModel):
    """The ping delivery, queued."""

    delivery_id: str


def _public(row: Webhook) -> WebhookPublic:
    public = WebhookPublic.model_validate(row)
    stamps = {"created_at": svc.utc(row.created_at), "updated_at": svc.utc(row.updated_at)}
    return public.model_copy(update=stamps)


def _changes(body: BaseModel) -> dict[str, Any]:
    return body.model_dump(exclude_unset=True)


@router.get("")
def list_webhooks(
    s: SessionDep, who: Annotated[Principal, requires(P.WEBHOOKS_READ)]
) -> list[WebhookPublic]:
    """The workspace's webhooks (URL shown as scheme and host only)."""
    return [_public(r) for r in svc.list_for(s, who.workspace_id)]


@router.post("", status_code=201)
def create_webhook(
    body: WebhookCreate,
    request: Request,
    platform: PlatformDep,
    s: SessionDep,
    who: Annotated[Principal, requires(P.WEBHOOKS_WRITE)],
) -> WebhookPublic:
    """Create a webhook; its URL must pass the outbound guard."""
    ctx = audit_context(request, platform, who)
    row = svc.create(
        s, platform.box, ctx, who.workspace_id, body.model_dump(), outbound.current_policy()
    )
    return _public(row)


@router.get("/{webhook_id}")
def get_webhook(
    webhook_id: str, s: SessionDep, who: Annotated[Principal, requires(P.WEBHOOKS_READ)]
) -> WebhookPublic:
    """One webhook."""
    return _public(svc.get(s, who.workspace_id, webhook_id))


@router.patch("/{webhook_id}")
def update_webhook(
    webhook_id: str,
    body: WebhookUpdate,
    request: Request,
    platform: PlatformDep,
    s: SessionDep,
    who: Annotated[Principal, requires(P.WEBHOOKS_WRITE)],
) -> WebhookPublic:
    """Change a webhook (rotate its secret by sending a new one)."""
    changes = {k: v for k, v in _changes(body).items() if v is not None or k == "pipelines"}
    row = svc.get(s, who.workspace_id, webhook_id)
    ctx = audit_context(request, platform, who)
    return _public(svc.update(s, platform.box, ctx, row, changes, outbound.current_policy()))


@router.delete("/{webhook_id}", status_code=204)
def delete_webhook(
    webhook_id: str,
    request: Request,
    platform: PlatformDep,
    s: SessionDep,
    who: Annotated[Principal, requires(P.WEBHOOKS_WRITE)],
) -> Response:
    """Delete a webhook and its delivery log."""
    row = svc.get(s, who.workspace_id, webhook_id)
    svc.delete(s, audit_context(request, platform, who), row)
    return Response(status_code=204)


@router.post("/{webhook_id}/ping", status_code=202)
def ping_webhook(
    webhook_id: str,
    platform: PlatformDep,
    s: SessionDep,
    who: Annotated[Principal, requires(P.WEBHOOKS_WRITE)],
) -> PingAccepted:
    """Send a signed ``ping`` event to this webhook (see its deliveries for the result)."""
    row = svc.get(s, who.workspace_id, webhook_id)
    if not row.active:
        raise ApiError(409, "inactive", "the webhook is not active")
    ids = platform.webhooks.emit(
        who.workspace_id, "ping", {"webhook_id": row.id}, webhook_id=row.id
    )
    return PingAccepted(delivery_id=ids[0])


@router.get("/{webhook_id}/deliveries")
def list_deliveries(
    webhook_id: str,
    s: SessionDep,
    who: Annotated[Principal, requires(P.WEBHOOKS_READ)],
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[DeliveryPublic]:
    """Recent deliveries with every attempt (status code, error, duration)."""
    row = svc.get(s, who.workspace_id, webhook_id)
    return [DeliveryPublic.model_validate(d) for d in svc.deliveries(s, row, limit)]
