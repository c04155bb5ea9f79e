"""The real CLI, with the test sequence source registered (used by kill-and-resume tests)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from aggregator.cli.main import app
from aggregator.connectors import registry
from tests.support import SequenceSource

registry.register(SequenceSource)
app()
