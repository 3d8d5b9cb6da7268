"""Object keys are UTF-8 text: bytes that are not UTF-8 are refused, never silently replaced.

`PUT /b/%ff` and `PUT /b/%fe` once both became the key U+FFFD and overwrote each other. Keys with
NUL or `..` segments are ordinary keys: stored, listed and read back, and never a file path.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def _raw(endpoint: str, method: str, path: str, body: bytes = b"", headers=None) -> tuple[int, bytes]:
    """A signed request whose path goes on the wire exactly as given."""
    u = urlsplit(endpoint)
    req = AWSRequest(method, endpoint + path, data=body, headers=dict(headers or {}))
    S3SigV4Auth(Credentials("test", "test"), "s3", "us-east-1").add_auth(req)
    lines = [f"{method} {path} HTTP/1.1", f"host: {u.netloc}"]
    lines += [f"{k}: {v}" for k, v in req.headers.items() if k.lower() != "host"]
    lines += [f"content-length: {len(body)}", "connection: close"]
    with socket.create_connection((u.hostname, u.port), timeout=30) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), rest


@pytest.mark.parametrize("encoded", ["%ff", "%fe", "a%c3", "%ed%a0%80", "%c0%af", "ok/%80x"])
def test_invalid_utf8_key_is_invalid_uri(strata_server, s3, bucket: str, encoded: str) -> None:
    status, body = _raw(strata_server.endpoint, "PUT", f"/{bucket}/{encoded}", b"data")
    assert status == 400 and b"<Code>InvalidURI</Code>" in body
    status, body = _raw(strata_server.endpoint, "GET", f"/{bucket}/{encoded}")
    assert status == 400 and b"<Code>InvalidURI</Code>" in body
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_ff_and_fe_do_not_collide(strata_server, s3, bucket: str) -> None:
    _raw(strata_server.endpoint, "PUT", f"/{bucket}/%ff", b"first")
    _raw(strata_server.endpoint, "PUT", f"/{bucket}/%fe", b"second")
    assert "\ufffd" not in [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_invalid_utf8_copy_source(strata_server, s3, bucket: str) -> None:
    status, body = _raw(
        strata_server.endpoint, "PUT", f"/{bucket}/dst", headers={"x-amz-copy-source": f"/{bucket}/%ff"}
    )
    assert status == 400 and b"<Code>InvalidArgument</Code>" in body


@pytest.mark.parametrize("key", ["a\x00b", "\x00", "..", "../..", "a/../../b", "./.", "../" * 300 + "x"])
def test_nul_and_dot_segments_are_keys(strata_server, s3, bucket: str, key: str) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=b"v:" + key.encode())
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"v:" + key.encode()
    listed = s3.list_objects_v2(Bucket=bucket, EncodingType="url")
    from urllib.parse import unquote

    assert [unquote(o["Key"]) for o in listed["Contents"]] == [key]
    s3.delete_object(Bucket=bucket, Key=key)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_dot_segment_keys_never_become_paths(strata_server, s3, bucket: str) -> None:
    body = os.urandom(200_000)  # above the inline size: lives in the blob store
    s3.put_object(Bucket=bucket, Key="../../../escape-" + bucket, Body=body)
    data_dir = Path(strata_server.data_dir)
    for root in (data_dir.parent, data_dir.parent.parent):
        assert not list(root.glob(f"escape-{bucket}*"))
    assert not list(data_dir.rglob(f"*escape-{bucket}*"))
    assert s3.get_object(Bucket=bucket, Key="../../../escape-" + bucket)["Body"].read() == body
