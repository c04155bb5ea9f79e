"""The standard test suite for sources: subclass :class:`SourceTestSuite` in a test module.

::

    class TestMySource(SourceTestSuite):
        source_class = MySource
        incremental_streams = {"events": "updated_at"}

        @pytest.fixture
        def config(self, tmp_path) -> dict:
            return {"path": str(tmp_path / "data")}

Tests: the spec is a valid JSON Schema; ``check`` passes on ``config`` and fails on
``failing_config`` (unless ``check_can_fail = False``); an invalid config raises
``ConfigError`` naming the field;
``discover`` lists the streams ``stream_names`` announces, with Arrow schemas; every stream
reads (valid messages, a final checkpoint, and with ``reports_stream_info`` a ``StreamInfo``
agreeing with ``discover``); and for incremental streams, a read from the
final state yields no row again (left out when no ``incremental_streams`` are declared).
"""

from __future__ import annotations

from typing import Any, ClassVar

import pyarrow as pa
import pytest
from jsonschema.validators import validator_for

from aggregator.connectors.sdk import Source
from aggregator.core.catalog import Catalog
from aggregator.core.errors import ConfigError
from aggregator.core.messages import StreamInfo
from aggregator.testing._read import read_stream


class SourceTestSuite:
    """Mix into a ``Test*`` class; override the fixtures and class attributes it needs."""

    source_class: ClassVar[type[Source[Any]]]
    #: streams read by the suite (``None``: every discovered stream)
    streams: ClassVar[list[str] | None] = None
    #: stream name -> cursor field, for the state round-trip test
    incremental_streams: ClassVar[dict[str, str]] = {}
    #: the field ``bad_config`` gets wrong (the error must name it)
    bad_field: ClassVar[str] = "not_a_field"
    #: whether every stream must yield at least one row
    expect_rows: ClassVar[bool] = True
    #: whether some valid configuration can fail ``check`` (then give ``failing_config``)
    check_can_fail: ClassVar[bool] = True
    #: whether ``read`` yields a ``StreamInfo`` (keys, cursor candidates, sizes, native types)
    reports_stream_info: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Leave out (rather than skip) the tests a connector declares not applicable."""
        super().__init_subclass__(**kwargs)
        if not cls.incremental_streams:
            cls.test_state_round_trip = None  # type: ignore[assignment]
        if not cls.check_can_fail:
            cls.test_check_fails_on_failing_config = None  # type: ignore[assignment]

    @pytest.fixture
    def config(self) -> dict[str, Any]:
        """A working configuration (override)."""
        raise NotImplementedError("override the `config` fixture")

    @pytest.fixture
    def bad_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """A configuration that fails validation on ``bad_field``."""
        return {**config, self.bad_field: "unexpected"}

    @pytest.fixture
    def failing_config(self, config: dict[str, Any]) -> dict[str, Any] | None:
        """A valid configuration whose ``check`` fails (or set ``check_can_fail = False``)."""
        return None

    @pytest.fixture
    def source(self, config: dict[str, Any]) -> Source[Any]:
        """The source built from ``config``."""
        built = self.source_class.from_config(config)
        assert isinstance(built, Source)
        return built

    @pytest.fixture
    def catalog(self, source: Source[Any]) -> Catalog:
        """The discovered catalog."""
        return source.discover()

    def _streams(self, catalog: Catalog) -> list[str]:
        return self.streams if self.streams is not None else [s.name for s in catalog.streams]

    def test_spec_is_valid_json_schema(self) -> None:
        spec = self.source_class.spec()
        validator_for(spec).check_schema(spec)
        assert spec.get("type") == "object" and "properties" in spec

    def test_check_ok(self, source: Source[Any]) -> None:
        result = source.check()
        assert result.ok, result.message

    def test_check_fails_on_failing_config(self, failing_config: dict[str, Any] | None) -> None:
        if failing_config is None:
            pytest.fail("override `failing_config`, or set `check_can_fail = False`")
        result = self.source_class.from_config(failing_config).check()
        assert not result.ok and result.message

    def test_bad_config_names_the_field(self, bad_config: dict[str, Any]) -> None:
        with pytest.raises(ConfigError) as info:
            self.source_class.from_config(bad_config)
        assert self.bad_field in str(info.value)

    def test_discover(self, source: Source[Any], catalog: Catalog) -> None:
        assert catalog.streams, "discover found no stream"
        assert sorted(s.name for s in catalog.streams) == sorted(source.stream_names())
        for stream in catalog.streams:
            assert isinstance(stream.schema, pa.Schema)
            assert set(stream.primary_key) <= set(stream.schema.names), stream.name
            assert stream.to_json()["name"] == stream.name

    def test_read(self, source: Source[Any], catalog: Catalog) -> None:
        for name in self._streams(catalog):
            result = read_stream(source, name)
            assert result.states, f"stream {name!r} yielded no checkpoint"
            if self.expect_rows:
                assert result.rows > 0, f"stream {name!r} yielded no row"
            if self.reports_stream_info:
                self._check_info(catalog, name, result.infos)

    def _check_info(self, catalog: Catalog, name: str, infos: list[StreamInfo]) -> None:
        """The StreamInfo of a read agrees with ``discover`` on keys and cursor candidates."""
        assert infos, f"stream {name!r} yielded no StreamInfo"
        stream = catalog.get(name)
        assert stream is not None
        info = infos[0]
        assert info.primary_key == stream.primary_key, name
        assert info.cursor_candidates == stream.cursor_candidates, name
        declared = info.metadata["declared_types"]
        assert set(declared) <= set(stream.schema.names), (name, declared)

    def test_state_round_trip(self, source: Source[Any]) -> None:
        for name, cursor in self.incremental_streams.items():
            first = read_stream(source, name, cursor_field=cursor)
            assert first.rows > 0, f"stream {name!r} yielded no row"
            again = read_stream(source, name, first.final_state, cursor_field=cursor)
            assert again.rows == 0, f"stream {name!r} read {again.rows} rows again"
            assert again.final_state is not None
