"""Fixed-window rate limits, in Redis when configured (shared by every process), else memory."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Decision:
    """Whether a hit is allowed; when not, how long until it would be."""

    allowed: bool
    remaining: int
    retry_after: int


class RateLimiter(Protocol):
    """Counts hits per key in fixed windows."""

    def hit(self, key: str, limit: int, window: int) -> Decision:
        """Count one hit of ``key``; allowed while the window holds at most ``limit``."""

    def hit_many(self, keys: list[str], limit: int, window: int) -> Decision:
        """Count one hit of each key at once; allowed only while every key is."""

    def count(self, key: str, window: int) -> int:
        """Hits of ``key`` in the current window (without counting one)."""

    def reset(self, key: str, window: int) -> None:
        """Forget the current window of ``key``."""


def _window(window: int) -> tuple[int, int]:
    now = int(time.time())
    start = now - now % window
    return start, start + window - now


class MemoryRateLimiter:
    """Per-process counters (single-process deployments and tests)."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, limit: int, window: int) -> Decision:
        """See :class:`RateLimiter`."""
        start, left = _window(window)
        with self._lock:
            if len(self._counts) > 100_000:
                self._counts = {k: v for k, v in self._counts.items() if k[1] == start}
            n = self._counts.get((key, start), 0) + 1
            self._counts[(key, start)] = n
        return Decision(n <= limit, max(0, limit - n), left if n > limit else 0)

    def hit_many(self, keys: list[str], limit: int, window: int) -> Decision:
        """See :class:`RateLimiter`."""
        return _most_limited([self.hit(key, limit, window) for key in keys])

    def count(self, key: str, window: int) -> int:
        """See :class:`RateLimiter`."""
        start, _ = _window(window)
        with self._lock:
            return self._counts.get((key, start), 0)

    def reset(self, key: str, window: int) -> None:
        """See :class:`RateLimiter`."""
        start, _ = _window(window)
        with self._lock:
            self._counts.pop((key, start), None)


def _most_limited(decisions: list[Decision]) -> Decision:
    """One decision for several keys: refused if any is, the longest wait, the least left."""
    return Decision(
        all(d.allowed for d in decisions),
        min(d.remaining for d in decisions),
        max(d.retry_after for d in decisions),
    )


#: INCR every key (EXPIRE when it is new): several counters in one round trip, atomically.
_HIT_SCRIPT = """
local counts = {}
for i, key in ipairs(KEYS) do
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('EXPIRE', key, ARGV[1]) end
  counts[i] = n
end
return counts
"""


class RedisRateLimiter:
    """Counters in Redis: ``INCR`` plus ``EXPIRE`` on a key per window, in a Lua script
    (one round trip per request, whatever the number of keys)."""

    def __init__(self, url: str, namespace: str = "aggregator:rl") -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=2)
        self._ns = namespace
        self._hit = self._redis.register_script(_HIT_SCRIPT)

    def _key(self, key: str, window: int) -> str:
        start, _ = _window(window)
        return f"{self._ns}:{window}:{start}:{key}"

    def hit(self, key: str, limit: int, window: int) -> Decision:
        """See :class:`RateLimiter`."""
        return self.hit_many([key], limit, window)

    def hit_many(self, keys: list[str], limit: int, window: int) -> Decision:
        """See :class:`RateLimiter`."""
        names = [self._key(key, window) for key in keys]
        counts = self._hit(keys=names, args=[window + 1])
        _, left = _window(window)
        return _most_limited(
            [Decision(n <= limit, max(0, limit - n), left if n > limit else 0) for n in counts]
        )

    def count(self, key: str, window: int) -> int:
        """See :class:`RateLimiter`."""
        value = self._redis.get(self._key(key, window))
        return int(value) if value is not None else 0  # type: ignore[arg-type]

    def reset(self, key: str, window: int) -> None:
        """See :class:`RateLimiter`."""
        self._redis.delete(self._key(key, window))

    def ping(self) -> bool:
        """Whether Redis answers."""
        return bool(self._redis.ping())


def make_limiter(redis_url: str | None) -> RateLimiter:
    """Redis when a URL is configured, memory otherwise."""
    return RedisRateLimiter(redis_url) if redis_url else MemoryRateLimiter()
