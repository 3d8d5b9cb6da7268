"""Presigned query-string SigV4: botocore's presigners verify; expiry follows the simulated clock."""

from __future__ import annotations

from urllib.parse import quote

import boto3
import pytest
from botocore.config import Config

from strata.auth import Authenticator
from strata.config import Settings
from strata.protocol.errors import ServiceError
from strata.protocol.http import Headers, HttpRequest
from strata.sim.clock import Clock
from tests.auth.helpers import ENDPOINT, presign


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def auth(clock: Clock) -> Authenticator:
    return Authenticator(Settings(), clock)


def _raise(call) -> ServiceError:
    with pytest.raises(ServiceError) as info:
        call()
    return info.value


def _from_url(url: str, method: str = "GET") -> HttpRequest:
    from urllib.parse import urlsplit

    u = urlsplit(url)
    return HttpRequest(method, u.path, u.query, Headers([("host", u.netloc)]), host=u.netloc)


@pytest.mark.parametrize("key", ["plain", "with space", "ünï/cødé", "a%2Fb", "x~y+z", "q?&=#"])
def test_boto3_generate_presigned_url(auth: Authenticator, key: str) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(signature_version="s3v4"),
    )
    url = s3.generate_presigned_url(
        "get_object",
        Params={"Bucket": "bkt", "Key": key, "ResponseContentType": "text/plain; charset=utf-8"},
        ExpiresIn=600,
    )
    assert "X-Amz-Signature=" in url
    assert auth.authenticate(_from_url(url), "s3", "GetObject") is not None


def test_presigned_put_has_unsigned_payload(auth: Authenticator) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(signature_version="s3v4"),
    )
    url = s3.generate_presigned_url("put_object", Params={"Bucket": "bkt", "Key": "k"}, ExpiresIn=60)
    req = _from_url(url, "PUT")
    req.body = b"any body at all"
    assert auth.authenticate(req, "s3", "PutObject") is not None


def test_presigned_expiry_follows_simulated_clock(auth: Authenticator, clock: Clock) -> None:
    req = presign("GET", f"{ENDPOINT}/bkt/{quote('k')}", expires=3600)
    assert auth.authenticate(req, "s3", "GetObject") is not None
    clock.advance(3590)
    assert auth.authenticate(req, "s3", "GetObject") is not None
    clock.advance(20)
    err = _raise(lambda: auth.authenticate(req, "s3", "GetObject"))
    assert (err.code, err.status, err.message) == ("AccessDenied", 403, "Request has expired")
    assert err.fields["X-Amz-Expires"] == "3600"
    assert set(err.fields) == {"X-Amz-Expires", "Expires", "ServerTime"}


def test_presigned_max_expiry_is_a_week(auth: Authenticator) -> None:
    ok = presign("GET", f"{ENDPOINT}/bkt/k", expires=604800)
    assert auth.authenticate(ok, "s3", "GetObject") is not None
    too_long = presign("GET", f"{ENDPOINT}/bkt/k", expires=604801)
    err = _raise(lambda: auth.authenticate(too_long, "s3", "GetObject"))
    assert (err.code, err.status) == ("AuthorizationQueryParametersError", 400)
    assert "604800" in err.message


def test_presigned_tampered(auth: Authenticator) -> None:
    req = presign("GET", f"{ENDPOINT}/bkt/k?versionId=1", expires=60)
    req.query_string = req.query_string.replace("versionId=1", "versionId=2")
    req._query = None
    err = _raise(lambda: auth.authenticate(req, "s3", "GetObject"))
    assert (err.code, err.status) == ("SignatureDoesNotMatch", 403)


def test_presigned_signed_header_must_match(auth: Authenticator) -> None:
    req = presign("GET", f"{ENDPOINT}/bkt/k", expires=60, headers={"x-amz-meta-a": "1"})
    assert "x-amz-meta-a" in req.query_dict()["X-Amz-SignedHeaders"]
    assert auth.authenticate(req, "s3", "GetObject") is not None
    req.headers.set("x-amz-meta-a", "2")
    assert _raise(lambda: auth.authenticate(req, "s3", "GetObject")).code == "SignatureDoesNotMatch"


def test_presigned_missing_parameters(auth: Authenticator) -> None:
    req = presign("GET", f"{ENDPOINT}/bkt/k", expires=60)
    req.query_string = "&".join(p for p in req.query_string.split("&") if not p.startswith("X-Amz-Date="))
    req._query = None
    err = _raise(lambda: auth.authenticate(req, "s3", "GetObject"))
    assert (err.code, err.status) == ("AuthorizationQueryParametersError", 400)


def test_presigned_unknown_key(auth: Authenticator) -> None:
    req = presign("GET", f"{ENDPOINT}/bkt/k", expires=60, access_key="nobody")
    err = _raise(lambda: auth.authenticate(req, "s3", "GetObject"))
    assert (err.code, err.fields["AWSAccessKeyId"]) == ("InvalidAccessKeyId", "nobody")


def test_presigned_sts_get_caller_identity(auth: Authenticator, clock: Clock) -> None:
    # The EKS/Vault "token" pattern: a presigned STS GetCallerIdentity request.
    req = presign(
        "GET", f"{ENDPOINT}/?Action=GetCallerIdentity&Version=2011-06-15", service="sts", expires=60
    )
    assert auth.authenticate(req, "sts", "GetCallerIdentity") is not None
    clock.advance(120)
    err = _raise(lambda: auth.authenticate(req, "sts", "GetCallerIdentity"))
    assert err.code == "SignatureDoesNotMatch" and err.message.startswith("Signature expired")


def test_generate_presigned_url_via_client_for_dynamodb_style_query(auth: Authenticator) -> None:
    # botocore's generic query presigner (SigV4QueryAuth) double-encodes the path like other services.
    req = presign("GET", f"{ENDPOINT}/a/b%20c/?x=1", service="dynamodb", expires=60)
    assert auth.authenticate(req, "dynamodb", "Op") is not None


def test_rds_iam_database_token(auth: Authenticator, clock: Clock) -> None:
    rds = boto3.client("rds", region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    token = rds.generate_db_auth_token(DBHostname="127.0.0.1", Port=45001, DBUsername="app_user")
    principal = auth.verify_presigned_token(token, "rds-db")
    assert principal.access_key == "test"
    assert _raise(lambda: auth.verify_presigned_token(token.replace("app_user", "admin"), "rds-db")).code == (
        "SignatureDoesNotMatch"
    )
    clock.advance(901)
    err = _raise(lambda: auth.verify_presigned_token(token, "rds-db"))
    assert err.message.startswith("Signature expired")
