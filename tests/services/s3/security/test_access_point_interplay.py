"""Access points together with the other layers: anonymous callers (an access point's policy and
the bucket's policy or ACL must both let them in), and Object Lock (a locked version stays locked
whichever way a request comes)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from botocore.exceptions import ClientError

from tests.services.s3.security.conftest import code_of, control_client, put_policy
from tests.services.s3.security.test_access_points import via_arn
from tests.services.s3.security.test_object_lock import server_now

ACCOUNT = "123456789012"
ALICE_ARN = f"arn:aws:iam::{ACCOUNT}:user/alice"
OPEN = {
    "BlockPublicAcls": False,
    "IgnorePublicAcls": False,
    "BlockPublicPolicy": False,
    "RestrictPublicBuckets": False,
}


def unsigned_via_arn(client):  # noqa: ANN001, ANN201
    """As test_access_points.via_arn, for an unsigned client: no signature carries the access
    point's host name, so the Host header is set to it before the connection goes to the address."""

    def to_address(request, **_: object) -> None:  # noqa: ANN001
        scheme, _, rest = request.url.partition("://")
        host, _, path = rest.partition("/")
        if host.count(".") > 3:
            request.headers["Host"] = host
            request.url = f"{scheme}://{host.split('.', 1)[1]}/{path}"

    client.meta.events.register("before-send", to_address)
    return client


@pytest.fixture
def control(server):
    return control_client(server)


def _access_point(control, bucket: str, name: str, **kw) -> dict:
    return control.create_access_point(AccountId=ACCOUNT, Name=name, Bucket=bucket, **kw)


def _ap_policy(
    control, name: str, arn: str, principal, actions: list[str], resource: str = "/object/*"
) -> None:
    statement = {"Effect": "Allow", "Principal": principal, "Action": actions, "Resource": f"{arn}{resource}"}
    control.put_access_point_policy(
        AccountId=ACCOUNT, Name=name, Policy=json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    )


def test_anonymous_through_an_access_point_needs_both_sides(server, control, owner, anonymous, unique):
    bucket = f"apanon-{unique}"
    owner.create_bucket(Bucket=bucket, ObjectOwnership="BucketOwnerPreferred")
    owner.delete_public_access_block(Bucket=bucket)
    owner.put_object(Bucket=bucket, Key="open", Body=b"open", ACL="public-read")
    owner.put_object(Bucket=bucket, Key="closed", Body=b"closed")
    name = f"anon-{unique}"
    made = _access_point(control, bucket, name, PublicAccessBlockConfiguration=OPEN)
    arn, alias = made["AccessPointArn"], made["Alias"]
    # The object is public, but an access point without a policy lets no anonymous caller through.
    assert anonymous.get_object(Bucket=bucket, Key="open")["Body"].read() == b"open"
    assert code_of(anonymous.get_object, Bucket=alias, Key="open") == "AccessDenied"
    _ap_policy(control, name, arn, "*", ["s3:GetObject"])
    # Now the access point allows everyone: the object's ACL decides on the bucket's side.
    assert anonymous.get_object(Bucket=alias, Key="open")["Body"].read() == b"open"
    assert unsigned_via_arn(anonymous).get_object(Bucket=arn, Key="open")["Body"].read() == b"open"
    assert code_of(anonymous.get_object, Bucket=alias, Key="closed") == "AccessDenied"
    # Nothing beyond what the access point's policy grants, even where the bucket's ACL would.
    owner.put_bucket_acl(Bucket=bucket, ACL="public-read-write")
    anonymous.put_object(Bucket=bucket, Key="direct", Body=b"d")
    assert code_of(anonymous.put_object, Bucket=alias, Key="via", Body=b"v") == "AccessDenied"
    assert code_of(anonymous.list_objects_v2, Bucket=alias) == "AccessDenied"
    # A bucket policy (not an ACL) can be the bucket's side too.
    owner.put_bucket_acl(Bucket=bucket, ACL="private")
    assert code_of(anonymous.get_object, Bucket=alias, Key="closed") == "AccessDenied"
    put_policy(
        owner,
        bucket,
        {
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/*",
            "Condition": {"StringEquals": {"s3:DataAccessPointArn": arn}},
        },
    )
    assert anonymous.get_object(Bucket=alias, Key="closed")["Body"].read() == b"closed"
    assert code_of(anonymous.get_object, Bucket=bucket, Key="closed") == "AccessDenied"
    # The access point's Block Public Access: its ACL settings apply to requests through it.
    strict = f"acls-{unique}"
    made = _access_point(
        control,
        bucket,
        strict,
        PublicAccessBlockConfiguration={**OPEN, "IgnorePublicAcls": True, "BlockPublicAcls": True},
    )
    _ap_policy(control, strict, made["AccessPointArn"], "*", ["s3:GetObject"])
    assert code_of(anonymous.get_object, Bucket=made["Alias"], Key="open") == "AccessDenied"
    assert anonymous.get_object(Bucket=alias, Key="open")["Body"].read() == b"open"
    denied = code_of(owner.put_object, Bucket=made["Alias"], Key="pub", Body=b"p", ACL="public-read")
    assert denied == "AccessDenied"
    owner.put_object(Bucket=alias, Key="pub", Body=b"p", ACL="public-read")
    assert anonymous.get_object(Bucket=alias, Key="pub")["Body"].read() == b"p"
    # All four on (AWS's default) also cuts anonymous callers off its public policy.
    control.delete_access_point(AccountId=ACCOUNT, Name=name)
    made = _access_point(control, bucket, name)
    assert code_of(anonymous.get_object, Bucket=made["Alias"], Key="open") == "AccessDenied"


def test_object_lock_holds_through_an_access_point(server, control, owner, alice, unique):
    bucket = f"aplock-{unique}"
    owner.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    now = server_now(server)
    compliance = {"ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": now + timedelta(days=5)}
    governance = {"ObjectLockMode": "GOVERNANCE", "ObjectLockRetainUntilDate": now + timedelta(days=5)}
    name = f"lock-{unique}"
    made = _access_point(control, bucket, name)
    arn, alias = made["AccessPointArn"], made["Alias"]
    through = via_arn(server.client("s3"))
    # Retention given through the access point is the object's.
    v_c = through.put_object(Bucket=arn, Key="c", Body=b"c", **compliance)["VersionId"]
    v_g = owner.put_object(Bucket=alias, Key="g", Body=b"g", **governance)["VersionId"]
    assert (
        owner.get_object_retention(Bucket=alias, Key="c", VersionId=v_c)["Retention"]["Mode"] == "COMPLIANCE"
    )
    assert owner.head_object(Bucket=bucket, Key="g")["ObjectLockMode"] == "GOVERNANCE"
    # COMPLIANCE binds the root through the access point as directly, bypass header or not.
    for bypass in (False, True):
        kw = {"BypassGovernanceRetention": True} if bypass else {}
        assert code_of(owner.delete_object, Bucket=alias, Key="c", VersionId=v_c, **kw) == "AccessDenied"
        assert code_of(through.delete_object, Bucket=arn, Key="c", VersionId=v_c, **kw) == "AccessDenied"
    shorter = {"Mode": "COMPLIANCE", "RetainUntilDate": now + timedelta(days=1)}
    assert (
        code_of(owner.put_object_retention, Bucket=alias, Key="c", VersionId=v_c, Retention=shorter)
        == "AccessDenied"
    )
    # GOVERNANCE: alice may delete versions through the access point (both policies allow it),
    # but bypassing the retention needs s3:BypassGovernanceRetention, which she lacks.
    deleter = ["s3:DeleteObject", "s3:DeleteObjectVersion"]
    _ap_policy(control, name, arn, {"AWS": ALICE_ARN}, deleter)
    put_policy(
        owner,
        bucket,
        {
            "Effect": "Allow",
            "Principal": {"AWS": ALICE_ARN},
            "Action": deleter,
            "Resource": f"arn:aws:s3:::{bucket}/*",
        },
    )
    assert code_of(alice.delete_object, Bucket=alias, Key="g", VersionId=v_g) == "AccessDenied"
    denied = code_of(
        alice.delete_object, Bucket=alias, Key="g", VersionId=v_g, BypassGovernanceRetention=True
    )
    assert denied == "AccessDenied"
    # The bucket's root may bypass GOVERNANCE through the access point; COMPLIANCE still holds.
    owner.delete_object(Bucket=alias, Key="g", VersionId=v_g, BypassGovernanceRetention=True)
    assert "Versions" not in owner.list_object_versions(Bucket=bucket, Prefix="g")
    assert owner.get_object(Bucket=alias, Key="c", VersionId=v_c)["Body"].read() == b"c"


def test_vpc_access_points_are_refused(control, bucket, unique):
    # A request's VPC cannot be known on loopback, so NetworkOrigin VPC is refused, not ignored.
    name = f"vpc-{unique}"
    with pytest.raises(ClientError) as e:
        _access_point(control, bucket, name, VpcConfiguration={"VpcId": "vpc-0123456789abcdef0"})
    error = e.value.response["Error"]
    assert (error["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]) == ("NotImplemented", 501)
    assert "VpcConfiguration" in error["Message"]
    names = [
        a["Name"]
        for a in control.list_access_points(AccountId=ACCOUNT, Bucket=bucket).get("AccessPointList", [])
    ]
    assert name not in names
