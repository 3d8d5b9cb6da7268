"""Settings Strata does not honour are refused with the service's error, and nothing happens.

Issue 12 found these accepted and ignored: SSE-C (a GET without the key returned the plaintext;
now honoured over HTTPS and refused over plain HTTP, as AWS does), ObjectLockEnabledForBucket
(served since), RDS EnableIAMDatabaseAuthentication and EngineVersion, DynamoDB UpdateTable
ReplicaUpdates; later, encryption at rest that was only recorded (DynamoDB with a KMS key; RDS
and ElastiCache until they encrypted for real). The whole table is
tests/services/test_parameter_audit.py; these are
the cases a user meets, with what must not have happened.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

SSE_C = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": "k" * 32}
COPY_SSE_C = {"CopySourceSSECustomerAlgorithm": "AES256", "CopySourceSSECustomerKey": "k" * 32}


def refusal(call: Any, **kw: Any) -> dict:
    with pytest.raises(ClientError) as e:
        call(**kw)
    return {**e.value.response["Error"], "Status": e.value.response["ResponseMetadata"]["HTTPStatusCode"]}


@pytest.fixture
def s3(strata_server: Any) -> Any:
    return strata_server.client("s3")


@pytest.fixture
def bucket(s3: Any, unique: str) -> str:
    s3.create_bucket(Bucket=f"ref-{unique}")
    return f"ref-{unique}"


def test_sse_c_over_plain_http_is_refused_on_every_object_operation(s3: Any, bucket: str) -> None:
    """SSE-C is honoured over HTTPS (tests/services/s3/test_encryption.py); over plain HTTP S3
    refuses it, as AWS does, and nothing is stored."""
    err = refusal(s3.put_object, Bucket=bucket, Key="secret", Body=b"plaintext", **SSE_C)
    assert (err["Code"], err["Status"]) == ("InvalidRequest", 400)
    assert "secure connection" in err["Message"]
    assert refusal(s3.head_object, Bucket=bucket, Key="secret")["Status"] == 404  # nothing stored
    s3.put_object(Bucket=bucket, Key="plain", Body=b"plaintext")
    assert refusal(s3.get_object, Bucket=bucket, Key="plain", **SSE_C)["Code"] == "InvalidRequest"
    assert refusal(s3.head_object, Bucket=bucket, Key="plain", **SSE_C)["Status"] == 400
    err = refusal(s3.copy_object, Bucket=bucket, Key="copy", CopySource=f"{bucket}/plain", **COPY_SSE_C)
    assert err["Code"] == "InvalidRequest"
    assert refusal(s3.create_multipart_upload, Bucket=bucket, Key="mp", **SSE_C)["Status"] == 400
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    err = refusal(s3.upload_part, Bucket=bucket, Key="mp", UploadId=upload, PartNumber=1, Body=b"x", **SSE_C)
    assert err["Code"] == "InvalidRequest"
    assert s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload).get("Parts", []) == []


def test_object_lock_event_holds_are_refused_and_nothing_is_written(
    s3: Any, unique: str, bucket: str
) -> None:
    # Object Lock itself is served (tests/services/s3/security/test_object_lock.py); its event
    # holds are not.
    name = f"lock-{unique}"
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    err = refusal(s3.put_object, Bucket=name, Key="k", Body=b"x", ObjectLockEventHold="ON")
    assert (err["Code"], err["Status"], err["Header"]) == (
        "NotImplemented",
        501,
        "x-amz-object-lock-event-hold",
    )
    assert "Versions" not in s3.list_object_versions(Bucket=name)
    err = refusal(s3.put_object, Bucket=bucket, Key="k", Body=b"x", ObjectLockLegalHoldStatus="ON")
    assert (err["Code"], err["Message"]) == ("InvalidRequest", "Bucket is missing Object Lock Configuration")


def test_acls_are_refused_as_on_a_bucket_owner_enforced_bucket(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", ACL="bucket-owner-full-control")
    err = refusal(s3.put_object, Bucket=bucket, Key="k", Body=b"x", ACL="public-read")
    assert (err["Code"], err["Status"]) == ("AccessControlListNotSupported", 400)
    err = refusal(s3.put_object, Bucket=bucket, Key="k", Body=b"x", GrantRead='id="abc"')
    assert err["Code"] == "AccessControlListNotSupported"


def test_dynamodb_strong_multi_region_consistency_is_refused(strata_server: Any, unique: str) -> None:
    # Replicas are served (tests/services/dynamodb/test_global_tables.py), eventually consistent
    # only: MultiRegionConsistency STRONG (MRSC) is refused.
    ddb = strata_server.client("dynamodb")
    table = f"rep-{unique}"
    ddb.create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    err = refusal(
        ddb.update_table,
        TableName=table,
        MultiRegionConsistency="STRONG",
        ReplicaUpdates=[{"Create": {"RegionName": "eu-west-1"}}],
    )
    assert err["Code"] == "ValidationException" and "MultiRegionConsistency" in err["Message"]
    assert "Replicas" not in ddb.describe_table(TableName=table)["Table"]
    # Streams are served (tests/services/dynamodb/test_streams.py): enabling one is honoured.
    desc = ddb.update_table(
        TableName=table, StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}
    )["TableDescription"]
    assert desc["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}
    assert desc["LatestStreamArn"].startswith(desc["TableArn"] + "/stream/")


def test_rds_iam_database_authentication_is_refused(strata_server: Any, unique: str) -> None:
    rds = strata_server.client("rds")
    ident = f"iam-{unique}"
    err = refusal(
        rds.create_db_instance,
        DBInstanceIdentifier=ident,
        Engine="postgres",
        DBInstanceClass="db.t3.micro",
        MasterUsername="master",
        MasterUserPassword="secret-password",
        AllocatedStorage=20,
        EnableIAMDatabaseAuthentication=True,
    )
    assert (
        err["Code"] == "InvalidParameterCombination" and "EnableIAMDatabaseAuthentication" in err["Message"]
    )
    assert refusal(rds.describe_db_instances, DBInstanceIdentifier=ident)["Code"] == "DBInstanceNotFound"


def test_encryption_at_rest_is_real_or_refused(strata_server: Any, unique: str) -> None:
    """RDS StorageEncrypted, ElastiCache AtRestEncryptionEnabled and DynamoDB tables under a KMS
    key were accepted and described as encrypted while their data was stored in the clear. RDS and
    ElastiCache now encrypt for real (an encrypted volume per resource: the plaintext checks are in
    tests/services/{rds,elasticache}/test_encryption.py), or refuse where this machine cannot
    mount one; DynamoDB still refuses."""
    from strata.storage.encrypted_volumes import unsupported
    from tests.storage.at_rest import mounts_under

    ec = strata_server.client("elasticache")
    gid = f"enc-{unique}"
    create = {"ReplicationGroupId": gid, "ReplicationGroupDescription": "x", "Engine": "redis"}
    why = unsupported()
    if why is not None:
        err = refusal(ec.create_replication_group, **create, AtRestEncryptionEnabled=True)
        assert err["Code"] == "InvalidParameterValue" and why in err["Message"]
        rds = strata_server.client("rds")
        err = refusal(
            rds.create_db_instance,
            DBInstanceIdentifier=gid,
            Engine="postgres",
            DBInstanceClass="db.t3.micro",
            MasterUsername="master",
            MasterUserPassword="secret-password",
            AllocatedStorage=20,
            StorageEncrypted=True,
        )
        assert err["Code"] == "InvalidParameterCombination" and why in err["Message"]
    else:
        # the group's nodes keep their files in an encrypted volume of its own, mounted while it lives
        group = ec.create_replication_group(**create, AtRestEncryptionEnabled=True)["ReplicationGroup"]
        assert group["AtRestEncryptionEnabled"] is True and group["KmsKeyId"].startswith("arn:aws:kms:")
        volume = strata_server.data_dir / "elasticache" / "volumes" / f"group-{gid}"
        assert str(volume) in mounts_under(strata_server.data_dir)
        assert (volume / "files" / f"{gid}-001" / "0001").is_dir()
        ec.delete_replication_group(ReplicationGroupId=gid)
        assert str(volume) not in mounts_under(strata_server.data_dir)
        assert not volume.with_suffix(".img").exists()
    ddb = strata_server.client("dynamodb")
    err = refusal(
        ddb.create_table,
        TableName=f"enc-{unique}",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
        SSESpecification={"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": "alias/aws/dynamodb"},
    )
    assert err["Code"] == "ValidationException" and "SSESpecification" in err["Message"]


def test_rds_engine_version_is_an_installed_one_or_refused(strata_server: Any, unique: str) -> None:
    rds = strata_server.client("rds")
    listed = rds.describe_db_engine_versions(Engine="aurora-postgresql", DefaultOnly=True)["DBEngineVersions"]
    installed = listed[0]["EngineVersion"]
    major = installed.split(".")[0]
    every = {
        v["MajorEngineVersion"]
        for v in rds.describe_db_engine_versions(Engine="postgres")["DBEngineVersions"]
    }
    other = next(str(m) for m in range(9, 30) if str(m) not in every)
    assert rds.describe_db_engine_versions(Engine="postgres", EngineVersion=other)["DBEngineVersions"] == []
    assert (
        rds.describe_db_engine_versions(Engine="postgres", EngineVersion=major[:1])["DBEngineVersions"] == []
    )
    found = rds.describe_db_engine_versions(Engine="postgres", EngineVersion=major)["DBEngineVersions"]
    assert [v["EngineVersion"] for v in found] == [installed]
    kw = {"Engine": "aurora-postgresql", "MasterUsername": "master", "MasterUserPassword": "secret-password"}
    err = refusal(rds.create_db_cluster, DBClusterIdentifier=f"old-{unique}", EngineVersion=other, **kw)
    assert (err["Code"], err["Message"]) == (
        "InvalidParameterCombination",
        f"Cannot find version {other} for aurora-postgresql",
    )
    assert refusal(rds.describe_db_clusters, DBClusterIdentifier=f"old-{unique}")["Status"] == 404
    ident = f"cur-{unique}"
    cluster = rds.create_db_cluster(DBClusterIdentifier=ident, EngineVersion=major, **kw)["DBCluster"]
    try:
        assert cluster["EngineVersion"] == installed
        err = refusal(rds.modify_db_cluster, DBClusterIdentifier=ident, EngineVersion=other)
        assert err["Message"] == f"Cannot find version {other} for aurora-postgresql"
        rds.modify_db_cluster(DBClusterIdentifier=ident, EngineVersion=installed)
    finally:
        rds.delete_db_cluster(DBClusterIdentifier=ident, SkipFinalSnapshot=True)


def test_elasticache_engine_version_other_than_the_installed_one_is_refused(
    strata_server: Any, unique: str
) -> None:
    ec = strata_server.client("elasticache")
    ident = f"ver-{unique}"[:40]
    for version in ("6.2", "5.0.6", "8.x"):
        err = refusal(ec.create_cache_cluster, CacheClusterId=ident, Engine="redis", EngineVersion=version)
        assert (err["Code"], err["Message"]) == (
            "InvalidParameterCombination",
            f"Cannot find version {version} for redis",
        )
        err = refusal(
            ec.create_replication_group,
            ReplicationGroupId=ident,
            ReplicationGroupDescription="d",
            Engine="redis",
            EngineVersion=version,
        )
        assert err["Code"] == "InvalidParameterCombination"
    assert refusal(ec.describe_cache_clusters, CacheClusterId=ident)["Code"] == "CacheClusterNotFound"


def test_nested_s3_settings_are_refused(s3: Any, unique: str, bucket: str) -> None:
    err = refusal(
        s3.put_bucket_versioning,
        Bucket=bucket,
        VersioningConfiguration={"Status": "Enabled", "MFADelete": "Enabled"},
    )
    assert err["Code"] == "NotImplemented" and "MFADelete" in err["Message"]
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    name = f"tagged-{unique}"
    err = refusal(
        s3.create_bucket, Bucket=name, CreateBucketConfiguration={"Tags": [{"Key": "k", "Value": "v"}]}
    )
    assert err["Code"] == "NotImplemented" and "Tags" in err["Message"]
    assert refusal(s3.head_bucket, Bucket=name)["Status"] == 404
