"""Connection settings shared by the PostgreSQL source and destination.

A config gives either a ``url`` or host/port/database/user/password/sslmode. Errors from
the driver are turned into :class:`ConnectorError` messages that say what to fix and never
contain the password.
"""

from __future__ import annotations

import sys
import threading
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import psycopg
from pydantic import Field, SecretStr, model_validator

from aggregator.connectors.sdk import ConnectorConfig
from aggregator.core.errors import ConfigError, ConnectorError


class PostgresConnection(ConnectorConfig):
    """How to reach the server: a ``url`` or the separate fields."""

    url: SecretStr | None = Field(
        None, description="postgresql://user:password@host:port/database (overrides the fields)."
    )
    host: str = Field("localhost", description="Server host name or address.")
    port: int = Field(5432, gt=0, lt=65536, description="Server port.")
    database: str = Field("postgres", description="Database name.")
    user: str = Field("postgres", description="User name.")
    password: SecretStr | None = Field(None, description="Password (kept secret in logs).")
    sslmode: str | None = Field(
        None, description="libpq sslmode: disable, prefer, require, verify-ca, verify-full."
    )
    connect_timeout: int = Field(10, gt=0, description="Seconds to wait for a connection.")

    @model_validator(mode="after")
    def _url_scheme(self) -> PostgresConnection:
        if self.url is not None:
            scheme = urlsplit(self.url.get_secret_value()).scheme
            if scheme not in ("postgresql", "postgres"):
                raise ValueError("url must start with postgresql://")
        return self

    def uri(self) -> str:
        """A libpq URI (with the password) for psycopg and ADBC."""
        if self.url is not None:
            base = self.url.get_secret_value()
        else:
            auth = quote(self.user, safe="")
            if self.password is not None:
                auth += ":" + quote(self.password.get_secret_value(), safe="")
            base = f"postgresql://{auth}@{quote(self.host, safe='')}:{self.port}/"
            base += quote(self.database, safe="")
        params = [f"connect_timeout={self.connect_timeout}", "application_name=aggregator"]
        if self.sslmode:
            params.append(f"sslmode={self.sslmode}")
        return base + ("&" if "?" in base else "?") + "&".join(params)

    def secret(self) -> str | None:
        """The password, wherever it was given (to redact it from messages)."""
        if self.password is not None:
            return self.password.get_secret_value()
        if self.url is not None:
            password = urlsplit(self.url.get_secret_value()).password
            return unquote(password) if password else None
        return None

    def where(self) -> str:
        """``host:port/database`` for messages (no credentials)."""
        if self.url is not None:
            parts = urlsplit(self.url.get_secret_value())
            return f"{parts.hostname}:{parts.port or 5432}{parts.path or '/'}"
        return f"{self.host}:{self.port}/{self.database}"

    def redact(self, text: str) -> str:
        """``text`` with the password replaced by ``***``."""
        secret = self.secret()
        if secret:
            text = text.replace(secret, "***").replace(quote(secret, safe=""), "***")
        return text

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        """A psycopg connection; failures become errors that say what to fix."""
        try:
            return psycopg.connect(self.uri(), **kwargs)
        except psycopg.Error as exc:
            raise self.error(exc) from None

    def error(self, exc: BaseException, doing: str = "connect to") -> ConnectorError:
        """Translate a driver error into a message without the password."""
        text = self.redact(str(exc).strip())
        low = text.lower()
        if "password authentication failed" in low or "no password supplied" in low:
            hint = "check user and password"
        elif "connection refused" in low or "could not translate host" in low or "timeout" in low:
            hint = "check host and port, and that the server is running and reachable"
        elif "does not exist" in low and "database" in low:
            hint = "check the database name"
        else:
            hint = "see the server's message"
        return ConnectorError(f"cannot {doing} PostgreSQL at {self.where()}: {hint} ({text})")


_ADBC_LOCK = threading.Lock()


def adbc_dbapi() -> Any:
    """``adbc_driver_postgresql.dbapi``, imported without its optional polars backend.

    The ADBC driver manager imports polars whenever it is installed (0.3-0.5 s), only to
    offer polars parameter binding, which we never use; hiding it during the import keeps
    that out of every run. Other code importing polars later is unaffected.
    """
    with _ADBC_LOCK:
        if "adbc_driver_postgresql.dbapi" not in sys.modules and "polars" not in sys.modules:
            sys.modules["polars"] = None  # type: ignore[assignment]  # makes `import polars` fail
            try:
                import adbc_driver_postgresql.dbapi  # type: ignore[import-untyped]  # noqa: F401
            finally:
                del sys.modules["polars"]
        import adbc_driver_postgresql.dbapi as dbapi

    return dbapi


def check_identifier_list(values: list[str] | None, key: str) -> None:
    """Reject empty names early with a pointed message."""
    for value in values or []:
        if not value.strip():
            raise ConfigError(f"{key}: empty name")
