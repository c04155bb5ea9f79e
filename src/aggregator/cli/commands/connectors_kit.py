"""``aggregator connectors new NAME``: scaffold a connector package (added to the group)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def new(
    name: Annotated[str, typer.Argument(help="Connector name (lowercase, digits, _).")],
    directory: Annotated[
        Path, typer.Option("--dir", "-d", help="Where to create the package.")
    ] = Path(),
) -> None:
    """Scaffold a source package: pyproject with the entry point, source, standard tests."""
    from aggregator.core.errors import ConfigError
    from aggregator.plugins.scaffold import scaffold

    try:
        root = scaffold(name, directory)
    except ConfigError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"created {root}\nnext: pip install -e {root} && pytest {root}")


def register(app: typer.Typer) -> None:
    """Add ``new`` to the existing ``connectors`` group (or a ``connector-kit`` group)."""
    for group in app.registered_groups:
        if group.name == "connectors" and group.typer_instance is not None:
            group.typer_instance.command("new")(new)
            return
    kit = typer.Typer(help="Connector development kit.", no_args_is_help=True)
    kit.command("new")(new)
    app.add_typer(kit, name="connector-kit")
