"""Bounded connection pools, reused within a run (psycopg and ADBC connections).

A :class:`Pool` keeps at most ``size`` connections open, lends them out with
:meth:`Pool.connection`, and checks a connection before lending it again: one that fails the
check (the server ended its backend, the network dropped it) is closed and replaced. A new
connection is opened in the borrowing thread, so a wrong password or an unreachable host
raises at once with the server's message (psycopg_pool connects in background threads and
retries for minutes, and it cannot hold ADBC connections, the bulk path). A borrower that
finds every connection in use waits up to ``wait_seconds``, then gets an error saying to
raise ``pool_size``. :meth:`Pool.close` closes idle connections, and the ones still lent out
when they come back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from aggregator.core.errors import ConnectorError

C = TypeVar("C")


class Pool(Generic[C]):
    """At most ``size`` connections made by ``connect``; ``check`` raises for a broken one,
    ``reset`` ends what a borrower left open (a transaction) before the next one."""

    def __init__(
        self,
        name: str,
        size: int,
        connect: Callable[[], C],
        check: Callable[[C], None],
        reset: Callable[[C], None],
        close: Callable[[C], None],
        wait_seconds: float = 120.0,
    ) -> None:
        self.name = name
        self.size = size
        self._connect, self._check, self._reset, self._close = connect, check, reset, close
        self.wait_seconds = wait_seconds
        self._idle: list[C] = []
        self._open = 0  # idle + lent out
        self._closed = False
        self._cond = threading.Condition()

    @property
    def open_connections(self) -> int:
        """Connections open now (idle or lent out)."""
        with self._cond:
            return self._open

    def acquire(self) -> C:
        """A checked connection: an idle one, a new one, or the next one given back."""
        deadline = time.monotonic() + self.wait_seconds
        while True:
            with self._cond:
                if self._closed:
                    raise ConnectorError(f"{self.name}: the connection pool is closed")
                while not self._idle and self._open >= self.size:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise ConnectorError(
                            f"{self.name}: all {self.size} pooled connections stayed in use for "
                            f"{self.wait_seconds:.0f} s; raise `pool_size` (it must cover "
                            "`parallel` readers and every stream read or written at once)"
                        )
                    self._cond.wait(left)
                idle = self._idle.pop() if self._idle else None
                if idle is None:
                    self._open += 1  # a place for the connection opened below
            if idle is None:
                try:
                    return self._connect()
                except BaseException:
                    self._forget()
                    raise
            try:
                self._check(idle)
                return idle
            except Exception:  # broken: replace it and try again
                self._discard(idle)

    def release(self, con: C, broken: bool = False) -> None:
        """Give ``con`` back (closed instead when ``broken``, its reset fails, or the pool
        is closed)."""
        if not broken:
            try:
                self._reset(con)
            except Exception:
                broken = True
        with self._cond:
            if not broken and not self._closed:
                self._idle.append(con)
                self._cond.notify()
                return
        self._discard(con)

    @contextmanager
    def connection(self) -> Iterator[C]:
        """A connection for the ``with`` block; given back (or replaced) afterwards."""
        con = self.acquire()
        broken = False
        try:
            yield con
        except BaseException:
            broken = _looks_broken(con)
            raise
        finally:
            self.release(con, broken)

    def close(self) -> None:
        """Close idle connections; lent ones are closed when given back."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._cond.notify_all()
        for con in idle:
            self._discard(con)

    def _discard(self, con: C) -> None:
        try:
            self._close(con)
        except Exception:  # noqa: S110 - a broken connection may fail to close
            pass
        finally:
            self._forget()

    def _forget(self) -> None:
        with self._cond:
            self._open -= 1
            self._cond.notify()


def _looks_broken(con: object) -> bool:
    """A psycopg connection whose link is gone (ADBC ones are found out by the check)."""
    return bool(getattr(con, "broken", False))
