"""Command groups, one module each; every module exposes ``register(app)``.

Modules here are found automatically (``aggregator.cli.main`` imports them all), so a new
command group is a new file, without edits to ``main.py``. Every CLI start imports them all,
so a module imports only typer/rich at the top and its heavy dependencies (pyarrow,
SQLAlchemy, DuckDB, the engine...) inside the commands (``tests/unit/test_startup.py``).
"""

from __future__ import annotations

import importlib
import pkgutil

import typer


def register_all(app: typer.Typer) -> None:
    """Import every module of this package and let it add its commands to ``app``."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)
