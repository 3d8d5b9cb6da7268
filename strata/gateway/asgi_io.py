"""ASGI plumbing: build an HttpRequest from a scope, read or stream its body, send an HttpResponse."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

from strata.protocol.errors import ServiceError
from strata.protocol.http import BodyStream, FileBody, Headers, HttpRequest, HttpResponse

# Non-streaming request bodies are read whole; AWS's largest (DynamoDB batch, KMS) stay well below.
MAX_BUFFERED_BODY = 64 * 1024 * 1024
_FILE_CHUNK = 1024 * 1024


def request_from_scope(scope: dict[str, Any]) -> HttpRequest:
    headers = Headers.from_raw(scope["headers"])
    raw_path = scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else scope["path"]
    path = path.split("?", 1)[0]
    client = scope.get("client")
    return HttpRequest(
        method=scope["method"],
        raw_path=path or "/",
        query_string=scope.get("query_string", b"").decode("latin-1"),
        headers=headers,
        host=headers.get("host", ""),
        client=client[0] if client else "",
    )


def content_length(request: HttpRequest) -> int | None:
    """The body's length on the wire when the client framed it with Content-Length."""
    value = request.headers.get("content-length")
    return int(value) if value and value.isdigit() else None


async def _receive_chunks(receive: Any, length: int | None) -> AsyncIterator[bytes]:
    # granian ends every body with an empty more_body=False message that costs a handoff from its
    # thread; with Content-Length the body is known complete at its last byte, so stop there.
    received = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ServiceError("IncompleteBody", "The request body terminated unexpectedly", 400)
        body = message.get("body", b"")
        if body:
            received += len(body)
            yield body
        if not message.get("more_body", False) or received == length:
            return


def attach_stream(request: HttpRequest, receive: Any) -> None:
    length = content_length(request)
    request.stream = BodyStream(_receive_chunks(receive, length), length)


async def read_body(receive: Any, length: int | None = None) -> bytes:
    """The whole body; `length` (Content-Length) lets it stop at the last byte (see above)."""
    # Fast path: a small body arrives in one message (no async generator for the common case).
    message = await receive()
    if message["type"] == "http.request":
        first = message.get("body", b"")
        if not message.get("more_body", False) or len(first) == length:
            return first
    else:
        raise ServiceError("IncompleteBody", "The request body terminated unexpectedly", 400)
    parts: list[bytes] = [first] if first else []
    size = len(first)
    if size > MAX_BUFFERED_BODY:
        raise ServiceError("RequestEntityTooLarge", "Request body too large", 413)
    async for chunk in _receive_chunks(receive, None if length is None else length - size):
        size += len(chunk)
        if size > MAX_BUFFERED_BODY:
            raise ServiceError("RequestEntityTooLarge", "Request body too large", 413)
        parts.append(chunk)
    return b"".join(parts) if len(parts) != 1 else parts[0]


async def drain(receive: Any, request: HttpRequest) -> None:
    """Consume an unread streaming body so the connection can be reused (or fails cleanly)."""
    if request.stream is not None and not request.stream.consumed:
        try:
            async for _ in request.stream:
                pass
        except Exception:  # noqa: BLE001 - the response is already decided; the client gets it
            pass


async def send_response(send: Any, response: HttpResponse, head: bool, can_pathsend: bool) -> None:
    headers = [(k.encode("latin-1"), str(v).encode("latin-1")) for k, v in response.headers]
    body = response.body
    if type(body) is bytes:  # the common case, in one step: codecs always set Content-Length
        if not any(len(k) == 14 and k.lower() == b"content-length" for k, _ in headers):
            headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head else body})
        return
    names = {k.lower() for k, _ in response.headers}
    if isinstance(body, FileBody):
        size = os.path.getsize(body.path)
        length = body.length if body.length is not None else size - body.offset
        if "content-length" not in names:
            headers.append((b"content-length", str(length).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        if head or length == 0:
            await send({"type": "http.response.body", "body": b""})
        elif can_pathsend and body.offset == 0 and length == size:
            await send({"type": "http.response.pathsend", "path": str(body.path)})
        else:
            await _send_file_range(send, body.path, body.offset, length)
        return
    if isinstance(body, bytes | bytearray | memoryview):
        if "content-length" not in names:
            headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head else bytes(body)})
        return
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    if not head:
        async for chunk in body:
            if chunk:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def _send_file_range(send: Any, path: Any, offset: int, length: int) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        while length > 0:
            chunk = os.pread(fd, min(_FILE_CHUNK, length), offset)
            if not chunk:
                break
            offset += len(chunk)
            length -= len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": length > 0})
        if length > 0:
            await send({"type": "http.response.body", "body": b""})
    finally:
        os.close(fd)
