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


def test_several_keys_are_counted_in_one_call(redis_url: str) -> None:
    """The IP and the principal of a request: one script call counts both; the request is
    refused as soon as either is over the limit, and each counter keeps its own expiry."""
    ip, user = f"ip:{uuid.uuid4().hex}", f"user:{uuid.uuid4().hex}"
    limiter = make_limiter(redis_url)
    assert limiter.hit(ip, 3, 60).allowed and limiter.hit(ip, 3, 60).allowed
    first = limiter.hit_many([ip, user], 3, 60)
    assert (first.allowed, first.remaining, first.retry_after) == (True, 0, 0)
    second = limiter.hit_many([ip, user], 3, 60)
    assert not second.allowed and second.remaining == 0 and second.retry_after > 0
    assert (limiter.count(ip, 60), limiter.count(user, 60)) == (4, 2)
    client = redis.Redis.from_url(redis_url)
    for key in (ip, user):
        (stored,) = client.scan_iter(f"aggregator:rl:60:*:{key}")
        assert 0 < int(client.ttl(stored)) <= 61  # type: ignore[arg-type]
