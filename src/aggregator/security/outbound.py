"""Outbound guard (SSRF): which addresses the server may connect to on a user's behalf.

Every outbound HTTP client (REST connector, webhooks, OIDC discovery) is built with
:func:`guarded_transport`. Its network backend resolves the host name itself, checks
**every** address it resolved to, and connects to the checked address: a DNS answer that
changes between the check and the connect (rebinding) cannot slip through, and each
redirect hop opens its connection through the same check.

* Always refused: link-local (169.254.0.0/16, fe80::/10), cloud metadata endpoints
  (``fd00:ec2::254``, ``100.100.100.200``, ``168.63.129.16``, ``169.254.0.0/16``),
  unspecified, multicast and broadcast addresses; IPv4 embedded in IPv6 (mapped,
  NAT64, 6to4) is checked as IPv4.
* Strict mode (``AGGREGATOR_OUTBOUND_STRICT=true``, for shared deployments) also refuses
  every non-global address (loopback, private, CGNAT, ULA, reserved ...) unless
  ``AGGREGATOR_OUTBOUND_ALLOW`` lists it (CIDR blocks or host names).
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpcore
import httpx

from aggregator.core.errors import ConnectorError

if typing.TYPE_CHECKING:
    from aggregator.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]

#: Never reachable, whatever the mode or allow-list says.
ALWAYS_BLOCKED: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(net), why)
    for net, why in (
        ("169.254.0.0/16", "link-local / cloud metadata"),
        ("fe80::/10", "link-local"),
        ("fd00:ec2::254/128", "cloud metadata (AWS IPv6)"),
        ("100.100.100.200/32", "cloud metadata (Alibaba)"),
        ("168.63.129.16/32", "cloud platform endpoint (Azure wireserver)"),
        ("0.0.0.0/8", "unspecified"),
        ("::/128", "unspecified"),
        ("224.0.0.0/4", "multicast"),
        ("ff00::/8", "multicast"),
        ("255.255.255.255/32", "broadcast"),
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class OutboundBlocked(ConnectorError):
    """A destination the outbound policy refuses; the message names host and reason."""


class UnresolvableHost(OutboundBlocked):
    """The name did not resolve: nothing to judge (clients treat it as a network error)."""


def default_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (A and AAAA)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class OutboundPolicy:
    """What may be reached; ``resolver`` is replaceable (tests, custom DNS)."""

    strict: bool = False
    allow_networks: tuple[IPNetwork, ...] = ()
    allow_hosts: frozenset[str] = frozenset()
    resolver: Resolver = field(default=default_resolver, compare=False)
    #: Directories local files of API-made connections must stay in (empty: anywhere,
    #: except in strict mode: nowhere).
    data_dirs: tuple[Path, ...] = ()

    @classmethod
    def build(
        cls,
        strict: bool,
        allow: Iterable[str],
        resolver: Resolver | None = None,
        data_dirs: Iterable[Path] = (),
    ) -> OutboundPolicy:
        """A policy from an allow-list of CIDR blocks, addresses and host names."""
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for item in allow:
            item = item.strip()
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                hosts.add(item.lower().rstrip("."))
        dirs = tuple(Path(d).expanduser().resolve() for d in data_dirs)
        return cls(strict, tuple(networks), frozenset(hosts), resolver or default_resolver, dirs)

    def refusal(self, ip: IPAddress, host: str | None = None) -> str | None:
        """Why ``ip`` (reached as ``host``) is refused, or None when it is allowed."""
        ip = _unwrap(ip)
        for net, why in ALWAYS_BLOCKED:
            if ip.version == net.version and ip in net:
                return why
        if not self.strict or ip.is_global:
            return None
        if any(ip.version == n.version and ip in n for n in self.allow_networks):
            return None
        if host is not None and host.lower().rstrip(".") in self.allow_hosts:
            return None
        kind = "loopback" if ip.is_loopback else "private" if ip.is_private else "non-global"
        return f"{kind} address (strict outbound mode; add it to AGGREGATOR_OUTBOUND_ALLOW)"

    def check_ip(self, ip: str | IPAddress, host: str | None = None) -> IPAddress:
        """The address, or :class:`OutboundBlocked`."""
        address = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
        why = self.refusal(address, host)
        if why is not None:
            shown = host if host and host != str(address) else str(address)
            raise OutboundBlocked(f"outbound connection to {shown} ({address}) refused: {why}")
        return address

    def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Resolve ``host`` and check every address (one refused address refuses all)."""
        literal = _literal(host)
        if literal is not None:
            return [self.check_ip(literal, host)]
        try:
            found = self.resolver(host, port)
        except OSError as exc:
            raise UnresolvableHost(f"cannot resolve {host}: {exc.strerror or exc}") from None
        if not found:
            raise UnresolvableHost(f"cannot resolve {host}: no addresses")
        return [self.check_ip(a.split("%", 1)[0], host) for a in found]

    def check_host(self, host: str, port: int = 443) -> None:
        """Check a host (name or literal) before handing it to a client we do not guard."""
        self.resolve(host, port)

    def check_url(self, url: str) -> None:
        """Check the host of an ``http(s)`` URL."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise OutboundBlocked(f"only http and https URLs with a host are allowed: {url!r}")
        self.check_host(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def _unwrap(ip: IPAddress) -> IPAddress:
    """IPv4 carried inside IPv6 (mapped, NAT64, 6to4) is judged as that IPv4."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


# --- the process-wide policy ------------------------------------------------------------

_lock = threading.Lock()
_policy: OutboundPolicy | None = None


def policy_from_settings(settings: Settings) -> OutboundPolicy:
    """The policy the settings describe."""
    return OutboundPolicy.build(
        settings.outbound_strict, settings.outbound_allow, data_dirs=settings.data_dirs
    )


def configure(policy: OutboundPolicy | Settings | None) -> None:
    """Set the process-wide policy (``None``: read the settings again at next use)."""
    global _policy
    if policy is not None and not isinstance(policy, OutboundPolicy):
        policy = policy_from_settings(policy)
    with _lock:
        _policy = policy


def current_policy() -> OutboundPolicy:
    """The process-wide policy (from ``AGGREGATOR_OUTBOUND_*`` unless configured)."""
    global _policy
    with _lock:
        if _policy is None:
            from aggregator.settings import load_settings

            _policy = policy_from_settings(load_settings())
        return _policy


# --- httpx / httpcore integration -------------------------------------------------------


class GuardedBackend(httpcore.NetworkBackend):
    """An httpcore network backend that connects only to addresses the policy allows."""

    def __init__(self, policy: OutboundPolicy | None = None) -> None:
        self._policy = policy
        self._inner = httpcore.SyncBackend()

    @property
    def policy(self) -> OutboundPolicy:
        """The fixed policy, or the process-wide one at the time of each connect."""
        return self._policy or current_policy()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        """Resolve, check every address, connect to the first checked one that answers."""
        try:
            addresses = self.policy.resolve(host, port)
        except UnresolvableHost as exc:  # a network error, retried like httpx's own
            raise httpcore.ConnectError(exc.message) from None
        last: Exception | None = None
        for address in addresses:
            try:
                return self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        raise last or httpcore.ConnectError(f"cannot resolve {host}: no addresses")

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        """Unix sockets are local resources: never through a guarded client."""
        raise OutboundBlocked(f"outbound connection to the unix socket {path} refused")

    def sleep(self, seconds: float) -> None:
        """Delegate to the default backend."""
        self._inner.sleep(seconds)


def guarded_transport(
    policy: OutboundPolicy | None = None, **kwargs: typing.Any
) -> httpx.HTTPTransport:
    """An ``httpx.HTTPTransport`` whose connections pass the outbound policy.

    ``policy=None`` uses the process-wide policy at connect time. Giving a client this
    transport also stops httpx from routing through proxies named in the environment (a
    proxy would do its own resolving, out of our sight).
    """
    transport = httpx.HTTPTransport(**kwargs)
    pool = transport._pool  # httpcore.ConnectionPool; the backend is read at each connect
    pool._network_backend = GuardedBackend(policy)
    return transport


def guarded_client(policy: OutboundPolicy | None = None, **kwargs: typing.Any) -> httpx.Client:
    """An ``httpx.Client`` whose every connection (redirects included) is checked."""
    return httpx.Client(transport=guarded_transport(policy), **kwargs)
