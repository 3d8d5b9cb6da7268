"""The AWS-managed policies Strata ships as data: present, valid, and meaning what their names say."""

from __future__ import annotations

import pytest

from strata.auth.directory import AWS_POLICIES
from strata.auth.evaluator import Facts, PolicySet, evaluate
from strata.auth.policy import compile_policy
from strata.auth.principal import Principal

NAMES = [
    "AdministratorAccess",
    "PowerUserAccess",
    "ReadOnlyAccess",
    "AmazonS3FullAccess",
    "AmazonS3ReadOnlyAccess",
    "AmazonDynamoDBFullAccess",
    "AmazonDynamoDBReadOnlyAccess",
    "AmazonRDSFullAccess",
    "AmazonRDSReadOnlyAccess",
    "AmazonElastiCacheFullAccess",
    "AmazonElastiCacheReadOnlyAccess",
    "IAMFullAccess",
    "IAMReadOnlyAccess",
    "AmazonEC2FullAccess",
    "AmazonElasticFileSystemFullAccess",
]
USER = Principal("K", "123456789012", "arn:aws:iam::123456789012:user/u", "AIDAU", "user", "u", "", False)


SERVICE_LINKED = [
    "AmazonRDSServiceRolePolicy",
    "ElastiCacheServiceRolePolicy",
    "DynamoDBReplicationServiceRolePolicy",
    "AmazonElasticFileSystemServiceRolePolicy",
    "AutoScalingServiceRolePolicy",
    "AWSEC2SpotServiceRolePolicy",
    "AWSEC2FleetServiceRolePolicy",
    "AmazonElasticsearchServiceRolePolicy",
    "AmazonOpenSearchServiceRolePolicy",
    "AWSElasticLoadBalancingServiceRolePolicy",
    "DAXServiceRolePolicy",
    "AmazonECSServiceRolePolicy",
    "AmazonEKSServiceRolePolicy",
    "AWSApplicationAutoscalingDynamoDBTablePolicy",
]


def _doc(policy: dict) -> str:
    return policy["versions"][policy["default"]]["doc"]


def allowed(name: str, action: str) -> bool:
    doc = _doc(AWS_POLICIES[f"arn:aws:iam::aws:policy/{name}"])
    facts = Facts(USER, "us-east-1", "", False, lambda: 0.0)
    return evaluate(USER, action, "*", facts, PolicySet(identity=(compile_policy(doc),))).allowed


@pytest.mark.parametrize("name", NAMES)
def test_present_and_valid(name):
    policy = AWS_POLICIES[f"arn:aws:iam::aws:policy/{name}"]
    assert policy["PolicyId"].startswith("ANPA") and len(policy["PolicyId"]) == 21
    compile_policy(_doc(policy))


@pytest.mark.parametrize("name", SERVICE_LINKED)
def test_service_linked_role_policies_present_and_valid(name):
    """Each service-linked role's policy sits under /aws-service-role/ at AWS's current version."""
    revised = name not in ("DAXServiceRolePolicy", "AWSApplicationAutoscalingDynamoDBTablePolicy")
    policy = AWS_POLICIES[f"arn:aws:iam::aws:policy/aws-service-role/{name}"]
    assert policy["Path"] == "/aws-service-role/" and policy["Description"]
    assert policy["PolicyId"].startswith("ANPA") and len(policy["PolicyId"]) == 21
    assert (policy["default"] != "v1") is revised
    compile_policy(_doc(policy))


@pytest.mark.parametrize(
    ("name", "action", "expected"),
    [
        ("AdministratorAccess", "iam:CreateUser", True),
        ("PowerUserAccess", "s3:PutObject", True),
        ("PowerUserAccess", "iam:CreateUser", False),
        ("ReadOnlyAccess", "dynamodb:GetItem", True),
        ("ReadOnlyAccess", "dynamodb:PutItem", False),
        ("AmazonS3ReadOnlyAccess", "s3:GetObject", True),
        ("AmazonS3ReadOnlyAccess", "s3:PutObject", False),
        ("AmazonDynamoDBReadOnlyAccess", "dynamodb:Query", True),
        ("AmazonDynamoDBReadOnlyAccess", "dynamodb:DeleteTable", False),
        ("AmazonRDSReadOnlyAccess", "rds:DescribeDBInstances", True),
        ("AmazonRDSReadOnlyAccess", "rds:DeleteDBInstance", False),
        ("AmazonElastiCacheReadOnlyAccess", "elasticache:CreateCacheCluster", False),
        ("IAMReadOnlyAccess", "iam:ListUsers", True),
        ("IAMReadOnlyAccess", "iam:DeleteUser", False),
    ],
)
def test_meaning(name, action, expected):
    assert allowed(name, action) is expected


def test_every_named_service_linked_role_policy_is_shipped():
    """A policy named in service_linked_roles.json that the catalogue lacks would leave its role bare."""
    from strata.services.iam.service_roles import SERVICES, service_policy_arn

    named = [service for service, known in SERVICES.items() if "policy" in known]
    assert len(named) == len(SERVICE_LINKED)
    assert all(service_policy_arn(service) for service in named)
