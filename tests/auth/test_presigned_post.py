"""S3 browser POST policies from boto3's generate_presigned_post (SigV2 default and SigV4)."""

from __future__ import annotations

import base64
import json

import boto3
import pytest
from botocore.config import Config

from strata.auth.presigned_post import verify_post_policy
from strata.config import Settings
from strata.protocol.errors import ServiceError
from strata.sim.clock import Clock
from tests.auth.helpers import ENDPOINT

SETTINGS = Settings()


def _client(v4: bool, secret: str = "test", key: str = "test"):
    cfg = Config(signature_version="s3v4") if v4 else None
    return boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=cfg,
    )


def _course_post(v4: bool, **kw) -> dict[str, str]:
    """The course's generate_presigned_upload_url snippet."""
    return _client(v4, **kw).generate_presigned_post(
        Bucket="my-bucket",
        Key="uploads/user123/file.jpg",
        Fields={"Content-Type": "image/jpeg"},
        Conditions=[{"Content-Type": "image/jpeg"}, ["content-length-range", 1, 104857600]],
        ExpiresIn=3600,
    )["fields"]


def _error(
    fields: dict, bucket: str = "my-bucket", size: int = 10, clock: Clock | None = None
) -> ServiceError:
    with pytest.raises(ServiceError) as info:
        verify_post_policy(fields, bucket, size, SETTINGS, clock)
    return info.value


@pytest.mark.parametrize("v4", [False, True])
def test_course_snippet_verifies(v4: bool) -> None:
    fields = _course_post(v4)
    principal = verify_post_policy(fields, "my-bucket", 1000, SETTINGS, Clock())
    assert principal.access_key == "test"


@pytest.mark.parametrize("v4", [False, True])
def test_condition_failures(v4: bool) -> None:
    fields = _course_post(v4)
    err = _error({**fields, "Content-Type": "text/html"})
    assert (err.code, err.status) == ("AccessDenied", 403)
    assert (
        err.message
        == 'Invalid according to Policy: Policy Condition failed: ["eq", "$content-type", "image/jpeg"]'
    )
    assert _error({**fields, "key": "elsewhere"}).message.endswith(
        '["eq", "$key", "uploads/user123/file.jpg"]'
    )
    assert "$bucket" in _error(fields, bucket="other-bucket").message
    extra = _error({**fields, "acl": "public-read"})
    assert extra.message == "Invalid according to Policy: Extra input fields: acl"
    assert verify_post_policy({**fields, "x-ignore-me": "1"}, "my-bucket", 5, SETTINGS)


@pytest.mark.parametrize("v4", [False, True])
def test_length_range(v4: bool) -> None:
    fields = _course_post(v4)
    small = _error(fields, size=0)
    assert (small.code, small.status, small.fields["MinSizeAllowed"]) == ("EntityTooSmall", 400, "1")
    large = _error(fields, size=104857601)
    assert (large.code, large.fields["MaxSizeAllowed"]) == ("EntityTooLarge", "104857600")


@pytest.mark.parametrize("v4", [False, True])
def test_policy_expiry_follows_simulated_clock(v4: bool) -> None:
    fields = _course_post(v4)
    clock = Clock()
    assert verify_post_policy(fields, "my-bucket", 10, SETTINGS, clock)
    clock.advance(3601)
    err = _error(fields, clock=clock)
    assert (err.code, err.message) == ("AccessDenied", "Invalid according to Policy: Policy expired.")


@pytest.mark.parametrize("v4", [False, True])
def test_bad_signature_and_unknown_key(v4: bool) -> None:
    assert _error(_course_post(v4, secret="wrong")).code == "SignatureDoesNotMatch"
    assert _error(_course_post(v4, key="ghost")).code == "InvalidAccessKeyId"
    fields = _course_post(v4)
    policy = json.loads(base64.b64decode(fields["policy"]))
    policy["conditions"].append(["starts-with", "$key", ""])
    forged = {**fields, "policy": base64.b64encode(json.dumps(policy).encode()).decode()}
    assert _error(forged).code == "SignatureDoesNotMatch"


def test_starts_with_and_filename_prefix() -> None:
    fields = _client(True).generate_presigned_post(
        Bucket="b",
        Key="uploads/${filename}",
        Conditions=[["starts-with", "$Content-Type", "image/"]],
        Fields={"Content-Type": "image/png"},
    )["fields"]
    assert verify_post_policy(fields, "b", 1, SETTINGS)
    assert verify_post_policy({**fields, "key": "uploads/x.png"}, "b", 1, SETTINGS)
    err = _error({**fields, "key": "other/x.png"}, bucket="b")
    assert err.message.endswith('["starts-with", "$key", "uploads/"]')
    assert "starts-with" in _error({**fields, "Content-Type": "text/plain"}, bucket="b").message


def test_missing_policy_is_access_denied() -> None:
    assert _error({"key": "k"}).code == "AccessDenied"
