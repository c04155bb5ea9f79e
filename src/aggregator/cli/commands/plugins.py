"""``aggregator plugins``: install Singer/Airbyte connectors into their own virtualenvs."""

from __future__ import annotations

import json
from typing import Annotated

import typer

plugins_app = typer.Typer(help="Singer/Airbyte plugins (each in its own virtualenv).")


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {getattr(exc, 'message', exc)}", err=True)
    raise typer.Exit(2)


@plugins_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Plugin name, e.g. tap-jsonl.")],
    pip_url: Annotated[str | None, typer.Option(help="pip requirement(s); default NAME.")] = None,
    executable: Annotated[str | None, typer.Option(help="Executable; default NAME.")] = None,
) -> None:
    """Install a plugin from PyPI into <plugins dir>/NAME/venv."""
    from aggregator.core.errors import AggregatorError
    from aggregator.plugins import manager

    try:
        plugin = manager.add(name, pip_url, executable)
    except AggregatorError as exc:
        _fail(exc)
        return
    typer.echo(f"installed {plugin.name}: {plugin.executable}")


@plugins_app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Installed plugins."""
    from aggregator.plugins import manager

    found = manager.installed()
    if as_json:
        typer.echo(json.dumps([p.__dict__ for p in found], indent=2))
        return
    for p in found:
        typer.echo(f"{p.name}\t{p.pip_url}\t{p.executable}")


@plugins_app.command("remove")
def remove(name: Annotated[str, typer.Argument()]) -> None:
    """Uninstall a plugin."""
    from aggregator.core.errors import AggregatorError
    from aggregator.plugins import manager

    try:
        manager.remove(name)
    except AggregatorError as exc:
        _fail(exc)


def register(app: typer.Typer) -> None:
    """Add the ``plugins`` group."""
    app.add_typer(plugins_app, name="plugins")
