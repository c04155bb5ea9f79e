"""Shared fixtures of the Singer tests: real PyPI plugins, installed once and cached.

Plugins are installed with ``aggregator.plugins.manager.add`` into
``$AGGREGATOR_TEST_PLUGIN_CACHE`` (default ``~/.cache/aggregator-test-plugins``) and reused by
later sessions; the first install takes about a minute.
"""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from aggregator.plugins import manager

CACHE = Path(
    os.environ.get("AGGREGATOR_TEST_PLUGIN_CACHE", Path.home() / ".cache/aggregator-test-plugins")
)
PLUGINS = ("tap-jsonl", "target-jsonl")
__all__ = ["fake_tap", "plugin_cache", "plugins"]


@pytest.fixture(scope="session")
def plugin_cache() -> Path:
    """The plugin directory holding tap-jsonl and target-jsonl."""
    old = os.environ.get("AGGREGATOR_PLUGINS_DIR")
    os.environ["AGGREGATOR_PLUGINS_DIR"] = str(CACHE)
    try:
        have = {p.name for p in manager.installed()}
        for name in PLUGINS:
            if name not in have:
                manager.add(name)
    finally:
        if old is None:
            del os.environ["AGGREGATOR_PLUGINS_DIR"]
        else:
            os.environ["AGGREGATOR_PLUGINS_DIR"] = old
    return CACHE


@pytest.fixture
def plugins(plugin_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point the plugin manager at the cached plugins for one test."""
    monkeypatch.setenv("AGGREGATOR_PLUGINS_DIR", str(plugin_cache))
    yield plugin_cache


FAKE_TAP = """\
#!{python}
# A scripted Singer tap: prints the messages of $FAKE_TAP_SCRIPT, then exits with $FAKE_TAP_EXIT.
import os, sys
if "--discover" in sys.argv:
    sys.stdout.write(open(os.environ["FAKE_TAP_CATALOG"]).read())
    sys.exit(0)
if "--state" in sys.argv:
    sys.stderr.write("state given: " + open(sys.argv[sys.argv.index("--state") + 1]).read() + "\\n")
sys.stdout.write(open(os.environ["FAKE_TAP_SCRIPT"]).read())
sys.stdout.flush()
code = int(os.environ.get("FAKE_TAP_EXIT", "0"))
if code:
    sys.stderr.write("Traceback: boom, the source database went away\\n")
sys.exit(code)
"""


@pytest.fixture
def fake_tap(tmp_path: Path) -> Path:
    """An executable that replays scripted Singer output (see ``FAKE_TAP``)."""
    path = tmp_path / "tap-fake"
    path.write_text(textwrap.dedent(FAKE_TAP.format(python=sys.executable)))
    path.chmod(0o755)
    return path
