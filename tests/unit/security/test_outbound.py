"""The outbound guard against real HTTP servers on loopback.

Blocked destinations are named to a test resolver (``metadata.test`` -> 169.254.169.254 ...),
so nothing is ever sent to them: the guard refuses before a socket is opened, and the
assertions check that the loopback server saw exactly the requests it should have.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import httpx
import pytest

from aggregator.connectors.rest.config import RestConfig
from aggregator.connectors.rest.http import HttpClient, Request
from aggregator.core.errors import ConnectorError
from aggregator.security import outbound
from aggregator.security.oidc import OidcClient, OidcConfig, OidcError
from aggregator.security.outbound import OutboundBlocked, OutboundPolicy
from tests.unit.security.localhttp import Answer, Seen, local_server

pytestmark = pytest.mark.unit

NAMES = {
    "metadata.test": ["169.254.169.254"],
    "ec2v6.test": ["fd00:ec2::254"],
    "app.test": ["127.0.0.1"],
    "mixed.test": ["127.0.0.1", "169.254.169.254"],
    "private.test": ["10.1.2.3"],
}


def resolver(host: str, port: int) -> list[str]:
    """Test DNS: the names above, and nothing else."""
    if host not in NAMES:
        raise OSError(f"unknown test name {host}")
    return NAMES[host]


@pytest.fixture
def lenient() -> Iterator[OutboundPolicy]:
    policy = OutboundPolicy.build(False, [], resolver)
    outbound.configure(policy)
    yield policy
    outbound.configure(None)


def redirector(target: str) -> Answer:
    def answer(req: Seen) -> tuple[int, dict[str, str], bytes]:
        if req.path.startswith("/go"):
            return 302, {"Location": target}, b""
        return 200, {}, b"ok"

    return answer


@pytest.mark.parametrize(
    ("address", "strict", "refused"),
    [
        ("169.254.169.254", False, "link-local / cloud metadata"),
        ("169.254.0.23", False, "link-local / cloud metadata"),
        ("fd00:ec2::254", False, "cloud metadata (AWS IPv6)"),
        ("fe80::1", False, "link-local"),
        ("100.100.100.200", False, "cloud metadata (Alibaba)"),
        ("168.63.129.16", False, "cloud platform endpoint (Azure wireserver)"),
        ("0.0.0.0", False, "unspecified"),
        ("::", False, "unspecified"),
        ("224.0.0.1", False, "multicast"),
        ("::ffff:169.254.169.254", False, "link-local / cloud metadata"),
        ("64:ff9b::a9fe:a9fe", False, "link-local / cloud metadata"),
        ("2002:a9fe:a9fe::1", False, "link-local / cloud metadata"),
        ("127.0.0.1", False, None),
        ("10.0.0.5", False, None),
        ("8.8.8.8", False, None),
        ("127.0.0.1", True, "loopback address"),
        ("::1", True, "loopback address"),
        ("10.0.0.5", True, "private address"),
        ("192.168.1.1", True, "private address"),
        ("172.16.0.1", True, "private address"),
        ("fc00::1", True, "private address"),
        ("100.64.0.1", True, "non-global address"),
        ("::ffff:10.0.0.1", True, "private address"),
        ("8.8.8.8", True, None),
        ("2001:4860:4860::8888", True, None),
    ],
)
def test_refusal_of_each_range(address: str, strict: bool, refused: str | None) -> None:
    policy = OutboundPolicy.build(strict, [])
    why = policy.refusal(ipaddress.ip_address(address))
    if refused is None:
        assert why is None
    else:
        assert why is not None and why.startswith(refused)


def test_allow_list_opens_private_ranges_but_never_metadata() -> None:
    policy = OutboundPolicy.build(
        True, ["127.0.0.0/8", "10.0.0.0/8", "db.internal", "169.254.0.0/16"]
    )
    assert policy.refusal(ipaddress.ip_address("127.0.0.1")) is None
    assert policy.refusal(ipaddress.ip_address("10.9.9.9")) is None
    assert policy.refusal(ipaddress.ip_address("192.168.0.1")) is not None
    assert policy.refusal(ipaddress.ip_address("192.168.0.1"), "db.internal") is None
    assert policy.refusal(ipaddress.ip_address("169.254.169.254")) == "link-local / cloud metadata"


def test_allowed_loopback_request_goes_through(lenient: OutboundPolicy) -> None:
    with local_server() as server, outbound.guarded_client(lenient) as client:
        response = client.get(f"{server.url}/ok")
    assert response.status_code == 200 and response.text == "ok"
    assert [s.path for s in server.seen] == ["/ok"]


def test_connects_to_the_checked_address_not_a_second_lookup(lenient: OutboundPolicy) -> None:
    # app.test exists only in the test resolver: the socket must use the checked address
    with local_server() as server, outbound.guarded_client(lenient) as client:
        response = client.get(f"http://app.test:{server.port}/ok")
    assert response.text == "ok"
    assert server.seen[0].headers["host"] == f"app.test:{server.port}"


def test_name_resolving_to_metadata_is_refused(lenient: OutboundPolicy) -> None:
    with outbound.guarded_client(lenient) as client, pytest.raises(OutboundBlocked) as err:
        client.get("http://metadata.test/latest/meta-data/")
    assert err.value.message == (
        "outbound connection to metadata.test (169.254.169.254) refused: "
        "link-local / cloud metadata"
    )
    with outbound.guarded_client(lenient) as client, pytest.raises(OutboundBlocked) as err:
        client.get("http://ec2v6.test/latest/meta-data/")
    assert "(fd00:ec2::254) refused: cloud metadata (AWS IPv6)" in err.value.message


def test_one_blocked_answer_refuses_the_name(lenient: OutboundPolicy) -> None:
    with (
        local_server() as server,
        outbound.guarded_client(lenient) as client,
        pytest.raises(OutboundBlocked, match=r"mixed.test \(169.254.169.254\)"),
    ):
        client.get(f"http://mixed.test:{server.port}/ok")
    assert server.seen == []


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/iam/",
        "http://metadata.test/computeMetadata/v1/",
        "http://[::ffff:169.254.169.254]/",
        "http://[fd00:ec2::254]/",
    ],
)
def test_redirect_to_a_blocked_address_is_refused(lenient: OutboundPolicy, target: str) -> None:
    with (
        local_server(redirector(target)) as server,
        outbound.guarded_client(lenient, follow_redirects=True) as client,
        pytest.raises(OutboundBlocked, match="refused"),
    ):
        client.get(f"{server.url}/go")
    assert [s.path for s in server.seen] == ["/go"]


def test_redirect_between_allowed_servers_is_followed(lenient: OutboundPolicy) -> None:
    with (
        local_server() as target,
        local_server(redirector(f"{target.url}/ok")) as first,
        outbound.guarded_client(lenient, follow_redirects=True) as client,
    ):
        response = client.get(f"{first.url}/go")
    assert response.text == "ok" and len(target.seen) == 1


def test_strict_mode_refuses_loopback_unless_allowed() -> None:
    strict = OutboundPolicy.build(True, [], resolver)
    with local_server() as server:
        with outbound.guarded_client(strict) as client, pytest.raises(OutboundBlocked) as err:
            client.get(f"{server.url}/ok")
        assert "loopback address (strict outbound mode" in err.value.message
        assert server.seen == []
        allowed = OutboundPolicy.build(True, ["127.0.0.1/32"], resolver)
        with outbound.guarded_client(allowed) as client:
            assert client.get(f"{server.url}/ok").status_code == 200
        by_name = OutboundPolicy.build(True, ["app.test"], resolver)
        with outbound.guarded_client(by_name) as client:
            assert client.get(f"http://app.test:{server.port}/ok").status_code == 200
    # strict: a redirect from an allowed host to a private one is refused on the hop
    allowed = OutboundPolicy.build(True, ["127.0.0.1/32"], resolver)
    with (
        local_server(redirector("http://private.test/admin")) as server,
        outbound.guarded_client(allowed, follow_redirects=True) as client,
        pytest.raises(OutboundBlocked, match=r"private.test \(10.1.2.3\) refused: private"),
    ):
        client.get(f"{server.url}/go")


def test_each_new_connection_is_checked_again(lenient: OutboundPolicy) -> None:
    """DNS rebinding: the answer changes after a first good connection."""
    answers = iter([["127.0.0.1"], ["169.254.169.254"]])
    policy = OutboundPolicy.build(False, [], lambda host, port: next(answers))
    with local_server() as server:
        with outbound.guarded_client(policy) as client:
            assert client.get(f"http://rebind.test:{server.port}/one").text == "ok"
        with outbound.guarded_client(policy) as client, pytest.raises(OutboundBlocked):
            client.get(f"http://rebind.test:{server.port}/two")
    assert [s.path for s in server.seen] == ["/one"]


def _rest(base_url: str) -> HttpClient:
    config = RestConfig.model_validate(
        {"base_url": base_url, "streams": [{"name": "items", "path": "/items"}],
         "retry": {"attempts": 3, "backoff_seconds": 0}}
    )  # fmt: skip
    return HttpClient(config)


def test_rest_connector_refuses_redirect_to_metadata_without_retrying(
    lenient: OutboundPolicy,
) -> None:
    with local_server(redirector("http://metadata.test/latest/")) as server:
        client = _rest(server.url)
        try:
            with pytest.raises(ConnectorError) as err:
                client.send(Request(f"{server.url}/go"))
        finally:
            client.close()
    assert isinstance(err.value, OutboundBlocked)
    assert "metadata.test (169.254.169.254) refused" in err.value.message
    assert [s.path for s in server.seen] == ["/go"]  # a refusal is not retried


def test_rest_connector_reaches_allowed_server(lenient: OutboundPolicy) -> None:
    with local_server(lambda req: (200, {}, b'[{"id": 1}]')) as server:
        client = _rest(server.url)
        try:
            response = client.send(Request(f"{server.url}/items"))
        finally:
            client.close()
    assert response.body == b'[{"id": 1}]'


def test_rest_oauth_token_endpoint_is_guarded(lenient: OutboundPolicy) -> None:
    config = RestConfig.model_validate(
        {"base_url": "http://127.0.0.1:9", "streams": [{"name": "items", "path": "/items"}],
         "auth": {"type": "oauth2", "token_url": "http://metadata.test/token",
                  "client_id": "c", "client_secret": "s"}}
    )  # fmt: skip
    client = HttpClient(config)
    try:
        with pytest.raises(OutboundBlocked, match=r"metadata\.test"):
            client.oauth.token()
    finally:
        client.close()


def test_oidc_discovery_is_guarded(lenient: OutboundPolicy) -> None:
    oidc = OidcClient(OidcConfig("http://metadata.test", "client", "secret", "https://x/cb"))
    with pytest.raises(OidcError) as err:
        oidc.metadata()
    assert str(err.value) == (
        "identity provider refused: outbound connection to metadata.test (169.254.169.254) "
        "refused: link-local / cloud metadata"
    )


def test_oidc_discovery_redirect_to_metadata_is_not_followed(lenient: OutboundPolicy) -> None:
    with local_server(redirector("http://169.254.169.254/")) as server:
        oidc = OidcClient(OidcConfig(f"{server.url}/go", "client", "secret", "https://x/cb"))
        with pytest.raises(OidcError, match="HTTPStatusError"):
            oidc.metadata()


def test_unix_socket_transport_is_refused() -> None:
    backend = outbound.GuardedBackend(OutboundPolicy())
    with pytest.raises(OutboundBlocked, match="unix socket"):
        backend.connect_unix_socket("/var/run/docker.sock")


def test_check_url_rejects_other_schemes() -> None:
    policy = OutboundPolicy.build(False, [], resolver)
    with pytest.raises(OutboundBlocked, match="only http and https"):
        policy.check_url("gopher://app.test/")
    policy.check_url("https://app.test/x")
    with pytest.raises(OutboundBlocked, match=r"cannot resolve nowhere\.test"):
        policy.check_url("https://nowhere.test/x")


def test_process_policy_comes_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGGREGATOR_OUTBOUND_STRICT", "true")
    monkeypatch.setenv("AGGREGATOR_OUTBOUND_ALLOW", '["10.0.0.0/8", "db.internal"]')
    outbound.configure(None)
    try:
        policy = outbound.current_policy()
        assert policy.strict
        assert policy.allow_networks == (ipaddress.ip_network("10.0.0.0/8"),)
        assert policy.allow_hosts == frozenset({"db.internal"})
    finally:
        outbound.configure(None)


def test_unresolvable_name_is_a_network_error_not_a_refusal(lenient: OutboundPolicy) -> None:
    """DNS failures stay retryable (httpx.ConnectError), unlike refusals."""
    with outbound.guarded_client(lenient) as client, pytest.raises(httpx.ConnectError) as err:
        client.get("http://nowhere.test/")
    assert str(err.value) == "cannot resolve nowhere.test: unknown test name nowhere.test"
