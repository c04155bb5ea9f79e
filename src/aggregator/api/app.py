"""The FastAPI application factory (``aggregator api`` serves it with uvicorn)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.routing import iter_route_contexts

from aggregator import __version__
from aggregator.api import errors
from aggregator.api.metrics import ApiMetrics
from aggregator.api.middleware import GatewayMiddleware
from aggregator.api.platform import Platform
from aggregator.api.routes import (
    alerts,
    apikeys,
    audit,
    auth,
    connections,
    connectors,
    health,
    ingest,
    lineage,
    mfa,
    oidc,
    pipelines,
    preview,
    quality,
    runs,
    schemas,
    sessions,
    users,
    webhooks,
)
from aggregator.api.services.webhooks import WebhookDispatcher
from aggregator.metadata.store import MetadataStore
from aggregator.observability.tracing import setup_tracing
from aggregator.security import outbound
from aggregator.settings import Settings, load_settings

API_PREFIX = "/api/v1"


def create_app(settings: Settings | None = None, store: MetadataStore | None = None) -> FastAPI:
    """Build the application; nothing connects before this is called."""
    settings = settings or load_settings()
    platform = Platform.build(settings, store)
    metrics = ApiMetrics()
    outbound.configure(settings)  # SSRF guard of every outbound client (docs/security.md)
    platform.webhooks = WebhookDispatcher(platform.store, platform.box, settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        platform.webhooks.start()  # pending deliveries now, then a sweep every minute
        yield
        platform.close()
        platform.webhooks.close()
        provider = getattr(app.state, "tracer_provider", None)
        if provider is not None:
            provider.shutdown()  # flush the last spans

    app = FastAPI(
        title="Aggregator API",
        version=__version__,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=f"{API_PREFIX}/docs/oauth2-redirect",
        lifespan=lifespan,
    )
    app.state.platform = platform
    app.state.metrics = metrics
    errors.install(app)

    api = APIRouter(prefix=API_PREFIX)
    for module in (
        auth,
        mfa,
        oidc,
        connectors,
        connections,
        pipelines,
        runs,
        users,
        apikeys,
        audit,
        ingest,
        webhooks,
        alerts,
        preview,
        schemas,
        lineage,
        quality,
        sessions,
    ):
        api.include_router(module.router)
    app.include_router(api)
    app.include_router(health.router)

    app.add_middleware(GZipMiddleware, minimum_size=1024)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-CSRF-Token", "X-API-Key"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    templates = sorted({rc.path_format for rc in iter_route_contexts(app.routes) if rc.path_format})
    app.add_middleware(
        GatewayMiddleware, max_body=settings.max_body_bytes, metrics=metrics, templates=templates
    )
    setup_tracing(app, settings)  # outermost; off unless AGGREGATOR_OTEL_EXPORTER is set
    return app
