"""STS: AssumeRole (trust policy, session policy, duration limits, expiry on the simulated clock,
cross-account needs both sides), GetSessionToken, GetCallerIdentity."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from tests.services.iam.conftest import ACCOUNT, ALICE, ALT_ACCOUNT, ALT_ROOT, ROOT
from tests.services.iam.test_iam import doc, make_user


def trust(principal: str) -> str:
    return doc({"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "sts:AssumeRole"})


def session_creds(resp: dict) -> dict:
    c = resp["Credentials"]
    return {
        "aws_access_key_id": c["AccessKeyId"],
        "aws_secret_access_key": c["SecretAccessKey"],
        "aws_session_token": c["SessionToken"],
    }


def client(server, service: str, creds: dict):
    import boto3
    from botocore.config import Config

    return boto3.Session(region_name="us-east-1", **creds).client(
        service, endpoint_url=server.endpoint, config=Config(retries={"max_attempts": 1})
    )


def assumer(server, name: str) -> dict:
    """Keys of a user allowed sts:AssumeRole on any role (AWS refuses root keys for AssumeRole)."""
    creds = make_user(server, name)
    server.client("iam", **ROOT).put_user_policy(
        UserName=name,
        PolicyName="assume",
        PolicyDocument=doc(
            {"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:TagSession"], "Resource": "*"}
        ),
    )
    return creds


def make_role(server, name: str, trust_doc: str, *policies: str, creds: dict = ROOT) -> str:
    iam = server.client("iam", **creds)
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust_doc)["Role"]["Arn"]
    for p in policies:
        iam.attach_role_policy(RoleName=name, PolicyArn=p)
    return arn


def test_assume_role_session_works_until_the_clock_passes_expiry(strata_factory, users_env):
    server = strata_factory(extra_env=users_env)
    arn = make_role(server, "reader", trust(ACCOUNT), "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess")
    server.client("s3", **ROOT).create_bucket(Bucket="exp-bucket")
    sts = server.client("sts", **assumer(server, "assumer"))
    resp = sts.assume_role(RoleArn=arn, RoleSessionName="s1", DurationSeconds=900)
    creds = session_creds(resp)
    assert creds["aws_access_key_id"].startswith("ASIA")
    assert resp["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/reader/s1"
    ident = client(server, "sts", creds).get_caller_identity()
    assert ident["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/reader/s1"
    assert ident["UserId"] == resp["AssumedRoleUser"]["AssumedRoleId"] and ident["UserId"].endswith(":s1")
    s3 = client(server, "s3", creds)
    s3.list_objects_v2(Bucket="exp-bucket")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="exp-bucket", Key="k", Body=b"x")
    assert e.value.response["Error"]["Message"].startswith(
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/reader/s1 is not authorized to perform: s3:PutObject"
    )
    # Every service verifies the token: a tampered one is refused.
    bad = dict(creds, aws_session_token=creds["aws_session_token"][:-2] + "AA")
    with pytest.raises(ClientError) as e:
        client(server, "dynamodb", bad).list_tables()
    assert e.value.response["Error"]["Code"] == "UnrecognizedClientException"
    server.advance_clock("14m")
    s3.list_objects_v2(Bucket="exp-bucket")
    server.advance_clock("2m")
    with pytest.raises(ClientError) as e:
        s3.list_objects_v2(Bucket="exp-bucket")
    assert e.value.response["Error"]["Code"] == "ExpiredToken"
    with pytest.raises(ClientError) as e:
        client(server, "sts", creds).get_caller_identity()
    assert e.value.response["Error"]["Code"] == "ExpiredToken"
    with pytest.raises(ClientError) as e:
        client(server, "dynamodb", creds).list_tables()
    assert e.value.response["Error"]["Code"] == "ExpiredTokenException"


def test_trust_policy_is_checked(iam_server, unique):
    iam = iam_server.client("iam", **ROOT)
    user = f"t-{unique}"
    creds = make_user(iam_server, user)
    user_arn = f"arn:aws:iam::{ACCOUNT}:user/{user}"
    # Trust names the account: the user also needs an identity policy allowing sts:AssumeRole.
    arn = make_role(iam_server, f"acct-{unique}", trust(ACCOUNT))
    sts = iam_server.client("sts", **creds)
    with pytest.raises(ClientError) as e:
        sts.assume_role(RoleArn=arn, RoleSessionName="ss")
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    iam.put_user_policy(
        UserName=user,
        PolicyName="assume",
        PolicyDocument=doc({"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": arn}),
    )
    sts.assume_role(RoleArn=arn, RoleSessionName="ss")
    # Trust names the user itself: no identity policy needed in the same account.
    direct = make_role(iam_server, f"direct-{unique}", trust(user_arn))
    sts.assume_role(RoleArn=direct, RoleSessionName="ss")
    # Trust names someone else: refused whatever the identity policy says.
    other = make_role(iam_server, f"other-{unique}", trust(f"arn:aws:iam::{ACCOUNT}:user/someone-else"))
    iam.attach_user_policy(UserName=user, PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
    with pytest.raises(ClientError) as e:
        sts.assume_role(RoleArn=other, RoleSessionName="ss")
    assert e.value.response["Error"]["Message"] == (
        f"User: {user_arn} is not authorized to perform: sts:AssumeRole on resource: {other}"
    )


def test_cross_account_needs_both_sides(iam_server, unique):
    # A role in the alt account trusting the main account.
    role = make_role(
        iam_server,
        f"x-{unique}",
        trust(ACCOUNT),
        "arn:aws:iam::aws:policy/AmazonS3FullAccess",
        creds=ALT_ROOT,
    )
    assert role.startswith(f"arn:aws:iam::{ALT_ACCOUNT}:role/")
    # alice's identity policies (S3 read-only) do not allow sts:AssumeRole: denied.
    with pytest.raises(ClientError) as e:
        iam_server.client("sts", **ALICE).assume_role(RoleArn=role, RoleSessionName="ss")
    assert (
        "because no identity-based policy allows the sts:AssumeRole action"
        in e.value.response["Error"]["Message"]
    )
    # A user whose identity policy allows it gets in.
    creds = make_user(iam_server, f"xu-{unique}")
    root_iam = iam_server.client("iam", **ROOT)
    root_iam.put_user_policy(
        UserName=f"xu-{unique}",
        PolicyName="assume",
        PolicyDocument=doc({"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}),
    )
    resp = iam_server.client("sts", **creds).assume_role(RoleArn=role, RoleSessionName="cross")
    session = session_creds(resp)
    assert client(iam_server, "sts", session).get_caller_identity()["Account"] == ALT_ACCOUNT
    # Resources it creates belong to the other account.
    s3 = client(iam_server, "s3", session)
    bucket = f"cross-{unique}"
    s3.create_bucket(Bucket=bucket)
    assert bucket in [b["Name"] for b in iam_server.client("s3", **ALT_ROOT).list_buckets()["Buckets"]]
    assert bucket not in [b["Name"] for b in iam_server.client("s3", **ROOT).list_buckets()["Buckets"]]
    # A role whose trust policy does not name the caller's account: denied even with the identity side.
    closed = make_role(iam_server, f"closed-{unique}", trust(ALT_ACCOUNT), creds=ALT_ROOT)
    with pytest.raises(ClientError) as e:
        iam_server.client("sts", **creds).assume_role(RoleArn=closed, RoleSessionName="ss")
    assert (
        "because no resource-based policy allows the sts:AssumeRole action"
        in e.value.response["Error"]["Message"]
    )


def test_session_policy_and_duration_limits(iam_server, unique):
    arn = make_role(iam_server, f"sp-{unique}", trust(ACCOUNT), "arn:aws:iam::aws:policy/AdministratorAccess")
    creds = assumer(iam_server, f"spu-{unique}")
    sts = iam_server.client("sts", **creds)
    resp = sts.assume_role(
        RoleArn=arn,
        RoleSessionName="narrow",
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}],
            }
        ),
    )
    assert resp["PackedPolicySize"] > 0
    session = session_creds(resp)
    client(iam_server, "s3", session).list_buckets()
    with pytest.raises(ClientError) as e:
        client(iam_server, "dynamodb", session).list_tables()
    assert (
        "because no session policy allows the dynamodb:ListTables action"
        in e.value.response["Error"]["Message"]
    )
    from botocore.config import Config

    unchecked = iam_server.client("sts", config=Config(parameter_validation=False), **creds)
    for bad in (899, 3601):
        with pytest.raises(ClientError) as e:
            unchecked.assume_role(RoleArn=arn, RoleSessionName="dd", DurationSeconds=bad)
        assert e.value.response["Error"]["Code"] == "ValidationError"
    iam_server.client("iam", **ROOT).update_role(RoleName=f"sp-{unique}", MaxSessionDuration=7200)
    sts.assume_role(RoleArn=arn, RoleSessionName="dd", DurationSeconds=7200)
    with pytest.raises(ClientError) as e:
        sts.assume_role(RoleArn=arn, RoleSessionName="dd", Policy='{"Statement": "nope"}')
    assert e.value.response["Error"]["Code"] == "MalformedPolicyDocument"


def test_get_session_token(iam_server, unique):
    creds = make_user(iam_server, f"gst-{unique}", "arn:aws:iam::aws:policy/AdministratorAccess")
    resp = iam_server.client("sts", **creds).get_session_token(DurationSeconds=900)
    session = session_creds(resp)
    assert (
        client(iam_server, "sts", session).get_caller_identity()["Arn"]
        == f"arn:aws:iam::{ACCOUNT}:user/gst-{unique}"
    )
    client(iam_server, "dynamodb", session).list_tables()
    with pytest.raises(ClientError) as e:
        client(iam_server, "iam", session).list_users()  # no IAM with GetSessionToken credentials
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    with pytest.raises(ClientError) as e:
        client(iam_server, "sts", session).get_session_token()
    assert e.value.response["Error"]["Code"] == "AccessDenied"


def test_trust_policy_conditions_external_id(iam_server, unique):
    trust_doc = doc(
        {
            "Effect": "Allow",
            "Principal": {"AWS": ACCOUNT},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": "shared-secret"}},
        }
    )
    arn = make_role(iam_server, f"ext-{unique}", trust_doc)
    sts = iam_server.client("sts", **assumer(iam_server, f"extu-{unique}"))
    with pytest.raises(ClientError) as e:
        sts.assume_role(RoleArn=arn, RoleSessionName="nope")
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    with pytest.raises(ClientError):
        sts.assume_role(RoleArn=arn, RoleSessionName="nope", ExternalId="wrong-secret")
    sts.assume_role(RoleArn=arn, RoleSessionName="yes", ExternalId="shared-secret")


def test_session_credentials_sign_presigned_urls_and_posts(iam_server, unique):
    import urllib.request

    from tests.services.s3.test_presigned import http_call, multipart_form

    arn = make_role(iam_server, f"pre-{unique}", trust(ACCOUNT), "arn:aws:iam::aws:policy/AmazonS3FullAccess")
    creds = session_creds(
        iam_server.client("sts", **assumer(iam_server, f"preu-{unique}")).assume_role(
            RoleArn=arn, RoleSessionName="presign"
        )
    )
    s3 = client(iam_server, "s3", creds)
    bucket = f"pre-{unique}"
    s3.create_bucket(Bucket=bucket)
    post = s3.generate_presigned_post(Bucket=bucket, Key="posted")
    assert "x-amz-security-token" in {k.lower() for k in post["fields"]}
    body, ctype = multipart_form(post["fields"], "posted", b"via post")
    status, resp, _ = http_call("POST", post["url"], body, {"Content-Type": ctype})
    assert status == 204, resp
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "posted"})
    with urllib.request.urlopen(url, timeout=30) as r:
        assert r.read() == b"via post"


def test_principal_tags_from_users_roles_and_sessions(iam_server, unique):
    iam = iam_server.client("iam", **ROOT)
    s3_root = iam_server.client("s3", **ROOT)
    for team in ("blue", "red"):
        s3_root.create_bucket(Bucket=f"{team}-{unique}")
    abac = doc(
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::${aws:PrincipalTag/team}-*"}
    )
    # A user's own tags.
    user = f"abac-{unique}"
    creds = make_user(iam_server, user)
    iam.put_user_policy(UserName=user, PolicyName="abac", PolicyDocument=abac)
    iam.tag_user(UserName=user, Tags=[{"Key": "team", "Value": "blue"}])
    s3 = iam_server.client("s3", **creds)
    s3.list_objects_v2(Bucket=f"blue-{unique}")
    with pytest.raises(ClientError):
        s3.list_objects_v2(Bucket=f"red-{unique}")
    # Session tags need sts:TagSession in the trust policy, and then override the role's tags.
    role = f"abac-role-{unique}"
    arn = make_role(iam_server, role, trust(ACCOUNT))
    iam.put_role_policy(RoleName=role, PolicyName="abac", PolicyDocument=abac)
    iam.tag_role(RoleName=role, Tags=[{"Key": "team", "Value": "blue"}])
    sts = iam_server.client("sts", **assumer(iam_server, f"abacu-{unique}"))
    session = client(iam_server, "s3", session_creds(sts.assume_role(RoleArn=arn, RoleSessionName="plain")))
    session.list_objects_v2(Bucket=f"blue-{unique}")
    with pytest.raises(ClientError) as e:
        sts.assume_role(RoleArn=arn, RoleSessionName="tagged", Tags=[{"Key": "team", "Value": "red"}])
    assert "sts:TagSession" in e.value.response["Error"]["Message"]
    iam.update_assume_role_policy(
        RoleName=role,
        PolicyDocument=doc(
            {"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": ["sts:AssumeRole", "sts:TagSession"]}
        ),
    )
    tagged = sts.assume_role(RoleArn=arn, RoleSessionName="tagged", Tags=[{"Key": "team", "Value": "red"}])
    red = client(iam_server, "s3", session_creds(tagged))
    red.list_objects_v2(Bucket=f"red-{unique}")
    with pytest.raises(ClientError):
        red.list_objects_v2(Bucket=f"blue-{unique}")
    # MFA codes cannot be checked: refused, not ignored.
    with pytest.raises(ClientError) as e:
        sts.assume_role(
            RoleArn=arn,
            RoleSessionName="mfa",
            SerialNumber="arn:aws:iam::123456789012:mfa/x",
            TokenCode="123456",
        )
    assert e.value.response["Error"]["Code"] == "AccessDenied"


def test_roots_may_not_assume_roles_but_the_loopback_test_key_may(iam_server, unique):
    arn = make_role(iam_server, f"rt-{unique}", trust(ACCOUNT))
    alt_arn = make_role(iam_server, f"rt-{unique}", trust(ACCOUNT), creds=ALT_ROOT)
    for creds, role in ((ROOT, arn), (ALT_ROOT, alt_arn)):
        with pytest.raises(ClientError) as e:
            iam_server.client("sts", **creds).assume_role(RoleArn=role, RoleSessionName="root")
        assert e.value.response["Error"]["Code"] == "AccessDenied"
        assert e.value.response["Error"]["Message"] == "Roles may not be assumed by root accounts."
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    # Nor can the root's own session credentials.
    root_session = session_creds(iam_server.client("sts", **ROOT).get_session_token(DurationSeconds=900))
    with pytest.raises(ClientError) as e:
        client(iam_server, "sts", root_session).assume_role(RoleArn=arn, RoleSessionName="root")
    assert e.value.response["Error"]["Message"] == "Roles may not be assumed by root accounts."
    # The server's own loopback key (test/test, the default account's root) keeps assuming roles.
    test_key = iam_server.client("sts", access_key="test", secret_key="test")
    resp = test_key.assume_role(RoleArn=arn, RoleSessionName="loopback")
    assert resp["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/rt-{unique}/loopback"
