"""OIDC login against a real provider: npm ``oidc-provider`` run by the fixture."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from aggregator.metadata.store import MetadataStore
from tests.unit.api.helpers import Api, make_api

pytestmark = pytest.mark.integration
HERE = Path(__file__).parent / "oidc"
CACHE = Path("/tmp/aggregator-services/oidc-provider")
SECRET = "oidc-client-secret-for-tests-0123456789"
REDIRECT = "https://testserver/api/v1/auth/oidc/callback"


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def issuer() -> Iterator[str]:
    """Start the provider (installing it with npm on first use); a failure fails the tests."""
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "node and npm are needed for the OIDC provider"
    CACHE.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "provider.mjs"):
        shutil.copy(HERE / name, CACHE / name)
    if not (CACHE / "node_modules" / "oidc-provider").exists():
        subprocess.run([npm, "install", "--no-audit", "--no-fund"], cwd=CACHE, check=True,
                       capture_output=True, timeout=300)  # fmt: skip
    port = _port()
    proc = subprocess.Popen(
        [node, "provider.mjs", str(port), REDIRECT, SECRET],
        cwd=CACHE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    seen = [proc.stdout.readline() for _ in range(1)]
    while "listening" not in seen[-1] and seen[-1] and len(seen) < 20:
        seen.append(proc.stdout.readline())  # skips the provider's development warnings
    assert "listening" in seen[-1], "".join(seen)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def sso(tmp_path: Path, store: MetadataStore, issuer: str) -> Iterator[Api]:
    api = make_api(
        tmp_path, store, oidc_issuer=issuer, oidc_client_id="aggregator",
        oidc_client_secret=SECRET, oidc_redirect_uri=REDIRECT,
    )  # fmt: skip
    with api.client:
        yield api


def _sign_in_at_provider(authorize_url: str, email: str) -> dict[str, str]:
    """Drive the provider's login and consent pages like a browser; return the callback query."""
    browser = httpx.Client(follow_redirects=False, timeout=10)
    url = authorize_url
    for _ in range(12):
        if url.startswith(REDIRECT):
            return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        r = browser.get(url)
        if r.status_code in (302, 303):
            url = urljoin(url, r.headers["location"])
            continue
        action = urljoin(url, re.search(r'action="([^"]+)"', r.text).group(1))  # type: ignore[union-attr]
        form = (
            {"prompt": "login", "login": email, "password": "anything"}
            if 'name="login"' in r.text
            else {"prompt": "consent"}
        )
        r = browser.post(action, data=form)
        url = urljoin(action, r.headers["location"])
    raise AssertionError("the provider never redirected back")


def _start(api: Api) -> str:
    r = api.client.get("/api/v1/auth/oidc/login", follow_redirects=False)
    assert r.status_code == 302, r.text
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("agg_oidc="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" in cookie
    return str(r.headers["location"])


def test_oidc_login_for_an_existing_user(sso: Api) -> None:
    location = _start(sso)
    assert "code_challenge_method=S256" in location and "nonce=" in location
    query = _sign_in_at_provider(location, "viewer@example.com")
    r = sso.client.get("/api/v1/auth/oidc/callback", params=query)
    assert r.status_code == 200, r.text
    me = sso.client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"}
    )
    assert me.json()["email"] == "viewer@example.com"
    replay = sso.client.get("/api/v1/auth/oidc/callback", params=query)
    assert replay.status_code == 401  # the flow cookie is gone and the code is spent
    events = sso.client.get("/api/v1/audit?action=auth.login", headers=sso.headers("admin"))
    assert {"method": "oidc"} in [e["details"] for e in events.json()]


def test_oidc_refuses_forged_state_and_unknown_users(sso: Api) -> None:
    query = _sign_in_at_provider(_start(sso), "viewer@example.com")
    forged = sso.client.get("/api/v1/auth/oidc/callback", params={**query, "state": "x"})
    assert forged.status_code == 401 and forged.json()["error"]["code"] == "oidc_failed"
    query = _sign_in_at_provider(_start(sso), "stranger@example.com")
    r = sso.client.get("/api/v1/auth/oidc/callback", params=query)
    assert r.status_code == 403 and r.json()["error"]["code"] == "no_account"
    query = _sign_in_at_provider(_start(sso), "unverified@example.com")
    r = sso.client.get("/api/v1/auth/oidc/callback", params=query)
    assert r.status_code == 403


def test_oidc_not_configured_is_404(tmp_path: Path, store: MetadataStore) -> None:
    api = make_api(tmp_path, store)
    with api.client:
        r = api.client.get("/api/v1/auth/oidc/login", follow_redirects=False)
    assert r.status_code == 404 and r.json()["error"]["code"] == "oidc_not_configured"
