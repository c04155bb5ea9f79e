"""A short-lived, per-process memory of sessions already checked against the database.

Every authenticated request would otherwise read the session and the user (two queries).
An entry lives ``ttl`` seconds; the API empties the whole cache after every state-changing
request of this process (logout, revocation, role or password change...), so changes made
through a worker apply to it at once. Changes made elsewhere (another worker, the CLI)
apply within ``ttl`` seconds; ``ttl`` 0 disables the cache.
"""

from __future__ import annotations

import threading
import time

from aggregator.security.identity import Principal

_MAX_ENTRIES = 10_000


class PrincipalCache:
    """``(session id, user id) -> Principal`` for at most ``ttl`` seconds."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[tuple[str, str], tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def get(self, session_id: str, user_id: str) -> Principal | None:
        """The principal checked less than ``ttl`` seconds ago, else None."""
        if self.ttl <= 0:
            return None
        entry = self._entries.get((session_id, user_id))
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]

    def put(self, session_id: str, user_id: str, principal: Principal) -> None:
        """Remember a principal just checked against the database."""
        if self.ttl <= 0:
            return
        with self._lock:
            if len(self._entries) >= _MAX_ENTRIES:
                self._entries.clear()
            self._entries[(session_id, user_id)] = (time.monotonic() + self.ttl, principal)

    def clear(self) -> None:
        """Forget everything (after a request that may have changed sessions or users)."""
        with self._lock:
            self._entries.clear()
