"""Audit hash chain (append, verify, tamper detection) and the in-memory rate limiter."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from aggregator.metadata.store import MetadataStore
from aggregator.security import audit
from aggregator.security.ratelimit import MemoryRateLimiter

pytestmark = pytest.mark.unit
CTX = audit.AuditContext(actor="user:a@example.com", ip="127.0.0.1", request_id="r1")


def _fill(store: MetadataStore, n: int) -> None:
    for i in range(n):
        with store.session() as s, s.begin():
            audit.append(s, CTX, "thing.created", object_type="thing", object_id=str(i))


def test_chain_verifies(store: MetadataStore) -> None:
    _fill(store, 5)
    with store.session() as s:
        result = audit.verify(s, batch=2)
    assert result.ok and result.events == 5


def test_rolled_back_change_leaves_no_event(store: MetadataStore) -> None:
    with pytest.raises(RuntimeError), store.session() as s, s.begin():
        audit.append(s, CTX, "x")
        raise RuntimeError
    with store.session() as s:
        assert audit.verify(s).events == 0


def _bypass(store: MetadataStore, *statements: str) -> None:
    """Tamper as an attacker with DDL rights would: drop the triggers first."""
    with store.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_events_no_update"))
        conn.execute(text("DROP TRIGGER audit_events_no_delete"))
        for st in statements:
            conn.execute(text(st))


@pytest.mark.parametrize(
    ("statements", "problem"),
    [
        (["UPDATE audit_events SET actor = 'mallory' WHERE seq = 2"], "event 2 was altered"),
        (["DELETE FROM audit_events WHERE seq = 2"], "event 2 is missing"),
        (
            ["DELETE FROM audit_events WHERE seq = 3", "UPDATE audit_head SET seq = 2"],
            "chain head",
        ),
    ],
)
def test_tampering_is_detected(store: MetadataStore, statements: list[str], problem: str) -> None:
    _fill(store, 3)
    _bypass(store, *statements)
    with store.session() as s:
        result = audit.verify(s)
    assert not result.ok and problem in (result.problem or "")


def test_memory_rate_limiter() -> None:
    limiter = MemoryRateLimiter()
    decisions = [limiter.hit("ip:1", 3, 60) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[-1].retry_after > 0
    assert limiter.count("ip:1", 60) == 4
    limiter.reset("ip:1", 60)
    assert limiter.hit("ip:1", 3, 60).allowed
