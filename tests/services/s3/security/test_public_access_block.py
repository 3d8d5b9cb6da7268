"""Block Public Access at the bucket level: AWS's defaults for a new bucket, the four settings,
BlockPublicPolicy refusing a public policy and RestrictPublicBuckets cutting off anonymous and
cross-account callers of a public one."""

from __future__ import annotations

from tests.services.iam.conftest import ALT_ACCOUNT
from tests.services.s3.security.conftest import code_of, put_policy

ALL_ON = dict.fromkeys(
    ["BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"], True
)


def _public_read(bucket: str) -> dict:
    return {
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/shared/*",
    }


def test_new_bucket_has_all_four_settings_on(owner, bucket):
    got = owner.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert got == ALL_ON
    owner.put_public_access_block(
        Bucket=bucket, PublicAccessBlockConfiguration={"BlockPublicPolicy": True, "IgnorePublicAcls": False}
    )
    got = owner.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert got == {**dict.fromkeys(ALL_ON, False), "BlockPublicPolicy": True}
    owner.delete_public_access_block(Bucket=bucket)
    assert code_of(owner.get_public_access_block, Bucket=bucket) == "NoSuchPublicAccessBlockConfiguration"
    owner.delete_public_access_block(Bucket=bucket)  # idempotent
    assert code_of(owner.get_public_access_block, Bucket="no-such-bucket-bpa") == "NoSuchBucket"


def test_seed_layer_one_all_four_settings(owner, bucket):
    # The seed's Layer 1: "Enable all four settings by default".
    owner.delete_public_access_block(Bucket=bucket)
    owner.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    assert owner.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"] == ALL_ON
    assert code_of(put_policy, owner, bucket, _public_read(bucket)) == "AccessDenied"
    # A grant to a named account is not public: BlockPublicPolicy lets it through.
    put_policy(owner, bucket, {**_public_read(bucket), "Principal": {"AWS": ALT_ACCOUNT}})
    assert owner.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is False


def test_conditions_that_make_a_wildcard_grant_non_public(owner, bucket):
    for condition in (
        {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}},
        {"StringEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}},
        {"StringEquals": {"aws:PrincipalAccount": ALT_ACCOUNT}},
    ):
        put_policy(owner, bucket, {**_public_read(bucket), "Condition": condition})
        assert owner.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is False, condition
    for condition in (
        {"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}},
        {"StringLike": {"aws:SourceVpce": "vpce-*"}},
        {"Bool": {"aws:SecureTransport": "true"}},
    ):
        assert (
            code_of(put_policy, owner, bucket, {**_public_read(bucket), "Condition": condition})
            == "AccessDenied"
        )


def test_restrict_public_buckets_cuts_off_anonymous_and_other_accounts(
    owner, other, anonymous, alice, bucket
):
    owner.delete_public_access_block(Bucket=bucket)
    put_policy(owner, bucket, {**_public_read(bucket), "Action": ["s3:GetObject", "s3:PutObject"]})
    assert anonymous.get_object(Bucket=bucket, Key="shared/a.txt")["Body"].read() == b"shared/a.txt"
    assert other.get_object(Bucket=bucket, Key="shared/a.txt")["Body"].read() == b"shared/a.txt"
    owner.put_public_access_block(
        Bucket=bucket, PublicAccessBlockConfiguration={"RestrictPublicBuckets": True}
    )
    assert code_of(anonymous.get_object, Bucket=bucket, Key="shared/a.txt") == "AccessDenied"
    assert code_of(other.get_object, Bucket=bucket, Key="shared/a.txt") == "AccessDenied"
    # Within the owner's account the policy still grants: alice (read-only by IAM) may write.
    alice.put_object(Bucket=bucket, Key="shared/by-alice", Body=b"a")
    assert owner.get_object(Bucket=bucket, Key="shared/by-alice")["Body"].read() == b"a"
    owner.put_public_access_block(
        Bucket=bucket, PublicAccessBlockConfiguration={"RestrictPublicBuckets": False}
    )
    assert anonymous.get_object(Bucket=bucket, Key="shared/a.txt")["Body"].read() == b"shared/a.txt"


def test_another_account_cannot_change_the_settings(owner, other, bucket):
    assert code_of(other.delete_public_access_block, Bucket=bucket) == "AccessDenied"
    assert code_of(other.get_public_access_block, Bucket=bucket) == "AccessDenied"
    put_policy(
        owner,
        bucket,
        {
            "Effect": "Allow",
            "Principal": {"AWS": ALT_ACCOUNT},
            "Action": "s3:GetBucketPublicAccessBlock",
            "Resource": f"arn:aws:s3:::{bucket}",
        },
    )
    assert other.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"] == ALL_ON
    assert code_of(other.delete_public_access_block, Bucket=bucket) == "AccessDenied"
    assert owner.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"] == ALL_ON
