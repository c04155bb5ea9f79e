"""The "Bad input" cases of the transformation engine, end to end through the LocalEngine:
each names the step (and position), quarantines with the value, logs the traceback, or fails
before any data moves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from structlog.testing import capture_logs

from aggregator.core.errors import SpecError
from aggregator.engines.local import LocalEngine
from aggregator.metadata.store import MetadataStore
from aggregator.pipeline.spec import load_pipeline
from tests.integration.test_transform_engine import _rows, _spec

pytestmark = pytest.mark.integration


def failing_step(batch: pa.RecordBatch) -> pa.RecordBatch:
    raise ValueError(f"cannot handle {batch.num_rows} rows")


def polars_step(frame: Any) -> Any:
    import polars as pl

    return frame.with_columns((pl.col("Amount").str.len_chars()).alias("amount_chars"))


def _tables(tmp_path: Path) -> set[str]:
    if not (tmp_path / "wh.duckdb").exists():
        return set()
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
        rows = con.execute("select table_name from information_schema.tables").fetchall()
    return {r[0] for r in rows}


def test_syntax_error_names_file_line_step_and_position(tmp_path: Path) -> None:
    path = tmp_path / "p.yml"
    path.write_text(
        "name: p\nsources:\n  - name: f\n    type: files\n"
        "    config: {streams: [{name: orders, path: o.csv}]}\n"
        "    streams:\n      - name: orders\n"
        "        transforms:\n          - {step: filter, where: 'amount >> > 1'}\n"
    )
    with pytest.raises(SpecError) as err:
        load_pipeline(path)
    assert err.value.problems == [
        f"{path}:9: sources.0.streams.0.transforms.0.where: stream 'orders': transforms[0] "
        "(filter): syntax error at line 1, column 11 of 'amount >> > 1': Required keyword: "
        "'expression' missing for BitwiseRightShift"
    ]


def test_cast_failure_quarantines_the_row_with_its_value(
    tmp_path: Path, store: MetadataStore
) -> None:
    stream = {"transforms": [{"step": "cast", "columns": {"Amount": "float64"}}]}
    record = LocalEngine(store).run(_spec(tmp_path, stream))
    assert record.status == "succeeded", record.error
    s = record.streams[0]
    assert (s.rows_read, s.rows_loaded, s.rows_quarantined) == (5, 4, 1)
    assert _rows(tmp_path, "select reason, raw from orders__quarantine") == [
        (
            "stream 'orders': transforms[0] (cast): column 'Amount': cannot cast 'abc' to float64",
            '{"Order ID": 2, "Amount": "abc", "Email": "bob@example.com", "Status": "paid", '
            '"Currency": "EUR"}',
        )
    ]


def test_python_step_traceback_in_run_log_and_rows_quarantined(
    tmp_path: Path, store: MetadataStore
) -> None:
    stream = {"transforms": [{"step": "python", "function": f"{__name__}:failing_step"}]}
    with capture_logs() as logs:
        record = LocalEngine(store).run(_spec(tmp_path, stream))
    assert record.status == "succeeded", record.error
    s = record.streams[0]
    assert (s.rows_read, s.rows_loaded, s.rows_quarantined) == (5, 0, 5)
    [failed] = [e for e in logs if e["event"] == "transform.python_failed"]
    assert failed["step"] == "stream 'orders': transforms[0] (python)"
    trace = failed["traceback"]
    assert trace.startswith("Traceback (most recent call last):")
    assert 'raise ValueError(f"cannot handle {batch.num_rows} rows")' in trace
    assert trace.rstrip().endswith("ValueError: cannot handle 5 rows")
    reasons = {r[0] for r in _rows(tmp_path, "select reason from orders__quarantine")}
    assert reasons == {"stream 'orders': transforms[0] (python): ValueError: cannot handle 5 rows"}


def test_python_step_on_error_fail_fails_the_run(tmp_path: Path, store: MetadataStore) -> None:
    step = {"step": "python", "function": f"{__name__}:failing_step", "on_error": "fail"}
    record = LocalEngine(store).run(_spec(tmp_path, {"transforms": [step]}))
    assert record.status == "failed"
    assert "stream 'orders': transforms[0] (python): ValueError: cannot handle 5 rows" in (
        record.error or ""
    )
    assert "orders" not in _tables(tmp_path)


def test_contract_on_missing_column_fails_before_any_data_moves(
    tmp_path: Path, store: MetadataStore
) -> None:
    stream = {
        "transforms": [{"step": "normalize_names"}],
        "checks": [{"check": "range", "column": "Amount", "min": 0}],
    }
    record = LocalEngine(store).run(_spec(tmp_path, stream))
    assert record.status == "failed"
    assert (
        "stream 'orders': checks[0] (range): unknown column 'Amount'; columns: order_id, "
        "amount, email, status, currency" in (record.error or "")
    )
    assert record.streams[0].rows_loaded == 0
    assert not {"orders", "orders__quarantine"} & _tables(tmp_path)


def test_polars_python_step(tmp_path: Path, store: MetadataStore) -> None:
    step = {"step": "python", "function": f"{__name__}:polars_step", "frame": "polars"}
    record = LocalEngine(store).run(_spec(tmp_path, {"transforms": [step]}))
    assert record.status == "succeeded", record.error
    assert _rows(tmp_path, 'select "Order ID", amount_chars from orders order by 1') == [
        (1, 5),
        (2, 3),
        (3, 4),
        (4, 4),
        (5, 5),
    ]
