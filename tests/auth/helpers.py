"""Requests signed by botocore's own signers, turned into Strata's HttpRequest, and aws-chunked
bodies built from the documented algorithm (independently of strata.auth.chunked)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator, Iterable
from urllib.parse import urlsplit

from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from strata.protocol.http import BodyStream, Headers, HttpRequest

ENDPOINT = "http://127.0.0.1:4566"
REGION = "us-east-1"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def to_http(prepared: object, stream: BodyStream | None = None) -> HttpRequest:
    """A botocore AWSPreparedRequest as the gateway would hand it to the authenticator."""
    url = urlsplit(prepared.url)  # type: ignore[attr-defined]
    headers = Headers([(k, v.decode() if isinstance(v, bytes) else v) for k, v in prepared.headers.items()])  # type: ignore[attr-defined]
    if "host" not in headers:
        headers.add("host", url.netloc)
    body = prepared.body or b""  # type: ignore[attr-defined]
    if isinstance(body, str):
        body = body.encode()
    return HttpRequest(
        prepared.method,  # type: ignore[attr-defined]
        url.path,
        url.query,
        headers,
        host=url.netloc,
        body=b"" if stream is not None else body,
        stream=stream,
    )


class _StreamingS3Signer(S3SigV4Auth):
    """botocore's S3 signer with a streaming payload mode in place of the body hash."""

    def __init__(self, credentials: Credentials, mode: str) -> None:
        super().__init__(credentials, "s3", REGION)
        self.mode = mode

    def payload(self, request: AWSRequest) -> str:
        return self.mode


def sign(
    method: str,
    url: str,
    *,
    service: str = "s3",
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    access_key: str = "test",
    secret: str = "test",
    region: str = REGION,
    streaming_mode: str | None = None,
    stream: BodyStream | None = None,
) -> HttpRequest:
    """Sign like boto3 does (S3SigV4Auth for s3, SigV4Auth otherwise) and convert."""
    creds = Credentials(access_key, secret)
    request = AWSRequest(method, url, data=body, headers=dict(headers or {}))
    if streaming_mode is not None:
        signer: SigV4Auth = _StreamingS3Signer(creds, streaming_mode)
    elif service == "s3":
        signer = S3SigV4Auth(creds, "s3", region)
    else:
        signer = SigV4Auth(creds, service, region)
    signer.add_auth(request)
    return to_http(request.prepare(), stream)


def presign(
    method: str,
    url: str,
    *,
    service: str = "s3",
    expires: int = 3600,
    access_key: str = "test",
    secret: str = "test",
    headers: dict[str, str] | None = None,
) -> HttpRequest:
    creds = Credentials(access_key, secret)
    request = AWSRequest(method, url, headers=dict(headers or {}))
    cls = S3SigV4QueryAuth if service == "s3" else SigV4QueryAuth
    cls(creds, service, REGION, expires=expires).add_auth(request)
    prepared = request.prepare()
    return to_http(prepared)


def auth_fields(request: HttpRequest) -> dict[str, str]:
    """Credential / SignedHeaders / Signature of a signed request's Authorization header."""
    _, _, rest = request.headers["authorization"].partition(" ")
    return dict(part.strip().split("=", 1) for part in rest.split(","))


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    k = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


def chunk_signed_body(
    chunks: Iterable[bytes],
    *,
    secret: str,
    amz_date: str,
    scope: str,
    seed: str,
    trailers: dict[str, str] | None = None,
) -> bytes:
    """A STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER] body, as the S3 documentation describes it."""
    date, region, service, _ = scope.split("/")
    key = signing_key(secret, date, region, service)
    previous = seed
    out = bytearray()
    for data in [*chunks, b""]:
        to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256-PAYLOAD",
                amz_date,
                scope,
                previous,
                EMPTY_SHA256,
                hashlib.sha256(data).hexdigest(),
            ]
        )
        previous = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        out += f"{len(data):x};chunk-signature={previous}\r\n".encode() + data
        if data:
            out += b"\r\n"
    if trailers is not None:
        text = "".join(f"{k}:{v}\n" for k, v in trailers.items())
        to_sign = "\n".join(
            ["AWS4-HMAC-SHA256-TRAILER", amz_date, scope, previous, hashlib.sha256(text.encode()).hexdigest()]
        )
        trailer_sig = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        for k, v in trailers.items():
            out += f"{k}:{v}\r\n".encode()
        out += f"x-amz-trailer-signature:{trailer_sig}\r\n".encode()
    out += b"\r\n"
    return bytes(out)


def unsigned_trailer_body(chunks: Iterable[bytes], trailers: dict[str, str]) -> bytes:
    """A STREAMING-UNSIGNED-PAYLOAD-TRAILER body, framed like botocore's AwsChunkedWrapper."""
    out = bytearray()
    for data in chunks:
        out += f"{len(data):x}\r\n".encode() + data + b"\r\n"
    out += b"0\r\n"
    for k, v in trailers.items():
        out += f"{k}:{v}\r\n".encode()
    out += b"\r\n"
    return bytes(out)


def body_stream(body: bytes, piece: int = 65536, length: int | None = None) -> BodyStream:
    """A BodyStream delivering `body` in `piece`-byte reads, as the HTTP server would."""

    async def source() -> AsyncIterator[bytes]:
        for i in range(0, len(body), piece):
            yield body[i : i + piece]

    return BodyStream(source(), len(body) if length is None else length)


def read_stream(stream: BodyStream) -> bytes:
    return asyncio.run(stream.read_all())
