"""HTTP plumbing of the ``rest`` source: one pooled client, auth, a request budget, retries.

Failures are classified for the engine: 401/403 raise :class:`ConnectorError` telling the
user to check credentials; timeouts, connection errors, 5xx and 429 are retried with
exponential backoff (429 and 503 honour ``Retry-After``) and raise :class:`TransientError`
when attempts run out; other 4xx raise :class:`ConnectorError`. Secrets never reach a
message: URLs are shown with their query values of secret parameters masked.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urljoin

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
)

from aggregator.connectors.rest.config import (
    ApiKeyAuth,
    BasicAuth,
    BearerAuth,
    OAuth2Auth,
    RestConfig,
)
from aggregator.core.errors import ConnectorError, TransientError
from aggregator.observability.redaction import HTTP_REDACTOR
from aggregator.security.outbound import guarded_client, guarded_transport

MASK = "***"
#: what identifies a request for pagination-loop detection: method, URL, params, JSON body
RequestKey = tuple[str, str, tuple[tuple[str, str], ...], str]


@dataclass(frozen=True)
class Request:
    """One page request: an absolute URL and its query parameters."""

    url: str
    params: tuple[tuple[str, str], ...] = ()
    method: str = "GET"
    json_body: dict[str, Any] | None = None

    def with_params(self, **params: str) -> Request:
        """A copy with ``params`` set (replacing same-named ones)."""
        kept = tuple((k, v) for k, v in self.params if k not in params)
        return Request(self.url, kept + tuple(params.items()), self.method, self.json_body)

    def with_body(self, path: str, value: Any) -> Request:
        """A copy whose JSON body has ``value`` at the dotted ``path`` (GraphQL variables)."""
        body = copy.deepcopy(self.json_body or {})
        *parents, last = path.split(".")
        node = body
        for name in parents:
            node = node.setdefault(name, {})
        node[last] = value
        return Request(self.url, self.params, self.method, body)

    def key(self) -> RequestKey:
        """Identity used to detect pagination loops (hashable, cheap: no URL encoding)."""
        body = json.dumps(self.json_body, sort_keys=True) if self.json_body else ""
        return (self.method, self.url, tuple(sorted(self.params)), body)

    def to_state(self) -> dict[str, Any]:
        """JSON form stored in checkpoints."""
        state: dict[str, Any] = {"url": self.url, "params": [list(p) for p in self.params]}
        if self.json_body is not None:
            state["body"] = self.json_body
        return state

    @classmethod
    def from_state(cls, data: dict[str, Any], like: Request) -> Request:
        """Inverse of :meth:`to_state` (method and default body from ``like``)."""
        params = tuple((str(k), str(v)) for k, v in data.get("params", []))
        return cls(str(data["url"]), params, like.method, data.get("body", like.json_body))


class Where:
    """``METHOD url?params`` of a request for messages, secrets masked; built only when a
    message needs it (the URL handling costs more than the rest of a request's overhead)."""

    def __init__(self, client: HttpClient, request: Request) -> None:
        self._client, self._request = client, request
        self._text: str | None = None

    def __str__(self) -> str:
        if self._text is None:
            r = self._request
            self._text = f"{r.method} {self._client.show(r.url, r.params)}"
        return self._text


@dataclass
class Response:
    """What the source needs of a response."""

    where: Where | str
    status: int
    body: bytes
    headers: httpx.Headers
    next_link: str | None = None

    @property
    def url(self) -> str:
        """The request, for messages (``METHOD url?params``, secrets masked)."""
        return str(self.where)


class RetryableStatus(Exception):
    """A response worth retrying (5xx, 429)."""

    def __init__(self, status: int, retry_after: float | None, where: Where | str) -> None:
        super().__init__(f"HTTP {status} from {where}")
        self.status = status
        self.retry_after = retry_after


class RateLimiter:
    """A thread-safe budget of ``rate`` requests per second (evenly spaced)."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Block until the next request may start."""
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)


@dataclass
class OAuth2(httpx.Auth):
    """Bearer tokens from an OAuth 2.0 token endpoint, cached until shortly before expiry."""

    config: OAuth2Auth
    token_url: str
    timeout: float
    _token: str | None = None
    _expires: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    fetches: int = 0

    def _fetch(self) -> None:
        c = self.config
        data: dict[str, str] = {"grant_type": c.grant_type}
        if c.scopes:
            data["scope"] = " ".join(c.scopes)
        if c.grant_type == "refresh_token" and c.refresh_token is not None:
            data["refresh_token"] = c.refresh_token.get_secret_value()
        secret = c.client_secret.get_secret_value()
        try:
            with guarded_client(timeout=self.timeout) as client:  # outbound (SSRF) guard
                response = client.post(self.token_url, data=data, auth=(c.client_id, secret))
        except httpx.HTTPError as exc:
            raise TransientError(f"token request to {self.token_url} failed: {exc!r}") from None
        if response.status_code != 200:
            raise ConnectorError(
                f"HTTP {response.status_code} from the token endpoint {self.token_url}: "
                "check the OAuth2 client_id, client_secret and refresh_token"
            )
        payload = response.json()
        self._token = str(payload["access_token"])
        expires_in = float(payload.get("expires_in") or 3600)
        self._expires = time.monotonic() + expires_in - c.expiry_margin_seconds
        if payload.get("refresh_token"):
            self.config = c.model_copy(update={"refresh_token": _secret(payload["refresh_token"])})
        self.fetches += 1

    def token(self, stale: str | None = None) -> str:
        """A valid token; ``stale`` is one the server rejected (forces a refresh)."""
        with self._lock:
            if self._token is None or self._token == stale or time.monotonic() >= self._expires:
                self._fetch()
            assert self._token is not None
            return self._token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Send with the cached token; on 401 refresh once and resend."""
        token = self.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = f"Bearer {self.token(stale=token)}"
            yield request


def _secret(value: str) -> Any:
    from pydantic import SecretStr

    return SecretStr(value)


class HttpClient:
    """The source's pooled client; thread-safe, shared by every stream and worker."""

    def __init__(self, config: RestConfig) -> None:
        self.config = config
        self.limiter = RateLimiter(config.requests_per_second)
        self.secret_params: set[str] = set()
        params: dict[str, str] = {}
        auth: httpx.Auth | None = None
        headers = dict(config.headers)
        a = config.auth
        if isinstance(a, ApiKeyAuth):
            if a.location == "query":
                params[a.name] = a.value.get_secret_value()
                self.secret_params.add(a.name)
                HTTP_REDACTOR.add(a.value.get_secret_value())
            else:
                headers[a.name] = a.value.get_secret_value()
        elif isinstance(a, BearerAuth):
            headers["Authorization"] = f"Bearer {a.token.get_secret_value()}"
        elif isinstance(a, BasicAuth):
            auth = httpx.BasicAuth(a.username, a.password.get_secret_value())
        elif isinstance(a, OAuth2Auth):
            token_url = urljoin(config.base_url + "/", a.token_url)
            auth = self.oauth = OAuth2(a, token_url, config.timeout_seconds)
        self.client = httpx.Client(
            headers=headers,
            params=params,
            auth=auth,
            timeout=config.timeout_seconds,
            follow_redirects=True,
            # outbound (SSRF) guard: every connection, redirects included, is checked
            transport=guarded_transport(
                limits=httpx.Limits(
                    max_connections=config.concurrency * 2,
                    max_keepalive_connections=config.concurrency * 2,
                )
            ),
        )
        self.requests = 0
        # one policy for every request (tenacity keeps each call's state thread-local)
        self._retrying = Retrying(
            stop=stop_after_attempt(config.retry.attempts),
            wait=self._wait,
            retry=retry_if_exception_type((RetryableStatus, httpx.TransportError)),
            reraise=True,
        )

    def close(self) -> None:
        """Close the pooled connections."""
        self.client.close()

    def show(self, url: str, params: tuple[tuple[str, str], ...] = ()) -> str:
        """``url`` with its parameters, secret ones masked (for messages and logs)."""
        merged = httpx.URL(url).copy_merge_params(dict(self.client.params.multi_items()))
        merged = merged.copy_merge_params(dict(params))
        pairs = [
            (k, MASK if k in self.secret_params else v) for k, v in merged.params.multi_items()
        ]
        base = str(merged.copy_with(query=None))
        return f"{base}?{urlencode(pairs)}" if pairs else base

    def _wait(self, state: RetryCallState) -> float:
        retry = self.config.retry
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RetryableStatus) and exc.retry_after is not None:
            return min(exc.retry_after, retry.max_backoff_seconds)
        backoff: float = retry.backoff_seconds * 2 ** (state.attempt_number - 1)
        return min(backoff, retry.max_backoff_seconds)

    def send(self, request: Request, headers: dict[str, str] | None = None) -> Response:
        """Send with the budget and retries; raise a classified error on failure."""
        where = Where(self, request)
        try:
            return self._retrying(self._send_once, request, headers or {}, where)
        except RetryableStatus as exc:
            raise TransientError(
                f"{where} still failed after {self.config.retry.attempts} attempts "
                f"(HTTP {exc.status}); retry later or lower requests_per_second"
            ) from None
        except httpx.TimeoutException:
            raise TransientError(
                f"{where} timed out {self.config.retry.attempts} times "
                f"(timeout_seconds={self.config.timeout_seconds})"
            ) from None
        except httpx.TransportError as exc:
            raise TransientError(f"{where} failed: {type(exc).__name__}") from None

    def _send_once(self, request: Request, headers: dict[str, str], where: Where) -> Response:
        self.limiter.acquire()
        self.requests += 1
        response = self.client.request(
            request.method,
            request.url,
            params=dict(request.params) or None,
            headers=headers,
            json=request.json_body,
        )
        status = response.status_code
        if status == 429 or status >= 500:
            raise RetryableStatus(status, _retry_after(response), where)
        if status in (401, 403):
            raise ConnectorError(
                f"HTTP {status} from {where}: check the credentials (auth) of the rest source "
                f"for {self.config.base_url}"
            )
        if status >= 400:
            raise ConnectorError(f"HTTP {status} from {where}: {response.text[:200]}")
        next_link = response.links.get("next", {}).get("url")
        return Response(where, status, response.content, response.headers, next_link)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None
