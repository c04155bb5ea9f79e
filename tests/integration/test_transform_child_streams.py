"""``unnest`` with ``into``: a child stream written with its parent, in DuckDB and PostgreSQL.

Exact child rows after merge (children of an updated parent replaced as a whole), replace
and append runs; a failed run leaves no child row of its uncommitted batches, and the re-run
duplicates nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from aggregator.connectors.sdk import ChildTableWriter
from aggregator.core.catalog import ConfiguredStream, WriteMode
from aggregator.engines.local import LocalEngine
from aggregator.engines.processing import PARENT
from aggregator.metadata.store import MetadataStore, RunRecord
from aggregator.pipeline.spec import PipelineSpec
from aggregator.transform.children import ChildTables
from tests.integration.databases.pg import pg_schema

pytestmark = pytest.mark.integration

Rows = list[tuple[Any, ...]]
ITEMS = "SELECT order_id, _index, sku, qty FROM {}order_items ORDER BY 1, 2"
ORDERS = "SELECT order_id, customer FROM {}orders ORDER BY 1"


class Target:
    """A destination config and a way to query it."""

    def __init__(self, config: dict[str, Any], query: Callable[[str], Rows], prefix: str):
        self.config = config
        self.query = query
        self.prefix = prefix

    def rows(self, sql: str) -> Rows:
        return self.query(sql.format(self.prefix))


@pytest.fixture(params=["duckdb", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    if request.param == "duckdb":
        path = str(tmp_path / "wh.duckdb")

        def query(sql: str) -> Rows:
            with duckdb.connect(path, read_only=True) as con:
                return con.execute(sql).fetchall()

        yield Target({"type": "duckdb", "config": {"path": path}}, query, "")
        return
    pg_url = request.getfixturevalue("pg_url")
    for db in pg_schema(pg_url):
        yield Target({"type": "postgres", "config": db.destination()}, db.execute, f'"{db.name}".')


def _write(path: Path, orders: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(o) + "\n" for o in orders))


def _run(
    tmp_path: Path, store: MetadataStore, target: Target, stream: dict[str, Any], **config: Any
) -> RunRecord:
    spec = PipelineSpec.model_validate(
        {
            "name": "kids",
            "sources": [
                {
                    "name": "f",
                    "type": "files",
                    "config": {
                        "streams": [
                            {"name": "orders", "path": str(tmp_path / "in" / "*.jsonl"), **config}
                        ]
                    },
                    "streams": [{"name": "orders", "primary_key": ["order_id"], **stream}],
                }
            ],
            "destination": target.config,
        }
    )
    return LocalEngine(store).run(spec)


UNNEST = {"step": "unnest", "column": "items", "into": "order_items"}
DAY1 = [
    {"order_id": 1, "customer": "ann", "items": [{"sku": "A", "qty": 2}, {"sku": "B", "qty": 1}]},
    {"order_id": 2, "customer": "bob", "items": []},
    {"order_id": 3, "customer": "cy", "items": [{"sku": "C", "qty": 5}]},
]


def test_merge_replaces_the_children_of_updated_parents(
    tmp_path: Path, store: MetadataStore, target: Target
) -> None:
    (tmp_path / "in").mkdir()
    stream = {"write_mode": "merge", "transforms": [UNNEST]}
    _write(tmp_path / "in" / "a.jsonl", DAY1)
    first = _run(tmp_path, store, target, stream)
    assert first.status == "succeeded", first.error
    assert target.rows(ORDERS) == [(1, "ann"), (2, "bob"), (3, "cy")]
    assert target.rows(ITEMS) == [(1, 0, "A", 2), (1, 1, "B", 1), (3, 0, "C", 5)]
    day2 = [
        {"order_id": 1, "customer": "ann", "items": [{"sku": "B", "qty": 3}]},  # shrinks
        {"order_id": 2, "customer": "bob", "items": [{"sku": "D", "qty": 1}]},  # gains one
        {"order_id": 3, "customer": "cy", "items": [{"sku": "C", "qty": 5}]},  # unchanged
        {"order_id": 4, "customer": "dee", "items": None},  # new, no list
        {"order_id": 4, "customer": "dee", "items": [{"sku": "E", "qty": 7}]},  # last wins
    ]
    _write(tmp_path / "in" / "a.jsonl", day2)
    second = _run(tmp_path, store, target, stream)
    assert second.status == "succeeded", second.error
    assert target.rows(ORDERS) == [(1, "ann"), (2, "bob"), (3, "cy"), (4, "dee")]
    assert target.rows(ITEMS) == [
        (1, 0, "B", 3),
        (2, 0, "D", 1),
        (3, 0, "C", 5),
        (4, 0, "E", 7),
    ]


def test_replace_swaps_the_child_table_with_the_parent(
    tmp_path: Path, store: MetadataStore, target: Target
) -> None:
    (tmp_path / "in").mkdir()
    stream = {"write_mode": "replace", "transforms": [UNNEST]}
    _write(tmp_path / "in" / "a.jsonl", DAY1)
    assert _run(tmp_path, store, target, stream).status == "succeeded"
    _write(tmp_path / "in" / "a.jsonl", [{"order_id": 9, "customer": "zed", "items": ["x"]}])
    scalar = {**stream, "transforms": [UNNEST, {"step": "drop", "columns": ["customer"]}]}
    record = _run(tmp_path, store, target, scalar)
    assert record.status == "succeeded", record.error
    assert target.rows("SELECT order_id FROM {}orders") == [(9,)]
    # a list of scalars: the element is a column named like the list
    assert target.rows("SELECT order_id, _index, items FROM {}order_items") == [(9, 0, "x")]


def fail_on_boom(batch: pa.RecordBatch) -> pa.RecordBatch:
    """A Python step that raises on the customer ``boom`` (a failure mid-run)."""
    if pc.any(pc.equal(batch.column("customer"), "boom")).as_py():
        raise ValueError("boom")
    return batch


def test_failed_run_keeps_no_uncommitted_children_and_rerun_does_not_duplicate(
    tmp_path: Path, store: MetadataStore, target: Target
) -> None:
    (tmp_path / "in").mkdir()
    stream = {
        "write_mode": "append",
        "sync_mode": "incremental",
        "transforms": [
            UNNEST,
            {"step": "python", "function": f"{__name__}:fail_on_boom", "on_error": "fail"},
        ],
    }
    _write(tmp_path / "in" / "a.jsonl", DAY1)
    late = [
        {"order_id": 5, "customer": "eve", "items": [{"sku": "F", "qty": 1}]},
        {"order_id": 6, "customer": "boom", "items": [{"sku": "G", "qty": 2}]},
    ]
    _write(tmp_path / "in" / "b.jsonl", late)
    os.utime(tmp_path / "in" / "b.jsonl", (2_000_000_000, 2_000_000_000))
    failed = _run(tmp_path, store, target, stream, incremental_by="modified_at")
    assert failed.status == "failed" and "ValueError: boom" in (failed.error or "")
    # a.jsonl committed (rows, children, state together); nothing of b.jsonl
    assert target.rows(ORDERS) == [(1, "ann"), (2, "bob"), (3, "cy")]
    assert target.rows(ITEMS) == [(1, 0, "A", 2), (1, 1, "B", 1), (3, 0, "C", 5)]
    late[1]["customer"] = "fay"
    _write(tmp_path / "in" / "b.jsonl", late)
    os.utime(tmp_path / "in" / "b.jsonl", (2_000_000_100, 2_000_000_100))
    again = _run(tmp_path, store, target, stream, incremental_by="modified_at")
    assert again.status == "succeeded", again.error
    assert again.streams[0].rows_read == 2  # only b.jsonl is read again
    assert target.rows(ORDERS) == [(1, "ann"), (2, "bob"), (3, "cy"), (5, "eve"), (6, "fay")]
    assert target.rows(ITEMS) == [
        (1, 0, "A", 2),
        (1, 1, "B", 1),
        (3, 0, "C", 5),
        (5, 0, "F", 1),
        (6, 0, "G", 2),
    ]


def _open(target: Target) -> Any:
    from aggregator.connectors import registry

    kind = target.config["type"]
    destination = registry.destination_class(kind).from_config(target.config["config"])
    return destination.open("kids")


def test_child_rows_commit_and_roll_back_with_the_parent_transaction(target: Target) -> None:
    stream = ConfiguredStream(name="orders", write_mode=WriteMode.APPEND, primary_key=("id",))
    parents = pa.RecordBatch.from_pydict({"id": pa.array([1, 2], pa.int64())})
    children = {
        "order_items": pa.table(
            {
                "id": pa.array([1, 2, 2], pa.int64()),
                "_index": pa.array([0, 0, 1], pa.int64()),
                "sku": ["a", "b", "c"],
                PARENT: pa.array([0, 1, 1], pa.int64()),
            }
        )
    }
    positions = pa.array([0, 1], pa.int64())
    with _open(target) as session:
        writer = session.writer(stream, "r1")
        kids = ChildTables(writer, stream, ("order_items",))
        writer.apply_schema(parents.schema)
        writer.write(parents)
        kids.write(parents, positions, children)
        writer.commit({"n": 1})
        writer.write(parents)
        kids.write(parents, positions, children)
        writer.abort()  # the second batch's parents and children go together
    assert target.rows("SELECT id FROM {}orders ORDER BY 1") == [(1,), (2,)]
    assert target.rows("SELECT id, _index, sku FROM {}order_items ORDER BY 1, 2") == [
        (1, 0, "a"),
        (2, 0, "b"),
        (2, 1, "c"),
    ]


def test_child_stream_config_errors(tmp_path: Path, store: MetadataStore) -> None:
    (tmp_path / "in").mkdir()
    _write(tmp_path / "in" / "a.jsonl", [{"id": 1, "items": [{"id": 5}]}])
    duck = {"type": "duckdb", "config": {"path": str(tmp_path / "wh.duckdb")}}

    def run(stream: dict[str, Any], destination: dict[str, Any] = duck) -> RunRecord:
        spec = PipelineSpec.model_validate(
            {
                "name": "kids",
                "sources": [
                    {
                        "name": "f",
                        "type": "files",
                        "config": {
                            "streams": [{"name": "o", "path": str(tmp_path / "in" / "*.jsonl")}]
                        },
                        "streams": [{"name": "o", **stream}],
                    }
                ],
                "destination": destination,
            }
        )
        return LocalEngine(store).run(spec)

    unnest = {"step": "unnest", "column": "items", "into": "o_items"}
    no_key = run({"transforms": [unnest]})
    assert no_key.status == "failed"
    assert no_key.error == (
        "o: stream 'o': unnest into 'o_items' needs the stream's primary_key "
        "(child rows are keyed by their parent's key)"
    )
    clash = run({"primary_key": ["id"], "transforms": [unnest]})
    assert clash.status == "failed"
    assert "o: stream 'o': child stream 'o_items': element column 'id' has the name of a key " in (
        clash.error or ""
    )
    files = {"type": "files", "config": {"path": str(tmp_path / "out"), "format": "parquet"}}
    renamed = [unnest, {"step": "rename", "columns": {"id": "oid"}}]
    other = run({"primary_key": ["oid"], "transforms": renamed}, files)
    assert other.status == "failed"
    assert "unnest into a child stream needs a duckdb or postgres destination" in (
        other.error or ""
    )


def test_child_table_api_merge_then_replace(target: Target) -> None:
    """The public writer capability: a child table evolves, deletes by parent key, and in
    ``replace`` is swapped in (or emptied when nothing was written) with the parent."""
    merge = ConfiguredStream(name="p", write_mode=WriteMode.MERGE, primary_key=("pid",))
    first = pa.table({"pid": pa.array([1, 1, 2], pa.int64()), "v": ["a", "b", "c"]})
    keys = pa.table({"pid": pa.array([1], pa.int64())})
    wider = pa.table({"pid": pa.array([1], pa.int64()), "v": ["z"], "n": pa.array([7], pa.int64())})
    with _open(target) as session:
        writer = session.writer(merge, "r1")
        assert isinstance(writer, ChildTableWriter)
        kids = writer.child_table("p_kids")
        assert kids.current_schema() is None
        kids.delete_parents(keys)  # no table yet: nothing to delete
        kids.apply_schema(first.schema)
        kids.write(first)
        writer.commit({"n": 1})
        writer.finish({"n": 1})
    with _open(target) as session:
        writer = session.writer(merge, "r2")
        assert isinstance(writer, ChildTableWriter)
        kids = writer.child_table("p_kids")
        assert kids.current_schema() == first.schema
        kids.delete_parents(keys)
        kids.apply_schema(wider.schema)
        kids.write(wider)
        writer.finish({"n": 2})
    kids_rows = "SELECT pid, v, n FROM {}p_kids ORDER BY 1, 2"
    assert target.rows(kids_rows) == [(1, "z", 7), (2, "c", None)]

    replace = ConfiguredStream(name="p", write_mode=WriteMode.REPLACE, primary_key=("pid",))
    for finish in (False, True):
        with _open(target) as session:
            writer = session.writer(replace, "r3")
            assert isinstance(writer, ChildTableWriter)
            kids = writer.child_table("p_kids")
            assert kids.current_schema() is None  # replace builds a new table
            kids.apply_schema(first.schema)
            kids.write(first.slice(2))
            writer.commit({"n": 3})
            if not finish:
                writer.abort()  # a failed replace run leaves the old table as it was
                continue
            kids.finish()
            writer.finish({"n": 3})
        if not finish:
            assert target.rows(kids_rows) == [(1, "z", 7), (2, "c", None)]
    assert target.rows("SELECT pid, v FROM {}p_kids ORDER BY 1, 2") == [(2, "c")]
    with _open(target) as session:
        writer = session.writer(replace, "r4")
        assert isinstance(writer, ChildTableWriter)
        writer.child_table("p_kids").finish()  # no children this run: the table is emptied
        writer.finish({"n": 4})
    assert target.rows("SELECT pid, v FROM {}p_kids") == []
