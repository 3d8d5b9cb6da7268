"""S3 SigV2: what a default boto3 client's generate_presigned_url produces, and `AWS key:sig` headers."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.auth import HmacV1Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from strata.auth import Authenticator
from strata.config import Settings
from strata.protocol.errors import ServiceError
from strata.protocol.http import Headers, HttpRequest
from strata.sim.clock import Clock
from tests.auth.helpers import ENDPOINT, to_http


@pytest.fixture
def wall() -> list[float]:
    """The machine's time as the clock sees it, movable by the test."""
    return [time.time()]


@pytest.fixture
def clock(wall: list[float]) -> Clock:
    return Clock(wall=lambda: wall[0])


@pytest.fixture
def auth(clock: Clock) -> Authenticator:
    return Authenticator(Settings(), clock)


def _client(**kw: str) -> object:
    return boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id=kw.get("key", "test"),
        aws_secret_access_key=kw.get("secret", "test"),
    )


def _request(url: str, method: str = "GET", headers: list[tuple[str, str]] | None = None) -> HttpRequest:
    u = urlsplit(url)
    return HttpRequest(
        method, u.path, u.query, Headers([("host", u.netloc), *(headers or [])]), host=u.netloc
    )


def _raise(call) -> ServiceError:
    with pytest.raises(ServiceError) as info:
        call()
    return info.value


@pytest.mark.parametrize("key", ["reports/q1.pdf", "with space", "ünï+cødé", "a%2Fb", "x~y"])
def test_default_client_presigned_get(auth: Authenticator, key: str) -> None:
    url = _client().generate_presigned_url(
        "get_object", Params={"Bucket": "my-bucket", "Key": key}, ExpiresIn=3600
    )
    assert "AWSAccessKeyId=" in url and "X-Amz-" not in url  # what boto3 does without s3v4 config
    assert auth.authenticate(_request(url), "s3", "GetObject") is not None


def test_presigned_with_sub_resources_and_overrides(auth: Authenticator) -> None:
    url = _client().generate_presigned_url(
        "get_object",
        Params={
            "Bucket": "b",
            "Key": "k",
            "VersionId": "v1+2",
            "ResponseContentDisposition": "attachment; filename=a b",
        },
        ExpiresIn=60,
    )
    assert auth.authenticate(_request(url), "s3", "GetObject") is not None
    tampered = url.replace("v1%2B2", "v9")
    assert (
        _raise(lambda: auth.authenticate(_request(tampered), "s3", "GetObject")).code
        == "SignatureDoesNotMatch"
    )


def test_presigned_put_with_content_type(auth: Authenticator) -> None:
    url = _client().generate_presigned_url(
        "put_object", Params={"Bucket": "b", "Key": "k", "ContentType": "image/png"}, ExpiresIn=60
    )
    assert auth.authenticate(_request(url, "PUT", [("content-type", "image/png")]), "s3", "PutObject")
    wrong = _request(url, "PUT", [("content-type", "text/html")])
    assert _raise(lambda: auth.authenticate(wrong, "s3", "PutObject")).code == "SignatureDoesNotMatch"


def test_presigned_expiry(auth: Authenticator, clock: Clock) -> None:
    url = _client().generate_presigned_url("get_object", Params={"Bucket": "b", "Key": "k"}, ExpiresIn=100)
    assert auth.authenticate(_request(url), "s3", "GetObject")
    clock.advance(120)
    err = _raise(lambda: auth.authenticate(_request(url), "s3", "GetObject"))
    assert (err.code, err.status, err.message) == ("AccessDenied", 403, "Request has expired")


def test_presigned_wrong_secret_and_unknown_key(auth: Authenticator) -> None:
    url = _client(secret="nope").generate_presigned_url("get_object", Params={"Bucket": "b", "Key": "k"})
    assert _raise(lambda: auth.authenticate(_request(url), "s3", "GetObject")).code == "SignatureDoesNotMatch"
    url = _client(key="ghost").generate_presigned_url("get_object", Params={"Bucket": "b", "Key": "k"})
    assert _raise(lambda: auth.authenticate(_request(url), "s3", "GetObject")).code == "InvalidAccessKeyId"


def test_v4_configured_client_still_uses_v4(auth: Authenticator) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(signature_version="s3v4"),
    )
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "b", "Key": "k"})
    assert "X-Amz-Signature=" in url
    assert auth.authenticate(_request(url), "s3", "GetObject") is not None


def test_authorization_header_v2(auth: Authenticator, clock: Clock, wall: list[float]) -> None:
    request = AWSRequest(
        "PUT", f"{ENDPOINT}/b/k?acl", data=b"x", headers={"x-amz-meta-a": " 1 ", "Content-Type": "text/plain"}
    )
    HmacV1Auth(Credentials("test", "test")).add_auth(request)
    req = to_http(request.prepare())
    assert req.headers["authorization"].startswith("AWS test:")
    assert auth.authenticate(req, "s3", "PutBucketAcl") is not None
    req.headers.set("x-amz-meta-a", "2")
    assert _raise(lambda: auth.authenticate(req, "s3", "PutBucketAcl")).code == "SignatureDoesNotMatch"
    req.headers.set("x-amz-meta-a", "1")
    clock.advance(30 * 86400)  # the simulated clock never makes a fresh signature skewed
    assert auth.authenticate(req, "s3", "PutBucketAcl") is not None
    wall[0] += 16 * 60
    assert _raise(lambda: auth.authenticate(req, "s3", "PutBucketAcl")).code == "RequestTimeTooSkewed"


@pytest.mark.parametrize("signature_version", [None, "s3v4"])
def test_virtual_hosted_presigned(auth: Authenticator, signature_version: str | None) -> None:
    # Virtual-hosted: the client signs /key (SigV4) or /bucket/key (SigV2's resource); the gateway
    # hands us raw_path "/key" and route_path "/bucket/key".
    s3 = boto3.client(
        "s3",
        endpoint_url="http://s3.localhost.localstack.cloud:4566",
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(signature_version=signature_version, s3={"addressing_style": "virtual"}),
    )
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": "my-bucket", "Key": "a b/c"}, ExpiresIn=60
    )
    assert urlsplit(url).netloc == "my-bucket.s3.localhost.localstack.cloud:4566"
    req = _request(url)
    req.route_path = "/my-bucket" + req.raw_path
    assert auth.authenticate(req, "s3", "GetObject") is not None
