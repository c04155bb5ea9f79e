"""Login, refresh rotation and reuse, logout, cookies + CSRF, JWT tampering, API keys."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from aggregator.security import audit
from tests.unit.api.helpers import PASSWORD, Api

pytestmark = pytest.mark.unit
ME = "/api/v1/auth/me"


def _events(api: Api, action: str) -> list[tuple[str, str]]:
    r = api.client.get(f"/api/v1/audit?action={action}", headers=api.headers("admin"))
    return [(e["outcome"], e["actor"]) for e in r.json()]


def test_login_returns_tokens_and_hardened_cookies(api: Api) -> None:
    r = api.login("Editor@example.com")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 15 * 60
    cookies = r.headers.get_list("set-cookie")
    access = next(c for c in cookies if c.startswith("agg_access="))
    refresh = next(c for c in cookies if c.startswith("agg_refresh="))
    csrf = next(c for c in cookies if c.startswith("agg_csrf="))
    for cookie in (access, refresh):
        assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=strict" in cookie
    assert "HttpOnly" not in csrf and "Path=/api/v1/auth" in refresh
    me = api.client.get(ME, headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json()["role"] == "editor" and "pipelines:write" in me.json()["permissions"]
    assert ("success", "user:editor@example.com") in _events(api, "auth.login")


def test_wrong_password_is_401_and_audited(api: Api) -> None:
    r = api.login("viewer@example.com", "wrong-password-123")
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_credentials"
    unknown = api.login("nobody@example.com", "wrong-password-123")
    assert unknown.json() == {**unknown.json(), "error": {**r.json()["error"],
                              "request_id": unknown.json()["error"]["request_id"]}}  # fmt: skip
    assert ("failure", "anonymous") in _events(api, "auth.login")


def test_brute_force_is_limited_and_audited(api: Api) -> None:
    codes = [
        api.login("operator@example.com", f"guess-number-{i:04d}").status_code for i in range(7)
    ]
    assert codes[:5] == [401] * 5 and codes[5:] == [429, 429]
    blocked = api.login("operator@example.com")  # even the right password, while blocked
    assert blocked.status_code == 429 and blocked.headers["retry-after"]
    outcomes = [o for o, _ in _events(api, "auth.login")]
    assert outcomes.count("failure") == 5 and outcomes.count("blocked") == 3


def test_refresh_rotates_and_reuse_revokes_the_session(api: Api) -> None:
    first = api.login("viewer@example.com").json()
    second = api.client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    new = second.json()
    assert new["refresh_token"] != first["refresh_token"]
    reuse = api.client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reuse.status_code == 401 and reuse.json()["error"]["code"] == "token_reuse"
    # the whole session is gone: the newest tokens stop working too
    again = api.client.post("/api/v1/auth/refresh", json={"refresh_token": new["refresh_token"]})
    assert again.status_code == 401
    me = api.client.get(ME, headers={"Authorization": f"Bearer {new['access_token']}"})
    assert me.status_code == 401
    assert _events(api, "auth.refresh_reuse")


def test_logout_ends_the_session(api: Api) -> None:
    tokens = api.login("viewer@example.com").json()
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert api.client.post("/api/v1/auth/logout", headers=auth).status_code == 204
    assert api.client.get(ME, headers=auth).status_code == 401
    r = api.client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 401


def test_cookie_auth_needs_csrf_for_unsafe_methods(api: Api) -> None:
    tokens = api.login("editor@example.com").json()  # the client keeps the cookies
    assert api.client.get(ME).status_code == 200
    create = {"name": "c1", "connector": "test_sequence", "kind": "source", "config": {}}
    missing = api.client.post("/api/v1/connections", json=create)
    assert missing.status_code == 403 and missing.json()["error"]["code"] == "csrf_failed"
    wrong = api.client.post("/api/v1/connections", json=create, headers={"X-CSRF-Token": "x"})
    assert wrong.status_code == 403
    ok = api.client.post(
        "/api/v1/connections", json=create, headers={"X-CSRF-Token": tokens["csrf_token"]}
    )
    assert ok.status_code == 201
    # refresh through the cookie needs CSRF too
    assert api.client.post("/api/v1/auth/refresh", json={}).status_code == 403
    r = api.client.post(
        "/api/v1/auth/refresh", json={}, headers={"X-CSRF-Token": tokens["csrf_token"]}
    )
    assert r.status_code == 200


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_tampered_jwts_are_rejected(api: Api) -> None:
    good = api.login("viewer@example.com").json()["access_token"]
    header, payload, sig = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    admin = api.users["admin"].id
    forged = [
        f"{header}.{_b64({**claims, 'sub': admin})}.{sig}",
        f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64({**claims, 'sub': admin})}.",
        f"{header}.{_b64({**claims, 'exp': 1})}.{sig}",
    ]
    api.client.cookies.clear()
    for token in forged:
        r = api.client.get(ME, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, token


def test_api_keys_are_scoped_expiring_and_revocable(api: Api) -> None:
    editor = api.headers("editor")
    r = api.client.post(
        "/api/v1/api-keys", json={"name": "ci", "scopes": ["pipelines:read"]}, headers=editor
    )
    assert r.status_code == 201, r.text
    key, key_id = r.json()["key"], r.json()["id"]
    listed = api.client.get("/api/v1/api-keys", headers=editor).json()
    assert [k["id"] for k in listed] == [key_id] and "key" not in listed[0]
    assert key not in json.dumps(listed)
    as_key = {"X-API-Key": key}
    assert api.client.get("/api/v1/pipelines", headers=as_key).status_code == 200
    assert api.client.get("/api/v1/connections", headers=as_key).status_code == 403
    bearer = {"Authorization": f"Bearer {key}"}
    assert api.client.get("/api/v1/pipelines", headers=bearer).status_code == 200
    assert api.client.post("/api/v1/api-keys", json={"name": "x"}, headers=as_key).status_code in (
        403,
    )
    assert api.client.delete(f"/api/v1/api-keys/{key_id}", headers=editor).status_code == 204
    assert api.client.get("/api/v1/pipelines", headers=as_key).status_code == 401


def test_api_key_scopes_cannot_exceed_role_and_expire(api: Api) -> None:
    viewer = api.headers("viewer")
    wide = {"name": "x", "scopes": ["pipelines:write"]}
    assert api.client.post("/api/v1/api-keys", json=wide, headers=viewer).status_code == 403
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    r = api.client.post("/api/v1/api-keys", json={"name": "t", "expires_at": soon}, headers=viewer)
    key = r.json()["key"]
    with api.store.session() as s:
        from aggregator.metadata.control_models import ApiKey

        row = s.get(ApiKey, r.json()["id"])
        assert row is not None
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        s.commit()
    assert api.client.get("/api/v1/pipelines", headers={"X-API-Key": key}).status_code == 401
    forged = key[:-4] + "AAAA"
    assert api.client.get("/api/v1/pipelines", headers={"X-API-Key": forged}).status_code == 401


def test_users_admin_flow_and_password_policy(api: Api) -> None:
    admin = api.headers("admin")
    weak = {"email": "new@example.com", "password": "short", "role": "viewer"}
    r = api.client.post("/api/v1/users", json=weak, headers=admin)
    assert r.status_code == 422 and "at least" in r.json()["error"]["message"]
    ok = {**weak, "password": PASSWORD}
    created = api.client.post("/api/v1/users", json=ok, headers=admin)
    assert created.status_code == 201 and "password" not in json.dumps(created.json())
    assert api.client.post("/api/v1/users", json=ok, headers=admin).status_code == 409
    uid = created.json()["id"]
    login = api.login("new@example.com").json()
    user_auth = {"Authorization": f"Bearer {login['access_token']}"}
    assert api.client.delete(f"/api/v1/users/{uid}", headers=admin).status_code == 204
    assert api.client.get(ME, headers=user_auth).status_code == 401
    admin_id = api.users["admin"].id
    last = api.client.patch(f"/api/v1/users/{admin_id}", json={"role": "viewer"}, headers=admin)
    assert last.status_code == 409
    roles = api.client.get("/api/v1/roles", headers=api.headers("viewer")).json()
    assert {r["name"] for r in roles} == {"admin", "editor", "operator", "viewer"}


def test_audit_chain_verifies_after_activity(api: Api) -> None:
    api.login("viewer@example.com")
    api.login("viewer@example.com", "bad-password-000")
    r = api.client.get("/api/v1/audit/verify", headers=api.headers("admin")).json()
    assert r["ok"] and r["events"] >= 2
    with api.store.session() as s:
        assert audit.verify(s).ok


def test_password_change_ends_other_sessions(api: Api) -> None:
    other = api.login("editor@example.com").json()["access_token"]
    mine = {"Authorization": f"Bearer {api.login('editor@example.com').json()['access_token']}"}
    url = "/api/v1/auth/password"
    wrong = {"current_password": "nope-nope-nope", "new_password": "Another-Good-Secret-42"}
    assert api.client.post(url, json=wrong, headers=mine).status_code == 403
    weak = {"current_password": PASSWORD, "new_password": "short"}
    assert api.client.post(url, json=weak, headers=mine).status_code == 422
    good = {"current_password": PASSWORD, "new_password": "Another-Good-Secret-42"}
    assert api.client.post(url, json=good, headers=mine).status_code == 204
    assert api.client.get(ME, headers=mine).status_code == 200
    assert api.client.get(ME, headers={"Authorization": f"Bearer {other}"}).status_code == 401
    assert api.login("editor@example.com").status_code == 401
    assert api.login("editor@example.com", "Another-Good-Secret-42").status_code == 200
