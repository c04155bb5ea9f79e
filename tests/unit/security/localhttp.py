"""A real HTTP server on 127.0.0.1 for outbound tests: records requests, answers by script."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Seen:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


#: ``(request) -> (status, headers, body)``
Answer = Callable[[Seen], tuple[int, dict[str, str], bytes]]


@dataclass
class LocalServer:
    """The running server: its base URL and what it received."""

    port: int
    seen: list[Seen] = field(default_factory=list)
    answer: Answer = field(default=lambda req: (200, {}, b"ok"))

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def local_server(answer: Answer | None = None) -> Iterator[LocalServer]:
    """Serve on an ephemeral loopback port until the block ends."""
    state = LocalServer(0)
    if answer is not None:
        state.answer = answer

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            seen = Seen(
                self.command,
                self.path,
                {k.lower(): v for k, v in self.headers.items()},
                self.rfile.read(length) if length else b"",
            )
            state.seen.append(seen)
            status, headers, body = state.answer(seen)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _handle

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
