"""Liveness, readiness and Prometheus metrics (outside ``/api/v1``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from aggregator.api.deps import PlatformDep, Public, requires
from aggregator.api.schemas import Health
from aggregator.security.identity import Principal
from aggregator.security.ratelimit import RedisRateLimiter
from aggregator.security.rbac import Permission as P

router = APIRouter(tags=["health"])


@router.get("/healthz", dependencies=[Public])
def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get("/readyz", dependencies=[Public], responses={503: {"model": Health}})
def readyz(platform: PlatformDep) -> Response:
    """The metadata database (and Redis, when configured) answer."""
    checks: dict[str, str] = {}
    try:
        with platform.store.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["metadata"] = "ok"
    except Exception:
        checks["metadata"] = "unavailable"
    if isinstance(platform.limiter, RedisRateLimiter):
        try:
            checks["redis"] = "ok" if platform.limiter.ping() else "unavailable"
        except Exception:
            checks["redis"] = "unavailable"
    ok = all(v == "ok" for v in checks.values())
    body = Health(status="ok" if ok else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@router.get("/metrics", response_class=Response)
def metrics(request: Request, _: Annotated[Principal, requires(P.METRICS_READ)]) -> Response:
    """Prometheus exposition (needs ``metrics:read``, e.g. an API key scoped to it)."""
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
