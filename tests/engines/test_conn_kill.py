"""conn_kill: the kernel destroys the connections accepted on one address:port, and no others;
the listening socket stays."""

from __future__ import annotations

import socket

import pytest

from strata.engines.conn_kill import can_kill, kill_connections
from strata.engines.nft import nft_usable


def _gone(client: socket.socket) -> bool:
    """Was the client's peer destroyed (reset, or closed)? A timeout means it is still there."""
    client.settimeout(10)
    try:
        return client.recv(1) == b""
    except ConnectionError:
        return True
    except TimeoutError:
        return False


@pytest.mark.skipif(not nft_usable(), reason="needs CAP_NET_ADMIN (as the endpoint router's kernel routes)")
def test_accepted_connections_are_destroyed_and_the_listener_stays() -> None:
    assert can_kill()
    with socket.create_server(("127.0.1.9", 0)) as listener, socket.create_server(("127.0.1.10", 0)) as other:
        port = listener.getsockname()[1]
        with (
            socket.create_connection(("127.0.1.9", port), timeout=10) as client,
            socket.create_connection(other.getsockname(), timeout=10) as bystander,
        ):
            accepted, _ = listener.accept()
            kept, _ = other.accept()
            with accepted, kept:
                assert kill_connections("127.0.1.9", port)
                assert _gone(client)
                bystander.sendall(b"y")
                assert kept.recv(1) == b"y"
        with socket.create_connection(("127.0.1.9", port), timeout=10) as again:
            served, _ = listener.accept()
            with served:
                again.sendall(b"x")
                assert served.recv(1) == b"x"
