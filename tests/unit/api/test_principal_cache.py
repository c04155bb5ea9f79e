"""The per-worker cache of checked sessions never outlives a revocation made through this
worker, and one made elsewhere (another worker, the CLI) for at most its TTL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aggregator.metadata.store import MetadataStore
from aggregator.security import identity, tokens
from tests.unit.api.helpers import Api, make_api

pytestmark = pytest.mark.unit
ME = "/api/v1/auth/me"


def _api(tmp_path: Path, store: MetadataStore, ttl: float) -> Iterator[Api]:
    built = make_api(tmp_path / "home", store, auth_cache_seconds=ttl)
    with built.client:
        yield built


@pytest.fixture
def cached(tmp_path: Path, store: MetadataStore) -> Iterator[Api]:
    yield from _api(tmp_path, store, 60)


def _revoke_elsewhere(api: Api, token: str) -> None:
    """What another worker or the CLI does: revoke in the database, not through this app."""
    session_id = tokens.decode_access_token(api.app.state.platform.jwt_key, token).session_id
    with api.store.session() as s:
        identity.revoke_session(s, session_id, "revoked elsewhere")
        s.commit()


def test_logout_through_this_worker_ends_the_session_at_once(cached: Api) -> None:
    token = cached.token("viewer")
    bearer = {"Authorization": f"Bearer {token}"}
    assert cached.client.get(ME, headers=bearer).status_code == 200  # now cached
    assert cached.client.post("/api/v1/auth/logout", headers=bearer).status_code == 204
    r = cached.client.get(ME, headers=bearer)
    assert r.status_code == 401 and r.json()["error"]["message"] == "session ended"


def test_writes_always_check_the_database(cached: Api) -> None:
    token = cached.token("editor")
    bearer = {"Authorization": f"Bearer {token}"}
    assert cached.client.get(ME, headers=bearer).status_code == 200
    _revoke_elsewhere(cached, token)
    assert cached.client.get(ME, headers=bearer).status_code == 200  # read: within the TTL
    body = {"name": "w", "url": "https://example.com/hook", "secret": "x" * 24,
            "events": ["run.failed"]}  # fmt: skip
    r = cached.client.post("/api/v1/webhooks", json=body, headers=bearer)
    assert r.status_code == 401 and r.json()["error"]["message"] == "session ended"
    # the write emptied the cache: reads see the revocation from now on
    assert cached.client.get(ME, headers=bearer).status_code == 401


def test_revocation_elsewhere_applies_within_the_ttl(tmp_path: Path, store: MetadataStore) -> None:
    for api in _api(tmp_path, store, 0.5):
        token = api.token("viewer")
        bearer = {"Authorization": f"Bearer {token}"}
        assert api.client.get(ME, headers=bearer).status_code == 200
        _revoke_elsewhere(api, token)
        time.sleep(0.6)
        assert api.client.get(ME, headers=bearer).status_code == 401


def test_ttl_zero_checks_every_request(tmp_path: Path, store: MetadataStore) -> None:
    for api in _api(tmp_path, store, 0):
        token = api.token("viewer")
        bearer = {"Authorization": f"Bearer {token}"}
        assert api.client.get(ME, headers=bearer).status_code == 200
        _revoke_elsewhere(api, token)
        assert api.client.get(ME, headers=bearer).status_code == 401
