"""Shared helpers of the API tests: an app over a given store, users per role, tokens."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from fastapi import FastAPI
from pydantic import SecretStr

from aggregator.api import create_app
from aggregator.connectors import registry
from aggregator.connectors.sdk import CheckResult, ConnectorConfig, Source
from aggregator.core.catalog import Catalog
from aggregator.metadata.control_models import User
from aggregator.metadata.store import MetadataStore
from aggregator.security import identity, mfa, passwords, tokens
from aggregator.security.rbac import Role
from aggregator.settings import Settings

with warnings.catch_warnings():
    # Starlette 1.x asks for `httpx2`; the httpx-based client works the same for our tests.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

passwords.use_parameters(time_cost=1, memory_cost=1024)
PASSWORD = "Correct-Horse-Battery-9"
SECRET = "s3cr3t-Pa55word-XYZZY"


class VaultConfig(ConnectorConfig):
    """A config with a secret, nested and top-level."""

    host: str = "db.internal"
    password: SecretStr
    fail: bool = False


class VaultSource(Source[VaultConfig]):
    """A source whose check echoes its password (a careless connector) to test scrubbing."""

    name: ClassVar[str] = "test_vault"
    config_model = VaultConfig

    def check(self) -> CheckResult:
        secret = self.config.password.get_secret_value()
        if self.config.fail:
            raise RuntimeError(f"login failed for password {secret}")
        return CheckResult(False, f"authentication failed with password {secret}")

    def discover(self) -> Catalog:
        return Catalog(())

    def read(self, stream: Any, state: Any) -> Any:
        return iter(())


if not any(c.name == "test_vault" for c in registry.all_connectors()):
    registry.register(VaultSource)


@dataclass
class Api:
    """A test client plus direct access to the store and per-role users."""

    app: FastAPI
    client: TestClient
    store: MetadataStore
    users: dict[str, User] = field(default_factory=dict)
    admin_totp: str = ""

    def token(self, role: str) -> str:
        """A fresh access token for the user with ``role``."""
        user = self.users[role]
        with self.store.session() as s:
            session, _ = identity.start_session(s, user, 1, "127.0.0.1", "test")
            s.commit()
        platform = self.app.state.platform
        return tokens.issue_access_token(platform.jwt_key, user.id, session.id, 5)

    def headers(self, role: str) -> dict[str, str]:
        """Bearer headers for ``role``."""
        return {"Authorization": f"Bearer {self.token(role)}"}

    def login(self, email: str, password: str = PASSWORD) -> Any:
        """POST /auth/login."""
        return self.client.post("/api/v1/auth/login", json={"email": email, "password": password})


def make_api(home: Path, store: MetadataStore, **overrides: Any) -> Api:
    """An app on ``store`` with one user per role (``<role>@example.com``)."""
    settings = Settings(home=home, cookie_secure=True, **overrides)
    app = create_app(settings, store)
    client = TestClient(app, base_url="https://testserver")
    api = Api(app, client, store)
    with store.session() as s:
        for role in Role:
            api.users[role.value] = identity.create_user(
                s, f"{role.value}@example.com", PASSWORD, role.value
            )
        admin = api.users["admin"]  # admins need MFA: enrol the test admin directly
        api.admin_totp, _ = mfa.begin_setup(s, app.state.platform.box, admin)
        admin.mfa_enabled = True
        s.commit()
    return api
