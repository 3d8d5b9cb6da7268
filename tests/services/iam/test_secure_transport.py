"""aws:SecureTransport end to end: a policy that denies requests not made over TLS refuses the same
user's request on the plain-HTTP port and allows it on the HTTPS listener."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from tests.services.iam.conftest import ACCOUNT, ROOT

POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
        {
            "Effect": "Deny",
            "Action": "s3:*",
            "Resource": "*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
    ],
}


def test_deny_unless_secure_transport(iam_server, unique):
    iam = iam_server.client("iam", **ROOT)
    user = f"tls-{unique}"
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="tls-only", PolicyDocument=json.dumps(POLICY))
    made = iam.create_access_key(UserName=user)["AccessKey"]
    key = {"access_key": made["AccessKeyId"], "secret_key": made["SecretAccessKey"]}
    bucket = f"tls-only-{unique}"
    plain, secure = iam_server.client("s3", **key), iam_server.client("s3", https=True, **key)

    with pytest.raises(ClientError) as e:
        plain.create_bucket(Bucket=bucket)
    error = e.value.response["Error"]
    assert (error["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]) == ("AccessDenied", 403)
    assert error["Message"] == (
        f"User: arn:aws:iam::{ACCOUNT}:user/{user} is not authorized to perform: s3:CreateBucket on resource: "
        f"arn:aws:s3:::{bucket} with an explicit deny in an identity-based policy"
    )

    secure.create_bucket(Bucket=bucket)
    secure.put_object(Bucket=bucket, Key="k", Body=b"over tls")
    assert secure.get_object(Bucket=bucket, Key="k")["Body"].read() == b"over tls"
    for call, kw in (
        (plain.get_object, {"Bucket": bucket, "Key": "k"}),
        (plain.put_object, {"Bucket": bucket, "Key": "k2", "Body": b"x"}),
        (plain.list_objects_v2, {"Bucket": bucket}),
    ):
        with pytest.raises(ClientError) as e:
            call(**kw)
        assert e.value.response["Error"]["Code"] == "AccessDenied"
    assert [o["Key"] for o in secure.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]
    # The account root is not bound by the user's policy: plain HTTP still works for it.
    assert iam_server.client("s3", **ROOT).get_object(Bucket=bucket, Key="k")["Body"].read() == b"over tls"
    secure.delete_object(Bucket=bucket, Key="k")
    secure.delete_bucket(Bucket=bucket)
