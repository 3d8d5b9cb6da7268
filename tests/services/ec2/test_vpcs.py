"""VPCs and subnets beside the default ones: Create/Describe/DeleteVpc and Create/Describe/
DeleteSubnet with AWS's errors, filters and tags, each VPC's own default security group, and
records that survive a restart. One private server for the module (the VPC quota is per region)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.strata_process import StrataProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrataProcess]:
    s = StrataProcess(Path(tmp_path_factory.mktemp("vpcs")) / "data").start()
    yield s
    s.stop()


def _code(fn, **kw) -> str:  # noqa: ANN001
    with pytest.raises(ClientError) as e:
        fn(**kw)
    return e.value.response["Error"]["Code"]


def _tags(**kv: str) -> list[dict]:
    return [{"Key": k, "Value": v} for k, v in kv.items()]


def test_vpcs_and_subnets(server: StrataProcess) -> None:
    ec2 = server.client("ec2")
    default = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]
    assert default["CidrBlock"] == "172.31.0.0/16"

    assert _code(ec2.create_vpc, CidrBlock="10.0.0.0/8") == "InvalidVpc.Range"  # /16 is the largest
    assert _code(ec2.create_vpc, CidrBlock="10.0.0.0/29") == "InvalidVpc.Range"
    assert _code(ec2.create_vpc, CidrBlock="10.0.1.0/16") == "InvalidParameterValue"  # host bits
    assert _code(ec2.create_vpc, CidrBlock="10.0.0/16") == "InvalidParameterValue"
    assert _code(ec2.create_vpc, CidrBlock="10.0.0.0/16", InstanceTenancy="dedicated") == (
        "InvalidParameterValue"
    )
    assert _code(ec2.create_vpc, CidrBlock="10.0.0.0/16", DryRun=True) == "DryRunOperation"
    vpc = ec2.create_vpc(
        CidrBlock="10.0.0.0/16", TagSpecifications=[{"ResourceType": "vpc", "Tags": _tags(Name="lab")}]
    )["Vpc"]
    vid = vpc["VpcId"]
    assert (vpc["CidrBlock"], vpc["IsDefault"], vpc["State"]) == ("10.0.0.0/16", False, "available")
    found = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["lab"]}])["Vpcs"]
    assert [v["VpcId"] for v in found] == [vid]
    assert [
        v["VpcId"] for v in ec2.describe_vpcs(Filters=[{"Name": "cidr", "Values": ["10.0.*"]}])["Vpcs"]
    ] == [vid]
    assert _code(ec2.describe_vpcs, VpcIds=["vpc-0123456789abcdef0"]) == "InvalidVpcID.NotFound"
    assert _code(ec2.describe_vpcs, Filters=[{"Name": "colour", "Values": ["x"]}]) == "InvalidParameterValue"

    # the VPC's own default security group, and groups named per VPC
    groups = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vid]}])["SecurityGroups"]
    assert [g["GroupName"] for g in groups] == ["default"]
    own_default = groups[0]["GroupId"]
    assert groups[0]["IpPermissions"][0]["UserIdGroupPairs"][0]["GroupId"] == own_default
    by_name = ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"]
    assert [g["VpcId"] for g in by_name] == [default["VpcId"]]  # names name the default VPC's groups
    web = ec2.create_security_group(GroupName="web", Description="w", VpcId=vid)["GroupId"]
    ec2.create_security_group(GroupName="web", Description="w")  # same name, other VPC: allowed
    assert _code(ec2.create_security_group, GroupName="web", Description="w", VpcId=vid) == (
        "InvalidGroup.Duplicate"
    )
    assert _code(
        ec2.create_security_group, GroupName="x", Description="x", VpcId="vpc-0123456789abcdef0"
    ) == ("InvalidVpcID.NotFound")
    other_vpcs_default = by_name[0]["GroupId"]
    assert (
        _code(  # a rule references groups of its own VPC only
            ec2.authorize_security_group_ingress,
            GroupId=web,
            IpPermissions=[{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": other_vpcs_default}]}],
        )
        == "InvalidGroup.NotFound"
    )
    ec2.authorize_security_group_ingress(
        GroupId=web, IpPermissions=[{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": own_default}]}]
    )

    # subnets
    assert _code(ec2.create_subnet, VpcId=vid, CidrBlock="10.1.0.0/24") == "InvalidSubnet.Range"
    assert _code(ec2.create_subnet, VpcId=vid, CidrBlock="10.0.0.0/29") == "InvalidSubnet.Range"
    assert _code(ec2.create_subnet, VpcId=vid, CidrBlock="10.0.0.1/24") == "InvalidParameterValue"
    assert _code(ec2.create_subnet, VpcId=vid, CidrBlock="10.0.0.0/24", AvailabilityZone="us-east-1z") == (
        "InvalidParameterValue"
    )
    assert _code(ec2.create_subnet, VpcId="vpc-0123456789abcdef0", CidrBlock="10.0.0.0/24") == (
        "InvalidVpcID.NotFound"
    )
    a = ec2.create_subnet(
        VpcId=vid,
        CidrBlock="10.0.0.0/24",
        AvailabilityZone="us-east-1a",
        TagSpecifications=[{"ResourceType": "subnet", "Tags": _tags(tier="db")}],
    )["Subnet"]
    assert (a["AvailabilityZone"], a["AvailableIpAddressCount"], a["DefaultForAz"]) == (
        "us-east-1a",
        251,
        False,
    )
    assert _code(ec2.create_subnet, VpcId=vid, CidrBlock="10.0.0.128/25") == "InvalidSubnet.Conflict"
    zone_b = ec2.describe_availability_zones(ZoneNames=["us-east-1b"])["AvailabilityZones"][0]["ZoneId"]
    b = ec2.create_subnet(VpcId=vid, CidrBlock="10.0.1.0/24", AvailabilityZoneId=zone_b)["Subnet"]
    assert b["AvailabilityZone"] == "us-east-1b"
    in_vpc = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vid]}])["Subnets"]
    assert sorted(s["SubnetId"] for s in in_vpc) == sorted([a["SubnetId"], b["SubnetId"]])
    tagged = ec2.describe_subnets(Filters=[{"Name": "tag:tier", "Values": ["db"]}])["Subnets"]
    assert [s["SubnetId"] for s in tagged] == [a["SubnetId"]]
    defaults = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
    assert len(defaults) == 6 and all(s["VpcId"] == default["VpcId"] for s in defaults)
    # a subnet of the default VPC beside the default ones, tags on the default ones
    mine = ec2.create_subnet(VpcId=default["VpcId"], CidrBlock="172.31.96.0/20")["Subnet"]["SubnetId"]
    assert (
        _code(ec2.create_subnet, VpcId=default["VpcId"], CidrBlock="172.31.0.0/24")
        == "InvalidSubnet.Conflict"
    )
    ec2.create_tags(Resources=[default["VpcId"], defaults[0]["SubnetId"]], Tags=_tags(env="dev"))
    assert ec2.describe_vpcs(VpcIds=[default["VpcId"]])["Vpcs"][0]["Tags"] == _tags(env="dev")
    described = ec2.describe_tags(Filters=[{"Name": "key", "Values": ["env"]}])["Tags"]
    assert sorted(t["ResourceType"] for t in described) == ["subnet", "vpc"]

    # deletes: dependencies first
    assert _code(ec2.delete_vpc, VpcId=vid) == "DependencyViolation"
    assert _code(ec2.delete_vpc, VpcId=default["VpcId"]) == "InvalidParameterValue"
    assert _code(ec2.delete_subnet, SubnetId=defaults[0]["SubnetId"]) == "InvalidParameterValue"
    assert _code(ec2.delete_subnet, SubnetId="subnet-0123456789abcdef0") == "InvalidSubnetID.NotFound"
    ec2.delete_subnet(SubnetId=mine)

    server.restart()  # created VPCs, subnets, groups and tags are stored
    assert ec2.describe_vpcs(VpcIds=[vid])["Vpcs"][0]["Tags"] == _tags(Name="lab")
    assert len(ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vid]}])["Subnets"]) == 2
    assert ec2.describe_vpcs(VpcIds=[default["VpcId"]])["Vpcs"][0]["Tags"] == _tags(env="dev")

    for s in (a, b):
        ec2.delete_subnet(SubnetId=s["SubnetId"])
    assert _code(ec2.delete_vpc, VpcId=vid) == "DependencyViolation"  # the "web" group
    ec2.delete_security_group(GroupId=web)
    ec2.delete_vpc(VpcId=vid)  # its default group goes with it
    assert _code(ec2.describe_vpcs, VpcIds=[vid]) == "InvalidVpcID.NotFound"
    assert _code(ec2.describe_security_groups, GroupIds=[own_default]) == "InvalidGroup.NotFound"


def test_five_vpcs_a_region(server: StrataProcess) -> None:
    ec2 = server.client("ec2", region="eu-west-1")
    made = [ec2.create_vpc(CidrBlock=f"10.{i}.0.0/16")["Vpc"]["VpcId"] for i in range(4)]  # + the default
    assert _code(ec2.create_vpc, CidrBlock="10.9.0.0/16") == "VpcLimitExceeded"
    assert server.client("ec2").create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]  # another region
    ec2.delete_vpc(VpcId=made[0])
    ec2.create_vpc(CidrBlock="10.9.0.0/16")
