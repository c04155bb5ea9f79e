"""Checks of connection configs made through the API: hosts, driver parameters, paths.

A connection string can do more than name a server: libpq reads key and password files
(``sslkey``, ``passfile``, ``service``/``servicefile``), MySQL clients run
``init_command`` and read local files (``local_infile``), SQLite URIs pick a VFS, and a
"path" can point anywhere the server process can read or write. Connections created
through the API are held to:

* **PostgreSQL** ``url`` query parameters: only :data:`PG_ALLOWED_PARAMS`; hosts in the URL,
  in ``host``/``hostaddr`` parameters and in the ``host`` field are checked by the outbound
  policy (a unix-socket directory counts as loopback).
* **MySQL/MariaDB** ``url``: no query parameters at all (the connector passes none to the
  driver; ``local_infile``, ``init_command``, ``read_default_file`` ... are refused by
  name); hosts checked.
* **SQLite / DuckDB / files** paths: a ``file:`` URI may carry only ``mode``, ``cache`` and
  ``immutable`` (never ``vfs``); with ``AGGREGATOR_DATA_DIRS`` set (required in strict
  mode) local paths must resolve inside one of those directories; ``http(s)`` URLs are
  checked by the outbound policy.
* **REST** ``base_url`` and an absolute OAuth2 ``token_url``: checked by the policy.
* **Singer / Airbyte** in strict mode: a plugin name, not an executable path.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from aggregator.core.errors import ConfigError
from aggregator.security.outbound import OutboundBlocked, OutboundPolicy, UnresolvableHost

#: libpq URI parameters accepted from API users (everything else is refused).
PG_ALLOWED_PARAMS = frozenset(
    {
        "sslmode", "connect_timeout", "application_name", "target_session_attrs",
        "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count",
        "tcp_user_timeout", "channel_binding", "gssencmode", "sslnegotiation",
        "client_encoding", "load_balance_hosts", "require_auth", "host", "hostaddr", "port",
        "dbname", "user", "password",
    }
)  # fmt: skip
#: Named in the error message when refused (the allow-list refuses them anyway).
PG_DANGEROUS_PARAMS = frozenset(
    {
        "sslkey", "sslcert", "sslrootcert", "sslcrl", "sslcrldir", "sslpassword",
        "sslkeylogfile", "passfile", "service", "servicefile", "krbsrvname", "gsslib",
        "requirepeer", "options",
    }
)  # fmt: skip
MYSQL_DANGEROUS_PARAMS = frozenset(
    {
        "local_infile", "init_command", "read_default_file", "read_default_group",
        "unix_socket", "ssl_key", "ssl_cert", "ssl_ca", "plugin_dir", "auth_plugin_map",
    }
)  # fmt: skip
SQLITE_URI_PARAMS = frozenset({"mode", "cache", "immutable"})
_REMOTE_FS = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "hf", "md", "motherduck")


def check_connection_config(connector: str, config: dict[str, Any], policy: OutboundPolicy) -> None:
    """Raise :class:`ConfigError` naming the field when ``config`` is unsafe to run."""
    checker = _Checker(policy, list(policy.data_dirs))
    try:
        if connector == "postgres":
            checker.postgres(config)
        elif connector == "mysql":
            checker.mysql(config)
        elif connector in ("sqlite", "duckdb"):
            checker.path("path", config.get("path"))
        elif connector == "files":
            for i, stream in enumerate(config.get("streams") or []):
                if isinstance(stream, dict):
                    checker.path(f"streams[{i}].path", stream.get("path"))
            checker.path("path", config.get("path"))
        elif connector == "rest":
            checker.rest(config)
        elif connector in ("singer", "airbyte"):
            checker.program(config)
    except OutboundBlocked as exc:
        raise ConfigError(f"config.{checker.field}: {exc.message}") from None


class _Checker:
    def __init__(self, policy: OutboundPolicy, data_dirs: list[Path]) -> None:
        self.policy = policy
        self.data_dirs = data_dirs
        self.field = ""

    def fail(self, field: str, message: str) -> ConfigError:
        return ConfigError(f"config.{field}: {message}")

    def host(self, field: str, host: str, port: int) -> None:
        """Check a database host: literal or resolvable names; unresolvable ones pass."""
        self.field = field
        host = host.strip()
        if not host or host.startswith(("/", "@")):
            # a unix socket: a local resource, like loopback
            if self.policy.strict:
                raise self.fail(field, "unix sockets are refused in strict outbound mode")
            return
        # a name that does not resolve will not resolve for the driver either: it passes
        with contextlib.suppress(UnresolvableHost):
            self.policy.resolve(host, port)

    def postgres(self, config: dict[str, Any]) -> None:
        url = _secret_text(config.get("url"))
        host = config.get("host", None if url else "localhost")  # the connector's default
        if isinstance(host, str):
            for part in host.split(","):
                self.host("host", part, int(config.get("port") or 5432))
        if not url:
            return
        parts = urlsplit(url)
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if name not in PG_ALLOWED_PARAMS:
                why = "reads local files or runs commands" if name in PG_DANGEROUS_PARAMS else ""
                raise self.fail(
                    "url", f"the libpq parameter {name!r} is not allowed {why}".rstrip()
                )
            if name in ("host", "hostaddr"):
                for part in value.split(","):
                    self.host(f"url ({name})", part, 5432)
        netloc = parts.netloc.rsplit("@", 1)[-1]
        for hostport in netloc.split(","):
            host, port = _split_hostport(unquote(hostport), 5432)
            if host or not any(k == "host" for k, _ in parse_qsl(parts.query)):
                self.host("url", host, port)

    def mysql(self, config: dict[str, Any]) -> None:
        url = _secret_text(config.get("url"))
        host = config.get("host", None if url else "localhost")  # the connector's default
        if isinstance(host, str):
            self.host("host", host, int(config.get("port") or 3306))
        if not url:
            return
        parts = urlsplit(url)
        for name, _ in parse_qsl(parts.query, keep_blank_values=True):
            why = " (reads local files or runs commands)" if name in MYSQL_DANGEROUS_PARAMS else ""
            raise self.fail("url", f"the MySQL URL parameter {name!r} is not allowed{why}")
        self.host("url", parts.hostname or "localhost", parts.port or 3306)

    def rest(self, config: dict[str, Any]) -> None:
        self.field = "base_url"
        base = config.get("base_url")
        if isinstance(base, str):
            self.policy.check_url(base)
        auth = config.get("auth")
        token_url = auth.get("token_url") if isinstance(auth, dict) else None
        if isinstance(token_url, str) and "://" in token_url:
            self.field = "auth.token_url"
            self.policy.check_url(token_url)

    def program(self, config: dict[str, Any]) -> None:
        for key in ("tap", "connector"):
            value = config.get(key)
            if self.policy.strict and isinstance(value, str) and ("/" in value or "\\" in value):
                raise self.fail(
                    key, "strict outbound mode runs installed plugins only, not executable paths"
                )

    def path(self, field: str, value: Any) -> None:
        """A database file or data path: local paths stay in the data dirs."""
        if not isinstance(value, str) or value in ("", ":memory:"):
            return
        self.field = field
        if value.startswith("file:"):
            value = self._sqlite_uri(field, value)
        elif "://" in value:
            scheme = value.split("://", 1)[0].lower()
            if scheme in ("http", "https"):
                self.policy.check_url(value)
                return
            if scheme in _REMOTE_FS:
                return
            if scheme != "file":
                raise self.fail(field, f"the URL scheme {scheme!r} is not allowed")
            value = unquote(urlsplit(value).path)
        self._local(field, value)

    def _sqlite_uri(self, field: str, value: str) -> str:
        parts = urlsplit(value)
        for name, mode in parse_qsl(parts.query, keep_blank_values=True):
            if name not in SQLITE_URI_PARAMS:
                raise self.fail(field, f"the file: URI parameter {name!r} is not allowed")
            if name == "mode" and mode == "memory":
                return ":memory:"
        if parts.netloc not in ("", "localhost"):
            raise self.fail(field, "a file: URI names a local file (file:/path or file:path)")
        return unquote(parts.path)

    def _local(self, field: str, value: str) -> None:
        if not self.data_dirs:
            if self.policy.strict:
                raise self.fail(
                    field, "set AGGREGATOR_DATA_DIRS to use local files in strict outbound mode"
                )
            return
        resolved = Path(value).expanduser().resolve()
        if not any(resolved.is_relative_to(d) for d in self.data_dirs):
            raise self.fail(field, "the path is outside the allowed data directories")


def _secret_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    getter = getattr(value, "get_secret_value", None)
    return str(getter()) if getter else ""


def _split_hostport(hostport: str, default: int) -> tuple[str, int]:
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        port = rest.lstrip(":")
    else:
        host, _, port = hostport.partition(":")
    return host, int(port) if port.isdigit() else default
