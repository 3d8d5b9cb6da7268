"""SocketPump (strata.gateway.produced) on a real socket pair: what a produced body's response
puts on the wire, and when."""

from __future__ import annotations

import socket
from collections.abc import Iterator

from strata.gateway.produced import SocketPump
from strata.protocol.http import ProducedBody

HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\n"


def _drain(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except BlockingIOError:
        pass
    return data


def test_the_head_goes_out_with_the_first_piece_not_before_it() -> None:
    """Written alone, the head was a packet (and a client wake-up) of its own."""
    ours, client = socket.socketpair()
    ours.setblocking(False)
    client.setblocking(False)
    seen_before: list[bytes] = []

    def pieces() -> Iterator[bytes]:
        seen_before.append(_drain(client))  # what the client had when the body was first asked for
        yield b"abcd"
        yield b""
        yield b"efgh"

    try:
        assert SocketPump(ours.fileno(), HEAD, ProducedBody(pieces(), 8)).run(0)
        assert seen_before == [b""]
        assert _drain(client) == HEAD + b"abcdefgh"
    finally:
        ours.close()
        client.close()


def test_an_empty_body_still_sends_its_head() -> None:
    ours, client = socket.socketpair()
    ours.setblocking(False)
    client.setblocking(False)
    try:
        assert SocketPump(ours.fileno(), HEAD, ProducedBody(iter(()), 0)).run(0)
        assert _drain(client) == HEAD
    finally:
        ours.close()
        client.close()
