"""S3 CORS: Put/Get/DeleteBucketCors with S3's checks, unsigned OPTIONS preflights answered from
the bucket's rules, and the CORS headers on actual requests (a GET, a browser's presigned POST)."""

from __future__ import annotations

import http.client

import pytest
import requests
from botocore.exceptions import ClientError

APP = "https://app.example.com"
RULES = [
    {
        "ID": "uploads",
        "AllowedOrigins": [APP, "https://*.example.org"],
        "AllowedMethods": ["GET", "PUT", "POST"],
        "AllowedHeaders": ["content-type", "x-amz-*"],
        "ExposeHeaders": ["ETag", "x-amz-request-id"],
        "MaxAgeSeconds": 3000,
    },
    {"AllowedOrigins": ["*"], "AllowedMethods": ["HEAD"]},
]


def _error(call, **kw) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as info:
        call(**kw)
    e = info.value.response
    return e["Error"]["Code"], e["ResponseMetadata"]["HTTPStatusCode"], e["Error"].get("Message", "")


def _options(server, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("OPTIONS", path, headers=headers)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def test_put_get_delete(s3, bucket: str) -> None:
    code, status, _ = _error(s3.get_bucket_cors, Bucket=bucket)
    assert (code, status) == ("NoSuchCORSConfiguration", 404)
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"] == RULES
    assert s3.delete_bucket_cors(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert _error(s3.get_bucket_cors, Bucket=bucket)[0] == "NoSuchCORSConfiguration"
    s3.delete_bucket_cors(Bucket=bucket)  # idempotent, as S3
    assert _error(s3.get_bucket_cors, Bucket="no-such-bucket-cors-x")[0] == "NoSuchBucket"


@pytest.mark.parametrize(
    ("rules", "code", "message"),
    [
        (
            [{"AllowedOrigins": ["*"], "AllowedMethods": ["PATCH"]}],
            "InvalidRequest",
            "Unsupported method is PATCH",
        ),
        (
            [{"AllowedOrigins": ["https://*.*.example.com"], "AllowedMethods": ["GET"]}],
            "InvalidRequest",
            "can not have more than one wildcard",
        ),
        (
            [{"AllowedOrigins": ["*"], "AllowedMethods": ["GET"], "AllowedHeaders": ["x-*-*"]}],
            "InvalidRequest",
            "can not have more than one wildcard",
        ),
        (
            [{"AllowedOrigins": ["*"], "AllowedMethods": ["GET"], "ExposeHeaders": ["x-*"]}],
            "InvalidRequest",
            "wildcard",
        ),
        ([{"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]}] * 101, "MalformedXML", "not well-formed"),
        ([{"AllowedOrigins": ["*"], "AllowedMethods": []}], "MalformedXML", "not well-formed"),
    ],
)
def test_validation(s3, bucket: str, rules: list, code: str, message: str) -> None:
    got = _error(s3.put_bucket_cors, Bucket=bucket, CORSConfiguration={"CORSRules": rules})
    assert got[:2] == (code, 400)
    assert message in got[2]
    assert _error(s3.get_bucket_cors, Bucket=bucket)[0] == "NoSuchCORSConfiguration"


def test_preflight_allowed(strata_server, s3, bucket: str) -> None:
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    status, h, _ = _options(
        strata_server,
        f"/{bucket}/uploads/photo.jpg",
        {
            "Origin": APP,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "Content-Type, X-Amz-Date",
        },
    )
    assert status == 200
    assert h["access-control-allow-origin"] == APP
    assert h["access-control-allow-methods"] == "GET, PUT, POST"
    assert h["access-control-allow-headers"] == "content-type, x-amz-date"
    assert h["access-control-max-age"] == "3000"
    assert h["access-control-expose-headers"] == "ETag, x-amz-request-id"
    assert h["access-control-allow-credentials"] == "true"
    assert "Origin" in h["vary"]
    # the wildcard origin of the second rule: `*`, no credentials
    status, h, _ = _options(
        strata_server,
        f"/{bucket}",
        {"Origin": "http://anywhere.test", "Access-Control-Request-Method": "HEAD"},
    )
    assert status == 200
    assert h["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in h
    # one wildcard in an origin
    status, h, _ = _options(
        strata_server,
        f"/{bucket}/k",
        {"Origin": "https://a.example.org", "Access-Control-Request-Method": "GET"},
    )
    assert (status, h["access-control-allow-origin"]) == (200, "https://a.example.org")


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example.net", "Access-Control-Request-Method": "PUT"},
        {"Origin": APP, "Access-Control-Request-Method": "DELETE"},
        {
            "Origin": APP,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "authorization",
        },
    ],
)
def test_preflight_denied(strata_server, s3, bucket: str, headers: dict[str, str]) -> None:
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    status, h, body = _options(strata_server, f"/{bucket}/k", headers)
    assert status == 403
    assert b"<Code>AccessForbidden</Code>" in body
    assert b"CORSResponse: This CORS request is not allowed" in body
    assert b"<ResourceType>OBJECT</ResourceType>" in body
    assert "access-control-allow-origin" not in h


def test_preflight_without_configuration_or_origin(strata_server, bucket: str) -> None:
    status, h, body = _options(
        strata_server, f"/{bucket}", {"Origin": APP, "Access-Control-Request-Method": "GET"}
    )
    assert status == 403
    assert b"CORSResponse: CORS is not enabled for this bucket." in body
    assert b"<ResourceType>BUCKET</ResourceType>" in body
    status, _, body = _options(strata_server, f"/{bucket}", {"Origin": APP})  # no method: OPTIONS
    assert status == 403
    assert b"<Method>OPTIONS</Method>" in body
    status, _, body = _options(strata_server, f"/{bucket}", {"Access-Control-Request-Method": "GET"})
    assert status == 400
    assert b"<Code>BadRequest</Code>" in body
    assert b"Insufficient information. Origin request header needed." in body
    status, _, body = _options(
        strata_server, f"/{bucket}-absent/k", {"Origin": APP, "Access-Control-Request-Method": "GET"}
    )
    assert status == 403
    assert b"CORSResponse: Bucket not found" in body


def test_actual_get_gets_cors_headers(strata_server, s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"hello")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"})
    r = requests.get(url, headers={"Origin": APP}, timeout=30)
    assert r.status_code == 200
    assert "access-control-allow-origin" not in {k.lower() for k in r.headers}  # no configuration yet
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    r = requests.get(url, headers={"Origin": APP}, timeout=30)
    assert (r.status_code, r.content) == (200, b"hello")
    assert r.headers["Access-Control-Allow-Origin"] == APP
    assert r.headers["Access-Control-Allow-Credentials"] == "true"
    assert r.headers["Access-Control-Expose-Headers"] == "ETag, x-amz-request-id"
    assert r.headers["Vary"] == "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"
    # headers are checked on preflights only: an actual request sending others is still decorated
    r = requests.get(url, headers={"Origin": APP, "x-unlisted": "1"}, timeout=30)
    assert r.headers["Access-Control-Allow-Origin"] == APP
    # an origin no rule allows: the request is served, without CORS headers (the browser blocks it)
    r = requests.get(url, headers={"Origin": "https://evil.example.net"}, timeout=30)
    assert r.status_code == 200
    assert "Access-Control-Allow-Origin" not in r.headers
    # errors carry them too, so a page can read them
    missing = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "nope"})
    r = requests.get(missing, headers={"Origin": APP}, timeout=30)
    assert (r.status_code, r.headers["Access-Control-Allow-Origin"]) == (404, APP)


def test_browser_upload_with_presigned_post(strata_server, s3, bucket: str) -> None:
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    status, h, _ = _options(
        strata_server, f"/{bucket}", {"Origin": APP, "Access-Control-Request-Method": "POST"}
    )
    assert (status, h["access-control-allow-origin"]) == (200, APP)
    post = s3.generate_presigned_post(Bucket=bucket, Key="uploads/a.txt", ExpiresIn=600)
    r = requests.post(
        post["url"],
        data=post["fields"],
        files={"file": ("a.txt", b"from the browser")},
        headers={"Origin": APP},
        timeout=30,
    )
    assert r.status_code == 204, r.text
    assert r.headers["Access-Control-Allow-Origin"] == APP
    assert r.headers["Access-Control-Expose-Headers"] == "ETag, x-amz-request-id"
    assert s3.get_object(Bucket=bucket, Key="uploads/a.txt")["Body"].read() == b"from the browser"


def test_preflight_virtual_hosted_serves_no_data(strata_server, s3, bucket: str) -> None:
    """A preflight to `bucket.s3.<host>/key` reads the bucket from the host; being unsigned, it
    answers the CORS headers only, never the object."""
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    s3.put_object(Bucket=bucket, Key="secret", Body=b"not for preflights")
    host = f"{bucket}.s3.localhost.localstack.cloud:{strata_server.port}"
    status, h, body = _options(
        strata_server, "/secret", {"Host": host, "Origin": APP, "Access-Control-Request-Method": "GET"}
    )
    assert (status, h["access-control-allow-origin"], body) == (200, APP, b"")
    status, _, body = _options(
        strata_server,
        "/secret",
        {"Host": host, "Origin": "https://evil.example.net", "Access-Control-Request-Method": "GET"},
    )
    assert status == 403
    assert b"not for preflights" not in body


@pytest.mark.parametrize("path", ["/", "*", "/%ff/k", "/" + "b" * 300])
def test_preflight_odd_targets_are_refused_not_crashed(strata_server, path: str) -> None:
    status, _, body = _options(strata_server, path, {"Origin": APP, "Access-Control-Request-Method": "GET"})
    assert status in (400, 403), body
    assert b"<Code>" in body
