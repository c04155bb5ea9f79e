"""A paginated JSON API with a fixed latency per page, for the ``rest_paged`` benchmark.

    python rest_server.py --pages 2000 --latency 0.05

Prints its base URL on the first line of stdout, then serves until killed.
``GET /items?page=N`` (1-based) answers ``{"data": [100 records]}`` after ``latency``
seconds, and ``{"data": []}`` past the last page. HTTP/1.1 keep-alive, one thread per
connection (stdlib ``ThreadingHTTPServer``), so concurrent requests overlap their latency.
Page bodies are encoded before the URL is printed, so that serving one costs the server
little CPU (on a small machine it shares the cores with the client measured).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

PAGE_SIZE = 100


def _body(page: int, pages: int) -> bytes:
    rows = []
    if 1 <= page <= pages:
        first = (page - 1) * PAGE_SIZE
        rows = [
            {"id": first + i, "name": f"item {first + i}", "price": (first + i) * 0.25}
            for i in range(PAGE_SIZE)
        ]
    return json.dumps({"data": rows}).encode()


def make_handler(pages: int, latency: float) -> type[BaseHTTPRequestHandler]:
    bodies = [_body(page, pages) for page in range(pages + 1)]
    empty = _body(0, pages)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            url = urlparse(self.path)
            if url.path != "/items":
                self.send_error(404)
                return
            page = int(parse_qs(url.query).get("page", ["1"])[0])
            time.sleep(latency)
            data = bodies[page] if 1 <= page <= pages else empty
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--pages", type=int, required=True)
    p.add_argument("--latency", type=float, default=0.05)
    a = p.parse_args()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(a.pages, a.latency))
    httpd.daemon_threads = True
    print(f"http://127.0.0.1:{httpd.server_address[1]}", flush=True)
    httpd.serve_forever()  # until terminated
    return 0


if __name__ == "__main__":
    sys.exit(main())
