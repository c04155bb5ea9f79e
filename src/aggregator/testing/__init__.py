"""Testing kit for connector authors: a standard source test suite and read helpers."""

from aggregator.testing._read import ReadResult, read_stream
from aggregator.testing._suite import SourceTestSuite

__all__ = ["ReadResult", "SourceTestSuite", "read_stream"]
