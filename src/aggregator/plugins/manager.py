"""Singer/Airbyte plugins, each installed from PyPI into its own virtualenv.

Layout: ``<plugins dir>/<name>/venv`` and ``<name>/plugin.json``. The plugins dir is
``$AGGREGATOR_PLUGINS_DIR``, else ``$AGGREGATOR_HOME/plugins`` (default ``.aggregator``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import venv
from dataclasses import asdict, dataclass
from pathlib import Path

from aggregator.core.errors import ConfigError, ConnectorError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass(frozen=True)
class Plugin:
    """An installed plugin."""

    name: str
    pip_url: str
    executable: str


def plugins_dir() -> Path:
    """Where plugins are installed."""
    explicit = os.environ.get("AGGREGATOR_PLUGINS_DIR")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("AGGREGATOR_HOME", ".aggregator")) / "plugins"


def _bin(root: Path) -> Path:
    return root / "venv" / ("Scripts" if sys.platform == "win32" else "bin")


def add(name: str, pip_url: str | None = None, executable: str | None = None) -> Plugin:
    """Install ``pip_url`` (default: ``name``) into ``<plugins>/<name>/venv``."""
    if not _NAME.match(name):
        raise ConfigError(f"plugin name {name!r}: use letters, digits, '.', '_' and '-'")
    root = plugins_dir() / name
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(root / "venv")
    spec = pip_url or name
    pip = [str(_bin(root) / "python"), "-m", "pip", "install", "-q"]
    done = subprocess.run(
        [*pip, "--disable-pip-version-check", *spec.split()],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        tail = "\n".join(done.stderr.strip().splitlines()[-8:])
        hint = ""
        if "airbyte" in spec or name.startswith(("source-", "destination-")):
            hint = (
                "\n(Airbyte connectors published only as Docker images are not supported: "
                "use one released on PyPI as airbyte-source-NAME)"
            )
        raise ConnectorError(f"pip could not install {spec!r} for plugin {name!r}:\n{tail}{hint}")
    exe = _bin(root) / (executable or name)
    if not exe.exists():
        shutil.rmtree(root, ignore_errors=True)
        raise ConfigError(f"{spec!r} installed no executable {exe.name!r}; pass --executable")
    plugin = Plugin(name, spec, str(exe))
    (root / "plugin.json").write_text(json.dumps(asdict(plugin), indent=2))
    return plugin


def installed() -> list[Plugin]:
    """Every installed plugin, by name."""
    base = plugins_dir()
    if not base.is_dir():
        return []
    found = []
    for meta in sorted(base.glob("*/plugin.json")):
        found.append(Plugin(**json.loads(meta.read_text())))
    return found


def remove(name: str) -> None:
    """Uninstall ``name`` (its virtualenv is deleted)."""
    root = plugins_dir() / name
    if not (root / "plugin.json").exists():
        raise ConfigError(f"plugin {name!r} is not installed in {plugins_dir()}")
    shutil.rmtree(root)


def executable(name: str) -> str:
    """The executable of plugin ``name``, or of a path/command given instead of a name."""
    meta = plugins_dir() / name / "plugin.json"
    if meta.exists():
        return str(json.loads(meta.read_text())["executable"])
    if os.sep in name and Path(name).exists():
        return name
    found = shutil.which(name)
    if found:
        return found
    raise ConfigError(
        f"plugin {name!r} is not installed in {plugins_dir()}: run `aggregator plugins add {name}`"
    )
