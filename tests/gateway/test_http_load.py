"""A thousand connections at once, half of them slowloris: others keep being served, nothing leaks.

The short version of bench/http_load.py (which reports memory, descriptors and latency).
"""

from __future__ import annotations

import os
import resource
import socket
import time

from tests.strata_process import StrataProcess

CONNECTIONS = 1000
HANG = 120  # seconds: a "did it hang" bound on a loaded CI machine


def _open_sockets(pid: int) -> int:
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                count += 1
        except FileNotFoundError:
            pass
    return count


def _wait_until(predicate, timeout: float = HANG) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def _raise_own_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, needed * 2), hard))


def test_a_thousand_connections_with_slowloris_among_them(strata_factory, unique: str) -> None:
    _raise_own_fd_limit(CONNECTIONS + 200)
    server: StrataProcess = strata_factory(extra_env={"STRATA_HTTP_HEADER_TIMEOUT": "6"})
    s3 = server.client("s3")
    bucket = f"load-{unique}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="warm", Body=b"w")
    pid = server.proc.pid
    baseline = _open_sockets(pid)
    held: list[socket.socket] = []
    slow: list[socket.socket] = []
    try:
        for i in range(CONNECTIONS):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=HANG)
            if i % 2:
                sock.sendall(b"GET /_strata/health HTTP/1.1\r\nX-Slow: ")  # and never the rest
                slow.append(sock)
            else:
                held.append(sock)
        # All accepted (the slowloris half may already be cut off on a slow machine).
        assert _wait_until(lambda: _open_sockets(pid) >= baseline + len(held))
        # Another client is served while they are all open.
        s3.put_object(Bucket=bucket, Key="during", Body=b"served")
        assert s3.get_object(Bucket=bucket, Key="during")["Body"].read() == b"served"
        # The slowloris half is answered 408 and closed by the header timeout.
        for sock in slow:
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 408 "), answer
        # The idle half is still open: a request on any of them is answered.
        held[0].sendall(b"GET /_strata/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert held[0].recv(65536).startswith(b"HTTP/1.1 200 ")
    finally:
        for sock in held + slow:
            sock.close()
    # Every connection's descriptor is given back.
    assert _wait_until(lambda: _open_sockets(pid) <= baseline), (_open_sockets(pid), baseline)
    assert server.health()["uptime_seconds"] >= 0
