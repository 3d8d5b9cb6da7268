"""GETs of large encrypted objects: the plaintext is opened as it goes out and written straight to
the socket (strata.gateway.produced), over HTTP and HTTPS, in order with pipelined requests, and
a client that reads slowly never holds a server thread."""

from __future__ import annotations

import hashlib
import os
import socket
import time
from urllib.parse import urlsplit

import pytest
import requests

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def big(strata_server) -> tuple[str, bytes]:
    """A bucket holding `big` (SSE-S3 by default, several MiB, not a multiple of a chunk)."""
    s3 = strata_server.client("s3")
    bucket = f"encget-{os.urandom(4).hex()}"
    s3.create_bucket(Bucket=bucket)
    body = os.urandom(5 * MiB + 12345)
    assert s3.put_object(Bucket=bucket, Key="big", Body=body)["ServerSideEncryption"] == "AES256"
    return bucket, body


def _raw_get(url: str, rcvbuf: int | None = None) -> socket.socket:
    """A socket that has sent a GET of the presigned `url` and read nothing yet."""
    u = urlsplit(url)
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(60)
    sock.connect((u.hostname, u.port))
    sock.sendall(f"GET {u.path}?{u.query} HTTP/1.1\r\nHost: {u.netloc}\r\n\r\n".encode())
    return sock


def _read_response(sock: socket.socket, pending: bytearray) -> tuple[bytes, bytes]:
    """One response (head, body) off `sock` (Content-Length framed); what follows stays in `pending`."""
    while b"\r\n\r\n" not in pending:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before a response head"
        pending += chunk
    end = pending.index(b"\r\n\r\n") + 4
    head = bytes(pending[:end])
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    del pending[:end]
    while len(pending) < length:
        chunk = sock.recv(1 << 20)
        assert chunk, f"connection closed after {len(pending)} of {length} body bytes"
        pending += chunk
    body = bytes(pending[:length])
    del pending[:length]
    return head, body


@pytest.mark.parametrize("https", [False, True], ids=["http", "https"])
def test_whole_and_ranged_gets_of_a_large_encrypted_object(strata_server, big, https) -> None:
    bucket, body = big
    s3 = strata_server.client("s3", https=https)
    assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == body
    for first, last in ((1, 3 * MiB + 7), (MiB - 10, len(body) - 1), (4 * MiB, 4 * MiB + 300_000)):
        got = s3.get_object(Bucket=bucket, Key="big", Range=f"bytes={first}-{last}")["Body"].read()
        assert got == body[first : last + 1], (first, last)
    head = s3.head_object(Bucket=bucket, Key="big")
    assert head["ContentLength"] == len(body) and head["ServerSideEncryption"] == "AES256"


def test_a_large_encrypted_multipart_object(strata_server, unique) -> None:
    s3 = strata_server.client("s3")
    bucket = f"encget-mp-{unique}"
    s3.create_bucket(Bucket=bucket)
    parts = [os.urandom(5 * MiB + 1000), os.urandom(MiB + 77)]
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    done = [
        {
            "PartNumber": n,
            "ETag": s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=n, Body=p)["ETag"],
        }
        for n, p in enumerate(parts, 1)
    ]
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload, MultipartUpload={"Parts": done})
    whole = b"".join(parts)
    out = s3.get_object(Bucket=bucket, Key="mp")
    assert out["ServerSideEncryption"] == "AES256"
    assert hashlib.sha256(out["Body"].read()).digest() == hashlib.sha256(whole).digest()
    span = (5 * MiB - 100, 5 * MiB + 1000 + 500_000)  # across the parts' boundary
    got = s3.get_object(Bucket=bucket, Key="mp", Range=f"bytes={span[0]}-{span[1]}")["Body"].read()
    assert got == whole[span[0] : span[1] + 1]


def test_pipelined_requests_get_their_answers_in_order(strata_server, big) -> None:
    bucket, body = big
    s3 = strata_server.client("s3")
    s3.put_object(Bucket=bucket, Key="small", Body=b"small one")
    urls = [
        s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": k})
        for k in ("big", "small", "big")
    ]
    u = urlsplit(urls[0])
    with socket.create_connection((u.hostname, u.port), timeout=60) as sock:
        # A HEAD first: its encrypted body is never sent, and the connection goes on.
        head_url = s3.generate_presigned_url("head_object", Params={"Bucket": bucket, "Key": "big"})
        h = urlsplit(head_url)
        wire = f"HEAD {h.path}?{h.query} HTTP/1.1\r\nHost: {h.netloc}\r\n\r\n"
        for url in urls:
            p = urlsplit(url)
            wire += f"GET {p.path}?{p.query} HTTP/1.1\r\nHost: {p.netloc}\r\n\r\n"
        sock.sendall(wire.encode())
        pending = bytearray()
        while b"\r\n\r\n" not in pending:
            pending += sock.recv(65536)
        end = pending.index(b"\r\n\r\n") + 4
        assert (
            pending.startswith(b"HTTP/1.1 200")
            and f"content-length: {len(body)}".encode() in pending[:end].lower()
        )
        del pending[:end]
        for expected in (body, b"small one", body):
            head, got = _read_response(sock, pending)
            assert head.startswith(b"HTTP/1.1 200")
            assert got == expected
        assert not pending


def test_slow_readers_hold_no_server_thread(strata_server, big) -> None:
    """More clients than the server has sending threads stop reading mid-body; another client's
    large GET is still answered at once, and the stopped ones get every byte when they read on."""
    bucket, body = big
    s3 = strata_server.client("s3")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "big"})
    stalled = [_raw_get(url, rcvbuf=8192) for _ in range(12)]
    try:
        for sock in stalled:  # each has its head and the first bytes, then stops reading
            assert sock.recv(12) == b"HTTP/1.1 200"
        time.sleep(0.5)
        assert requests.get(url, timeout=60).content == body
        for sock in stalled:
            pending = bytearray(b"HTTP/1.1 200")
            head, got = _read_response(sock, pending)
            assert got == body
    finally:
        for sock in stalled:
            sock.close()
    assert strata_server.health()
