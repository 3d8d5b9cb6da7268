"""No client holds a connection forever: head, body, idle and send timeouts, and the per-address cap.

Raw sockets against a server started with short bounds (seconds instead of a minute), so each
test sees the bound act; the waits below are "did it hang" limits, far above those bounds.
"""

from __future__ import annotations

import socket
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.strata_process import StrataProcess

SHORT = {
    "STRATA_HTTP_HEADER_TIMEOUT": "2",
    "STRATA_HTTP_BODY_TIMEOUT": "2",
    "STRATA_HTTP_IDLE_TIMEOUT": "3",
    "STRATA_HTTP_SEND_TIMEOUT": "3",
}
HANG = 60  # seconds: no bound above is anywhere near this


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrataProcess]:
    proc = StrataProcess(tmp_path_factory.mktemp("limits") / "data", extra_env=SHORT).start()
    yield proc
    proc.stop()


def _connect(server: StrataProcess, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket()
    sock.settimeout(HANG)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", server.port))
    return sock


def _read_to_end(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (a reset counts as closed)."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def _status(data: bytes) -> int:
    return int(data.split(b" ", 2)[1])


def _wait_until(predicate, timeout: float = HANG) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_a_head_trickled_a_byte_at_a_time_is_cut_off_with_408(server: StrataProcess) -> None:
    sock = _connect(server)
    try:
        sock.sendall(b"GET /_strata/health HTTP/1.1\r\n")
        started = time.monotonic()
        answer = b""
        for byte in b"X-Slow: " + b"a" * 200:  # one byte each 0.25 s: 50 s if never cut off
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.25)
            sock.setblocking(False)
            try:
                answer = sock.recv(65536)
                break
            except BlockingIOError:
                pass
            finally:
                sock.setblocking(True)
                sock.settimeout(HANG)
        assert time.monotonic() - started < HANG
        answer += _read_to_end(sock)
        assert _status(answer) == 408, answer
        assert b"connection: close" in answer
    finally:
        sock.close()


def test_a_body_that_never_comes_ends_the_request_with_request_timeout(server: StrataProcess) -> None:
    s3 = server.client("s3")
    s3.create_bucket(Bucket="limits-body")
    url = urllib.parse.urlsplit(
        s3.generate_presigned_url("put_object", Params={"Bucket": "limits-body", "Key": "k"})
    )
    sock = _connect(server)
    try:
        sock.sendall(
            f"PUT {url.path}?{url.query} HTTP/1.1\r\nHost: {url.netloc}\r\n"
            "Content-Length: 10\r\n\r\n".encode()
        )
        answer = _read_to_end(sock)  # a hang here is the defect: the server waits forever
        assert _status(answer) == 400, answer
        assert b"<Code>RequestTimeout</Code>" in answer
    finally:
        sock.close()
    fresh = server.client("s3")  # s3's pooled connection may have met the short idle timeout
    with pytest.raises(fresh.exceptions.NoSuchKey):
        fresh.get_object(Bucket="limits-body", Key="k")


def test_a_body_that_stops_half_way_is_cut_off(server: StrataProcess) -> None:
    sock = _connect(server)
    try:
        sock.sendall(
            f"POST /_strata/clock HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"adv'.encode()
        )
        answer = _read_to_end(sock)
        assert _status(answer) == 400, answer
        assert b"not read from or written to within the timeout period" in answer
        assert b"connection: close" in answer
    finally:
        sock.close()


def test_an_idle_connection_is_closed(server: StrataProcess) -> None:
    silent = _connect(server)
    used = _connect(server)
    try:
        used.sendall(f"GET /_strata/health HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode())
        answer = _read_to_end(used)  # answered, then closed once idle for the bound
        assert _status(answer) == 200
        assert _read_to_end(silent) == b""
    finally:
        silent.close()
        used.close()


def _established(server_port: int, client_port: int) -> bool:
    """Whether the server's side of the connection from `client_port` is still open."""
    local, remote = f":{server_port:04X}", f":{client_port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(local) and fields[2].endswith(remote):
            return fields[3] == "01"  # TCP_ESTABLISHED
    return False


def test_a_client_that_reads_none_of_its_answer_is_cut_off(server: StrataProcess) -> None:
    s3 = server.client("s3")
    s3.create_bucket(Bucket="limits-send")
    size = 48 * 1024 * 1024
    s3.put_object(Bucket="limits-send", Key="big", Body=b"\0" * size)
    url = urllib.parse.urlsplit(
        s3.generate_presigned_url("get_object", Params={"Bucket": "limits-send", "Key": "big"})
    )
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(HANG)
    sock.connect(("127.0.0.1", server.port))
    client_port = sock.getsockname()[1]
    try:
        sock.sendall(f"GET {url.path}?{url.query} HTTP/1.1\r\nHost: {url.netloc}\r\n\r\n".encode())
        assert _established(server.port, client_port)
        # Not reading: the server's socket fills and its sending stalls; after the bound it hangs up.
        assert _wait_until(lambda: not _established(server.port, client_port)), "still connected"
        assert len(_read_to_end(sock)) < size
    finally:
        sock.close()


def test_connections_beyond_the_per_address_cap_get_503_and_others_are_served(
    strata_factory,
) -> None:
    server = strata_factory(extra_env={"STRATA_MAX_CONNECTIONS_PER_IP": "20"})
    held = [_connect(server) for _ in range(20)]
    try:
        for sock in held:  # every one of them is served
            sock.sendall(f"GET /_strata/health HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode())
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        extra = _connect(server)
        answer = _read_to_end(extra)
        extra.close()
        assert _status(answer) == 503 and b"connection: close" in answer
        # Another address is served all the while.
        other = _connect(server, source="127.0.0.2")
        other.sendall(b"GET /_strata/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        assert _status(_read_to_end(other)) == 200
        other.close()
        # A slot freed is a slot taken again.
        held.pop().close()

        def served() -> bool:
            sock = _connect(server)
            try:
                sock.sendall(b"GET /_strata/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                return _status(_read_to_end(sock)) == 200
            finally:
                sock.close()

        assert _wait_until(served)
    finally:
        for sock in held:
            sock.close()


def test_bad_limit_settings_are_refused(tmp_path: Path) -> None:
    proc = StrataProcess(tmp_path / "data", extra_env={"STRATA_HTTP_BODY_TIMEOUT": "nan"})
    with pytest.raises(RuntimeError, match="STRATA_HTTP_BODY_TIMEOUT must be a positive number"):
        proc.start(timeout=30)
