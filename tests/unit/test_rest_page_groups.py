"""Pages typed together (one Arrow parse) and the per-page fallback; orjson's limits."""

from __future__ import annotations

import math
from decimal import Decimal

from aggregator.connectors.rest.records import PageTyper, loads


def test_pages_type_together_in_one_batch() -> None:
    typer = PageTyper("s", {})
    pages = [
        ([{"id": 1, "v": 1.5}, {"id": 2, "v": 2.5}], 1, False),
        ([{"id": 3, "v": 3.0}], 2, False),
    ]
    batches, quarantined = typer.pages(pages)
    assert quarantined is None and len(batches) == 1
    assert batches[0].to_pylist() == [
        {"id": 1, "v": 1.5},
        {"id": 2, "v": 2.5},
        {"id": 3, "v": 3.0},
    ]


def test_a_conflicting_page_falls_back_to_per_page_positions() -> None:
    typer = PageTyper("s", {})
    pages = [
        ([{"id": 1, "tags": [1]}], 1, False),
        ([{"id": 2, "tags": {"x": 1}}, {"id": 3, "tags": [2]}], 2, False),
        ([{"id": 4, "tags": [3]}], 3, False),
    ]
    batches, quarantined = typer.pages(pages)
    # typed page by page: within page 2, item 2 conflicts with item 1 (as for one page)
    assert [r["id"] for b in batches for r in b.to_pylist()] == [1, 2, 4]
    assert quarantined is not None
    rows = quarantined.rows.to_pylist()
    assert [r["position"] for r in rows] == ["s:page 2 item 2"]
    assert rows[0]["raw"] == '{"id": 3, "tags": [2]}'


def test_loads_uses_the_standard_library_for_what_orjson_refuses() -> None:
    assert loads(b'{"a": [1, 2.5]}') == ({"a": [1, 2.5]}, False)
    value, exact = loads(b'{"a": NaN}')
    assert exact and math.isnan(value["a"])
    assert loads(b'{"a": 12345678901234567890123}') == ({"a": 12345678901234567890123}, True)
    assert loads(b'{"a": 0.12345678901234567890}') == (
        {"a": Decimal("0.12345678901234567890")},
        True,
    )
