"""Alert rules: CRUD, and their evaluation when a run finishes.

:func:`evaluate` decides which rules of a workspace a finished run matches;
:func:`raise_alerts` records one :class:`AlertEvent` per match and, when the rule names an
active webhook, queues an ``alert.triggered`` delivery in the same transaction (the
webhook outbox sends it: signed, retried, SSRF-guarded).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from aggregator.api.errors import ApiError
from aggregator.metadata.alert_models import AlertEvent, AlertRule
from aggregator.metadata.quality_models import QualityResult
from aggregator.metadata.store import RunRecord
from aggregator.metadata.webhook_models import Webhook
from aggregator.security import audit

ALERT_EVENT = "alert.triggered"
CONDITIONS = (
    "run.failed",
    "run.succeeded",
    "quality.failed",
    "anomaly.detected",
    "duration.above",
    "rows.below",
    "rows.above",
)
#: Conditions comparing a number of the run with the rule's ``threshold``.
THRESHOLD_CONDITIONS = frozenset({"duration.above", "rows.below", "rows.above"})
_LISTED = 20  # failed checks / anomalies named in one alert


@dataclass(frozen=True)
class Match:
    """A rule holding for a run: a one-line message and the numbers behind it."""

    rule: AlertRule
    message: str
    observed: dict[str, Any]


# --- CRUD ----------------------------------------------------------------------------------


def get(s: Session, workspace_id: str, rule_id: str) -> AlertRule:
    """A rule of the workspace, or 404."""
    row = s.get(AlertRule, rule_id)
    if row is None or row.workspace_id != workspace_id:
        raise ApiError(404, "not_found", "no such alert rule")
    return row


def list_for(s: Session, workspace_id: str) -> list[AlertRule]:
    """The workspace's rules by name."""
    query = select(AlertRule).where(AlertRule.workspace_id == workspace_id)
    return list(s.scalars(query.order_by(AlertRule.name)))


def _summary(row: AlertRule) -> dict[str, Any]:
    return {
        "name": row.name,
        "condition": row.condition,
        "threshold": row.threshold,
        "pipelines": row.pipelines,
        "webhook_id": row.webhook_id,
        "active": row.active,
    }


def _check(s: Session, workspace_id: str, values: dict[str, Any]) -> None:
    """422 when the threshold does not fit the condition or the webhook is not ours."""
    condition, threshold = values["condition"], values.get("threshold")
    if condition in THRESHOLD_CONDITIONS and threshold is None:
        raise ApiError(422, "invalid_rule", f"threshold: required by condition {condition}")
    if condition not in THRESHOLD_CONDITIONS and threshold is not None:
        raise ApiError(422, "invalid_rule", f"threshold: condition {condition} takes none")
    hook_id = values.get("webhook_id")
    if hook_id is not None:
        hook = s.get(Webhook, hook_id)
        if hook is None or hook.workspace_id != workspace_id:
            raise ApiError(422, "invalid_rule", "webhook_id: no such webhook in this workspace")


def create(
    s: Session, ctx: audit.AuditContext, workspace_id: str, values: dict[str, Any]
) -> AlertRule:
    """Store a rule (audited)."""
    _check(s, workspace_id, values)
    taken = select(AlertRule.id).where(
        AlertRule.workspace_id == workspace_id, AlertRule.name == values["name"]
    )
    if s.scalar(taken):
        raise ApiError(409, "conflict", f"an alert rule named {values['name']!r} exists")
    now = datetime.now(UTC)
    row = AlertRule(
        id=str(uuid.uuid4()),
        workspace_id=workspace_id,
        name=values["name"],
        condition=values["condition"],
        threshold=values.get("threshold"),
        pipelines=values.get("pipelines"),
        webhook_id=values.get("webhook_id"),
        active=values.get("active", True),
        created_by=ctx.actor,
        created_at=now,
        updated_at=now,
    )
    s.add(row)
    audit.append(
        s, ctx, "alert_rule.created", object_type="alert_rule", object_id=row.id,
        details=_summary(row),
    )  # fmt: skip
    s.commit()
    return row


def update(
    s: Session, ctx: audit.AuditContext, row: AlertRule, changes: dict[str, Any]
) -> AlertRule:
    """Change fields (the result must still be a valid rule; audited)."""
    before = _summary(row)
    merged = {**before, **changes}
    _check(s, row.workspace_id, merged)
    if "name" in changes and changes["name"] != row.name:
        taken = select(AlertRule.id).where(
            AlertRule.workspace_id == row.workspace_id, AlertRule.name == changes["name"]
        )
        if s.scalar(taken):
            raise ApiError(409, "conflict", f"an alert rule named {changes['name']!r} exists")
    for key in ("name", "condition", "threshold", "pipelines", "webhook_id", "active"):
        setattr(row, key, merged[key])
    row.updated_at = datetime.now(UTC)
    audit.append(
        s, ctx, "alert_rule.updated", object_type="alert_rule", object_id=row.id,
        details={"before": before, "after": _summary(row)},
    )  # fmt: skip
    s.commit()
    return row


def delete(s: Session, ctx: audit.AuditContext, row: AlertRule) -> None:
    """Remove a rule; the alerts it raised stay queryable (audited)."""
    audit.append(
        s, ctx, "alert_rule.deleted", object_type="alert_rule", object_id=row.id,
        details={"name": row.name},
    )  # fmt: skip
    s.delete(row)
    s.commit()


def events(
    s: Session,
    workspace_id: str,
    *,
    rule_id: str | None,
    pipeline: str | None,
    run_id: str | None,
    limit: int,
) -> list[AlertEvent]:
    """Alerts raised in the workspace, newest first, optionally filtered."""
    query = select(AlertEvent).where(AlertEvent.workspace_id == workspace_id)
    if rule_id is not None:
        query = query.where(AlertEvent.rule_id == rule_id)
    if pipeline is not None:
        query = query.where(AlertEvent.pipeline == pipeline)
    if run_id is not None:
        query = query.where(AlertEvent.run_id == run_id)
    order = (AlertEvent.created_at.desc(), AlertEvent.id)
    return list(s.scalars(query.order_by(*order).limit(limit)))


# --- evaluation ----------------------------------------------------------------------------


def _quality(s: Session, record: RunRecord) -> list[QualityResult]:
    query = select(QualityResult).where(QualityResult.run_id == record.id, QualityResult.failed > 0)
    return list(s.scalars(query.order_by(QualityResult.stream, QualityResult.id)))


def _rows_loaded(record: RunRecord) -> int:
    return sum(stream.rows_loaded for stream in record.streams)


def match(rule: AlertRule, record: RunRecord, failed: list[QualityResult]) -> Match | None:
    """Whether ``rule`` holds for the finished run (``failed``: its failed quality results)."""
    if rule.pipelines and record.pipeline not in rule.pipelines:
        return None
    condition, where = rule.condition, f"pipeline {record.pipeline!r}"
    if condition == "run.failed" and record.status == "failed":
        return Match(rule, f"{where}: run failed: {record.error}", {"error": record.error})
    if condition == "run.succeeded" and record.status == "succeeded":
        return Match(rule, f"{where}: run succeeded", {"rows_loaded": _rows_loaded(record)})
    if condition in ("quality.failed", "anomaly.detected"):
        anomaly = condition == "anomaly.detected"
        hits = [q for q in failed if (q.kind == "anomaly") is anomaly]
        if not hits:
            return None
        listed = [
            {"stream": q.stream, "check": q.check, "status": q.status, "failed": q.failed,
             "detail": q.detail}
            for q in hits[:_LISTED]
        ]  # fmt: skip
        what = "anomalies flagged" if anomaly else "quality checks failed"
        return Match(rule, f"{where}: {len(hits)} {what}", {"count": len(hits), "results": listed})
    threshold = rule.threshold if rule.threshold is not None else 0.0
    if condition == "duration.above" and record.seconds > threshold:
        seconds = round(record.seconds, 3)
        observed = {"seconds": seconds, "threshold": threshold}
        return Match(rule, f"{where}: run took {seconds} s (> {threshold:g} s)", observed)
    if condition in ("rows.below", "rows.above") and record.status == "succeeded":
        rows = _rows_loaded(record)
        below = condition == "rows.below"
        if (rows < threshold) if below else (rows > threshold):
            sign = "<" if below else ">"
            observed = {"rows_loaded": rows, "threshold": threshold}
            return Match(rule, f"{where}: {rows} rows loaded ({sign} {threshold:g})", observed)
    return None


def evaluate(s: Session, workspace_id: str, record: RunRecord) -> list[Match]:
    """The active rules of the workspace the finished run matches."""
    query = select(AlertRule).where(
        AlertRule.workspace_id == workspace_id, AlertRule.active.is_(True)
    )
    rules = list(s.scalars(query.order_by(AlertRule.name)))
    if not rules:
        return []
    wanted = any(r.condition in ("quality.failed", "anomaly.detected") for r in rules)
    quality = _quality(s, record) if wanted else []
    found = (match(rule, record, quality) for rule in rules)
    return [m for m in found if m is not None]


#: ``(session, workspace_id, event, payload data, webhook id) -> delivery id or None``
Queue = Callable[[Session, str, str, dict[str, Any], str], str | None]


def raise_alerts(s: Session, workspace_id: str, record: RunRecord, queue: Queue) -> list[str]:
    """Record an alert per matching rule and queue its webhook delivery; the delivery ids.

    Nothing is committed here: the caller commits alerts and deliveries together.
    """
    now = datetime.now(UTC)
    delivery_ids: list[str] = []
    for m in evaluate(s, workspace_id, record):
        alert_id = str(uuid.uuid4())
        data = {
            "alert_id": alert_id,
            "rule": {
                "id": m.rule.id,
                "name": m.rule.name,
                "condition": m.rule.condition,
                "threshold": m.rule.threshold,
            },
            "pipeline": record.pipeline,
            "run_id": record.id,
            "message": m.message[:1000],
            "observed": m.observed,
            "run": record.to_json(),
        }
        delivery = None
        if m.rule.webhook_id is not None:
            delivery = queue(s, workspace_id, ALERT_EVENT, data, m.rule.webhook_id)
        s.add(
            AlertEvent(
                id=alert_id, workspace_id=workspace_id, rule_id=m.rule.id,
                rule_name=m.rule.name, condition=m.rule.condition, pipeline=record.pipeline,
                run_id=record.id, message=m.message[:1000], observed=m.observed,
                delivery_id=delivery, created_at=now,
            )
        )  # fmt: skip
        if delivery is not None:
            delivery_ids.append(delivery)
    return delivery_ids
