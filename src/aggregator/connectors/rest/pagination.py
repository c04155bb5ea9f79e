"""Paginators: from one page (request, response, body, record count) to the next request.

``page_number`` and ``offset`` are *predictable*: page ``k`` can be requested before page
``k-1`` arrives, so the source fetches them ``concurrency`` at a time. The others follow a
token or URL found in the previous response. A request seen twice in one pass is a loop and
stops the stream with a warning.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin

import jmespath

from aggregator.connectors.rest.config import Pagination, PaginationType
from aggregator.connectors.rest.http import Request, Response

DEFAULT_LIMIT = 100


def _search(path: str | None, data: Any) -> Any:
    if path is None or not isinstance(data, dict | list):
        return None
    return jmespath.search(path, data)


def _int(value: Any) -> int | None:
    try:
        return None if value is None or isinstance(value, bool) else int(value)
    except (TypeError, ValueError):
        return None


class Paginator:
    """Computes the requests of a stream's pages (see the module docstring)."""

    def __init__(self, config: Pagination, base_url: str) -> None:
        self.config = config
        self.base_url = base_url

    @property
    def predictable(self) -> bool:
        """Whether page ``k`` can be requested without page ``k-1``."""
        return self.config.type in (PaginationType.PAGE_NUMBER, PaginationType.OFFSET)

    @property
    def limit(self) -> int:
        """Records per page asked for (offset pagination)."""
        return self.config.page_size or DEFAULT_LIMIT

    def nth(self, base: Request, k: int) -> Request:
        """The request of page ``k`` (0-based); the first page for non-predictable styles."""
        c = self.config
        if c.type is PaginationType.PAGE_NUMBER:
            params = {c.page_param: str(c.start_page + k)}
            if c.page_size_param and c.page_size:
                params[c.page_size_param] = str(c.page_size)
            return base.with_params(**params)
        if c.type is PaginationType.OFFSET:
            return base.with_params(
                **{c.offset_param: str(k * self.limit), c.limit_param: str(self.limit)}
            )
        return base

    def next(
        self, base: Request, k: int, request: Request, response: Response, data: Any, count: int
    ) -> Request | None:
        """The request after page ``k`` (0-based), or ``None`` at the end."""
        c = self.config
        if c.max_pages is not None and k + 1 >= c.max_pages:
            return None
        if c.type is PaginationType.PAGE_NUMBER:
            return self._next_page(base, k, data, count)
        if c.type is PaginationType.OFFSET:
            total = _int(_search(c.total_path, data))
            if (
                count == 0
                or count < self.limit
                or (total is not None and (k + 1) * self.limit >= total)
            ):
                return None
            return self.nth(base, k + 1)
        if c.type is PaginationType.CURSOR:
            token = _search(c.cursor_path, data)
            if token in (None, "", False):
                return None
            if c.cursor_in == "body":
                return request.with_body(c.cursor_param, token)
            return request.with_params(**{c.cursor_param: str(token)})
        if c.type is PaginationType.LINK_HEADER:
            link = response.next_link
            return (
                Request(urljoin(request.url, link), (), base.method, base.json_body)
                if link
                else None
            )
        if c.type is PaginationType.NEXT_URL:
            url = _search(c.next_url_path, data)
            if not url:
                return None
            return Request(urljoin(request.url, str(url)), (), base.method, base.json_body)
        return None

    def total(self, data: Any) -> int | None:
        """The record count a page announces (``total_path``), when configured and given."""
        return _int(_search(self.config.total_path, data))

    def _next_page(self, base: Request, k: int, data: Any, count: int) -> Request | None:
        c = self.config
        if count == 0 or (c.page_size is not None and count < c.page_size):
            return None
        pages = _int(_search(c.total_pages_path, data))
        if pages is not None and k + 1 >= pages:
            return None
        total = _int(_search(c.total_path, data))
        if total is not None and c.page_size and (k + 1) * c.page_size >= total:
            return None
        return self.nth(base, k + 1)
