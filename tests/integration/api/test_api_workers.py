"""``aggregator api --workers N`` serves with N uvicorn worker processes that stay up."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                found.append(int(entry.name))
    return found


def test_api_with_two_workers(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGGREGATOR_")}
    env["AGGREGATOR_HOME"] = str(tmp_path / "home")
    aggregator = str(Path(sys.executable).parent / "aggregator")
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [aggregator, "api", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline, ready = time.monotonic() + 240, None
        while time.monotonic() < deadline and ready is None:
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
                    ready = json.loads(r.read())
            except OSError:
                time.sleep(0.5)
        assert ready == {"status": "ok", "checks": {"metadata": "ok"}}
        started = sorted(_children(server.pid))  # the workers (and multiprocessing's tracker)
        time.sleep(10)  # past uvicorn's default 5 s worker health-check
        assert sorted(_children(server.pid)) == started  # none killed and respawned
        assert len(started) >= 2
        assert "died" not in (tmp_path / "server.log").read_text()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(60)
