"""Gateway duties as one ASGI middleware: request ids, body size limit, security headers,
metrics and an access log line per request."""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import structlog
from opentelemetry import trace
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aggregator.api.metrics import ApiMetrics
from aggregator.observability.context import bind_request, unbind_request

log = structlog.get_logger("aggregator.api")
_RID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]
# The interactive docs page needs the CDN assets FastAPI links to; everything else is locked.
_CSP_API = b"default-src 'none'; frame-ancestors 'none'"
_CSP_DOCS = (
    b"default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    b"style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: "
    b"https://fastapi.tiangolo.com; connect-src 'self'; frame-ancestors 'none'"
)


class _TooLarge(StarletteHTTPException):
    """Raised from ``receive``; an HTTP exception so body parsers pass it through as 413."""

    def __init__(self) -> None:
        super().__init__(413, "the request body is too big")


class GatewayMiddleware:
    """Wraps the application; see the module docstring."""

    def __init__(
        self, app: ASGIApp, max_body: int, metrics: ApiMetrics, templates: list[str]
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.metrics = metrics
        # Route templates label metrics and logs (bounded cardinality: ids never appear).
        self.templates = [
            (re.compile("^" + re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(t)) + "$"), t)
            for t in sorted(templates, key=lambda t: (t.count("{"), -len(t)))
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        incoming = headers.get("x-request-id", "")
        rid = incoming if _RID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        bound = bind_request(scope["state"])  # request_id and user on every log line
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute("aggregator.request_id", rid)
        started = time.perf_counter()
        status = {"code": 500, "sent": False}

        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body:
            await self._reject(send, rid, 413, "request_too_large", "the request body is too big")
            self._observe(scope, 413, started)
            unbind_request(bound)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _TooLarge
            return message

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["sent"] = message["status"], True
                extra = [(b"x-request-id", rid.encode()), *SECURITY_HEADERS]
                docs = scope["path"].endswith(("/docs", "/redoc"))
                extra.append((b"content-security-policy", _CSP_DOCS if docs else _CSP_API))
                if scope["path"].startswith("/api/"):
                    extra.append((b"cache-control", b"no-store"))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except _TooLarge:
            if not status["sent"]:
                await self._reject(
                    send, rid, 413, "request_too_large", "the request body is too big"
                )
            status["code"] = 413
        finally:
            self._observe(scope, int(status["code"]), started)
            unbind_request(bound)

    def _observe(self, scope: Scope, status: int, started: float) -> None:
        elapsed = time.perf_counter() - started
        template = self.template(scope["path"])
        self.metrics.requests.labels(scope["method"], template, str(status)).inc()
        self.metrics.latency.labels(scope["method"], template).observe(elapsed)
        log.info(
            "http.request",
            request_id=scope["state"]["request_id"],
            method=scope["method"],
            route=template,
            status=status,
            ms=round(elapsed * 1000, 1),
        )

    def template(self, path: str) -> str:
        """The route template matching ``path`` (``(unmatched)`` for unknown paths)."""
        for pattern, template in self.templates:
            if pattern.match(path):
                return template
        return "(unmatched)"

    @staticmethod
    async def _reject(send: Send, rid: str, status: int, code: str, message: str) -> None:
        body: dict[str, Any] = {"error": {"code": code, "message": message, "request_id": rid}}
        payload = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"x-request-id", rid.encode()),
                    *SECURITY_HEADERS,
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
