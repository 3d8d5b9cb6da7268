"""Block Public Access at the account level (S3 Control): the settings of an account apply to
all its buckets on top of each bucket's own, and only the account itself may see or change them."""

from __future__ import annotations

import pytest

from tests.services.iam.conftest import ACCOUNT, ALT_ACCOUNT, ALT_ROOT
from tests.services.s3.security.conftest import code_of, control_client, put_policy


@pytest.fixture
def control(server):
    client = control_client(server)
    yield client
    client.delete_public_access_block(AccountId=ACCOUNT)


def _public_read(bucket: str) -> dict:
    return {
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/*",
    }


def test_account_settings_crud(server, control):
    assert (
        code_of(control.get_public_access_block, AccountId=ACCOUNT) == "NoSuchPublicAccessBlockConfiguration"
    )
    control.put_public_access_block(
        AccountId=ACCOUNT,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    got = control.get_public_access_block(AccountId=ACCOUNT)["PublicAccessBlockConfiguration"]
    assert set(got.values()) == {True} and len(got) == 4
    # Another account can neither read nor change this account's settings.
    theirs = control_client(server, **ALT_ROOT)
    assert code_of(theirs.get_public_access_block, AccountId=ACCOUNT) == "AccessDenied"
    assert code_of(theirs.delete_public_access_block, AccountId=ACCOUNT) == "AccessDenied"
    assert (
        code_of(theirs.get_public_access_block, AccountId=ALT_ACCOUNT)
        == "NoSuchPublicAccessBlockConfiguration"
    )
    control.delete_public_access_block(AccountId=ACCOUNT)
    assert (
        code_of(control.get_public_access_block, AccountId=ACCOUNT) == "NoSuchPublicAccessBlockConfiguration"
    )


def test_account_block_public_policy_applies_to_every_bucket(owner, other, control, bucket, unique):
    owner.delete_public_access_block(Bucket=bucket)  # the bucket's own settings are off
    control.put_public_access_block(
        AccountId=ACCOUNT, PublicAccessBlockConfiguration={"BlockPublicPolicy": True}
    )
    assert code_of(put_policy, owner, bucket, _public_read(bucket)) == "AccessDenied"
    # Another account's bucket is not governed by this account's settings.
    theirs = f"alt-{unique}"
    other.create_bucket(Bucket=theirs)
    other.delete_public_access_block(Bucket=theirs)
    put_policy(other, theirs, _public_read(theirs))
    control.delete_public_access_block(AccountId=ACCOUNT)
    put_policy(owner, bucket, _public_read(bucket))


def test_account_restrict_public_buckets_cuts_off_anonymous(owner, anonymous, control, bucket):
    owner.delete_public_access_block(Bucket=bucket)
    put_policy(owner, bucket, _public_read(bucket))
    assert anonymous.get_object(Bucket=bucket, Key="shared/a.txt")["Body"].read() == b"shared/a.txt"
    control.put_public_access_block(
        AccountId=ACCOUNT, PublicAccessBlockConfiguration={"RestrictPublicBuckets": True}
    )
    assert code_of(anonymous.get_object, Bucket=bucket, Key="shared/a.txt") == "AccessDenied"
    assert owner.get_object(Bucket=bucket, Key="shared/a.txt")["Body"].read() == b"shared/a.txt"
    control.delete_public_access_block(AccountId=ACCOUNT)
    assert anonymous.get_object(Bucket=bucket, Key="shared/a.txt")["Body"].read() == b"shared/a.txt"
