"""Webhook ingest: signed endpoints that store JSON events durably, and their management.

``POST /api/v1/ingest/{ingest_id}`` is authenticated by the body's HMAC signature, not by a
user: it is declared with :class:`SignedRoute` (the route x role matrix test treats it
apart). The answer is sent only after the events are committed (see
:mod:`aggregator.connectors.webhook.store` for signatures, ordering and duplicates):

- ``202`` ``{"stream", "first_seq", "events", "duplicate": false}``: stored;
- ``200`` with ``"duplicate": true``: this delivery (same ``Idempotency-Key``, or the same
  body without one) was stored before; nothing is stored again;
- ``401`` missing or wrong signature (audited as ``ingest.signature_rejected``);
- ``404`` no such ingest stream; ``413`` body over the stream's ``max_body_bytes``;
- ``422`` the body is not a JSON object or an array of objects.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from aggregator.api.deps import (
    PlatformDep,
    PublicRoute,
    SessionDep,
    audit_context,
    client_ip,
    rate_limit,
    requires,
)
from aggregator.api.errors import ApiError
from aggregator.api.platform import Platform
from aggregator.connectors.webhook import store
from aggregator.metadata.ingest_models import IngestStream
from aggregator.security import audit
from aggregator.security.identity import Principal
from aggregator.security.rbac import Permission as P

router = APIRouter(tags=["ingest"])
_HEADER = re.compile(r"^[A-Za-z0-9-]{1,100}$")
_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,99}$"


class SignedRoute(PublicRoute):
    """Marks a route authenticated by a request signature instead of a user; any user
    credential sent along is ignored. Rate-limited per IP like a public route, in a bucket
    of its own (a busy sender does not use up the IP's budget for logins)."""

    def __call__(self, request: Request, platform: PlatformDep) -> None:
        rate_limit(platform, f"ingest:{client_ip(request, platform)}")


signed_route = SignedRoute()


class IngestStreamCreate(BaseModel):
    """A new ingest stream; without ``secret`` one is generated and returned once."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., pattern=_NAME, description="Stream name (a table name).")
    secret: SecretStr | None = Field(
        None, min_length=16, max_length=200, description="HMAC-SHA256 signing secret."
    )
    signature_header: str = Field(
        store.SIGNATURE_HEADER, pattern=_HEADER.pattern, description="Header with the signature."
    )
    max_body_bytes: int = Field(262_144, ge=64, description="Largest accepted body.")


class IngestStreamPublic(BaseModel):
    """An ingest stream (its secret is never shown again)."""

    id: str
    name: str
    endpoint: str
    signature_header: str
    max_body_bytes: int
    events: int
    created_at: datetime
    updated_at: datetime


class IngestStreamCreated(IngestStreamPublic):
    """The created stream; ``secret`` is set only when it was generated."""

    secret: str | None = None


def _public(row: IngestStream) -> IngestStreamPublic:
    return IngestStreamPublic(
        id=row.id,
        name=row.name,
        endpoint=f"/api/v1/ingest/{row.id}",
        signature_header=row.signature_header,
        max_body_bytes=row.max_body_bytes,
        events=row.last_seq,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _get(s: SessionDep, workspace_id: str, ingest_id: str) -> IngestStream:
    row = s.get(IngestStream, ingest_id)
    if row is None or row.workspace_id != workspace_id:
        raise ApiError(404, "not_found", "no such ingest stream")
    return row


@router.get("/ingest-streams")
def list_ingest_streams(
    s: SessionDep, who: Annotated[Principal, requires(P.CONNECTIONS_READ)]
) -> list[IngestStreamPublic]:
    """The workspace's ingest streams with their event counts."""
    query = (
        select(IngestStream)
        .where(IngestStream.workspace_id == who.workspace_id)
        .order_by(IngestStream.name)
    )
    return [_public(r) for r in s.scalars(query)]


@router.post("/ingest-streams", status_code=201)
def create_ingest_stream(
    body: IngestStreamCreate,
    request: Request,
    platform: PlatformDep,
    s: SessionDep,
    who: Annotated[Principal, requires(P.CONNECTIONS_WRITE)],
) -> IngestStreamCreated:
    """Create an ingest stream; its secret is stored encrypted."""
    limit = platform.settings.max_body_bytes
    if body.max_body_bytes > limit:
        raise ApiError(
            422, "invalid_request", f"max_body_bytes cannot exceed the API's limit of {limit}"
        )
    exists = s.scalar(
        select(IngestStream.id).where(
            IngestStream.workspace_id == who.workspace_id, IngestStream.name == body.name
        )
    )
    if exists:
        raise ApiError(409, "conflict", f"an ingest stream named {body.name!r} exists")
    generated = store.new_secret() if body.secret is None else None
    secret = generated or (body.secret.get_secret_value() if body.secret else "")
    ctx = audit_context(request, platform, who)
    row = store.create_stream(
        s,
        platform.box,
        who.workspace_id,
        body.name,
        secret,
        signature_header=body.signature_header,
        max_body_bytes=body.max_body_bytes,
        created_by=ctx.actor,
    )
    s.flush()
    audit.append(
        s, ctx, "ingest_stream.created", object_type="ingest_stream", object_id=row.id,
        details={"name": row.name, "max_body_bytes": row.max_body_bytes},
    )  # fmt: skip
    s.commit()
    return IngestStreamCreated(**_public(row).model_dump(), secret=generated)


@router.get("/ingest-streams/{ingest_id}")
def get_ingest_stream(
    ingest_id: str, s: SessionDep, who: Annotated[Principal, requires(P.CONNECTIONS_READ)]
) -> IngestStreamPublic:
    """One ingest stream."""
    return _public(_get(s, who.workspace_id, ingest_id))


@router.delete("/ingest-streams/{ingest_id}", status_code=204)
def delete_ingest_stream(
    ingest_id: str,
    request: Request,
    platform: PlatformDep,
    s: SessionDep,
    who: Annotated[Principal, requires(P.CONNECTIONS_WRITE)],
) -> Response:
    """Delete an ingest stream and every event it stored."""
    row = _get(s, who.workspace_id, ingest_id)
    audit.append(
        s, audit_context(request, platform, who), "ingest_stream.deleted",
        object_type="ingest_stream", object_id=row.id,
        details={"name": row.name, "events": row.last_seq},
    )  # fmt: skip
    s.delete(row)
    s.commit()
    return Response(status_code=204)


# -- the signed endpoint ------------------------------------------------------------------


def _lookup(platform: Platform, ingest_id: str) -> tuple[IngestStream, str] | None:
    try:
        uuid.UUID(ingest_id)
    except ValueError:
        return None
    with platform.store.session() as s:
        row = s.get(IngestStream, ingest_id)
        if row is None:
            return None
        return row, store.stream_secret(platform.box, row)


def _reject_signature(platform: Platform, request: Request, row: IngestStream, why: str) -> None:
    ctx = audit_context(request, platform, None)
    with platform.store.session() as s:
        audit.append(
            s,
            audit.AuditContext("webhook", row.workspace_id, ctx.ip, ctx.request_id),
            "ingest.signature_rejected",
            object_type="ingest_stream",
            object_id=row.id,
            outcome="failure",
            details={"name": row.name, "reason": why},
        )
        s.commit()


def _store(platform: Platform, stream_id: str, events: list[str], key: str) -> store.Receipt:
    with platform.store.session() as s:
        return store.receive(s, stream_id, events, key)


async def _body(request: Request, limit: int) -> bytes | None:
    """The body, or ``None`` as soon as it exceeds ``limit`` bytes."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/ingest/{ingest_id}", dependencies=[Depends(signed_route)])
async def ingest(ingest_id: str, request: Request, platform: PlatformDep) -> JSONResponse:
    """Receive events signed with the stream's secret (see the module docstring)."""
    found = await run_in_threadpool(_lookup, platform, ingest_id)
    if found is None:
        raise ApiError(404, "not_found", "no such ingest stream")
    row, secret = found
    body = await _body(request, row.max_body_bytes)
    if body is None:
        raise ApiError(
            413, "request_too_large", f"the body exceeds {row.max_body_bytes} bytes for this stream"
        )
    presented = request.headers.get(row.signature_header)
    if not store.signature_ok(secret, body, presented):
        why = "missing signature" if not presented else "signature mismatch"
        await run_in_threadpool(_reject_signature, platform, request, row, why)
        raise ApiError(
            401, "bad_signature", f"{why}: sign the body with HMAC-SHA256 in {row.signature_header}"
        )
    try:
        events = store.split_events(body)
    except store.PayloadError as exc:
        raise ApiError(422, "invalid_payload", str(exc)) from None
    key = store.delivery_key(body, request.headers.get(store.IDEMPOTENCY_HEADER))
    receipt = await run_in_threadpool(_store, platform, row.id, events, key)
    return JSONResponse(
        {
            "stream": row.name,
            "first_seq": receipt.first_seq,
            "events": receipt.count,
            "duplicate": receipt.duplicate,
        },
        status_code=200 if receipt.duplicate else 202,
    )
