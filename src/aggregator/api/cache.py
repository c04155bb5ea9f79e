"""Redis cache of hot read responses (connector catalog, pipeline lists).

On only when ``AGGREGATOR_REDIS_URL`` is set. Entries are keyed by a **scope version**:
``aggregator:cache:v:<scope>`` is a counter, and an entry lives at
``aggregator:cache:e:<scope>:<version>:<key>``. A write bumps the scope's version
(``INCR``) before it answers, so the next read, by any worker, misses and loads fresh
data; old entries are never served again and expire by TTL. A reader takes the version
*before* it loads, so a load racing a write is stored under the old version and is never
seen after the bump. The version and the entry are fetched in one round trip (a Lua
script). When Redis fails, requests go to the database (logged, never an error).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import structlog
from fastapi import Request

log = structlog.get_logger(__name__)
PREFIX = "aggregator:cache"
TTL_SECONDS = 300
_LOOKUP = """
local v = redis.call('GET', KEYS[1]) or '0'
return {v, redis.call('GET', ARGV[1] .. v .. ':' .. ARGV[2])}
"""


class ResponseCache:
    """Serialized responses by scope and key; a no-op without Redis."""

    def __init__(self, url: str | None, ttl: int = TTL_SECONDS) -> None:
        self.ttl = ttl
        self.hits = 0
        self.misses = 0
        self._client: Any = None
        self._lookup: Any = None
        if url:
            import redis

            self._client = redis.Redis.from_url(url, socket_timeout=0.5)
            self._lookup = self._client.register_script(_LOOKUP)

    @property
    def enabled(self) -> bool:
        """Whether Redis is configured."""
        return self._client is not None

    def get_or_load(self, scope: str, key: str, load: Callable[[], bytes]) -> bytes:
        """The cached bytes of ``scope``/``key``, or ``load()`` stored for next time."""
        if self._client is None:
            return load()
        try:
            version, cached = self._lookup(
                keys=[f"{PREFIX}:v:{scope}"], args=[f"{PREFIX}:e:{scope}:", key]
            )
        except Exception as exc:
            log.warning("cache.unavailable", error=str(exc))
            return load()
        if cached is not None:
            self.hits += 1
            return bytes(cached)
        self.misses += 1
        value = load()
        entry = f"{PREFIX}:e:{scope}:{version.decode()}:{key}"
        try:
            self._client.set(entry, value, ex=self.ttl)
        except Exception as exc:
            log.warning("cache.unavailable", error=str(exc))
        return value

    def invalidate(self, scope: str) -> None:
        """Make every entry of ``scope`` stale (call after the write committed)."""
        if self._client is None:
            return
        try:
            self._client.incr(f"{PREFIX}:v:{scope}")
        except Exception as exc:
            # Without the bump readers could see old data for up to the TTL: say so loudly.
            log.error("cache.invalidate_failed", scope=scope, error=str(exc))

    def close(self) -> None:
        """Release the connection pool."""
        if self._client is not None:
            self._client.close()


_lock = threading.Lock()


def get_cache(request: Request) -> ResponseCache:
    """The application's cache (created at first use from the platform's settings)."""
    state = request.app.state
    cache: ResponseCache | None = getattr(state, "response_cache", None)
    if cache is None:
        with _lock:
            cache = getattr(state, "response_cache", None)
            if cache is None:
                cache = ResponseCache(state.platform.settings.redis_url)
                state.response_cache = cache
    return cache


def pipelines_scope(workspace_id: str) -> str:
    """The scope of a workspace's pipeline lists."""
    return f"ws:{workspace_id}:pipelines"


CATALOG_SCOPE = "catalog"
