"""What the two CDC lag tools (``cdc_lag.py``, ``mysql_cdc_lag.py``) share: a reader of the
``aggregator run --follow`` JSON log that notes each ``committed changes up to ...`` event
with its arrival time, a polling wait, and the lag figures."""

from __future__ import annotations

import bisect
import json
import re
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any


class Watcher:
    """Reads the CLI's JSON log: commit events, their position (parsed by ``parse`` from
    the match of ``pattern``) and arrival time; checkpoints; the last lines for errors."""

    def __init__(
        self,
        proc: subprocess.Popen[str],
        pattern: re.Pattern[str],
        parse: Callable[[re.Match[str]], Any],
    ) -> None:
        self.pattern, self.parse = pattern, parse
        self.positions: list[Any] = []
        self.times: list[float] = []
        self.checkpoints = 0
        self.tail: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            arrived = time.time()
            self.tail = [*self.tail[-30:], line]
            try:
                event = str(json.loads(line).get("event", ""))
            except (json.JSONDecodeError, AttributeError):
                continue
            if event == "checkpoint.committed":
                self.checkpoints += 1
            found = self.pattern.search(event)
            if found:
                self.positions.append(self.parse(found))
                self.times.append(arrived)


def wait(what: str, check: Callable[[], bool], seconds: float) -> None:
    """Poll ``check`` until it holds; exit with a message after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.02)


def lag_figures(
    txns: list[tuple[Any, float]], watcher: Watcher, *, after: bool, txn: int, wrote: float
) -> dict[str, Any]:
    """Lag of each transaction ``(position, commit time)``: the arrival of the first commit
    event at or past its position (``after``: strictly past it) minus its commit time."""
    find = bisect.bisect_right if after else bisect.bisect_left
    lags = sorted(watcher.times[find(watcher.positions, p)] - t for p, t in txns)
    changes = len(txns) * txn
    return {
        "changes": changes,
        "changes_per_s": round(changes / wrote, 1),
        "lag_p50_s": round(statistics.median(lags), 3),
        "lag_p99_s": round(lags[min(len(lags) - 1, int(len(lags) * 0.99))], 3),
        "lag_max_s": round(lags[-1], 3),
        "commits": len(watcher.positions),
    }
