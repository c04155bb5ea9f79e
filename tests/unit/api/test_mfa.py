"""TOTP MFA: required for admins, set up and enabled, second login step, replay, recovery."""

from __future__ import annotations

import pyotp
import pytest

from aggregator.security import identity
from tests.unit.api.helpers import PASSWORD, Api

pytestmark = pytest.mark.unit


def _new_admin(api: Api, email: str = "boss@example.com") -> None:
    with api.store.session() as s:
        identity.create_user(s, email, PASSWORD, "admin")
        s.commit()


def test_admin_without_mfa_can_only_set_it_up(api: Api) -> None:
    _new_admin(api)
    tokens = api.login("boss@example.com").json()
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    denied = api.client.get("/api/v1/users", headers=auth)
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "mfa_required"
    assert api.client.get("/api/v1/auth/me", headers=auth).status_code == 200

    setup = api.client.post("/api/v1/auth/mfa/setup", headers=auth).json()
    assert setup["otpauth_uri"].startswith("otpauth://totp/Aggregator:boss%40example.com")
    totp = pyotp.TOTP(setup["secret"])
    wrong = api.client.post("/api/v1/auth/mfa/enable", json={"code": "000000"}, headers=auth)
    assert wrong.status_code == 422
    enabled = api.client.post("/api/v1/auth/mfa/enable", json={"code": totp.now()}, headers=auth)
    assert enabled.status_code == 200
    codes = enabled.json()["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    assert api.client.get("/api/v1/users", headers=auth).status_code == 200


def test_login_with_totp_rejects_replay_and_accepts_recovery_once(api: Api) -> None:
    challenge = api.login("admin@example.com").json()
    assert challenge["mfa_required"] is True and "access_token" not in challenge
    code = pyotp.TOTP(api.admin_totp).now()
    verify = "/api/v1/auth/mfa/verify"
    ok = api.client.post(verify, json={"mfa_token": challenge["mfa_token"], "code": code})
    assert ok.status_code == 200 and ok.json()["access_token"]
    again = api.login("admin@example.com").json()["mfa_token"]
    replay = api.client.post(verify, json={"mfa_token": again, "code": code})
    assert replay.status_code == 401 and replay.json()["error"]["code"] == "invalid_code"

    _new_admin(api, "two@example.com")
    first = api.login("two@example.com").json()["access_token"]
    auth = {"Authorization": f"Bearer {first}"}
    secret = api.client.post("/api/v1/auth/mfa/setup", headers=auth).json()["secret"]
    codes = api.client.post(
        "/api/v1/auth/mfa/enable", json={"code": pyotp.TOTP(secret).now()}, headers=auth
    ).json()["recovery_codes"]
    token = api.login("two@example.com").json()["mfa_token"]
    assert api.client.post(verify, json={"mfa_token": token, "code": codes[0]}).status_code == 200
    token = api.login("two@example.com").json()["mfa_token"]
    assert api.client.post(verify, json={"mfa_token": token, "code": codes[0]}).status_code == 401


def test_mfa_token_is_not_an_access_token_and_guessing_is_limited(api: Api) -> None:
    token = api.login("admin@example.com").json()["mfa_token"]
    me = api.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 401
    access = api.token("viewer")
    as_mfa = api.client.post(
        "/api/v1/auth/mfa/verify", json={"mfa_token": access, "code": "1234567"}
    )
    assert as_mfa.status_code == 401
    codes = [
        api.client.post(
            "/api/v1/auth/mfa/verify", json={"mfa_token": token, "code": f"{i:06d}"}
        ).status_code
        for i in range(6)
    ]
    assert codes == [401] * 5 + [429]
    events = api.client.get("/api/v1/audit?action=auth.mfa", headers=api.headers("admin")).json()
    assert [e["outcome"] for e in events].count("failure") >= 5
