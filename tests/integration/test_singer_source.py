"""The Singer source: a scripted tap for exact protocol cases, and the real tap-jsonl."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from aggregator.cli.main import app
from aggregator.connectors.singer import SingerSource
from aggregator.core.catalog import ConfiguredStream
from aggregator.core.errors import ConfigError, ConnectorError
from aggregator.core.messages import Checkpoint, Records, StreamInfo
from aggregator.core.types import JSON, TIMESTAMPTZ
from aggregator.testing import read_stream
from tests.integration.test_singer_fixtures import *  # noqa: F403  (fixtures)

pytestmark = pytest.mark.integration

SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "amount": {
            "type": ["null", "number"],
            "multipleOf": 0.01,
            "maximum": 1e10,
            "exclusiveMaximum": True,
        },
        "ratio": {"type": ["number", "null"]},
        "at": {"type": ["string", "null"], "format": "date-time"},
        "day": {"type": "string", "format": "date"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "meta": {"type": ["object", "null"], "properties": {"k": {"type": "string"}}},
        "free": {"type": "object"},
        "ok": {"type": "boolean"},
    },
}
CATALOG = {
    "streams": [
        {
            "tap_stream_id": "orders",
            "stream": "orders",
            "schema": SCHEMA,
            "key_properties": ["id"],
            "replication_key": "at",
            "metadata": [],
        },
        {"tap_stream_id": "other", "stream": "other", "schema": {"properties": {}}, "metadata": []},
    ]
}


def rec(i: int, amount: Any = "1.50", stream: str = "orders") -> str:
    record = {
        "id": i,
        "amount": amount,
        "ratio": 0.5,
        "at": f"2024-01-0{i}T10:00:00+02:00",
        "day": "2024-02-01",
        "tags": ["a"],
        "meta": {"k": "v"},
        "free": {"x": [1]},
        "ok": True,
    }
    # numbers are written as JSON numbers, exactly as given
    text = json.dumps({"type": "RECORD", "stream": stream, "record": record})
    return text.replace(f'"amount": "{amount}"', f'"amount": {amount}')


def script(tmp: Path, lines: list[str], monkeypatch: pytest.MonkeyPatch, code: int = 0) -> None:
    (tmp / "script.jsonl").write_text("\n".join(lines) + "\n")
    (tmp / "catalog.json").write_text(json.dumps(CATALOG))
    monkeypatch.setenv("FAKE_TAP_SCRIPT", str(tmp / "script.jsonl"))
    monkeypatch.setenv("FAKE_TAP_CATALOG", str(tmp / "catalog.json"))
    monkeypatch.setenv("FAKE_TAP_EXIT", str(code))


def state(n: int) -> str:
    return json.dumps({"type": "STATE", "value": {"bookmarks": {"orders": {"at": n}}}})


def test_messages_become_exact_batches_quarantine_and_checkpoints(
    tmp_path: Path, fake_tap: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema_line = json.dumps(
        {"type": "SCHEMA", "stream": "orders", "schema": SCHEMA, "key_properties": ["id"]}
    )
    script(
        tmp_path,
        [
            schema_line,
            rec(1),
            rec(2, "2.25"),
            state(1),
            rec(3, "1.234"),
            rec(4, "0.10"),
            rec(9, "1", stream="other"),
            state(2),
            "not json",
        ],
        monkeypatch,
    )
    src = SingerSource.from_config({"tap": str(fake_tap)})
    assert isinstance(src, SingerSource)
    catalog = src.discover()
    orders = catalog.get("orders")
    assert orders is not None and orders.primary_key == ("id",)
    assert orders.cursor_candidates == ("at",)
    assert orders.schema.field("free").type == JSON
    kinds = []
    for message in src.read(ConfiguredStream("orders"), None):
        kinds.append(type(message).__name__)
        if isinstance(message, StreamInfo):  # what the catalog says, before any row
            assert message.primary_key == ("id",) and message.cursor_candidates == ("at",)
            assert message.metadata["declared_types"]["at"] == "string (date-time)"
    assert kinds[:4] == ["StreamInfo", "Records", "Checkpoint", "Records"]
    result = read_stream(src, "orders")
    table = result.table
    assert table.schema.field("amount").type == pa.decimal128(10, 2)
    assert table.schema.field("at").type == TIMESTAMPTZ
    assert table.schema.field("day").type == pa.date32()
    assert table.schema.field("tags").type == pa.list_(pa.string())
    assert table.schema.field("ratio").type == pa.float64()
    assert table.column("id").to_pylist() == [1, 2, 4]
    assert table.column("amount").to_pylist() == [Decimal("1.50"), Decimal("2.25"), Decimal("0.10")]
    assert table.column("at").to_pylist()[0] == dt.datetime(2024, 1, 1, 8, tzinfo=dt.UTC)
    assert [(q["position"], "scale" in q["reason"]) for q in result.quarantined] == [
        (f"{fake_tap}:orders:line 5", True),
        (f"{fake_tap}:orders:line 9", False),
    ]
    assert result.states == [
        {"singer": {"bookmarks": {"orders": {"at": 1}}}},
        {"singer": {"bookmarks": {"orders": {"at": 2}}}},
        {"singer": {"bookmarks": {"orders": {"at": 2}}}},
    ]


def test_tap_crash_keeps_last_state_and_reports_stderr(
    tmp_path: Path, fake_tap: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script(tmp_path, [rec(1), state(1), rec(2)], monkeypatch, code=3)
    src = SingerSource.from_config({"tap": str(fake_tap)})
    assert isinstance(src, SingerSource)
    seen: list[Any] = []
    with pytest.raises(ConnectorError, match="exit 3") as info:
        for message in src.read(ConfiguredStream("orders"), None):
            seen.append(message)
    assert "the source database went away" in str(info.value)
    checkpoints = [m.state for m in seen if isinstance(m, Checkpoint)]
    assert checkpoints == [{"singer": {"bookmarks": {"orders": {"at": 1}}}}]
    assert sum(m.batch.num_rows for m in seen if isinstance(m, Records)) == 2


def test_unknown_plugin_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGGREGATOR_PLUGINS_DIR", str(tmp_path))
    src = SingerSource.from_config({"tap": "tap-nothing-here"})
    result = src.check()
    assert not result.ok and "aggregator plugins add tap-nothing-here" in result.message
    with pytest.raises(ConfigError, match=r"config\.tap"):
        SingerSource.from_config({})


# -- the real tap-jsonl from PyPI ------------------------------------------------------------


def _jsonl(tmp: Path, rows: int = 50) -> Path:
    path = tmp / "things.jsonl"
    path.write_text(
        "".join(
            json.dumps(
                {
                    "id": i,
                    "amount": i + 0.25,
                    "at": f"2024-01-01T10:00:{i % 60:02d}Z",
                    "nested": {"x": i},
                }
            )
            + "\n"
            for i in range(rows)
        )
    )
    return path


def test_real_tap_jsonl_discover_read_and_state(tmp_path: Path, plugins: Path) -> None:
    data = _jsonl(tmp_path)
    config = {
        "tap": "tap-jsonl",
        "config": {"path": str(data), "stream_name": "things", "primary_keys": ["id"]},
    }
    src = SingerSource.from_config(config)
    assert src.check().ok
    stream = src.discover().get("things")
    assert stream is not None and stream.primary_key == ("id",)
    assert stream.schema.field("at").type == TIMESTAMPTZ
    # metadata extraction: the tap's own (JSON Schema) types and its replication key
    assert stream.metadata["declared_types"]["at"] == "string (date-time)"
    assert stream.metadata["declared_types"]["id"] == "integer"
    assert stream.cursor_candidates == ("_sdc_last_modified",)
    first = read_stream(src, "things", cursor_field="_sdc_last_modified")
    assert first.rows == 50 and first.quarantined == []
    table = first.table
    assert table.column("id").to_pylist() == list(range(50))
    assert table.schema.field("amount").type == pa.float64()
    assert pa.types.is_struct(table.schema.field("nested").type)
    final = first.final_state
    assert final is not None and "things" in final["singer"]["bookmarks"]
    again = read_stream(src, "things", final, cursor_field="_sdc_last_modified")
    assert again.rows == 0


def test_plugins_cli_lists_installed(plugins: Path) -> None:
    result = CliRunner().invoke(app, ["plugins", "list", "--json"])
    assert result.exit_code == 0, result.output
    names = {p["name"] for p in json.loads(result.stdout)}
    assert {"tap-jsonl", "target-jsonl"} <= names
