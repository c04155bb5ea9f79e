"""The ``airbyte`` source: Airbyte Python source connectors from PyPI, run as subprocesses.

``aggregator plugins add source-faker --pip-url airbyte-source-faker`` installs one into its
own virtualenv. ``check``/``discover`` run the connector's commands; ``read`` runs it with a
configured catalog of one stream and that stream's state. RECORD lines are parsed in blocks
by Arrow (the Singer parser, with Airbyte's ``record.data`` layout); each per-stream STATE
becomes a Checkpoint ``{"airbyte": <state message>}``, the last one only after the
connector exited cleanly. TRACE errors keep Airbyte's classification: ``config_error`` ->
ConfigError, ``transient_error`` -> TransientError, others -> ConnectorError.
Connectors published only as Docker images are not supported (the install says so).
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
from pydantic import Field, field_validator

from aggregator.connectors.sdk import CheckResult, ConnectorConfig, Source
from aggregator.connectors.singer.parse import SingerParser
from aggregator.connectors.singer.schema import arrow_schema, declared_types
from aggregator.core.catalog import Catalog, ConfiguredStream, Stream, SyncMode
from aggregator.core.errors import ConfigError, ConnectorError, TransientError
from aggregator.core.messages import Checkpoint, Log, Message, Quarantined, Records
from aggregator.plugins.manager import executable
from aggregator.plugins.process import chunks, enlarge_pipe, tail, write_private


class AirbyteSourceConfig(ConnectorConfig):
    """Which connector, and its own configuration."""

    connector: str = Field(
        ..., description="Plugin name (aggregator plugins add) or executable path."
    )

    @field_validator("connector")
    @classmethod
    def _not_a_docker_image(cls, value: str) -> str:
        if _DOCKER_IMAGE.match(value):
            name = value.split("/")[-1].split(":")[0]
            raise ValueError(
                f"{value!r} is a Docker image: Docker-only Airbyte connectors are not "
                f"supported; install a Python release from PyPI instead "
                f"(aggregator plugins add {name} --pip-url airbyte-{name}) and name the plugin"
            )
        return value

    connector_config: dict[str, Any] = Field(
        {}, alias="config", description="The connector's config (written to a private file)."
    )
    timeout_seconds: float = Field(300, gt=0, description="Timeout of spec, check, discover.")


#: ``airbyte/source-postgres``, ``airbyte/source-x:1.2.3``, ``docker.io/airbyte/...``
_DOCKER_IMAGE = re.compile(
    r"^(?:[\w.-]+(?::\d+)?/)?airbyte/[\w.-]+(?::[\w.-]+)?$|^[\w.-]+/[\w.-]+:[\w.-]+$"
)

_ERRORS: dict[str, type[ConnectorError] | type[ConfigError]] = {
    "config_error": ConfigError,
    "transient_error": TransientError,
}


def _messages(stdout: bytes) -> Iterator[dict[str, Any]]:
    for line in stdout.splitlines():
        if line.startswith(b"{"):
            try:
                yield json.loads(line)
            except ValueError:
                continue


def _trace_error(message: dict[str, Any]) -> dict[str, Any] | None:
    trace = message.get("trace") or {}
    return trace.get("error") if trace.get("type") == "ERROR" else None


class AirbyteSource(Source[AirbyteSourceConfig]):
    """Runs an Airbyte source connector through the Airbyte protocol."""

    name: ClassVar[str] = "airbyte"
    config_model = AirbyteSourceConfig
    description: ClassVar[str] = "Airbyte Python source connectors from PyPI"

    def __init__(self, config: AirbyteSourceConfig) -> None:
        super().__init__(config)
        self._catalog: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def _run(self, command: str) -> list[dict[str, Any]]:
        with tempfile.TemporaryDirectory(prefix="airbyte-") as tmp:
            args = [executable(self.config.connector), command]
            if command != "spec":
                config = write_private(Path(tmp), "config.json", self.config.connector_config)
                args += ["--config", config]
            try:
                done = subprocess.run(
                    args, capture_output=True, timeout=self.config.timeout_seconds
                )
            except subprocess.TimeoutExpired:
                raise TransientError(f"{self.config.connector} {command} timed out") from None
        messages = list(_messages(done.stdout))
        for message in messages:
            if (error := _trace_error(message)) is not None:
                raise self._error(command, error, done.stderr)
        if done.returncode != 0:
            raise ConnectorError(
                f"{self.config.connector} {command} failed (exit {done.returncode}): "
                + tail(done.stderr)
            )
        return messages

    def _error(self, what: str, error: dict[str, Any], stderr: bytes) -> Exception:
        cls = _ERRORS.get(str(error.get("failure_type")), ConnectorError)
        return cls(
            f"{self.config.connector} {what}: {error.get('message') or 'failed'}",
            detail=f"{error.get('internal_message') or ''}\n{tail(stderr)}",
        )

    def connector_spec(self) -> dict[str, Any]:
        """The connector's own connection specification (``spec`` is our wrapper's)."""
        for message in self._run("spec"):
            if message.get("type") == "SPEC":
                spec: dict[str, Any] = message["spec"]["connectionSpecification"]
                return spec
        raise ConnectorError(f"{self.config.connector} spec printed no SPEC message")

    def check(self) -> CheckResult:
        """The connector's own ``check``."""
        try:
            messages = self._run("check")
        except (ConfigError, ConnectorError) as exc:
            return CheckResult(False, exc.message)
        for message in messages:
            if message.get("type") == "CONNECTION_STATUS":
                status = message["connectionStatus"]
                return CheckResult(status.get("status") == "SUCCEEDED", status.get("message", ""))
        return CheckResult(False, f"{self.config.connector} check printed no CONNECTION_STATUS")

    def airbyte_catalog(self) -> dict[str, Any]:
        """The connector's catalog (``discover``, cached)."""
        with self._lock:
            if self._catalog is None:
                found = [m for m in self._run("discover") if m.get("type") == "CATALOG"]
                if not found:
                    raise ConnectorError(f"{self.config.connector} discover printed no CATALOG")
                self._catalog = found[0]["catalog"]
            assert self._catalog is not None
            return self._catalog

    def _entry(self, name: str) -> dict[str, Any]:
        for entry in self.airbyte_catalog().get("streams", []):
            if entry.get("name") == name:
                return dict(entry)
        raise ConfigError(f"connector {self.config.connector} has no stream {name!r}")

    def stream_names(self) -> list[str]:
        """Stream names of the connector's catalog."""
        return [s["name"] for s in self.airbyte_catalog().get("streams", [])]

    def discover(self) -> Catalog:
        """Streams with schemas mapped from the connector's JSON Schemas."""
        return Catalog(tuple(self._stream_of(e) for e in self.airbyte_catalog().get("streams", [])))

    def _stream_of(self, entry: dict[str, Any]) -> Stream:
        """An Airbyte catalog stream as ours."""
        keys = entry.get("source_defined_primary_key") or []
        cursor = entry.get("default_cursor_field") or []
        modes = tuple(SyncMode(m) for m in entry.get("supported_sync_modes", ["full_refresh"]))
        return Stream(
            name=entry["name"],
            schema=arrow_schema(entry.get("json_schema") or {}),
            primary_key=tuple(k[0] for k in keys if len(k) == 1),
            cursor_candidates=tuple(cursor[:1]),
            sync_modes=modes,
            metadata={
                "connector": self.config.connector,
                "json_schema": entry.get("json_schema"),
                "declared_types": declared_types(entry.get("json_schema") or {}),
                "source_defined_cursor": bool(entry.get("source_defined_cursor")),
                # Airbyte reports sizes only while reading (TRACE estimates, logged)
                "estimated_rows": None,
            },
        )

    def read(self, stream: ConfiguredStream, state: dict[str, Any] | None) -> Iterator[Message]:
        """Run ``read`` for ``stream`` and translate its messages."""
        entry = self._entry(stream.name)
        yield self._stream_of(entry).info()
        incremental = stream.sync_mode is SyncMode.INCREMENTAL and "incremental" in entry.get(
            "supported_sync_modes", []
        )
        configured = {
            "streams": [
                {
                    "stream": entry,
                    "sync_mode": "incremental" if incremental else "full_refresh",
                    "destination_sync_mode": "append",
                    "cursor_field": [stream.cursor_field]
                    if stream.cursor_field
                    else entry.get("default_cursor_field", []),
                }
            ]
        }
        saved = (state or {}).get("airbyte") if incremental else None
        parser = SingerParser(stream.name, self.config.connector, airbyte=True)
        parser.set_schema(entry.get("json_schema") or {})
        last: list[Any] = [saved]
        errors: list[dict[str, Any]] = []
        with tempfile.TemporaryDirectory(prefix="airbyte-") as tmp:
            directory = Path(tmp)
            args = [
                executable(self.config.connector),
                "read",
                "--config",
                write_private(directory, "config.json", self.config.connector_config),
                "--catalog",
                write_private(directory, "catalog.json", configured),
            ]
            if saved:
                args += ["--state", write_private(directory, "state.json", [saved])]
            with (directory / "stderr.txt").open("w+b") as stderr:
                process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr)
                enlarge_pipe(process.stdout)
                try:
                    yield from self._read_output(process, parser, last, errors)
                finally:
                    if process.poll() is None:
                        process.kill()
                    code = process.wait()
                    assert process.stdout is not None
                    process.stdout.close()
                    stderr.seek(0)
                    stderr_tail = stderr.read()
        if errors:
            raise self._error(f"read of {stream.name!r}", errors[0], stderr_tail)
        if code != 0:
            raise ConnectorError(
                f"{self.config.connector} read of {stream.name!r} failed (exit {code}); "
                f"state of its last STATE message kept. stderr: {tail(stderr_tail)}"
            )
        yield Checkpoint({"airbyte": last[0]})
        yield Log(
            "info", f"{self.config.connector}: {parser.records} record(s) for {stream.name!r}"
        )

    def _read_output(
        self,
        process: subprocess.Popen[bytes],
        parser: SingerParser,
        last: list[Any],
        errors: list[dict[str, Any]],
    ) -> Iterator[Message]:
        assert process.stdout is not None
        carry = b""
        for data in chunks(process.stdout.fileno()):
            data = carry + data
            cut = data.rfind(b"\n")
            if cut < 0:
                carry = data
                continue
            carry = data[cut + 1 :]
            yield from self._translate(parser.feed(data[: cut + 1]), parser, last, errors)
        if carry.strip():
            yield from self._translate(parser.feed(carry + b"\n"), parser, last, errors)

    def _translate(
        self,
        items: Iterator[pa.RecordBatch | Quarantined | dict[str, Any]],
        parser: SingerParser,
        last: list[Any],
        errors: list[dict[str, Any]],
    ) -> Iterator[Message]:
        for item in items:
            if isinstance(item, pa.RecordBatch):
                yield Records(item)
            elif isinstance(item, Quarantined):
                yield item
            elif item.get("type") == "STATE":
                message = item.get("state") or {}
                descriptor = (message.get("stream") or {}).get("stream_descriptor") or {}
                if descriptor.get("name") in (None, parser.stream):
                    last[0] = message
                    yield Checkpoint({"airbyte": message})
            elif item.get("type") == "TRACE" and (error := _trace_error(item)) is not None:
                errors.append(error)
            elif item.get("type") == "TRACE" and (item.get("trace") or {}).get("estimate"):
                estimate = item["trace"]["estimate"]
                yield Log(
                    "info",
                    f"{parser.stream}: estimated {estimate.get('row_estimate')} rows, "
                    f"{estimate.get('byte_estimate')} bytes",
                )
