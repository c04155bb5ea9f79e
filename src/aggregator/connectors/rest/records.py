"""From a page's JSON records to a typed Arrow batch, per page (never per row).

The selected records are serialized back with one ``json.dumps`` call and parsed by Arrow's
JSON reader as one document (``files`` JSON typing: exact big numbers, timestamps with their
UTC offsets, declared column types). Nested objects stay structs. When Arrow cannot type the
page (a member whose JSON type changes between records, a record that is not an object), the
page is typed record by record (error path only): records whose members conflict with the
records before them are quarantined as ``stream:page N item M``.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from aggregator.connectors.files.common import QuarantineBuilder, drop_rows
from aggregator.connectors.files.json_reader import JsonTyping, dump, has_long_number
from aggregator.core.messages import Quarantined

# a number token long enough that a float64 may not hold it exactly
_LONG_NUMBER = re.compile(rb"[0-9][0-9.eE+-]{15,}")


def loads(body: bytes) -> tuple[Any, bool]:
    """Parse a response body: (value, whether it holds numbers a float64 may not keep).

    With long numbers, floats are parsed as ``Decimal`` so that every digit survives. Plain
    bodies go through orjson; what it refuses (``NaN``, ``1e400``) is parsed by the standard
    library and marked like long numbers, so that :func:`dumps` writes it back unchanged."""
    if _LONG_NUMBER.search(body):
        return json.loads(body, parse_float=Decimal), True
    try:
        return orjson.loads(body), False
    except orjson.JSONDecodeError:
        return json.loads(body), True


def dumps(value: Any) -> bytes:
    """Inverse of :func:`loads` (one C-level call unless exact decimals are present)."""
    try:
        return json.dumps(value, ensure_ascii=False).encode()
    except TypeError:
        return dump(value).encode()


class PageTyper:
    """Types the pages of one stream read (sticky exact-number and timestamp members)."""

    def __init__(
        self,
        stream: str,
        hints: dict[str, pa.DataType],
        positions: Callable[[int, int], str] | None = None,
    ) -> None:
        self.stream = stream
        self.positions = positions
        self.typing = JsonTyping(hints)
        # members read as text (timestamps, exact numbers): later pages are parsed once with
        # them declared, instead of twice (infer, then re-read) as the files typing does
        self.text: list[str] = []
        self.order: list[str] = []

    def _document(self, text: bytes) -> pa.Table | None:
        if self.text:
            struct = pa.struct([(name, pa.string()) for name in self.text])
            explicit = pa.schema([("rows", pa.list_(struct))])
            try:
                table = pj.read_json(
                    io.BytesIO(text),
                    read_options=pj.ReadOptions(use_threads=False, block_size=len(text) + 1),
                    parse_options=pj.ParseOptions(
                        newlines_in_values=b"\n" in text,
                        explicit_schema=explicit,
                        unexpected_field_behavior="infer",
                    ),
                )
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                return None
            row = table.schema.field("rows").type.value_type
            if not any(pa.types.is_timestamp(f.type) for f in row):
                return table
        table = self.typing.parse(text, document=True)
        if table is not None:
            row = table.schema.field("rows").type.value_type
            if pa.types.is_struct(row):
                names = self.typing.exact_names
                self.text = [f.name for f in row if f.name in names and pa.types.is_string(f.type)]
        return table

    def _parse(self, records: list[Any], exact: bool = True) -> pa.Table | None:
        return self._parse_text(b'{"rows":' + dumps(records) + b"}", len(records), exact)

    def _parse_text(self, text: bytes, count: int, exact: bool) -> pa.Table | None:
        # the files module's member regex is slow (every string literal is a candidate): only
        # run it when the body held long numbers or a member is already known to need it
        # (without long numbers, floats re-serialize to the same doubles, ints exactly)
        if exact or self.typing.exact_keys:
            text = self.typing.quote_big(text)
        table = self._document(text)
        if table is None or table.num_rows != 1:
            return None
        rows = table.column("rows").combine_chunks()
        flat = pc.list_flatten(rows)
        if not pa.types.is_struct(flat.type) or flat.null_count or len(flat) != count:
            return None
        batch = pa.RecordBatch.from_struct_array(flat)
        # keep the column order of the first page (declared members come first otherwise)
        known = [n for n in self.order if n in batch.schema.names]
        self.order = known + [n for n in batch.schema.names if n not in known]
        if batch.schema.names != self.order:
            batch = batch.select(self.order)
        return pa.Table.from_batches([batch])

    def page(
        self, records: list[Any], page: int, exact: bool = True
    ) -> tuple[pa.RecordBatch | None, Quarantined | None]:
        """The typed batch of a page's records and the quarantined ones (``exact``: the
        body held long numbers, see :func:`loads`)."""
        if not records:
            return None, None
        # orjson writes what it parsed back exactly; other values take the exact path
        body = dumps(records) if exact else orjson.dumps(records)
        text = b'{"rows":' + body + b"}"
        return self._typed(text, len(records), page, exact, lambda: records)

    def pages(
        self, pages: list[tuple[list[Any], int, bool]]
    ) -> tuple[list[pa.RecordBatch], Quarantined | None]:
        """Several pages' ``(records, page number, exact)`` typed as one document: one Arrow
        parse instead of one per page. When the pages do not type together or a row is
        rejected, each page is typed on its own (positions name the page and item), giving
        a batch per page."""
        records = [r for recs, _, _ in pages for r in recs]
        if not records:
            return [], None
        exact = any(e for _, _, e in pages)
        body = dumps(records) if exact else orjson.dumps(records)
        table = self._parse_text(b'{"rows":' + body + b"}", len(records), exact)
        if table is not None and table.num_rows:
            typed, rejected = self.typing.apply(table.combine_chunks().to_batches()[0])
            if not rejected:
                return [typed], None
        batches, quarantined = [], []
        for recs, number, e in pages:
            batch, q = self.page(recs, number, e)
            if batch is not None:
                batches.append(batch)
            if q is not None and q.rows.num_rows:
                quarantined.append(q.rows)
        return batches, (Quarantined(pa.concat_tables(quarantined)) if quarantined else None)

    def page_texts(
        self, items: list[str], page: int
    ) -> tuple[pa.RecordBatch | None, Quarantined | None, list[int]]:
        """Like :meth:`page` for records given as JSON texts (one join, no Python parse on
        the happy path); also returns the indices of ``items`` in the batch, in order."""
        if not items:
            return None, None, []
        text = ('{"rows":[' + ",".join(items) + "]}").encode()
        kept: list[int] = []

        def parsed() -> list[Any]:
            return [_loads_or_text(t) for t in items]

        batch, quarantined = self._typed(
            text, len(items), page, has_long_number(text), parsed, kept
        )
        return batch, quarantined, kept

    def _typed(
        self,
        text: bytes,
        count: int,
        page: int,
        exact: bool,
        records_of: Callable[[], list[Any]],
        kept_out: list[int] | None = None,
    ) -> tuple[pa.RecordBatch | None, Quarantined | None]:
        table = self._parse_text(text, count, exact)
        quarantine = QuarantineBuilder()
        kept = list(range(count))
        records: list[Any] | None = None
        if table is None:
            records = records_of()
            table, kept = self._one_by_one(records, page, quarantine)
        if table is None or table.num_rows == 0:
            return None, quarantine.build()
        batch = table.combine_chunks().to_batches()[0] if table.num_rows else None
        assert batch is not None
        typed, rejected = self.typing.apply(batch)
        if rejected:
            records = records if records is not None else records_of()
        for row, reason in sorted(rejected.items()):
            item = kept[row]
            assert records is not None
            quarantine.add(reason, self.position(page, item), dumps(records[item]))
        typed = drop_rows(typed, rejected)
        if kept_out is not None:
            kept_out.extend(k for i, k in enumerate(kept) if i not in rejected)
        return (typed if typed.num_rows else None), quarantine.build()

    def position(self, page: int, item: int) -> str:
        """Where a record came from: ``stream:page N item M`` (1-based), or what the
        ``positions`` callback given to the constructor says."""
        if self.positions is not None:
            return self.positions(page, item)
        return f"{self.stream}:page {page} item {item + 1}"

    def _one_by_one(
        self, records: list[Any], page: int, quarantine: QuarantineBuilder
    ) -> tuple[pa.Table | None, list[int]]:
        """Error path: keep records that type together with the ones before them."""
        tables: list[pa.Table] = []
        kept: list[int] = []
        schema: pa.Schema | None = None
        for i, record in enumerate(records):
            if isinstance(record, _Unparsable):
                quarantine.add(f"invalid JSON: {record.error}", self.position(page, i), record.text)
                continue
            if not isinstance(record, dict):
                reason = f"not a JSON object: {type(record).__name__}"
                quarantine.add(reason, self.position(page, i), dumps(record))
                continue
            single = self._parse([record])
            if single is None:
                reason = "cannot be typed (invalid member values)"
                quarantine.add(reason, self.position(page, i), dumps(record))
                continue
            try:
                merged = (
                    single.schema
                    if schema is None
                    else pa.unify_schemas([schema, single.schema], promote_options="permissive")
                )
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                reason = f"member types conflict with earlier records of the page: {exc}"
                quarantine.add(reason, self.position(page, i), dumps(record))
                continue
            schema = merged
            tables.append(single)
            kept.append(i)
        if not tables:
            return None, kept
        return pa.concat_tables(tables, promote_options="permissive"), kept


class _Unparsable:
    """A stored text that is not JSON (error path of :meth:`PageTyper.page_texts`)."""

    def __init__(self, text: str, error: str) -> None:
        self.text, self.error = text, error


def _loads_or_text(text: str) -> Any:
    try:
        return loads(text.encode())[0]
    except ValueError as exc:
        return _Unparsable(text, str(exc))


def json_type(dtype: pa.DataType) -> str:
    """The JSON type a column was inferred from (the source-native type of JSON APIs)."""
    if pa.types.is_boolean(dtype):
        return "boolean"
    if pa.types.is_integer(dtype):
        return "integer"
    if pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "number"
    if pa.types.is_timestamp(dtype):
        return "string (date-time)"
    if pa.types.is_date(dtype):
        return "string (date)"
    if pa.types.is_struct(dtype):
        return "object"
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        return "array"
    if pa.types.is_null(dtype):
        return "null"
    return "string"


def json_types(schema: pa.Schema) -> dict[str, str]:
    """:func:`json_type` of every column."""
    return {f.name: json_type(f.type) for f in schema}
