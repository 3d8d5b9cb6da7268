"""Browser POST uploads and encryption: the signed POST policy's conditions on the encryption
fields, and the bucket policy's s3:x-amz-server-side-encryption conditions, which bind a form
upload (the signer's PutObject) exactly as they bind a PutObject; Object Lock form fields."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.services.iam.conftest import ALT_ACCOUNT, ALT_ROOT
from tests.services.s3.security.conftest import put_policy
from tests.services.s3.test_presigned import http_call, multipart_form

SSE = "x-amz-server-side-encryption"
KMS_KEY = "x-amz-server-side-encryption-aws-kms-key-id"


def _post(client, bucket: str, key: str, fields: dict, conditions: list, sent: dict | None = None):  # noqa: ANN001, ANN201
    """Sign a form with `fields`/`conditions`, submit it with `sent` in place of `fields`."""
    post = client.generate_presigned_post(Bucket=bucket, Key=key, Fields=fields, Conditions=conditions)
    form = dict(post["fields"])
    if sent is not None:
        for name in fields:
            form.pop(name, None)
        form.update(sent)
    body, ctype = multipart_form(form, key, b"form upload")
    status, resp, _ = http_call("POST", post["url"], body, {"Content-Type": ctype})
    return status, resp


def _exists(client, bucket: str, key: str) -> bool:  # noqa: ANN001
    try:
        client.head_object(Bucket=bucket, Key=key)
    except client.exceptions.ClientError:
        return False
    return True


def test_post_policy_conditions_on_encryption_fields(server, owner, bucket):
    key_arn = server.client("kms").create_key()["KeyMetadata"]["Arn"]  # the object is really encrypted
    kms = {SSE: "aws:kms", KMS_KEY: key_arn}
    conditions = [{SSE: "aws:kms"}, ["starts-with", f"${KMS_KEY}", "arn:aws:kms:us-east-1:123456789012:"]]
    # Each field as signed: accepted.
    status, resp = _post(owner, bucket, "ok.bin", kms, conditions)
    assert status == 204, resp
    assert owner.head_object(Bucket=bucket, Key="ok.bin")["ServerSideEncryption"] == "aws:kms"
    # Another encryption than the policy names, a key outside the prefix, the field left out.
    denied = [
        {**kms, SSE: "AES256"},
        {**kms, KMS_KEY: key_arn.replace(":123456789012:", ":999999999999:")},
        {KMS_KEY: kms[KMS_KEY]},
    ]
    for i, sent in enumerate(denied):
        status, resp = _post(owner, bucket, f"no-{i}.bin", kms, conditions, sent)
        assert status == 403 and b"Policy Condition failed" in resp, resp
        assert not _exists(owner, bucket, f"no-{i}.bin")
    # An encryption field the policy does not name is an extra field.
    status, resp = _post(owner, bucket, "extra.bin", {}, [], {SSE: "AES256"})
    assert status == 403 and b"Extra input fields" in resp, resp


def test_bucket_policy_encryption_condition_binds_form_uploads(server, owner, bucket):
    put_policy(
        owner,
        bucket,
        {
            "Sid": "DenyIncorrectEncryptionHeader",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": f"arn:aws:s3:::{bucket}/*",
            "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption": "AES256"}},
        },
        {
            "Effect": "Allow",
            "Principal": {"AWS": ALT_ACCOUNT},
            "Action": "s3:PutObject",
            "Resource": f"arn:aws:s3:::{bucket}/*",
        },
    )
    other = server.client("s3", **ALT_ROOT)
    for signer in (owner, other):
        status, resp = _post(signer, bucket, "plain.bin", {}, [])
        assert status == 403 and b"AccessDenied" in resp, resp
        status, resp = _post(signer, bucket, "kms.bin", {SSE: "aws:kms"}, [{SSE: "aws:kms"}])
        assert status == 403 and b"AccessDenied" in resp, resp
        status, resp = _post(signer, bucket, "aes.bin", {SSE: "AES256"}, [{SSE: "AES256"}])
        assert status == 204, resp
    assert not _exists(owner, bucket, "plain.bin") and not _exists(owner, bucket, "kms.bin")
    assert owner.head_object(Bucket=bucket, Key="aes.bin")["ServerSideEncryption"] == "AES256"


def test_object_lock_form_fields(server, owner, bucket, unique):
    locked = f"postlock-{unique}"
    owner.create_bucket(Bucket=locked, ObjectLockEnabledForBucket=True)
    now = datetime.fromisoformat(server.admin("/_strata/clock")["now"]).astimezone(UTC)
    until = (now + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    fields = {"x-amz-object-lock-mode": "GOVERNANCE", "x-amz-object-lock-retain-until-date": until}
    status, resp = _post(owner, locked, "held.bin", fields, [{k: v} for k, v in fields.items()])
    assert status == 204, resp
    head = owner.head_object(Bucket=locked, Key="held.bin")
    assert head["ObjectLockMode"] == "GOVERNANCE"
    assert head["ObjectLockRetainUntilDate"].strftime("%Y-%m-%dT%H:%M:%SZ") == until
    # Lock fields on a bucket without Object Lock are refused, as PutObject's headers are.
    status, resp = _post(owner, bucket, "held.bin", fields, [{k: v} for k, v in fields.items()])
    assert status == 400 and b"Bucket is missing Object Lock Configuration" in resp, resp
    assert not _exists(owner, bucket, "held.bin")
