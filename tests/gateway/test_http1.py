"""HTTP/1.1 on the wire, spoken with raw sockets: pipelining, 100-continue, chunked bodies, bad input."""

from __future__ import annotations

import json
import random
import socket
import time
import urllib.parse

import pytest
from botocore.exceptions import ClientError

from tests.strata_process import StrataProcess


class _Wire:
    """A raw client connection that reads responses framed by Content-Length (or chunked)."""

    def __init__(self, server: StrataProcess) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        self.host = f"127.0.0.1:{server.port}"
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buf += data
        return bool(data)

    def _line_block(self) -> bytes:
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise EOFError(self.buf)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        return head

    def response(self, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
        head = self._line_block().decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        headers: dict[str, str] = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if head_only or status in (100, 204, 304):
            return status, headers, b""
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                while b"\r\n" not in self.buf:
                    assert self._fill()
                size_line, self.buf = self.buf.split(b"\r\n", 1)
                size = int(size_line, 16)
                while len(self.buf) < size + 2:
                    assert self._fill()
                body += self.buf[:size]
                self.buf = self.buf[size + 2 :]
                if size == 0:
                    return status, headers, body
        length = int(headers["content-length"])
        while len(self.buf) < length:
            if not self._fill():
                raise EOFError(self.buf)
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, headers, body

    def closed_by_server(self) -> bool:
        try:
            return self.buf == b"" and self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def wire(strata_server: StrataProcess):
    w = _Wire(strata_server)
    yield w
    w.close()


def _get(path: str, host: str, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()


def test_pipelined_requests_are_answered_in_order(wire: _Wire) -> None:
    wire.send(
        _get("/_strata/health", wire.host)
        + _get("/_strata/clock", wire.host)
        + _get("/_strata/nowhere", wire.host)
    )
    first, second, third = wire.response(), wire.response(), wire.response()
    assert first[0] == 200 and "uptime_seconds" in json.loads(first[2])
    assert second[0] == 200 and "offset_seconds" in json.loads(second[2])
    assert third[0] == 404
    # and the connection stays open for more
    wire.send(_get("/_strata/health", wire.host))
    assert wire.response()[0] == 200
    assert "date" in first[1]


def test_pipelined_requests_then_a_half_close_are_all_answered(strata_server: StrataProcess) -> None:
    """`printf '...' | nc -N`: the client sends its requests and shuts its sending side; every
    request is answered, then the server closes. The end of input may arrive with the requests or
    just after the answers were made (still waiting in the server's outbox): both are tried."""
    rng = random.Random(7)
    for attempt in range(200):
        w = _Wire(strata_server)
        try:
            w.send(_get("/_strata/health", w.host) * 2)
            if attempt % 2:
                time.sleep(rng.random() * 0.003)
            w.sock.shutdown(socket.SHUT_WR)
            assert [w.response()[0] for _ in range(2)] == [200] * 2, attempt
            assert w.closed_by_server()
        finally:
            w.close()


def test_expect_100_continue_is_answered_before_the_body_is_sent(wire: _Wire) -> None:
    body = b'{"advance": 0}'
    wire.send(
        f"POST /_strata/clock HTTP/1.1\r\nHost: {wire.host}\r\nExpect: 100-continue\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    )
    status, _, _ = wire.response()
    assert status == 100
    wire.send(body)
    status, _, data = wire.response()
    assert status == 200 and "offset_seconds" in json.loads(data)


def test_upload_refused_before_its_body_never_asks_for_it(strata_server: StrataProcess, wire: _Wire) -> None:
    """A PUT with a bad signature and Expect: 100-continue gets 403 at once, never 100 Continue."""
    strata_server.client("s3").create_bucket(Bucket="wire-expect")
    head = (
        f"PUT /wire-expect/k HTTP/1.1\r\nHost: {wire.host}\r\nExpect: 100-continue\r\n"
        "X-Amz-Date: 20260101T000000Z\r\nX-Amz-Content-Sha256: UNSIGNED-PAYLOAD\r\n"
        "Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, "
        f"SignedHeaders=host;x-amz-date, Signature={'0' * 64}\r\n"
        f"Content-Length: {50 * 1024 * 1024}\r\n\r\n"
    )
    wire.send(head.encode())
    status, headers, data = wire.response()
    assert status == 403
    assert b"<Code>" in data
    # the body was never sent, so the connection cannot be reused: the server closes it
    assert headers.get("connection") == "close"
    assert wire.closed_by_server()


def test_chunked_request_body_is_read(wire: _Wire) -> None:
    wire.send(
        f"POST /_strata/clock HTTP/1.1\r\nHost: {wire.host}\r\nTransfer-Encoding: chunked\r\n"
        "Content-Type: application/json\r\n\r\n"
        '5\r\n{"adv\r\n9\r\nance": 0}\r\n0\r\n\r\n'.encode()
    )
    status, _, data = wire.response()
    assert status == 200 and "offset_seconds" in json.loads(data)


@pytest.mark.parametrize(
    "raw",
    [
        b"NOT A REQUEST\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header Line\r\n\r\n",
    ],
)
def test_malformed_request_gets_400_and_a_closed_connection(wire: _Wire, raw: bytes) -> None:
    wire.send(raw)
    status, headers, _ = wire.response()
    assert status == 400
    assert headers.get("connection") == "close"
    assert wire.closed_by_server()


def test_requests_before_a_malformed_one_are_answered_then_it_gets_400_and_the_close(
    wire: _Wire,
) -> None:
    """Pipelined: the complete requests before the bad one are answered in order, the bad one gets
    its 400, and what came after it is not read (as nginx does: 400, then close)."""
    wire.send(
        _get("/_strata/health", wire.host)
        + _get("/_strata/clock", wire.host)
        + b"NOT A REQUEST\r\n\r\n"
        + _get("/_strata/health", wire.host)
    )
    first, second, third = wire.response(), wire.response(), wire.response()
    assert first[0] == 200 and "uptime_seconds" in json.loads(first[2])
    assert second[0] == 200 and "offset_seconds" in json.loads(second[2])
    assert third[0] == 400 and third[1].get("connection") == "close"
    assert wire.closed_by_server()


def test_a_malformed_chunked_body_after_a_good_request_gets_400(wire: _Wire) -> None:
    wire.send(
        _get("/_strata/health", wire.host)
        + f"POST /_strata/clock HTTP/1.1\r\nHost: {wire.host}\r\nTransfer-Encoding: chunked\r\n"
        "Content-Type: application/json\r\n\r\nzz\r\n{}\r\n0\r\n\r\n".encode()
    )
    first, second = wire.response(), wire.response()
    assert first[0] == 200 and "uptime_seconds" in json.loads(first[2])
    assert second[0] == 400 and second[1].get("connection") == "close"
    assert wire.closed_by_server()


def test_oversized_header_block_is_refused(wire: _Wire) -> None:
    wire.send(_get("/_strata/health", wire.host, "X-Big: " + "a" * 100_000 + "\r\n"))
    status, _, _ = wire.response()
    assert status == 431
    assert wire.closed_by_server()


def test_connection_close_and_http_1_0_are_honoured(strata_server: StrataProcess) -> None:
    for request in (
        b"GET /_strata/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        b"GET /_strata/health HTTP/1.0\r\n\r\n",
    ):
        w = _Wire(strata_server)
        try:
            w.send(request)
            status, headers, _ = w.response()
            assert status == 200
            assert headers.get("connection") == "close"
            assert w.closed_by_server()
        finally:
            w.close()


def test_response_header_values_cannot_split_the_response(strata_server: StrataProcess) -> None:
    """A response-* override is echoed as a header: a CR/LF in it must not start a new header."""
    s3 = strata_server.client("s3")
    s3.create_bucket(Bucket="wire-split")
    s3.put_object(Bucket="wire-split", Key="k", Body=b"data")
    url = s3.generate_presigned_url(
        "get_object",
        Params={
            "Bucket": "wire-split",
            "Key": "k",
            "ResponseContentDisposition": "inline\r\nx-injected: yes",
        },
    )
    parts = urllib.parse.urlsplit(url)
    w = _Wire(strata_server)
    try:
        w.send(_get(f"{parts.path}?{parts.query}", parts.netloc))
        status, headers, data = w.response()
        assert "x-injected" not in headers
        assert status == 200 and data == b"data"
        assert headers["content-disposition"].startswith("inline")
    finally:
        w.close()


def test_head_response_has_length_but_no_body(strata_server: StrataProcess) -> None:
    s3 = strata_server.client("s3")
    s3.create_bucket(Bucket="wire-head")
    s3.put_object(Bucket="wire-head", Key="k", Body=b"x" * 1000)
    url = s3.generate_presigned_url("head_object", Params={"Bucket": "wire-head", "Key": "k"})
    parts = urllib.parse.urlsplit(url)
    w = _Wire(strata_server)
    try:
        head = f"HEAD {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode()
        w.send(head + _get("/_strata/health", parts.netloc))
        status, headers, _ = w.response(head_only=True)
        assert status == 200 and headers["content-length"] == "1000"
        # the next response follows at once: no body bytes came between them
        status, _, data = w.response()
        assert status == 200 and b"uptime_seconds" in data
    finally:
        w.close()


def test_file_body_ranges_are_sent_exactly(strata_server: StrataProcess) -> None:
    s3 = strata_server.client("s3")
    s3.create_bucket(Bucket="wire-range")
    data = bytes(range(256)) * 4096 * 3  # 3 MiB: stored as a file, sent with sendfile
    s3.put_object(Bucket="wire-range", Key="k", Body=data)
    got = s3.get_object(Bucket="wire-range", Key="k", Range="bytes=1000-2099999")["Body"].read()
    assert got == data[1000:2100000]
    assert s3.get_object(Bucket="wire-range", Key="k")["Body"].read() == data
    with pytest.raises(ClientError) as info:
        s3.get_object(Bucket="wire-range", Key="k", Range=f"bytes={len(data)}-")
    assert info.value.response["Error"]["Code"] == "InvalidRange"


def test_pipelined_small_and_file_responses_keep_their_order(strata_server: StrataProcess) -> None:
    """Small responses wait for the end of the loop's turn; a file sent directly must not pass them."""
    s3 = strata_server.client("s3")
    s3.create_bucket(Bucket="wire-order")
    big = bytes(range(256)) * 4096 * 2  # 2 MiB: served from its file
    s3.put_object(Bucket="wire-order", Key="small", Body=b"tiny")
    s3.put_object(Bucket="wire-order", Key="big", Body=big)
    urls = [
        urllib.parse.urlsplit(
            s3.generate_presigned_url("get_object", Params={"Bucket": "wire-order", "Key": k})
        )
        for k in ("small", "big", "small", "big")
    ]
    w = _Wire(strata_server)
    try:
        w.send(
            b"".join(_get(f"{u.path}?{u.query}", u.netloc) for u in urls)
            + _get("/_strata/health", urls[0].netloc)
        )
        bodies = [w.response()[2] for _ in range(5)]
        assert bodies[:4] == [b"tiny", big, b"tiny", big]
        assert b"uptime_seconds" in bodies[4]
    finally:
        w.close()


def test_upgrade_requests_are_answered_as_http_1_1_and_closed(wire: _Wire) -> None:
    wire.send(
        _get(
            "/_strata/health",
            wire.host,
            "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n",
        )
    )
    status, headers, data = wire.response()
    assert status == 200 and b"uptime_seconds" in data
    assert headers.get("connection") == "close"
    assert wire.closed_by_server()


def test_a_header_value_outside_latin_1_is_sent_as_utf_8(strata_server: StrataProcess) -> None:
    s3 = strata_server.client("s3")
    s3.create_bucket(Bucket="wire-utf8")
    s3.put_object(Bucket="wire-utf8", Key="k", Body=b"data")
    disposition = 'attachment; filename="报告.pdf"'
    got = s3.get_object(Bucket="wire-utf8", Key="k", ResponseContentDisposition=disposition)
    assert got["Body"].read() == b"data"
    raw = got["ResponseMetadata"]["HTTPHeaders"]["content-disposition"]
    assert raw.encode("latin-1").decode("utf-8") == disposition


def test_an_oversized_admin_body_is_refused_with_413(wire: _Wire) -> None:
    size = 2 * 1024 * 1024
    wire.send(
        f"POST /_strata/clock HTTP/1.1\r\nHost: {wire.host}\r\nContent-Length: {size}\r\n\r\n".encode()
        + b" " * size
    )
    status, _, data = wire.response()
    assert status == 413 and b"too large" in data


def _rss_mib(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_a_client_that_never_reads_is_not_answered_into_memory(strata_factory) -> None:
    """Pipelined requests from a client that reads nothing: the server stops taking requests once
    its answers back up, instead of queueing every answer in memory."""
    server = strata_factory()
    s3 = server.client("s3")
    s3.create_bucket(Bucket="wire-noread")
    s3.put_object(Bucket="wire-noread", Key="k", Body=b"r" * 16_000)
    u = urllib.parse.urlsplit(
        s3.generate_presigned_url("get_object", Params={"Bucket": "wire-noread", "Key": "k"})
    )
    request = _get(f"{u.path}?{u.query}", u.netloc)
    before = _rss_mib(server.proc.pid)
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(3)
    sent = 0
    try:
        for _ in range(6_000):  # 60,000 answers of 16 KB would be 960 MB
            sock.sendall(request * 10)
            sent += 10
    except (TimeoutError, OSError):
        pass  # the server stopped reading: our sends block
    server.health()  # the server still serves others
    grown = _rss_mib(server.proc.pid) - before
    sock.close()
    assert sent < 60_000, "the server kept reading requests whose answers nobody read"
    assert grown < 200, f"server memory grew {grown:.0f} MiB"


def test_an_upload_answered_before_its_body_is_read_still_gets_its_answer(strata_server: StrataProcess) -> None:
    """A client that sends its whole body without waiting (no Expect: 100-continue) to a request
    answered early (a bad signature, a full disk) must be able to send it all and then read the
    answer. Closing with its bytes unread would reset the connection, and the reset throws away the
    answer before the client reads it: boto3 saw ConnectionClosedError instead of the S3 error."""
    strata_server.client("s3").create_bucket(Bucket="wire-early")
    size = 24 * 1024 * 1024
    head = (
        f"PUT /wire-early/k HTTP/1.1\r\nHost: 127.0.0.1:{strata_server.port}\r\n"
        "X-Amz-Date: 20260101T000000Z\r\nX-Amz-Content-Sha256: UNSIGNED-PAYLOAD\r\n"
        "Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, "
        f"SignedHeaders=host;x-amz-date, Signature={'0' * 64}\r\n"
        f"Content-Length: {size}\r\n\r\n"
    ).encode()
    chunk = b"x" * (256 * 1024)
    for _ in range(3):
        w = _Wire(strata_server)
        try:
            w.send(head)
            time.sleep(0.05)  # the answer is written (and, before the fix, the connection closed)
            for _ in range(size // len(chunk)):
                w.send(chunk)
            status, headers, data = w.response()
            assert status == 403 and b"<Code>" in data
            assert headers.get("connection") == "close"
            assert w.closed_by_server()
        finally:
            w.close()
