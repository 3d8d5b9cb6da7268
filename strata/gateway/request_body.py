"""A request's body as it arrives from the connection, read whole or chunk by chunk.

The connection feeds it (`_feed`, `_finish`, `_fail`); the handler reads it. Reading asks the
connection for more (which answers `Expect: 100-continue` and resumes a paused socket), and taking
bytes out tells it when the buffer has drained below the low-water mark.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from typing import Protocol

from strata.protocol.errors import ServiceError

# Non-streaming request bodies are read whole; AWS's largest (DynamoDB batch, KMS) stay well below.
MAX_BUFFERED_BODY = 64 * 1024 * 1024
# Back-pressure: the connection stops reading above HIGH buffered bytes, resumes below LOW.
BODY_HIGH = 4 * 1024 * 1024
BODY_LOW = 1024 * 1024


class BodySource(Protocol):
    """What a body needs from its connection."""

    loop: asyncio.AbstractEventLoop

    def want_body(self, body: RequestBody) -> None: ...

    def body_drained(self) -> None: ...


class RequestBody:
    """The body of one request as it arrives: read whole (`read`) or chunk by chunk (`chunks`)."""

    __slots__ = (
        "_conn",
        "_chunks",
        "_buffered",
        "complete",
        "failed",
        "timed_out",
        "_waiter",
        "expect_continue",
        "length",
    )

    def __init__(self, conn: BodySource, expect_continue: bool, length: int | None) -> None:
        self._conn = conn
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self.complete = False
        self.failed = False
        self.timed_out = False
        self._waiter: asyncio.Future[None] | None = None
        self.expect_continue = expect_continue
        self.length = length  # Content-Length, when the client framed the body with one

    # -- fed by the connection ------------------------------------------------------------------
    def _feed(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self._buffered += len(chunk)
        self._wake()

    def _finish(self) -> None:
        self.complete = True
        self._wake()

    def _fail(self) -> None:
        self.failed = True
        self._wake()

    def _time_out(self) -> None:
        self.timed_out = True
        self._fail()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- read by the handler --------------------------------------------------------------------
    async def _more(self) -> None:
        if self.timed_out:
            raise ServiceError(
                "RequestTimeout",
                "Your socket connection to the server was not read from or written to within "
                "the timeout period. Idle connections will be closed.",
                400,
            )
        if self.failed:
            raise ServiceError("IncompleteBody", "The request body terminated unexpectedly", 400)
        self._conn.want_body(self)
        self._waiter = self._conn.loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _take(self) -> bytes:
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        if self._buffered < BODY_LOW:
            self._conn.body_drained()
        return chunk

    async def read(self, limit: int = MAX_BUFFERED_BODY) -> bytes:
        """The whole body (the common case: it came with the headers, and no await is needed)."""
        while not self.complete:
            if self._buffered > limit:
                raise ServiceError("RequestEntityTooLarge", "Request body too large", 413)
            await self._more()
        if self._buffered > limit:
            raise ServiceError("RequestEntityTooLarge", "Request body too large", 413)
        chunks = self._chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._buffered = 0
        self._conn.body_drained()
        return data

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body in the pieces it arrives in, as soon as each arrives."""
        while True:
            if self._chunks:
                yield self._take()
            elif self.complete:
                return
            else:
                await self._more()

    def discard(self) -> None:
        """Nobody will read the rest: drop what is buffered and whatever still arrives."""
        self._chunks.clear()
        self._buffered = 0
