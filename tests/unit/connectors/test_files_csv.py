"""CSV/TSV reading of the files source: bad inputs give exact, documented outcomes."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.connectors.files import FilesSource
from aggregator.core.catalog import ConfiguredStream
from aggregator.core.messages import Checkpoint, Log, Quarantined, Records


def read(path: Path | str, stream: ConfiguredStream | None = None, **options: Any) -> list[Any]:
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


def test_ragged_rows_are_quarantined_with_line_and_raw(tmp_path: Path) -> None:
    path = write(tmp_path, "r.csv", b"a,b,c\n1,2,3\n4,5\n6,7,8\n9,10,11,12\n13,14,15\n")
    messages = read(path)
    assert rows(messages) == [
        {"a": 1, "b": 2, "c": 3},
        {"a": 6, "b": 7, "c": 8},
        {"a": 13, "b": 14, "c": 15},
    ]
    assert quarantined(messages) == [
        {"reason": "expected 3 fields, found 2", "position": f"{path}:3", "raw": "4,5"},
        {"reason": "expected 3 fields, found 4", "position": f"{path}:5", "raw": "9,10,11,12"},
    ]


def test_ragged_last_row_and_quoted_newlines_keep_physical_lines(tmp_path: Path) -> None:
    data = b'id,text\n1,"line one\nline two"\n2,"a\n\nb"\n3\n4,"x,y"\n5,6,7\n'
    path = write(tmp_path, "q.csv", data)
    messages = read(path)
    assert rows(messages) == [
        {"id": 1, "text": "line one\nline two"},
        {"id": 2, "text": "a\n\nb"},
        {"id": 4, "text": "x,y"},
    ]
    assert quarantined(messages) == [
        {"reason": "expected 2 fields, found 1", "position": f"{path}:7", "raw": "3"},
        {"reason": "expected 2 fields, found 3", "position": f"{path}:9", "raw": "5,6,7"},
    ]


def test_bom_and_crlf(tmp_path: Path) -> None:
    path = write(tmp_path, "bom.csv", b'\xef\xbb\xbfid,name\r\n1,"a\r\nb"\r\n2,c\r\n')
    messages = read(path)
    assert batches(messages)[0].schema.names == ["id", "name"]
    assert rows(messages) == [{"id": 1, "name": "a\r\nb"}, {"id": 2, "name": "c"}]
    plain = write(tmp_path, "crlf.csv", b"id,name\r\n1,a\r\n2,b\r\n")
    assert rows(read(plain)) == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]


def test_invalid_utf8_quarantined_and_latin1_loaded(tmp_path: Path) -> None:
    path = write(tmp_path, "l1.csv", b"id,name\n1,caf\xe9\n2,ok\n")
    messages = read(path)
    assert rows(messages) == [{"id": 2, "name": "ok"}]
    assert quarantined(messages) == [
        {
            "reason": "invalid UTF-8 in column 'name'",
            "position": f"{path}:2",
            "raw": "1,caf\\xe9",
        }
    ]
    assert rows(read(path, encoding="latin-1")) == [
        {"id": 1, "name": "café"},
        {"id": 2, "name": "ok"},
    ]
    utf16 = write(tmp_path, "u16.csv", "id,name\n1,é\n".encode("utf-16"))
    assert rows(read(utf16, encoding="utf-16")) == [{"id": 1, "name": "é"}]


def test_column_changing_type_mid_file_widens_and_keeps_values(tmp_path: Path) -> None:
    lines = [f"{i},{i}" for i in range(100)] + ["100,abc"] + [f"{i},{i}" for i in range(101, 110)]
    path = write(tmp_path, "t.csv", ("id,v\n" + "\n".join(lines) + "\n").encode())
    messages = read(path, ConfiguredStream(name="s", batch_size=40), block_size=1024)
    got = batches(messages)
    assert all(b.num_rows <= 40 for b in got)
    assert got[0].schema.field("v").type == pa.int64()
    assert got[-1].schema.field("v").type == pa.string()
    values = [str(r["v"]) for r in rows(messages)]
    assert values == [str(i) for i in range(100)] + ["abc"] + [str(i) for i in range(101, 110)]
    assert [r["id"] for r in rows(messages)] == list(range(110))


def test_big_integers_decimals_and_mixed_offset_timestamps(tmp_path: Path) -> None:
    data = (
        "big,dec,ts\n"
        "123456789012345678901234567890,1234567890123456789012345.123456789,2024-01-01T10:00:00Z\n"
        "-98765432109876543210,0.000000000000000000000000000001,2024-01-01T12:00:00+02:00\n"
        ",,2024-01-01T05:00:00-05:30\n"
    )
    path = write(tmp_path, "n.csv", data.encode())
    messages = read(path)
    batch = batches(messages)[0]
    assert batch.schema.field("big").type == pa.decimal128(30, 0)
    assert pa.types.is_decimal(batch.schema.field("dec").type)
    assert batch.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert [r["big"] for r in rows(messages)] == [
        Decimal("123456789012345678901234567890"),
        Decimal("-98765432109876543210"),
        None,
    ]
    assert [r["dec"] for r in rows(messages)] == [
        Decimal("1234567890123456789012345.123456789"),
        Decimal("0.000000000000000000000000000001"),
        None,
    ]
    assert [r["ts"] for r in rows(messages)] == [
        datetime(2024, 1, 1, 10, tzinfo=UTC),
        datetime(2024, 1, 1, 10, tzinfo=UTC),
        datetime(2024, 1, 1, 10, 30, tzinfo=UTC),
    ]


def test_duplicate_empty_and_reserved_column_names(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", b"a,a,,select,from\n1,2,3,4,5\n")
    messages = read(path)
    assert batches(messages)[0].schema.names == ["a", "a_2", "column_3", "select", "from"]
    assert rows(messages) == [{"a": 1, "a_2": 2, "column_3": 3, "select": 4, "from": 5}]


@pytest.mark.parametrize("data", [b"", b"a,b\n", b"a,b", b"\n\n"])
def test_empty_files_yield_no_rows_and_no_errors(tmp_path: Path, data: bytes) -> None:
    path = write(tmp_path, "e.csv", data)
    messages = read(path)
    assert rows(messages) == []
    assert quarantined(messages) == []
    assert [type(m) for m in messages] == [Log, Checkpoint, Checkpoint]


def test_declared_types_reject_rows_with_reason_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "h.csv", b'id,amount\n1,"1.5"\n2,"x\ny"\n3,2.25\n')
    stream = ConfiguredStream(name="s", column_types={"amount": pa.decimal128(10, 2)})
    messages = read(path, stream)
    assert rows(messages) == [
        {"id": 1, "amount": Decimal("1.50")},
        {"id": 3, "amount": Decimal("2.25")},
    ]
    assert quarantined(messages) == [
        {
            "reason": "column 'amount': 'x\\ny' is not a valid decimal128(10, 2)",
            "position": f"{path}:3",
            "raw": '2,"x\ny"',
        }
    ]


def test_tsv_no_header_and_null_values(tmp_path: Path) -> None:
    path = write(tmp_path, "x.tsv", b"1\tNA\n2\tb\n")
    messages = read(path, header=False, null_values=["NA"])
    assert rows(messages) == [
        {"column_1": 1, "column_2": None},
        {"column_1": 2, "column_2": "b"},
    ]


def test_leading_zero_identifiers_stay_text(tmp_path: Path) -> None:
    path = write(tmp_path, "z.csv", b"code\n007\n010\n")
    assert rows(read(path)) == [{"code": "007"}, {"code": "010"}]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(kind=st.sampled_from(["int", "dec", "ts"]), data=st.data())
def test_property_text_round_trip_is_exact(tmp_path: Path, kind: str, data: st.DataObject) -> None:
    if kind == "int":
        strategy = st.integers(min_value=-(10**40), max_value=10**40)
    elif kind == "dec":
        strategy = st.decimals(
            min_value=Decimal("-1e30"), max_value=Decimal("1e30"), places=8, allow_nan=False
        )
    else:
        strategy = st.datetimes(
            min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
        )
    values = data.draw(st.lists(strategy, min_size=1, max_size=30))
    texts = [
        v.isoformat() if isinstance(v, datetime) else f"{v:f}" if isinstance(v, Decimal) else str(v)
        for v in values
    ]
    path = write(tmp_path, "p.csv", ("v\n" + "\n".join(texts) + "\n").encode())
    got = [r["v"] for r in rows(read(path))]
    if kind == "ts":
        assert got == values
    else:
        assert [Decimal(str(g)) for g in got] == [Decimal(str(v)) for v in values]
        assert all(not isinstance(g, float) for g in got)


def test_slices_of_only_ragged_rows_still_quarantine_them(tmp_path: Path) -> None:
    data = b"a,b\n1,2\n" + b"x\n" * 5 + b"3,4\n"
    path = write(tmp_path, "rg.csv", data)
    messages = read(path, ConfiguredStream(name="s", batch_size=1))
    assert rows(messages) == [{"a": 1, "b": 2}, {"a": 3, "b": 4}]
    assert [q["position"] for q in quarantined(messages)] == [f"{path}:{i}" for i in range(3, 8)]


def test_sparse_column_first_batch_all_null_is_still_inferred_later(tmp_path: Path) -> None:
    path = write(tmp_path, "sp.csv", b"a,b\n1,\n2,\n3,5\n")
    messages = read(path, ConfiguredStream(name="s", batch_size=2))
    assert [r["b"] for r in rows(messages)] == [None, None, 5]
    assert [b.schema.field("b").type for b in batches(messages)] == [pa.null(), pa.int64()]
