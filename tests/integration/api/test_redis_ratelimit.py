"""The Redis rate limiter against the real Redis: shared counters, expiry, reset."""

from __future__ import annotations

import uuid

import pytest
import redis

from aggregator.security.ratelimit import RedisRateLimiter, make_limiter

pytestmark = pytest.mark.integration


def test_counts_are_shared_between_limiters_and_expire(redis_url: str) -> None:
    key = f"test:{uuid.uuid4().hex}"
    a, b = make_limiter(redis_url), make_limiter(redis_url)
    assert isinstance(a, RedisRateLimiter)
    decisions = [x.hit(key, 3, 60) for x in (a, b, a, b)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[-1].retry_after > 0 and b.count(key, 60) == 4
    stored = list(redis.Redis.from_url(redis_url).scan_iter(f"aggregator:rl:60:*:{key}"))
    assert len(stored) == 1
    ttl = redis.Redis.from_url(redis_url).ttl(stored[0])
    assert 0 < int(ttl) <= 61
    a.reset(key, 60)
    assert b.count(key, 60) == 0 and b.hit(key, 3, 60).allowed
