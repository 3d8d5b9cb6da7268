"""aws:SecureTransport and aws:SourceIp end to end: a policy that denies requests not made over TLS
refuses the same user's request on the plain-HTTP port and allows it on the HTTPS listener; one
that allows one address refuses the others. Decisions under these conditions are cached with the
connection's facts: these tests alternate connections to show the cache keeps them apart."""

from __future__ import annotations

import http.client
import json

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
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


def _get_item_from(server, key: dict, table: str, source: str) -> int:
    """GetItem signed with `key`, sent from the loopback address `source` (the policy's
    aws:SourceIp); returns the HTTP status."""
    body = json.dumps({"TableName": table, "Key": {"pk": {"S": "a"}}})
    request = AWSRequest(
        method="POST",
        url=f"{server.endpoint}/",
        data=body,
        headers={"X-Amz-Target": "DynamoDB_20120810.GetItem", "Content-Type": "application/x-amz-json-1.0"},
    )
    SigV4Auth(Credentials(key["access_key"], key["secret_key"]), "dynamodb", "us-east-1").add_auth(request)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30, source_address=(source, 0))
    try:
        conn.request("POST", "/", body=body, headers=dict(request.headers))
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def test_source_ip_decides_per_address(iam_server, unique):
    """A policy allowing one address: its decision is remembered per address, so a request from
    another address is refused even right after an allowed one (and the other way round)."""
    iam = iam_server.client("iam", **ROOT)
    user, table = f"ip-{unique}", f"ip-{unique}"
    iam_server.client("dynamodb", **ROOT).create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    iam.create_user(UserName=user)
    statement = {
        "Effect": "Allow",
        "Action": "dynamodb:GetItem",
        "Resource": f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/{table}",
        "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.1/32"}},
    }
    iam.put_user_policy(
        UserName=user,
        PolicyName="one-address",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
    )
    made = iam.create_access_key(UserName=user)["AccessKey"]
    key = {"access_key": made["AccessKeyId"], "secret_key": made["SecretAccessKey"]}
    statuses = [_get_item_from(iam_server, key, table, source) for source in ["127.0.0.1", "127.0.0.2"] * 2]
    assert statuses == [200, 400, 200, 400]  # DynamoDB's AccessDeniedException is a 400
