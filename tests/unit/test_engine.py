"""The local engine with the DuckDB destination: modes, checkpoints, schema, quarantine."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from aggregator.engines.local import LocalEngine
from aggregator.metadata.store import MetadataStore
from aggregator.pipeline.spec import PipelineSpec
from tests.support import pipeline_dict

pytestmark = pytest.mark.unit


def _run(
    tmp_path: Path, store: MetadataStore, write_mode: str = "append", full: bool = False, **cfg
):  # type: ignore[no-untyped-def]
    spec = PipelineSpec.model_validate(pipeline_dict(str(tmp_path), write_mode, **cfg))
    return LocalEngine(store).run(spec, full_refresh=full)


def _rows(tmp_path: Path, sql: str) -> list[tuple]:  # type: ignore[type-arg]
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_append_incremental_reads_only_new_rows(tmp_path: Path, store: MetadataStore) -> None:
    first = _run(tmp_path, store, rows=250, batch=100)
    assert first.status == "succeeded", first.error
    s = first.streams[0]
    assert (s.rows_read, s.rows_loaded, s.rows_quarantined) == (250, 250, 0)
    second = _run(tmp_path, store, rows=300, batch=100)
    assert second.streams[0].rows_loaded == 50
    assert _rows(tmp_path, "select count(*), count(distinct id), sum(amount) from numbers") == [
        (300, 300, Decimal("451.50"))
    ]


def test_exact_decimal_type_in_destination(tmp_path: Path, store: MetadataStore) -> None:
    _run(tmp_path, store, rows=10, batch=5)
    types = dict(
        _rows(
            tmp_path,
            "select column_name, data_type from information_schema.columns "
            "where table_name = 'numbers'",
        )
    )
    assert types == {"id": "BIGINT", "amount": "DECIMAL(12,2)", "version": "BIGINT"}
    assert _rows(tmp_path, "select sum(amount)::varchar from numbers") == [("0.55",)]


def test_merge_upserts_and_replace_swaps(tmp_path: Path, store: MetadataStore) -> None:
    _run(tmp_path, store, "merge", rows=100, batch=30, version=1)
    rerun = _run(tmp_path, store, "merge", full=False, rows=100, batch=30, version=2)
    assert rerun.streams[0].rows_read == 0  # incremental: nothing new
    full = _run(tmp_path, store, "merge", full=True, rows=100, batch=30, version=3)
    assert full.streams[0].rows_loaded == 100
    assert _rows(tmp_path, "select count(*), min(version), max(version) from numbers") == [
        (100, 3, 3)
    ]


def test_quarantine_counts_add_up(tmp_path: Path, store: MetadataStore) -> None:
    record = _run(tmp_path, store, rows=100, batch=25, bad_every=10)
    s = record.streams[0]
    assert (s.rows_read, s.rows_loaded, s.rows_quarantined) == (100, 90, 10)
    assert _rows(tmp_path, "select count(*), min(position) from numbers__quarantine") == [
        (10, "row 10")
    ]


def test_schema_evolution_adds_column_and_records_version(
    tmp_path: Path, store: MetadataStore
) -> None:
    record = _run(tmp_path, store, rows=100, batch=50, extra_column_from=51)
    assert record.status == "succeeded", record.error
    assert _rows(tmp_path, "select count(note) from numbers") == [(50,)]
    versions = store.schema_versions("seq", "numbers")
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[1]["diff"] == {"added": [{"name": "note", "type": "string"}], "widened": []}


def test_freeze_policy_fails_the_stream_and_keeps_committed_rows(
    tmp_path: Path, store: MetadataStore
) -> None:
    spec_dict = pipeline_dict(str(tmp_path), "append", rows=100, batch=50, extra_column_from=51)
    spec_dict["schema_policy"] = "freeze"
    # the first run creates the table, so freeze has a schema to hold
    spec = PipelineSpec.model_validate(pipeline_dict(str(tmp_path), "append", rows=50, batch=50))
    assert LocalEngine(store).run(spec).status == "succeeded"
    spec = PipelineSpec.model_validate(spec_dict)
    record = LocalEngine(store).run(spec)
    assert record.status == "failed"
    assert "frozen" in (record.error or "") and "note" in (record.error or "")
    assert _rows(tmp_path, "select count(*) from numbers") == [(50,)]


def test_run_records_are_stored(tmp_path: Path, store: MetadataStore) -> None:
    record = _run(tmp_path, store, rows=10, batch=10)
    stored = store.get_run(record.id[:8])
    assert stored is not None and stored.status == "succeeded"
    assert stored.streams[0].rows_loaded == 10
    assert stored.streams[0].state == {"after": 10}


def test_stream_processor_rejections_are_quarantined(tmp_path: Path, store: MetadataStore) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    from aggregator.engines.processing import Processed, StreamProcessor

    class DropEven(StreamProcessor):
        def process(self, batch: pa.RecordBatch) -> Processed:
            even = pc.equal(pc.bit_wise_and(batch.column("id"), 1), 0)
            rejected = dict.fromkeys(pc.indices_nonzero(even).to_pylist(), "even id")
            return Processed(batch.filter(pc.invert(even)), rejected)

    spec = PipelineSpec.model_validate(pipeline_dict(str(tmp_path), "append", rows=10, batch=4))
    record = LocalEngine(store, processors=lambda _s, _c: DropEven()).run(spec)
    s = record.streams[0]
    assert (s.rows_read, s.rows_loaded, s.rows_quarantined) == (10, 5, 5)
    assert _rows(tmp_path, "select count(*) from numbers__quarantine where reason = 'even id'") == [
        (5,)
    ]


def test_processing_thread_keeps_source_order(tmp_path: Path, store: MetadataStore) -> None:
    """Batches are processed in a thread of their own, in order, and written in that order."""
    import threading
    import time

    import pyarrow as pa

    from aggregator.engines.processing import Processed, StreamProcessor

    class Numbered(StreamProcessor):
        def __init__(self) -> None:
            self.seen = 0
            self.threads: set[str] = set()

        def process(self, batch: pa.RecordBatch) -> Processed:
            self.threads.add(threading.current_thread().name)
            time.sleep(0.002 * (self.seen % 3))  # uneven work per batch
            self.seen += 1
            seq = pa.array([self.seen] * batch.num_rows, pa.int64())
            return Processed(
                pa.RecordBatch.from_arrays([*batch.columns, seq], [*batch.schema.names, "seq"])
            )

    processor = Numbered()
    spec = PipelineSpec.model_validate(pipeline_dict(str(tmp_path), "append", rows=50, batch=3))
    record = LocalEngine(store, processors=lambda _s, _c: processor).run(spec)
    assert record.status == "succeeded" and record.streams[0].rows_loaded == 50
    assert processor.threads == {"process-numbers"}
    rows = _rows(tmp_path, "select id, seq from numbers order by id")
    assert [r[1] for r in rows] == [1 + i // 3 for i in range(50)]


def test_processor_error_fails_the_stream_with_its_message(
    tmp_path: Path, store: MetadataStore
) -> None:
    import pyarrow as pa

    from aggregator.engines.processing import Processed, StreamProcessor

    class Breaks(StreamProcessor):
        def __init__(self) -> None:
            self.batches = 0

        def process(self, batch: pa.RecordBatch) -> Processed:
            self.batches += 1
            if self.batches == 3:
                raise ValueError("step exploded on batch 3")
            return Processed(batch)

    spec = PipelineSpec.model_validate(pipeline_dict(str(tmp_path), "append", rows=20, batch=4))
    record = LocalEngine(store, processors=lambda _s, _c: Breaks()).run(spec)
    assert record.status == "failed"
    assert record.streams[0].error == "ValueError: step exploded on batch 3"
