"""OpenID Connect login: authorization code flow with PKCE, state and nonce (Authlib).

The flow state (``state``, ``nonce``, PKCE verifier) travels in a short-lived signed
cookie, so any API process can finish a login another one started. The ID token is
verified against the provider's JWKS: issuer, audience, nonce and expiry.
"""

from __future__ import annotations

import hmac
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import authlib.deprecate  # noqa: F401 - installs its warning filter before ours below
import httpx
import jwt
from authlib.common.security import generate_token

from aggregator.security.outbound import OutboundBlocked, guarded_client, guarded_transport
from aggregator.settings import Settings

with warnings.catch_warnings():  # authlib deprecates authlib.jose (joserfc) and httpx (httpx2)
    warnings.simplefilter("ignore")
    from authlib.integrations.httpx_client import OAuth2Client
    from authlib.jose import JsonWebKey
    from authlib.jose import jwt as jose_jwt
    from authlib.jose.errors import JoseError

FLOW_AUDIENCE = "aggregator-oidc"
FLOW_MINUTES = 10


class OidcError(Exception):
    """The login could not be completed; the message is safe to show."""


@dataclass(frozen=True)
class OidcConfig:
    """Provider and client settings."""

    issuer: str
    client_id: str
    client_secret: str
    redirect_uri: str
    scope: str = "openid email profile"

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcConfig | None:
        """The configuration, or None when OIDC is not configured."""
        s = settings
        if not (
            s.oidc_issuer and s.oidc_client_id and s.oidc_client_secret and s.oidc_redirect_uri
        ):
            return None
        return cls(
            s.oidc_issuer.rstrip("/"),
            s.oidc_client_id,
            s.oidc_client_secret.get_secret_value(),
            s.oidc_redirect_uri,
        )


class OidcClient:
    """Talks to one provider; discovery and keys are fetched once and cached."""

    def __init__(self, config: OidcConfig) -> None:
        self.config = config
        self._metadata: dict[str, Any] | None = None

    def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (its issuer must match the configured one)."""
        if self._metadata is None:
            url = f"{self.config.issuer}/.well-known/openid-configuration"
            try:
                with guarded_client(timeout=10) as http:  # outbound (SSRF) guard
                    doc = http.get(url).raise_for_status().json()
            except OutboundBlocked as exc:
                raise OidcError(f"identity provider refused: {exc.message}") from None
            except (httpx.HTTPError, ValueError) as exc:
                raise OidcError(f"identity provider unavailable: {type(exc).__name__}") from None
            if str(doc.get("issuer", "")).rstrip("/") != self.config.issuer:
                raise OidcError("identity provider issuer mismatch")
            self._metadata = doc
        return self._metadata

    def _client(self) -> OAuth2Client:
        return OAuth2Client(
            client_id=self.config.client_id,
            client_secret=self.config.client_secret,
            scope=self.config.scope,
            redirect_uri=self.config.redirect_uri,
            code_challenge_method="S256",
            timeout=10,
            transport=guarded_transport(),
        )

    def start(self, signing_key: str) -> tuple[str, str]:
        """``(authorization URL, flow cookie value)``."""
        verifier, nonce = generate_token(64), generate_token(32)
        with self._client() as client:
            url, state = client.create_authorization_url(
                self.metadata()["authorization_endpoint"], nonce=nonce, code_verifier=verifier
            )
        now = datetime.now(UTC)
        flow = jwt.encode(
            {"aud": FLOW_AUDIENCE, "state": state, "nonce": nonce, "verifier": verifier,
             "iat": now, "exp": now + timedelta(minutes=FLOW_MINUTES)},
            signing_key, algorithm="HS256",
        )  # fmt: skip
        return str(url), flow

    def finish(self, signing_key: str, flow_cookie: str, code: str, state: str) -> dict[str, Any]:
        """Check state, exchange the code (with the PKCE verifier), verify the ID token."""
        try:
            flow = jwt.decode(
                flow_cookie, signing_key, algorithms=["HS256"], audience=FLOW_AUDIENCE
            )
        except jwt.PyJWTError:
            raise OidcError("login expired or started elsewhere; start again") from None
        if not hmac.compare_digest(str(flow["state"]), state):
            raise OidcError("state mismatch")
        meta = self.metadata()
        try:
            with self._client() as client:
                token = client.fetch_token(
                    meta["token_endpoint"], code=code, code_verifier=flow["verifier"]
                )
            with guarded_client(timeout=10) as http:
                keys = http.get(meta["jwks_uri"]).raise_for_status().json()
        except Exception as exc:  # network or OAuth error from the provider
            raise OidcError(f"token exchange failed: {type(exc).__name__}") from None
        if "id_token" not in token:
            raise OidcError("the provider returned no ID token")
        options = {
            "iss": {"essential": True, "value": self.config.issuer},
            "aud": {"essential": True, "value": self.config.client_id},
            "nonce": {"essential": True, "value": flow["nonce"]},
            "exp": {"essential": True},
        }
        try:
            claims = jose_jwt.decode(
                token["id_token"], JsonWebKey.import_key_set(keys), claims_options=options
            )
            claims.validate(leeway=60)
        except JoseError as exc:
            raise OidcError(f"invalid ID token: {exc.error}") from None
        result = dict(claims)
        if "email" not in result and meta.get("userinfo_endpoint"):
            result.update(self._userinfo(meta["userinfo_endpoint"], token, result["sub"]))
        return result

    @staticmethod
    def _userinfo(url: str, token: dict[str, Any], subject: str) -> dict[str, Any]:
        """Claims the provider keeps out of the ID token (the subject must match)."""
        try:
            with guarded_client(timeout=10) as http:
                bearer = {"Authorization": f"Bearer {token['access_token']}"}
                info = http.get(url, headers=bearer).raise_for_status().json()
        except (httpx.HTTPError, KeyError, ValueError, OutboundBlocked) as exc:
            raise OidcError(f"userinfo failed: {type(exc).__name__}") from None
        if info.get("sub") != subject:
            raise OidcError("userinfo subject mismatch")
        return {k: info[k] for k in ("email", "email_verified", "name") if k in info}
