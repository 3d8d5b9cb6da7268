"""Object Ownership and ACLs: BucketOwnerEnforced (the default, ACLs disabled), BucketOwnerPreferred
and ObjectWriter; canned ACLs and explicit grants on buckets and objects, and what they allow a
second account and anonymous callers, with Block Public Access's two ACL settings."""

from __future__ import annotations

import json

import pytest

from tests.services.iam.conftest import ALT_ACCOUNT
from tests.services.s3.security.conftest import code_of, put_policy
from tests.services.s3.test_presigned import http_call, multipart_form

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTHENTICATED = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
LOG_DELIVERY = "http://acs.amazonaws.com/groups/s3/LogDelivery"
EC2 = "6aa5a366c34c1cbe25dc49211496e913e0351eb0e8c37aa3477e40942ec6b97c"
ANONYMOUS_ID = "65a011a29cdf8ec533ec3d1ccaae921c"


def _grants(acl: dict) -> set[tuple[str, str]]:
    return {(g["Grantee"].get("ID") or g["Grantee"]["URI"], g["Permission"]) for g in acl["Grants"]}


def _canonical(client) -> str:
    return client.list_buckets()["Owner"]["ID"]


@pytest.fixture
def acl_bucket(owner, unique):
    """A bucket with ACLs on (ObjectWriter) and no Block Public Access."""
    name = f"acl-{unique}"
    owner.create_bucket(Bucket=name, ObjectOwnership="ObjectWriter")
    owner.delete_public_access_block(Bucket=name)
    return name


def test_ownership_controls(owner, bucket):
    def ownership() -> str:
        return owner.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"][0][
            "ObjectOwnership"
        ]

    assert ownership() == "BucketOwnerEnforced"
    for setting in ("BucketOwnerPreferred", "ObjectWriter", "BucketOwnerEnforced"):
        owner.put_bucket_ownership_controls(
            Bucket=bucket, OwnershipControls={"Rules": [{"ObjectOwnership": setting}]}
        )
        assert ownership() == setting
    bogus = {"Rules": [{"ObjectOwnership": "Nobody"}]}
    assert (
        code_of(owner.put_bucket_ownership_controls, Bucket=bucket, OwnershipControls=bogus) == "MalformedXML"
    )
    owner.delete_bucket_ownership_controls(Bucket=bucket)  # ACLs on, ObjectWriter
    assert code_of(owner.get_bucket_ownership_controls, Bucket=bucket) == "OwnershipControlsNotFoundError"
    owner.delete_public_access_block(Bucket=bucket)
    owner.put_bucket_acl(Bucket=bucket, ACL="public-read")
    assert (ALL_USERS, "READ") in _grants(owner.get_bucket_acl(Bucket=bucket))
    # ACLs cannot be disabled while the bucket's ACL grants beyond its owner.
    enforced = {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    err = code_of(owner.put_bucket_ownership_controls, Bucket=bucket, OwnershipControls=enforced)
    assert err == "InvalidBucketAclWithObjectOwnership"
    owner.put_bucket_acl(Bucket=bucket, ACL="private")
    owner.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls=enforced)
    assert ownership() == "BucketOwnerEnforced"


def test_an_enforced_bucket_shows_the_owner_and_refuses_changes(owner, bucket):
    owner_id = _canonical(owner)
    for acl in (owner.get_bucket_acl(Bucket=bucket), owner.get_object_acl(Bucket=bucket, Key="shared/a.txt")):
        assert acl["Owner"]["ID"] == owner_id
        assert _grants(acl) == {(owner_id, "FULL_CONTROL")}
    owner.put_bucket_acl(Bucket=bucket, ACL="private")
    owner.put_object_acl(Bucket=bucket, Key="shared/a.txt", ACL="bucket-owner-full-control")
    same = {
        "Owner": {"ID": owner_id},
        "Grants": [{"Grantee": {"Type": "CanonicalUser", "ID": owner_id}, "Permission": "FULL_CONTROL"}],
    }
    owner.put_bucket_acl(Bucket=bucket, AccessControlPolicy=same)
    public = {
        "Owner": {"ID": owner_id},
        "Grants": [*same["Grants"], {"Grantee": {"Type": "Group", "URI": ALL_USERS}, "Permission": "READ"}],
    }
    refused = "AccessControlListNotSupported"
    assert code_of(owner.put_bucket_acl, Bucket=bucket, ACL="public-read") == refused
    assert code_of(owner.put_bucket_acl, Bucket=bucket, AccessControlPolicy=public) == refused
    assert code_of(owner.put_bucket_acl, Bucket=bucket, GrantRead=f'uri="{ALL_USERS}"') == refused
    assert code_of(owner.put_object_acl, Bucket=bucket, Key="shared/a.txt", ACL="public-read") == refused
    assert code_of(owner.put_object, Bucket=bucket, Key="k", Body=b"x", ACL="public-read") == refused
    assert code_of(owner.get_object_acl, Bucket=bucket, Key="no-such-key") == "NoSuchKey"
    assert _grants(owner.get_object_acl(Bucket=bucket, Key="shared/a.txt")) == {(owner_id, "FULL_CONTROL")}
    # Creating a bucket with ACLs while they are disabled (the default) is refused.
    err = code_of(owner.create_bucket, Bucket=f"{bucket}-x", ACL="public-read")
    assert err == "InvalidBucketAclWithObjectOwnership"


def test_acls_of_an_enforced_bucket_to_another_account(owner, other, anonymous, bucket):
    assert code_of(other.get_bucket_acl, Bucket=bucket) == "AccessDenied"
    assert code_of(anonymous.get_object_acl, Bucket=bucket, Key="shared/a.txt") == "AccessDenied"
    put_policy(
        owner,
        bucket,
        {
            "Effect": "Allow",
            "Principal": {"AWS": ALT_ACCOUNT},
            "Action": "s3:GetBucketAcl",
            "Resource": f"arn:aws:s3:::{bucket}",
        },
    )
    assert [g["Permission"] for g in other.get_bucket_acl(Bucket=bucket)["Grants"]] == ["FULL_CONTROL"]
    assert code_of(other.put_bucket_acl, Bucket=bucket, ACL="private") == "AccessDenied"


def test_canned_acls(owner, other, acl_bucket):
    me, them = _canonical(owner), _canonical(other)
    owner.put_object(Bucket=acl_bucket, Key="o", Body=b"o")
    expected = {
        "private": set(),
        "public-read": {(ALL_USERS, "READ")},
        "public-read-write": {(ALL_USERS, "READ"), (ALL_USERS, "WRITE")},
        "authenticated-read": {(AUTHENTICATED, "READ")},
        "aws-exec-read": {(EC2, "READ")},
        "bucket-owner-read": set(),  # the owner of the object owns the bucket too
        "bucket-owner-full-control": set(),
        "log-delivery-write": {(LOG_DELIVERY, "WRITE"), (LOG_DELIVERY, "READ_ACP")},
    }
    for canned, extra in expected.items():
        owner.put_bucket_acl(Bucket=acl_bucket, ACL=canned)
        owner.put_object_acl(Bucket=acl_bucket, Key="o", ACL=canned)
        for acl in (
            owner.get_bucket_acl(Bucket=acl_bucket),
            owner.get_object_acl(Bucket=acl_bucket, Key="o"),
        ):
            assert acl["Owner"]["ID"] == me
            assert _grants(acl) == {(me, "FULL_CONTROL"), *extra}, canned
    # Relative to the bucket's owner: an object another account writes.
    owner.put_bucket_acl(Bucket=acl_bucket, GrantWrite=f'id="{them}"')
    other.put_object(Bucket=acl_bucket, Key="theirs", Body=b"t", ACL="bucket-owner-read")
    acl = other.get_object_acl(Bucket=acl_bucket, Key="theirs")
    assert acl["Owner"]["ID"] == them
    assert _grants(acl) == {(them, "FULL_CONTROL"), (me, "READ")}
    assert owner.get_object(Bucket=acl_bucket, Key="theirs")["Body"].read() == b"t"
    assert code_of(owner.put_object_acl, Bucket=acl_bucket, Key="theirs", ACL="private") == "AccessDenied"


def test_public_acls_and_block_public_access(owner, other, anonymous, acl_bucket):
    owner.put_object(Bucket=acl_bucket, Key="public", Body=b"p", ACL="public-read")
    owner.put_object(Bucket=acl_bucket, Key="private", Body=b"q")
    owner.put_object(Bucket=acl_bucket, Key="members", Body=b"m", ACL="authenticated-read")
    assert anonymous.get_object(Bucket=acl_bucket, Key="public")["Body"].read() == b"p"
    assert other.get_object(Bucket=acl_bucket, Key="public")["Body"].read() == b"p"
    assert code_of(anonymous.get_object, Bucket=acl_bucket, Key="private") == "AccessDenied"
    assert code_of(other.get_object, Bucket=acl_bucket, Key="private") == "AccessDenied"
    assert other.get_object(Bucket=acl_bucket, Key="members")["Body"].read() == b"m"
    assert code_of(anonymous.get_object, Bucket=acl_bucket, Key="members") == "AccessDenied"
    # READ on an object is not READ_ACP, and not a listing of the bucket.
    assert code_of(anonymous.get_object_acl, Bucket=acl_bucket, Key="public") == "AccessDenied"
    assert code_of(anonymous.list_objects_v2, Bucket=acl_bucket) == "AccessDenied"
    owner.put_bucket_acl(Bucket=acl_bucket, ACL="public-read")
    keys = [o["Key"] for o in anonymous.list_objects_v2(Bucket=acl_bucket)["Contents"]]
    assert keys == ["members", "private", "public"]
    assert code_of(anonymous.put_object, Bucket=acl_bucket, Key="x", Body=b"x") == "AccessDenied"
    # public-read-write lets anyone write (and the bucket's READ lets them list).
    owner.put_bucket_acl(Bucket=acl_bucket, ACL="public-read-write")
    anonymous.put_object(Bucket=acl_bucket, Key="dropped", Body=b"d")
    anonymous.put_object(Bucket=acl_bucket, Key="handed", Body=b"h", ACL="bucket-owner-full-control")
    # What the anonymous user writes is its own: the bucket owner reads it only if granted.
    assert anonymous.get_object_acl(Bucket=acl_bucket, Key="dropped")["Owner"]["ID"] == ANONYMOUS_ID
    assert anonymous.get_object(Bucket=acl_bucket, Key="dropped")["Body"].read() == b"d"
    assert code_of(owner.get_object, Bucket=acl_bucket, Key="dropped") == "AccessDenied"
    assert code_of(other.get_object, Bucket=acl_bucket, Key="dropped") == "AccessDenied"
    assert owner.get_object(Bucket=acl_bucket, Key="handed")["Body"].read() == b"h"
    owner.delete_object(Bucket=acl_bucket, Key="dropped")  # the bucket owner may delete anything
    owner.delete_object(Bucket=acl_bucket, Key="handed")
    owner.put_bucket_acl(Bucket=acl_bucket, ACL="public-read")

    # IgnorePublicAcls: public grants grant nothing (and are kept).
    owner.put_public_access_block(
        Bucket=acl_bucket, PublicAccessBlockConfiguration={"IgnorePublicAcls": True}
    )
    assert code_of(anonymous.get_object, Bucket=acl_bucket, Key="public") == "AccessDenied"
    assert code_of(anonymous.list_objects_v2, Bucket=acl_bucket) == "AccessDenied"
    assert code_of(other.get_object, Bucket=acl_bucket, Key="members") == "AccessDenied"
    assert (ALL_USERS, "READ") in _grants(owner.get_object_acl(Bucket=acl_bucket, Key="public"))
    # BlockPublicAcls: a request setting a public ACL is refused; existing ones stay in force.
    owner.put_public_access_block(Bucket=acl_bucket, PublicAccessBlockConfiguration={"BlockPublicAcls": True})
    assert anonymous.get_object(Bucket=acl_bucket, Key="public")["Body"].read() == b"p"
    denied = "AccessDenied"
    assert code_of(owner.put_object_acl, Bucket=acl_bucket, Key="private", ACL="public-read") == denied
    assert (
        code_of(owner.put_object, Bucket=acl_bucket, Key="n", Body=b"n", ACL="authenticated-read") == denied
    )
    assert code_of(owner.put_bucket_acl, Bucket=acl_bucket, GrantRead=f'uri="{ALL_USERS}"') == denied
    owner.put_object(Bucket=acl_bucket, Key="n", Body=b"n", ACL="private")
    owner.delete_public_access_block(Bucket=acl_bucket)


def test_grants_to_another_account(owner, other, alice, anonymous, acl_bucket):
    me, them = _canonical(owner), _canonical(other)
    owner.put_object(
        Bucket=acl_bucket, Key="a", Body=b"a", GrantRead=f'id="{them}"', GrantFullControl=f'id="{me}"'
    )
    owner.put_object(Bucket=acl_bucket, Key="b", Body=b"b")
    assert other.get_object(Bucket=acl_bucket, Key="a")["Body"].read() == b"a"
    assert code_of(other.get_object, Bucket=acl_bucket, Key="b") == "AccessDenied"
    assert code_of(other.get_object_acl, Bucket=acl_bucket, Key="a") == "AccessDenied"
    assert code_of(other.list_objects_v2, Bucket=acl_bucket) == "AccessDenied"
    # An AccessControlPolicy document: READ_ACP and WRITE_ACP to the other account.
    document = {
        "Owner": {"ID": me},
        "Grants": [
            {"Grantee": {"Type": "CanonicalUser", "ID": me}, "Permission": "FULL_CONTROL"},
            {"Grantee": {"Type": "CanonicalUser", "ID": them}, "Permission": "READ_ACP"},
            {"Grantee": {"Type": "CanonicalUser", "ID": them}, "Permission": "WRITE_ACP"},
        ],
    }
    owner.put_object_acl(Bucket=acl_bucket, Key="b", AccessControlPolicy=document)
    assert _grants(other.get_object_acl(Bucket=acl_bucket, Key="b")) == {
        (me, "FULL_CONTROL"),
        (them, "READ_ACP"),
        (them, "WRITE_ACP"),
    }
    assert code_of(other.get_object, Bucket=acl_bucket, Key="b") == "AccessDenied"
    other.put_object_acl(Bucket=acl_bucket, Key="b", GrantRead=f'id="{them}"', GrantFullControl=f'id="{me}"')
    assert other.get_object(Bucket=acl_bucket, Key="b")["Body"].read() == b"b"
    # A grant to an account leaves its users to their own IAM permissions (alice: S3 read-only).
    owner.put_bucket_acl(Bucket=acl_bucket, GrantRead=f'id="{me}"', GrantFullControl=f'id="{me}"')
    assert alice.list_objects_v2(Bucket=acl_bucket)["KeyCount"] == 2
    # A bucket policy's Deny still binds what an ACL grants.
    put_policy(
        owner,
        acl_bucket,
        {
            "Effect": "Deny",
            "Principal": {"AWS": ALT_ACCOUNT},
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{acl_bucket}/a",
        },
    )
    assert code_of(other.get_object, Bucket=acl_bucket, Key="a") == "AccessDenied"
    owner.delete_bucket_policy(Bucket=acl_bucket)

    # What S3 refuses.
    assert (
        code_of(owner.put_object_acl, Bucket=acl_bucket, Key="a", GrantRead='id="' + "0" * 64 + '"')
        == "InvalidArgument"
    )
    email = 'emailAddress="someone@example.com"'
    assert code_of(owner.put_object_acl, Bucket=acl_bucket, Key="a", GrantRead=email) == "UnsupportedArgument"
    assert (
        code_of(owner.put_bucket_acl, Bucket=acl_bucket, GrantRead='uri="http://example.com/group"')
        == "InvalidArgument"
    )
    both = {"ACL": "private", "GrantRead": f'id="{them}"'}
    assert code_of(owner.put_object_acl, Bucket=acl_bucket, Key="a", **both) == "InvalidRequest"
    assert code_of(owner.put_bucket_acl, Bucket=acl_bucket) == "MissingSecurityHeader"
    stranger = {**document, "Owner": {"ID": them}}
    assert (
        code_of(owner.put_object_acl, Bucket=acl_bucket, Key="a", AccessControlPolicy=stranger)
        == "AccessDenied"
    )
    by_email = {
        "Owner": {"ID": me},
        "Grants": [
            {"Grantee": {"Type": "AmazonCustomerByEmail", "EmailAddress": "a@b.c"}, "Permission": "READ"}
        ],
    }
    assert (
        code_of(owner.put_bucket_acl, Bucket=acl_bucket, AccessControlPolicy=by_email)
        == "UnsupportedArgument"
    )
    public = {"Grantee": {"Type": "Group", "URI": ALL_USERS}, "Permission": "READ"}
    crowded = {"Owner": {"ID": me}, "Grants": [public] * 101}  # an ACL has at most 100 grants
    assert (
        code_of(owner.put_bucket_acl, Bucket=acl_bucket, AccessControlPolicy=crowded) == "MalformedACLError"
    )
    ownerless = {"Grants": [public]}
    assert (
        code_of(owner.put_bucket_acl, Bucket=acl_bucket, AccessControlPolicy=ownerless) == "MalformedACLError"
    )
    assert code_of(anonymous.put_bucket_acl, Bucket=acl_bucket, ACL="public-read") == "AccessDenied"


def test_object_ownership_decides_who_owns_what_another_account_writes(owner, other, unique):
    me, them = _canonical(owner), _canonical(other)
    owners = {}
    for ownership in ("ObjectWriter", "BucketOwnerPreferred", "BucketOwnerEnforced"):
        name = f"own-{ownership.lower()[:12]}-{unique}"
        owner.create_bucket(Bucket=name, ObjectOwnership=ownership)
        put_policy(
            owner,
            name,
            {
                "Effect": "Allow",
                "Principal": {"AWS": ALT_ACCOUNT},
                "Action": ["s3:PutObject", "s3:PutObjectAcl", "s3:GetObject", "s3:GetObjectAcl"],
                "Resource": f"arn:aws:s3:::{name}/*",
            },
        )
        other.put_object(Bucket=name, Key="plain", Body=b"p")
        other.put_object(Bucket=name, Key="given", Body=b"g", ACL="bucket-owner-full-control")
        owners[ownership] = {
            key: other.get_object_acl(Bucket=name, Key=key)["Owner"]["ID"] for key in ("plain", "given")
        }
        # Listings show each object's owner.
        listed = owner.list_objects_v2(Bucket=name, FetchOwner=True)["Contents"]
        assert {o["Key"]: o["Owner"]["ID"] for o in listed} == owners[ownership]
        versions = owner.list_object_versions(Bucket=name)["Versions"]
        assert {v["Key"]: v["Owner"]["ID"] for v in versions} == owners[ownership]
        if ownership != "BucketOwnerEnforced":
            # The bucket's owner cannot read what it does not own without a grant; its bucket
            # policy grants nothing on it (the other account's own object is its to read).
            assert code_of(owner.get_object, Bucket=name, Key="plain") == "AccessDenied"
            assert owner.get_object(Bucket=name, Key="given")["Body"].read() == b"g"
            assert other.get_object(Bucket=name, Key="plain")["Body"].read() == b"p"
            # The bucket's owner may still delete it.
            owner.delete_object(Bucket=name, Key="plain")
        else:
            assert owner.get_object(Bucket=name, Key="plain")["Body"].read() == b"p"
    assert owners == {
        "ObjectWriter": {"plain": them, "given": them},
        "BucketOwnerPreferred": {"plain": them, "given": me},
        "BucketOwnerEnforced": {"plain": me, "given": me},
    }


def test_acls_given_at_creation_copy_and_multipart(owner, other, anonymous, unique):
    them = _canonical(other)
    name = f"acl-made-{unique}"
    refused = "InvalidBucketAclWithBlockPublicAccessError"
    assert (
        code_of(owner.create_bucket, Bucket=name, ObjectOwnership="ObjectWriter", ACL="public-read")
        == refused
    )
    owner.create_bucket(Bucket=name, ObjectOwnership="BucketOwnerPreferred", GrantRead=f'id="{them}"')
    assert (them, "READ") in _grants(owner.get_bucket_acl(Bucket=name))
    assert other.list_objects_v2(Bucket=name)["KeyCount"] == 0
    owner.delete_public_access_block(Bucket=name)
    owner.put_object(Bucket=name, Key="src", Body=b"source")
    owner.copy_object(Bucket=name, Key="copy", CopySource={"Bucket": name, "Key": "src"}, ACL="public-read")
    assert anonymous.get_object(Bucket=name, Key="copy")["Body"].read() == b"source"
    assert code_of(anonymous.get_object, Bucket=name, Key="src") == "AccessDenied"
    upload = owner.create_multipart_upload(Bucket=name, Key="mpu", GrantRead=f'uri="{ALL_USERS}"')["UploadId"]
    part = owner.upload_part(Bucket=name, Key="mpu", UploadId=upload, PartNumber=1, Body=b"parts")
    owner.complete_multipart_upload(
        Bucket=name,
        Key="mpu",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert anonymous.get_object(Bucket=name, Key="mpu")["Body"].read() == b"parts"


def test_acls_survive_a_restart(server, owner, anonymous, acl_bucket):
    owner.put_object(Bucket=acl_bucket, Key="kept", Body=b"k", ACL="public-read")
    owner.put_bucket_acl(Bucket=acl_bucket, ACL="public-read")
    server.kill()
    server.start()
    assert anonymous.get_object(Bucket=acl_bucket, Key="kept")["Body"].read() == b"k"
    assert "kept" in [o["Key"] for o in anonymous.list_objects_v2(Bucket=acl_bucket)["Contents"]]
    rules = owner.get_bucket_ownership_controls(Bucket=acl_bucket)["OwnershipControls"]["Rules"]
    assert rules == [{"ObjectOwnership": "ObjectWriter"}]


def test_acls_of_browser_post_uploads(owner, other, anonymous, acl_bucket, bucket):
    them = _canonical(other)
    owner.put_bucket_acl(Bucket=acl_bucket, GrantWrite=f'id="{them}"')
    fields = {"acl": "public-read"}
    post = other.generate_presigned_post(Bucket=acl_bucket, Key="posted", Fields=fields, Conditions=[fields])
    body, ctype = multipart_form(post["fields"], "posted", b"from a form")
    status, resp, _ = http_call("POST", post["url"], body, {"Content-Type": ctype})
    assert status == 204, resp
    assert anonymous.get_object(Bucket=acl_bucket, Key="posted")["Body"].read() == b"from a form"
    assert other.get_object_acl(Bucket=acl_bucket, Key="posted")["Owner"]["ID"] == them  # the signer's
    # While ACLs are disabled a public ACL field is refused, as the header is.
    post = owner.generate_presigned_post(Bucket=bucket, Key="posted", Fields=fields, Conditions=[fields])
    body, ctype = multipart_form(post["fields"], "posted", b"x")
    status, resp, _ = http_call("POST", post["url"], body, {"Content-Type": ctype})
    assert status == 400 and b"AccessControlListNotSupported" in resp, resp


def test_a_bucket_policy_can_require_uploads_to_hand_over_control(owner, other, unique):
    me = _canonical(owner)
    name = f"handover-{unique}"
    owner.create_bucket(Bucket=name, ObjectOwnership="ObjectWriter")
    put_policy(
        owner,
        name,
        {
            "Effect": "Allow",
            "Principal": {"AWS": ALT_ACCOUNT},
            "Action": "s3:PutObject",
            "Resource": f"arn:aws:s3:::{name}/*",
        },
        {
            "Effect": "Deny",
            "Principal": {"AWS": ALT_ACCOUNT},
            "Action": "s3:PutObject",
            "Resource": f"arn:aws:s3:::{name}/canned/*",
            "Condition": {"StringNotEquals": {"s3:x-amz-acl": "bucket-owner-full-control"}},
        },
        {
            "Effect": "Deny",
            "Principal": {"AWS": ALT_ACCOUNT},
            "Action": "s3:PutObject",
            "Resource": f"arn:aws:s3:::{name}/granted/*",
            "Condition": {"StringNotEquals": {"s3:x-amz-grant-full-control": f'id="{me}"'}},
        },
    )
    assert code_of(other.put_object, Bucket=name, Key="canned/a", Body=b"a") == "AccessDenied"
    other.put_object(Bucket=name, Key="canned/a", Body=b"a", ACL="bucket-owner-full-control")
    assert code_of(other.put_object, Bucket=name, Key="granted/b", Body=b"b") == "AccessDenied"
    other.put_object(Bucket=name, Key="granted/b", Body=b"b", GrantFullControl=f'id="{me}"')
    for key in ("canned/a", "granted/b"):
        assert owner.get_object(Bucket=name, Key=key)["Body"].read() == key[-1].encode()


def test_multipart_listings_show_the_initiator_and_owners_show_no_display_name(
    server, owner, other, acl_bucket, unique
):
    """ListMultipartUploads and ListParts: Initiator is who started the upload (an account's
    canonical id, an IAM user's ARN), Owner the account that will own the object (ObjectWriter:
    the writer's). No Owner anywhere has a DisplayName (S3 stopped returning it in November 2025)."""
    me, them = _canonical(owner), _canonical(other)
    owner.put_bucket_acl(Bucket=acl_bucket, GrantWrite=f'id="{them}"', GrantFullControl=f'id="{me}"')
    iam = server.client("iam")
    name = f"mpu-{unique}"
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    statement = {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"}
    document = json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    iam.put_user_policy(UserName=name, PolicyName="write", PolicyDocument=document)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    user = server.client("s3", access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"])
    uploads = {
        "by-root": owner.create_multipart_upload(Bucket=acl_bucket, Key="by-root")["UploadId"],
        "by-user": user.create_multipart_upload(Bucket=acl_bucket, Key="by-user")["UploadId"],
        "by-other": other.create_multipart_upload(Bucket=acl_bucket, Key="by-other")["UploadId"],
    }
    listed = {
        u["Key"]: (u["Initiator"], u["Owner"])
        for u in owner.list_multipart_uploads(Bucket=acl_bucket)["Uploads"]
    }
    assert listed == {
        "by-root": ({"ID": me}, {"ID": me}),
        "by-user": ({"ID": arn}, {"ID": me}),
        "by-other": ({"ID": them}, {"ID": them}),
    }
    for k, upload_id in uploads.items():
        parts = owner.list_parts(Bucket=acl_bucket, Key=k, UploadId=upload_id)
        assert (parts["Initiator"], parts["Owner"]) == listed[k]
    owner.put_object(Bucket=acl_bucket, Key="plain", Body=b"x")
    assert owner.list_buckets()["Owner"] == {"ID": me}
    assert owner.get_bucket_acl(Bucket=acl_bucket)["Owner"] == {"ID": me}
    assert owner.get_object_acl(Bucket=acl_bucket, Key="plain")["Owner"] == {"ID": me}
    listing = owner.list_objects_v2(Bucket=acl_bucket, FetchOwner=True)["Contents"]
    assert [o["Owner"] for o in listing] == [{"ID": me}]
    versions = owner.list_object_versions(Bucket=acl_bucket)["Versions"]
    assert [v["Owner"] for v in versions] == [{"ID": me}]
