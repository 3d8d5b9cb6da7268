"""S3 access points: S3 Control's Create/Get/List/DeleteAccessPoint and access point policies,
and requests through an access point's ARN (the SDK's own ARN handling, unchanged) and its alias,
decided by the access point's policy together with the bucket's."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config

from tests.services.iam.conftest import ALT_ROOT
from tests.services.s3.security.conftest import code_of, control_client, put_policy

ACCOUNT = "123456789012"
OTHER = "222222222222"
ALICE_ARN = f"arn:aws:iam::{ACCOUNT}:user/alice"


def _to_address(request, **_: object) -> None:  # noqa: ANN001
    """The SDK sends a call on an access point ARN to `<name>-<account>.<endpoint host>`: with an
    address endpoint no DNS resolves that, so the connection goes to the address (the signed Host
    header keeps the name, which is what Strata routes by)."""
    scheme, _, rest = request.url.partition("://")
    host, _, path = rest.partition("/")
    if host.count(".") > 3:
        request.url = f"{scheme}://{host.split('.', 1)[1]}/{path}"


def via_arn(client):  # noqa: ANN001, ANN201
    client.meta.events.register("before-send", _to_address)
    return client


@pytest.fixture
def control(server):
    return control_client(server)


@pytest.fixture
def ap(control, bucket, unique) -> dict:
    name = f"ap-{unique}"
    made = control.create_access_point(AccountId=ACCOUNT, Name=name, Bucket=bucket)
    return {"name": name, **made}


def test_access_point_crud(server, control, owner, bucket, ap, unique):
    assert ap["AccessPointArn"] == f"arn:aws:s3:us-east-1:{ACCOUNT}:accesspoint/{ap['name']}"
    assert ap["Alias"].endswith("-s3alias") and len(ap["Alias"]) <= 63
    got = control.get_access_point(AccountId=ACCOUNT, Name=ap["name"])
    assert (got["Bucket"], got["NetworkOrigin"], got["Alias"]) == (bucket, "Internet", ap["Alias"])
    assert got["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ["BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"], True
    )
    second = f"ap2-{unique}"
    control.create_access_point(AccountId=ACCOUNT, Name=second, Bucket=bucket)
    page = control.list_access_points(AccountId=ACCOUNT, Bucket=bucket, MaxResults=1)
    assert [a["Name"] for a in page["AccessPointList"]] == [ap["name"]]
    rest = control.list_access_points(AccountId=ACCOUNT, Bucket=bucket, NextToken=page["NextToken"])
    assert [a["Name"] for a in rest["AccessPointList"]] == [second]
    assert "NextToken" not in rest

    err = code_of(control.create_access_point, AccountId=ACCOUNT, Name=ap["name"], Bucket=bucket)
    assert err == "AccessPointAlreadyOwnedByYou"
    assert (
        code_of(control.create_access_point, AccountId=ACCOUNT, Name="Bad_Name", Bucket=bucket)
        == "InvalidURI"
    )
    assert code_of(
        control.create_access_point, AccountId=ACCOUNT, Name=f"x-{unique}", Bucket=f"none-{unique}"
    ) == ("NoSuchBucket")
    # Another account sees none of it.
    alt = control_client(server, **ALT_ROOT)
    assert code_of(alt.get_access_point, AccountId=ACCOUNT, Name=ap["name"]) == "AccessDenied"
    assert all(
        a["Name"] != ap["name"] for a in alt.list_access_points(AccountId=OTHER).get("AccessPointList", [])
    )

    # Policies: validated, and a public one refused while the access point blocks public policies.
    arn = ap["AccessPointArn"]
    assert (
        code_of(control.get_access_point_policy, AccountId=ACCOUNT, Name=ap["name"])
        == "NoSuchAccessPointPolicy"
    )
    public = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"{arn}/object/*"}
        ],
    }
    assert code_of(
        control.put_access_point_policy, AccountId=ACCOUNT, Name=ap["name"], Policy=json.dumps(public)
    ) == ("AccessDenied")
    outside = {**public, "Statement": [{**public["Statement"][0], "Resource": "arn:aws:s3:::elsewhere/*"}]}
    assert code_of(
        control.put_access_point_policy, AccountId=ACCOUNT, Name=ap["name"], Policy=json.dumps(outside)
    ) == ("MalformedPolicy")
    bad = control.put_access_point_policy
    assert (
        code_of(bad, AccountId=ACCOUNT, Name=second, Policy=json.dumps(_grant(arn, OTHER)))
        == "MalformedPolicy"
    )
    second_arn = arn.rsplit("/", 1)[0] + "/" + second
    control.put_access_point_policy(
        AccountId=ACCOUNT, Name=second, Policy=json.dumps(_grant(second_arn, OTHER))
    )
    assert json.loads(control.get_access_point_policy(AccountId=ACCOUNT, Name=second)["Policy"]) == _grant(
        second_arn, OTHER
    )
    status = control.get_access_point_policy_status(AccountId=ACCOUNT, Name=second)["PolicyStatus"]
    assert status == {"IsPublic": False}
    control.delete_access_point_policy(AccountId=ACCOUNT, Name=second)
    assert (
        code_of(control.get_access_point_policy, AccountId=ACCOUNT, Name=second) == "NoSuchAccessPointPolicy"
    )
    # An access point made without the blocks may take a public policy.
    open_ap = f"open-{unique}"
    control.create_access_point(
        AccountId=ACCOUNT,
        Name=open_ap,
        Bucket=bucket,
        PublicAccessBlockConfiguration={"BlockPublicPolicy": False, "RestrictPublicBuckets": False},
    )
    open_arn = arn.rsplit("/", 1)[0] + "/" + open_ap
    public["Statement"][0]["Resource"] = f"{open_arn}/object/*"
    control.put_access_point_policy(AccountId=ACCOUNT, Name=open_ap, Policy=json.dumps(public))
    assert control.get_access_point_policy_status(AccountId=ACCOUNT, Name=open_ap)["PolicyStatus"]["IsPublic"]

    control.delete_access_point(AccountId=ACCOUNT, Name=second)
    assert code_of(control.get_access_point, AccountId=ACCOUNT, Name=second) == "NoSuchAccessPoint"
    assert code_of(control.delete_access_point, AccountId=ACCOUNT, Name=second) == "NoSuchAccessPoint"


def _grant(arn: str, account: str, actions: list[str] | None = None) -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                "Action": actions or ["s3:GetObject", "s3:PutObject", "s3:ListBucket"],
                "Resource": [arn, f"{arn}/object/*"],
            }
        ],
    }


def test_requests_through_the_arn_and_the_alias(server, owner, bucket, ap):
    arn, alias = ap["AccessPointArn"], ap["Alias"]
    client = via_arn(server.client("s3"))
    client.put_object(Bucket=arn, Key="via/arn.txt", Body=b"through the access point")
    assert owner.get_object(Bucket=bucket, Key="via/arn.txt")["Body"].read() == b"through the access point"
    assert client.get_object(Bucket=arn, Key="shared/a.txt")["Body"].read() == b"shared/a.txt"
    listed = client.list_objects_v2(Bucket=arn, Prefix="via/")
    assert [o["Key"] for o in listed["Contents"]] == ["via/arn.txt"]
    # The alias goes wherever a bucket name goes.
    assert owner.get_object(Bucket=alias, Key="via/arn.txt")["Body"].read() == b"through the access point"
    owner.delete_object(Bucket=alias, Key="via/arn.txt")
    assert "Contents" not in owner.list_objects_v2(Bucket=bucket, Prefix="via/")
    # Bucket configuration is not reached through an access point.
    assert code_of(owner.get_bucket_versioning, Bucket=alias) == "InvalidRequest"

    # The access point and its alias survive a restart.
    server.restart()
    assert server.client("s3").head_object(Bucket=alias, Key="shared/a.txt")["ContentLength"] == 12
    assert via_arn(server.client("s3")).head_object(Bucket=arn, Key="shared/a.txt")["ContentLength"] == 12


def test_cross_account_needs_the_access_point_and_the_bucket_policy(
    server, control, owner, other, bucket, ap
):
    arn, alias = ap["AccessPointArn"], ap["Alias"]
    other_arn = via_arn(server.client("s3", **ALT_ROOT))
    assert code_of(other_arn.get_object, Bucket=arn, Key="shared/a.txt") == "AccessDenied"
    # The access point's policy alone is not enough: the bucket's policy must allow too ...
    control.put_access_point_policy(AccountId=ACCOUNT, Name=ap["name"], Policy=json.dumps(_grant(arn, OTHER)))
    assert code_of(other_arn.get_object, Bucket=arn, Key="shared/a.txt") == "AccessDenied"
    # ... which it can do by delegating to the account's access points.
    put_policy(
        owner,
        bucket,
        {
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": "*",
            "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            "Condition": {"StringEquals": {"s3:DataAccessPointAccount": ACCOUNT}},
        },
    )
    assert owner.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is False
    assert other_arn.get_object(Bucket=arn, Key="shared/a.txt")["Body"].read() == b"shared/a.txt"
    assert other.get_object(Bucket=alias, Key="shared/a.txt")["Body"].read() == b"shared/a.txt"
    other_arn.put_object(Bucket=arn, Key="shared/from-other.txt", Body=b"x")
    # Not the bucket directly, and not beyond what the access point grants.
    assert code_of(other.get_object, Bucket=bucket, Key="shared/a.txt") == "AccessDenied"
    assert code_of(other_arn.delete_object, Bucket=arn, Key="shared/a.txt") == "AccessDenied"
    # Nor anonymously.
    anonymous = boto3.client(
        "s3", endpoint_url=server.endpoint, region_name="us-east-1", config=Config(signature_version=UNSIGNED)
    )
    assert code_of(anonymous.get_object, Bucket=alias, Key="shared/a.txt") == "AccessDenied"


def test_access_point_policy_deny_binds_users_of_the_account(server, control, owner, alice, bucket, ap):
    arn, alias = ap["AccessPointArn"], ap["Alias"]
    assert alice.get_object(Bucket=alias, Key="private/b.txt")["Body"].read() == b"private/b.txt"
    deny = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Principal": {"AWS": ALICE_ARN},
                "Action": "s3:GetObject",
                "Resource": f"{arn}/object/private/*",
            }
        ],
    }
    control.put_access_point_policy(AccountId=ACCOUNT, Name=ap["name"], Policy=json.dumps(deny))
    assert code_of(alice.get_object, Bucket=alias, Key="private/b.txt") == "AccessDenied"
    assert alice.get_object(Bucket=alias, Key="shared/a.txt")["Body"].read() == b"shared/a.txt"
    assert alice.get_object(Bucket=bucket, Key="private/b.txt")["Body"].read() == b"private/b.txt"
    # A Deny in the access point policy binds the account's root too.
    deny["Statement"].append(
        {"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": f"{arn}/object/readonly/*"}
    )
    control.put_access_point_policy(AccountId=ACCOUNT, Name=ap["name"], Policy=json.dumps(deny))
    assert code_of(owner.put_object, Bucket=alias, Key="readonly/x", Body=b"x") == "AccessDenied"
    owner.put_object(Bucket=alias, Key="writable/x", Body=b"x")
    owner.put_object(Bucket=bucket, Key="readonly/x", Body=b"x")


def test_access_point_block_public_access(server, control, owner, bucket, unique):
    anonymous = boto3.client(
        "s3", endpoint_url=server.endpoint, region_name="us-east-1", config=Config(signature_version=UNSIGNED)
    )
    put_policy(  # the bucket delegates to this account's access points (not a public policy)
        owner,
        bucket,
        {
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/*",
            "Condition": {"StringEquals": {"s3:DataAccessPointAccount": ACCOUNT}},
        },
    )
    aliases = {}
    for name, restrict in ((f"restricted-{unique}", True), (f"public-{unique}", False)):
        made = control.create_access_point(
            AccountId=ACCOUNT,
            Name=name,
            Bucket=bucket,
            PublicAccessBlockConfiguration={"BlockPublicPolicy": False, "RestrictPublicBuckets": restrict},
        )
        public = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "s3:GetObject",
                    "Resource": f"{made['AccessPointArn']}/object/shared/*",
                }
            ],
        }
        control.put_access_point_policy(AccountId=ACCOUNT, Name=name, Policy=json.dumps(public))
        aliases[restrict] = made["Alias"]
    # RestrictPublicBuckets on the access point cuts anonymous callers off its public policy.
    assert code_of(anonymous.get_object, Bucket=aliases[True], Key="shared/a.txt") == "AccessDenied"
    assert anonymous.get_object(Bucket=aliases[False], Key="shared/a.txt")["Body"].read() == b"shared/a.txt"
    assert code_of(anonymous.get_object, Bucket=aliases[False], Key="private/b.txt") == "AccessDenied"
    assert code_of(anonymous.get_object, Bucket=bucket, Key="shared/a.txt") == "AccessDenied"


def test_an_access_point_arn_in_the_path(server, owner, bucket, ap):
    """Clients without the SDKs' endpoint rules put the ARN where a bucket name goes, its `:` and
    `/` as they are or percent-encoded."""
    from urllib.parse import quote

    import requests
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest

    creds = owner._request_signer._credentials

    def call(method: str, path: str, body: bytes = b"") -> requests.Response:
        req = AWSRequest(method, f"{server.endpoint}{path}", data=body)
        S3SigV4Auth(creds, "s3", "us-east-1").add_auth(req)
        return requests.request(method, req.url, data=body, headers=dict(req.headers), timeout=60)

    arn = ap["AccessPointArn"]
    for i, form in enumerate((arn, quote(arn, safe=""))):
        r = call("PUT", f"/{form}/via/path-{i}.txt", b"by the path")
        assert r.status_code == 200, r.text
        assert owner.get_object(Bucket=bucket, Key=f"via/path-{i}.txt")["Body"].read() == b"by the path"
        r = call("GET", f"/{form}/shared/a.txt")
        assert r.status_code == 200 and r.content == b"shared/a.txt"
    missing = arn.rsplit("/", 1)[0] + "/no-such-point"
    assert call("GET", f"/{missing}/shared/a.txt").status_code >= 400


def test_copy_sources_through_an_access_point(server, control, owner, bucket, ap):
    """`<access point ARN>/object/<key>` as a copy source reads through the access point: its
    policy decides with the bucket's."""
    arn = ap["AccessPointArn"]
    source = f"{arn}/object/shared/a.txt"
    owner.copy_object(Bucket=bucket, Key="copied/1.txt", CopySource=source)
    assert owner.get_object(Bucket=bucket, Key="copied/1.txt")["Body"].read() == b"shared/a.txt"
    # The SDK's own form: a dict naming the access point ARN as the source's Bucket.
    owner.copy_object(Bucket=bucket, Key="copied/2.txt", CopySource={"Bucket": arn, "Key": "shared/a.txt"})
    up = owner.create_multipart_upload(Bucket=bucket, Key="copied/3.txt")["UploadId"]
    part = owner.upload_part_copy(
        Bucket=bucket, Key="copied/3.txt", UploadId=up, PartNumber=1, CopySource=source
    )
    owner.complete_multipart_upload(
        Bucket=bucket,
        Key="copied/3.txt",
        UploadId=up,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["CopyPartResult"]["ETag"]}]},
    )
    assert owner.get_object(Bucket=bucket, Key="copied/3.txt")["Body"].read() == b"shared/a.txt"
    deny = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"{arn}/object/shared/*",
            }
        ],
    }
    control.put_access_point_policy(AccountId=ACCOUNT, Name=ap["name"], Policy=json.dumps(deny))
    assert code_of(owner.copy_object, Bucket=bucket, Key="copied/4.txt", CopySource=source) == "AccessDenied"
    owner.copy_object(
        Bucket=bucket, Key="copied/5.txt", CopySource=f"{bucket}/shared/a.txt"
    )  # not through it
    missing = arn.rsplit("/", 1)[0] + "/no-such-point/object/shared/a.txt"
    assert (
        code_of(owner.copy_object, Bucket=bucket, Key="copied/6.txt", CopySource=missing)
        == "NoSuchAccessPoint"
    )
