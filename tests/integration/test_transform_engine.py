"""Transforms, checks, profiles and anomalies end to end: files -> LocalEngine -> DuckDB."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from aggregator.engines.local import LocalEngine
from aggregator.metadata.store import MetadataStore, RunRecord
from aggregator.pipeline.spec import PipelineSpec
from aggregator.quality import store as qstore

pytestmark = pytest.mark.integration
CSV = (
    "Order ID,Amount,Email,Status,Currency\n"
    "1,10.50,Ann@Example.com,paid,EUR\n"
    "2,abc,bob@example.com,paid,EUR\n"
    "3,7.25,cy@example.com,test,USD\n"
    "4,3.00,dee@example.com,paid,XXX\n"
    "5,-1.00,eve@example.com,paid,EUR\n"
)


def _spec(tmp_path: Path, stream: dict[str, Any]) -> PipelineSpec:
    (tmp_path / "orders.csv").write_text(CSV)
    return PipelineSpec.model_validate(
        {
            "name": "tq",
            "sources": [
                {
                    "name": "f",
                    "type": "files",
                    "config": {
                        "streams": [{"name": "orders", "path": str(tmp_path / "orders.csv")}]
                    },
                    "streams": [{"name": "orders", **stream}],
                }
            ],
            "destination": {"type": "duckdb", "config": {"path": str(tmp_path / "wh.duckdb")}},
        }
    )


STREAM: dict[str, Any] = {
    "transforms": [
        {"step": "normalize_names"},
        {"step": "cast", "columns": {"amount": "decimal(10,2)"}},
        {"step": "filter", "where": "status <> 'test'"},
        {"step": "case", "columns": ["email"], "to": "lower"},
        {"step": "protect", "columns": {"email": "mask"}, "keep_last": 4},
        {"step": "derive", "column": "amount_cents", "expr": "CAST(amount * 100 AS BIGINT)"},
    ],
    "checks": [
        {"check": "accepted_values", "column": "currency", "values": ["EUR", "USD"]},
        {"check": "range", "column": "amount", "min": 0, "severity": "warn"},
        {"check": "row_count", "min": 1},
    ],
    "profile": True,
}


def _rows(tmp_path: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_steps_checks_and_quarantine_into_duckdb(tmp_path: Path, store: MetadataStore) -> None:
    record: RunRecord = LocalEngine(store).run(_spec(tmp_path, STREAM))
    assert record.status == "succeeded", record.error
    s = record.streams[0]
    assert (s.rows_read, s.rows_loaded, s.rows_quarantined) == (5, 2, 3)
    assert _rows(
        tmp_path, "select order_id, amount, email, amount_cents from orders order by 1"
    ) == [
        (1, Decimal("10.50"), "***********.com", 1050),
        (5, Decimal("-1.00"), "***********.com", -100),
    ]
    reasons = _rows(tmp_path, "select reason from orders__quarantine order by reason")
    assert [r[0] for r in reasons] == [
        "stream 'orders': checks[0] (accepted_values): currency not in ['EUR', 'USD'] "
        "(value 'XXX')",
        "stream 'orders': transforms[1] (cast): column 'amount': cannot cast 'abc' "
        "to decimal(10,2)",
        "stream 'orders': transforms[2] (filter): predicate \"status <> 'test'\" is not true",
    ]
    results = {r.kind: (r.status, r.failed) for r in qstore.run_results(store, record.id)}
    assert results == {
        "accepted_values": ("quarantined", 1),
        "range": ("warned", 1),
        "row_count": ("passed", 0),
    }
    profile = qstore.latest_profile(store, "tq", "orders")
    assert profile is not None and profile.columns is not None
    assert (
        profile.columns["amount"]["min"] == "-1.00" and profile.columns["order_id"]["distinct"] == 2
    )


def test_stream_without_processing_gets_pass_through(tmp_path: Path, store: MetadataStore) -> None:
    from aggregator.engines.processing import StreamProcessor
    from aggregator.transform.processor import processor_factory

    spec = _spec(tmp_path, {})
    plain = processor_factory(store)(spec, spec.configured_streams(spec.sources[0], ["orders"])[0])
    assert type(plain) is StreamProcessor
    record = LocalEngine(store).run(spec)
    assert record.streams[0].rows_loaded == 5


def test_unknown_column_fails_before_any_data_moves(tmp_path: Path, store: MetadataStore) -> None:
    stream = {"transforms": [{"step": "derive", "column": "x", "expr": "amout * 2"}]}
    record = LocalEngine(store).run(_spec(tmp_path, stream))
    assert record.status == "failed"
    assert "transforms[0] (derive): unknown column 'amout' at line 1, column 1 of 'amout * 2'" in (
        record.error or ""
    )
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
        tables = {
            t[0] for t in con.execute("select table_name from information_schema.tables").fetchall()
        }
    assert "Order ID" not in tables and "orders" not in tables


def test_stream_check_fail_fails_the_stream(tmp_path: Path, store: MetadataStore) -> None:
    record = LocalEngine(store).run(_spec(tmp_path, {"checks": [{"check": "row_count", "max": 2}]}))
    assert record.status == "failed"
    assert "row_count = 5, expected [None, 2]" in (record.error or "")


def test_anomaly_on_row_count_history(tmp_path: Path, store: MetadataStore) -> None:
    stream = {"anomalies": {"metrics": ["row_count"], "min_history": 3, "severity": "fail"}}
    for _ in range(3):
        assert LocalEngine(store).run(_spec(tmp_path, stream)).status == "succeeded"
    (tmp_path / "big.csv").write_text(
        CSV + "".join(f"{i},1.00,x@y.z,paid,EUR\n" for i in range(6, 60))
    )
    spec = _spec(tmp_path, stream)
    spec.sources[0].config["streams"][0]["path"] = str(tmp_path / "big.csv")
    record = LocalEngine(store).run(spec)
    assert record.status == "failed"
    assert "anomaly row_count: row_count = 59, median 5, robust z inf" in (record.error or "")


def test_lookup_against_destination_table(tmp_path: Path, store: MetadataStore) -> None:
    with duckdb.connect(str(tmp_path / "wh.duckdb")) as con:
        con.execute(
            "create table currencies as select * from "
            "(values ('EUR', 'Euro'), ('USD', 'Dollar')) t(code, label)"
        )
    stream = {
        "transforms": [
            {
                "step": "lookup",
                "table": "currencies",
                "on": {"Currency": "code"},
                "columns": ["label"],
            }
        ],
        "checks": [
            {
                "check": "referential",
                "column": "Currency",
                "table": "currencies",
                "ref_column": "code",
            }
        ],
    }
    record = LocalEngine(store).run(_spec(tmp_path, stream))
    assert record.status == "succeeded", record.error
    assert _rows(tmp_path, 'select "Order ID", label from orders order by 1') == [
        (1, "Euro"),
        (2, "Euro"),
        (3, "Dollar"),
        (5, "Euro"),
    ]
