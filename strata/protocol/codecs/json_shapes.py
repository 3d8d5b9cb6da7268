"""JSON bodies (json and rest-json protocols): decode request values, encode response values.

Decoding checks each value against its shape (a string where a structure belongs is a
SerializationException at AWS, not a crash here) and converts blobs from base64 and timestamps
to aware datetimes. Encoding drops None and unknown keys, writes blobs as base64 and timestamps
as epoch seconds unless the shape names another `timestampFormat`.
"""

from __future__ import annotations

import base64
import math
from decimal import Decimal
from typing import Any

from botocore.model import Shape

from strata.protocol.codecs.compile import Fn, ShapeCompiler, located
from strata.protocol.codecs.values import (
    MalformedInput,
    b64decode,
    b64encode,
    check_int_range,
    format_float,
    format_timestamp,
    to_datetime,
)


def _identity(value: Any) -> Any:
    return value


def _read_string(value: Any) -> str:
    if not isinstance(value, str):
        raise MalformedInput(f"expected a string, got {type(value).__name__}")
    return value


def _int_reader(kind: str) -> Fn:
    def read_int(value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            return check_int_range(value, kind)
        if isinstance(value, float) and value.is_integer():
            return check_int_range(int(value), kind)
        raise MalformedInput(f"expected an integer, got {type(value).__name__}")

    return read_int


def _read_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise MalformedInput(f"expected a boolean, got {type(value).__name__}")
    return value


def _not_null(value: Any, where: str) -> Any:
    if value is None:
        raise MalformedInput(f"null value in the map {where}")
    return value


def _decode_float(value: Any) -> float:
    if isinstance(value, bool):
        raise MalformedInput("expected a number, got bool")
    if isinstance(value, (int, float)):
        return float(value)
    if value in ("NaN", "Infinity", "-Infinity"):
        return float(value.replace("Infinity", "inf"))
    raise MalformedInput(f"expected a number, got {type(value).__name__}")


def _decode_blob(value: Any) -> bytes:
    if not isinstance(value, str):
        raise MalformedInput("expected a base64 string")
    return b64decode(value)


def _decode_timestamp(value: Any) -> Any:
    if isinstance(value, (bool, list, dict)) or value is None:
        raise MalformedInput("expected a timestamp")
    return to_datetime(value)


class JsonReader(ShapeCompiler):
    """Shape -> function(json value) -> Python value shaped like the model."""

    def __init__(self, skip_located: bool) -> None:
        super().__init__()
        self.skip_located = skip_located

    def build(self, shape: Shape) -> Fn:
        kind = shape.type_name
        if kind == "structure":
            if shape.is_document_type:
                return _identity
            return self._structure(shape)
        if kind == "list":
            item = self.get(shape.member)

            def read_list(value: Any) -> list:
                if not isinstance(value, list):
                    raise MalformedInput(f"expected a list for {shape.name}")
                if None in value:
                    raise MalformedInput(f"null member in the list {shape.name}")
                return [item(v) for v in value]

            return read_list
        if kind == "map":
            val = self.get(shape.value)

            def read_map(value: Any) -> dict:
                if not isinstance(value, dict):
                    raise MalformedInput(f"expected a map for {shape.name}")
                return {k: val(_not_null(v, shape.name)) for k, v in value.items()}

            return read_map
        if kind == "string":
            return _read_string
        if kind in ("integer", "long", "short", "byte", "bigInteger"):
            return _int_reader(kind)
        if kind in ("float", "double", "bigDecimal"):
            return _decode_float
        if kind == "boolean":
            return _read_bool
        if kind == "blob":
            return _decode_blob
        if kind == "timestamp":
            return _decode_timestamp
        return _identity

    def _structure(self, shape: Shape) -> Fn:
        table = {
            m.serialization.get("name", name): (name, self.get(m))
            for name, m in shape.members.items()
            if not (self.skip_located and located(m))
        }
        label = shape.name

        def read_structure(value: Any) -> dict:
            if not isinstance(value, dict):
                raise MalformedInput(f"expected an object for {label}")
            out = {}
            # Walk the request's keys (few) rather than the shape's members (AttributeValue has 10).
            for key, v in value.items():
                member = table.get(key)
                if member is not None and v is not None:
                    out[member[0]] = member[1](v)
            return out

        return read_structure


def _encode_blob(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, str)):
        return b64encode(value)
    return base64.b64encode(bytes(value)).decode()


def _encode_float(value: Any) -> Any:
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return format_float(value)
    return value


_NATIVE_SCALARS = frozenset(("string", "integer", "long", "short", "byte", "boolean", "blob"))


class JsonWriter(ShapeCompiler):
    """Shape -> function(Python value) -> JSON-ready value (None and unknown keys dropped).

    Shapes whose values are already their own JSON (`native`: strings, integers, booleans and
    blobs, in lists, maps and structures without renamed or located members) are handed to the
    encoder as they are: it writes bytes as base64 through its default hook, so walking them here
    would only copy them. Such a value keeps any None member (written as null, which SDKs read as
    absent). DynamoDB's AttributeValue is one: a Query's items cost no walk at all.
    """

    def __init__(self, skip_located: bool) -> None:
        super().__init__()
        self.skip_located = skip_located

    def native(self, shape: Shape, visiting: set[str] | None = None) -> bool:
        visiting = set() if visiting is None else visiting
        ser = shape.serialization
        if ser.get("streaming") or ser.get("eventstream") or ser.get("jsonvalue"):
            return False
        kind = shape.type_name
        if kind in _NATIVE_SCALARS:
            return True
        if kind == "structure" and shape.is_document_type:
            return True
        if kind not in ("structure", "list", "map"):
            return False
        if shape.name in visiting:  # recursion: decided by the rest of the cycle
            return True
        visiting.add(shape.name)
        if kind == "list":
            return self.native(shape.member, visiting)
        if kind == "map":
            return self.native(shape.value, visiting)
        for name, m in shape.members.items():
            if m.serialization.get("name", name) != name or located(m):
                return False
            if not self.native(m, visiting):
                return False
        return True

    def build(self, shape: Shape) -> Fn:
        if self.native(shape):
            return _identity
        kind = shape.type_name
        if kind == "structure":
            if shape.is_document_type:
                return _identity
            return self._structure(shape)
        if kind == "list":
            item = self.get(shape.member)
            return lambda value: [item(v) for v in value if v is not None]
        if kind == "map":
            val = self.get(shape.value)
            return lambda value: {k: val(v) for k, v in value.items() if v is not None}
        if kind == "blob":
            return _encode_blob
        if kind == "timestamp":
            fmt = shape.serialization.get("timestampFormat", "unixtimestamp")
            return lambda value: format_timestamp(value, fmt)
        if kind in ("float", "double"):
            return _encode_float
        return _identity

    def _structure(self, shape: Shape) -> Fn:
        members = {
            name: (m.serialization.get("name", name), self.get(m))
            for name, m in shape.members.items()
            if not (self.skip_located and located(m))
        }

        def write_structure(value: dict) -> dict:
            out = {}
            for name, v in value.items():
                if v is None:
                    continue
                member = members.get(name)
                if member is not None:
                    out[member[0]] = member[1](v)
            return out

        return write_structure
