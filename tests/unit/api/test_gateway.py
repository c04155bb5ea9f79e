"""Gateway duties: error bodies, request ids, security headers, body limit, CORS, metrics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aggregator.metadata.store import MetadataStore
from tests.unit.api.helpers import Api, make_api

pytestmark = pytest.mark.unit


def test_security_headers_and_request_id(api: Api) -> None:
    r = api.client.get("/healthz", headers={"X-Request-ID": "client-chosen-id-1"})
    assert r.headers["x-request-id"] == "client-chosen-id-1"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert "max-age=" in r.headers["strict-transport-security"]
    assert "default-src 'none'" in r.headers["content-security-policy"]
    weird = api.client.get("/healthz", headers={"X-Request-ID": "bad id\twith junk"})
    assert len(weird.headers["x-request-id"]) == 32


def test_consistent_error_bodies(api: Api) -> None:
    r = api.client.get("/api/v1/nothing-here")
    assert r.status_code == 404
    error = r.json()["error"]
    assert error["code"] == "not_found" and error["request_id"] == r.headers["x-request-id"]
    bad = api.client.post(
        "/api/v1/users", json={"email": 3, "password": "p4ssw0rd-unique-xx"},
        headers=api.headers("admin"),
    )  # fmt: skip
    assert bad.status_code == 422
    body = bad.json()["error"]
    assert body["code"] == "invalid_request" and "p4ssw0rd" not in bad.text
    assert {tuple(p["loc"]) for p in body["problems"]} >= {("body", "email"), ("body", "role")}


def test_unexpected_errors_hide_details(api: Api) -> None:
    @api.app.get("/boom")
    def boom() -> None:
        raise RuntimeError("internal detail: dsn=postgres://u:hunter2@db")

    client = type(api.client)(api.app, raise_server_exceptions=False)
    r = client.get("/boom")
    assert r.status_code == 500
    assert "hunter2" not in r.text and "Traceback" not in r.text
    assert r.json()["error"]["code"] == "internal_error"


def test_body_size_limit(api: Api) -> None:
    huge = "x" * 1_100_000
    r = api.client.post("/api/v1/auth/login", content=huge, headers={"content-type": "text/plain"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"

    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b"x" * 100_000

    streamed = api.client.post(
        "/api/v1/auth/login", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413


def test_cors_only_for_configured_origins(tmp_path: Path, store: MetadataStore) -> None:
    api = make_api(tmp_path, store, cors_origins=["https://ui.example.com"])
    with api.client:
        pre = {"Access-Control-Request-Method": "POST"}
        ok = api.client.options(
            "/api/v1/pipelines", headers={"Origin": "https://ui.example.com", **pre}
        )
        assert ok.headers["access-control-allow-origin"] == "https://ui.example.com"
        assert ok.headers["access-control-allow-credentials"] == "true"
        evil = api.client.options("/api/v1/pipelines", headers={"Origin": "https://evil", **pre})
        assert "access-control-allow-origin" not in evil.headers


def test_metrics_need_permission_and_count_requests(api: Api) -> None:
    assert api.client.get("/metrics").status_code == 401
    assert api.client.get("/metrics", headers=api.headers("viewer")).status_code == 403
    api.client.get("/api/v1/runs/some-run-id", headers=api.headers("viewer"))
    r = api.client.get("/metrics", headers=api.headers("operator"))
    assert r.status_code == 200 and "aggregator_http_requests_total" in r.text
    assert 'route="/api/v1/runs/{run_id}",status="404"' in r.text
    assert "some-run-id" not in r.text


def test_rate_limit_per_principal(tmp_path: Path, store: MetadataStore) -> None:
    api = make_api(tmp_path, store, rate_limit_per_minute=5)
    with api.client:
        headers = api.headers("viewer")
        codes = [api.client.get("/api/v1/pipelines", headers=headers).status_code for _ in range(6)]
        assert codes[-1] == 429 and codes[0] == 200


def test_openapi_published(api: Api) -> None:
    spec = api.client.get("/api/v1/openapi.json").json()
    assert spec["info"]["title"] == "Aggregator API"
    assert "/api/v1/pipelines/{pipeline_id}/runs" in spec["paths"]
    assert api.client.get("/api/v1/docs").status_code == 200


def test_oversized_integer_parameters_are_422_not_500(api: Api) -> None:
    for url in (
        "/api/v1/audit?after_seq=99999999999999999999",
        "/api/v1/pipelines?offset=99999999999999999999",
    ):
        response = api.client.get(url, headers=api.headers("admin"))
        assert response.status_code == 422, (url, response.text)
        assert response.json()["error"]["code"] == "invalid_request"
