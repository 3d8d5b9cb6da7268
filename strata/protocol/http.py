"""The HTTP request and response as the protocol layer sees them, independent of the HTTP server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote_plus


class Headers:
    """Case-insensitive, multi-valued request headers (names stored lower-case).

    Built from a server's raw header list with `from_raw`, only the joined name -> value map is
    made up front (every request reads it); the per-occurrence list is decoded the first time
    something asks for it (SigV2, header edits), which most requests never do.
    """

    __slots__ = ("_items", "_map", "_raw")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] | None = []
        self._map: dict[str, str] = {}
        self._raw: list[tuple[bytes, bytes]] | None = None
        for k, v in items:
            self.add(k, v)

    @classmethod
    def from_raw(cls, raw: list[tuple[bytes, bytes]]) -> Headers:
        """From (name, value) byte pairs as the HTTP parser passes them (latin-1, any case)."""
        self = cls.__new__(cls)
        m: dict[str, str] = {}
        for k, v in raw:
            name = k.decode("latin-1").lower()
            value = v.decode("latin-1")
            # Repeated headers join with "," as HTTP allows (and as SigV4 canonicalisation expects).
            m[name] = f"{m[name]},{value}" if name in m else value
        self._map = m
        self._items = None
        self._raw = raw
        return self

    def _list(self) -> list[tuple[str, str]]:
        if self._items is None:
            self._items = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in self._raw or ()]
        return self._items

    def add(self, name: str, value: str) -> None:
        name = name.lower()
        self._list().append((name, value))
        self._map[name] = f"{self._map[name]},{value}" if name in self._map else value

    def get(self, name: str, default: str | None = None) -> str | None:
        # Callers mostly ask with lower-case names already: one lookup, lower() only on a miss.
        value = self._map.get(name)
        if value is None:
            return self._map.get(name.lower(), default)
        return value

    def __getitem__(self, name: str) -> str:
        return self._map[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._map

    def set(self, name: str, value: str) -> None:
        name = name.lower()
        self._items = [(k, v) for k, v in self._list() if k != name] + [(name, value)]
        self._map[name] = value

    def remove(self, name: str) -> None:
        name = name.lower()
        self._items = [(k, v) for k, v in self._list() if k != name]
        self._map.pop(name, None)

    def items(self) -> list[tuple[str, str]]:
        """Every header as (lower-case name, joined value), one per name."""
        return list(self._map.items())

    def raw_items(self) -> list[tuple[str, str]]:
        return list(self._list())

    def keys(self) -> list[str]:
        return list(self._map)

    def __repr__(self) -> str:
        return f"Headers({self._list()!r})"


class BodyStream:
    """A request body read incrementally. Iterate with `async for chunk in stream`.

    Wrappers (aws-chunked decoding, payload hash checks) replace `source`; a consumer sees only
    verified bytes, and a failed check raises ServiceError from the iteration.
    """

    def __init__(self, source: AsyncIterator[bytes], length: int | None = None) -> None:
        self.source = source
        self.length = length  # decoded length when known (Content-Length or x-amz-decoded-content-length)
        self.consumed = False
        # aws-chunked trailers (e.g. {"x-amz-checksum-crc32": "..."}), verified and filled in by
        # the SigV4 layer once the body has been read to the end.
        self.trailers: dict[str, str] = {}

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[bytes]:
        if self.consumed:
            raise RuntimeError("request body already consumed")
        self.consumed = True
        async for chunk in self.source:
            if chunk:
                yield chunk

    async def read_all(self, limit: int | None = None) -> bytes:
        parts, n = [], 0
        async for chunk in self:
            n += len(chunk)
            if limit is not None and n > limit:
                from strata.protocol.errors import ServiceError

                raise ServiceError(
                    "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size", 400
                )
            parts.append(chunk)
        return b"".join(parts)


@dataclass(slots=True)  # one per request: slots make building it and reading its fields cheaper
class HttpRequest:
    method: str
    raw_path: str  # percent-encoded as received, without the query string
    query_string: str  # raw
    headers: Headers
    host: str = ""
    body: bytes = b""  # the whole body when it was read up front (non-streaming operations)
    stream: BodyStream | None = None  # the body, when the operation streams it (S3 PutObject ...)
    client: str = ""  # peer address
    secure: bool = False  # arrived over TLS (policies read it as aws:SecureTransport)
    tls: tuple[str, str] | None = None  # over TLS: (cipher suite, protocol version), for S3's access logs
    # Path-style path for routing when the request came virtual-hosted (`bucket.s3.host/key` ->
    # `/bucket/key`); SigV4 always verifies `raw_path`, the path the client signed.
    route_path: str = ""
    _query: list[tuple[str, str]] | None = field(default=None, repr=False)
    _query_map: dict[str, str] | None = field(default=None, repr=False)

    @property
    def query(self) -> list[tuple[str, str]]:
        """Decoded query parameters in order (blank values kept: `?versioning` -> ("versioning", ""))."""
        if self._query is None:
            self._query = _parse_query(self.query_string)
        return self._query

    @property
    def routing_path(self) -> str:
        return self.route_path or self.raw_path

    def query_dict(self) -> dict[str, str]:
        """The parameters by name (the last of repeated ones); one dict per request, read-only."""
        if self._query_map is None:
            self._query_map = dict(self.query)
        return self._query_map


_decode_short = lru_cache(maxsize=4096)(unquote_plus)  # clients repeat encoded components


def _decode(component: str) -> str:
    # Only short components are remembered, so the cache stays small.
    return _decode_short(component) if len(component) <= 256 else unquote_plus(component)


def _parse_query(query_string: str) -> list[tuple[str, str]]:
    """parse_qsl(keep_blank_values=True), decoding only the components that need it (most don't)."""
    out = []
    for part in query_string.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        if "%" in name or "+" in name:
            name = _decode(name)
        if "%" in value or "+" in value:
            value = _decode(value)
        out.append((name, value))
    return out


@dataclass
class FileBody:
    """A response body served from a file (zero-copy where the server can)."""

    path: Path
    offset: int = 0
    length: int | None = None  # None: to the end of the file


@dataclass
class ProducedBody:
    """A response body of `length` bytes made as it goes out by a blocking producer (an encrypted
    object's plaintext, opened chunk by chunk).

    `pieces` is an iterator whose buffers are valid only until the next is asked for (they are
    reused: fresh ones cost a page fault every 4 KiB). The plain HTTP listener writes them straight
    to the socket, advancing the iterator in a worker thread for large bodies (one thread at a
    time); other consumers copy each piece. Whoever sends the body closes the iterator when done.
    """

    pieces: Iterator[bytes | bytearray | memoryview]
    length: int

    def close(self) -> None:
        close = getattr(self.pieces, "close", None)
        if close is not None:
            close()


ResponseBody = bytes | FileBody | ProducedBody | AsyncIterator[bytes]


@dataclass
class HttpResponse:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: ResponseBody = b""
