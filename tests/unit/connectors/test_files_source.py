"""The files source: listing, compression, parquet, discover, incremental reads and resume."""

from __future__ import annotations

import gzip
import os
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from aggregator.connectors.files import FilesSource
from aggregator.core.catalog import ConfiguredStream, SyncMode
from aggregator.core.errors import ConfigError
from aggregator.core.messages import Checkpoint, Quarantined, Records


def source(path: Path | str, **options: Any) -> FilesSource:
    src = FilesSource.from_config({"streams": [{"name": "s", "path": str(path), **options}]})
    assert isinstance(src, FilesSource)
    return src


def read(
    path: Path | str,
    state: dict[str, Any] | None = None,
    stream: ConfiguredStream | None = None,
    **options: Any,
) -> list[Any]:
    return list(source(path, **options).read(stream or ConfiguredStream(name="s"), state))


def rows(messages: list[Any]) -> list[dict[str, Any]]:
    return [r for m in messages if isinstance(m, Records) for r in m.batch.to_pylist()]


def checkpoints(messages: list[Any]) -> list[dict[str, Any]]:
    return [m.state for m in messages if isinstance(m, Checkpoint)]


def csv_lines(n: int, start: int = 0) -> bytes:
    return ("id,v\n" + "".join(f"{i},v{i}\n" for i in range(start, start + n))).encode()


def test_missing_file_is_a_clear_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope*.csv"
    with pytest.raises(ConfigError) as err:
        read(missing)
    assert str(err.value) == f"stream 's': no file matches '{missing}'"
    result = source(missing).check()
    assert result.ok is False
    assert result.message == f"stream 's': no file matches '{missing}'"
    with pytest.raises(ConfigError, match="stream 's': no file matches"):
        source(missing).discover()


def test_unknown_stream_and_unknown_config_key() -> None:
    with pytest.raises(ConfigError, match="unknown stream 'other'"):
        list(source("x.csv").read(ConfiguredStream(name="other"), None))
    with pytest.raises(ConfigError, match=r"config\.streams\.0\.pathh"):
        FilesSource.from_config({"streams": [{"name": "s", "path": "x", "pathh": "y"}]})


def test_check_ok_and_relative_paths_resolve_against_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.csv").write_bytes(csv_lines(2))
    monkeypatch.chdir(tmp_path)
    assert source("a.csv").check().ok is True
    assert rows(read("a.csv")) == [{"id": 0, "v": "v0"}, {"id": 1, "v": "v1"}]


def test_gzip_and_zstd_compression(tmp_path: Path) -> None:
    (tmp_path / "a.csv.gz").write_bytes(gzip.compress(csv_lines(3)))
    (tmp_path / "b.jsonl.zst").write_bytes(zstandard.compress(b'{"id": 1}\n{"id": 2}\n'))
    assert [r["id"] for r in rows(read(tmp_path / "a.csv.gz"))] == [0, 1, 2]
    assert rows(read(tmp_path / "b.jsonl.zst")) == [{"id": 1}, {"id": 2}]
    (tmp_path / "raw.dat").write_bytes(gzip.compress(csv_lines(1)))
    assert rows(read(tmp_path / "raw.dat", format="csv", compression="gzip")) == [
        {"id": 0, "v": "v0"}
    ]


def test_glob_reads_files_in_sorted_order_with_a_checkpoint_per_file(tmp_path: Path) -> None:
    (tmp_path / "o2.csv").write_bytes(csv_lines(2, start=2))
    (tmp_path / "o1.csv").write_bytes(csv_lines(2, start=0))
    (tmp_path / "o3.csv").write_bytes(csv_lines(1, start=4))
    messages = read(tmp_path / "o*.csv")
    assert [r["id"] for r in rows(messages)] == [0, 1, 2, 3, 4]
    states = checkpoints(messages)
    assert [sorted(s["files"]) for s in states] == [
        [str(tmp_path / "o1.csv")],
        [str(tmp_path / "o1.csv"), str(tmp_path / "o2.csv")],
        [str(tmp_path / f"o{i}.csv") for i in (1, 2, 3)],
        [],
    ]


def test_fsspec_memory_url() -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe("/files-test/m1.csv", csv_lines(2))
    try:
        messages = read("memory://files-test/*.csv")
        assert rows(messages) == [{"id": 0, "v": "v0"}, {"id": 1, "v": "v1"}]
        assert list(checkpoints(messages)[0]["files"]) == ["memory:///files-test/m1.csv"]
    finally:
        fs.rm("/files-test", recursive=True)


def test_parquet_round_trip_of_decimal_timestamptz_and_list(tmp_path: Path) -> None:
    table = pa.table(
        {
            "amount": pa.array(
                [Decimal("12345678901234567890.123456789"), None], pa.decimal128(38, 9)
            ),
            "at": pa.array(
                [datetime(2024, 1, 1, 10, tzinfo=UTC), datetime(2024, 6, 1, tzinfo=UTC)],
                pa.timestamp("us", tz="UTC"),
            ),
            "tags": pa.array([["a", "b"], []], pa.list_(pa.string())),
        }
    )
    pq.write_table(table, tmp_path / "t.parquet")
    messages = read(tmp_path / "t.parquet", stream=ConfiguredStream(name="s", batch_size=1))
    got = [m.batch for m in messages if isinstance(m, Records)]
    assert [b.num_rows for b in got] == [1, 1]
    assert pa.Table.from_batches(got).equals(table)


def test_discover_reports_schema_keys_cursors_and_metadata(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_bytes(b"id,at,name\n1,2024-01-01T00:00:00Z,x\n")
    (tmp_path / "b.csv").write_bytes(b"id,at,name\n2,2024-01-02T00:00:00Z,y\n")
    catalog = source(tmp_path / "*.csv", primary_key=["id"]).discover()
    stream = catalog.streams[0]
    assert stream.name == "s"
    assert stream.schema == pa.schema(
        [("id", pa.int64()), ("at", pa.timestamp("us", tz="UTC")), ("name", pa.string())]
    )
    assert stream.primary_key == ("id",)
    assert stream.cursor_candidates == ("id", "at")
    assert stream.sync_modes == (SyncMode.FULL_REFRESH, SyncMode.INCREMENTAL)
    size = (tmp_path / "a.csv").stat().st_size + (tmp_path / "b.csv").stat().st_size
    assert stream.metadata == {
        "files": 2,
        "bytes": size,
        "format": "csv",
        "declared_types": {"id": "int64", "at": "timestamp[us, tz=UTC]", "name": "string"},
        "types_from": "inferred",
        "estimated_rows": None,
        "estimated_bytes": size,
    }


def test_incremental_by_modified_at(tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_bytes(csv_lines(2))
    b.write_bytes(csv_lines(1, start=10))
    first = read(tmp_path / "*.csv", incremental_by="modified_at")
    assert [r["id"] for r in rows(first)] == [0, 1, 10]
    state = checkpoints(first)[-1]
    assert sorted(state["files"]) == [str(a), str(b)]
    second = read(tmp_path / "*.csv", state, incremental_by="modified_at")
    assert rows(second) == []
    assert checkpoints(second)[-1] == state
    stat = b.stat()
    os.utime(b, (stat.st_atime, stat.st_mtime + 10))
    third = read(tmp_path / "*.csv", state, incremental_by="modified_at")
    assert [r["id"] for r in rows(third)] == [10]
    (tmp_path / "c.csv").write_bytes(csv_lines(1, start=20))
    fourth = read(tmp_path / "*.csv", checkpoints(third)[-1], incremental_by="modified_at")
    assert [r["id"] for r in rows(fourth)] == [20]


def test_incremental_by_cursor_column(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_bytes(
        b"id,at\n1,2024-01-01T00:00:00Z\n2,2024-01-03T00:00:00Z\n3,2024-01-02T00:00:00Z\n"
    )
    stream = ConfiguredStream(name="s", sync_mode=SyncMode.INCREMENTAL, cursor_field="at")
    first = read(path, stream=stream)
    assert [r["id"] for r in rows(first)] == [1, 2, 3]
    state = checkpoints(first)[-1]
    assert {k: v for k, v in state.items() if k != "files"} == {
        "cursor": "2024-01-03T00:00:00+00:00",
        "cursor_type": "timestamptz",
    }
    assert list(state["files"]) == [str(path)]  # an unchanged file is not read again
    second = read(path, state, stream=stream)
    assert not any(isinstance(m, Records | Quarantined) for m in second)
    path.write_bytes(
        b"id,at\n1,2024-01-01T00:00:00Z\n2,2024-01-03T00:00:00Z\n4,2024-01-04T01:00:00+01:00\n"
    )
    third = read(path, state, stream=stream)
    assert [r["id"] for r in rows(third)] == [4]
    assert checkpoints(third)[-1]["cursor"] == "2024-01-04T00:00:00+00:00"
    by_id = ConfiguredStream(name="s", sync_mode=SyncMode.INCREMENTAL, cursor_field="id")
    assert rows(read(path, {"cursor": 1, "cursor_type": "int64"}, stream=by_id)) == [
        {"id": 2, "at": datetime(2024, 1, 3, tzinfo=UTC)},
        {"id": 4, "at": datetime(2024, 1, 4, tzinfo=UTC)},
    ]


def test_missing_cursor_column_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_bytes(csv_lines(2))
    stream = ConfiguredStream(name="s", sync_mode=SyncMode.INCREMENTAL, cursor_field="updated")
    with pytest.raises(ConfigError, match="stream 's': cursor column 'updated' not found"):
        read(path, stream=stream)


def test_checkpoints_inside_a_file_and_resume_yields_exactly_the_rest(tmp_path: Path) -> None:
    data = b"id,v\n" + b"".join(
        (b"%d,x\n" % i) if i % 7 else (b"%d,x,extra\n" % i) for i in range(1, 101)
    )
    path = tmp_path / "big.csv"
    path.write_bytes(data)
    stream = ConfiguredStream(name="s", batch_size=10)
    full = read(path, stream=stream, checkpoint_rows=25)
    expected = [i for i in range(1, 101) if i % 7]
    assert [r["id"] for r in rows(full)] == expected
    mids = [s for s in checkpoints(full) if "current" in s]
    assert [s["current"]["rows"] for s in mids] == [34, 69, 100]
    # Replay a kill after each mid-file checkpoint: data before it + resumed data = everything.
    for mid in mids:
        before_rows, before_q = [], []
        for message in full:
            if isinstance(message, Checkpoint) and message.state == mid:
                break
            if isinstance(message, Records):
                before_rows += [r["id"] for r in message.batch.to_pylist()]
            if isinstance(message, Quarantined):
                before_q += message.rows.column("position").to_pylist()
        resumed = read(path, mid, stream=stream, checkpoint_rows=25)
        after_q = [
            p for m in resumed if isinstance(m, Quarantined) for p in m.rows["position"].to_pylist()
        ]
        assert before_rows + [r["id"] for r in rows(resumed)] == expected
        assert before_q + after_q == [f"{path}:{i + 1}" for i in range(7, 101, 7)]


def test_resume_from_a_hand_written_current_state(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_bytes(b"".join(b'{"id": %d}\n' % i for i in range(5)))
    b.write_bytes(b"".join(b'{"id": %d}\n' % i for i in range(5, 10)))
    full = read(tmp_path / "*.jsonl")
    files = checkpoints(full)[0]["files"]
    mtime_b = checkpoints(full)[1]["files"][str(b)]
    state = {"files": files, "current": {"path": str(b), "mtime": mtime_b, "rows": 3}}
    assert [r["id"] for r in rows(read(tmp_path / "*.jsonl", state))] == [8, 9]
    stale = {"files": files, "current": {"path": str(b), "mtime": "other", "rows": 3}}
    assert [r["id"] for r in rows(read(tmp_path / "*.jsonl", stale))] == [5, 6, 7, 8, 9]


def test_resume_in_parquet_skips_committed_rows(tmp_path: Path) -> None:
    pq.write_table(pa.table({"id": list(range(10))}), tmp_path / "p.parquet")
    full = read(tmp_path / "p.parquet")
    mtime = checkpoints(full)[0]["files"][str(tmp_path / "p.parquet")]
    state = {
        "files": {},
        "current": {"path": str(tmp_path / "p.parquet"), "mtime": mtime, "rows": 7},
    }
    resumed = read(tmp_path / "p.parquet", state, stream=ConfiguredStream(name="s", batch_size=3))
    assert [r["id"] for r in rows(resumed)] == [7, 8, 9]


def test_incremental_without_cursor_tracks_files_by_modification_time(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_bytes(csv_lines(2))
    stream = ConfiguredStream(name="s", sync_mode=SyncMode.INCREMENTAL)
    first = read(tmp_path / "*.csv", stream=stream)
    assert [r["id"] for r in rows(first)] == [0, 1]
    again = read(tmp_path / "*.csv", checkpoints(first)[-1], stream=stream)
    assert rows(again) == []
