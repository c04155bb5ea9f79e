"""Connections: create, change, delete, check and discover; secrets encrypted at rest."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from aggregator.api.errors import ApiError
from aggregator.api.schemas import CheckPublic, ConnectionCreate, ConnectionUpdate
from aggregator.api.services import secrets as sec
from aggregator.connectors import registry
from aggregator.connectors.sdk import Connector, Source
from aggregator.core.errors import AggregatorError, ConfigError
from aggregator.metadata.control_models import Connection
from aggregator.security import audit, outbound
from aggregator.security.connstrings import check_connection_config
from aggregator.security.crypto import SecretBox


def aad(connection_id: str) -> str:
    """Associated data binding a ciphertext to its connection."""
    return f"connection:{connection_id}"


def get(s: Session, workspace_id: str, connection_id: str) -> Connection:
    """A connection of the workspace, or 404."""
    row = s.get(Connection, connection_id)
    if row is None or row.workspace_id != workspace_id:
        raise ApiError(404, "not_found", "no such connection")
    return row


def by_name(s: Session, workspace_id: str, name: str) -> Connection:
    """A connection of the workspace by name, or 422 (used by pipeline references)."""
    row = s.scalar(
        select(Connection).where(Connection.workspace_id == workspace_id, Connection.name == name)
    )
    if row is None:
        raise ApiError(422, "invalid_spec", f"no connection named {name!r}")
    return row


def _validated(connector: str, kind: str, config: dict[str, Any]) -> dict[str, Any]:
    cls = registry.get(connector, kind).cls
    cls.from_config(config)  # raises ConfigError naming the field, without the value
    guard = outbound.current_policy()  # hosts, driver parameters, paths (docs/security.md)
    try:
        check_connection_config(connector, config, guard)
    except ConfigError as exc:
        raise ApiError(422, "unsafe_config", exc.message) from None
    return sec.redact(config, cls.config_model)


def create(
    s: Session, box: SecretBox, ctx: audit.AuditContext, workspace_id: str, body: ConnectionCreate
) -> Connection:
    """Validate, encrypt and store a new connection."""
    redacted = _validated(body.connector, body.kind, body.config)
    if s.scalar(
        select(Connection.id).where(
            Connection.workspace_id == workspace_id, Connection.name == body.name
        )
    ):
        raise ApiError(409, "conflict", f"a connection named {body.name!r} exists")
    now = datetime.now(UTC)
    cid = str(uuid.uuid4())
    row = Connection(
        id=cid,
        workspace_id=workspace_id,
        name=body.name,
        connector=body.connector,
        kind=body.kind,
        config=redacted,
        secrets_ciphertext=box.encrypt_json(body.config, aad(cid)),
        created_by=ctx.actor,
        created_at=now,
        updated_at=now,
    )
    s.add(row)
    audit.append(
        s, ctx, "connection.created", object_type="connection", object_id=cid,
        details={"name": body.name, "connector": body.connector, "config": redacted},
    )  # fmt: skip
    s.commit()
    return row


def update(
    s: Session, box: SecretBox, ctx: audit.AuditContext, row: Connection, body: ConnectionUpdate
) -> Connection:
    """Rename or reconfigure; masked secrets keep their stored values."""
    before = {"name": row.name, "config": row.config}
    if body.name is not None:
        row.name = body.name
    if body.config is not None:
        full = sec.keep_masked(body.config, box.decrypt_json(row.secrets_ciphertext, aad(row.id)))
        row.config = _validated(row.connector, row.kind, full)
        row.secrets_ciphertext = box.encrypt_json(full, aad(row.id))
    row.updated_at = datetime.now(UTC)
    audit.append(
        s, ctx, "connection.updated", object_type="connection", object_id=row.id,
        details={"before": before, "after": {"name": row.name, "config": row.config}},
    )  # fmt: skip
    s.commit()
    return row


def delete(s: Session, ctx: audit.AuditContext, row: Connection) -> None:
    """Remove a connection."""
    audit.append(
        s, ctx, "connection.deleted", object_type="connection", object_id=row.id,
        details={"name": row.name},
    )  # fmt: skip
    s.delete(row)
    s.commit()


def decrypted_config(box: SecretBox, row: Connection) -> dict[str, Any]:
    """The clear configuration (only ever held in memory)."""
    config: dict[str, Any] = box.decrypt_json(row.secrets_ciphertext, aad(row.id))
    return config


def _instance(box: SecretBox, row: Connection) -> tuple[Connector[Any], list[str]]:
    config = decrypted_config(box, row)
    cls = registry.get(row.connector, row.kind).cls
    return cls.from_config(config), sec.secret_values(config, row.config)


def check(box: SecretBox, row: Connection) -> CheckPublic:
    """Run the connector's check; secrets are scrubbed from its message."""
    config = decrypted_config(box, row)  # DecryptionError: a server problem, not a check result
    secrets = sec.secret_values(config, row.config)
    try:
        connector = registry.get(row.connector, row.kind).cls.from_config(config)
        result = connector.check()
        return CheckPublic(ok=result.ok, message=sec.scrub(result.message, secrets))
    except AggregatorError as exc:
        return CheckPublic(ok=False, message=sec.scrub(exc.message, secrets))
    except Exception as exc:
        return CheckPublic(ok=False, message=sec.scrub(f"{type(exc).__name__}: {exc}", secrets))


def discover(box: SecretBox, row: Connection) -> dict[str, Any]:
    """The source's catalog."""
    if row.kind != "source":
        raise ApiError(422, "not_a_source", "only source connections can be discovered")
    connector, secrets = _instance(box, row)
    assert isinstance(connector, Source)
    try:
        return connector.discover().to_json()
    except AggregatorError as exc:
        raise ApiError(422, "discover_failed", sec.scrub(exc.message, secrets)) from None
