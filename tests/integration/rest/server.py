"""A real HTTP API for the REST source tests: every pagination and auth style, 429s, 5xx.

Run on 127.0.0.1 with a free port in a daemon thread (``ThreadingHTTPServer``). ``hits``
counts requests per path so tests can assert retries, token caching and concurrency.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

API_KEY = "k-3f9a-SECRET-key"
BEARER = "b-77-SECRET-bearer"
USER, PASSWORD = "ann", "SECRET-pw-1"
CLIENT_ID, CLIENT_SECRET = "cid", "SECRET-client-9"
REFRESH = "SECRET-refresh-5"

USERS = [{"id": i, "name": f"user {i}", "address": {"city": f"c{i % 3}"}} for i in range(1, 26)]
EVENTS = [
    {"id": i, "updated_at": f"2024-01-{i:02d}T10:00:00Z", "amount": f"{i}.50"} for i in range(1, 21)
]


class State:
    """Mutable server state, reset by the tests."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.tokens: dict[str, float] = {}
        self.token_ttl = 3600.0
        self.issued = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.seen_params: list[dict[str, str]] = []

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]


STATE = State()


def _page(items: list[Any], page: int, size: int) -> list[Any]:
    return items[(page - 1) * size : page * size]


class Handler(BaseHTTPRequestHandler):
    """Routes by path; see the module docstring."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(
        self,
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> None:
        data = raw if raw is not None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode()
        form = {k: v[0] for k, v in parse_qs(raw).items()}
        STATE.hits[url.path] += 1
        if url.path == "/graphql":
            body = json.loads(raw)
            after = int((body.get("variables") or {}).get("after") or 0)
            nodes = USERS[after : after + 10]
            end = after + len(nodes)
            info = {"endCursor": str(end), "hasNextPage": end < len(USERS)}
            data = {"users": {"nodes": nodes, "pageInfo": info}}
            return self._send(200, {"data": data, "query": body.get("query")})
        if url.path != "/oauth/token":
            return self._send(404, {"error": "not found"})
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if self.headers.get("Authorization") != f"Basic {expected}":
            return self._send(401, {"error": "invalid_client"})
        grant = form.get("grant_type")
        if grant == "refresh_token" and form.get("refresh_token") != REFRESH:
            return self._send(400, {"error": "invalid_grant"})
        with STATE.lock:
            STATE.issued += 1
            token = f"tok-{STATE.issued}"
            STATE.tokens[token] = time.monotonic() + STATE.token_ttl
        payload = {"access_token": token, "expires_in": STATE.token_ttl, "token_type": "bearer"}
        if grant == "refresh_token":
            payload["refresh_token"] = REFRESH
        return self._send(200, payload)

    def do_GET(self) -> None:
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        with STATE.lock:
            STATE.hits[url.path] += 1
            STATE.in_flight += 1
            STATE.max_in_flight = max(STATE.max_in_flight, STATE.in_flight)
            STATE.seen_params.append(q)
        try:
            self._route(url.path, q)
        finally:
            with STATE.lock:
                STATE.in_flight -= 1

    def _authorized(self, path: str, q: dict[str, str]) -> bool:
        h = self.headers
        if path == "/secure/apikey-header":
            return h.get("X-API-Key") == API_KEY
        if path == "/secure/apikey-query":
            return q.get("api_key") == API_KEY
        if path == "/secure/bearer":
            return h.get("Authorization") == f"Bearer {BEARER}"
        if path == "/secure/basic":
            expected = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            return h.get("Authorization") == f"Basic {expected}"
        if path == "/secure/oauth":
            token = (h.get("Authorization") or "").removeprefix("Bearer ")
            return STATE.tokens.get(token, 0) > time.monotonic()
        return True

    def _route(self, path: str, q: dict[str, str]) -> None:
        if path.startswith("/secure/"):
            if not self._authorized(path, q):
                return self._send(401, {"error": "unauthorized"})
            return self._send(200, {"data": USERS[:3]})
        page = int(q.get("page", "1"))
        if path == "/users":
            size = int(q.get("per_page", "10"))
            return self._send(200, {"data": _page(USERS, page, size), "total_pages": 3})
        if path.startswith("/users/") and path.endswith("/orders"):
            uid = int(path.split("/")[2])
            orders = [{"order_id": uid * 100 + j, "total": uid + j} for j in range(uid % 3)]
            return self._send(200, orders)
        if path == "/offset":
            off, limit = int(q["offset"]), int(q["limit"])
            return self._send(200, {"items": USERS[off : off + limit], "total": len(USERS)})
        if path == "/cursor":
            start = int(q.get("cursor", "0"))
            nxt = start + 10 if start + 10 < len(USERS) else None
            return self._send(200, {"results": USERS[start : start + 10], "meta": {"next": nxt}})
        if path == "/link":
            headers = {}
            if page < 3:
                headers["Link"] = f'</link?page={page + 1}>; rel="next"'
            return self._send(200, _page(USERS, page, 10), headers)
        if path == "/nexturl":
            nxt = f"/nexturl?page={page + 1}" if page < 3 else None
            return self._send(200, {"records": _page(USERS, page, 10), "next": nxt})
        if path == "/loop":
            return self._send(200, {"data": USERS[:2], "next": "same"})
        if path == "/events":
            since = q.get("since")
            rows = [e for e in EVENTS if since is None or e["updated_at"] >= since]
            size = 5
            return self._send(200, {"data": _page(rows, page, size)})
        if path == "/badjson":
            if page == 2:
                return self._send(200, raw=b'{"data": [{"id": 1}, oops')
            return self._send(200, {"data": _page(USERS, page, 10)})
        if path == "/mixed":
            data = [{"id": 1, "v": 1}, {"id": 2, "v": "two"}, 7, {"id": 4, "v": 4}]
            return self._send(200, {"data": data, "big": 12345678901234567890123})
        if path == "/drift":  # a member whose JSON type changes from one page to the next
            pages = {1: [{"id": 1, "v": 1}], 2: [{"id": 2, "v": "two"}], 3: [{"id": 3, "v": 3}]}
            return self._send(200, {"data": pages.get(page, [])})
        if path == "/exact":
            body = b'[{"id": 1, "n": 123456789012345678901234567890, '
            body += b'"at": "2024-05-01T10:00:00+02:00"}]'
            return self._send(200, raw=body)
        if path == "/ratelimited":
            if STATE.hits[path] == 1:
                return self._send(429, {"error": "slow down"}, {"Retry-After": "1"})
            return self._send(200, {"data": USERS[:2]})
        if path == "/flaky":
            if STATE.hits[path] <= 2:
                return self._send(503, {"error": "try again"})
            return self._send(200, {"data": USERS[:2]})
        if path == "/down":
            return self._send(500, {"error": "down"})
        if path == "/slow":
            time.sleep(float(q.get("delay", "1")))
            return self._send(200, {"data": USERS[:1]})
        if path == "/paged":
            time.sleep(float(q.get("latency", "0.05")))
            pages, size = int(q.get("pages", "20")), int(q.get("size", "100"))
            if page > pages:
                return self._send(200, {"data": []})
            first = (page - 1) * size
            rows = [
                {"id": first + i, "name": f"n{first + i}", "score": (first + i) * 0.5}
                for i in range(size)
            ]
            return self._send(200, {"data": rows})
        return self._send(404, {"error": "not found"})


class Server:
    """Start/stop the API on a free port."""

    def __init__(self) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


if __name__ == "__main__":  # pragma: no cover - manual use and benchmarks
    with Server() as s:
        print(s.url, flush=True)
        threading.Event().wait()
