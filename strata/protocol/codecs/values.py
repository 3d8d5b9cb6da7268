"""Scalar conversions shared by every codec: timestamps, blobs, booleans and numbers as text.

Parsing is lenient about the form a client picked (an SDK may send a timestamp as epoch seconds,
ISO 8601 or an HTTP date wherever the model allows one) and strict about content: a value that is
not what the shape says raises MalformedInput, which each codec turns into its protocol's
validation error.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime


class MalformedInput(ValueError):
    """A request value does not match its shape (bad number, timestamp, base64, JSON, XML)."""


class MalformedDocument(MalformedInput):
    """The request body (XML or JSON document) is broken or does not match its shape."""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_datetime(value: object) -> datetime:
    """Any timestamp form (datetime, epoch number, ISO 8601, RFC 822 text) as an aware UTC datetime."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, bool):
        raise MalformedInput(f"not a timestamp: {value!r}")
    if isinstance(value, (int, float)):
        return _from_epoch(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return _from_epoch(float(text))
        except ValueError:
            pass
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            try:
                parsed = parsedate_to_datetime(text)
            except (TypeError, ValueError, IndexError) as e:
                raise MalformedInput(f"not a timestamp: {value!r}") from e
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise MalformedInput(f"not a timestamp: {value!r}")


def _from_epoch(seconds: float) -> datetime:
    if not math.isfinite(seconds):
        raise MalformedInput(f"not a timestamp: {seconds!r}")
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError) as e:
        raise MalformedInput(f"timestamp out of range: {seconds!r}") from e


def format_timestamp(value: object, fmt: str) -> str | int | float:
    """A timestamp in a model format: 'iso8601' (ms, Z), 'rfc822' (HTTP date) or 'unixtimestamp'."""
    dt = to_datetime(value).astimezone(UTC)
    if fmt == "unixtimestamp":
        seconds = calendar.timegm(dt.timetuple())
        ms = dt.microsecond // 1000
        return seconds + ms / 1000 if ms else seconds
    if fmt == "rfc822":
        return format_datetime(dt.replace(microsecond=0), usegmt=True)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{dt.microsecond // 1000:03d}Z"


def b64decode(value: str | bytes) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise MalformedInput("invalid base64 value") from e


def b64encode(value: bytes | bytearray | str) -> str:
    if isinstance(value, str):
        value = value.encode()
    return base64.b64encode(value).decode()


def parse_bool_text(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise MalformedInput(f"not a boolean: {text!r}")


# The Java types AWS reads integer shapes into: a value outside them cannot be deserialized.
INT_BITS = {"integer": 32, "long": 64, "short": 16, "byte": 8}
_INT_TEXT = re.compile(r"[+-]?[0-9]{1,40}")


def check_int_range(number: int, kind: str) -> int:
    """`number` if it fits the Java type of an integer shape of `kind`, else MalformedInput."""
    bits = INT_BITS.get(kind)
    if bits is not None and not -(1 << (bits - 1)) <= number < (1 << (bits - 1)):
        raise MalformedInput(f"{number} is out of range for the {kind} member")
    return number


def parse_int_text(text: str, kind: str = "long") -> int:
    """An integer written as text (query, header, XML): ASCII digits only, within its Java type."""
    stripped = text.strip()
    if _INT_TEXT.fullmatch(stripped) is None:
        raise MalformedInput(f"not an integer: {text!r}")
    return check_int_range(int(stripped), kind)


def int_text_reader(kind: str) -> Callable[[str], int]:
    """`parse_int_text` for members of the integer shape type `kind`."""
    return lambda text: parse_int_text(text, kind)


_SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def parse_float_text(text: str) -> float:
    special = _SPECIAL_FLOATS.get(text.strip())
    if special is not None:
        return special
    try:
        return float(text)
    except ValueError as e:
        raise MalformedInput(f"not a number: {text!r}") from e


def format_float(value: float) -> str | float:
    """Floats as AWS writes them: NaN and infinities by name, everything else by repr."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def float_text(value: float) -> str:
    return str(format_float(float(value)))


def bool_text(value: object) -> str:
    return "true" if value else "false"


def json_header_decode(text: str) -> object:
    """A `jsonvalue` header: base64 of a JSON document."""
    try:
        return json.loads(b64decode(text))
    except ValueError as e:
        raise MalformedInput("invalid JSON value header") from e


def json_header_encode(value: object) -> str:
    return b64encode(json.dumps(value, separators=(",", ":")).encode())


def split_header_list(text: str) -> list[str]:
    """A list header (RFC 7230 `a, b, "c,d"`): split on commas outside quotes, unquote items."""
    if '"' not in text:
        return [item.strip() for item in text.split(",")]
    items, current, quoted, i = [], [], False, 0
    while i < len(text):
        ch = text[i]
        if quoted and ch == "\\" and i + 1 < len(text):
            current.append(text[i + 1])
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
        i += 1
    items.append("".join(current).strip())
    return items
