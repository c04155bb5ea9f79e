"""Singer adapter: taps as sources, targets as destinations."""

from aggregator.connectors.singer.destination import SingerDestination
from aggregator.connectors.singer.source import SingerSource

__all__ = ["SingerDestination", "SingerSource"]
