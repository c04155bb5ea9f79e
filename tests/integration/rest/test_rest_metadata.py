"""What ``discover`` reports besides the schema: keys, cursor, size estimates, JSON types."""

from __future__ import annotations

import pytest

from tests.integration.rest.helpers import source

pytestmark = pytest.mark.integration


def test_discover_reports_keys_cursor_estimates_and_json_types(api: str) -> None:
    streams = [
        {
            "name": "people",
            "path": "/offset",
            "records_path": "items",
            "primary_key": ["id"],
            "pagination": {"type": "offset", "page_size": 10, "total_path": "total"},
        },
        {
            "name": "events",
            "path": "/events",
            "records_path": "data",
            "pagination": {"type": "page_number"},
            "incremental": {"cursor_field": "updated_at", "param": "since"},
        },
    ]
    catalog = source(api, streams).discover()
    people, events = catalog.get("people"), catalog.get("events")
    assert people is not None and events is not None
    assert people.primary_key == ("id",) and people.cursor_candidates == ()
    assert people.metadata["estimated_rows"] == 25  # the API's `total`
    assert people.metadata["sampled_records"] == 10
    per_record = people.metadata["bytes_per_record"]
    assert 25 * (per_record - 1) <= people.metadata["estimated_bytes"] <= 25 * (per_record + 1)
    assert people.metadata["declared_types"] == {
        "id": "integer",
        "name": "string",
        "address": "object",
    }
    assert events.cursor_candidates == ("updated_at",)
    assert events.metadata["estimated_rows"] is None  # the API announces no total
    assert events.metadata["declared_types"] == {
        "id": "integer",
        "updated_at": "string (date-time)",
        "amount": "string",
    }
