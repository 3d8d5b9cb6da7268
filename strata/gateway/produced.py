"""Sending a `ProducedBody` (bytes made as they go out: an encrypted object's plaintext).

On a plain TCP connection the pieces go from the producer's reused buffer straight into the
socket (`SocketPump`), the response head riding in the first write. Through the transport instead,
every byte the socket did not take at once was copied again into the transport's buffer and sent
from the loop's callbacks: a 64 MiB encrypted GET cost ~4x the server CPU of the same GET sent with
sendfile, and a 1 MiB one ~2x.

Large bodies are pumped in a worker thread (`BODY_POOL`): reading the stored bytes and writing
the socket release the GIL, so the loop serves other requests meanwhile. A thread waits a moment
for a full socket (a reading client empties it in well under a millisecond) and otherwise gives
the pump back, so a slow client never holds a thread: the loop waits until the socket takes more
and hands the pump to a thread again. Small bodies are pumped on the loop itself (a trip to a
thread costs more than their work).

Over TLS the bytes must go through the TLS transport: `transport_pieces` copies each piece out
of the producer's buffer in a thread, one piece ahead of the socket.
"""

from __future__ import annotations

import asyncio
import os
import select
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import Future, ThreadPoolExecutor

from strata.affinity import unpin_thread
from strata.protocol.http import ProducedBody

# Threads that advance producers and write their pieces (never waiting long on a client).
BODY_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="http-body", initializer=unpin_thread)
# Bodies up to this size are pumped on the event loop.
ON_LOOP = 1 << 20
# How long a pumping thread waits for a full socket before handing the pump back to the loop.
THREAD_WAIT_MS = 20


class SocketPump:
    """Writes `head` and then the pieces of `body` to the non-blocking socket `fd`, as far as the
    socket takes them; `run` again once it can take more. Used by one thread at a time.

    The head goes out in one write with the first piece, not before it: written alone (the
    socket has TCP_NODELAY) it was a packet of its own, and a wake-up of the client, which read
    it and slept again until the body came (1 MiB encrypted GET: two writes and two wake-ups)."""

    def __init__(self, fd: int, head: bytes, body: ProducedBody) -> None:
        self.fd = fd
        self.stopped = False  # set by the loop when the connection is gone: the pump stops
        self._out: list[memoryview] = [memoryview(head)] if head else []
        self._pieces = body.pieces
        self._started = False  # whether the first piece was asked for
        self._poll: select.poll | None = None

    def run(self, wait_ms: int) -> bool:
        """Write until everything is out (True) or the socket has stayed full `wait_ms` (False).
        Raises OSError when the socket fails (the client went away)."""
        out = self._out
        while True:
            if self.stopped:
                raise ConnectionResetError("client went away")
            if not out or not self._started:
                self._started = True
                piece = next(self._pieces, None)
                if piece is None:
                    if not out:
                        return True
                elif len(piece):
                    out.append(memoryview(piece))
                continue
            try:
                sent = os.writev(self.fd, out)
            except BlockingIOError:
                if wait_ms <= 0:
                    return False
                if self._poll is None:
                    self._poll = select.poll()
                    self._poll.register(self.fd, select.POLLOUT)
                if not self._poll.poll(wait_ms):
                    return False
                continue
            while sent:
                first = out[0]
                if sent >= len(first):
                    sent -= len(first)
                    del out[0]
                else:
                    out[0] = first[sent:]
                    sent = 0


async def transport_pieces(body: ProducedBody) -> AsyncGenerator[bytes, None]:
    """The pieces of `body` as bytes of their own, each made in a worker thread one step ahead of
    its consumer; the body is closed at the end (also when the consumer stops early)."""
    pieces = body.pieces

    def step() -> bytes | None:
        piece = next(pieces, None)
        return None if piece is None else bytes(piece)

    pending = BODY_POOL.submit(step)
    try:
        while True:
            chunk = await asyncio.wrap_future(pending)
            if chunk is None:
                return
            pending = BODY_POOL.submit(step)
            yield chunk
    finally:
        after(pending, body.close)


def after(work: Future, then: Callable[[], object]) -> None:
    """Call `then` once `work` (a thread pool's future) has finished, now if it has: what it
    uses (a producer, a file, a socket handle) must not be closed under it."""
    if work.done():
        then()
    else:
        work.add_done_callback(lambda _: then())
