"""AWS event streams (`application/vnd.amazon.eventstream`) for response payloads such as S3
SelectObjectContent's `Payload`.

A provider returns the payload member as an iterable or async iterable of events, each a one-key
dict naming the event (`{"Records": {"Payload": b"..."}}`, `{"End": {}}`); the codec encodes each as
one binary message: prelude (total length, headers length, CRC32), headers (`:message-type`,
`:event-type`, `:content-type`, then the event's `eventheader` members), the payload (the
`eventpayload` member, or the event's other members written in the protocol's body format), and a
CRC32 of the whole message. A ServiceError raised while iterating becomes an `error` message, the
way AWS ends a stream that fails midway.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

from botocore.model import Shape

from strata.protocol.codecs.values import to_datetime
from strata.protocol.errors import ServiceError

_STRING, _BLOB, _INT32, _INT64, _TIMESTAMP, _TRUE, _FALSE = 7, 6, 4, 5, 8, 0, 1


def _header(name: str, value: Any) -> bytes:
    key = name.encode()
    prefix = struct.pack("B", len(key)) + key
    if isinstance(value, bool):
        return prefix + struct.pack("B", _TRUE if value else _FALSE)
    if isinstance(value, int):
        kind = _INT32 if -(2**31) <= value < 2**31 else _INT64
        return prefix + struct.pack(">Bi" if kind == _INT32 else ">Bq", kind, value)
    if isinstance(value, datetime):
        return prefix + struct.pack(">Bq", _TIMESTAMP, int(to_datetime(value).timestamp() * 1000))
    data = value if isinstance(value, (bytes, bytearray)) else str(value).encode()
    kind = _BLOB if isinstance(value, (bytes, bytearray)) else _STRING
    return prefix + struct.pack(">BH", kind, len(data)) + bytes(data)


def encode_message(headers: dict[str, Any], payload: bytes) -> bytes:
    """One event-stream message."""
    header_bytes = b"".join(_header(k, v) for k, v in headers.items())
    total = 12 + len(header_bytes) + len(payload) + 4
    prelude = struct.pack(">II", total, len(header_bytes))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + header_bytes + payload
    return message + struct.pack(">I", zlib.crc32(message))


class EventStreamWriter:
    """Encodes the events of one eventstream shape; compiled once per operation."""

    def __init__(
        self,
        shape: Shape,
        body_writer: Callable[[Shape, str | None], Callable[[Any], bytes]],
        structure_content_type: str,
    ) -> None:
        self._events: dict[str, Callable[[dict], tuple[dict[str, Any], bytes]]] = {}
        for name, event in shape.members.items():
            self._events[name] = self._compile_event(name, event, body_writer, structure_content_type)

    @staticmethod
    def _compile_event(
        name: str,
        event: Shape,
        body_writer: Callable[[Shape, str | None], Callable[[Any], bytes]],
        structure_content_type: str,
    ) -> Callable[[dict], tuple[dict[str, Any], bytes]]:
        header_members = [m for m, s in event.members.items() if s.serialization.get("eventheader")]
        payload_member = next(
            (m for m, s in event.members.items() if s.serialization.get("eventpayload")), None
        )
        if payload_member is not None:
            payload_shape = event.members[payload_member]
            kind = payload_shape.type_name
            if kind == "blob":
                content_type = "application/octet-stream"
                write: Callable[[Any], bytes] = lambda v: bytes(v) if v is not None else b""  # noqa: E731
            elif kind == "string":
                content_type = "text/plain"
                write = lambda v: (v or "").encode()  # noqa: E731
            else:
                content_type = structure_content_type
                to_body = body_writer(payload_shape, payload_member)
                write = lambda v: to_body(v) if v is not None else b""  # noqa: E731
        elif len(event.members) > len(header_members):
            content_type = structure_content_type
            write = body_writer(event, name)
        else:
            content_type = structure_content_type
            write = lambda v: b""  # noqa: E731

        def encode(value: dict) -> tuple[dict[str, Any], bytes]:
            headers: dict[str, Any] = {":message-type": "event", ":event-type": name}
            payload = write(value.get(payload_member) if payload_member is not None else value)
            if payload:
                headers[":content-type"] = content_type
            for member in header_members:
                if value.get(member) is not None:
                    headers[member] = value[member]
            return headers, payload

        return encode

    def encode_event(self, event: dict) -> bytes:
        ((name, value),) = event.items()
        encode = self._events.get(name)
        if encode is None:
            raise ValueError(f"unknown event {name!r}")
        headers, payload = encode(value or {})
        return encode_message(headers, payload)

    async def stream(self, events: Any) -> AsyncIterator[bytes]:
        """The encoded messages of a provider's events (sync or async iterable)."""
        try:
            if hasattr(events, "__aiter__"):
                async for event in events:
                    yield self.encode_event(event)
            else:
                for event in events:
                    yield self.encode_event(event)
        except ServiceError as e:
            headers = {":message-type": "error", ":error-code": e.code, ":error-message": e.message}
            yield encode_message(headers, b"")
