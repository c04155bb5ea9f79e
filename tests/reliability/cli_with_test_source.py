"""The real CLI, with the test sequence source registered (used by kill-and-resume tests)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from aggregator.cli.main import app  # noqa: E402
from aggregator.connectors import registry  # noqa: E402
from tests.support import SequenceSource  # noqa: E402

registry.register(SequenceSource)
app()
