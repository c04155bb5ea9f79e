"""The demo's product catalog API: a small paginated JSON API (stdlib only).

    python api_server.py --data products.json [--api-key KEY]

Prints its base URL on the first line of stdout, then serves until terminated.
``GET /v1/products?page=N&per_page=M&updated_since=ISO`` answers
``{"data": [...], "meta": {"page", "per_page", "total_pages"}}`` with the products of
``--data`` (re-read on every request, so the demo can deliver a new day by replacing the
file) updated at or after ``updated_since``, ordered by ``product_id``. Requests without the
``X-API-Key`` header get 401.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def make_handler(data: Path, api_key: str) -> type[BaseHTTPRequestHandler]:
    """A request handler serving ``data``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: Any) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            url = urlparse(self.path)
            if url.path != "/v1/products":
                self._send(404, {"error": "not found"})
                return
            if self.headers.get("X-API-Key") != api_key:
                self._send(401, {"error": "missing or wrong X-API-Key"})
                return
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            try:
                page = max(1, int(query.get("page", "1")))
                size = min(100, max(1, int(query.get("per_page", "10"))))
                since = _instant(query["updated_since"]) if "updated_since" in query else None
            except ValueError as exc:
                self._send(400, {"error": f"bad parameter: {exc}"})
                return
            products = json.loads(data.read_text()) if data.exists() else []
            if since is not None:
                products = [p for p in products if _instant(p["updated_at"]) >= since]
            products.sort(key=lambda p: p["product_id"])
            total = max(1, -(-len(products) // size))
            rows = products[(page - 1) * size : page * size]
            self._send(
                200, {"data": rows, "meta": {"page": page, "per_page": size, "total_pages": total}}
            )

    return Handler


def main() -> int:
    """Serve until terminated."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", type=Path, required=True, help="JSON array of products")
    p.add_argument("--api-key", default="demo-key-not-a-secret")
    a = p.parse_args()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(a.data, a.api_key))
    httpd.daemon_threads = True
    print(f"http://127.0.0.1:{httpd.server_address[1]}", flush=True)
    httpd.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
