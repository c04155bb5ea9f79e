"""Webhook ingest storage: signatures, durable receipt of events, and reading them back.

**Signature.** A sender signs the raw request body with the stream's secret:
``<signature header>: sha256=<hex HMAC-SHA256(secret, body)>`` (the ``sha256=`` prefix is
optional; GitHub sends exactly this in ``X-Hub-Signature-256``).

**Durability.** :func:`receive` commits the events before the API answers, so an
acknowledged event is never lost.

**Ordering.** Each stream numbers its events 1, 2, 3, ... (``seq``). The numbers are taken
while holding the stream row's lock (an ``UPDATE`` of ``ingest_streams``; SQLite's write lock
does the same), which also serialises the commits of one stream: an event with a higher
``seq`` is never visible before one with a lower ``seq``, so a reader resuming after its
saved ``seq`` cannot skip an event that committed late.

**Duplicates.** A delivery is identified by its ``Idempotency-Key`` header or, without one,
by the SHA-256 of its body. A delivery whose key was already stored for the stream is
acknowledged again (with the original sequence numbers) and stores nothing: senders retry
after timeouts, and a retried delivery must not load twice.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from aggregator.connectors.rest.records import dumps, loads
from aggregator.metadata.ingest_models import IngestEvent, IngestStream
from aggregator.security.crypto import SecretBox

SIGNATURE_HEADER = "X-Signature-256"
IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_KEY = 200


class PayloadError(ValueError):
    """The body is not a JSON object or a JSON array of objects."""


def aad(stream_id: str) -> str:
    """Associated data binding a secret's ciphertext to its ingest stream."""
    return f"ingest-stream:{stream_id}"


def new_secret() -> str:
    """A random signing secret (URL-safe text, 256 bits)."""
    return secrets.token_urlsafe(32)


def sign(secret: str, body: bytes) -> str:
    """The signature header value a sender computes: ``sha256=<hex>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_ok(secret: str, body: bytes, presented: str | None) -> bool:
    """Whether ``presented`` is the body's signature (constant-time comparison)."""
    if not presented:
        return False
    value = presented.strip()
    if value.lower().startswith("sha256="):
        value = value[7:]
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(value.lower().encode(), expected.encode())


def delivery_key(body: bytes, header: str | None) -> str:
    """The delivery's identity: the idempotency key, else the body's SHA-256."""
    if header and header.strip():
        return "key:" + header.strip()[: MAX_KEY - 4]
    return "sha256:" + hashlib.sha256(body).hexdigest()


def split_events(body: bytes) -> list[str]:
    """The events of a body as JSON texts: one object, or each object of an array.

    Numbers keep every digit (a single object is stored as sent)."""
    try:
        value, _exact = loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(f"the body is not valid JSON: {exc}") from None
    if isinstance(value, dict):
        return [body.decode("utf-8")]
    if isinstance(value, list):
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                raise PayloadError(
                    f"item {i} of the array is a {type(item).__name__}, expected a JSON object"
                )
        if not value:
            raise PayloadError("the array holds no event")
        return [dumps(item).decode("utf-8") for item in value]
    raise PayloadError(f"the body is a JSON {type(value).__name__}, expected an object or array")


@dataclass(frozen=True)
class Receipt:
    """What a delivery stored: sequence numbers ``first..first+count-1``."""

    first_seq: int
    count: int
    duplicate: bool


def create_stream(
    s: Session,
    box: SecretBox,
    workspace_id: str,
    name: str,
    secret: str,
    *,
    signature_header: str = SIGNATURE_HEADER,
    max_body_bytes: int = 262_144,
    created_by: str | None = None,
) -> IngestStream:
    """Add an ingest stream (the caller commits); the secret is stored encrypted."""
    now = datetime.now(UTC)
    sid = str(uuid.uuid4())
    row = IngestStream(
        id=sid,
        workspace_id=workspace_id,
        name=name,
        secret_ciphertext=box.encrypt(secret.encode(), aad(sid)),
        signature_header=signature_header,
        max_body_bytes=max_body_bytes,
        last_seq=0,
        created_by=created_by,
        created_at=now,
        updated_at=now,
    )
    s.add(row)
    return row


def stream_secret(box: SecretBox, row: IngestStream) -> str:
    """The clear signing secret (only ever held in memory)."""
    return box.decrypt(row.secret_ciphertext, aad(row.id)).decode()


def receive(s: Session, stream_id: str, events: list[str], key: str) -> Receipt:
    """Store one delivery durably (commits) unless its key was stored before."""
    now = datetime.now(UTC)
    # lock the stream row first: numbering and the duplicate check happen under it
    s.execute(
        update(IngestStream)
        .where(IngestStream.id == stream_id)
        .values(last_seq=IngestStream.last_seq)
    )
    seen = s.execute(
        select(func.min(IngestEvent.seq), func.count()).where(
            IngestEvent.stream_id == stream_id, IngestEvent.delivery_key == key
        )
    ).one()
    if seen[1]:
        s.rollback()
        return Receipt(int(seen[0]), int(seen[1]), True)
    last = s.scalar(select(IngestStream.last_seq).where(IngestStream.id == stream_id)) or 0
    s.execute(
        update(IngestStream)
        .where(IngestStream.id == stream_id)
        .values(last_seq=last + len(events), updated_at=now)
    )
    s.execute(
        insert(IngestEvent),
        [
            {
                "stream_id": stream_id,
                "seq": last + 1 + i,
                "delivery_key": key,
                "received_at": now,
                "payload": text,
            }
            for i, text in enumerate(events)
        ],
    )
    s.commit()
    return Receipt(last + 1, len(events), False)


def reencrypt(s: Session, old: SecretBox, new: SecretBox) -> int:
    """Re-encrypt every ingest secret from ``old`` to ``new`` (key rotation; no commit)."""
    count = 0
    for row in s.scalars(select(IngestStream)):
        row.secret_ciphertext = new.encrypt(
            old.decrypt(row.secret_ciphertext, aad(row.id)), aad(row.id)
        )
        count += 1
    return count


@dataclass(frozen=True)
class EventPage:
    """Stored events in ``seq`` order: parallel lists."""

    seqs: list[int]
    received: list[datetime]
    payloads: list[str]


def read_events(s: Session, stream_id: str, after: int, upto: int, limit: int) -> EventPage:
    """Events with ``after < seq <= upto``, at most ``limit``, oldest first."""
    rows = s.execute(
        select(IngestEvent.seq, IngestEvent.received_at, IngestEvent.payload)
        .where(
            IngestEvent.stream_id == stream_id,
            IngestEvent.seq > after,
            IngestEvent.seq <= upto,
        )
        .order_by(IngestEvent.seq)
        .limit(limit)
    ).all()
    if not rows:
        return EventPage([], [], [])
    seqs, received, payloads = (list(c) for c in zip(*rows, strict=True))
    return EventPage(seqs, received, payloads)


def pending(s: Session, stream_id: str, after: int) -> dict[str, Any]:
    """How many events and bytes wait after ``after`` (the source's size estimate)."""
    count, size = s.execute(
        select(func.count(), func.coalesce(func.sum(func.length(IngestEvent.payload)), 0)).where(
            IngestEvent.stream_id == stream_id, IngestEvent.seq > after
        )
    ).one()
    return {"events": int(count), "bytes": int(size)}
