"""The README's users file: accounts, root keys, alice with AmazonS3ReadOnlyAccess; enforcement
in every protocol's AccessDenied form."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.services.iam.conftest import ACCOUNT, ALICE, ALT_ACCOUNT, ALT_ROOT, ROOT


def _error(exc: pytest.ExceptionInfo) -> tuple[str, str, int]:
    r = exc.value.response
    return r["Error"]["Code"], r["Error"]["Message"], r["ResponseMetadata"]["HTTPStatusCode"]


def test_alice_reads_but_cannot_write_s3(iam_server, unique):
    root = iam_server.client("s3", **ROOT)
    bucket = f"alice-{unique}"
    root.create_bucket(Bucket=bucket)
    root.put_object(Bucket=bucket, Key="k", Body=b"hello")
    alice = iam_server.client("s3", **ALICE)
    assert alice.get_object(Bucket=bucket, Key="k")["Body"].read() == b"hello"
    assert [o["Key"] for o in alice.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]
    with pytest.raises(ClientError) as e:
        alice.put_object(Bucket=bucket, Key="new", Body=b"x")
    assert _error(e) == (
        "AccessDenied",
        f"User: arn:aws:iam::{ACCOUNT}:user/alice is not authorized to perform: s3:PutObject on resource: "
        f"arn:aws:s3:::{bucket}/new because no identity-based policy allows the s3:PutObject action",
        403,
    )
    with pytest.raises(ClientError) as e:
        alice.delete_object(Bucket=bucket, Key="k")
    assert _error(e)[0] == "AccessDenied"
    assert root.get_object(Bucket=bucket, Key="k")["Body"].read() == b"hello"


def test_denied_in_each_protocol(iam_server, unique):
    with pytest.raises(ClientError) as e:
        iam_server.client("dynamodb", **ALICE).list_tables()
    code, message, status = _error(e)
    assert (code, status) == ("AccessDeniedException", 400)
    assert message == (
        f"User: arn:aws:iam::{ACCOUNT}:user/alice is not authorized to perform: dynamodb:ListTables "
        "because no identity-based policy allows the dynamodb:ListTables action"
    )
    with pytest.raises(ClientError) as e:
        iam_server.client("rds", **ALICE).describe_db_instances()
    assert _error(e)[0::2] == ("AccessDenied", 403)
    with pytest.raises(ClientError) as e:
        iam_server.client("iam", **ALICE).list_users()
    assert _error(e)[0::2] == ("AccessDenied", 403)


def test_identities_of_keys(iam_server):
    def who(**kw):
        return iam_server.client("sts", **kw).get_caller_identity()

    assert who(**ROOT)["Arn"] == f"arn:aws:iam::{ACCOUNT}:root"
    alice = who(**ALICE)
    assert alice["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/alice" and alice["UserId"].startswith("AIDA")
    assert who(**ALT_ROOT)["Account"] == ALT_ACCOUNT
    # default_account: the loopback test key belongs to it.
    assert who()["Account"] == ACCOUNT
    info = iam_server.client("sts", **ROOT).get_access_key_info(AccessKeyId=ALT_ROOT["access_key"])
    assert info["Account"] == ALT_ACCOUNT


def test_file_users_are_iam_users(iam_server):
    iam = iam_server.client("iam", **ROOT)
    assert "alice" in [u["UserName"] for u in iam.list_users()["Users"]]
    attached = iam.list_attached_user_policies(UserName="alice")["AttachedPolicies"]
    assert attached == [
        {
            "PolicyName": "AmazonS3ReadOnlyAccess",
            "PolicyArn": "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess",
        }
    ]
    keys = iam.list_access_keys(UserName="alice")["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in keys] == [ALICE["access_key"]]
    # The other account does not see them.
    alt = iam_server.client("iam", **ALT_ROOT)
    assert "alice" not in [u["UserName"] for u in alt.list_users()["Users"]]


def test_buckets_belong_to_accounts(iam_server, unique):
    mine = f"mine-{unique}"
    iam_server.client("s3", **ROOT).create_bucket(Bucket=mine)
    alt = iam_server.client("s3", **ALT_ROOT)
    assert mine not in [b["Name"] for b in alt.list_buckets()["Buckets"]]
    with pytest.raises(ClientError) as e:
        alt.create_bucket(Bucket=mine)  # names are global
    assert _error(e)[0] == "BucketAlreadyExists"
    with pytest.raises(ClientError) as e:
        alt.put_object(Bucket=mine, Key="k", Body=b"x")
    code, message, _ = _error(e)
    assert (
        code == "AccessDenied"
        and "because no resource-based policy allows the s3:PutObject action" in message
    )


def test_unknown_and_bad_keys(iam_server):
    with pytest.raises(ClientError) as e:
        iam_server.client("s3", access_key="AKIANOSUCHKEY0000000", secret_key="x" * 40).list_buckets()
    assert _error(e)[0] == "InvalidAccessKeyId"
    with pytest.raises(ClientError) as e:
        iam_server.client("sts", access_key=ALICE["access_key"], secret_key="wrong" * 8).get_caller_identity()
    assert _error(e)[0] == "SignatureDoesNotMatch"


def test_account_id_sets_the_test_key_account(strata_factory):
    server = strata_factory(extra_env={"STRATA_ACCOUNT_ID": "111122223333"})
    assert server.client("sts").get_caller_identity()["Arn"] == "arn:aws:iam::111122223333:root"
    table = server.client("dynamodb").create_table(
        TableName="acct-table",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    assert table["TableDescription"]["TableArn"] == "arn:aws:dynamodb:us-east-1:111122223333:table/acct-table"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('default_account = "12"\n', "default_account must be a 12-digit account id"),
        ('[accounts."123456789012".users.bob]\naccess_key = "AKIABOB"\n', "access_key and secret_key"),
        (
            '[accounts."123456789012"]\nroot = { access_key = "A", secret_key = "B" }\n[accounts."222222222222"]\n'
            'root = { access_key = "A", secret_key = "C" }\n',
            "already used",
        ),
        ("not toml [", "not valid TOML"),
    ],
)
def test_a_broken_users_file_stops_start_up_with_its_reason(tmp_path, text, reason):
    import subprocess
    import sys

    path = tmp_path / "users.toml"
    path.write_text(text)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "strata.cli",
            "serve",
            "--users",
            str(path),
            "--data-dir",
            str(tmp_path / "d"),
            "--port",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert reason in proc.stderr


def test_presigned_urls_and_posts_follow_the_signers_policies(iam_server, unique):
    import urllib.request

    from tests.services.s3.test_presigned import http_call, multipart_form

    bucket = f"post-{unique}"
    iam_server.client("s3", **ROOT).create_bucket(Bucket=bucket)
    alice = iam_server.client("s3", **ALICE)
    post = alice.generate_presigned_post(Bucket=bucket, Key="up.txt")
    body, ctype = multipart_form(post["fields"], "up.txt", b"data")
    status, resp, _ = http_call("POST", post["url"], body, {"Content-Type": ctype})
    assert status == 403 and b"s3:PutObject" in resp
    root_post = iam_server.client("s3", **ROOT).generate_presigned_post(Bucket=bucket, Key="up.txt")
    body, ctype = multipart_form(root_post["fields"], "up.txt", b"data")
    assert http_call("POST", root_post["url"], body, {"Content-Type": ctype})[0] == 204
    url = alice.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "up.txt"})
    with urllib.request.urlopen(url, timeout=30) as r:
        assert r.read() == b"data"
    put = alice.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "p.txt"})
    assert http_call("PUT", put, b"x")[0] == 403


def test_conditions_on_time_and_source_ip_end_to_end(strata_factory, users_env):
    """aws:CurrentTime follows the simulated clock; aws:SourceIp is the client's address."""
    import json
    from datetime import datetime, timedelta

    server = strata_factory(extra_env=users_env)
    iam = server.client("iam", **ROOT)
    now = datetime.fromisoformat(server.admin("/_strata/clock")["now"])
    until = (now + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    iam.create_user(UserName="temp")
    key = iam.create_access_key(UserName="temp")["AccessKey"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "dynamodb:ListTables",
                "Resource": "*",
                "Condition": {
                    "DateLessThan": {"aws:CurrentTime": until},
                    "IpAddress": {"aws:SourceIp": "127.0.0.0/8"},
                },
            },
            {
                "Effect": "Allow",
                "Action": "dynamodb:DescribeLimits",
                "Resource": "*",
                "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
            },
        ],
    }
    iam.put_user_policy(UserName="temp", PolicyName="until", PolicyDocument=json.dumps(policy))
    ddb = server.client("dynamodb", access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"])
    ddb.list_tables()
    with pytest.raises(ClientError):
        ddb.describe_limits()  # not from 10/8
    server.advance_clock("2d")
    with pytest.raises(ClientError) as e:
        ddb.list_tables()
    assert _error(e)[0] == "AccessDeniedException"
