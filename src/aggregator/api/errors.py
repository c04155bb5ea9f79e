"""One error body for every failure: ``{"error": {"code", "message", "request_id"}}``.

Clients never see stack traces or input values (a rejected secret is not echoed back);
unexpected exceptions are logged with the request id and answered with a generic 500.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from aggregator.core.errors import AggregatorError, SpecError
from aggregator.security.crypto import DecryptionError
from aggregator.security.identity import IdentityError

log = structlog.get_logger(__name__)

# Error codes to HTTP statuses (not secrets).
_IDENTITY_STATUS = {  # nosec B105
    "conflict": 409,
    "forbidden": 403,
    "invalid_token": 401,
    "token_reuse": 401,
    "not_found": 404,
    "invalid_credentials": 403,
}


class ApiError(Exception):
    """An error with an HTTP status, a stable code and a message for the client."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def error_body(request: Request, code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The JSON body of an error response."""
    rid = getattr(request.state, "request_id", None)
    return {"error": {"code": code, "message": message, "request_id": rid, **extra}}


def _respond(
    request: Request, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(request, code, message), status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    """Register the exception handlers."""

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        return _respond(request, exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(IdentityError)
    async def _identity(request: Request, exc: IdentityError) -> JSONResponse:
        return _respond(request, _IDENTITY_STATUS.get(exc.code, 422), exc.code, exc.message)

    @app.exception_handler(SpecError)
    async def _spec(request: Request, exc: SpecError) -> JSONResponse:
        body = error_body(request, "invalid_spec", exc.message, problems=exc.problems)
        return JSONResponse(body, status_code=422)

    @app.exception_handler(AggregatorError)
    async def _aggregator(request: Request, exc: AggregatorError) -> JSONResponse:
        return _respond(request, 422, "invalid_config", exc.message)

    @app.exception_handler(DecryptionError)
    async def _decrypt(request: Request, exc: DecryptionError) -> JSONResponse:
        log.error("secrets.unreadable", request_id=getattr(request.state, "request_id", None),
                  reason=str(exc))  # fmt: skip
        message = "stored secrets cannot be decrypted with the configured keys"
        return _respond(request, 500, "secrets_unreadable", message)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        body = error_body(request, "invalid_request", "the request is invalid", problems=problems)
        return JSONResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(
            exc.status_code, "http_error"
        )
        headers = dict(exc.headers) if exc.headers else None
        return _respond(request, exc.status_code, code, str(exc.detail), headers)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.error(
            "api.unhandled",
            request_id=getattr(request.state, "request_id", None),
            error_type=type(exc).__name__,
            exc_info=exc,
        )
        return _respond(request, 500, "internal_error", "internal error; quote the request id")
