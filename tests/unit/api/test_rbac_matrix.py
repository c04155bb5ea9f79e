"""Every route declares one permission; every route x every role is allowed or denied as
the matrix in ``aggregator.security.rbac`` says."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from aggregator.api.deps import Authorize, PublicRoute
from aggregator.api.routes.ingest import SignedRoute
from aggregator.security.rbac import Role, permissions_of
from tests.unit.api.helpers import Api

pytestmark = pytest.mark.unit
FILL = {"version": "1", "kind": "source", "name": "test_sequence"}
DUMMY = "00000000-0000-0000-0000-00000000dead"


def _markers(dependant: Dependant) -> list[Any]:
    found = []
    for dep in dependant.dependencies:
        if isinstance(dep.call, Authorize | PublicRoute):
            found.append(dep.call)
        found += _markers(dep)
    return found


def _routes(api: Api) -> list[tuple[Any, Any]]:
    out = []
    for route in iter_route_contexts(api.app.routes):
        if not isinstance(route.original_route, APIRoute):
            continue
        markers = _markers(route.dependant)
        assert len({id(m) for m in markers}) == 1, f"{route.path} declares {markers}"
        out.append((route, markers[0]))
    return out


def _path(template: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: FILL.get(m.group(1), DUMMY), template)


def test_every_route_declares_exactly_one_permission(api: Api) -> None:
    routes = _routes(api)
    assert len(routes) >= 30
    # signed routes authenticate the request body's HMAC signature, never a user
    signed = sorted(r.path for r, m in routes if isinstance(m, SignedRoute))
    assert signed == ["/api/v1/ingest/{ingest_id}"]
    public = sorted(
        r.path for r, m in routes if isinstance(m, PublicRoute) and not isinstance(m, SignedRoute)
    )
    assert public == [
        "/api/v1/auth/login",
        "/api/v1/auth/mfa/verify",
        "/api/v1/auth/oidc/callback",
        "/api/v1/auth/oidc/login",
        "/api/v1/auth/refresh",
        "/healthz",
        "/readyz",
    ]


def test_route_by_role_matrix(api: Api) -> None:
    checked = 0
    for route, marker in _routes(api):
        for method in sorted(route.methods - {"HEAD"}):
            path = _path(route.path)
            body: dict[str, Any] | None = {} if method in {"POST", "PUT", "PATCH"} else None
            anonymous = api.client.request(method, path, json=body)
            if isinstance(marker, SignedRoute):
                # unknown stream: 404 whoever asks; a user's credentials grant nothing here
                # (signature checks: tests/integration/webhook/test_webhook_api.py)
                assert anonymous.status_code == 404, (method, path, anonymous.status_code)
                for role in Role:
                    response = api.client.request(
                        method, path, json=body, headers=api.headers(role)
                    )
                    assert response.status_code == 404, (method, path, role)
                continue
            if isinstance(marker, PublicRoute):
                assert anonymous.status_code not in (401, 403) or "auth" in path, path
                continue
            assert anonymous.status_code == 401, (method, path, anonymous.status_code)
            for role in Role:
                response = api.client.request(method, path, json=body, headers=api.headers(role))
                allowed = marker.permission is None or marker.permission in permissions_of(role)
                if allowed:
                    assert response.status_code not in (401, 403), (method, path, role)
                else:
                    assert response.status_code == 403, (method, path, role)
                    assert response.json()["error"]["code"] == "forbidden"
                checked += 1
    assert checked >= 120
