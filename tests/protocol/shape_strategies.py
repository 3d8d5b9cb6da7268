"""Hypothesis strategies that generate values for any botocore shape, and the normaliser used to
compare what went in with what came back.

Generated values respect what the wire can carry, and the exceptions are deliberate:
- text has no control characters or surrogates (XML 1.0 cannot carry them; JSON could, but one
  strategy for all protocols keeps the test simple);
- header values are short printable ASCII without commas or quotes (HTTP header values, and
  botocore's response parser splits list headers on commas without unquoting);
- header-map keys (S3 `x-amz-meta-*`) are lower case (HTTP lower-cases header names);
- timestamps have milliseconds, whole seconds in headers (RFC 822 dates carry no fraction);
- `statusCode` members are 2xx (a 3xx+ status is an error response by definition).
"""

from __future__ import annotations

import asyncio
import io
import string
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.model import OperationModel, Shape
from hypothesis import strategies as st

from strata.protocol.http import BodyStream

TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12)
HEADER_ALPHABET = string.ascii_letters + string.digits + "._:/+=-"
HEADER_TEXT = st.text(HEADER_ALPHABET, max_size=12)
HEADER_KEY = st.text(string.ascii_lowercase + string.digits + "-", min_size=1, max_size=8)
LABEL_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12)
HOST_LABEL = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=8)
TIMESTAMPS = st.integers(0, 4102444800).map(lambda s: datetime.fromtimestamp(s, UTC))
# Bodies and query strings carry milliseconds (AWS's precision); RFC 822 header dates do not.
TIMESTAMPS_MS = st.integers(0, 4102444800_000).map(lambda ms: EPOCH + timedelta(milliseconds=ms))
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_DEPTH = 4


def _sized(shape: Shape, text: st.SearchStrategy[str], location: str | None) -> st.SearchStrategy[str]:
    enum = shape.enum
    if enum:
        values = list(enum)
        if location == "header":
            values = [v for v in values if "," not in v and '"' not in v] or values
        return st.sampled_from(values)
    lo = int(shape.metadata.get("min", 0) or 0)
    if lo:
        return (
            text.filter(lambda s: len(s) >= lo)
            if lo <= 3
            else st.text("abcdefgh", min_size=lo, max_size=lo + 4)
        )
    return text


def _int_range(shape: Shape) -> tuple[int, int]:
    big = 2**31 - 1 if shape.type_name == "integer" else 2**53
    lo = shape.metadata.get("min", -big)
    hi = shape.metadata.get("max", big)
    return int(max(lo, -big)), int(min(hi, big))


class Generator:
    """Strategies per (shape, location, depth), built once and reused.

    A `full` generator puts every member of every structure (to MAX_DEPTH) and at least one item
    in every list and map into each value: one such value covers what many sparse ones would.
    """

    def __init__(self, full: bool = False) -> None:
        self._cache: dict[tuple, st.SearchStrategy[Any]] = {}
        self.full = full
        self._least = 1 if full else 0
        self._most = 1 if full else 3

    def for_shape(
        self, shape: Shape, location: str | None = None, depth: int = 0, greedy: bool = False
    ) -> st.SearchStrategy[Any]:
        key = (
            shape.name,
            str(sorted(shape.serialization.items(), key=str)),
            location,
            min(depth, MAX_DEPTH + 1),
            greedy,
        )
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = st.deferred(lambda: self._build(shape, location, depth, greedy))
        return found

    def _build(self, shape: Shape, location: str | None, depth: int, greedy: bool) -> st.SearchStrategy[Any]:
        kind = shape.type_name
        if kind == "structure":
            if shape.is_document_type:
                return st.dictionaries(HEADER_KEY, HEADER_TEXT, max_size=2)
            return self._structure(shape, depth)
        if kind == "list":
            if depth > MAX_DEPTH:
                return st.just([])
            return st.lists(
                self.for_shape(shape.member, location, depth + 1), min_size=self._least, max_size=self._most
            )
        if kind == "map":
            if depth > MAX_DEPTH:
                return st.just({})
            key_text = HEADER_KEY if location in ("headers", "querystring") else TEXT
            keys = _sized(shape.key, key_text, None)
            return st.dictionaries(
                keys,
                self.for_shape(shape.value, location, depth + 1),
                min_size=self._least,
                max_size=self._most,
            )
        if kind == "string":
            if shape.serialization.get("jsonvalue"):
                return st.dictionaries(HEADER_KEY, HEADER_TEXT, max_size=2)
            if location in ("header", "headers"):
                return _sized(shape, HEADER_TEXT, "header")
            if location == "uri":
                return _sized(
                    shape, LABEL_TEXT if not greedy else LABEL_TEXT.map(lambda s: "a/" + s + "/ %2F"), None
                )
            return _sized(shape, TEXT, location)
        if kind in ("integer", "long"):
            if location == "statusCode":
                return st.sampled_from([200, 201, 206])
            lo, hi = _int_range(shape)
            return st.integers(lo, hi)
        if kind in ("float", "double"):
            return st.floats(allow_nan=False, allow_infinity=False, width=64)
        if kind == "boolean":
            return st.booleans()
        if kind == "blob":
            return st.binary(max_size=16)
        if kind == "timestamp":
            # Header timestamps (botocore drops their sub-seconds) and RFC 822 dates carry seconds only.
            whole = (
                location in ("header", "headers") or shape.serialization.get("timestampFormat") == "rfc822"
            )
            return TIMESTAMPS if whole else TIMESTAMPS_MS
        return TEXT

    def for_operation(self, op: OperationModel, output: bool) -> st.SearchStrategy[dict]:
        """Values for an operation's input (or output) shape, top-level members by their location."""
        shape = op.output_shape if output else op.input_shape
        if shape is None:
            return st.just({})
        uri = op.http.get("requestUri", "")
        greedy = {n for n, m in shape.members.items() if "{" + m.serialization.get("name", n) + "+}" in uri}
        return self._structure(shape, 0, greedy)

    def for_error(self, shape: Shape, exclude: set[str]) -> st.SearchStrategy[dict]:
        """Extra members of an error shape (message and code members excluded)."""
        members = {
            name: self.for_shape(m, m.serialization.get("location"), 1)
            for name, m in shape.members.items()
            if name not in exclude
        }
        return st.fixed_dictionaries({}, optional=members)

    def _structure(self, shape: Shape, depth: int, greedy: set[str] | None = None) -> st.SearchStrategy[dict]:
        required, optional = {}, {}
        union = bool(getattr(shape, "is_union", False) or shape.metadata.get("union"))
        for name, m in shape.members.items():
            if m.serialization.get("eventstream"):
                events = [
                    st.fixed_dictionaries({n: self._structure(e, depth + 2)}) for n, e in m.members.items()
                ]
                optional[name] = st.lists(st.one_of(events), min_size=1, max_size=3)
                continue
            location = m.serialization.get("location") if greedy is not None else None
            strategy = self.for_shape(m, location, depth + 1, bool(greedy and name in greedy))
            if m.serialization.get("hostLabel"):
                strategy = HOST_LABEL
            if name in shape.required_members and not union:
                required[name] = strategy
            elif depth <= MAX_DEPTH:
                (required if self.full and not union else optional)[name] = strategy
        if union:
            choices = [st.fixed_dictionaries({n: s}) for n, s in optional.items()]
            return st.one_of(choices) if choices else st.just({})
        return st.fixed_dictionaries(required, optional=optional)


def read_stream(value: Any) -> bytes:
    if isinstance(value, BodyStream):
        return asyncio.run(value.read_all())
    if hasattr(value, "read"):
        return value.read()
    if isinstance(value, str):
        return value.encode()
    return bytes(value)


def normalize(value: Any, shape: Shape | None, top: bool = False) -> Any:
    """A comparable form: timestamps as epoch seconds, blobs as bytes, empty values dropped.

    Empty containers are dropped because the wire cannot always tell them from absent ones (a
    flattened XML list with no items is no element at all); an empty body payload likewise.
    """
    if value is None or shape is None:
        return value
    kind = shape.type_name
    if shape.serialization.get("eventstream") and isinstance(value, list):
        return [normalize(event, shape) for event in value]
    if kind == "structure":
        if shape.is_document_type:
            return value
        payload = shape.serialization.get("payload") if top else None
        out = {}
        for k, v in value.items():
            m = shape.members.get(k)
            if m is None:
                continue
            n = normalize(v, m)
            if n is None or n == [] or n == {} or n == b"" or (k == payload and n == ""):
                continue
            out[k] = n
        return out
    if kind == "list":
        # An empty structure in a list is nothing at all on the query wire (no keys to send).
        return [n for n in (normalize(v, shape.member) for v in value) if n != {}]
    if kind == "map":
        return {k: normalize(v, shape.value) for k, v in value.items()}
    if kind == "timestamp":
        return (value - EPOCH) // timedelta(milliseconds=1) if isinstance(value, datetime) else value
    if kind == "blob":
        if isinstance(value, (BodyStream, io.IOBase)) or hasattr(value, "read"):
            return read_stream(value)
        return value.encode() if isinstance(value, str) else bytes(value)
    if kind in ("float", "double"):
        return float(value)
    return value
