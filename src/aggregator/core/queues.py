"""Handing items between threads through bounded queues that a stop event can interrupt."""

from __future__ import annotations

import queue
import threading
from typing import TypeVar

T = TypeVar("T")


def put_unless_stopped(out: queue.Queue[T], item: T, stop: threading.Event) -> bool:
    """Put ``item``, waiting for room; ``False`` (item dropped) once ``stop`` is set."""
    while not stop.is_set():
        try:
            out.put(item, timeout=0.2)
            return True
        except queue.Full:
            continue
    return False
