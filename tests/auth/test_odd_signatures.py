"""Signatures and scopes no client would send honestly: refused with the service's error, not a 500.

Sent over raw sockets, so the bytes are exactly the ones under test (non-ASCII signatures in a
header are UTF-8 on the wire; http.client would refuse to send them).
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

CREDS = Credentials("test", "test")


def _raw(endpoint: str, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    u = urlsplit(endpoint)
    with socket.create_connection((u.hostname, u.port), timeout=30) as s:
        s.sendall(head + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        head_end = data.index(b"\r\n\r\n") + 4
        status = int(data.split(b" ", 2)[1])
        length = 0
        for line in data[:head_end].split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(data) < head_end + length:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return status, data[head_end : head_end + length]


class _S3Signer(S3SigV4Auth):
    """botocore's S3 signer; signs `streaming` as the payload hash when it is set."""

    streaming = ""

    def payload(self, request: AWSRequest) -> str:
        return self.streaming or super().payload(request)


def _signed(
    endpoint: str,
    service: str,
    method: str,
    path: str,
    body: bytes = b"",
    headers=None,
    region="us-east-1",
    streaming: str = "",
) -> AWSRequest:
    req = AWSRequest(method, endpoint + path, data=body, headers=dict(headers or {}))
    signer = _S3Signer(CREDS, "s3", region) if service == "s3" else SigV4Auth(CREDS, service, region)
    signer.streaming = streaming
    signer.add_auth(req)
    return req


def _head(req: AWSRequest, replace: tuple[bytes, bytes] | None = None) -> bytes:
    u = urlsplit(req.url)
    target = (u.path or "/") + (f"?{u.query}" if u.query else "")
    lines = [f"{req.method} {target} HTTP/1.1".encode(), f"host: {u.netloc}".encode()]
    for k, v in req.headers.items():
        if k.lower() == "host":
            continue
        value = v if isinstance(v, bytes) else v.encode("utf-8")
        lines.append(k.encode() + b": " + value)
    body = req.body or b""
    lines.append(f"content-length: {len(body)}".encode())
    head = b"\r\n".join(lines) + b"\r\n\r\n"
    if replace:
        head = head.replace(*replace)
    return head


def _with_signature(req: AWSRequest, signature: bytes) -> bytes:
    auth = req.headers["Authorization"]
    auth = auth.encode() if isinstance(auth, str) else auth
    original = auth.rsplit(b"Signature=", 1)[1]
    return _head(req, (b"Signature=" + original, b"Signature=" + signature))


NON_ASCII = ["é".encode() * 32, "\u2603".encode() * 21 + b"x", b"\xff" * 64]


@pytest.mark.parametrize("signature", NON_ASCII)
def test_non_ascii_signature_s3_header(strata_server, signature: bytes) -> None:
    req = _signed(strata_server.endpoint, "s3", "GET", "/")
    status, body = _raw(strata_server.endpoint, _with_signature(req, signature))
    assert status == 403 and b"<Code>SignatureDoesNotMatch</Code>" in body


@pytest.mark.parametrize("signature", NON_ASCII)
def test_non_ascii_signature_dynamodb_and_sts(strata_server, signature: bytes) -> None:
    body = b"{}"
    req = _signed(
        strata_server.endpoint,
        "dynamodb",
        "POST",
        "/",
        body,
        {"X-Amz-Target": "DynamoDB_20120810.ListTables", "Content-Type": "application/x-amz-json-1.0"},
    )
    status, answer = _raw(strata_server.endpoint, _with_signature(req, signature), body)
    assert status == 400 and b"InvalidSignatureException" in answer
    body = b"Action=GetCallerIdentity&Version=2011-06-15"
    req = _signed(
        strata_server.endpoint,
        "sts",
        "POST",
        "/",
        body,
        {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    status, answer = _raw(strata_server.endpoint, _with_signature(req, signature), body)
    assert status == 403 and b"<Code>SignatureDoesNotMatch</Code>" in answer


def test_non_ascii_presigned_signature(strata_server) -> None:
    req = AWSRequest("GET", strata_server.endpoint + "/")
    S3SigV4QueryAuth(CREDS, "s3", "us-east-1", expires=300).add_auth(req)
    url = req.prepare().url
    u = urlsplit(url)
    query = "&".join(
        "X-Amz-Signature=" + "%C3%A9" * 32 if p.startswith("X-Amz-Signature=") else p
        for p in u.query.split("&")
    )
    head = f"GET /?{query} HTTP/1.1\r\nhost: {u.netloc}\r\ncontent-length: 0\r\n\r\n".encode()
    status, body = _raw(strata_server.endpoint, head)
    assert status == 403 and b"<Code>SignatureDoesNotMatch</Code>" in body


def test_non_ascii_chunk_signature(strata_server, unique: str) -> None:
    strata_server.client("s3").create_bucket(Bucket=f"odd-{unique}")
    data = b"hello"
    chunked = f"{len(data):x};chunk-signature=".encode() + "é".encode() * 32 + b"\r\n" + data + b"\r\n"
    chunked += b"0;chunk-signature=" + b"\xff" * 64 + b"\r\n\r\n"
    req = _signed(
        strata_server.endpoint,
        "s3",
        "PUT",
        f"/odd-{unique}/k",
        b"",
        {"x-amz-decoded-content-length": str(len(data)), "content-encoding": "aws-chunked"},
        streaming="STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    )
    head = _head(req, (b"content-length: 0", f"content-length: {len(chunked)}".encode()))
    status, body = _raw(strata_server.endpoint, head, chunked)
    # A chunk line is ASCII by definition: the framing is refused before any comparison.
    assert status == 400 and b"<Code>IncompleteBody</Code>" in body


# ---- regions in the scope


@pytest.mark.parametrize("region", ["x" * 5000, "us-east-1" + "1" * 40, "mars-1", "US-EAST-1", "us-east-1/"])
def test_s3_scope_region_must_be_a_region(strata_server, region: str) -> None:
    req = _signed(strata_server.endpoint, "s3", "GET", "/", region=region)
    status, body = _raw(strata_server.endpoint, _head(req))
    if "/" in region:  # the scope no longer has five parts
        assert status == 400 and b"AuthorizationHeaderMalformed" in body
        return
    assert status == 400 and b"<Code>AuthorizationHeaderMalformed</Code>" in body
    assert b"<Region>us-east-1</Region>" in body


def test_s3_presigned_scope_region_must_be_a_region(strata_server) -> None:
    req = AWSRequest("GET", strata_server.endpoint + "/")
    S3SigV4QueryAuth(CREDS, "s3", "z" * 300, expires=300).add_auth(req)
    u = urlsplit(req.prepare().url)
    head = f"GET /?{u.query} HTTP/1.1\r\nhost: {u.netloc}\r\ncontent-length: 0\r\n\r\n".encode()
    status, body = _raw(strata_server.endpoint, head)
    assert status == 400 and b"<Code>AuthorizationQueryParametersError</Code>" in body


def test_other_services_scope_region_must_be_a_region(strata_server) -> None:
    ddb = strata_server.client("dynamodb", region="nowhere")
    with pytest.raises(ClientError) as e:
        ddb.list_tables()
    assert e.value.response["Error"]["Code"] == "InvalidSignatureException"
    sts = strata_server.client("sts", region="nowhere")
    with pytest.raises(ClientError) as e:
        sts.get_caller_identity()
    assert e.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


def test_real_regions_are_served(strata_server) -> None:
    for region in ("eu-west-1", "ap-southeast-2", "cn-north-1", "us-gov-west-1"):
        assert "TableNames" in strata_server.client("dynamodb", region=region).list_tables()
        strata_server.client("s3", region=region).list_buckets()
