"""The ``singer`` source: any Singer tap, run as a subprocess from its own virtualenv.

One ``read`` runs the tap with a catalog selecting one stream, the stream's saved Singer
state (``--state``), and parses its output (:mod:`.parse`). Each STATE message becomes a
Checkpoint ``{"singer": value}`` after the rows before it. When the tap fails, the rows
since its last STATE are not committed (the engine aborts them) and the error carries the
tail of the tap's stderr.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from aggregator.connectors.sdk import CheckResult, ConnectorConfig, Source
from aggregator.connectors.singer.parse import SingerParser
from aggregator.connectors.singer.schema import arrow_schema, declared_types
from aggregator.core.catalog import Catalog, ConfiguredStream, Stream, SyncMode
from aggregator.core.errors import ConfigError, ConnectorError
from aggregator.core.inference import cast_text
from aggregator.core.messages import Checkpoint, Log, Message, Quarantined, Records
from aggregator.plugins.manager import executable
from aggregator.plugins.process import chunks, enlarge_pipe, tail, write_private


class SingerSourceConfig(ConnectorConfig):
    """Which tap, and its own configuration."""

    tap: str = Field(..., description="Plugin name (aggregator plugins add) or executable path.")
    tap_config: dict[str, Any] = Field(
        {}, alias="config", description="The tap's config (written to a private temp file)."
    )
    catalog: str | None = Field(None, description="Catalog file; default: the tap's --discover.")
    timeout_seconds: float = Field(300, gt=0, description="Timeout of --discover.")
    skip_bookmarked: bool = Field(
        True,
        description=(
            "Drop rows whose replication key is <= the bookmark the run resumed from "
            "(Singer taps re-send the bookmarked rows: at-least-once)."
        ),
    )


def _select(catalog: dict[str, Any], stream: str) -> dict[str, Any]:
    """A copy of ``catalog`` with only ``stream`` selected."""
    streams = []
    for entry in catalog.get("streams", []):
        entry = dict(entry)
        chosen = stream in (entry.get("tap_stream_id"), entry.get("stream"))
        metadata = [dict(m) for m in entry.get("metadata", [])]
        top = next((m for m in metadata if m.get("breadcrumb") == []), None)
        if top is None:
            top = {"breadcrumb": [], "metadata": {}}
            metadata.append(top)
        top["metadata"] = {**top.get("metadata", {}), "selected": chosen}
        entry["metadata"] = metadata
        entry["selected"] = chosen
        streams.append(entry)
    return {**catalog, "streams": streams}


class SingerSource(Source[SingerSourceConfig]):
    """Runs a Singer tap; SCHEMA/RECORD/STATE/BATCH become typed batches and our state."""

    name: ClassVar[str] = "singer"
    config_model = SingerSourceConfig
    description: ClassVar[str] = "Any Singer tap (installed with `aggregator plugins add`)"

    def __init__(self, config: SingerSourceConfig) -> None:
        super().__init__(config)
        self._catalog: dict[str, Any] | None = None
        self._lock = threading.Lock()

    @property
    def executable(self) -> str:
        """The tap's executable."""
        return executable(self.config.tap)

    def singer_catalog(self) -> dict[str, Any]:
        """The tap's catalog (from ``catalog`` or ``--discover``, cached)."""
        with self._lock:
            if self._catalog is None:
                if self.config.catalog:
                    self._catalog = json.loads(Path(self.config.catalog).read_text())
                else:
                    self._catalog = self._discover()
            return self._catalog

    def _discover(self) -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="singer-") as tmp:
            config = write_private(Path(tmp), "config.json", self.config.tap_config)
            try:
                done = subprocess.run(
                    [self.executable, "--config", config, "--discover"],
                    capture_output=True,
                    timeout=self.config.timeout_seconds,
                )
            except subprocess.TimeoutExpired:
                raise ConnectorError(f"{self.config.tap} --discover timed out") from None
        if done.returncode != 0:
            raise ConnectorError(
                f"{self.config.tap} --discover failed (exit {done.returncode}): "
                + tail(done.stderr)
            )
        try:
            result: dict[str, Any] = json.loads(done.stdout)
        except ValueError:
            raise ConnectorError(f"{self.config.tap} --discover printed no JSON catalog") from None
        return result

    def check(self) -> CheckResult:
        """The tap is installed and discovers at least one stream."""
        try:
            names = self.stream_names()
        except (ConfigError, ConnectorError) as exc:
            return CheckResult(False, exc.message)
        if not names:
            return CheckResult(False, f"{self.config.tap} discovered no stream")
        return CheckResult(True, f"{len(names)} stream(s): {', '.join(names)}")

    def stream_names(self) -> list[str]:
        """Stream ids of the tap's catalog."""
        return [s["tap_stream_id"] for s in self.singer_catalog().get("streams", [])]

    def discover(self) -> Catalog:
        """Streams with schemas mapped from the tap's JSON Schemas."""
        return Catalog(tuple(self._stream_of(e) for e in self.singer_catalog().get("streams", [])))

    def _stream_of(self, entry: dict[str, Any]) -> Stream:
        """A Singer catalog entry as a stream (keys and replication key from its metadata)."""
        top: dict[str, Any] = next(
            (m["metadata"] for m in entry.get("metadata", []) if m.get("breadcrumb") == []), {}
        )
        keys = entry.get("key_properties") or top.get("table-key-properties") or []
        replication = entry.get("replication_key") or top.get("replication-key")
        return Stream(
            name=entry["tap_stream_id"],
            schema=arrow_schema(entry.get("schema") or {}),
            primary_key=tuple(keys),
            cursor_candidates=(replication,) if replication else (),
            sync_modes=(SyncMode.FULL_REFRESH, SyncMode.INCREMENTAL),
            metadata={
                "tap": self.config.tap,
                "json_schema": entry.get("schema"),
                "declared_types": declared_types(entry.get("schema") or {}),
                "estimated_rows": top.get("row-count"),
                "replication_method": top.get("forced-replication-method")
                or entry.get("replication_method"),
            },
        )

    def read(self, stream: ConfiguredStream, state: dict[str, Any] | None) -> Iterator[Message]:
        """Run the tap for ``stream`` and translate its messages."""
        catalog = self.singer_catalog()
        if stream.name not in self.stream_names():
            raise ConfigError(f"tap {self.config.tap} has no stream {stream.name!r}")
        incremental = stream.sync_mode is SyncMode.INCREMENTAL
        singer_state = (state or {}).get("singer") if incremental else None
        parser = SingerParser(stream.name, self.config.tap)
        floor = None
        for entry in catalog.get("streams", []):
            if entry.get("tap_stream_id") == stream.name:
                yield self._stream_of(entry).info()
            if entry.get("tap_stream_id") == stream.name and entry.get("schema"):
                parser.set_schema(entry["schema"])
                if self.config.skip_bookmarked:
                    floor = _Floor.of(entry, stream.name, singer_state)
        with tempfile.TemporaryDirectory(prefix="singer-") as tmp:
            directory = Path(tmp)
            args = [
                self.executable,
                "--config",
                write_private(directory, "config.json", self.config.tap_config),
                "--catalog",
                write_private(directory, "catalog.json", _select(catalog, stream.name)),
            ]
            if singer_state:
                args += ["--state", write_private(directory, "state.json", singer_state)]
            with (directory / "stderr.txt").open("w+b") as stderr:
                process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr)
                enlarge_pipe(process.stdout)
                last = [singer_state]
                try:
                    yield from self._messages(process, parser, last, floor)
                finally:
                    if process.poll() is None:
                        process.kill()
                    code = process.wait()
                    assert process.stdout is not None
                    process.stdout.close()
                    stderr.seek(0)
                    stderr_tail = tail(stderr.read())
            if code != 0:
                raise ConnectorError(
                    f"tap {self.config.tap} failed (exit {code}) reading {stream.name!r}; "
                    f"state of its last STATE message kept. stderr: {stderr_tail}"
                )
        # only now are the rows after the tap's last STATE known to be complete
        yield Checkpoint({"singer": last[0]})
        yield Log("info", f"tap {self.config.tap}: {parser.records} record(s) for {stream.name!r}")

    def _messages(
        self,
        process: subprocess.Popen[bytes],
        parser: SingerParser,
        last: list[Any],
        floor: _Floor | None,
    ) -> Iterator[Message]:
        stdout = process.stdout
        assert stdout is not None
        fd = stdout.fileno()
        carry = b""
        for data in chunks(fd):
            data = carry + data
            cut = data.rfind(b"\n")
            if cut < 0:
                carry = data
                continue
            carry = data[cut + 1 :]
            yield from self._translate(parser, parser.feed(data[: cut + 1]), last, floor)
        if carry.strip():
            yield from self._translate(parser, parser.feed(carry + b"\n"), last, floor)

    def _translate(
        self,
        parser: SingerParser,
        items: Iterator[pa.RecordBatch | Quarantined | dict[str, Any]],
        last: list[Any],
        floor: _Floor | None,
    ) -> Iterator[Message]:
        for item in items:
            if isinstance(item, pa.RecordBatch):
                item = floor.apply(item) if floor is not None else item
                if item.num_rows:
                    yield Records(item)
            elif isinstance(item, Quarantined):
                yield item
            elif item.get("type") == "STATE":
                last[0] = item.get("value")
                yield Checkpoint({"singer": last[0]})
            elif item.get("type") == "BATCH" and item.get("stream") == parser.stream:
                for part in parser.batch_files(item):
                    yield Records(part) if isinstance(part, pa.RecordBatch) else part


class _Floor:
    """Drops rows at or below the bookmark a run resumed from (vectorized)."""

    def __init__(self, key: str, value: Any) -> None:
        self.key = key
        self.value = value

    @classmethod
    def of(cls, entry: dict[str, Any], stream: str, state: Any) -> _Floor | None:
        """The floor of ``stream`` in a Singer ``state``, if it has a replication key value."""
        key = entry.get("replication_key")
        if not isinstance(state, dict):
            return None
        bookmark = (state.get("bookmarks") or {}).get(stream) or {}
        value = bookmark.get("replication_key_value")
        if value is None or (key and bookmark.get("replication_key", key) != key):
            return None
        key = key or bookmark.get("replication_key")
        return cls(str(key), value) if key else None

    def apply(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """``batch`` without the rows whose key is <= the bookmark."""
        if self.key not in batch.schema.names:
            return batch
        column = batch.column(self.key)
        try:
            if isinstance(self.value, str) and not pa.types.is_string(column.type):
                floor = cast_text(pa.array([self.value]), column.type)[0]
            else:
                floor = pa.scalar(self.value).cast(column.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            return batch
        return batch.filter(pc.fill_null(pc.greater(column, floor), True))
