"""Egress rules: AWS's default all-traffic rule, Authorize/RevokeSecurityGroupEgress and their
errors; where Strata does not filter outbound traffic (an EFS mount target, the default VPC's
default group), egress that would restrict is refused there: a group that restricts cannot be
attached to such a resource. Enforcement on a PostgreSQL instance: test_security_groups.py, on an
ElastiCache replication group: tests/services/elasticache/test_security_groups.py."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

ALL = {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
HTTPS = {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}


def _code(e: pytest.ExceptionInfo) -> str:
    return e.value.response["Error"]["Code"]


def _egress(ec2, gid: str) -> list[tuple]:  # noqa: ANN001
    g = ec2.describe_security_groups(GroupIds=[gid])["SecurityGroups"][0]
    return sorted(
        (p["IpProtocol"], p.get("FromPort"), r["CidrIp"])
        for p in g["IpPermissionsEgress"]
        for r in p["IpRanges"]
    )


def test_egress_rules_as_aws_keeps_them(strata_server, unique) -> None:
    ec2 = strata_server.client("ec2")
    gid = ec2.create_security_group(GroupName=f"out-{unique}", Description="egress")["GroupId"]
    assert _egress(ec2, gid) == [("-1", None, "0.0.0.0/0")]  # AWS's default rule
    default_rule = [
        r
        for r in ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [gid]}])[
            "SecurityGroupRules"
        ]
        if r["IsEgress"]
    ]
    assert [(r["IpProtocol"], r["CidrIpv4"]) for r in default_rule] == [("-1", "0.0.0.0/0")]

    with pytest.raises(ClientError) as e:
        ec2.authorize_security_group_egress(GroupId=gid, IpPermissions=[ALL])
    assert _code(e) == "InvalidPermission.Duplicate"
    with pytest.raises(ClientError) as e:
        ec2.authorize_security_group_egress(GroupId=gid, IpPermissions=[HTTPS], DryRun=True)
    assert _code(e) == "DryRunOperation"
    with pytest.raises(ClientError) as e:
        ec2.authorize_security_group_egress(GroupId="sg-0123456789abcdef0", IpPermissions=[HTTPS])
    assert _code(e) == "InvalidGroup.NotFound"
    with pytest.raises(ClientError) as e:  # AWS: not supported for egress, use IpPermissions
        ec2.authorize_security_group_egress(GroupId=gid, CidrIp="10.0.0.0/8", IpProtocol="-1")
    assert _code(e) == "InvalidParameterValue"

    added = ec2.authorize_security_group_egress(GroupId=gid, IpPermissions=[HTTPS])["SecurityGroupRules"]
    assert [(r["IsEgress"], r["CidrIpv4"], r["FromPort"]) for r in added] == [(True, "10.0.0.0/8", 443)]
    assert _egress(ec2, gid) == [("-1", None, "0.0.0.0/0"), ("tcp", 443, "10.0.0.0/8")]
    found = ec2.describe_security_groups(
        Filters=[{"Name": "egress.ip-permission.cidr", "Values": ["10.0.0.0/8"]}]
    )["SecurityGroups"]
    assert [g["GroupId"] for g in found] == [gid]

    # Terraform's way on a group no resource carries: the default rule goes, the configured come
    revoked = ec2.revoke_security_group_egress(
        GroupId=gid, SecurityGroupRuleIds=[default_rule[0]["SecurityGroupRuleId"]]
    )
    assert [r["CidrIpv4"] for r in revoked["RevokedSecurityGroupRules"]] == ["0.0.0.0/0"]
    assert _egress(ec2, gid) == [("tcp", 443, "10.0.0.0/8")]
    with pytest.raises(ClientError) as e:
        ec2.revoke_security_group_egress(
            GroupId=gid, SecurityGroupRuleIds=[default_rule[0]["SecurityGroupRuleId"]]
        )
    assert _code(e) == "InvalidSecurityGroupRuleId.NotFound"
    again = ec2.revoke_security_group_egress(GroupId=gid, IpPermissions=[ALL])  # default VPC: no error
    assert again["UnknownIpPermissions"][0]["IpRanges"] == [{"CidrIp": "0.0.0.0/0"}]

    # a group that restricts outbound traffic cannot be carried: Strata would not enforce it
    efs = strata_server.client("efs")
    fs = efs.create_file_system(CreationToken=unique)["FileSystemId"]
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    with pytest.raises(ClientError) as e:
        efs.create_mount_target(FileSystemId=fs, SubnetId=subnet, SecurityGroups=[gid])
    assert _code(e) == "BadRequest" and "outbound" in e.value.response["Error"]["Message"]

    ec2.authorize_security_group_egress(GroupId=gid, IpPermissions=[ALL])
    ec2.revoke_security_group_egress(GroupId=gid, IpPermissions=[HTTPS])
    assert _egress(ec2, gid) == [("-1", None, "0.0.0.0/0")]
    mt = efs.create_mount_target(FileSystemId=fs, SubnetId=subnet, SecurityGroups=[gid])["MountTargetId"]
    with pytest.raises(ClientError) as e:  # in use now: its egress cannot be restricted
        ec2.revoke_security_group_egress(GroupId=gid, IpPermissions=[ALL])
    assert _code(e) == "InvalidParameterValue"
    ec2.authorize_security_group_egress(GroupId=gid, IpPermissions=[HTTPS])  # adds no restriction
    assert _egress(ec2, gid) == [("-1", None, "0.0.0.0/0"), ("tcp", 443, "10.0.0.0/8")]

    default = ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]["GroupId"]
    with pytest.raises(ClientError) as e:  # this machine's instances carry the default group
        ec2.revoke_security_group_egress(GroupId=default, IpPermissions=[ALL])
    assert _code(e) == "InvalidParameterValue"
    assert _egress(ec2, default) == [("-1", None, "0.0.0.0/0")]

    efs.delete_mount_target(MountTargetId=mt)
    efs.delete_file_system(FileSystemId=fs)


def test_a_group_named_in_an_egress_rule_cannot_be_deleted(strata_server, unique) -> None:
    ec2 = strata_server.client("ec2")
    src = ec2.create_security_group(GroupName=f"src-{unique}", Description="s")["GroupId"]
    dst = ec2.create_security_group(GroupName=f"dst-{unique}", Description="d")["GroupId"]
    to_dst = {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "UserIdGroupPairs": [{"GroupId": dst}]}
    out = ec2.authorize_security_group_egress(GroupId=src, IpPermissions=[to_dst])["SecurityGroupRules"]
    assert out[0]["ReferencedGroupInfo"]["GroupId"] == dst and out[0]["IsEgress"]
    with pytest.raises(ClientError) as e:
        ec2.delete_security_group(GroupId=dst)
    assert _code(e) == "DependencyViolation"
    ec2.revoke_security_group_egress(GroupId=src, IpPermissions=[to_dst])
    ec2.delete_security_group(GroupId=dst)
    ec2.delete_security_group(GroupId=src)
