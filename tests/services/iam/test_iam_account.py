"""IAM's account password policy, instance profiles and tags on customer managed policies, through
boto3 as AWS answers them."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.services.iam.conftest import ACCOUNT, ALT_ROOT, ROOT
from tests.services.iam.test_iam import ALLOW_ALL, doc

TRUST_EC2 = doc(
    {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
)


def _error(e: pytest.ExceptionInfo) -> tuple[str, str]:
    return e.value.response["Error"]["Code"], e.value.response["Error"]["Message"]


def test_account_password_policy(iam_server) -> None:
    iam = iam_server.client("iam", **ALT_ROOT)  # an account of its own: the policy is account-wide
    with pytest.raises(ClientError) as e:
        iam.get_account_password_policy()
    assert _error(e) == ("NoSuchEntity", "The Password Policy with domain name 222222222222 cannot be found.")
    iam.update_account_password_policy(MinimumPasswordLength=12, RequireSymbols=True, MaxPasswordAge=90)
    policy = iam.get_account_password_policy()["PasswordPolicy"]
    assert policy["MinimumPasswordLength"] == 12 and policy["RequireSymbols"] is True
    assert policy["MaxPasswordAge"] == 90 and policy["ExpirePasswords"] is True
    assert policy["RequireNumbers"] is False
    # An update replaces the whole policy: what it leaves out takes the defaults.
    iam.update_account_password_policy(RequireNumbers=True)
    policy = iam.get_account_password_policy()["PasswordPolicy"]
    assert policy["MinimumPasswordLength"] == 6 and policy["RequireSymbols"] is False
    assert policy["RequireNumbers"] is True and policy["ExpirePasswords"] is False
    assert "MaxPasswordAge" not in policy
    with pytest.raises(ClientError) as e:
        iam.update_account_password_policy(MinimumPasswordLength=200)
    assert _error(e)[0] == "ValidationError"
    # Per account: the main account has none.
    with pytest.raises(ClientError):
        iam_server.client("iam", **ROOT).get_account_password_policy()
    iam.delete_account_password_policy()
    with pytest.raises(ClientError) as e:
        iam.delete_account_password_policy()
    assert _error(e)[0] == "NoSuchEntity"


def test_instance_profiles(iam_server, unique) -> None:
    iam = iam_server.client("iam", **ROOT)
    name, role = f"ip-{unique}", f"ip-role-{unique}"
    made = iam.create_instance_profile(InstanceProfileName=name, Path="/apps/")["InstanceProfile"]
    assert made["Arn"] == f"arn:aws:iam::{ACCOUNT}:instance-profile/apps/{name}"
    assert made["InstanceProfileId"].startswith("AIPA") and made["Roles"] == []
    with pytest.raises(ClientError) as e:
        iam.create_instance_profile(InstanceProfileName=name)
    assert _error(e) == ("EntityAlreadyExists", f"Instance Profile {name} already exists.")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=TRUST_EC2)
    iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=role)
    got = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
    assert [r["RoleName"] for r in got["Roles"]] == [role]
    with pytest.raises(ClientError) as e:  # one role per instance profile
        iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=role)
    assert _error(e)[0] == "LimitExceeded"
    details = iam.get_account_authorization_details(Filter=["Role"])["RoleDetailList"]
    mine = next(r for r in details if r["RoleName"] == role)
    assert [p["InstanceProfileName"] for p in mine["InstanceProfileList"]] == [name]
    summary = iam.get_account_summary()["SummaryMap"]
    assert summary["InstanceProfiles"] >= 1 and summary["InstanceProfilesQuota"] == 1000
    listed = iam.list_instance_profiles_for_role(RoleName=role)["InstanceProfiles"]
    assert [p["InstanceProfileName"] for p in listed] == [name]
    assert name in [
        p["InstanceProfileName"] for p in iam.list_instance_profiles(PathPrefix="/apps/")["InstanceProfiles"]
    ]
    assert name not in [
        p["InstanceProfileName"] for p in iam.list_instance_profiles(PathPrefix="/other/")["InstanceProfiles"]
    ]
    for call in (
        lambda: iam.delete_role(RoleName=role),
        lambda: iam.delete_instance_profile(InstanceProfileName=name),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert _error(e)[0] == "DeleteConflict"
    iam.remove_role_from_instance_profile(InstanceProfileName=name, RoleName=role)
    with pytest.raises(ClientError) as e:
        iam.remove_role_from_instance_profile(InstanceProfileName=name, RoleName=role)
    assert _error(e)[0] == "NoSuchEntity"
    iam.delete_role(RoleName=role)
    iam.delete_instance_profile(InstanceProfileName=name)
    with pytest.raises(ClientError) as e:
        iam.get_instance_profile(InstanceProfileName=name)
    assert _error(e) == ("NoSuchEntity", f"Instance Profile {name} cannot be found.")


def test_tags_on_customer_managed_policies(iam_server, unique) -> None:
    iam = iam_server.client("iam", **ROOT)
    arn = iam.create_policy(PolicyName=f"tp-{unique}", PolicyDocument=ALLOW_ALL)["Policy"]["Arn"]
    iam.tag_policy(PolicyArn=arn, Tags=[{"Key": "team", "Value": "a"}, {"Key": "env", "Value": "dev"}])
    iam.tag_policy(PolicyArn=arn, Tags=[{"Key": "team", "Value": "b"}])
    tags = {t["Key"]: t["Value"] for t in iam.list_policy_tags(PolicyArn=arn)["Tags"]}
    assert tags == {"team": "b", "env": "dev"}
    assert {t["Key"] for t in iam.get_policy(PolicyArn=arn)["Policy"]["Tags"]} == {"team", "env"}
    iam.untag_policy(PolicyArn=arn, TagKeys=["env"])
    assert iam.list_policy_tags(PolicyArn=arn)["Tags"] == [{"Key": "team", "Value": "b"}]
    with pytest.raises(ClientError) as e:
        iam.tag_policy(PolicyArn=arn, Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(50)])
    assert _error(e)[0] == "LimitExceeded"
    with pytest.raises(ClientError) as e:
        iam.list_policy_tags(PolicyArn=f"arn:aws:iam::{ACCOUNT}:policy/none-{unique}")
    assert _error(e)[0] == "NoSuchEntity"


def test_service_linked_roles(iam_server) -> None:
    iam = iam_server.client("iam", **ALT_ROOT)
    role = iam.create_service_linked_role(AWSServiceName="elasticache.amazonaws.com", Description="ec")[
        "Role"
    ]
    assert role["RoleName"] == "AWSServiceRoleForElastiCache"
    assert role["Path"] == "/aws-service-role/elasticache.amazonaws.com/"
    assert role["Arn"] == (
        "arn:aws:iam::222222222222:role/aws-service-role/elasticache.amazonaws.com/AWSServiceRoleForElastiCache"
    )
    trust = role["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Principal"] == {"Service": ["elasticache.amazonaws.com"]}
    with pytest.raises(ClientError) as e:
        iam.create_service_linked_role(AWSServiceName="elasticache.amazonaws.com")
    assert _error(e) == (
        "InvalidInput",
        "Service role name AWSServiceRoleForElastiCache has been taken in this account, "
        "please try a different suffix.",
    )
    with pytest.raises(ClientError) as e:
        iam.create_service_linked_role(AWSServiceName="rds.amazonaws.com", CustomSuffix="x")
    assert _error(e) == ("InvalidInput", "Custom suffix is not allowed for rds.amazonaws.com")
    suffixed = iam.create_service_linked_role(AWSServiceName="autoscaling.amazonaws.com", CustomSuffix="web")
    assert suffixed["Role"]["RoleName"] == "AWSServiceRoleForAutoScaling_web"
    # Only AWS changes a service-linked role: DeleteRole refuses, DeleteServiceLinkedRole works.
    with pytest.raises(ClientError) as e:
        iam.delete_role(RoleName="AWSServiceRoleForElastiCache")
    assert _error(e)[0] == "UnmodifiableEntity"
    task = iam.delete_service_linked_role(RoleName="AWSServiceRoleForElastiCache")["DeletionTaskId"]
    assert task.startswith("task/aws-service-role/elasticache.amazonaws.com/AWSServiceRoleForElastiCache/")
    assert iam.get_service_linked_role_deletion_status(DeletionTaskId=task)["Status"] == "SUCCEEDED"
    with pytest.raises(ClientError) as e:
        iam.get_role(RoleName="AWSServiceRoleForElastiCache")
    assert _error(e)[0] == "NoSuchEntity"
    iam.delete_service_linked_role(RoleName="AWSServiceRoleForAutoScaling_web")


def test_service_linked_role_policy(iam_server, unique) -> None:
    """AWS attaches the service's managed policy to its service-linked role; only AWS may detach it."""
    iam = iam_server.client("iam", **ALT_ROOT)
    arn = "arn:aws:iam::aws:policy/aws-service-role/AmazonRDSServiceRolePolicy"
    iam.create_service_linked_role(AWSServiceName="rds.amazonaws.com")
    attached = iam.list_attached_role_policies(RoleName="AWSServiceRoleForRDS")["AttachedPolicies"]
    assert attached == [{"PolicyName": "AmazonRDSServiceRolePolicy", "PolicyArn": arn}]
    policy = iam.get_policy(PolicyArn=arn)["Policy"]
    assert policy["Path"] == "/aws-service-role/" and policy["AttachmentCount"] == 1
    assert policy["DefaultVersionId"] == "v13"
    version = iam.get_policy_version(PolicyArn=arn, VersionId="v13")["PolicyVersion"]
    sids = {s.get("Sid") for s in version["Document"]["Statement"]}
    assert {"CrossRegionCommunication", "Ec2", "CloudWatch"} <= sids
    roles = iam.list_entities_for_policy(PolicyArn=arn)["PolicyRoles"]
    assert [r["RoleName"] for r in roles] == ["AWSServiceRoleForRDS"]
    protected = (
        "UnmodifiableEntity",
        "Cannot perform the operation on the protected role 'AWSServiceRoleForRDS' - "
        "this role is only modifiable by AWS",
    )
    with pytest.raises(ClientError) as e:
        iam.detach_role_policy(RoleName="AWSServiceRoleForRDS", PolicyArn=arn)
    assert _error(e) == protected
    with pytest.raises(ClientError) as e:
        iam.attach_role_policy(
            RoleName="AWSServiceRoleForRDS", PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess"
        )
    assert _error(e) == protected
    # The policy is for its service-linked role alone.
    iam.create_role(RoleName=f"slrp-{unique}", AssumeRolePolicyDocument=TRUST_EC2)
    with pytest.raises(ClientError) as e:
        iam.attach_role_policy(RoleName=f"slrp-{unique}", PolicyArn=arn)
    assert _error(e) == ("PolicyNotAttachable", "Cannot attach a Service Role Policy to a Customer Role.")
    iam.delete_role(RoleName=f"slrp-{unique}")
    assert iam.list_attached_role_policies(RoleName="AWSServiceRoleForRDS")["AttachedPolicies"] == attached
    iam.delete_service_linked_role(RoleName="AWSServiceRoleForRDS")
    assert iam.get_policy(PolicyArn=arn)["Policy"]["AttachmentCount"] == 0


def test_first_file_system_creates_the_service_linked_role(iam_server, unique) -> None:
    """As on AWS, a service's first use creates its service-linked role, policy attached."""
    iam = iam_server.client("iam", **ALT_ROOT)
    efs = iam_server.client("efs", **ALT_ROOT)
    name = "AWSServiceRoleForAmazonElasticFileSystem"
    with pytest.raises(ClientError) as e:
        iam.get_role(RoleName=name)
    assert _error(e)[0] == "NoSuchEntity"
    fs = efs.create_file_system(CreationToken=f"slr-{unique}")["FileSystemId"]
    role = iam.get_role(RoleName=name)["Role"]
    assert role["Path"] == "/aws-service-role/elasticfilesystem.amazonaws.com/"
    assert iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"] == [
        {
            "PolicyName": "AmazonElasticFileSystemServiceRolePolicy",
            "PolicyArn": "arn:aws:iam::aws:policy/aws-service-role/AmazonElasticFileSystemServiceRolePolicy",
        }
    ]
    # Later file systems use the role already there.
    second = efs.create_file_system(CreationToken=f"slr2-{unique}")["FileSystemId"]
    assert iam.get_role(RoleName=name)["Role"]["RoleId"] == role["RoleId"]
    for fs_id in (fs, second):
        efs.delete_file_system(FileSystemId=fs_id)
    iam.delete_service_linked_role(RoleName=name)


def test_replica_and_scalable_target_create_their_service_linked_roles(iam_server, unique) -> None:
    """DynamoDB's first replica and Application Auto Scaling's first DynamoDB target create their
    service-linked roles, as on AWS."""
    iam = iam_server.client("iam", **ALT_ROOT)
    ddb = iam_server.client("dynamodb", **ALT_ROOT)
    key = {
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
    }
    replication = "AWSServiceRoleForDynamoDBReplication"
    scaling = "AWSServiceRoleForApplicationAutoScaling_DynamoDBTable"
    for name in (replication, scaling):
        with pytest.raises(ClientError) as e:
            iam.get_role(RoleName=name)
        assert _error(e)[0] == "NoSuchEntity"
    ddb.create_table(
        TableName=f"gt-{unique}",
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        **key,
    )
    ddb.update_table(TableName=f"gt-{unique}", ReplicaUpdates=[{"Create": {"RegionName": "us-west-2"}}])
    attached = iam.list_attached_role_policies(RoleName=replication)["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == ["DynamoDBReplicationServiceRolePolicy"]
    ddb.create_table(
        TableName=f"as-{unique}",
        ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
        **key,
    )
    aas = iam_server.client("application-autoscaling", **ALT_ROOT)
    aas.register_scalable_target(
        ServiceNamespace="dynamodb",
        ResourceId=f"table/as-{unique}",
        ScalableDimension="dynamodb:table:ReadCapacityUnits",
        MinCapacity=1,
        MaxCapacity=10,
    )
    role = iam.get_role(RoleName=scaling)["Role"]
    target = aas.describe_scalable_targets(ServiceNamespace="dynamodb")["ScalableTargets"][0]
    assert target["RoleARN"] == role["Arn"]
    attached = iam.list_attached_role_policies(RoleName=scaling)["AttachedPolicies"]
    assert attached == [
        {
            "PolicyName": "AWSApplicationAutoscalingDynamoDBTablePolicy",
            "PolicyArn": "arn:aws:iam::aws:policy/aws-service-role/AWSApplicationAutoscalingDynamoDBTablePolicy",
        }
    ]


def test_list_policies_granting_service_access(iam_server, unique) -> None:
    iam = iam_server.client("iam", **ROOT)
    user, group = f"lp-{unique}", f"lpg-{unique}"
    iam.create_user(UserName=user)
    iam.create_group(GroupName=group)
    iam.add_user_to_group(GroupName=group, UserName=user)
    iam.put_user_policy(
        UserName=user,
        PolicyName="ddb",
        PolicyDocument=doc({"Effect": "Allow", "Action": "dynamodb:Get*", "Resource": "*"}),
    )
    iam.put_user_policy(
        UserName=user,
        PolicyName="deny-s3",
        PolicyDocument=doc({"Effect": "Deny", "Action": "s3:*", "Resource": "*"}),
    )
    iam.attach_group_policy(GroupName=group, PolicyArn="arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess")
    got = iam.list_policies_granting_service_access(
        Arn=f"arn:aws:iam::{ACCOUNT}:user/{user}", ServiceNamespaces=["dynamodb", "s3", "kms"]
    )["PoliciesGrantingServiceAccess"]
    by_ns = {entry["ServiceNamespace"]: entry["Policies"] for entry in got}
    assert by_ns["dynamodb"] == [
        {"PolicyName": "ddb", "PolicyType": "INLINE", "EntityType": "USER", "EntityName": user}
    ]
    assert by_ns["s3"] == [
        {
            "PolicyName": "AmazonS3ReadOnlyAccess",
            "PolicyType": "MANAGED",
            "PolicyArn": "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess",
        }
    ]
    assert by_ns["kms"] == []
    # A group's answer has only the group's own policies.
    got = iam.list_policies_granting_service_access(
        Arn=f"arn:aws:iam::{ACCOUNT}:group/{group}", ServiceNamespaces=["dynamodb"]
    )["PoliciesGrantingServiceAccess"]
    assert got == [{"ServiceNamespace": "dynamodb", "Policies": []}]
    with pytest.raises(ClientError) as e:
        iam.list_policies_granting_service_access(
            Arn=f"arn:aws:iam::{ACCOUNT}:role/none-{unique}", ServiceNamespaces=["s3"]
        )
    assert _error(e)[0] == "NoSuchEntity"


def test_instance_profile_tags(iam_server, unique) -> None:
    iam = iam_server.client("iam", **ROOT)
    name = f"tagged-ip-{unique}"
    iam.create_instance_profile(InstanceProfileName=name, Tags=[{"Key": "team", "Value": "a"}])
    iam.tag_instance_profile(
        InstanceProfileName=name, Tags=[{"Key": "env", "Value": "dev"}, {"Key": "team", "Value": "b"}]
    )
    tags = iam.list_instance_profile_tags(InstanceProfileName=name)["Tags"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("env", "dev"), ("team", "b")]
    iam.untag_instance_profile(InstanceProfileName=name, TagKeys=["team"])
    assert iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]["Tags"] == [
        {"Key": "env", "Value": "dev"}
    ]
    with pytest.raises(ClientError) as e:
        iam.tag_instance_profile(InstanceProfileName=f"nope-{unique}", Tags=[{"Key": "k", "Value": "v"}])
    assert _error(e)[0] == "NoSuchEntity"
    with pytest.raises(ClientError) as e:
        iam.tag_instance_profile(
            InstanceProfileName=name, Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(50)]
        )
    assert _error(e)[0] == "LimitExceeded"
    iam.delete_instance_profile(InstanceProfileName=name)


def test_account_alias_is_one_per_account_and_unique(iam_server, unique) -> None:
    iam, alt = iam_server.client("iam", **ROOT), iam_server.client("iam", **ALT_ROOT)
    alias = f"corp-{unique}".lower()[:40]
    assert iam.list_account_aliases()["AccountAliases"] == []
    iam.create_account_alias(AccountAlias=alias)
    assert iam.list_account_aliases()["AccountAliases"] == [alias]
    with pytest.raises(ClientError) as e:  # aliases are unique across accounts
        alt.create_account_alias(AccountAlias=alias)
    assert _error(e)[0] == "EntityAlreadyExists"
    iam.create_account_alias(AccountAlias=alias + "-2")  # a new one replaces the old
    assert iam.list_account_aliases()["AccountAliases"] == [alias + "-2"]
    alt.create_account_alias(AccountAlias=alias)
    for bad in ("Upper", "a--b", "-ab"):
        with pytest.raises(ClientError) as e:
            iam.create_account_alias(AccountAlias=bad)
        assert _error(e)[0] == "ValidationError"
    with pytest.raises(ClientError) as e:
        iam.delete_account_alias(AccountAlias=alias)
    assert _error(e)[0] == "NoSuchEntity"
    iam.delete_account_alias(AccountAlias=alias + "-2")
    alt.delete_account_alias(AccountAlias=alias)
    assert iam.list_account_aliases()["AccountAliases"] == []


def test_update_role_description(iam_server, unique) -> None:
    iam = iam_server.client("iam", **ROOT)
    role = f"described-{unique}"
    iam.create_role(
        RoleName=role,
        AssumeRolePolicyDocument=doc(
            {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ),
    )
    got = iam.update_role_description(RoleName=role, Description="runs the batch jobs")["Role"]
    assert got["Description"] == "runs the batch jobs"
    assert iam.get_role(RoleName=role)["Role"]["Description"] == "runs the batch jobs"
    iam.delete_role(RoleName=role)
