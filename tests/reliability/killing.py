"""Run the CLI in a child process and SIGKILL it after a number of committed checkpoints."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path


def run_cli(
    args: list[str], env_home: Path, script: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the CLI to completion."""
    cmd = [sys.executable, str(script)] if script else [sys.executable, "-m", "aggregator.cli.main"]
    return subprocess.run(
        [*cmd, *args], capture_output=True, text=True, env=_env(env_home), timeout=300, check=False
    )


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(AGGREGATOR_HOME=str(home), AGGREGATOR_LOG_LEVEL="info", AGGREGATOR_LOG_FORMAT="json")
    return env


def kill_after_checkpoints(
    args: list[str],
    env_home: Path,
    checkpoints: int,
    script: Path | None = None,
    jitter: float = 0.3,
) -> int:
    """Start the CLI, wait for ``checkpoints`` committed checkpoints, sleep a random jitter, then
    SIGKILL it. Returns how many checkpoints were seen before the kill."""
    cmd = [sys.executable, str(script)] if script else [sys.executable, "-m", "aggregator.cli.main"]
    proc = subprocess.Popen(
        [*cmd, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(env_home),
    )
    seen = 0
    assert proc.stderr is not None
    deadline = time.monotonic() + 120
    for line in proc.stderr:
        if time.monotonic() > deadline:
            break
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if event.get("event") == "checkpoint.committed":
            seen += 1
            if seen >= checkpoints:
                break
    time.sleep(random.uniform(0, jitter))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, f"process ended on its own ({proc.returncode})"
    return seen
