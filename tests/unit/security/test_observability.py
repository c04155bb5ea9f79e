"""JSON logs carry request id and user; OpenTelemetry spans are produced per request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import pytest
import structlog
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from aggregator.api.deps import requires
from aggregator.metadata.store import MetadataStore
from aggregator.observability.logging import configure_logging
from aggregator.observability.tracing import setup_tracing
from aggregator.security.identity import Principal
from aggregator.security.rbac import Permission as P
from tests.unit.api.helpers import Api, make_api

pytestmark = pytest.mark.unit
handler_log = structlog.get_logger("tests.handler")


def _lines(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def test_every_log_line_of_a_request_has_request_id_and_user(
    api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    @api.app.get("/api/v1/test-log")
    def logs_something(who: Annotated[Principal, requires(P.CATALOG_READ)]) -> dict[str, str]:
        handler_log.info("inside.handler", detail="from a worker thread")
        return {"ok": "yes"}

    configure_logging("info", "json")
    try:
        capsys.readouterr()
        headers = {**api.headers("operator"), "X-Request-ID": "req-observability-1"}
        assert api.client.get("/api/v1/test-log", headers=headers).status_code == 200
        assert api.client.get("/api/v1/connections").status_code == 401
        lines = _lines(capsys.readouterr().err)
    finally:
        configure_logging()
    inside = [x for x in lines if x["event"] == "inside.handler"]
    assert len(inside) == 1
    assert inside[0]["request_id"] == "req-observability-1"
    assert inside[0]["user"] == "user:operator@example.com"
    assert inside[0]["level"] == "info" and "timestamp" in inside[0]
    access = [x for x in lines if x["event"] == "http.request"]
    assert [(x["route"], x["status"]) for x in access] == [
        ("(unmatched)", 200),
        ("/api/v1/connections", 401),
    ]
    assert access[0]["request_id"] == "req-observability-1"
    assert access[0]["user"] == "user:operator@example.com"
    assert len(access[1]["request_id"]) == 32 and "user" not in access[1]


def test_spans_are_produced_with_request_id(tmp_path: Path, store: MetadataStore) -> None:
    api = make_api(tmp_path / "home", store)  # not started: instrument as create_app does
    exporter = InMemorySpanExporter()
    provider = setup_tracing(api.app, api.app.state.platform.settings, exporter)
    assert provider is not None
    with api.client:
        headers = {**api.headers("viewer"), "X-Request-ID": "req-trace-0001"}
        assert api.client.get("/api/v1/connections", headers=headers).status_code == 200
        assert api.client.get("/healthz").status_code == 200  # excluded
    spans = exporter.get_finished_spans()
    assert len(spans) == 1
    span = spans[0]
    assert span.name == "GET /api/v1/connections"
    assert span.attributes is not None
    assert span.attributes["aggregator.request_id"] == "req-trace-0001"
    assert span.attributes["http.route"] == "/api/v1/connections"
    assert (
        span.attributes.get("http.status_code", span.attributes.get("http.response.status_code"))
        == 200
    )
    assert span.resource.attributes["service.name"] == "aggregator"
    provider.shutdown()


def test_tracing_is_off_by_default(api: Api) -> None:
    assert getattr(api.app.state, "tracer_provider", None) is None
