"""IAM through boto3: changes take effect on the next request; keys, policies, boundaries,
simulation, account details; state survives a kill -9."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from tests.services.iam.conftest import ACCOUNT, ROOT


def doc(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


ALLOW_ALL = doc({"Effect": "Allow", "Action": "*", "Resource": "*"})


def _code(e: pytest.ExceptionInfo) -> str:
    return e.value.response["Error"]["Code"]


def make_user(server, name: str, *policy_arns: str) -> dict:
    iam = server.client("iam", **ROOT)
    iam.create_user(UserName=name)
    for arn in policy_arns:
        iam.attach_user_policy(UserName=name, PolicyArn=arn)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"access_key": key["AccessKeyId"], "secret_key": key["SecretAccessKey"]}


def test_policy_changes_take_effect_on_the_next_request(iam_server, unique):
    iam = iam_server.client("iam", **ROOT)
    user = f"u-{unique}"
    creds = make_user(iam_server, user)
    ddb = iam_server.client("dynamodb", **creds)
    with pytest.raises(ClientError) as e:
        ddb.list_tables()
    assert _code(e) == "AccessDeniedException"
    iam.attach_user_policy(UserName=user, PolicyArn="arn:aws:iam::aws:policy/AmazonDynamoDBReadOnlyAccess")
    ddb.list_tables()
    iam.put_user_policy(
        UserName=user,
        PolicyName="no-list",
        PolicyDocument=doc({"Effect": "Deny", "Action": "dynamodb:ListTables", "Resource": "*"}),
    )
    with pytest.raises(ClientError) as e:
        ddb.list_tables()
    assert "with an explicit deny in an identity-based policy" in e.value.response["Error"]["Message"]
    assert (
        iam.get_user_policy(UserName=user, PolicyName="no-list")["PolicyDocument"]["Statement"][0]["Effect"]
        == "Deny"
    )
    iam.delete_user_policy(UserName=user, PolicyName="no-list")
    ddb.list_tables()
    iam.detach_user_policy(UserName=user, PolicyArn="arn:aws:iam::aws:policy/AmazonDynamoDBReadOnlyAccess")
    with pytest.raises(ClientError):
        ddb.list_tables()


def test_group_policies_apply_to_members(iam_server, unique):
    iam = iam_server.client("iam", **ROOT)
    user, group = f"g-{unique}", f"grp-{unique}"
    creds = make_user(iam_server, user)
    iam.create_group(GroupName=group)
    iam.attach_group_policy(GroupName=group, PolicyArn="arn:aws:iam::aws:policy/IAMReadOnlyAccess")
    with pytest.raises(ClientError):
        iam_server.client("iam", **creds).list_users()
    iam.add_user_to_group(GroupName=group, UserName=user)
    assert user in [u["UserName"] for u in iam_server.client("iam", **creds).list_users()["Users"]]
    assert [g["GroupName"] for g in iam.list_groups_for_user(UserName=user)["Groups"]] == [group]
    with pytest.raises(ClientError) as e:
        iam.delete_group(GroupName=group)
    assert _code(e) == "DeleteConflict"


def test_access_keys_two_per_user_active_inactive(iam_server, unique):
    iam = iam_server.client("iam", **ROOT)
    user = f"k-{unique}"
    first = make_user(iam_server, user, "arn:aws:iam::aws:policy/IAMReadOnlyAccess")
    second = iam.create_access_key(UserName=user)["AccessKey"]
    assert second["AccessKeyId"].startswith("AKIA") and len(second["AccessKeyId"]) == 20
    assert len(second["SecretAccessKey"]) == 40
    with pytest.raises(ClientError) as e:
        iam.create_access_key(UserName=user)
    assert _code(e) == "LimitExceeded"
    assert "Cannot exceed quota for AccessKeysPerUser: 2" in e.value.response["Error"]["Message"]
    sts = iam_server.client("sts", **first)
    assert sts.get_caller_identity()["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/{user}"
    iam.update_access_key(UserName=user, AccessKeyId=first["access_key"], Status="Inactive")
    statuses = {
        k["AccessKeyId"]: k["Status"] for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
    }
    assert statuses == {first["access_key"]: "Inactive", second["AccessKeyId"]: "Active"}
    with pytest.raises(ClientError) as e:
        sts.get_caller_identity()
    assert _code(e) == "InvalidClientTokenId"
    iam.update_access_key(UserName=user, AccessKeyId=first["access_key"], Status="Active")
    sts.get_caller_identity()
    iam.delete_access_key(UserName=user, AccessKeyId=first["access_key"])
    with pytest.raises(ClientError):
        sts.get_caller_identity()
    # A user lists its own keys without naming itself.
    own = iam_server.client("iam", access_key=second["AccessKeyId"], secret_key=second["SecretAccessKey"])
    assert [k["AccessKeyId"] for k in own.list_access_keys()["AccessKeyMetadata"]] == [second["AccessKeyId"]]
    assert own.get_user()["User"]["UserName"] == user


def test_permissions_boundary_deny_wins(iam_server, unique):
    iam = iam_server.client("iam", **ROOT)
    user = f"b-{unique}"
    creds = make_user(iam_server, user, "arn:aws:iam::aws:policy/AdministratorAccess")
    boundary = iam.create_policy(
        PolicyName=f"boundary-{unique}",
        PolicyDocument=doc(
            {"Effect": "Allow", "Action": ["s3:*", "sts:*"], "Resource": "*"},
            {"Effect": "Deny", "Action": "s3:DeleteBucket", "Resource": "*"},
        ),
    )["Policy"]["Arn"]
    s3 = iam_server.client("s3", **creds)
    bucket = f"bnd-{unique}"
    s3.create_bucket(Bucket=bucket)
    iam.put_user_permissions_boundary(UserName=user, PermissionsBoundary=boundary)
    assert iam.get_user(UserName=user)["User"]["PermissionsBoundary"]["PermissionsBoundaryArn"] == boundary
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")  # allowed by both
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket=bucket)
    assert e.value.response["Error"]["Message"].endswith("with an explicit deny in a permissions boundary")
    with pytest.raises(ClientError) as e:
        iam_server.client("dynamodb", **creds).list_tables()
    assert (
        "because no permissions boundary allows the dynamodb:ListTables action"
        in e.value.response["Error"]["Message"]
    )
    iam.delete_user_permissions_boundary(UserName=user)
    iam_server.client("dynamodb", **creds).list_tables()


def test_managed_policy_versions(iam_server, unique):
    iam = iam_server.client("iam", **ROOT)
    user = f"v-{unique}"
    creds = make_user(iam_server, user)
    arn = iam.create_policy(
        PolicyName=f"p-{unique}",
        PolicyDocument=doc({"Effect": "Allow", "Action": "dynamodb:ListTables", "Resource": "*"}),
    )["Policy"]["Arn"]
    assert arn == f"arn:aws:iam::{ACCOUNT}:policy/p-{unique}"
    iam.attach_user_policy(UserName=user, PolicyArn=arn)
    ddb = iam_server.client("dynamodb", **creds)
    ddb.list_tables()
    v2 = iam.create_policy_version(
        PolicyArn=arn,
        PolicyDocument=doc({"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}),
    )["PolicyVersion"]
    assert v2["VersionId"] == "v2" and not v2["IsDefaultVersion"]
    ddb.list_tables()  # v1 is still the default
    iam.set_default_policy_version(PolicyArn=arn, VersionId="v2")
    with pytest.raises(ClientError):
        ddb.list_tables()
    assert iam.get_policy(PolicyArn=arn)["Policy"]["AttachmentCount"] == 1
    for _ in range(3, 6):
        iam.create_policy_version(PolicyArn=arn, PolicyDocument=ALLOW_ALL)
    with pytest.raises(ClientError) as e:
        iam.create_policy_version(PolicyArn=arn, PolicyDocument=ALLOW_ALL)
    assert _code(e) == "LimitExceeded"
    with pytest.raises(ClientError) as e:
        iam.delete_policy_version(PolicyArn=arn, VersionId="v2")
    assert _code(e) == "DeleteConflict"
    with pytest.raises(ClientError) as e:
        iam.delete_policy(PolicyArn=arn)
    assert _code(e) == "DeleteConflict"
    entities = iam.list_entities_for_policy(PolicyArn=arn)
    assert [u["UserName"] for u in entities["PolicyUsers"]] == [user]


def test_errors(iam_server, unique):
    iam = iam_server.client("iam", **ROOT)
    with pytest.raises(ClientError) as e:
        iam.get_user(UserName=f"nobody-{unique}")
    assert e.value.response["Error"] == {
        "Type": "Sender",
        "Code": "NoSuchEntity",
        "Message": f"The user with name nobody-{unique} cannot be found.",
    }
    iam.create_user(UserName=f"dup-{unique}")
    with pytest.raises(ClientError) as e:
        iam.create_user(UserName=f"DUP-{unique}")  # names are case-insensitive
    assert _code(e) == "EntityAlreadyExists"
    with pytest.raises(ClientError) as e:
        iam.put_user_policy(UserName=f"dup-{unique}", PolicyName="p", PolicyDocument='{"Statement": []}')
    assert _code(e) == "MalformedPolicyDocument"
    with pytest.raises(ClientError) as e:
        iam.attach_user_policy(UserName=f"dup-{unique}", PolicyArn="arn:aws:iam::aws:policy/NoSuchPolicy")
    assert _code(e) == "NoSuchEntity"
    with pytest.raises(ClientError) as e:
        iam.create_role(RoleName=f"r-{unique}", AssumeRolePolicyDocument=ALLOW_ALL)  # no Principal
    assert _code(e) == "MalformedPolicyDocument"


def test_simulation_uses_the_same_engine(iam_server, unique):
    iam = iam_server.client("iam", **ROOT)
    user = f"sim-{unique}"
    make_user(iam_server, user, "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess")
    results = iam.simulate_principal_policy(
        PolicySourceArn=f"arn:aws:iam::{ACCOUNT}:user/{user}",
        ActionNames=["s3:GetObject", "s3:PutObject"],
        ResourceArns=["arn:aws:s3:::b/k"],
    )["EvaluationResults"]
    assert [(r["EvalActionName"], r["EvalDecision"]) for r in results] == [
        ("s3:GetObject", "allowed"),
        ("s3:PutObject", "implicitDeny"),
    ]
    assert results[0]["MatchedStatements"] == [
        {"SourcePolicyId": "AmazonS3ReadOnlyAccess", "SourcePolicyType": "aws-managed"}
    ]
    assert results[1]["MatchedStatements"] == []
    custom = iam.simulate_custom_policy(
        PolicyInputList=[
            doc(
                {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
                {
                    "Effect": "Deny",
                    "Action": "s3:*",
                    "Resource": "*",
                    "Condition": {"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
                },
            )
        ],
        ActionNames=["s3:GetObject"],
        ContextEntries=[
            {"ContextKeyName": "aws:SourceIp", "ContextKeyValues": ["192.168.1.1"], "ContextKeyType": "ip"}
        ],
    )["EvaluationResults"]
    assert custom[0]["EvalDecision"] == "explicitDeny"
    assert custom[0]["MatchedStatements"] == [
        {"SourcePolicyId": "PolicyInputList.1", "SourcePolicyType": "none"}
    ]


def test_account_authorization_details(iam_server, unique):
    iam = iam_server.client("iam", **ROOT)
    details = iam.get_account_authorization_details()
    alice = next(u for u in details["UserDetailList"] if u["UserName"] == "alice")
    assert alice["AttachedManagedPolicies"][0]["PolicyName"] == "AmazonS3ReadOnlyAccess"
    names = [p["PolicyName"] for p in details["Policies"]]
    assert "AmazonS3ReadOnlyAccess" in names
    version = next(p for p in details["Policies"] if p["PolicyName"] == "AmazonS3ReadOnlyAccess")[
        "PolicyVersionList"
    ][0]
    assert version["Document"]["Statement"][0]["Effect"] == "Allow"


def test_iam_state_survives_kill(strata_factory, users_env, unique):
    server = strata_factory(extra_env=users_env)
    iam = server.client("iam", **ROOT)
    creds = make_user(server, "survivor", "arn:aws:iam::aws:policy/IAMReadOnlyAccess")
    iam.create_role(
        RoleName="r1",
        AssumeRolePolicyDocument=doc(
            {"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"}
        ),
    )
    server.kill()
    server.start()
    iam = server.client("iam", **ROOT)
    assert iam.get_role(RoleName="r1")["Role"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "AWS": ACCOUNT
    }
    assert "survivor" in [u["UserName"] for u in server.client("iam", **creds).list_users()["Users"]]


def test_resources_of_iam_actions_carry_paths(iam_server, unique):
    iam = iam_server.client("iam", **ROOT)
    manager = f"mgr-{unique}"
    creds = make_user(iam_server, manager)
    iam.put_user_policy(
        UserName=manager,
        PolicyName="team-only",
        PolicyDocument=doc(
            {
                "Effect": "Allow",
                "Action": ["iam:CreateUser", "iam:TagUser"],
                "Resource": f"arn:aws:iam::{ACCOUNT}:user/team-{unique}/*",
            }
        ),
    )
    mine = iam_server.client("iam", **creds)
    mine.create_user(UserName=f"in-{unique}", Path=f"/team-{unique}/")
    mine.tag_user(UserName=f"in-{unique}", Tags=[{"Key": "k", "Value": "v"}])
    with pytest.raises(ClientError) as e:
        mine.create_user(UserName=f"out-{unique}")
    assert f"on resource: arn:aws:iam::{ACCOUNT}:user/out-{unique}" in e.value.response["Error"]["Message"]
    iam.create_user(UserName=f"other-{unique}")
    with pytest.raises(ClientError):
        mine.tag_user(UserName=f"other-{unique}", Tags=[{"Key": "k", "Value": "v"}])


def test_policy_usage_filters_and_simulation_exclusions(iam_server, unique):
    iam = iam_server.client("iam", **ROOT)
    arn = iam.create_policy(
        PolicyName=f"use-{unique}", PolicyDocument=doc({"Effect": "Allow", "Action": "s3:*", "Resource": "*"})
    )["Policy"]["Arn"]
    attached, bounded = f"att-{unique}", f"bnd-{unique}"
    iam.create_user(UserName=attached)
    iam.attach_user_policy(UserName=attached, PolicyArn=arn)
    iam.create_user(UserName=bounded, PermissionsBoundary=arn)

    def users(**kw):
        return [u["UserName"] for u in iam.list_entities_for_policy(PolicyArn=arn, **kw)["PolicyUsers"]]

    assert sorted(users()) == sorted([attached, bounded])
    assert users(PolicyUsageFilter="PermissionsPolicy") == [attached]
    assert users(PolicyUsageFilter="PermissionsBoundary") == [bounded]
    assert iam.list_entities_for_policy(PolicyArn=arn, EntityFilter="Role")["PolicyUsers"] == []
    source = f"arn:aws:iam::{ACCOUNT}:user/{attached}"
    kept = iam.simulate_principal_policy(PolicySourceArn=source, ActionNames=["s3:GetObject"])[
        "EvaluationResults"
    ]
    assert kept[0]["EvalDecision"] == "allowed"
    dropped = iam.simulate_principal_policy(
        PolicySourceArn=source,
        ActionNames=["s3:GetObject"],
        PolicyExclusionList=[{"PolicyArn": arn}],
    )["EvaluationResults"]
    assert dropped[0]["EvalDecision"] == "implicitDeny"
