"""Paginators, page typing and the request budget, without a server."""

from __future__ import annotations

import time

import httpx
import pyarrow as pa
import pytest

from aggregator.connectors.rest.config import Pagination, RestConfig
from aggregator.connectors.rest.http import HttpClient, RateLimiter, Request, Response
from aggregator.connectors.rest.pagination import Paginator
from aggregator.connectors.rest.records import PageTyper

pytestmark = pytest.mark.unit
BASE = Request("http://api/items", (("q", "x"),))


def _response(link: str | None = None) -> Response:
    return Response("GET http://api/items", 200, b"", httpx.Headers(), link)


def test_page_number_stops_on_short_page_and_total_pages() -> None:
    p = Paginator(Pagination(type="page_number", page_size=10, page_size_param="n"), "http://api")
    first = p.nth(BASE, 0)
    assert first.params == (("q", "x"), ("page", "1"), ("n", "10"))
    assert p.next(BASE, 0, first, _response(), {}, 10) == p.nth(BASE, 1)
    assert p.next(BASE, 0, first, _response(), {}, 9) is None
    p2 = Paginator(Pagination(type="page_number", total_pages_path="meta.pages"), "http://api")
    assert p2.next(BASE, 1, first, _response(), {"meta": {"pages": 2}}, 5) is None
    assert p2.next(BASE, 0, first, _response(), {"meta": {"pages": 2}}, 5) is not None


def test_offset_cursor_link_next_url() -> None:
    off = Paginator(Pagination(type="offset", page_size=3), "http://api")
    assert dict(off.nth(BASE, 2).params) == {"q": "x", "offset": "6", "limit": "3"}
    assert off.next(BASE, 0, BASE, _response(), {}, 2) is None
    cur = Paginator(Pagination(type="cursor", cursor_path="next", cursor_param="c"), "http://api")
    nxt = cur.next(BASE, 0, BASE, _response(), {"next": "abc"}, 1)
    assert nxt is not None and dict(nxt.params)["c"] == "abc"
    assert cur.next(BASE, 0, BASE, _response(), {"next": None}, 1) is None
    link = Paginator(Pagination(type="link_header"), "http://api")
    got = link.next(BASE, 0, BASE, _response("/items?page=2"), None, 1)
    assert got == Request("http://api/items?page=2")
    url = Paginator(Pagination(type="next_url", next_url_path="links.next"), "http://api")
    got = url.next(BASE, 0, BASE, _response(), {"links": {"next": "http://other/x"}}, 1)
    assert got is not None and got.url == "http://other/x"
    capped = Paginator(Pagination(type="cursor", cursor_path="n", max_pages=1), "http://api")
    assert capped.next(BASE, 0, BASE, _response(), {"n": "t"}, 1) is None


def test_pagination_validation() -> None:
    with pytest.raises(ValueError, match="cursor_path"):
        Pagination(type="cursor")


def test_state_round_trip_of_requests() -> None:
    r = BASE.with_params(page="3")
    assert Request.from_state(r.to_state(), BASE) == r


def test_page_typer_types_per_page_and_quarantines_conflicts() -> None:
    typer = PageTyper("s", {"id": pa.int32()})
    batch, q = typer.page([{"id": 1, "a": {"b": [1, 2]}}, {"id": 2, "a": None}], 1)
    assert batch is not None and batch.schema.field("id").type == pa.int32()
    assert pa.types.is_struct(batch.schema.field("a").type) and q is None
    batch, q = typer.page([{"id": 1}, {"id": "x"}], 2)
    assert batch is not None and batch.num_rows == 1
    assert q is not None and q.rows.column("position").to_pylist() == ["s:page 2 item 2"]


def test_rate_limiter_spaces_requests() -> None:
    limiter = RateLimiter(50)
    started = time.monotonic()
    for _ in range(6):
        limiter.acquire()
    assert time.monotonic() - started >= 0.09


def test_secret_query_parameters_are_masked_in_shown_urls() -> None:
    cfg = RestConfig.model_validate(
        {
            "base_url": "http://api",
            "streams": [{"name": "s", "path": "/s"}],
            "auth": {"type": "api_key", "name": "key", "value": "topsecret", "in": "query"},
        }
    )
    client = HttpClient(cfg)
    try:
        shown = client.show("http://api/s", (("page", "2"),))
    finally:
        client.close()
    assert "topsecret" not in shown and "key=%2A%2A%2A" in shown and "page=2" in shown
