"""JSON Lines and JSON reading of the files source."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa

from aggregator.connectors.files import FilesSource
from aggregator.core.catalog import ConfiguredStream
from aggregator.core.messages import Log, Quarantined, Records


def read(path: Path, stream: ConfiguredStream | None = None, **options: Any) -> list[Any]:
    source = FilesSource.from_config({"streams": [{"name": "s", "path": str(path), **options}]})
    return list(source.read(stream or ConfiguredStream(name="s"), None))


def rows(messages: list[Any]) -> list[dict[str, Any]]:
    return [r for m in messages if isinstance(m, Records) for r in m.batch.to_pylist()]


def batches(messages: list[Any]) -> list[pa.RecordBatch]:
    return [m.batch for m in messages if isinstance(m, Records)]


def quarantined(messages: list[Any]) -> list[dict[str, Any]]:
    return [r for m in messages if isinstance(m, Quarantined) for r in m.rows.to_pylist()]


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_one_broken_line_is_quarantined_and_the_rest_loaded(tmp_path: Path) -> None:
    data = b'{"id": 1, "v": "a"}\n{"id": 2, "v": "b"}\n{"id": 3, "v": \n\n{"id": 4, "v": "d"}\n'
    path = write(tmp_path, "b.jsonl", data)
    messages = read(path)
    assert rows(messages) == [
        {"id": 1, "v": "a"},
        {"id": 2, "v": "b"},
        {"id": 4, "v": "d"},
    ]
    assert quarantined(messages) == [
        {
            "reason": "invalid JSON: Expecting value: line 1 column 16 (char 15)",
            "position": f"{path}:3",
            "raw": '{"id": 3, "v": ',
        }
    ]
    assert any(isinstance(m, Log) and "line-by-line" in m.message for m in messages)


def test_broken_line_fallback_is_limited_to_its_block(tmp_path: Path) -> None:
    good = b"".join(b'{"id": %d}\n' % i for i in range(200))
    path = write(tmp_path, "big.jsonl", good + b"[1, 2]\n" + good)
    messages = read(path, block_size=1024)
    assert [r["id"] for r in rows(messages)] == list(range(200)) * 2
    assert quarantined(messages) == [
        {"reason": "invalid JSON: not an object", "position": f"{path}:201", "raw": "[1, 2]"}
    ]
    fallbacks = [m for m in messages if isinstance(m, Log) and "line-by-line" in m.message]
    assert len(fallbacks) == 1


def test_integers_beyond_64_bits_and_long_decimals_stay_exact(tmp_path: Path) -> None:
    data = (
        b'{"id": 1, "big": 123456789012345678901234567890, "d": 1.5}\n'
        b'{"id": 2, "big": 7, "d": 0.1234567890123456789012345}\n'
        b'{"id": 3, "big": -99999999999999999999, "d": null}\n'
    )
    messages = read(write(tmp_path, "n.jsonl", data))
    batch = batches(messages)[0]
    assert batch.schema.field("big").type == pa.decimal128(30, 0)
    assert pa.types.is_decimal(batch.schema.field("d").type)
    assert rows(messages) == [
        {"id": 1, "big": Decimal("123456789012345678901234567890"), "d": Decimal("1.5")},
        {"id": 2, "big": Decimal("7"), "d": Decimal("0.1234567890123456789012345")},
        {"id": 3, "big": Decimal("-99999999999999999999"), "d": None},
    ]


def test_big_integers_inside_nested_values_are_kept_as_exact_text(tmp_path: Path) -> None:
    data = b'{"id": 1, "xs": [1, 123456789012345678901234567890]}\n{"id": 2, "xs": [3]}\n'
    messages = read(write(tmp_path, "arr.jsonl", data))
    assert rows(messages) == [
        {"id": 1, "xs": "[1,123456789012345678901234567890]"},
        {"id": 2, "xs": "[3]"},
    ]


def test_conflicting_json_types_become_json_text(tmp_path: Path) -> None:
    data = (
        b'{"id": 1, "v": 10}\n{"id": 2, "v": "ten"}\n{"id": 3, "v": null}\n{"id": 4, "v": 1.25}\n'
    )
    messages = read(write(tmp_path, "c.jsonl", data))
    assert rows(messages) == [
        {"id": 1, "v": "10"},
        {"id": 2, "v": '"ten"'},
        {"id": 3, "v": None},
        {"id": 4, "v": "1.25"},
    ]
    assert quarantined(messages) == []


def test_nested_objects_and_arrays_stay_struct_and_list(tmp_path: Path) -> None:
    data = b'{"o": {"a": 1, "b": "x"}, "l": [1, 2]}\n{"o": {"a": 2, "b": null}, "l": []}\n'
    messages = read(write(tmp_path, "s.jsonl", data))
    schema = batches(messages)[0].schema
    assert pa.types.is_struct(schema.field("o").type)
    assert schema.field("l").type == pa.list_(pa.int64())
    assert rows(messages) == [
        {"o": {"a": 1, "b": "x"}, "l": [1, 2]},
        {"o": {"a": 2, "b": None}, "l": []},
    ]


def test_timestamps_with_offsets_are_exact_utc_instants(tmp_path: Path) -> None:
    data = b'{"t": "2024-01-01T10:00:00Z"}\n{"t": "2024-01-01T12:00:00+02:00"}\n'
    messages = read(write(tmp_path, "t.jsonl", data))
    assert batches(messages)[0].schema.field("t").type == pa.timestamp("us", tz="UTC")
    assert rows(messages) == [
        {"t": datetime(2024, 1, 1, 10, tzinfo=UTC)},
        {"t": datetime(2024, 1, 1, 10, tzinfo=UTC)},
    ]


def test_json_array_document_and_single_object(tmp_path: Path) -> None:
    array = write(
        tmp_path, "a.json", b'[\n {"id": 1, "n": 12345678901234567890123},\n {"id": 2, "n": 5}\n]\n'
    )
    assert rows(read(array)) == [
        {"id": 1, "n": Decimal("12345678901234567890123")},
        {"id": 2, "n": Decimal("5")},
    ]
    single = write(tmp_path, "o.json", b'{"id": 1, "tags": ["a"]}')
    assert rows(read(single)) == [{"id": 1, "tags": ["a"]}]
    empty = write(tmp_path, "e.json", b"[]")
    assert rows(read(empty)) == []


def test_json_document_with_bad_elements_and_invalid_document(tmp_path: Path) -> None:
    mixed = write(tmp_path, "m.json", b'[{"id": 1}, 5, {"id": 3}]')
    messages = read(mixed)
    assert rows(messages) == [{"id": 1}, {"id": 3}]
    assert quarantined(messages) == [
        {"reason": "invalid JSON: not an object", "position": f"{mixed}#2", "raw": "5"}
    ]
    broken = write(tmp_path, "x.json", b'[{"id": 1},\n{"id": ]')
    messages = read(broken)
    assert rows(messages) == []
    assert quarantined(messages) == [
        {
            "reason": "invalid JSON: Expecting value: line 2 column 8 (char 19)",
            "position": f"{broken}:2",
            "raw": '[{"id": 1},\n{"id": ]',
        }
    ]


def test_declared_types_apply_to_json_columns(tmp_path: Path) -> None:
    data = b'{"id": 1, "amount": "1.50"}\n{"id": 2, "amount": "oops"}\n'
    path = write(tmp_path, "h.jsonl", data)
    stream = ConfiguredStream(name="s", column_types={"amount": pa.decimal128(10, 2)})
    messages = read(path, stream)
    assert rows(messages) == [{"id": 1, "amount": Decimal("1.50")}]
    assert quarantined(messages) == [
        {
            "reason": "column 'amount': 'oops' is not a valid decimal128(10, 2)",
            "position": f"{path}:2",
            "raw": '{"id": 2, "amount": "oops"}',
        }
    ]
