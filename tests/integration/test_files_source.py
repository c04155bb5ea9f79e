"""The files source end to end: entry-point registration, mixed inputs, kill-and-resume."""

from __future__ import annotations

import gzip
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from aggregator.connectors.files import FilesSource
from aggregator.core.catalog import ConfiguredStream, SyncMode
from aggregator.core.messages import Checkpoint, Quarantined, Records

pytestmark = pytest.mark.integration


def _registered() -> Any:
    (ep,) = [e for e in entry_points(group="aggregator.connectors") if e.name == "source.files"]
    return ep.load()


def _make_files(root: Path) -> None:
    (root / "orders_1.csv").write_bytes(
        b"\xef\xbb\xbfid,amount,at\r\n"
        + b"".join(b"%d,%d.25,2024-01-01T00:00:%02dZ\r\n" % (i, i, i % 60) for i in range(1, 51))
        + b"51,oops\r\n"
    )
    (root / "orders_2.csv.gz").write_bytes(
        gzip.compress(
            b"id,amount,at\n"
            + b"".join(b"%d,%d.5,2024-01-02T00:00:%02dZ\n" % (i, i, i % 60) for i in range(52, 101))
        )
    )


def _ids(messages: list[Any]) -> list[int]:
    return [r["id"] for m in messages if isinstance(m, Records) for r in m.batch.to_pylist()]


def test_registered_source_reads_a_glob_and_resumes_exactly(tmp_path: Path) -> None:
    assert _registered() is FilesSource
    _make_files(tmp_path)
    config = {
        "streams": [{"name": "orders", "path": str(tmp_path / "orders_*"), "checkpoint_rows": 20}]
    }
    source = FilesSource.from_config(config)
    assert source.check().ok is True
    stream = ConfiguredStream(
        name="orders", sync_mode=SyncMode.INCREMENTAL, cursor_field="at", batch_size=8
    )
    full = list(source.read(stream, None))
    expected = [i for i in range(1, 101) if i != 51]
    assert _ids(full) == expected
    assert [
        q["position"] for m in full if isinstance(m, Quarantined) for q in m.rows.to_pylist()
    ] == [f"{tmp_path / 'orders_1.csv'}:52"]
    final = full[-1]
    assert isinstance(final, Checkpoint)
    assert final.state["cursor"] == "2024-01-02T00:00:59+00:00"
    assert final.state["cursor_type"] == "timestamptz"

    # Kill after every checkpoint: committed data + the resumed run = one exact copy.
    positions = [i for i, m in enumerate(full) if isinstance(m, Checkpoint)]
    for index in positions[:-1]:
        state = full[index].state
        assert isinstance(state, dict)
        resumed = list(FilesSource.from_config(config).read(stream, state))
        assert _ids(full[:index]) + _ids(resumed) == expected
        assert resumed[-1].state == final.state

    # Nothing new: the next incremental run yields no rows.
    assert _ids(list(source.read(stream, final.state))) == []
