"""Object Ownership and ACLs: every bucket is BucketOwnerEnforced (S3's default), so ACLs are
disabled: the owner's FULL_CONTROL is the only grant, and only ACLs that change nothing are taken."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.services.iam.conftest import ALT_ACCOUNT
from tests.services.s3.security.conftest import code_of, put_policy


def test_ownership_controls_are_bucket_owner_enforced(owner, bucket):
    rules = owner.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"]
    assert rules == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    owner.put_bucket_ownership_controls(
        Bucket=bucket, OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    )
    for other_setting in ("BucketOwnerPreferred", "ObjectWriter"):
        with pytest.raises(ClientError) as e:
            owner.put_bucket_ownership_controls(
                Bucket=bucket, OwnershipControls={"Rules": [{"ObjectOwnership": other_setting}]}
            )
        assert e.value.response["Error"]["Code"] == "NotImplemented"
    assert code_of(owner.delete_bucket_ownership_controls, Bucket=bucket) == "NotImplemented"
    rules = owner.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"]
    assert rules == [{"ObjectOwnership": "BucketOwnerEnforced"}]


def test_acls_show_the_owner_and_refuse_changes(owner, bucket):
    owner_id = owner.list_buckets()["Owner"]["ID"]
    for acl in (owner.get_bucket_acl(Bucket=bucket), owner.get_object_acl(Bucket=bucket, Key="shared/a.txt")):
        assert acl["Owner"]["ID"] == owner_id
        assert [(g["Grantee"]["ID"], g["Permission"]) for g in acl["Grants"]] == [(owner_id, "FULL_CONTROL")]
    owner.put_bucket_acl(Bucket=bucket, ACL="private")
    owner.put_object_acl(Bucket=bucket, Key="shared/a.txt", ACL="bucket-owner-full-control")
    same = {
        "Owner": {"ID": owner_id},
        "Grants": [{"Grantee": {"Type": "CanonicalUser", "ID": owner_id}, "Permission": "FULL_CONTROL"}],
    }
    owner.put_bucket_acl(Bucket=bucket, AccessControlPolicy=same)
    public = {
        "Owner": {"ID": owner_id},
        "Grants": [
            *same["Grants"],
            {
                "Grantee": {"Type": "Group", "URI": "http://acs.amazonaws.com/groups/global/AllUsers"},
                "Permission": "READ",
            },
        ],
    }
    refused = "AccessControlListNotSupported"
    assert code_of(owner.put_bucket_acl, Bucket=bucket, ACL="public-read") == refused
    assert code_of(owner.put_bucket_acl, Bucket=bucket, AccessControlPolicy=public) == refused
    assert (
        code_of(
            owner.put_bucket_acl,
            Bucket=bucket,
            GrantRead='uri="http://acs.amazonaws.com/groups/global/AllUsers"',
        )
        == refused
    )
    assert code_of(owner.put_object_acl, Bucket=bucket, Key="shared/a.txt", ACL="public-read") == refused
    assert code_of(owner.get_object_acl, Bucket=bucket, Key="no-such-key") == "NoSuchKey"


def test_acls_of_another_account_and_anonymous(owner, other, anonymous, bucket):
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
    grants = other.get_bucket_acl(Bucket=bucket)["Grants"]
    assert [g["Permission"] for g in grants] == ["FULL_CONTROL"]
    assert code_of(other.put_bucket_acl, Bucket=bucket, ACL="private") == "AccessDenied"
