"""Pagination styles, parent/child streams, record selection and typing, against a real server."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest

from aggregator.core.types import TIMESTAMPTZ
from tests.integration.rest.helpers import read, source
from tests.integration.rest.server import USERS, State

pytestmark = pytest.mark.integration
IDS = [u["id"] for u in USERS]


@pytest.mark.parametrize(
    ("path", "records_path", "pagination"),
    [
        ("/users", "data", {"type": "page_number", "total_pages_path": "total_pages"}),
        ("/users", "data", {"type": "page_number"}),
        ("/users", "data", {"type": "page_number", "page_size_param": "per_page", "page_size": 7}),
        ("/offset", "items", {"type": "offset", "page_size": 10, "total_path": "total"}),
        ("/offset", "items", {"type": "offset", "page_size": 5}),
        (
            "/cursor",
            "results",
            {"type": "cursor", "cursor_path": "meta.next", "cursor_param": "cursor"},
        ),
        ("/link", None, {"type": "link_header"}),
        ("/nexturl", "records", {"type": "next_url", "next_url_path": "next"}),
    ],
    ids=[
        "pages-total",
        "pages-empty",
        "pages-size",
        "offset-total",
        "offset",
        "cursor",
        "link",
        "nexturl",
    ],
)
def test_every_pagination_style_reads_every_record_once(
    api: str, path: str, records_path: str | None, pagination: dict[str, object]
) -> None:
    stream = {"name": "users", "path": path, "records_path": records_path, "pagination": pagination}
    result = read(source(api, [stream], concurrency=3), "users")
    assert sorted(result.table.column("id").to_pylist()) == IDS
    assert result.table.column("id").to_pylist() == IDS  # in order, even when concurrent
    assert result.quarantined == []
    assert result.states[-1] == {}


def test_nested_objects_stay_structs(api: str) -> None:
    stream = {"name": "users", "path": "/users", "records_path": "data"}
    table = read(source(api, [stream]), "users").table
    assert pa.types.is_struct(table.schema.field("address").type)
    assert table.column("address").to_pylist()[0] == {"city": "c1"}


def test_parent_child_streams(api: str, api_state: State) -> None:
    streams = [
        {
            "name": "users",
            "path": "/users",
            "records_path": "data",
            "pagination": {"type": "page_number"},
        },
        {
            "name": "orders",
            "path": "/users/{id}/orders",
            "parent": "users",
            "parent_fields": {"user_id": "id"},
            "primary_key": ["order_id"],
        },
    ]
    result = read(source(api, streams, concurrency=4), "orders")
    expected = sorted(u * 100 + j for u in IDS for j in range(u % 3))
    assert sorted(result.table.column("order_id").to_pylist()) == expected
    rows = result.rows
    assert all(r["order_id"] // 100 == r["user_id"] for r in rows)
    assert sum(v for k, v in api_state.hits.items() if k.endswith("/orders")) == len(IDS)


def test_loop_is_detected_and_stopped(api: str) -> None:
    stream = {
        "name": "loop",
        "path": "/loop",
        "records_path": "data",
        "pagination": {"type": "cursor", "cursor_path": "next"},
    }
    result = read(source(api, [stream]), "loop")
    assert result.table.num_rows == 4  # first page, then the same page once more
    assert any("pagination loop detected" in m for m in result.logs)


def test_max_pages(api: str) -> None:
    stream = {
        "name": "u",
        "path": "/users",
        "records_path": "data",
        "pagination": {"type": "page_number", "max_pages": 2},
    }
    assert read(source(api, [stream]), "u").table.num_rows == 20


def test_invalid_json_page_is_quarantined_with_url(api: str) -> None:
    stream = {
        "name": "b",
        "path": "/badjson",
        "records_path": "data",
        "pagination": {"type": "page_number"},
    }
    result = read(source(api, [stream], concurrency=1), "b")
    assert result.table.num_rows == 10
    [bad] = result.quarantined
    assert bad["position"] == "b:page 2"
    assert "invalid JSON from GET " + api + "/badjson?page=2" in bad["reason"]
    assert bad["raw"].startswith('{"data"')


def test_records_that_cannot_be_typed_are_quarantined_with_position(api: str) -> None:
    stream = {"name": "m", "path": "/mixed", "records_path": "data"}
    result = read(source(api, [stream]), "m")
    assert result.table.column("id").to_pylist() == [1, 4]
    assert [(q["position"], q["raw"]) for q in result.quarantined] == [
        ("m:page 1 item 2", '{"id": 2, "v": "two"}'),
        ("m:page 1 item 3", "7"),
    ]
    assert "conflict" in result.quarantined[0]["reason"]
    assert "not a JSON object" in result.quarantined[1]["reason"]


def test_exact_numbers_and_timestamps_with_offsets(api: str) -> None:
    result = read(source(api, [{"name": "e", "path": "/exact"}]), "e")
    t = result.table
    assert pa.types.is_decimal(t.schema.field("n").type)
    assert t.column("n").to_pylist() == [Decimal("123456789012345678901234567890")]
    assert t.schema.field("at").type == TIMESTAMPTZ
    assert t.column("at").to_pylist() == [dt.datetime(2024, 5, 1, 8, tzinfo=dt.UTC)]


def test_discover_infers_schema_from_samples(api: str) -> None:
    streams = [
        {"name": "users", "path": "/users", "records_path": "data", "primary_key": ["id"]},
        {
            "name": "orders",
            "path": "/users/{id}/orders",
            "parent": "users",
            "parent_fields": {"user_id": "id"},
        },
        {
            "name": "events",
            "path": "/events",
            "records_path": "data",
            "incremental": {"cursor_field": "updated_at", "param": "since"},
        },
    ]
    catalog = source(api, streams).discover()
    users = catalog.get("users")
    assert users is not None and users.primary_key == ("id",)
    assert users.schema.field("id").type == pa.int64()
    orders = catalog.get("orders")
    assert orders is not None and orders.schema.names == ["order_id", "total", "user_id"]
    events = catalog.get("events")
    assert events is not None and events.cursor_candidates == ("updated_at",)
    assert users.metadata["sampled_records"] == 10 and users.metadata["bytes_per_record"] > 0
    assert events.schema.field("updated_at").type == TIMESTAMPTZ


def test_graphql_cursor_in_the_body(api: str) -> None:
    stream = {
        "name": "users",
        "path": "/graphql",
        "method": "POST",
        "json_body": {
            "query": "query($after: String) { users(after: $after) { nodes { id } } }",
            "variables": {"first": 10},
        },
        "records_path": "data.users.nodes",
        "pagination": {
            "type": "cursor",
            "cursor_in": "body",
            "cursor_param": "variables.after",
            "cursor_path": "data.users.pageInfo.hasNextPage && data.users.pageInfo.endCursor",
        },
    }
    result = read(source(api, [stream], checkpoint_seconds=0), "users")
    assert result.table.column("id").to_pylist() == IDS
    resumed = read(source(api, [stream]), "users", result.states[0])
    assert resumed.table.column("id").to_pylist() == IDS[10:]


def test_buffered_pages_are_combined_unless_their_types_differ(api: str) -> None:
    users = {"name": "u", "path": "/users", "records_path": "data"}
    users["pagination"] = {"type": "page_number", "total_pages_path": "total_pages"}
    combined = read(source(api, [users], checkpoint_seconds=60), "u")
    assert [b.num_rows for b in combined.batches] == [25]  # 3 pages, one batch
    assert combined.states == [{}]  # no mid-stream checkpoint within a minute
    drift = {"name": "d", "path": "/drift", "records_path": "data"}
    drift["pagination"] = {"type": "page_number"}
    result = read(source(api, [drift], checkpoint_seconds=60), "d")
    # int64 and string pages cannot be one batch: each goes to the engine's schema policy
    assert [b.schema.field("v").type for b in result.batches] == [
        pa.int64(),
        pa.string(),
        pa.int64(),
    ]
    assert [r["id"] for r in result.rows] == [1, 2, 3]
