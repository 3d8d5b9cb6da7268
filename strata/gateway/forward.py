"""Pass one HTTP request on to another gateway (the engine host) and stream its answer back.

What a caller may rely on:
- The request goes out as the client sent it: method, path and query untouched, every header
  (Host and the SigV4 ones included: the receiving gateway verifies the signature) except the
  hop-by-hop ones (Connection, Transfer-Encoding, Expect ...), which belong to each connection.
- Headers of our own say where it came from: `FORWARDED_BY` names the forwarding gateway (a
  gateway that is not the host does not forward a forwarded request again: a stale host URL could
  name it); `FORWARDED_FOR` and `FORWARDED_PROTO` the client's address and whether it came over
  TLS, which the host believes (for aws:SourceIp and aws:SecureTransport) only beside the host's
  own token in `FORWARDED_PROOF` (strata.gateway.engine_host). A client's own x-strata-forwarded-*
  headers are dropped.
- The body is streamed both ways: the request's as it arrives from the client, the answer's as it
  arrives from the host (with its Content-Length when the host gave one).
- `Unreachable` is raised only when nothing was sent (no connection): the caller may try again,
  since the body is still unread. One connection per request (engine services' APIs are control
  planes: a connection's set-up is small beside the work behind the call).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httptools

from strata.gateway.request_body import RequestBody
from strata.protocol.http import HttpRequest, HttpResponse

FORWARDED_BY = "x-strata-forwarded-by"
FORWARDED_FOR = "x-strata-forwarded-for"
FORWARDED_PROTO = "x-strata-forwarded-proto"
FORWARDED_PROOF = "x-strata-forwarded-proof"
_OURS = "x-strata-forwarded-"
CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 300.0  # a slow operation's answer (a snapshot of a big volume ...) may take minutes
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "expect",
    }
)
_RESPONSE_DROPPED = _HOP_BY_HOP | {"date"}  # our server sends its own Date


class Unreachable(Exception):
    """No connection to the host could be made; nothing of the request was sent."""


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


class _Answer:
    """httptools callbacks: the status and headers, then the body's pieces as they are parsed."""

    def __init__(self) -> None:
        self.headers: list[tuple[str, str]] = []
        self.headed = False
        self.done = False
        self.pieces: list[bytes] = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.headed = True

    def on_body(self, body: bytes) -> None:
        self.pieces.append(body)

    def on_message_complete(self) -> None:
        self.done = True


async def forward(url: str, token: str, request: HttpRequest, body: RequestBody, by: str) -> HttpResponse:
    """The host's answer to `request`, its body streamed from the host as the client reads it;
    `token`: the host's (proves `by` is a gateway), `by`: this gateway's URL."""
    host, port = address(url)
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as e:
        raise Unreachable(f"{url}: {e}") from None
    try:
        await _send(writer, request, body, by, token)
        answer = _Answer()
        parser = httptools.HttpResponseParser(answer)
        while not answer.headed:
            await _feed(reader, parser)
        status = parser.get_status_code()
    except BaseException:
        writer.close()
        raise
    headers = [(k, v) for k, v in answer.headers if k.lower() not in _RESPONSE_DROPPED]
    if request.method == "HEAD" or status in (204, 304) or (answer.done and not answer.pieces):
        writer.close()
        return HttpResponse(status, headers, b"".join(answer.pieces))
    return HttpResponse(status, headers, _body(reader, writer, parser, answer))


async def _send(
    writer: asyncio.StreamWriter, request: HttpRequest, body: RequestBody, by: str, token: str
) -> None:
    target = request.raw_path + (f"?{request.query_string}" if request.query_string else "")
    chunked = "chunked" in (request.headers.get("transfer-encoding") or "").lower()
    lines = [f"{request.method} {target} HTTP/1.1"]
    lines += [
        f"{k}: {v}"
        for k, v in request.headers.raw_items()
        if k not in _HOP_BY_HOP and not k.startswith(_OURS)
    ]
    lines += [
        f"{FORWARDED_BY}: {by}",
        f"{FORWARDED_PROOF}: {token}",
        f"{FORWARDED_FOR}: {request.client}",
        f"{FORWARDED_PROTO}: {'https' if request.secure else 'http'}",
        "connection: close",
    ]
    if chunked:
        lines.append("transfer-encoding: chunked")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    if chunked or body.length:
        try:
            async for chunk in body.chunks():
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
                await writer.drain()
            if chunked:
                writer.write(b"0\r\n\r\n")
        except ConnectionError:
            body.discard()  # the host answered early and closed (a refused signature ...)
    await writer.drain()


async def _feed(reader: asyncio.StreamReader, parser: httptools.HttpResponseParser) -> None:
    """Parse what arrives next (Strata frames every answer: the connection never ends one)."""
    data = await asyncio.wait_for(reader.read(65536), READ_TIMEOUT)
    if not data:
        raise ConnectionResetError("the engine host closed the connection mid-answer")
    parser.feed_data(data)


async def _body(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    parser: httptools.HttpResponseParser,
    answer: _Answer,
) -> AsyncIterator[bytes]:
    try:
        while True:
            pieces, answer.pieces = answer.pieces, []
            for piece in pieces:
                yield piece
            if answer.done:
                return
            await _feed(reader, parser)
    finally:
        writer.close()
