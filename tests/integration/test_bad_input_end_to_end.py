"""Every bad-input case through the real engine into DuckDB: exact load or located quarantine."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from aggregator.engines.local import LocalEngine
from aggregator.metadata.store import MetadataStore, RunRecord
from aggregator.pipeline.spec import PipelineSpec

pytestmark = pytest.mark.integration

FILES: dict[str, bytes] = {
    "ragged.csv": b"id,name\n1,a\n2,b,extra\n3\n4,d\n",
    "quoted.csv": b'id,text\n1,"line one\nline two"\n2,"say ""hi"""\n3,plain\n',
    "bom_crlf.csv": b"\xef\xbb\xbfid,name\r\n1,a\r\n2,b\r\n",
    "bytes.csv": b"id,name\n1,caf\xe9\n2,ok\n",
    "broken.jsonl": b'{"id": 1, "v": "a"}\n{"id": 2, "v": \n{"id": 3, "v": "c"}\n',
    "changes.csv": b"id,v\n1,10\n2,20\n3,abc\n4,40\n",
    "numbers.csv": (
        b"id,big,dec,huge\n"
        b"1,123456789012345678901234567890,1.2345678901234567890123456789012345,"
        b"12345678901234567890123456789012345678901234567890.5\n"
        b"2,-99999999999999999999,0.5,1\n"
    ),
    "offsets.csv": (
        b"id,at\n1,2024-01-01T10:00:00+02:00\n2,2024-01-01T03:00:00-05:00\n3,2024-01-01T08:00:00Z\n"
    ),
    "names.csv": b"select,from,a,a,\n1,2,3,4,5\n",
    "empty.csv": b"",
    "header_only.csv": b"id,name\n",
}


def _run(
    tmp_path: Path, store: MetadataStore, extra_streams: list[dict[str, Any]] | None = None
) -> RunRecord:
    for name, data in FILES.items():
        (tmp_path / name).write_bytes(data)
    streams = [{"name": name.split(".")[0], "path": str(tmp_path / name)} for name in FILES]
    spec = PipelineSpec.model_validate(
        {
            "name": "bad_input",
            "sources": [
                {
                    "name": "files",
                    "type": "files",
                    "config": {"streams": streams + (extra_streams or [])},
                }
            ],
            "destination": {"type": "duckdb", "config": {"path": str(tmp_path / "wh.duckdb")}},
            "engine": {"batch_size": 2, "concurrency": 4},
        }
    )
    return LocalEngine(store).run(spec)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunRecord, Path, MetadataStore]:
    tmp = tmp_path_factory.mktemp("bad")
    store = MetadataStore(f"sqlite:///{tmp / 'meta.db'}")
    record = _run(tmp, store)
    assert record.status == "succeeded", record.error
    return record, tmp, store


def _q(tmp: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(tmp / "wh.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def _counts(record: RunRecord, stream: str) -> tuple[int, int, int]:
    s = next(s for s in record.streams if s.name == stream)
    return s.rows_read, s.rows_loaded, s.rows_quarantined


def test_every_stream_accounts_for_every_row(loaded: tuple[RunRecord, Path, MetadataStore]) -> None:
    record, _, _ = loaded
    for s in record.streams:
        assert s.rows_read == s.rows_loaded + s.rows_quarantined, s.name


def test_ragged_rows_are_quarantined_with_file_line_and_raw(
    loaded: tuple[RunRecord, Path, MetadataStore],
) -> None:
    record, tmp, _ = loaded
    assert _counts(record, "ragged") == (4, 2, 2)
    assert _q(tmp, "select id, name from ragged order by id") == [(1, "a"), (4, "d")]
    assert _q(tmp, "select position, reason, raw from ragged__quarantine order by position") == [
        (f"{tmp}/ragged.csv:3", "expected 2 fields, found 3", "2,b,extra"),
        (f"{tmp}/ragged.csv:4", "expected 2 fields, found 1", "3"),
    ]


def test_quoted_newlines_bom_crlf_are_exact(loaded: tuple[RunRecord, Path, MetadataStore]) -> None:
    _, tmp, _ = loaded
    assert _q(tmp, "select id, text from quoted order by id") == [
        (1, "line one\nline two"),
        (2, 'say "hi"'),
        (3, "plain"),
    ]
    assert _q(tmp, "select * from bom_crlf order by id") == [(1, "a"), (2, "b")]
    assert [
        r[0]
        for r in _q(
            tmp,
            "select column_name from information_schema.columns "
            "where table_name = 'bom_crlf' order by ordinal_position",
        )
    ] == ["id", "name"]


def test_invalid_utf8_row_is_quarantined(loaded: tuple[RunRecord, Path, MetadataStore]) -> None:
    record, tmp, _ = loaded
    assert _counts(record, "bytes") == (2, 1, 1)
    assert _q(tmp, "select * from bytes") == [(2, "ok")]
    ((position, reason, raw),) = _q(tmp, "select position, reason, raw from bytes__quarantine")
    assert position == f"{tmp}/bytes.csv:2"
    assert "invalid UTF-8" in reason and "name" in reason
    assert raw == "1,caf\\xe9"


def test_broken_json_line_is_quarantined(loaded: tuple[RunRecord, Path, MetadataStore]) -> None:
    record, tmp, _ = loaded
    assert _counts(record, "broken") == (3, 2, 1)
    assert _q(tmp, "select id, v from broken order by id") == [(1, "a"), (3, "c")]
    ((position, reason, raw),) = _q(tmp, "select position, reason, raw from broken__quarantine")
    assert (position, raw) == (f"{tmp}/broken.jsonl:2", '{"id": 2, "v": ')
    assert reason.startswith("invalid JSON")


def test_column_changing_type_mid_file_widens_and_keeps_every_value(
    loaded: tuple[RunRecord, Path, MetadataStore],
) -> None:
    record, tmp, store = loaded
    assert _counts(record, "changes") == (4, 4, 0)
    assert _q(tmp, "select id, v from changes order by id") == [
        (1, "10"),
        (2, "20"),
        (3, "abc"),
        (4, "40"),
    ]
    versions = store.schema_versions("bad_input", "changes")
    assert [v["diff"] for v in versions][1] == {
        "added": [],
        "widened": [{"name": "v", "from": "int64", "to": "string"}],
    }


def test_big_integers_and_long_decimals_are_exact(
    loaded: tuple[RunRecord, Path, MetadataStore],
) -> None:
    _, tmp, _ = loaded
    types = dict(
        _q(
            tmp,
            "select column_name, data_type from information_schema.columns "
            "where table_name = 'numbers'",
        )
    )
    assert types == {
        "id": "BIGINT",
        "big": "DECIMAL(30,0)",
        "dec": "DECIMAL(38,34)",
        "huge": "VARCHAR",
    }
    assert _q(tmp, "select big, dec, huge from numbers order by id") == [
        (
            Decimal("123456789012345678901234567890"),
            Decimal("1.2345678901234567890123456789012345"),
            "12345678901234567890123456789012345678901234567890.5",
        ),
        (Decimal("-99999999999999999999"), Decimal("0.5"), "1.0"),
    ]


def test_mixed_offsets_are_exact_instants(loaded: tuple[RunRecord, Path, MetadataStore]) -> None:
    _, tmp, _ = loaded
    rows = _q(tmp, 'select id, epoch_us("at") from offsets order by id')
    instant = dt.datetime(2024, 1, 1, 8, tzinfo=dt.UTC)
    expected = int(instant.timestamp() * 1_000_000)
    assert rows == [(1, expected), (2, expected), (3, expected)]


def test_duplicate_and_reserved_names(loaded: tuple[RunRecord, Path, MetadataStore]) -> None:
    _, tmp, _ = loaded
    assert _q(tmp, 'select "select", "from", a, a_2, column_5 from names') == [(1, 2, 3, 4, 5)]


def test_empty_files_load_nothing_without_error(
    loaded: tuple[RunRecord, Path, MetadataStore],
) -> None:
    record, _, _ = loaded
    assert _counts(record, "empty") == (0, 0, 0)
    assert _counts(record, "header_only") == (0, 0, 0)
    assert {s.name: s.status for s in record.streams}["empty"] == "succeeded"


def test_missing_file_fails_the_stream_with_its_path(tmp_path: Path, store: MetadataStore) -> None:
    record = _run(tmp_path, store, [{"name": "gone", "path": str(tmp_path / "gone*.csv")}])
    assert record.status == "failed"
    gone = next(s for s in record.streams if s.name == "gone")
    assert gone.error == f"stream 'gone': no file matches '{tmp_path}/gone*.csv'"
    assert all(s.status == "succeeded" for s in record.streams if s.name != "gone")
