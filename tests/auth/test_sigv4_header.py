"""Authorization-header SigV4: requests signed by botocore's own signers verify; tampering fails."""

from __future__ import annotations

import hashlib
import time

import pytest

from strata.auth import Authenticator
from strata.auth.canonical import canonical_query, canonical_request, canonical_uri, string_to_sign
from strata.config import Settings
from strata.protocol.errors import ServiceError
from strata.protocol.http import HttpRequest
from strata.sim.clock import Clock
from tests.auth.helpers import ENDPOINT, sign, signing_key

WEIRD_KEYS = [
    "plain.txt",
    "with space.txt",
    "unicode/ünïcødé/日本語.txt",
    "percent%2Fslash",
    "tilde~and+plus",
    "a//double//slash",
    "dots/../../x/./y",
    "!'()*;:@&=$,?#[]",
    "trailing/",
]


@pytest.fixture
def auth() -> Authenticator:
    return Authenticator(
        Settings(credentials={"AKIDEXAMPLE": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}), Clock()
    )


def _s3_url(key: str, query: str = "") -> str:
    from urllib.parse import quote

    return f"{ENDPOINT}/bucket/{quote(key, safe='/~')}" + (f"?{query}" if query else "")


@pytest.mark.parametrize("key", WEIRD_KEYS)
def test_s3_object_keys_verify(auth: Authenticator, key: str) -> None:
    req = sign("GET", _s3_url(key))
    principal = auth.authenticate(req, "s3", "GetObject")
    assert principal is not None and principal.arn == "arn:aws:iam::000000000000:root"
    assert principal.user_id == "000000000000"


@pytest.mark.parametrize(
    "query",
    [
        "list-type=2&prefix=a%20b&delimiter=%2F",
        "uploads",
        "versionId=abc%2Bdef&partNumber=3",
        "prefix=%E6%97%A5%E6%9C%AC&marker=~x",
        "b=2&a=1&a=0",
        "tagging&x-id=GetObjectTagging",
    ],
)
def test_s3_query_strings_verify(auth: Authenticator, query: str) -> None:
    req = sign("GET", _s3_url("k", query))
    assert auth.authenticate(req, "s3", "ListObjectsV2") is not None


def test_s3_put_with_payload_hash_and_headers(auth: Authenticator) -> None:
    body = b"hello world" * 100
    req = sign(
        "PUT",
        _s3_url("dir/obj"),
        body=body,
        headers={
            "Content-Type": "text/plain",
            "x-amz-meta-Note": "  spaced   value  ",
            "Cache-Control": "no-cache",
        },
    )
    assert req.headers["x-amz-content-sha256"] == hashlib.sha256(body).hexdigest()
    assert auth.authenticate(req, "s3", "PutObject") is not None


@pytest.mark.parametrize(
    ("service", "url", "headers", "body"),
    [
        ("dynamodb", ENDPOINT + "/", {"X-Amz-Target": "DynamoDB_20120810.ListTables"}, b"{}"),
        ("kms", ENDPOINT + "/", {"X-Amz-Target": "TrentService.ListKeys"}, b'{"Limit": 5}'),
        (
            "sts",
            ENDPOINT + "/",
            {"Content-Type": "application/x-www-form-urlencoded"},
            b"Action=GetCallerIdentity&Version=2011-06-15",
        ),
        ("ec2", ENDPOINT + "/", {}, b"Action=DescribeVolumes&Version=2016-11-15&Filter.1.Name=size"),
        ("elasticfilesystem", ENDPOINT + "/2015-02-01/file-systems?MaxItems=5", {}, b""),
        ("ebs", ENDPOINT + "/snapshots/snap-1/blocks?maxResults=100&pageToken=a%2Bb%3D", {}, b""),
        ("rds", ENDPOINT + "/a/./b/../c//d%20e", {}, b"Action=DescribeDBInstances"),
    ],
)
def test_other_services_verify(
    auth: Authenticator, service: str, url: str, headers: dict, body: bytes
) -> None:
    strata_name = {"elasticfilesystem": "efs"}.get(service, service)
    req = sign("POST", url, service=service, headers=headers, body=body)
    assert auth.authenticate(req, strata_name, "Op") is not None


def test_non_s3_path_is_normalised_and_double_encoded() -> None:
    # botocore: quote(remove_dot_segments(path), safe='/~') over the already-encoded path.
    assert canonical_uri("/a/./b/../c//d%20e", s3=False) == "/a/c/d%2520e"
    assert canonical_uri("/a/./b/../c//d%20e", s3=True) == "/a/./b/../c//d%20e"
    assert canonical_uri("", s3=False) == "/"


def test_query_canonicalisation() -> None:
    assert canonical_query("b=2&a=1&a=0&c") == "a=0&a=1&b=2&c="
    assert canonical_query("k=a+b&s=%7e&x=%2f") == "k=a%2Bb&s=~&x=%2F"
    assert canonical_query("X-Amz-Signature=abc&a=1", skip="X-Amz-Signature") == "a=1"


def test_s3_accepts_loosely_encoded_paths(auth: Authenticator) -> None:
    # A client may sign the strict encoding (%21, %28) yet send the characters bare; AWS
    # canonicalises from the decoded key, so both forms verify.
    req = sign("GET", ENDPOINT + "/bucket/a%21b%28c%29")
    req.raw_path = "/bucket/a!b(c)"
    assert auth.authenticate(req, "s3", "GetObject") is not None


def test_documented_seed_signature() -> None:
    """The S3 documentation's chunked-upload example: our canonical request reproduces its seed."""
    from strata.protocol.http import Headers

    headers = Headers(
        [
            ("host", "s3.amazonaws.com"),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
            ("content-encoding", "aws-chunked"),
            ("x-amz-decoded-content-length", "66560"),
            ("content-length", "66824"),
        ]
    )
    req = HttpRequest("PUT", "/examplebucket/chunkObject.txt", "", headers, host="s3.amazonaws.com")
    signed = "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class"
    canonical = canonical_request(
        req, req.raw_path, "", signed.split(";"), signed, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    )
    to_sign = string_to_sign("20130524T000000Z", "20130524/us-east-1/s3/aws4_request", canonical)
    key = signing_key("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "20130524", "us-east-1", "s3")
    import hmac

    assert (
        hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        == "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
    )


# ---- tampering and errors


def _expect(call, code: str, status: int) -> ServiceError:
    with pytest.raises(ServiceError) as info:
        call()
    assert (info.value.code, info.value.status) == (code, status), info.value.message
    return info.value


def test_wrong_secret_s3(auth: Authenticator) -> None:
    req = sign("GET", _s3_url("k"), secret="nope")
    err = _expect(lambda: auth.authenticate(req, "s3", "GetObject"), "SignatureDoesNotMatch", 403)
    assert err.message.startswith("The request signature we calculated does not match")
    assert err.fields["AWSAccessKeyId"] == "test"
    assert "GET\n/bucket/k\n" in err.fields["CanonicalRequest"]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda r: setattr(r, "raw_path", "/bucket/other"),
        lambda r: setattr(r, "query_string", "x=1"),
        lambda r: setattr(r, "method", "DELETE"),
        # another second than the signed one (a fixed "9Z" is no change one time in ten)
        lambda r: r.headers.set(
            "x-amz-date",
            r.headers["x-amz-date"][:-2] + ("8Z" if r.headers["x-amz-date"][-2] == "9" else "9Z"),
        ),
        lambda r: r.headers.set("host", "evil.example"),
    ],
)
def test_tampered_requests_fail(auth: Authenticator, tamper) -> None:
    req = sign("GET", _s3_url("k"))
    tamper(req)
    _expect(lambda: auth.authenticate(req, "s3", "GetObject"), "SignatureDoesNotMatch", 403)


def test_s3_body_not_matching_hash(auth: Authenticator) -> None:
    req = sign("PUT", _s3_url("k"), body=b"original")
    req.body = b"tampered"
    err = _expect(lambda: auth.authenticate(req, "s3", "PutObject"), "XAmzContentSHA256Mismatch", 400)
    assert err.fields["S3ComputedContentSHA256"] == hashlib.sha256(b"tampered").hexdigest()


def test_dynamodb_body_tampered(auth: Authenticator) -> None:
    req = sign("POST", ENDPOINT + "/", service="dynamodb", body=b'{"TableName":"a"}')
    req.body = b'{"TableName":"b"}'
    _expect(lambda: auth.authenticate(req, "dynamodb", "DescribeTable"), "InvalidSignatureException", 400)


@pytest.mark.parametrize(
    ("service", "signing", "code", "status"),
    [
        ("s3", "s3", "InvalidAccessKeyId", 403),
        ("dynamodb", "dynamodb", "UnrecognizedClientException", 400),
        ("kms", "kms", "UnrecognizedClientException", 400),
        ("sts", "sts", "InvalidClientTokenId", 403),
        ("iam", "iam", "InvalidClientTokenId", 403),
        ("rds", "rds", "InvalidClientTokenId", 403),
        ("ec2", "ec2", "AuthFailure", 401),
        ("efs", "elasticfilesystem", "UnrecognizedClientException", 403),
    ],
)
def test_unknown_access_key(auth: Authenticator, service: str, signing: str, code: str, status: int) -> None:
    req = sign("POST", ENDPOINT + "/", service=signing, access_key="AKIDUNKNOWN", body=b"x")
    err = _expect(lambda: auth.authenticate(req, service, "Op"), code, status)
    if service != "s3" and service != "ec2":
        assert err.message == "The security token included in the request is invalid."


@pytest.mark.parametrize(
    ("service", "signing", "code", "status"),
    [
        ("dynamodb", "dynamodb", "InvalidSignatureException", 400),
        ("sts", "sts", "SignatureDoesNotMatch", 403),
        ("ec2", "ec2", "AuthFailure", 401),
        ("efs", "elasticfilesystem", "InvalidSignatureException", 403),
    ],
)
def test_bad_signature_other_services(
    auth: Authenticator, service: str, signing: str, code: str, status: int
) -> None:
    req = sign("POST", ENDPOINT + "/", service=signing, secret="wrong", body=b"x")
    _expect(lambda: auth.authenticate(req, service, "Op"), code, status)


@pytest.mark.parametrize(
    ("service", "code", "status"),
    [
        ("dynamodb", "MissingAuthenticationTokenException", 400),
        ("sts", "MissingAuthenticationToken", 403),
        ("kms", "MissingAuthenticationTokenException", 400),
    ],
)
def test_unsigned_requests(auth: Authenticator, service: str, code: str, status: int) -> None:
    from strata.protocol.http import Headers

    req = HttpRequest("GET", "/bucket/k", "", Headers([("host", "h")]))
    _expect(lambda: auth.authenticate(req, service, "GetObject"), code, status)


def test_unsigned_s3_request_is_the_anonymous_principal(auth: Authenticator) -> None:
    """Authorization decides (a bucket policy may make the object public): see
    tests/services/s3/test_bucket_policy.py for what the anonymous principal may do."""
    from strata.auth.principal import ANONYMOUS
    from strata.protocol.http import Headers

    req = HttpRequest("GET", "/bucket/k", "", Headers([("host", "h")]))
    assert auth.authenticate(req, "s3", "GetObject") is ANONYMOUS


def test_s3_post_object_and_preflight_are_anonymous(auth: Authenticator) -> None:
    from strata.protocol.http import Headers

    assert auth.authenticate(HttpRequest("POST", "/bucket", "", Headers()), "s3", "PostObject") is None
    assert auth.authenticate(HttpRequest("OPTIONS", "/bucket/k", "", Headers()), "s3", "Preflight") is None


@pytest.mark.parametrize(
    ("header", "s3_code", "other_code"),
    [
        (
            "AWS4-HMAC-SHA256 Credential=test/20250101/us-east-1/s3/aws4_request",
            "AuthorizationHeaderMalformed",
            "IncompleteSignatureException",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=test /20250101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=ab",
            "AuthorizationHeaderMalformed",
            "IncompleteSignatureException",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=test/2025/s3/aws4_request, SignedHeaders=host, Signature=ab",
            "AuthorizationHeaderMalformed",
            "IncompleteSignatureException",
        ),
        ("Bearer xyz", "InvalidArgument", "IncompleteSignatureException"),
    ],
)
def test_malformed_authorization(auth: Authenticator, header: str, s3_code: str, other_code: str) -> None:
    from strata.protocol.http import Headers

    for service, code in (("s3", s3_code), ("dynamodb", other_code)):
        req = HttpRequest(
            "GET", "/", "", Headers([("authorization", header), ("x-amz-date", "20250101T000000Z")])
        )
        _expect(lambda req=req, service=service: auth.authenticate(req, service, "Op"), code, 400)


def test_scope_for_other_service_is_refused(auth: Authenticator) -> None:
    req = sign("POST", ENDPOINT + "/", service="kms", body=b"{}")
    err = _expect(lambda: auth.authenticate(req, "dynamodb", "ListTables"), "InvalidSignatureException", 400)
    assert "scoped to correct service: 'dynamodb'" in err.message


def test_s3_requires_content_sha256(auth: Authenticator) -> None:
    req = sign("GET", _s3_url("k"))
    req.headers.remove("x-amz-content-sha256")
    _expect(lambda: auth.authenticate(req, "s3", "GetObject"), "InvalidRequest", 400)


def test_invalid_content_sha256_value(auth: Authenticator) -> None:
    req = sign("GET", _s3_url("k"), headers={"X-Amz-Content-SHA256": "bogus"})
    req.headers.set("x-amz-content-sha256", "bogus")
    _expect(lambda: auth.authenticate(req, "s3", "GetObject"), "InvalidArgument", 400)


def test_date_header_instead_of_x_amz_date(auth: Authenticator) -> None:
    # botocore signs with the Date header when one is present (and drops X-Amz-Date).
    from email.utils import formatdate

    req = sign("GET", _s3_url("k"), headers={"Date": formatdate(usegmt=True)})
    assert "x-amz-date" not in req.headers
    assert auth.authenticate(req, "s3", "GetObject") is not None


# ---- clock skew, against a private simulated clock


@pytest.mark.parametrize(
    ("service", "signing", "code", "status", "text"),
    [
        (
            "s3",
            "s3",
            "RequestTimeTooSkewed",
            403,
            "The difference between the request time and the current time is too large.",
        ),
        ("dynamodb", "dynamodb", "InvalidSignatureException", 400, "Signature expired: "),
        ("sts", "sts", "SignatureDoesNotMatch", 403, "Signature expired: "),
        ("ec2", "ec2", "RequestExpired", 400, "Request has expired."),
    ],
)
def test_clock_skew(service: str, signing: str, code: str, status: int, text: str) -> None:
    wall = [time.time()]
    clock = Clock(wall=lambda: wall[0])
    auth = Authenticator(Settings(), clock)
    req = sign("GET", _s3_url("k") if service == "s3" else ENDPOINT + "/", service=signing)
    clock.advance(30 * 86400)  # the simulated clock does not judge a client's clock...
    assert auth.authenticate(req, service, "Op") is not None
    wall[0] += 14 * 60  # ...real time does
    assert auth.authenticate(req, service, "Op") is not None
    wall[0] += 2 * 60
    err = _expect(lambda: auth.authenticate(req, service, "Op"), code, status)
    assert err.message.startswith(text)
    if service == "s3":
        assert err.fields["MaxAllowedSkewMilliseconds"] == "900000"
        assert err.fields["RequestTime"] == req.headers["x-amz-date"]


def test_signing_key_is_cached(auth: Authenticator) -> None:
    for _ in range(3):
        assert auth.authenticate(sign("GET", _s3_url("k")), "s3", "GetObject") is not None
    assert len(auth.store._keys) == 1
