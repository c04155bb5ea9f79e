"""Notifications of runs that finish outside the API server (``aggregator run``).

The API server notifies its own runs with its long-lived webhook dispatcher. Any other run
ends here (the engine's default run-finished hook): when some webhook or alert rule is
active, a short-lived dispatcher writes the run event and the alerts (one transaction),
sends them and waits up to :data:`WAIT_SECONDS`; whatever is still pending then (a
receiver retrying) stays in the outbox, and an API server sends it (see ADR 0005).
"""

from __future__ import annotations

import structlog
from sqlalchemy import select

from aggregator.metadata.alert_models import AlertRule
from aggregator.metadata.store import MetadataStore, RunRecord
from aggregator.metadata.webhook_models import Webhook

log = structlog.get_logger(__name__)
WAIT_SECONDS = 15.0


def anything_to_notify(store: MetadataStore) -> bool:
    """Whether any webhook or alert rule is active (one cheap query each)."""
    with store.session() as s:
        hook = s.scalar(select(Webhook.id).where(Webhook.active.is_(True)).limit(1))
        if hook is not None:
            return True
        rule = s.scalar(select(AlertRule.id).where(AlertRule.active.is_(True)).limit(1))
        return rule is not None


def run_finished(store: MetadataStore, record: RunRecord, wait: float = WAIT_SECONDS) -> list[str]:
    """Notify about ``record``; the delivery ids (never raises: a run's outcome stands)."""
    try:
        if not anything_to_notify(store):
            return []
        # imported only now: the API layer (FastAPI) is not needed by runs without webhooks
        from aggregator.api.services.webhooks import WebhookDispatcher
        from aggregator.security.crypto import load_box
        from aggregator.settings import load_settings

        settings = load_settings()
        dispatcher = WebhookDispatcher(store, load_box(settings), settings)
    except Exception as exc:  # no traceback: frames may hold key material
        log.error("notify.failed", run_id=record.id, error=type(exc).__name__)
        return []
    try:
        created = dispatcher.notify_run(record)
        if created and not dispatcher.wait_idle(wait):
            log.warning("notify.pending", run_id=record.id, deliveries=len(created))
        return created
    finally:
        dispatcher.close()
