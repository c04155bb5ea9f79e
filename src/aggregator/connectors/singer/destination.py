"""The ``singer`` destination: any Singer target, fed SCHEMA/RECORD/STATE lines.

One target process per stream writer. Rows become ``RECORD`` lines column by column
(:mod:`.encode`); quarantined rows go to the stream ``<table>__quarantine``; each commit
sends a ``STATE`` line ``{"aggregator": {"stream", "seq", "state"}}``. Singer targets
emit a state once it is flushed (target-jsonl: when it ends), so our state file is written
from the states the target echoes and, when it exits cleanly, from the last one sent.

Guarantee: at least once. A target that dies after writing rows but before echoing their
state will see them again on the next run (Singer targets offer no transaction); use a
target that upserts on ``key_properties`` (or our own destinations) for exactly once.
State lives in ``$AGGREGATOR_HOME/singer-state/<pipeline>/<stream>.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import IO, Any, ClassVar

import pyarrow as pa
from pydantic import Field

from aggregator.connectors.sdk import (
    CheckResult,
    ConnectorConfig,
    Destination,
    DestinationSession,
    StreamWriter,
)
from aggregator.connectors.singer.encode import record_lines, schema_message
from aggregator.core.catalog import ConfiguredStream
from aggregator.core.errors import ConfigError, ConnectorError
from aggregator.plugins.manager import executable
from aggregator.plugins.process import tail, write_private


class SingerTargetConfig(ConnectorConfig):
    """Which target, and its own configuration."""

    target: str = Field(..., description="Plugin name (aggregator plugins add) or executable.")
    target_config: dict[str, Any] = Field(
        {}, alias="config", description="The target's config (written to a private temp file)."
    )
    state_dir: str | None = Field(
        None, description="Where states are kept (default $AGGREGATOR_HOME/singer-state)."
    )


class _Target:
    """A running target: stdin for messages, a thread collecting the states it echoes."""

    def __init__(self, exe: str, config: dict[str, Any], name: str) -> None:
        self.name = name
        self.tmp = tempfile.TemporaryDirectory(prefix="singer-target-")
        path = write_private(Path(self.tmp.name), "config.json", config)
        self.stderr: IO[bytes] = (Path(self.tmp.name) / "stderr.txt").open("w+b")
        self.process = subprocess.Popen(
            [exe, "--config", path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
        )
        self.echoed: list[Any] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                self.echoed.append(json.loads(line))
            except ValueError:
                continue

    def send(self, data: bytes) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(data)
        except BrokenPipeError:
            self.fail("stopped reading its input")

    def fail(self, what: str) -> None:
        code = self.process.wait()
        self.stderr.seek(0)
        raise ConnectorError(f"target {self.name} {what} (exit {code}): {tail(self.stderr.read())}")

    def close(self) -> None:
        assert self.process.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.process.stdin.close()
        code = self.process.wait()
        self.reader.join(timeout=10)
        if code != 0:
            self.fail("failed")
        self.stderr.close()
        self.tmp.cleanup()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.stderr.close()
        self.tmp.cleanup()


class SingerWriter(StreamWriter):
    """Writes one stream through its own target process."""

    def __init__(self, session: SingerSession, stream: ConfiguredStream) -> None:
        self.session = session
        self.stream = stream
        self.table = stream.table
        self.schema: pa.Schema | None = None
        self.quarantine_sent = False
        self.seq = 0
        self.sent: dict[int, dict[str, Any] | None] = {}
        self._target: _Target | None = None

    @property
    def target(self) -> _Target:
        if self._target is None:
            cfg = self.session.config
            self._target = _Target(executable(cfg.target), cfg.target_config, cfg.target)
        return self._target

    def current_schema(self) -> pa.Schema | None:
        return self.schema

    def apply_schema(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.target.send(schema_message(self.table, schema, self.stream.primary_key))

    def write(self, batch: pa.RecordBatch) -> None:
        self.target.send(record_lines(self.table, batch))

    def quarantine(self, rows: pa.Table) -> None:
        name = f"{self.table}__quarantine"
        if not self.quarantine_sent:
            self.target.send(schema_message(name, rows.schema, ()))
            self.quarantine_sent = True
        for batch in rows.to_batches():
            self.target.send(record_lines(name, batch))

    def commit(self, state: dict[str, Any] | None) -> None:
        self.seq += 1
        self.sent[self.seq] = state
        value = {"aggregator": {"stream": self.stream.name, "seq": self.seq, "state": state}}
        self.target.send((json.dumps({"type": "STATE", "value": value}) + "\n").encode())
        assert self.target.process.stdin is not None
        self.target.process.stdin.flush()
        self._persist_echoed()

    def _persist_echoed(self) -> None:
        for echoed in reversed(self._target.echoed if self._target else []):
            mine = echoed.get("aggregator") if isinstance(echoed, dict) else None
            if isinstance(mine, dict) and mine.get("stream") == self.stream.name:
                self.session.save_state(self.stream.name, mine.get("state"))
                return

    def finish(self, state: dict[str, Any] | None) -> None:
        self.commit(state)
        if self._target is not None:
            self._target.close()
            self._target = None
        self.session.save_state(self.stream.name, state)  # the target exited cleanly

    def abort(self) -> None:
        if self._target is not None:
            self._target.kill()
            self._target = None


class SingerSession(DestinationSession):
    """States of one pipeline, one file per stream."""

    def __init__(self, config: SingerTargetConfig, pipeline: str) -> None:
        self.config = config
        home = Path(os.environ.get("AGGREGATOR_HOME", ".aggregator"))
        base = Path(config.state_dir) if config.state_dir else home / "singer-state"
        self.directory = base / pipeline
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def _path(self, stream: str) -> Path:
        return self.directory / f"{stream}.json"

    def read_state(self, stream: str) -> dict[str, Any] | None:
        path = self._path(stream)
        if not path.exists():
            return None
        state: dict[str, Any] | None = json.loads(path.read_text())
        return state

    def save_state(self, stream: str, state: dict[str, Any] | None) -> None:
        """Atomically replace the state of ``stream``."""
        with self._lock:
            tmp = self._path(stream).with_suffix(".tmp")
            tmp.write_text(json.dumps(state))
            tmp.replace(self._path(stream))

    def reset_state(self, stream: str | None = None) -> None:
        for path in self.directory.glob(f"{stream or '*'}.json"):
            path.unlink()

    def writer(self, stream: ConfiguredStream, run_id: str) -> StreamWriter:
        return SingerWriter(self, stream)

    def close(self) -> None:
        return None


class SingerDestination(Destination[SingerTargetConfig]):
    """Writes through any Singer target (installed with ``aggregator plugins add``)."""

    name: ClassVar[str] = "singer"
    config_model = SingerTargetConfig
    description: ClassVar[str] = "Any Singer target (installed with `aggregator plugins add`)"

    def check(self) -> CheckResult:
        """The target is installed."""
        try:
            exe = executable(self.config.target)
        except ConfigError as exc:
            return CheckResult(False, exc.message)
        return CheckResult(True, f"target {self.config.target}: {exe}")

    def open(self, pipeline: str) -> DestinationSession:
        """A session keeping states under the state directory."""
        return SingerSession(self.config, pipeline)
