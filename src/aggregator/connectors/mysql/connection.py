"""Connection settings for MySQL / MariaDB; driver errors become messages without secrets."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pymysql  # type: ignore[import-untyped]
from pydantic import Field, SecretStr, model_validator

from aggregator.connectors.sdk import ConnectorConfig
from aggregator.core.errors import ConnectorError


class MySQLConnection(ConnectorConfig):
    """How to reach the server: a ``url`` or the separate fields."""

    url: SecretStr | None = Field(
        None, description="mysql://user:password@host:port/database (overrides the fields)."
    )
    host: str = Field("localhost", description="Server host name or address.")
    port: int = Field(3306, gt=0, lt=65536, description="Server port.")
    database: str | None = Field(None, description="Database (schema) name.")
    user: str = Field("root", description="User name.")
    password: SecretStr | None = Field(None, description="Password (kept secret in logs).")
    connect_timeout: int = Field(10, gt=0, description="Seconds to wait for a connection.")

    @model_validator(mode="after")
    def _url_scheme(self) -> MySQLConnection:
        if self.url is not None:
            scheme = urlsplit(self.url.get_secret_value()).scheme
            if scheme not in ("mysql", "mariadb", "mysql+pymysql"):
                raise ValueError("url must start with mysql:// or mariadb://")
        return self

    def params(self) -> dict[str, Any]:
        """Keyword arguments for ``pymysql.connect``."""
        if self.url is not None:
            parts = urlsplit(self.url.get_secret_value())
            db = unquote(parts.path.lstrip("/")) or self.database
            return {
                "host": parts.hostname or "localhost",
                "port": parts.port or 3306,
                "user": unquote(parts.username or "root"),
                "password": unquote(parts.password or ""),
                "database": db,
            }
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password.get_secret_value() if self.password else "",
            "database": self.database,
        }

    def cx_url(self) -> str:
        """``mysql://`` URL for connectorx (user and password percent-encoded)."""
        p = self.params()
        auth = quote(p["user"], safe="") + (
            ":" + quote(p["password"], safe="") if p["password"] else ""
        )
        return f"mysql://{auth}@{p['host']}:{p['port']}/{quote(p['database'] or '', safe='')}"

    def where(self) -> str:
        """``host:port/database`` for messages."""
        p = self.params()
        return f"{p['host']}:{p['port']}/{p['database'] or ''}"

    def redact(self, text: str) -> str:
        """``text`` without the password."""
        secret = self.params()["password"]
        return text.replace(secret, "***") if secret else text

    def connect(self, **kwargs: Any) -> Any:
        """A pymysql connection with UTC session time zone and utf8mb4."""
        try:
            con = pymysql.connect(
                **self.params(),
                charset="utf8mb4",
                connect_timeout=self.connect_timeout,
                autocommit=True,
                init_command="SET time_zone = '+00:00'",
                **kwargs,
            )
        except pymysql.MySQLError as exc:
            raise self.error(exc) from None
        return con

    def error(self, exc: BaseException, doing: str = "connect to") -> ConnectorError:
        """Translate a driver error into a message that says what to fix."""
        text = self.redact(str(exc))
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
        if code == 1045:
            hint = "check user and password"
        elif code in (2003, 2005, 2013):
            hint = "check host and port, and that the server is running and reachable"
        elif code == 1049:
            hint = "check the database name"
        else:
            hint = "see the server's message"
        return ConnectorError(f"cannot {doing} MySQL at {self.where()}: {hint} ({text})")
