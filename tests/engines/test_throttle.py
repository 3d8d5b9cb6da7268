"""Kernel bandwidth limits (strata.engines.throttle) on a loopback TCP server of the test's own."""

from __future__ import annotations

import random
import socket
import threading
import time

import pytest

from strata.engines.nft import nft_usable
from strata.engines.throttle import Group, Throttle
from tests.services.efs.helpers import nft_ruleset

pytestmark = pytest.mark.skipif(not nft_usable(), reason="needs root and nft (Debian nftables)")
MIB = 1 << 20


def serve_bytes(size: int) -> tuple[str, int, threading.Thread]:
    """A server on a loopback address of its own that sends `size` bytes to its first client."""
    address = f"127.{random.randint(100, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
    listener = socket.create_server((address, 0))
    port = listener.getsockname()[1]

    def send() -> None:
        with listener, listener.accept()[0] as conn:
            block = b"x" * MIB
            for _ in range(size // MIB):
                conn.sendall(block)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return address, port, thread


def test_a_rate_above_one_kernel_bucket_is_held_by_several() -> None:
    # One bucket holds at most `max_rate` (the kernel's: 16 GiB/s; EFS Elastic reads need 60):
    # 8 MiB/s with buckets of at most 2 MiB/s is four buckets of 2 MiB/s, dealt packets in turn.
    size = 36 * MIB
    address, port, sender = serve_bytes(size)
    throttle = Throttle("test_shards", max_rate=2 * MIB)
    try:
        throttle.set("g", Group((address,), (port,), None, send_bytes_per_second=8 * MIB))
        ruleset = nft_ruleset()
        assert ruleset.count("rate over 2 mbytes/second") >= 4 and "numgen inc mod 4" in ruleset
        t = time.monotonic()
        received = 0
        with socket.create_connection((address, port), timeout=60) as client:
            while chunk := client.recv(MIB):
                received += len(chunk)
        elapsed = time.monotonic() - t
        assert received == size
        # Each bucket passes 1 MiB plus a second of its rate at once, 12 MiB in all, then 8 MiB/s:
        # 36 MiB take at least 3 s (unlimited, as a rate above one bucket was before: well under 1 s).
        assert elapsed > 2.5
        assert throttle.totals()["g"][0] >= size
    finally:
        throttle.stop()
        sender.join(timeout=10)
