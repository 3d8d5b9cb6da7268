"""Crash safety and memory: kill -9 during concurrent uploads, bodies cut off mid-way, and a
1 GiB object streamed in and out without the server's memory growing with it."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from pathlib import Path

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError, ClientError

MiB = 1024 * 1024


def temp_files(server) -> list[Path]:
    return [p for p in (server.data_dir / "s3" / "tmp").rglob("*") if p.is_file()]


def payload(key: str, size: int) -> bytes:
    """Deterministic bytes per key, so any object found later can be checked."""
    seed = hashlib.sha256(key.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


# Inline rows, buffered blobs, and streamed (O_DIRECT) blobs of an unaligned size.
SIZES = (1000, 300_000, 2 * MiB, 9 * MiB + 1)


def test_kill_during_concurrent_uploads(strata_factory) -> None:
    server = strata_factory()
    s3 = server.client("s3", config=Config(retries={"max_attempts": 0}, connect_timeout=2, read_timeout=10))
    s3.create_bucket(Bucket="crash")
    acked: dict[str, bytes] = {}
    stop = threading.Event()
    lock = threading.Lock()

    def writer(n: int) -> None:
        i = 0
        while not stop.is_set():
            key = f"w{n}/obj{i}"
            size = SIZES[i % len(SIZES)]
            data = payload(key, size)
            try:
                s3.put_object(Bucket="crash", Key=key, Body=data)
            except (ClientError, BotoCoreError):
                return
            with lock:
                acked[key] = data
            i += 1

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(acked) < 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.kill()
    stop.set()
    for t in threads:
        t.join(30)
    assert len(acked) >= 40
    server.start()
    s3 = server.client("s3")
    for key, data in acked.items():
        assert s3.get_object(Bucket="crash", Key=key)["Body"].read() == data, key
    # anything visible (acknowledged or not) is whole: the row only exists after the blob is complete
    listed = [
        c["Key"]
        for p in s3.get_paginator("list_objects_v2").paginate(Bucket="crash")
        for c in p.get("Contents", [])
    ]
    assert set(acked) <= set(listed)
    for key in set(listed) - set(acked):
        body = s3.get_object(Bucket="crash", Key=key)["Body"].read()
        assert body == payload(key, len(body)) and len(body) in SIZES
    assert temp_files(server) == []


def _signed_put_headers(server, bucket: str, key: str, length: int) -> dict[str, str]:
    req = AWSRequest(
        "PUT",
        f"{server.endpoint}/{bucket}/{key}",
        headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD", "Content-Length": str(length)},
    )
    SigV4Auth(Credentials("test", "test"), "s3", "us-east-1").add_auth(req)
    return dict(req.headers.items())


def test_upload_cut_off_mid_body_leaves_nothing(strata_factory) -> None:
    server = strata_factory()
    s3 = server.client("s3")
    s3.create_bucket(Bucket="cut")
    total = 24 * MiB
    headers = _signed_put_headers(server, "cut", "partial", total)
    sock = socket.create_connection(("127.0.0.1", server.port))
    head = f"PUT /cut/partial HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items() if k.lower() != "host") + "\r\n"
    sock.sendall(head.encode())
    sock.sendall(os.urandom(3 * MiB))
    sock.sendall(os.urandom(10 * MiB))  # past the first batch: the body streams to a temp file
    time.sleep(0.3)
    sock.close()
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket="cut", Key="partial")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    deadline = time.monotonic() + 10
    while temp_files(server) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert temp_files(server) == []
    # the same, then a crash before the server noticed: restart leaves no temp file either
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(head.encode() + os.urandom(12 * MiB))
    time.sleep(0.3)
    server.kill()
    sock.close()
    server.start()
    assert temp_files(server) == []
    assert "Contents" not in server.client("s3").list_objects_v2(Bucket="cut")


def _rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


class _Zeros:
    """A 1 GiB readable file-like object that never exists in memory at once."""

    def __init__(self, size: int) -> None:
        self.size, self.pos = size, 0
        self.md5 = hashlib.md5()

    def read(self, n: int = -1) -> bytes:
        n = self.size - self.pos if n is None or n < 0 else min(n, self.size - self.pos)
        chunk = bytes([self.pos // MiB % 251]) * n
        self.pos += n
        self.md5.update(chunk)
        return chunk

    def seek(self, pos: int, whence: int = 0) -> int:
        self.pos = {0: pos, 1: self.pos + pos, 2: self.size + pos}[whence]
        if self.pos == 0:
            self.md5 = hashlib.md5()
        return self.pos

    def tell(self) -> int:
        return self.pos


@pytest.mark.slow
def test_1gib_streams_with_bounded_memory(strata_factory) -> None:
    server = strata_factory()
    s3 = server.client(
        "s3",
        config=Config(
            request_checksum_calculation="when_required", response_checksum_validation="when_required"
        ),
    )
    s3.create_bucket(Bucket="big")
    s3.put_object(Bucket="big", Key="warm", Body=b"x" * MiB)
    s3.get_object(Bucket="big", Key="warm")["Body"].read()
    pid = server.proc.pid
    base = _rss_kib(pid, "VmRSS")
    size = 1024 * MiB
    body = _Zeros(size)
    r = s3.put_object(Bucket="big", Key="huge", Body=body, ContentLength=size)
    assert r["ETag"] == f'"{body.md5.hexdigest()}"'
    got = s3.get_object(Bucket="big", Key="huge")
    md5, n = hashlib.md5(), 0
    for chunk in got["Body"].iter_chunks(4 * MiB):
        md5.update(chunk)
        n += len(chunk)
    assert n == size and md5.hexdigest() == body.md5.hexdigest()
    growth_mib = (_rss_kib(pid, "VmHWM") - base) / 1024
    assert growth_mib < 100, f"server peak RSS grew by {growth_mib:.0f} MiB"
