"""SigV4 end to end through a real `strata serve`: real boto3 clients, presigned URLs over plain
HTTP, chunk-signed uploads on the wire, and the error each service answers with."""

from __future__ import annotations

import datetime
import hashlib
import http.client
import os
import urllib.error
import urllib.request
from unittest import mock
from urllib.parse import urlsplit

import botocore.httpchecksum
import pytest
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from strata.protocol.checksums import checksum_b64
from tests.auth.helpers import auth_fields, chunk_signed_body, sign, unsigned_trailer_body


def _code(call) -> tuple[str, int]:
    with pytest.raises(ClientError) as info:
        call()
    return info.value.response["Error"]["Code"], info.value.response["ResponseMetadata"]["HTTPStatusCode"]


def _fetch(
    url: str, method: str = "GET", data: bytes | None = None, headers: dict | None = None
) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _send(endpoint: str, req, body: bytes) -> tuple[int, bytes]:
    """Send a request signed by the helpers over a raw connection, body exactly as given."""
    u = urlsplit(endpoint)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    headers = {k: v for k, v in req.headers.items()}
    headers["content-length"] = str(len(body))
    path = req.raw_path + (f"?{req.query_string}" if req.query_string else "")
    conn.request(req.method, path, body=body, headers=headers)
    resp = conn.getresponse()
    out = resp.status, resp.read()
    conn.close()
    return out


# ---- identity and refusals


def test_sts_get_caller_identity(strata_server) -> None:
    identity = strata_server.client("sts").get_caller_identity()
    assert identity["Account"] == "000000000000"
    assert identity["Arn"] == "arn:aws:iam::000000000000:root"
    assert identity["UserId"] == "000000000000"


@pytest.mark.parametrize(
    ("service", "call", "bad_key", "bad_secret"),
    [
        (
            "sts",
            lambda c: c.get_caller_identity(),
            ("InvalidClientTokenId", 403),
            ("SignatureDoesNotMatch", 403),
        ),
        (
            "dynamodb",
            lambda c: c.list_tables(),
            ("UnrecognizedClientException", 400),
            ("InvalidSignatureException", 400),
        ),
        (
            "kms",
            lambda c: c.list_keys(),
            ("UnrecognizedClientException", 400),
            ("InvalidSignatureException", 400),
        ),
        ("s3", lambda c: c.list_buckets(), ("InvalidAccessKeyId", 403), ("SignatureDoesNotMatch", 403)),
        ("ec2", lambda c: c.describe_volumes(), ("AuthFailure", 401), ("AuthFailure", 401)),
        (
            "rds",
            lambda c: c.describe_db_instances(),
            ("InvalidClientTokenId", 403),
            ("SignatureDoesNotMatch", 403),
        ),
        (
            "efs",
            lambda c: c.describe_file_systems(),
            ("UnrecognizedClientException", 403),
            ("InvalidSignatureException", 403),
        ),
        (
            "ebs",
            lambda c: c.list_snapshot_blocks(SnapshotId="snap-0123456789abcdef0"),
            ("UnrecognizedClientException", 403),
            ("InvalidSignatureException", 403),
        ),
        (
            "elasticache",
            lambda c: c.describe_cache_clusters(),
            ("InvalidClientTokenId", 403),
            ("SignatureDoesNotMatch", 403),
        ),
        ("iam", lambda c: c.list_users(), ("InvalidClientTokenId", 403), ("SignatureDoesNotMatch", 403)),
    ],
)
def test_bad_credentials_are_refused(strata_server, service, call, bad_key, bad_secret) -> None:
    assert _code(lambda: call(strata_server.client(service, access_key="AKIDNOBODY"))) == bad_key
    assert _code(lambda: call(strata_server.client(service, secret_key="wrong"))) == bad_secret


def test_unsigned_requests_are_refused(strata_server) -> None:
    from botocore import UNSIGNED

    # (An unsigned query-protocol request names no service the gateway can route by, so STS/IAM
    # refusals of unsigned calls are covered by the unit tests.)
    unsigned = Config(signature_version=UNSIGNED)
    assert _code(lambda: strata_server.client("dynamodb", config=unsigned).list_tables()) == (
        "MissingAuthenticationTokenException",
        400,
    )
    assert _code(lambda: strata_server.client("s3", config=unsigned).list_buckets()) == ("AccessDenied", 403)


def test_moving_the_simulated_clock_keeps_signed_requests_valid(strata_factory) -> None:
    """SDKs sign with the machine's clock; a cloud moved 30 days ahead must still accept them."""
    server = strata_factory()
    server.advance_clock("30d")
    assert server.client("sts").get_caller_identity()["Account"]
    assert "Buckets" in server.client("s3").list_buckets()


def _send_signed_at(server, when: datetime.datetime, service: str) -> tuple[int, bytes]:
    """Sign with botocore's SigV4 signer as of `when` (a client with a wrong clock) and send."""
    if service == "s3":
        request = AWSRequest(
            "GET", server.endpoint + "/", headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"}
        )
        signer: SigV4Auth = S3SigV4Auth(Credentials("test", "test"), "s3", "us-east-1")
    else:
        body = b"Action=GetCallerIdentity&Version=2011-06-15"
        request = AWSRequest(
            "POST",
            server.endpoint + "/",
            data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        signer = SigV4Auth(Credentials("test", "test"), service, "us-east-1")
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        signer.add_auth(request)
    prepared = request.prepare()
    req = urllib.request.Request(
        prepared.url, data=prepared.body, headers=dict(prepared.headers), method=prepared.method
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_request_signed_with_a_skewed_clock_is_refused(strata_server) -> None:
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    for service in ("sts", "s3"):
        assert _send_signed_at(strata_server, now, service)[0] == 200
    status, body = _send_signed_at(strata_server, now - datetime.timedelta(minutes=16), "sts")
    assert status == 403 and b"<Code>SignatureDoesNotMatch</Code>" in body and b"Signature expired" in body
    status, body = _send_signed_at(strata_server, now + datetime.timedelta(minutes=16), "s3")
    assert status == 403 and b"<Code>RequestTimeTooSkewed</Code>" in body


# ---- S3 uploads: payload hashes, header checksums, trailers, chunk signatures


@pytest.fixture
def bucket(strata_server, unique) -> str:
    name = f"auth-{unique}"
    strata_server.client("s3").create_bucket(Bucket=name)
    return name


def test_put_object_over_http(strata_server, bucket) -> None:
    # Plain HTTP: boto3 signs the SHA-256 of the body and sends x-amz-checksum-crc32 as a header.
    s3 = strata_server.client("s3")
    data = os.urandom(300_000)
    s3.put_object(Bucket=bucket, Key="plain", Body=data)
    assert s3.get_object(Bucket=bucket, Key="plain")["Body"].read() == data


def test_put_object_with_default_checksum_trailer(strata_server, bucket, monkeypatch) -> None:
    # Over TLS boto3 sends STREAMING-UNSIGNED-PAYLOAD-TRAILER with an x-amz-checksum-crc32 trailer
    # by default; make it believe the endpoint is TLS so the same code path runs over loopback HTTP.
    real = botocore.httpchecksum.urlparse
    monkeypatch.setattr(
        botocore.httpchecksum, "urlparse", lambda url: real(url.replace("http://", "https://", 1))
    )
    s3 = strata_server.client("s3")
    sent: list[dict] = []
    s3.meta.events.register(
        "before-send.s3.PutObject",
        lambda request, **_: sent.append({k.lower(): v for k, v in request.headers.items()}),
    )
    data = os.urandom(2 * 1024 * 1024 + 5)
    s3.put_object(Bucket=bucket, Key="trailer", Body=data)
    assert sent, "boto3 sent no PutObject"
    headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in sent[0].items()}
    assert headers["x-amz-content-sha256"] == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    assert headers["x-amz-trailer"] == "x-amz-checksum-crc32"
    assert "aws-chunked" in headers["content-encoding"]
    got = s3.get_object(Bucket=bucket, Key="trailer")
    assert got["Body"].read() == data
    assert got["ContentLength"] == len(data)
    assert "aws-chunked" not in got.get("ContentEncoding", "")


def test_upload_part_with_checksum_trailer(strata_server, bucket, monkeypatch) -> None:
    real = botocore.httpchecksum.urlparse
    monkeypatch.setattr(
        botocore.httpchecksum, "urlparse", lambda url: real(url.replace("http://", "https://", 1))
    )
    s3 = strata_server.client("s3")
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mpu", ChecksumAlgorithm="CRC32C")
    part = os.urandom(5 * 1024 * 1024)
    etag = s3.upload_part(
        Bucket=bucket,
        Key="mpu",
        UploadId=upload["UploadId"],
        PartNumber=1,
        Body=part,
        ChecksumAlgorithm="CRC32C",
    )
    assert etag["ChecksumCRC32C"] == checksum_b64("CRC32C", part)


def _streaming_put(endpoint: str, bucket: str, key: str, chunks: list[bytes], mode: str, trailers=None):
    data = b"".join(chunks)
    headers = {"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(data))}
    if trailers:
        headers["x-amz-trailer"] = ",".join(trailers)
    req = sign("PUT", f"{endpoint}/{bucket}/{key}", headers=headers, streaming_mode=mode)
    fields = auth_fields(req)
    if mode == "STREAMING-UNSIGNED-PAYLOAD-TRAILER":
        body = unsigned_trailer_body(chunks, trailers or {})
    else:
        body = chunk_signed_body(
            chunks,
            secret="test",
            amz_date=req.headers["x-amz-date"],
            scope=fields["Credential"].split("/", 1)[1],
            seed=fields["Signature"],
            trailers=trailers,
        )
    return req, body


@pytest.mark.parametrize(
    "mode", ["STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"]
)
def test_chunk_signed_upload_on_the_wire(strata_server, bucket, mode) -> None:
    chunks = [os.urandom(65536), os.urandom(65536), os.urandom(1000)]
    data = b"".join(chunks)
    trailers = {"x-amz-checksum-sha256": checksum_b64("SHA256", data)} if mode.endswith("TRAILER") else None
    req, body = _streaming_put(strata_server.endpoint, bucket, "signed", chunks, mode, trailers)
    status, text = _send(strata_server.endpoint, req, body)
    assert status == 200, text
    assert strata_server.client("s3").get_object(Bucket=bucket, Key="signed")["Body"].read() == data

    tampered = body.replace(chunks[1][:100], b"X" * 100, 1)
    req, _ = _streaming_put(strata_server.endpoint, bucket, "tampered", chunks, mode, trailers)
    status, text = _send(strata_server.endpoint, req, tampered)
    assert status == 403 and b"SignatureDoesNotMatch" in text
    assert _code(lambda: strata_server.client("s3").head_object(Bucket=bucket, Key="tampered"))[1] == 404


def test_wrong_payload_hash_is_refused(strata_server, bucket) -> None:
    req = sign("PUT", f"{strata_server.endpoint}/{bucket}/hash", body=b"declared body")
    status, text = _send(strata_server.endpoint, req, b"another body!")
    assert status == 400 and b"XAmzContentSHA256Mismatch" in text
    assert hashlib.sha256(b"declared body").hexdigest().encode() in text


# ---- presigned URLs


def test_presigned_urls_default_and_v4(strata_server, bucket) -> None:
    s3 = strata_server.client("s3")
    s3.put_object(Bucket=bucket, Key="reports/q1 ü.pdf", Body=b"pdf bytes")
    v4 = strata_server.client("s3", config=Config(signature_version="s3v4"))
    for client in (s3, v4):
        url = client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": "reports/q1 ü.pdf"}, ExpiresIn=3600
        )
        assert _fetch(url) == (200, b"pdf bytes")
    put_url = v4.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "up"}, ExpiresIn=60)
    assert _fetch(put_url, "PUT", b"uploaded")[0] == 200
    assert s3.get_object(Bucket=bucket, Key="up")["Body"].read() == b"uploaded"
    status, text = _fetch(put_url.replace("X-Amz-Signature=", "X-Amz-Signature=0"), "PUT", b"x")
    assert status == 403 and b"SignatureDoesNotMatch" in text


def test_presigned_url_expires_with_simulated_clock(strata_factory) -> None:
    server = strata_factory()
    s3 = server.client("s3")
    s3.create_bucket(Bucket="exp")
    s3.put_object(Bucket="exp", Key="k", Body=b"v")
    v4 = server.client("s3", config=Config(signature_version="s3v4"))
    urls = [
        c.generate_presigned_url("get_object", Params={"Bucket": "exp", "Key": "k"}, ExpiresIn=600)
        for c in (s3, v4)
    ]
    assert all(_fetch(u)[0] == 200 for u in urls)
    server.advance_clock("11m")
    for url in urls:
        status, text = _fetch(url)
        assert status == 403 and b"<Code>AccessDenied</Code>" in text and b"Request has expired" in text
    too_long = v4.generate_presigned_url("get_object", Params={"Bucket": "exp", "Key": "k"}, ExpiresIn=604801)
    status, text = _fetch(too_long)
    assert status == 400 and b"AuthorizationQueryParametersError" in text


@pytest.mark.parametrize(
    "key", ["with space", "ünï/cødé 日本", "percent%2Fslash", "tilde~plus+", "a//b/../c", "!'()*;:@&=$,"]
)
def test_weird_keys_sign_and_verify_on_the_wire(strata_server, bucket, key) -> None:
    s3 = strata_server.client("s3")
    s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode()
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=60)
    assert _fetch(url) == (200, key.encode())
