"""S3 Object Lock: bucket configuration and default retention, per-version retention in GOVERNANCE
and COMPLIANCE mode, legal holds, x-amz-bypass-governance-retention with its permission, and
lifecycle that leaves locked versions alone, on the server's simulated clock (this module's
server is its own: the tests move its clock and restart it)."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from botocore.config import Config

from tests.services.s3.security.conftest import code_of, put_policy

ALICE_ARN = "arn:aws:iam::123456789012:user/alice"
OTHER_ACCOUNT = "222222222222"


def server_now(server) -> datetime:
    return datetime.fromisoformat(server.admin("/_strata/clock")["now"]).astimezone(UTC)


@pytest.fixture
def locked(owner, unique) -> str:
    name = f"lock-{unique}"
    owner.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


def _version_put(owner, bucket: str, key: str, **kw) -> str:
    return owner.put_object(Bucket=bucket, Key=key, Body=b"worm", **kw)["VersionId"]


def test_lock_at_creation_turns_versioning_on_for_good(owner, locked, bucket):
    assert owner.get_bucket_versioning(Bucket=locked)["Status"] == "Enabled"
    config = owner.get_object_lock_configuration(Bucket=locked)["ObjectLockConfiguration"]
    assert config == {"ObjectLockEnabled": "Enabled"}
    assert (
        code_of(owner.put_bucket_versioning, Bucket=locked, VersioningConfiguration={"Status": "Suspended"})
        == "InvalidBucketState"
    )
    owner.put_bucket_versioning(Bucket=locked, VersioningConfiguration={"Status": "Enabled"})  # a no-op

    # A bucket without Object Lock: no configuration, and lock headers are refused.
    assert (
        code_of(owner.get_object_lock_configuration, Bucket=bucket) == "ObjectLockConfigurationNotFoundError"
    )
    assert (
        code_of(
            owner.put_object,
            Bucket=bucket,
            Key="k",
            Body=b"x",
            ObjectLockLegalHoldStatus="ON",
        )
        == "InvalidRequest"
    )
    assert code_of(owner.get_object_retention, Bucket=bucket, Key="shared/a.txt") == "InvalidRequest"

    # An existing bucket gets Object Lock by configuration once its versioning is Enabled.
    enable = {"ObjectLockEnabled": "Enabled"}
    assert code_of(owner.put_object_lock_configuration, Bucket=bucket, ObjectLockConfiguration=enable) == (
        "InvalidBucketState"
    )
    owner.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    owner.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration=enable)
    assert owner.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"] == enable
    owner.put_object(Bucket=bucket, Key="k", Body=b"x", ObjectLockLegalHoldStatus="ON")
    assert owner.head_object(Bucket=bucket, Key="k")["ObjectLockLegalHoldStatus"] == "ON"


def test_default_retention_is_given_to_new_versions(server, owner, locked):
    bad = [
        (
            {"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE"}}},
            "MalformedXML",
        ),
        (
            {
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1, "Years": 1}},
            },
            "MalformedXML",
        ),
        (
            {"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 0}}},
            "InvalidArgument",
        ),
        ({"Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}}, "MalformedXML"),
    ]
    for config, code in bad:
        assert (
            code_of(owner.put_object_lock_configuration, Bucket=locked, ObjectLockConfiguration=config)
            == code
        )
    config = {"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 3}}}
    owner.put_object_lock_configuration(Bucket=locked, ObjectLockConfiguration=config)
    assert owner.get_object_lock_configuration(Bucket=locked)["ObjectLockConfiguration"] == config

    now = server_now(server)
    version = _version_put(owner, locked, "report.csv")
    head = owner.head_object(Bucket=locked, Key="report.csv")
    assert head["ObjectLockMode"] == "GOVERNANCE"
    assert abs(head["ObjectLockRetainUntilDate"] - (now + timedelta(days=3))) < timedelta(minutes=5)
    got = owner.get_object(Bucket=locked, Key="report.csv", VersionId=version)
    assert got["ObjectLockMode"] == "GOVERNANCE"
    retention = owner.get_object_retention(Bucket=locked, Key="report.csv")["Retention"]
    assert retention["Mode"] == "GOVERNANCE"
    assert (
        code_of(owner.get_object_legal_hold, Bucket=locked, Key="report.csv")
        == "NoSuchObjectLockConfiguration"
    )

    # Copies and multipart uploads get the default too; a version's own headers win.
    owner.copy_object(Bucket=locked, Key="copy.csv", CopySource=f"{locked}/report.csv")
    assert owner.head_object(Bucket=locked, Key="copy.csv")["ObjectLockMode"] == "GOVERNANCE"
    until = now + timedelta(days=30)
    up = owner.create_multipart_upload(
        Bucket=locked, Key="big.bin", ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until
    )
    part = owner.upload_part(
        Bucket=locked, Key="big.bin", UploadId=up["UploadId"], PartNumber=1, Body=b"p" * 10
    )
    owner.complete_multipart_upload(
        Bucket=locked,
        Key="big.bin",
        UploadId=up["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    head = owner.head_object(Bucket=locked, Key="big.bin")
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert abs(head["ObjectLockRetainUntilDate"] - until) < timedelta(seconds=1)

    # A version under default GOVERNANCE retention: a delete marker is fine, removing it is not.
    marker = owner.delete_object(Bucket=locked, Key="report.csv")
    assert marker["DeleteMarker"] is True
    owner.delete_object(Bucket=locked, Key="report.csv", VersionId=marker["VersionId"])
    assert code_of(owner.delete_object, Bucket=locked, Key="report.csv", VersionId=version) == "AccessDenied"


def test_lock_headers_are_checked(server, owner, locked):
    now = server_now(server)
    cases = [
        ({"ObjectLockMode": "GOVERNANCE"}, "InvalidArgument"),
        ({"ObjectLockRetainUntilDate": now + timedelta(days=1)}, "InvalidArgument"),
        (
            {"ObjectLockMode": "GOVERNANCE", "ObjectLockRetainUntilDate": now - timedelta(days=1)},
            "InvalidArgument",
        ),
    ]
    for kw, code in cases:
        assert code_of(owner.put_object, Bucket=locked, Key="k", Body=b"x", **kw) == code
    # S3 wants an integrity header on an upload Object Lock protects.
    bare = server.client("s3", config=Config(request_checksum_calculation="when_required"))
    kw = {"ObjectLockMode": "GOVERNANCE", "ObjectLockRetainUntilDate": now + timedelta(days=1)}
    assert code_of(bare.put_object, Bucket=locked, Key="k", Body=b"x", **kw) == "InvalidRequest"
    md5 = base64.b64encode(hashlib.md5(b"x").digest()).decode()
    bare.put_object(Bucket=locked, Key="k", Body=b"x", ContentMD5=md5, **kw)
    bare.put_object(Bucket=locked, Key="plain", Body=b"x")  # nothing to protect: no header needed
    # So do the parts of a multipart upload that will be locked.
    up = bare.create_multipart_upload(Bucket=locked, Key="mp", ObjectLockLegalHoldStatus="ON")
    part = {"Bucket": locked, "Key": "mp", "UploadId": up["UploadId"], "PartNumber": 1, "Body": b"x"}
    assert code_of(bare.upload_part, **part) == "InvalidRequest"
    bare.upload_part(**part, ContentMD5=md5)


def test_compliance_binds_everyone_until_its_date_passes(server, owner, locked):
    now = server_now(server)
    until = now + timedelta(days=2)
    version = _version_put(
        owner, locked, "ledger", ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until
    )
    shorter = {"Mode": "COMPLIANCE", "RetainUntilDate": now + timedelta(days=1)}
    governance = {"Mode": "GOVERNANCE", "RetainUntilDate": now + timedelta(days=5)}
    for retention in (shorter, governance, {}):
        for bypass in (False, True):
            assert (
                code_of(
                    owner.put_object_retention,
                    Bucket=locked,
                    Key="ledger",
                    VersionId=version,
                    Retention=retention,
                    BypassGovernanceRetention=bypass,
                )
                == "AccessDenied"
            )
    for bypass in (False, True):
        assert (
            code_of(
                owner.delete_object,
                Bucket=locked,
                Key="ledger",
                VersionId=version,
                BypassGovernanceRetention=bypass,
            )
            == "AccessDenied"
        )
    out = owner.delete_objects(
        Bucket=locked,
        Delete={"Objects": [{"Key": "ledger", "VersionId": version}]},
        BypassGovernanceRetention=True,
    )
    assert [e["Code"] for e in out["Errors"]] == ["AccessDenied"]
    # Extending is allowed.
    longer = now + timedelta(days=3)
    owner.put_object_retention(
        Bucket=locked,
        Key="ledger",
        VersionId=version,
        Retention={"Mode": "COMPLIANCE", "RetainUntilDate": longer},
    )
    got = owner.get_object_retention(Bucket=locked, Key="ledger", VersionId=version)["Retention"]
    assert abs(got["RetainUntilDate"] - longer) < timedelta(seconds=1)

    # The lock survives a restart.
    server.restart()
    owner = server.client("s3")
    assert code_of(owner.delete_object, Bucket=locked, Key="ledger", VersionId=version) == "AccessDenied"
    assert owner.head_object(Bucket=locked, Key="ledger", VersionId=version)["ObjectLockMode"] == "COMPLIANCE"

    server.advance_clock("2d")
    assert code_of(owner.delete_object, Bucket=locked, Key="ledger", VersionId=version) == "AccessDenied"
    server.advance_clock("25h")
    owner.delete_object(Bucket=locked, Key="ledger", VersionId=version)
    assert code_of(owner.head_object, Bucket=locked, Key="ledger", VersionId=version) == "404"


def test_legal_hold_blocks_deletion_until_released(owner, locked):
    version = _version_put(owner, locked, "evidence", ObjectLockLegalHoldStatus="ON")
    assert owner.get_object_legal_hold(Bucket=locked, Key="evidence")["LegalHold"] == {"Status": "ON"}
    assert owner.head_object(Bucket=locked, Key="evidence")["ObjectLockLegalHoldStatus"] == "ON"
    assert (
        code_of(
            owner.delete_object,
            Bucket=locked,
            Key="evidence",
            VersionId=version,
            BypassGovernanceRetention=True,
        )
        == "AccessDenied"
    )
    assert code_of(
        owner.put_object_legal_hold, Bucket=locked, Key="evidence", LegalHold={"Status": "MAYBE"}
    ) == ("MalformedXML")
    owner.put_object_legal_hold(Bucket=locked, Key="evidence", VersionId=version, LegalHold={"Status": "OFF"})
    assert owner.get_object_legal_hold(Bucket=locked, Key="evidence")["LegalHold"] == {"Status": "OFF"}
    owner.delete_object(Bucket=locked, Key="evidence", VersionId=version)


def test_governance_bypass_needs_its_permission(server, owner, alice, other, locked):
    now = server_now(server)
    retention = {"ObjectLockMode": "GOVERNANCE", "ObjectLockRetainUntilDate": now + timedelta(days=10)}
    v1 = _version_put(owner, locked, "g1", **retention)
    v2 = _version_put(owner, locked, "g2", **retention)
    v3 = _version_put(owner, locked, "g3", **retention)
    deleter = {
        "Effect": "Allow",
        "Principal": {"AWS": [ALICE_ARN, OTHER_ACCOUNT]},
        "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectRetention"],
        "Resource": f"arn:aws:s3:::{locked}/*",
    }
    put_policy(owner, locked, deleter)
    for client in (alice, other):
        # Without the header the retention holds; with it, the permission is missing.
        assert code_of(client.delete_object, Bucket=locked, Key="g1", VersionId=v1) == "AccessDenied"
        assert (
            code_of(
                client.delete_object, Bucket=locked, Key="g1", VersionId=v1, BypassGovernanceRetention=True
            )
            == "AccessDenied"
        )
        assert (
            code_of(
                client.put_object_retention,
                Bucket=locked,
                Key="g1",
                VersionId=v1,
                Retention={},
                BypassGovernanceRetention=True,
            )
            == "AccessDenied"
        )
    bypass = {
        "Effect": "Allow",
        "Principal": {"AWS": [ALICE_ARN, OTHER_ACCOUNT]},
        "Action": "s3:BypassGovernanceRetention",
        "Resource": f"arn:aws:s3:::{locked}/*",
    }
    put_policy(owner, locked, deleter, bypass)
    alice.delete_object(Bucket=locked, Key="g1", VersionId=v1, BypassGovernanceRetention=True)
    other.put_object_retention(
        Bucket=locked, Key="g2", VersionId=v2, Retention={}, BypassGovernanceRetention=True
    )
    assert (
        code_of(owner.get_object_retention, Bucket=locked, Key="g2", VersionId=v2)
        == "NoSuchObjectLockConfiguration"
    )
    other.delete_object(Bucket=locked, Key="g2", VersionId=v2)
    # The account's root has the permission; a Deny in the bucket policy takes it from others.
    deny = {
        "Effect": "Deny",
        "Principal": {"AWS": [ALICE_ARN, OTHER_ACCOUNT]},
        "Action": "s3:BypassGovernanceRetention",
        "Resource": f"arn:aws:s3:::{locked}/*",
    }
    put_policy(owner, locked, deleter, bypass, deny)
    assert (
        code_of(
            alice.delete_objects,
            Bucket=locked,
            Delete={"Objects": [{"Key": "g3", "VersionId": v3}]},
            BypassGovernanceRetention=True,
        )
        == "AccessDenied"
    )
    out = owner.delete_objects(
        Bucket=locked, Delete={"Objects": [{"Key": "g3", "VersionId": v3}]}, BypassGovernanceRetention=True
    )
    assert [d["VersionId"] for d in out["Deleted"]] == [v3]
    # A Deny in the bucket policy binds the root's bypass too.
    v4 = _version_put(owner, locked, "g4", **retention)
    put_policy(owner, locked, {**deny, "Principal": "*"})
    assert (
        code_of(owner.delete_object, Bucket=locked, Key="g4", VersionId=v4, BypassGovernanceRetention=True)
        == "AccessDenied"
    )
    owner.delete_bucket_policy(Bucket=locked)
    owner.delete_object(Bucket=locked, Key="g4", VersionId=v4, BypassGovernanceRetention=True)
    # Without a bucket policy, a user allowed to delete versions (its decision remembered) still
    # needs the bypass permission once it sends the header.
    iam = server.client("iam")
    iam.create_user(UserName=locked)
    deletes = {"Effect": "Allow", "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion"], "Resource": "*"}
    iam.put_user_policy(
        UserName=locked,
        PolicyName="deletes",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [deletes]}),
    )
    made = iam.create_access_key(UserName=locked)["AccessKey"]
    deleter_s3 = server.client("s3", access_key=made["AccessKeyId"], secret_key=made["SecretAccessKey"])
    for _ in range(2):
        deleter_s3.delete_object(Bucket=locked, Key="g5", VersionId=_version_put(owner, locked, "g5"))
    v5 = _version_put(owner, locked, "g5", **retention)
    assert (
        code_of(
            deleter_s3.delete_object, Bucket=locked, Key="g5", VersionId=v5, BypassGovernanceRetention=True
        )
        == "AccessDenied"
    )
    assert [v["VersionId"] for v in owner.list_object_versions(Bucket=locked, Prefix="g5")["Versions"]] == [
        v5
    ]


def test_lifecycle_does_not_remove_locked_versions(server, owner, locked):
    now = server_now(server)
    old = _version_put(
        owner,
        locked,
        "logs/a",
        ObjectLockMode="GOVERNANCE",
        ObjectLockRetainUntilDate=now + timedelta(days=10),
    )
    held = _version_put(owner, locked, "logs/b", ObjectLockLegalHoldStatus="ON")
    free = _version_put(owner, locked, "logs/c")
    for key in ("logs/a", "logs/b", "logs/c"):
        _version_put(owner, locked, key)  # the locked versions become noncurrent
    owner.put_bucket_lifecycle_configuration(
        Bucket=locked,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "old-versions",
                    "Status": "Enabled",
                    "Filter": {"Prefix": "logs/"},
                    "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
                }
            ]
        },
    )

    def versions() -> set[str]:
        listed = owner.list_object_versions(Bucket=locked, Prefix="logs/").get("Versions", [])
        return {v["VersionId"] for v in listed}

    server.advance_clock("3d")
    left = versions()
    assert free not in left
    assert {old, held} <= left
    server.advance_clock("9d")
    left = versions()
    assert old not in left
    assert held in left


def test_lock_state_is_shown_only_to_callers_allowed_to_read_it(server, owner, other, locked):
    now = server_now(server)
    _version_put(
        owner,
        locked,
        "doc",
        ObjectLockMode="GOVERNANCE",
        ObjectLockRetainUntilDate=now + timedelta(days=1),
        ObjectLockLegalHoldStatus="ON",
    )
    lock_members = {"ObjectLockMode", "ObjectLockRetainUntilDate", "ObjectLockLegalHoldStatus"}
    assert lock_members <= set(owner.head_object(Bucket=locked, Key="doc"))
    read = {
        "Effect": "Allow",
        "Principal": {"AWS": OTHER_ACCOUNT},
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{locked}/*",
    }
    put_policy(owner, locked, read)
    head = other.head_object(Bucket=locked, Key="doc")
    assert not lock_members & set(head)
    assert not lock_members & set(other.get_object(Bucket=locked, Key="doc"))
    put_policy(owner, locked, read, {**read, "Action": "s3:GetObjectRetention"})
    head = other.head_object(Bucket=locked, Key="doc")
    assert head["ObjectLockMode"] == "GOVERNANCE" and "ObjectLockLegalHoldStatus" not in head
