"""Outbound webhooks: CRUD and signed, retried, recorded delivery of run events.

Delivery is an outbox: :meth:`WebhookDispatcher.emit` writes one ``pending`` delivery row
per subscribed webhook in one transaction, then worker threads POST them. Each HTTP
attempt is appended to ``webhook_attempts``; 2xx delivers, 408/429/5xx and network errors
are retried with exponential backoff (tenacity) up to ``AGGREGATOR_WEBHOOK_ATTEMPTS``,
anything else (other 4xx, redirects, an address the outbound guard refuses) fails at once.
Pending deliveries left by a stopped server are resumed at start-up.

Every finished run (API or CLI) is notified through :meth:`WebhookDispatcher.notify_run`:
the run event to subscribed webhooks and alerts of matching rules (``alerts.py``).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog
from sqlalchemy import or_, select
from sqlalchemy import update as sql_update
from sqlalchemy.orm import Session
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from aggregator import __version__
from aggregator.api.errors import ApiError
from aggregator.api.services import alerts
from aggregator.metadata.control_models import Pipeline
from aggregator.metadata.store import MetadataStore, RunRecord
from aggregator.metadata.webhook_models import Webhook, WebhookAttempt, WebhookDelivery
from aggregator.security import audit, webhook_signing
from aggregator.security.crypto import SecretBox
from aggregator.security.identity import DEFAULT_WORKSPACE
from aggregator.security.outbound import OutboundBlocked, OutboundPolicy, guarded_client
from aggregator.settings import Settings

log = structlog.get_logger(__name__)
RUN_EVENTS = ("run.succeeded", "run.failed")
EVENTS = (*RUN_EVENTS, "ping")
_RETRY_STATUSES = frozenset({408, 429})
_TIMEOUT = 10.0
_MAX_BACKOFF = 300.0
_LEASE = _TIMEOUT * 3 + 30  # an attempt in flight longer than this is presumed dead
SWEEP_SECONDS = 60.0


def aad(webhook_id: str) -> str:
    """Associated data binding a webhook's ciphertext to its row."""
    return f"webhook:{webhook_id}"


def display_url(url: str) -> str:
    """What the API shows of a target: scheme and host (paths often carry tokens)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}/…"


def check_target(url: str, policy: OutboundPolicy) -> None:
    """422 unless ``url`` is an http(s) URL the outbound guard allows now."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApiError(422, "invalid_url", "url: an http or https URL with a host is required")
    if parts.username or parts.password:
        raise ApiError(422, "invalid_url", "url: credentials in the URL are not allowed")
    try:
        policy.check_url(url)
    except OutboundBlocked as exc:
        raise ApiError(422, "unsafe_url", f"url: {exc.message}") from None


def get(s: Session, workspace_id: str, webhook_id: str) -> Webhook:
    """A webhook of the workspace, or 404."""
    row = s.get(Webhook, webhook_id)
    if row is None or row.workspace_id != workspace_id:
        raise ApiError(404, "not_found", "no such webhook")
    return row


def list_for(s: Session, workspace_id: str) -> list[Webhook]:
    """The workspace's webhooks by name."""
    query = select(Webhook).where(Webhook.workspace_id == workspace_id).order_by(Webhook.name)
    return list(s.scalars(query))


def _summary(row: Webhook) -> dict[str, Any]:
    return {
        "name": row.name,
        "url": row.url_display,
        "events": row.events,
        "pipelines": row.pipelines,
        "active": row.active,
    }


def create(
    s: Session,
    box: SecretBox,
    ctx: audit.AuditContext,
    workspace_id: str,
    values: dict[str, Any],
    policy: OutboundPolicy,
) -> Webhook:
    """Store a webhook; URL and secret only encrypted."""
    check_target(values["url"], policy)
    if s.scalar(
        select(Webhook.id).where(
            Webhook.workspace_id == workspace_id, Webhook.name == values["name"]
        )
    ):
        raise ApiError(409, "conflict", f"a webhook named {values['name']!r} exists")
    now = datetime.now(UTC)
    wid = str(uuid.uuid4())
    row = Webhook(
        id=wid,
        workspace_id=workspace_id,
        name=values["name"],
        url_display=display_url(values["url"]),
        target_ciphertext=box.encrypt_json(
            {"url": values["url"], "secret": values["secret"]}, aad(wid)
        ),
        events=sorted(set(values["events"])),
        pipelines=values.get("pipelines"),
        active=values.get("active", True),
        created_by=ctx.actor,
        created_at=now,
        updated_at=now,
    )
    s.add(row)
    audit.append(
        s, ctx, "webhook.created", object_type="webhook", object_id=wid, details=_summary(row)
    )
    s.commit()
    return row


def update(
    s: Session,
    box: SecretBox,
    ctx: audit.AuditContext,
    row: Webhook,
    changes: dict[str, Any],
    policy: OutboundPolicy,
) -> Webhook:
    """Change fields; a new ``url`` or ``secret`` is re-encrypted."""
    before = _summary(row)
    if "url" in changes or "secret" in changes:
        target = box.decrypt_json(row.target_ciphertext, aad(row.id))
        if "url" in changes:
            check_target(changes["url"], policy)
            target["url"] = changes["url"]
            row.url_display = display_url(changes["url"])
        if "secret" in changes:
            target["secret"] = changes["secret"]
        row.target_ciphertext = box.encrypt_json(target, aad(row.id))
    for key in ("name", "pipelines", "active"):
        if key in changes:
            setattr(row, key, changes[key])
    if "events" in changes:
        row.events = sorted(set(changes["events"]))
    row.updated_at = datetime.now(UTC)
    details = {"before": before, "after": _summary(row), "secret_changed": "secret" in changes}
    audit.append(
        s, ctx, "webhook.updated", object_type="webhook", object_id=row.id, details=details
    )
    s.commit()
    return row


def delete(s: Session, ctx: audit.AuditContext, row: Webhook) -> None:
    """Remove a webhook with its delivery history."""
    audit.append(
        s, ctx, "webhook.deleted", object_type="webhook", object_id=row.id,
        details={"name": row.name},
    )  # fmt: skip
    deliveries = list(
        s.scalars(select(WebhookDelivery).where(WebhookDelivery.webhook_id == row.id))
    )
    for delivery in deliveries:
        for attempt in s.scalars(
            select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery.id)
        ):
            s.delete(attempt)
        s.delete(delivery)
    s.flush()
    s.delete(row)
    s.commit()


def deliveries(s: Session, row: Webhook, limit: int) -> list[dict[str, Any]]:
    """Recent deliveries of a webhook with their attempts, newest first."""
    query = (
        select(WebhookDelivery)
        .where(WebhookDelivery.webhook_id == row.id)
        .order_by(WebhookDelivery.created_at.desc())
        .limit(limit)
    )
    out = []
    for d in s.scalars(query):
        attempts = s.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id == d.id)
            .order_by(WebhookAttempt.number)
        )
        out.append(
            {
                "id": d.id,
                "event_id": d.event_id,
                "event": d.event,
                "status": d.status,
                "attempts": [
                    {
                        "number": a.number,
                        "started_at": utc(a.started_at),
                        "duration_ms": a.duration_ms,
                        "status_code": a.status_code,
                        "error": a.error,
                    }
                    for a in attempts
                ],
                "created_at": utc(d.created_at),
                "finished_at": utc(d.finished_at) if d.finished_at else None,
            }
        )
    return out


def utc(value: datetime) -> datetime:
    """SQLite returns naive datetimes; they were stored as UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class _Retry(Exception):
    """The attempt failed in a way worth retrying."""


class _Stopped(Exception):
    """The dispatcher is closing; the delivery stays pending for the next start."""


@dataclass
class _Outcome:
    status_code: int | None = None
    error: str | None = None
    retry: bool = False


class WebhookDispatcher:
    """Creates deliveries for events and sends them from a small thread pool."""

    def __init__(
        self,
        store: MetadataStore,
        box: SecretBox,
        settings: Settings,
        policy: OutboundPolicy | None = None,
        workers: int = 2,
    ) -> None:
        self.store = store
        self.box = box
        self.attempts = settings.webhook_attempts
        self.backoff = settings.webhook_backoff_seconds
        self.policy = policy
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="webhook")
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._in_flight = 0
        self._queued: set[str] = set()  # delivery ids queued or running in this process
        self._sweeper: threading.Thread | None = None

    # --- events -------------------------------------------------------------------------

    def run_finished(self, run_id: str) -> list[str]:
        """Notify about a finished run by id (see :meth:`notify_run`; never raises)."""
        try:
            record = self.store.get_run(run_id)
        except Exception as exc:
            log.error("webhook.emit_failed", run_id=run_id, error=type(exc).__name__)
            return []
        return self.notify_run(record) if record is not None else []

    def on_run_finished(self, store: MetadataStore, record: RunRecord) -> None:
        """The engine's run-finished hook (``LocalEngine(on_finished=...)``)."""
        self.notify_run(record)

    def notify_run(self, record: RunRecord) -> list[str]:
        """``run.succeeded``/``run.failed`` to subscribed webhooks and an alert per matching
        rule, written in one transaction, then sent; the delivery ids (never raises).

        A run of a pipeline the control plane does not know (``aggregator run file.yml``)
        belongs to the default workspace.
        """
        try:
            record = self.store.get_run(record.id) or record  # as stored (and as the API shows)
            with self.store.session() as s:
                workspace_id = (
                    s.scalar(select(Pipeline.workspace_id).where(Pipeline.name == record.pipeline))
                    or DEFAULT_WORKSPACE
                )
                # a cancelled run is a run.failed too (``data.status`` tells them apart)
                event = "run.succeeded" if record.status == "succeeded" else "run.failed"
                created = self._queue(
                    s, workspace_id, event, record.to_json(), pipeline=record.pipeline
                )
                created += alerts.raise_alerts(s, workspace_id, record, self.queue_for)
                s.commit()
        except Exception as exc:  # a notification problem must never break a run
            # no traceback: its frames' locals may hold decrypted targets
            log.error("webhook.emit_failed", run_id=record.id, error=type(exc).__name__)
            return []
        for delivery_id in created:
            self.submit(delivery_id)
        return created

    def queue_for(
        self, s: Session, workspace_id: str, event: str, data: dict[str, Any], webhook_id: str
    ) -> str | None:
        """Queue ``event`` for one webhook (if active) in ``s``; the delivery id."""
        ids = self._queue(s, workspace_id, event, data, webhook_id=webhook_id)
        return ids[0] if ids else None

    def emit(
        self,
        workspace_id: str,
        event: str,
        data: dict[str, Any],
        pipeline: str | None = None,
        webhook_id: str | None = None,
    ) -> list[str]:
        """Write a pending delivery per subscribed webhook, then send them; their ids."""
        with self.store.session() as s:
            created = self._queue(s, workspace_id, event, data, pipeline, webhook_id)
            s.commit()
        for delivery_id in created:
            self.submit(delivery_id)
        return created

    @staticmethod
    def _queue(
        s: Session,
        workspace_id: str,
        event: str,
        data: dict[str, Any],
        pipeline: str | None = None,
        webhook_id: str | None = None,
    ) -> list[str]:
        """Add a pending delivery per subscribed webhook to ``s`` (not committed).

        With ``webhook_id`` only that webhook gets it, whatever events it subscribes to.
        """
        event_id = str(uuid.uuid4())
        now = datetime.now(UTC)
        payload = {"id": event_id, "type": event, "created_at": now.isoformat(), "data": data}
        created: list[str] = []
        query = select(Webhook).where(
            Webhook.workspace_id == workspace_id, Webhook.active.is_(True)
        )
        if webhook_id is not None:
            query = query.where(Webhook.id == webhook_id)
        for hook in s.scalars(query):
            if webhook_id is None and event not in hook.events:
                continue
            if pipeline is not None and hook.pipelines and pipeline not in hook.pipelines:
                continue
            delivery = WebhookDelivery(
                id=str(uuid.uuid4()), webhook_id=hook.id, event_id=event_id, event=event,
                payload=payload, status="pending", attempts=0, created_at=now,
            )  # fmt: skip
            s.add(delivery)
            created.append(delivery.id)
        return created

    def resume(self) -> int:
        """Send every delivery still pending and not already queued here; how many.

        Called at start-up (deliveries a stopped server left) and by the sweep (deliveries
        a CLI run left while its receiver was retrying).
        """
        with self.store.session() as s:
            pending = list(
                s.scalars(select(WebhookDelivery.id).where(WebhookDelivery.status == "pending"))
            )
        with self._idle:
            fresh = [d for d in pending if d not in self._queued]
        for delivery_id in fresh:
            self.submit(delivery_id)
        return len(fresh)

    def start(self, sweep_seconds: float = SWEEP_SECONDS) -> int:
        """Resume pending deliveries now and every ``sweep_seconds``; how many now."""
        resumed = self.resume()
        if self._sweeper is None:
            self._sweeper = threading.Thread(
                target=self._sweep, args=(sweep_seconds,), name="webhook-sweep", daemon=True
            )
            self._sweeper.start()
        return resumed

    def _sweep(self, seconds: float) -> None:
        while not self._stop.wait(seconds):
            try:
                self.resume()
            except Exception as exc:  # a metadata hiccup: try again at the next sweep
                log.warning("webhook.sweep_failed", error=type(exc).__name__)

    # --- sending ------------------------------------------------------------------------

    def submit(self, delivery_id: str) -> None:
        """Queue a delivery on the worker threads."""
        with self._idle:
            self._in_flight += 1
            self._queued.add(delivery_id)
        self._pool.submit(self._deliver, delivery_id)

    def wait_idle(self, timeout: float) -> bool:
        """Block until no delivery is queued or running (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self) -> None:
        """Stop retrying (pending deliveries resume at next start) and end the workers."""
        self._stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _sleep(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise _Stopped

    def _deliver(self, delivery_id: str) -> None:
        try:
            with self.store.session() as s:
                done = s.get(WebhookDelivery, delivery_id)
                already = done.attempts if done is not None else 0
            left = max(1, self.attempts - already)
            retrying = Retrying(
                stop=stop_after_attempt(left),
                wait=wait_exponential(multiplier=self.backoff, max=_MAX_BACKOFF),
                retry=retry_if_exception_type(_Retry),
                sleep=self._sleep,
                reraise=True,
            )
            retrying(self._attempt, delivery_id)
        except (_Retry, _Stopped):
            pass
        except Exception as exc:  # no traceback: frames hold the decrypted target
            log.error("webhook.delivery_crashed", delivery_id=delivery_id, error=type(exc).__name__)
        finally:
            with self._idle:
                self._in_flight -= 1
                self._queued.discard(delivery_id)
                self._idle.notify_all()

    def _attempt(self, delivery_id: str) -> None:
        """One POST; records the attempt; raises :class:`_Retry` when worth retrying.

        The attempt is claimed first (``attempts`` bumped only if unchanged, and a lease
        taken while it is in flight), so several API workers resuming the same pending
        delivery never send it twice at once; no database connection is held while the
        request is in flight.
        """
        if self._stop.is_set():
            raise _Stopped
        with self.store.session() as s:
            delivery = s.get(WebhookDelivery, delivery_id)
            hook = s.get(Webhook, delivery.webhook_id) if delivery is not None else None
            if delivery is None or hook is None or delivery.status != "pending":
                return
            number = delivery.attempts + 1
            now = datetime.now(UTC)
            claimed = s.execute(
                sql_update(WebhookDelivery)
                .where(
                    WebhookDelivery.id == delivery_id,
                    WebhookDelivery.status == "pending",
                    WebhookDelivery.attempts == number - 1,
                    or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now),
                )
                .values(attempts=number, lease_until=now + timedelta(seconds=_LEASE))
            )
            s.commit()
            if getattr(claimed, "rowcount", 0) != 1:
                return  # another worker owns this delivery now
            target = self.box.decrypt_json(hook.target_ciphertext, aad(hook.id))
            event = delivery.event
            body = json.dumps(delivery.payload, sort_keys=True, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"aggregator-webhooks/{__version__}",
            webhook_signing.EVENT_HEADER: event,
            webhook_signing.DELIVERY_HEADER: delivery_id,
            webhook_signing.SIGNATURE_HEADER: webhook_signing.sign(target["secret"], body),
        }
        started = datetime.now(UTC)
        clock = time.perf_counter()
        outcome = self._post(target["url"], body, headers)
        elapsed = round((time.perf_counter() - clock) * 1000, 1)
        ok = outcome.status_code is not None and 200 <= outcome.status_code < 300
        final = ok or not outcome.retry or number >= self.attempts
        status = ("delivered" if ok else "failed") if final else "pending"
        with self.store.session() as s:
            s.add(
                WebhookAttempt(
                    delivery_id=delivery_id, number=number, started_at=started,
                    duration_ms=elapsed, status_code=outcome.status_code, error=outcome.error,
                )
            )  # fmt: skip
            s.execute(
                sql_update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery_id)
                .values(
                    status=status,
                    last_status_code=outcome.status_code,
                    last_error=outcome.error,
                    finished_at=datetime.now(UTC) if final else None,
                    lease_until=None,
                )
            )
            s.commit()
        log.info(
            "webhook.attempt", delivery_id=delivery_id, webhook_event=event, attempt=number,
            status_code=outcome.status_code, error=outcome.error, outcome=status,
        )  # fmt: skip
        if not final:
            raise _Retry

    def _post(self, url: str, body: bytes, headers: dict[str, str]) -> _Outcome:
        """Send; the outcome never contains the URL (its path may be a credential)."""
        try:
            with guarded_client(self.policy, timeout=_TIMEOUT, follow_redirects=False) as http:
                response = http.post(url, content=body, headers=headers)
        except OutboundBlocked as exc:
            host = urlsplit(url).hostname or ""
            return _Outcome(error=exc.message.replace(url, host)[:500])
        except httpx.HTTPError as exc:
            return _Outcome(error=f"{type(exc).__name__}", retry=True)
        status = response.status_code
        if 200 <= status < 300:
            return _Outcome(status)
        if 300 <= status < 400:
            return _Outcome(status, "redirects are not followed")
        retry = status >= 500 or status in _RETRY_STATUSES
        return _Outcome(status, f"HTTP {status}", retry)
