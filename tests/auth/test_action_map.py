"""Operation -> (IAM action, resource ARN), from the table and the botocore models."""

from __future__ import annotations

import pytest
from botocore import xform_name  # noqa: F401 - the models' operation names are the input

from strata.auth.actions import ParamKeys, plan, targets
from strata.protocol.spec import service_model
from strata.services.registry import SERVICES

R, A = "us-east-1", "123456789012"


def t(service, op, params, caller=""):
    return targets(plan(service, op), params, R, A, caller)


def test_s3():
    assert t("s3", "GetObject", {"Bucket": "b", "Key": "k/x"}) == [("s3:GetObject", "arn:aws:s3:::b/k/x")]
    assert t("s3", "GetObject", {"Bucket": "b", "Key": "k", "VersionId": "v"}) == [
        ("s3:GetObjectVersion", "arn:aws:s3:::b/k")
    ]
    assert t("s3", "HeadObject", {"Bucket": "b", "Key": "k"}) == [("s3:GetObject", "arn:aws:s3:::b/k")]
    assert t("s3", "ListObjectsV2", {"Bucket": "b"}) == [("s3:ListBucket", "arn:aws:s3:::b")]
    assert t("s3", "ListBuckets", {}) == [("s3:ListAllMyBuckets", "*")]
    assert t("s3", "UploadPart", {"Bucket": "b", "Key": "k"}) == [("s3:PutObject", "arn:aws:s3:::b/k")]
    assert t("s3", "CopyObject", {"Bucket": "b", "Key": "k", "CopySource": "/src/a%20b?versionId=1"}) == [
        ("s3:PutObject", "arn:aws:s3:::b/k"),
        ("s3:GetObject", "arn:aws:s3:::src/a b"),
    ]
    assert t("s3", "DeleteObjects", {"Bucket": "b", "Delete": {"Objects": [{"Key": "x"}, {"Key": "y"}]}}) == [
        ("s3:DeleteObject", "arn:aws:s3:::b/x"),
        ("s3:DeleteObject", "arn:aws:s3:::b/y"),
    ]


def test_dynamodb():
    table = f"arn:aws:dynamodb:{R}:{A}:table/T"
    assert t("dynamodb", "GetItem", {"TableName": "T"}) == [("dynamodb:GetItem", table)]
    assert t("dynamodb", "Query", {"TableName": "T", "IndexName": "I"}) == [
        ("dynamodb:Query", table + "/index/I")
    ]
    assert t("dynamodb", "ListTables", {}) == [("dynamodb:ListTables", "*")]
    assert t("dynamodb", "BatchGetItem", {"RequestItems": {"T": {}, "U": {}}}) == [
        ("dynamodb:BatchGetItem", table),
        ("dynamodb:BatchGetItem", table[:-1] + "U"),
    ]
    assert t(
        "dynamodb",
        "TransactWriteItems",
        {"TransactItems": [{"Put": {"TableName": "T"}}, {"ConditionCheck": {"TableName": "T"}}]},
    ) == [("dynamodb:PutItem", table), ("dynamodb:ConditionCheckItem", table)]
    assert t("dynamodb", "GetItem", {"TableName": table}) == [("dynamodb:GetItem", table)]


def test_rds_elasticache_iam_sts():
    assert t("rds", "DeleteDBInstance", {"DBInstanceIdentifier": "db1"}) == [
        ("rds:DeleteDBInstance", f"arn:aws:rds:{R}:{A}:db:db1")
    ]
    assert t("rds", "CreateDBInstance", {"DBInstanceIdentifier": "db1", "DBSubnetGroupName": "g"})[0][
        1
    ].endswith(":db:db1")
    assert t("elasticache", "CreateReplicationGroup", {"ReplicationGroupId": "g"}) == [
        ("elasticache:CreateReplicationGroup", f"arn:aws:elasticache:{R}:{A}:replicationgroup:g")
    ]
    assert t("iam", "AttachUserPolicy", {"UserName": "u", "PolicyArn": "arn:aws:iam::aws:policy/X"}) == [
        ("iam:AttachUserPolicy", f"arn:aws:iam::{A}:user/u")
    ]
    me = f"arn:aws:iam::{A}:user/me"
    assert t("iam", "GetUser", {}, me) == [("iam:GetUser", me)]
    assert t("iam", "ListUsers", {}, me) == [("iam:ListUsers", "*")]
    assert t("sts", "AssumeRole", {"RoleArn": "arn:aws:iam::1:role/r"}) == [
        ("sts:AssumeRole", "arn:aws:iam::1:role/r")
    ]
    assert plan("sts", "GetCallerIdentity").always_allowed


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_operation_maps(service):
    for op in service_model(service).operation_names:
        pairs = t(service, op, {})
        assert pairs and all(a.count(":") == 1 for a, _ in pairs)


def test_condition_keys_from_params():
    keys = ParamKeys(
        {"Prefix": "home/", "MaxKeys": 5, "Tags": [{"Key": "env", "Value": "prod"}]},
        plan("s3", "ListObjectsV2").keys,
    )
    assert keys.get("s3:prefix") == "home/"
    assert keys.get("s3:max-keys") == "5"
    assert keys.get("aws:tagkeys") == ["env"]
    assert keys.get("aws:requesttag/env") == "prod"
    assert keys.get("s3:delimiter") is None


def test_kms_key_policies_are_required_and_s3_bucket_policies_are_not():
    assert plan("kms", "Decrypt").resource_required
    assert not plan("s3", "GetObject").resource_required
    assert plan("s3", "CreateBucket").creates
