"""OpenTelemetry tracing of the API (FastAPI instrumentation); the exporter is optional.

``AGGREGATOR_OTEL_EXPORTER``: ``none`` (default: no tracing), ``console`` (spans as JSON on
stdout) or ``otlp`` (OTLP/HTTP to ``OTEL_EXPORTER_OTLP_ENDPOINT``; needs the
``opentelemetry-exporter-otlp-proto-http`` package, the ``otlp`` extra). The instrumentation
is the outermost middleware, so a span covers the whole request; the gateway middleware
tags it with ``aggregator.request_id``, and log lines carry ``trace_id``/``span_id``.
"""

from __future__ import annotations

from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)

from aggregator import __version__
from aggregator.core.errors import ConfigError
from aggregator.settings import Settings

#: Not traced: probes, metrics scrapes, and the OIDC callback (its query holds the code).
EXCLUDED_URLS = "/healthz,/readyz,/metrics,/api/v1/auth/oidc/callback"


def _exporter(kind: str) -> SpanExporter:
    if kind == "console":
        return ConsoleSpanExporter()
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]
            OTLPSpanExporter,
        )
    except ImportError:
        raise ConfigError(
            "AGGREGATOR_OTEL_EXPORTER=otlp needs the OTLP exporter: "
            "pip install 'aggregator[otlp]' (opentelemetry-exporter-otlp-proto-http)"
        ) from None
    exporter: SpanExporter = OTLPSpanExporter()
    return exporter


def setup_tracing(
    app: FastAPI, settings: Settings, exporter: SpanExporter | None = None
) -> TracerProvider | None:
    """Instrument ``app``; returns the provider (None when tracing is off).

    ``exporter`` overrides the setting (tests pass an in-memory exporter; it is flushed
    synchronously, the configured ones in batches).
    """
    if exporter is None and settings.otel_exporter == "none":
        return None
    resource = Resource.create(
        {"service.name": settings.otel_service_name, "service.version": __version__}
    )
    provider = TracerProvider(resource=resource)
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        provider.add_span_processor(BatchSpanProcessor(_exporter(settings.otel_exporter)))
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        excluded_urls=EXCLUDED_URLS,
        exclude_spans=["receive", "send"],
    )
    app.state.tracer_provider = provider
    return provider
