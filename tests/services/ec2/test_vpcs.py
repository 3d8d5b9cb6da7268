"""VPCs and subnets beside the default ones: Create/Describe/DeleteVpc and Create/Describe/
DeleteSubnet with AWS's errors, filters and tags, each VPC's own default security group, and
records that survive a restart. One private server for the module (the VPC quota is per region)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from strata.engines.nft import nft_usable
from tests.services.ec2.helpers import dial
from tests.services.rds.helpers import create_pg, eventually, pg_connect
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
    assert (vpc["CidrBlock"], vpc["IsDefault"], vpc["State"]) == ("10.0.0.0/16", False, "pending")  # as AWS
    ec2.get_waiter("vpc_available").wait(VpcIds=[vid], WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    assert ec2.describe_vpcs(VpcIds=[vid])["Vpcs"][0]["State"] == "available"
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
    assert (a["AvailabilityZone"], a["AvailableIpAddressCount"], a["DefaultForAz"], a["State"]) == (
        "us-east-1a",
        251,
        False,
        "pending",
    )
    ec2.get_waiter("subnet_available").wait(
        SubnetIds=[a["SubnetId"]], WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    assert ec2.describe_subnets(SubnetIds=[a["SubnetId"]])["Subnets"][0]["State"] == "available"
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
    assert _code(ec2.delete_vpc, VpcId=default["VpcId"]) == "DependencyViolation"  # its subnets
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


def _attr(ec2, vpc: str, name: str) -> bool:  # noqa: ANN001
    out = ec2.describe_vpc_attribute(VpcId=vpc, Attribute=name)
    return out[name[0].upper() + name[1:]]["Value"]


def test_vpc_attributes(server: StrataProcess) -> None:
    ec2 = server.client("ec2", region="ap-south-1")
    default = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    vid = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    # AWS's defaults: DNS on everywhere, DNS hostnames on in the default VPC only
    assert [_attr(ec2, v, "enableDnsSupport") for v in (default, vid)] == [True, True]
    assert [_attr(ec2, v, "enableDnsHostnames") for v in (default, vid)] == [True, False]
    assert _attr(ec2, vid, "enableNetworkAddressUsageMetrics") is False
    assert _code(ec2.describe_vpc_attribute, VpcId=vid, Attribute="colour") == "InvalidParameterValue"
    assert _code(ec2.describe_vpc_attribute, VpcId="vpc-0123456789abcdef0", Attribute="enableDnsSupport") == (
        "InvalidVpcID.NotFound"
    )

    ec2.modify_vpc_attribute(VpcId=vid, EnableDnsHostnames={"Value": True})
    ec2.modify_vpc_attribute(VpcId=default, EnableDnsHostnames={"Value": False})
    ec2.modify_vpc_attribute(VpcId=vid, EnableDnsSupport={"Value": True})  # what it is: accepted
    assert (
        _code(  # not honoured: Strata cannot take name resolution away, publishes no NAU metrics
            ec2.modify_vpc_attribute, VpcId=vid, EnableDnsSupport={"Value": False}
        )
        == "InvalidParameterValue"
    )
    assert (
        _code(ec2.modify_vpc_attribute, VpcId=vid, EnableNetworkAddressUsageMetrics={"Value": True})
        == "InvalidParameterValue"
    )
    assert (
        _code(  # one attribute a request
            ec2.modify_vpc_attribute,
            VpcId=vid,
            EnableDnsSupport={"Value": True},
            EnableDnsHostnames={"Value": True},
        )
        == "InvalidParameterValue"
    )
    assert [_attr(ec2, v, "enableDnsHostnames") for v in (default, vid)] == [False, True]
    ec2.modify_vpc_attribute(VpcId=default, EnableDnsHostnames={"Value": True})
    ec2.delete_vpc(VpcId=vid)


def test_route_tables(server: StrataProcess) -> None:
    ec2 = server.client("ec2", region="ca-central-1")
    vid = ec2.create_vpc(CidrBlock="10.50.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vid, CidrBlock="10.50.1.0/24")["Subnet"]["SubnetId"]
    main = ec2.describe_route_tables(
        Filters=[{"Name": "vpc-id", "Values": [vid]}, {"Name": "association.main", "Values": ["true"]}]
    )["RouteTables"]
    assert len(main) == 1 and main[0]["Associations"][0]["Main"] is True
    assert main[0]["Routes"] == [
        {
            "DestinationCidrBlock": "10.50.0.0/16",
            "GatewayId": "local",
            "Origin": "CreateRouteTable",
            "State": "active",
        }
    ]
    default_vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    assert len(ec2.describe_route_tables()["RouteTables"]) == 2  # one main table a VPC
    ec2.create_tags(Resources=[main[0]["RouteTableId"]], Tags=_tags(tier="core"))
    tagged = ec2.describe_route_tables(Filters=[{"Name": "tag:tier", "Values": ["core"]}])["RouteTables"]
    assert [(t["RouteTableId"], t["Associations"][0]["Main"]) for t in tagged] == [
        (main[0]["RouteTableId"], True)
    ]
    assert len(ec2.describe_route_tables()["RouteTables"]) == 2
    rows = ec2.describe_tags(Filters=[{"Name": "resource-type", "Values": ["route-table"]}])["Tags"]
    assert [(r["ResourceId"], r["Key"]) for r in rows] == [(main[0]["RouteTableId"], "tier")]

    rtb = ec2.create_route_table(
        VpcId=vid, TagSpecifications=[{"ResourceType": "route-table", "Tags": _tags(Name="private")}]
    )["RouteTable"]
    rid = rtb["RouteTableId"]
    assert (rtb["Associations"], rtb["Routes"][0]["GatewayId"]) == ([], "local")
    found = ec2.describe_route_tables(Filters=[{"Name": "tag:Name", "Values": ["private"]}])["RouteTables"]
    assert [t["RouteTableId"] for t in found] == [rid]
    assert (
        _code(ec2.describe_route_tables, RouteTableIds=["rtb-0123456789abcdef0"])
        == "InvalidRouteTableID.NotFound"
    )
    assert _code(ec2.create_route_table, VpcId="vpc-0123456789abcdef0") == "InvalidVpcID.NotFound"

    other = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [default_vpc]}])["Subnets"][0]
    assert _code(ec2.associate_route_table, RouteTableId=rid, SubnetId=other["SubnetId"]) == (
        "InvalidParameterValue"  # another VPC's subnet
    )
    assoc = ec2.associate_route_table(RouteTableId=rid, SubnetId=subnet)
    assert assoc["AssociationState"]["State"] == "associated"
    assert _code(ec2.associate_route_table, RouteTableId=rid, SubnetId=subnet) == "Resource.AlreadyAssociated"
    by_subnet = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id", "Values": [subnet]}])
    assert [t["RouteTableId"] for t in by_subnet["RouteTables"]] == [rid]
    assert _code(ec2.delete_route_table, RouteTableId=rid) == "DependencyViolation"  # associated
    assert _code(ec2.delete_route_table, RouteTableId=main[0]["RouteTableId"]) == "DependencyViolation"
    main_assoc = main[0]["Associations"][0]["RouteTableAssociationId"]
    assert _code(ec2.disassociate_route_table, AssociationId=main_assoc) == "InvalidParameterValue"

    # no gateways, NAT gateways or peering to route to: AWS's NotFound; the local route stays
    assert _code(
        ec2.create_route,
        RouteTableId=rid,
        DestinationCidrBlock="0.0.0.0/0",
        GatewayId="igw-0123456789abcdef0",
    ) == ("InvalidGatewayID.NotFound")
    assert (
        _code(
            ec2.create_route,
            RouteTableId=rid,
            DestinationCidrBlock="0.0.0.0/0",
            NatGatewayId="nat-0123456789abcdef0",
        )
        == "InvalidNatGatewayID.NotFound"
    )
    assert _code(
        ec2.create_route, RouteTableId=rid, DestinationCidrBlock="10.50.0.0/16", GatewayId="local"
    ) == ("RouteAlreadyExists")
    assert (
        _code(ec2.delete_route, RouteTableId=rid, DestinationCidrBlock="10.50.0.0/16")
        == "InvalidParameterValue"
    )
    assert (
        _code(ec2.delete_route, RouteTableId=rid, DestinationCidrBlock="0.0.0.0/0") == "InvalidRoute.NotFound"
    )

    assert _code(ec2.delete_vpc, VpcId=vid) == "DependencyViolation"
    ec2.disassociate_route_table(AssociationId=assoc["AssociationId"])
    assert (
        _code(ec2.disassociate_route_table, AssociationId=assoc["AssociationId"])
        == "InvalidAssociationID.NotFound"
    )
    again = ec2.associate_route_table(RouteTableId=rid, SubnetId=subnet)["AssociationId"]
    main_id = main[0]["RouteTableId"]
    moved = ec2.replace_route_table_association(AssociationId=again, RouteTableId=main_id)["NewAssociationId"]
    vpc_filter = [{"Name": "vpc-id", "Values": [vid]}]
    tables = {t["RouteTableId"]: t for t in ec2.describe_route_tables(Filters=vpc_filter)["RouteTables"]}
    assert sorted(tables) == sorted([rid, main_id])
    assert [
        (a["SubnetId"], a["RouteTableAssociationId"])
        for a in tables[main_id]["Associations"]
        if not a["Main"]
    ] == [(subnet, moved)]
    assert tables[rid]["Associations"] == []
    new_main = ec2.replace_route_table_association(AssociationId=main_assoc, RouteTableId=rid)[
        "NewAssociationId"
    ]
    mains = ec2.describe_route_tables(Filters=[*vpc_filter, {"Name": "association.main", "Values": ["true"]}])
    assert [
        (t["RouteTableId"], t["Associations"][0]["RouteTableAssociationId"]) for t in mains["RouteTables"]
    ] == [(rid, new_main)]
    assert _code(ec2.delete_route_table, RouteTableId=rid) == "DependencyViolation"  # the main table now
    ec2.delete_subnet(SubnetId=subnet)  # its association goes with it
    assert ec2.describe_route_tables(RouteTableIds=[main_id])["RouteTables"][0]["Associations"] == []
    assert _code(ec2.delete_vpc, VpcId=vid) == "DependencyViolation"  # the first main table, main no more
    ec2.delete_route_table(RouteTableId=main_id)
    ec2.delete_vpc(VpcId=vid)
    assert len(ec2.describe_route_tables()["RouteTables"]) == 1  # its main table went with it


def test_network_acls(server: StrataProcess) -> None:
    ec2 = server.client("ec2", region="sa-east-1")
    vid = ec2.create_vpc(CidrBlock="10.60.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vid, CidrBlock="10.60.1.0/24")["Subnet"]["SubnetId"]
    acls = ec2.describe_network_acls(Filters=[{"Name": "vpc-id", "Values": [vid]}])["NetworkAcls"]
    assert len(acls) == 1 and acls[0]["IsDefault"]
    default = acls[0]["NetworkAclId"]
    assert sorted((e["RuleNumber"], e["Egress"], e["RuleAction"]) for e in acls[0]["Entries"]) == [
        (100, False, "allow"),
        (100, True, "allow"),
        (32767, False, "deny"),
        (32767, True, "deny"),
    ]
    (assoc,) = acls[0]["Associations"]
    assert assoc["SubnetId"] == subnet
    ec2.create_tags(Resources=[default], Tags=_tags(tier="core"))
    tagged = ec2.describe_network_acls(Filters=[{"Name": "tag:tier", "Values": ["core"]}])["NetworkAcls"]
    assert [(a["NetworkAclId"], a["IsDefault"], len(a["Associations"])) for a in tagged] == [
        (default, True, 1)
    ]

    mine = ec2.create_network_acl(VpcId=vid)["NetworkAcl"]
    acl = mine["NetworkAclId"]
    assert [e["RuleNumber"] for e in mine["Entries"]] == [32767, 32767]  # denies everything
    # Strata does not filter by network ACL: what would block is refused, never ignored
    assert (
        _code(
            ec2.replace_network_acl_association,
            AssociationId=assoc["NetworkAclAssociationId"],
            NetworkAclId=acl,
        )
        == "InvalidParameterValue"
    )
    deny = {
        "Protocol": "6",
        "RuleAction": "deny",
        "CidrBlock": "0.0.0.0/0",
        "PortRange": {"From": 22, "To": 22},
    }
    assert (
        _code(ec2.create_network_acl_entry, NetworkAclId=default, RuleNumber=50, Egress=False, **deny)
        == "InvalidParameterValue"
    )
    assert _code(ec2.delete_network_acl_entry, NetworkAclId=default, RuleNumber=100, Egress=True) == (
        "InvalidParameterValue"
    )
    ec2.create_network_acl_entry(
        NetworkAclId=default, RuleNumber=200, Egress=False, **deny
    )  # after the allow
    assert _code(
        ec2.create_network_acl_entry, NetworkAclId=default, RuleNumber=200, Egress=False, **deny
    ) == ("NetworkAclEntryAlreadyExists")
    ec2.delete_network_acl_entry(NetworkAclId=default, RuleNumber=200, Egress=False)
    assert _code(ec2.delete_network_acl_entry, NetworkAclId=default, RuleNumber=200, Egress=False) == (
        "InvalidNetworkAclEntry.NotFound"
    )

    everything = {"Protocol": "-1", "RuleAction": "allow", "CidrBlock": "0.0.0.0/0"}
    ec2.create_network_acl_entry(NetworkAclId=acl, RuleNumber=100, Egress=False, **everything)
    ec2.create_network_acl_entry(NetworkAclId=acl, RuleNumber=100, Egress=True, **everything)
    new = ec2.replace_network_acl_association(
        AssociationId=assoc["NetworkAclAssociationId"], NetworkAclId=acl
    )["NewAssociationId"]
    found = ec2.describe_network_acls(Filters=[{"Name": "association.subnet-id", "Values": [subnet]}])
    assert [
        (a["NetworkAclId"], a["NetworkAclAssociationId"]) for a in found["NetworkAcls"][0]["Associations"]
    ] == [(acl, new)]
    assert (
        _code(  # now it has a subnet: it must keep allowing everything
            ec2.replace_network_acl_entry,
            NetworkAclId=acl,
            RuleNumber=100,
            Egress=True,
            **{**everything, "RuleAction": "deny"},
        )
        == "InvalidParameterValue"
    )
    assert _code(ec2.delete_network_acl, NetworkAclId=acl) == "DependencyViolation"
    assert _code(ec2.delete_network_acl, NetworkAclId=default) == "InvalidParameterValue"
    ec2.replace_network_acl_association(AssociationId=new, NetworkAclId=default)
    assert _code(ec2.delete_vpc, VpcId=vid) == "DependencyViolation"
    ec2.delete_network_acl(NetworkAclId=acl)
    ec2.delete_subnet(SubnetId=subnet)
    ec2.delete_vpc(VpcId=vid)
    assert _code(ec2.describe_network_acls, NetworkAclIds=[default]) == "InvalidNetworkAclID.NotFound"


def test_secondary_cidr_blocks(server: StrataProcess) -> None:
    ec2 = server.client("ec2", region="eu-central-1")
    vid = ec2.create_vpc(CidrBlock="10.70.0.0/16")["Vpc"]["VpcId"]
    assert _code(ec2.associate_vpc_cidr_block, VpcId=vid, AmazonProvidedIpv6CidrBlock=True) == (
        "InvalidParameterValue"  # IPv6: Strata's endpoints are IPv4 only
    )
    assert _code(ec2.associate_vpc_cidr_block, VpcId=vid, CidrBlock="10.70.128.0/17") == "InvalidVpc.Range"
    assert _code(ec2.associate_vpc_cidr_block, VpcId=vid, CidrBlock="10.0.0.0/8") == "InvalidVpc.Range"
    added = ec2.associate_vpc_cidr_block(VpcId=vid, CidrBlock="10.71.0.0/16")["CidrBlockAssociation"]
    assert (added["CidrBlock"], added["CidrBlockState"]["State"]) == ("10.71.0.0/16", "associating")
    vpc = ec2.describe_vpcs(VpcIds=[vid])["Vpcs"][0]
    assert [(a["CidrBlock"], a["CidrBlockState"]["State"]) for a in vpc["CidrBlockAssociationSet"]] == [
        ("10.70.0.0/16", "associated"),
        ("10.71.0.0/16", "associated"),
    ]
    found = ec2.describe_vpcs(
        Filters=[{"Name": "cidr-block-association.cidr-block", "Values": ["10.71.0.0/16"]}]
    )
    assert [v["VpcId"] for v in found["Vpcs"]] == [vid]
    for i in range(3):
        ec2.associate_vpc_cidr_block(VpcId=vid, CidrBlock=f"10.{72 + i}.0.0/16")
    assert _code(ec2.associate_vpc_cidr_block, VpcId=vid, CidrBlock="10.80.0.0/16") == "CidrLimitExceeded"

    subnet = ec2.create_subnet(VpcId=vid, CidrBlock="10.71.5.0/24")["Subnet"]["SubnetId"]  # the second block
    routes = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vid]}])["RouteTables"][0][
        "Routes"
    ]
    assert [r["DestinationCidrBlock"] for r in routes][:2] == ["10.70.0.0/16", "10.71.0.0/16"]
    assert (
        _code(ec2.disassociate_vpc_cidr_block, AssociationId=added["AssociationId"]) == "DependencyViolation"
    )
    primary = vpc["CidrBlockAssociationSet"][0]["AssociationId"]
    assert _code(ec2.disassociate_vpc_cidr_block, AssociationId=primary) == "OperationNotPermitted"
    ec2.delete_subnet(SubnetId=subnet)
    gone = ec2.disassociate_vpc_cidr_block(AssociationId=added["AssociationId"])["CidrBlockAssociation"]
    assert gone["CidrBlockState"]["State"] == "disassociating"
    assert _code(ec2.disassociate_vpc_cidr_block, AssociationId=added["AssociationId"]) == (
        "InvalidVpcCidrBlockAssociationID.NotFound"
    )
    assert _code(ec2.create_subnet, VpcId=vid, CidrBlock="10.71.5.0/24") == "InvalidSubnet.Range"
    ec2.delete_vpc(VpcId=vid)


def test_five_vpcs_a_region(server: StrataProcess) -> None:
    ec2 = server.client("ec2", region="eu-west-1")
    made = [ec2.create_vpc(CidrBlock=f"10.{i}.0.0/16")["Vpc"]["VpcId"] for i in range(4)]  # + the default
    assert _code(ec2.create_vpc, CidrBlock="10.9.0.0/16") == "VpcLimitExceeded"
    assert server.client("ec2").create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]  # another region
    ec2.delete_vpc(VpcId=made[0])
    ec2.create_vpc(CidrBlock="10.9.0.0/16")


def test_default_vpc_deleted_and_created_again(server: StrataProcess, unique: str) -> None:
    ec2 = server.client("ec2", region="us-west-2")  # a region of its own: the others keep theirs
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]
    assert _code(ec2.create_default_vpc) == "DefaultVpcAlreadyExists"
    zone = subnets[0]["AvailabilityZone"]
    assert _code(ec2.create_default_subnet, AvailabilityZone=zone) == (
        "DefaultSubnetAlreadyExistsInAvailabilityZone"
    )
    ec2.delete_subnet(SubnetId=subnets[0]["SubnetId"])  # AWS lets a default subnet go
    assert _code(ec2.describe_subnets, SubnetIds=[subnets[0]["SubnetId"]]) == "InvalidSubnetID.NotFound"
    assert _code(ec2.create_default_subnet) == "MissingParameter"
    made = ec2.create_default_subnet(AvailabilityZone=zone)["Subnet"]
    assert (made["AvailabilityZone"], made["DefaultForAz"], made["CidrBlock"]) == (
        zone,
        True,
        subnets[0]["CidrBlock"],
    )

    group = ec2.create_security_group(GroupName=f"g-{unique}", Description="d")["GroupId"]
    assert _code(ec2.delete_vpc, VpcId=vpc) == "DependencyViolation"  # subnets and a group in it
    for s in subnets:
        ec2.delete_subnet(SubnetId=s["SubnetId"])
    assert _code(ec2.delete_vpc, VpcId=vpc) == "DependencyViolation"  # the group
    ec2.delete_security_group(GroupId=group)
    ec2.delete_vpc(VpcId=vpc)
    assert ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"] == []
    assert ec2.describe_security_groups()["SecurityGroups"] == []  # its default group went with it
    instance = ec2.describe_instances()["Reservations"][0]["Instances"][0]
    assert "VpcId" not in instance and "SecurityGroups" not in instance
    assert _code(ec2.create_default_subnet, AvailabilityZone=zone) == "DefaultVpcDoesNotExist"
    assert _code(ec2.create_security_group, GroupName="g", Description="d") == "VPCIdNotSpecified"
    rds = server.client("rds", region="us-west-2")  # nowhere to put an instance without a subnet group
    assert (
        _code(
            rds.create_db_instance,
            DBInstanceIdentifier=f"db-{unique}",
            Engine="postgres",
            DBInstanceClass="db.t3.micro",
            MasterUsername="u",
            MasterUserPassword="password1",
            AllocatedStorage=20,
        )
        == "InvalidParameterValue"
    )

    server.restart()  # the deletion is stored
    assert ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"] == []
    again = ec2.create_default_vpc()["Vpc"]
    assert (again["IsDefault"], again["CidrBlock"]) == (True, "172.31.0.0/16")
    back = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [again["VpcId"]]}])["Subnets"]
    assert sorted(s["CidrBlock"] for s in back) == sorted(s["CidrBlock"] for s in subnets)
    groups = ec2.describe_security_groups()["SecurityGroups"]
    assert [(g["GroupName"], g["VpcId"]) for g in groups] == [("default", again["VpcId"])]


@pytest.mark.skipif(not nft_usable(), reason="another VPC's default group is enforced with nftables (root)")
def test_subnet_groups_and_mount_targets_in_a_vpc(server: StrataProcess, unique: str) -> None:
    ec2, rds, efs = server.client("ec2"), server.client("rds"), server.client("efs")
    vid = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    b, c = (
        ec2.create_subnet(VpcId=vid, CidrBlock=f"10.20.{i}.0/24", AvailabilityZone=f"us-east-1{z}")["Subnet"][
            "SubnetId"
        ]
        for i, z in ((1, "b"), (2, "c"))
    )
    default_subnet = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])[
        "Subnets"
    ][0]
    vpc_default = ec2.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [vid]}, {"Name": "group-name", "Values": ["default"]}]
    )["SecurityGroups"][0]["GroupId"]
    other_default = ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]["GroupId"]

    def group(name: str, subnets: list[str]) -> dict:
        return rds.create_db_subnet_group(
            DBSubnetGroupName=name, DBSubnetGroupDescription="d", SubnetIds=subnets
        )["DBSubnetGroup"]

    assert _code(group, name="x", subnets=[b, "subnet-0123456789abcdef0"]) == "InvalidSubnet"
    assert _code(group, name="x", subnets=[b, default_subnet["SubnetId"]]) == "InvalidSubnet"  # two VPCs
    assert _code(group, name="x", subnets=[b]) == "DBSubnetGroupDoesNotCoverEnoughAZs"
    made = group(f"net-{unique}", [b, c])
    assert made["VpcId"] == vid
    assert sorted(s["SubnetAvailabilityZone"]["Name"] for s in made["Subnets"]) == [
        "us-east-1b",
        "us-east-1c",
    ]

    ident = f"vpcdb-{unique}"
    base = {"DBSubnetGroupName": made["DBSubnetGroupName"], "BackupRetentionPeriod": 0}
    assert _code(create_pg, rds=rds, ident=ident, VpcSecurityGroupIds=[other_default], **base) == (
        "InvalidParameterCombination"  # a group of the default VPC on an instance of this one
    )
    assert _code(create_pg, rds=rds, ident=ident, AvailabilityZone="us-east-1a", **base) == (
        "InvalidParameterCombination"  # no subnet of the group there
    )
    inst = create_pg(rds, ident, **base)
    assert inst["AvailabilityZone"] == "us-east-1b"  # its zone comes from its subnet group
    assert [g["VpcSecurityGroupId"] for g in inst["VpcSecurityGroups"]] == [vpc_default]
    assert inst["DBSubnetGroup"]["VpcId"] == vid
    # this machine's instances are in the default VPC: not members of this VPC's default group
    port = inst["Endpoint"]["Port"]
    assert dial(port) == "dropped"
    ec2.authorize_security_group_ingress(
        GroupId=vpc_default, IpProtocol="tcp", FromPort=port, ToPort=port, CidrIp="127.0.0.1/32"
    )
    pg_connect(inst).close()

    assert _code(ec2.delete_subnet, SubnetId=b) == "DependencyViolation"  # the instance's zone
    assert _code(rds.delete_db_subnet_group, DBSubnetGroupName=made["DBSubnetGroupName"]) == (
        "InvalidDBSubnetGroupStateFault"
    )
    fs = efs.create_file_system(CreationToken=unique)["FileSystemId"]
    assert _code(efs.create_mount_target, FileSystemId=fs, SubnetId=c, SecurityGroups=[other_default]) == (
        "SecurityGroupNotFound"
    )
    mt = efs.create_mount_target(FileSystemId=fs, SubnetId=c)
    assert (mt["VpcId"], mt["AvailabilityZoneName"]) == (vid, "us-east-1c")
    assert efs.describe_mount_target_security_groups(MountTargetId=mt["MountTargetId"])["SecurityGroups"] == [
        vpc_default
    ]
    assert _code(efs.create_mount_target, FileSystemId=fs, SubnetId=default_subnet["SubnetId"]) == (
        "MountTargetConflict"  # one VPC per file system
    )
    assert _code(ec2.delete_subnet, SubnetId=c) == "DependencyViolation"
    efs.delete_mount_target(MountTargetId=mt["MountTargetId"])
    ec2.delete_subnet(SubnetId=c)  # nothing in it any more

    rds.delete_db_instance(DBInstanceIdentifier=ident, SkipFinalSnapshot=True)
    eventually(lambda: not _instances(rds, ident), timeout=120)
    ec2.delete_subnet(SubnetId=b)
    rds.delete_db_subnet_group(DBSubnetGroupName=made["DBSubnetGroupName"])
    efs.delete_file_system(FileSystemId=fs)
    ec2.delete_vpc(VpcId=vid)


def _instances(rds, ident: str) -> list[dict]:  # noqa: ANN001
    return [i for i in rds.describe_db_instances()["DBInstances"] if i["DBInstanceIdentifier"] == ident]


@pytest.mark.skipif(not nft_usable(), reason="another VPC's default group is enforced with nftables (root)")
def test_cache_subnet_groups(server: StrataProcess, unique: str) -> None:
    ec2, ec = server.client("ec2"), server.client("elasticache")
    vid = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    b, c = (
        ec2.create_subnet(VpcId=vid, CidrBlock=f"10.30.{i}.0/24", AvailabilityZone=f"us-east-1{z}")["Subnet"][
            "SubnetId"
        ]
        for i, z in ((1, "b"), (2, "c"))
    )
    default_subnet = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])[
        "Subnets"
    ][0]
    vpc_default = ec2.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [vid]}, {"Name": "group-name", "Values": ["default"]}]
    )["SecurityGroups"][0]["GroupId"]
    other_default = ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]["GroupId"]
    name = f"cache-{unique}"

    def create(subnets: list[str], n: str = name) -> dict:
        return ec.create_cache_subnet_group(
            CacheSubnetGroupName=n, CacheSubnetGroupDescription="cache", SubnetIds=subnets
        )["CacheSubnetGroup"]

    assert _code(create, subnets=["subnet-0123456789abcdef0"]) == "InvalidSubnet"
    assert _code(create, subnets=[b, default_subnet["SubnetId"]]) == "InvalidSubnet"
    made = create([b, c])
    assert (made["VpcId"], sorted(s["SubnetAvailabilityZone"]["Name"] for s in made["Subnets"])) == (
        vid,
        ["us-east-1b", "us-east-1c"],
    )
    assert _code(create, subnets=[b]) == "CacheSubnetGroupAlreadyExists"
    assert (
        _code(ec.describe_cache_subnet_groups, CacheSubnetGroupName="nope") == "CacheSubnetGroupNotFoundFault"
    )
    assert (
        ec.describe_cache_subnet_groups(CacheSubnetGroupName="default")["CacheSubnetGroups"][0]["VpcId"]
        == (ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"])
    )
    ec.add_tags_to_resource(ResourceName=made["ARN"], Tags=[{"Key": "tier", "Value": "cache"}])
    assert ec.list_tags_for_resource(ResourceName=made["ARN"])["TagList"] == [
        {"Key": "tier", "Value": "cache"}
    ]

    gid = f"rg-{unique}"
    params = {
        "ReplicationGroupId": gid,
        "ReplicationGroupDescription": "sessions",
        "Engine": "redis",
        "CacheNodeType": "cache.t3.micro",
        "NumCacheClusters": 2,
        "CacheSubnetGroupName": name,
    }
    assert _code(ec.create_replication_group, SecurityGroupIds=[other_default], **params) == (
        "InvalidParameterCombination"  # a group of the default VPC for a group in this one
    )
    assert _code(
        ec.create_replication_group, PreferredCacheClusterAZs=["us-east-1a", "us-east-1b"], **params
    ) == (
        "InvalidParameterValue"  # no subnet of the group in us-east-1a
    )
    ec.create_replication_group(**params)
    g = ec.describe_replication_groups(ReplicationGroupId=gid)["ReplicationGroups"][0]
    members = ec.describe_cache_clusters(CacheClusterId=g["MemberClusters"][0])["CacheClusters"]
    assert members[0]["CacheSubnetGroupName"] == name
    assert members[0]["SecurityGroups"] == [{"SecurityGroupId": vpc_default, "Status": "active"}]
    zones = sorted(
        ec.describe_cache_clusters(CacheClusterId=m)["CacheClusters"][0]["PreferredAvailabilityZone"]
        for m in g["MemberClusters"]
    )
    assert zones == ["us-east-1b", "us-east-1c"]  # its nodes' zones come from its subnet group
    port = g["NodeGroups"][0]["PrimaryEndpoint"]["Port"]
    assert dial(port) == "dropped"  # this machine's instances are in the default VPC
    ec2.authorize_security_group_ingress(
        GroupId=vpc_default, IpProtocol="tcp", FromPort=port, ToPort=port, CidrIp="127.0.0.2/32"
    )
    assert (dial(port, "127.0.0.2"), dial(port)) == ("open", "dropped")

    assert _code(ec.delete_cache_subnet_group, CacheSubnetGroupName=name) == "CacheSubnetGroupInUse"
    assert _code(ec2.delete_subnet, SubnetId=b) == "DependencyViolation"
    ec.delete_replication_group(ReplicationGroupId=gid)
    eventually(lambda: not _groups(ec, gid), timeout=120)
    ec.delete_cache_subnet_group(CacheSubnetGroupName=name)
    for s in (b, c):
        ec2.delete_subnet(SubnetId=s)
    ec2.delete_vpc(VpcId=vid)


def _groups(ec, gid: str) -> list[dict]:  # noqa: ANN001
    return [
        g for g in ec.describe_replication_groups()["ReplicationGroups"] if g["ReplicationGroupId"] == gid
    ]
