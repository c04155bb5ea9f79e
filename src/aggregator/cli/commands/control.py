"""Control-plane commands: ``api``, ``users create-admin``, ``secrets ...``, ``audit verify``."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from aggregator.core.errors import AggregatorError

# SQLAlchemy, the control-plane models and the security modules load when a command runs,
# not when the CLI starts (see tests/unit/test_startup.py).
if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from aggregator.metadata.store import MetadataStore
    from aggregator.security import audit, crypto
    from aggregator.settings import Settings

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
users_app = typer.Typer(help="Users of the API and UI.", no_args_is_help=True)
secrets_app = typer.Typer(help="Encryption keys of secrets at rest.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit trail.", no_args_is_help=True)


def _settings() -> Settings:
    from aggregator.settings import load_settings

    try:
        return load_settings()
    except ValueError as exc:  # production refuses placeholder secrets
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None


def _store(settings: Settings) -> MetadataStore:
    from aggregator.metadata.store import MetadataStore

    return MetadataStore(settings.metadata_database_url())


def _cli_context() -> audit.AuditContext:
    from aggregator.security import audit

    return audit.AuditContext(actor=f"cli:{getpass.getuser()}")


def api(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
) -> None:
    """Serve the REST API (OpenAPI at /api/v1/openapi.json)."""
    import uvicorn

    settings = _settings()
    _store(settings).engine.dispose()  # migrate once, before workers start
    uvicorn.run(
        "aggregator.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        # A worker imports the whole app before answering the supervisor's first ping:
        # uvicorn's 5 s default kills and respawns workers forever on a loaded machine.
        timeout_worker_healthcheck=120,
        proxy_headers=settings.trust_forwarded_for,
        server_header=False,
        log_level=settings.log_level,
    )


@users_app.command("create-admin")
def create_admin(
    email: Annotated[str, typer.Option(help="The admin's email (login name).")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
) -> None:
    """Create an admin user. The password is prompted for (or read from stdin), never an arg."""
    from aggregator.security import audit, identity

    settings = _settings()
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    store = _store(settings)
    try:
        with store.session() as s:
            user = identity.create_user(s, email, password, "admin")
            audit.append(
                s, _cli_context(), "user.created", object_type="user", object_id=user.id,
                details={"email": user.email, "role": "admin"},
            )  # fmt: skip
            s.commit()
    except identity.IdentityError as exc:
        err.print(f"[red]error:[/red] {exc.message}", highlight=False)
        raise typer.Exit(2) from None
    finally:
        store.engine.dispose()
    out.print(f"created admin {user.email}")


@secrets_app.command("generate-key")
def generate_key(
    output: Annotated[Path | None, typer.Option(help="Write the key to this file (0600).")] = None,
) -> None:
    """Make a new AES-256 key (for AGGREGATOR_ENCRYPTION_KEY or a key file)."""
    from aggregator.security import crypto

    key = crypto.generate_key()
    if output is None:
        sys.stdout.write(crypto.encode_key(key) + "\n")
        return
    crypto.write_key_file(output, key)
    out.print(f"wrote key {crypto.key_id(key)} to {output}")


@secrets_app.command("rotate-key")
def rotate_key(
    new_key_file: Annotated[
        Path | None,
        typer.Option(help="Where to write the new key (needed when the key is set inline)."),
    ] = None,
) -> None:
    """Re-encrypt every stored secret with a new key, in one transaction.

    The new key is written to ``<key file>.new`` first and moved over the key file only
    after the database commit; a crash in between leaves both keys loadable.
    """
    from aggregator.security import audit, crypto

    settings = _settings()
    try:
        old = crypto.load_box(settings)
    except AggregatorError as exc:
        err.print(f"[red]error:[/red] {exc.message}", highlight=False)
        raise typer.Exit(2) from None
    if settings.encryption_key is not None and new_key_file is None:
        err.print("[red]error:[/red] the key is set inline; pass --new-key-file", highlight=False)
        raise typer.Exit(2)
    target = new_key_file or crypto.key_file(settings)
    pending = target.with_name(target.name + ".new")
    key = crypto.generate_key()
    crypto.write_key_file(pending, key, settings)  # wrapped by Vault when configured
    new = crypto.SecretBox(key)
    store = _store(settings)
    try:
        with store.session() as s:
            count = _reencrypt(s, old, new)
            audit.append(
                s, _cli_context(), "secrets.key_rotated",
                details={"from": old.primary_id, "to": new.primary_id, "secrets": count},
            )  # fmt: skip
            s.commit()
    finally:
        store.engine.dispose()
    pending.replace(target)
    out.print(f"re-encrypted {count} secret(s): key {old.primary_id} -> {new.primary_id}")
    if new_key_file is not None:
        out.print(f"point AGGREGATOR_ENCRYPTION_KEY_FILE at {target} before restarting")


def _reencrypt(s: Session, old: crypto.SecretBox, new: crypto.SecretBox) -> int:
    from sqlalchemy import select

    from aggregator.metadata.control_models import Connection, User

    count = 0
    for row in s.scalars(select(Connection)):
        aad = f"connection:{row.id}"
        row.secrets_ciphertext = new.encrypt(old.decrypt(row.secrets_ciphertext, aad), aad)
        count += 1
    for user in s.scalars(select(User).where(User.mfa_secret_ciphertext.is_not(None))):
        aad = f"user-mfa:{user.id}"
        assert user.mfa_secret_ciphertext is not None
        user.mfa_secret_ciphertext = new.encrypt(old.decrypt(user.mfa_secret_ciphertext, aad), aad)
        count += 1
    from aggregator.metadata.webhook_models import Webhook

    for hook in s.scalars(select(Webhook)):
        aad = f"webhook:{hook.id}"
        hook.target_ciphertext = new.encrypt(old.decrypt(hook.target_ciphertext, aad), aad)
        count += 1
    from aggregator.connectors.webhook import store as ingest_store

    count += ingest_store.reencrypt(s, old, new)
    return count


@audit_app.command("verify")
def verify() -> None:
    """Recompute the audit hash chain; exit 1 at the first tampered or missing event."""
    from aggregator.security import audit

    store = _store(_settings())
    try:
        with store.session() as s:
            result = audit.verify(s)
    finally:
        store.engine.dispose()
    if not result.ok:
        err.print(f"[red]audit log broken:[/red] {result.problem}", highlight=False)
        raise typer.Exit(1)
    out.print(f"audit log ok: {result.events} event(s)")


def register(app: typer.Typer) -> None:
    """Add the control-plane commands to the CLI."""
    app.command("api")(api)
    app.add_typer(users_app, name="users")
    app.add_typer(secrets_app, name="secrets")
    app.add_typer(audit_app, name="audit")
