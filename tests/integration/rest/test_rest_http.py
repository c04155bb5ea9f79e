"""Auth styles, OAuth2 token caching/refresh, 429/5xx retries, timeouts, budgets, incremental."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
import structlog

from aggregator.core.errors import ConfigError, ConnectorError, TransientError
from tests.integration.rest import server as s
from tests.integration.rest.helpers import read, source
from tests.integration.rest.server import State

pytestmark = pytest.mark.integration
FAST_RETRY = {"attempts": 4, "backoff_seconds": 0.01, "max_backoff_seconds": 2}
SECRETS = [s.API_KEY, s.BEARER, s.PASSWORD, s.CLIENT_SECRET, s.REFRESH]

AUTHS: dict[str, dict[str, Any]] = {
    "apikey-header": {"type": "api_key", "name": "X-API-Key", "value": s.API_KEY},
    "apikey-query": {"type": "api_key", "name": "api_key", "value": s.API_KEY, "in": "query"},
    "bearer": {"type": "bearer", "token": s.BEARER},
    "basic": {"type": "basic", "username": s.USER, "password": s.PASSWORD},
    "oauth": {
        "type": "oauth2",
        "token_url": "/oauth/token",
        "client_id": s.CLIENT_ID,
        "client_secret": s.CLIENT_SECRET,
    },
}


@pytest.mark.parametrize("style", list(AUTHS))
def test_auth_styles(api: str, style: str) -> None:
    stream = {"name": "x", "path": f"/secure/{style}", "records_path": "data"}
    src = source(api, [stream], auth=AUTHS[style])
    assert src.check().ok
    assert read(src, "x").table.num_rows == 3


@pytest.mark.parametrize("style", list(AUTHS))
def test_bad_credentials_say_check_credentials_and_leak_no_secret(api: str, style: str) -> None:
    stream = {
        "name": "x",
        "path": f"/secure/{'oauth' if style == 'oauth' else style}",
        "records_path": "data",
    }
    auth = dict(AUTHS[style])
    for key in ("value", "token", "password"):
        if key in auth:
            auth[key] = "SECRET-wrong-" + key
    if style == "oauth":
        auth["client_secret"] = "SECRET-wrong-client"
    src = source(api, [stream], auth=auth)
    result = src.check()
    assert not result.ok
    assert "check the" in result.message
    with pytest.raises(ConnectorError) as info:
        read(src, "x")
    text = str(info.value) + repr(src.config) + str(src.config.model_dump())
    assert "SECRET" not in text


def test_api_key_in_query_is_masked_in_messages(api: str) -> None:
    stream = {
        "name": "x",
        "path": "/badjson",
        "records_path": "data",
        "pagination": {"type": "page_number"},
    }
    src = source(api, [stream], auth=AUTHS["apikey-query"], concurrency=1)
    result = read(src, "x")
    assert "api_key=%2A%2A%2A" in result.quarantined[0]["reason"]
    everything = repr(result.quarantined) + repr(result.logs) + repr(result.states)
    assert s.API_KEY not in everything


def test_no_secret_in_logs(
    api: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    for style, auth in AUTHS.items():
        stream = {"name": "x", "path": f"/secure/{style}", "records_path": "data"}
        read(source(api, [stream], auth=auth), "x")
        with pytest.raises(TransientError):
            read(source(api, [{"name": "d", "path": "/down"}], auth=auth, retry=FAST_RETRY), "d")
    structlog.get_logger("test").info("done")
    out = capsys.readouterr()
    logged = caplog.text + out.out + out.err
    for secret in SECRETS:
        assert secret not in logged


def test_oauth_token_is_cached_and_refreshed(api: str, api_state: State) -> None:
    stream = {"name": "x", "path": "/secure/oauth", "records_path": "data"}
    refresh = {
        **AUTHS["oauth"],
        "grant_type": "refresh_token",
        "refresh_token": s.REFRESH,
        "expiry_margin_seconds": 0,
    }
    src = source(api, [stream], auth=refresh)
    for _ in range(3):
        read(src, "x")
    assert api_state.issued == 1  # cached across requests
    api_state.tokens.clear()  # the server revokes every token: a 401 triggers one refresh
    read(src, "x")
    assert api_state.issued == 2
    api_state.token_ttl = 0.2  # short-lived tokens are refreshed before they expire
    api_state.tokens.clear()
    read(src, "x")
    time.sleep(0.3)
    read(src, "x")
    assert api_state.issued == 4


def test_429_retry_after_is_honoured(api: str, api_state: State) -> None:
    src = source(
        api, [{"name": "r", "path": "/ratelimited", "records_path": "data"}], retry=FAST_RETRY
    )
    started = time.monotonic()
    assert read(src, "r").table.num_rows == 2
    assert time.monotonic() - started >= 0.95
    assert api_state.hits["/ratelimited"] == 2


def test_flaky_5xx_is_retried_with_backoff(api: str, api_state: State) -> None:
    src = source(api, [{"name": "f", "path": "/flaky", "records_path": "data"}], retry=FAST_RETRY)
    assert read(src, "f").table.num_rows == 2
    assert api_state.hits["/flaky"] == 3


def test_persistent_5xx_is_a_transient_error(api: str, api_state: State) -> None:
    src = source(api, [{"name": "d", "path": "/down"}], retry=FAST_RETRY)
    with pytest.raises(TransientError, match="still failed after 4 attempts"):
        read(src, "d")
    assert api_state.hits["/down"] == 4


def test_timeouts_are_retried_then_reported(api: str, api_state: State) -> None:
    stream = {"name": "t", "path": "/slow", "params": {"delay": "0.5"}, "records_path": "data"}
    src = source(api, [stream], timeout_seconds=0.1, retry={**FAST_RETRY, "attempts": 2})
    with pytest.raises(TransientError, match="timed out 2 times"):
        read(src, "t")
    assert api_state.hits["/slow"] == 2
    ok = source(api, [{**stream, "params": {"delay": "0.05"}}], timeout_seconds=2)
    assert read(ok, "t").table.num_rows == 1


def test_requests_per_second_budget(api: str) -> None:
    stream = {
        "name": "u",
        "path": "/users",
        "records_path": "data",
        "pagination": {"type": "page_number", "page_size": 5, "page_size_param": "per_page"},
    }
    src = source(api, [stream], requests_per_second=20, concurrency=4)
    started = time.monotonic()
    assert read(src, "u").table.num_rows == 25
    # 6 or more requests spaced 50 ms apart
    assert time.monotonic() - started >= 0.25


def test_bounded_concurrency(api: str, api_state: State) -> None:
    stream = {
        "name": "p",
        "path": "/paged",
        "records_path": "data",
        "params": {"pages": "12", "latency": "0.1"},
        "pagination": {"type": "page_number"},
    }
    result = read(source(api, [stream], concurrency=3), "p")
    assert result.table.num_rows == 1200
    assert api_state.max_in_flight == 3


def test_incremental_sends_cursor_and_resumes(api: str, api_state: State) -> None:
    stream = {
        "name": "ev",
        "path": "/events",
        "records_path": "data",
        "primary_key": ["id"],
        "pagination": {"type": "page_number"},
        "incremental": {"cursor_field": "updated_at", "param": "since"},
    }
    src = source(api, [stream], concurrency=1, checkpoint_seconds=0)
    first = read(src, "ev", incremental=True)
    assert first.table.num_rows == 20
    final = first.states[-1]
    assert final == {"cursor": "2024-01-20T10:00:00+00:00"}
    # mid-run checkpoints locate the next page and keep the floor
    assert first.states[0]["page"] == 1 and first.states[0]["next"]["params"] == [["page", "2"]]
    again = read(src, "ev", final, incremental=True)
    assert again.table.num_rows == 0  # the server returns the >= row; it is filtered out
    assert api_state.seen_params[-1]["since"] == "2024-01-20T10:00:00+00:00"
    assert again.states[-1] == final
    # resume from a mid-run checkpoint: no row of earlier pages again
    resumed = read(src, "ev", first.states[1], incremental=True)
    assert resumed.table.column("id").to_pylist() == list(range(11, 21))


def test_unknown_parent_and_bad_config_name_the_field(api: str) -> None:
    with pytest.raises(ConfigError, match="unknown parent 'nope'"):
        source(api, [{"name": "c", "path": "/x/{id}", "parent": "nope"}])
    with pytest.raises(ConfigError, match=r"config\.streams\.0\.pagination\.type"):
        source(api, [{"name": "c", "path": "/x", "pagination": {"type": "pages"}}])
    with pytest.raises(ConfigError, match=r"config\.base_url"):
        source("ftp://x", [{"name": "c", "path": "/x"}])
