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

from aggregator.connectors.postgres.pool import Pool
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
    pool_size: int = Field(
        8,
        ge=2,  # a CDC read holds one psycopg connection while its snapshot plans with another
        le=64,
        description="Connections per driver (psycopg, ADBC) kept open and reused within a "
        "run, at most; covers `parallel` readers and the streams read or written at once.",
    )

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
        params = [f"connect_timeout={self.connect_timeout}"]
        if "application_name=" not in urlsplit(base).query:  # the url's own name wins
            params.append("application_name=aggregator")
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


class Pools:
    """The pooled connections of one source or destination session: psycopg (catalog,
    bookkeeping, replication-slot queries) and ADBC (bulk reads and loads)."""

    def __init__(self, config: PostgresConnection, owner: str) -> None:
        self.config = config
        self.owner = owner
        self._lock = threading.Lock()
        self._psycopg: Pool[psycopg.Connection[Any]] | None = None
        self._adbc: Pool[Any] | None = None
        self._adbc_origin: Any = None  # the ADBC connection others are cloned from
        self._origin_lock = threading.Lock()

    @property
    def psycopg(self) -> Pool[psycopg.Connection[Any]]:
        """Autocommit psycopg connections."""
        with self._lock:
            if self._psycopg is None:
                self._psycopg = Pool(
                    f"{self.owner} at {self.config.where()}",
                    self.config.pool_size,
                    lambda: self.config.connect(autocommit=True),
                    _check_psycopg,
                    _reset_psycopg,
                    lambda con: con.close(),
                )
            return self._psycopg

    @property
    def adbc(self) -> Pool[Any]:
        """ADBC connections, each inside a transaction (``rollback`` starts the next)."""
        with self._lock:
            if self._adbc is None:
                self._adbc = Pool(
                    f"{self.owner} at {self.config.where()}",
                    self.config.pool_size,
                    self._connect_adbc,
                    _check_adbc,
                    lambda con: con.rollback(),
                    lambda con: con.close(),
                )
            return self._adbc

    def _connect_adbc(self) -> Any:
        """A new ADBC connection; after the first, a clone sharing its driver database
        (ADBC opens an extra server connection per database to load the type catalog)."""
        try:
            with self._origin_lock:  # concurrent first borrowers wait for one origin
                origin = self._adbc_origin
                if origin is not None and not getattr(origin, "_closed", True):
                    return origin.adbc_clone()
                self._adbc_origin = adbc_dbapi().connect(self.config.uri(), autocommit=False)
                return self._adbc_origin
        except Exception as exc:
            raise self.config.error(exc) from None

    def close(self) -> None:
        """Close both pools (connections still lent out close when given back)."""
        with self._lock:
            pools = [p for p in (self._psycopg, self._adbc) if p is not None]
        for pool in pools:
            pool.close()


def _check_psycopg(con: psycopg.Connection[Any]) -> None:
    con.execute("SELECT 1").fetchall()


def _reset_psycopg(con: psycopg.Connection[Any]) -> None:
    if con.closed or con.broken:
        raise ConnectorError("connection lost")
    if con.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        con.execute("ROLLBACK")


def _check_adbc(con: Any) -> None:
    cur = con.cursor()
    try:
        cur.execute("SELECT 1")
        cur.fetchall()
    finally:
        cur.close()
    con.rollback()


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
