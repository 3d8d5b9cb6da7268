"""EFS's control plane through boto3: AWS's error codes for every conflict and limit, and the
default network (VPC, a subnet per zone, the default security group) EFS mount targets live in."""

from __future__ import annotations

import json
import os
import urllib.request

import pytest
from botocore.exceptions import ClientError

from tests.services.efs.helpers import needs_nfs


def code_of(call, **kw) -> tuple[str, int]:  # noqa: ANN001
    with pytest.raises(ClientError) as e:
        call(**kw)
    return e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]


def new_fs(efs, **kw) -> str:  # noqa: ANN001
    return efs.create_file_system(CreationToken=os.urandom(8).hex(), **kw)["FileSystemId"]


def test_default_network(strata_server) -> None:  # noqa: ANN001
    ec2 = strata_server.client("ec2")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    assert len(vpc) == 1 and vpc[0]["CidrBlock"] == "172.31.0.0/16"
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc[0]["VpcId"]]}])["Subnets"]
    assert sorted(s["AvailabilityZone"] for s in subnets) == [f"us-east-1{z}" for z in "abcdef"]
    assert all(s["DefaultForAz"] for s in subnets)
    groups = ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"]
    assert groups[0]["VpcId"] == vpc[0]["VpcId"]
    assert (
        code_of(ec2.describe_subnets, SubnetIds=["subnet-0123456789abcdef0"])[0] == "InvalidSubnetID.NotFound"
    )


def test_file_system_rules(strata_server) -> None:  # noqa: ANN001
    efs = strata_server.client("efs")
    token = os.urandom(8).hex()
    fs = efs.create_file_system(CreationToken=token, Tags=[{"Key": "Name", "Value": "shared"}])
    assert fs["LifeCycleState"] == "creating" and fs["Name"] == "shared"
    with pytest.raises(ClientError) as e:
        efs.create_file_system(CreationToken=token)
    assert e.value.response["Error"]["Code"] == "FileSystemAlreadyExists"
    assert e.value.response["FileSystemId"] == fs["FileSystemId"]
    described = efs.describe_file_systems(CreationToken=token)["FileSystems"]
    assert [d["LifeCycleState"] for d in described] == ["available"]
    assert described[0]["SizeInBytes"]["Value"] == 6144
    create = efs.create_file_system
    assert code_of(create, CreationToken="a", ThroughputMode="provisioned") == ("BadRequest", 400)
    assert code_of(
        create, CreationToken="b", ThroughputMode="provisioned", ProvisionedThroughputInMibps=5000
    )[0] == ("ThroughputLimitExceeded")
    assert code_of(create, CreationToken="c", ProvisionedThroughputInMibps=10) == ("BadRequest", 400)
    assert (
        code_of(create, CreationToken="d", PerformanceMode="maxIO", ThroughputMode="elastic")[0]
        == "BadRequest"
    )
    assert (
        code_of(create, CreationToken="g", AvailabilityZoneName="us-east-1z")[0]
        == "UnsupportedAvailabilityZone"
    )
    assert code_of(create, CreationToken="h", Backup=True)[0] == "BadRequest"
    assert code_of(efs.describe_file_systems, FileSystemId="fs-0123456789abcdef0") == (
        "FileSystemNotFound",
        404,
    )
    assert code_of(create, CreationToken="e", KmsKeyId="alias/aws/elasticfilesystem")[0] == "BadRequest"
    assert code_of(create, CreationToken="f", Encrypted=True, KmsKeyId="alias/nope")[0] == "BadRequest"
    # Throughput: a mode change, then another within 24 hours, is refused.
    fs_id = fs["FileSystemId"]
    updated = efs.update_file_system(
        FileSystemId=fs_id, ThroughputMode="provisioned", ProvisionedThroughputInMibps=10
    )
    assert updated["ProvisionedThroughputInMibps"] == 10
    assert (
        efs.update_file_system(FileSystemId=fs_id, ProvisionedThroughputInMibps=20)["ThroughputMode"]
        == "provisioned"
    )
    assert code_of(efs.update_file_system, FileSystemId=fs_id, ThroughputMode="elastic") == (
        "TooManyRequests",
        429,
    )
    efs.delete_file_system(FileSystemId=fs_id)
    assert code_of(efs.describe_file_systems, FileSystemId=fs_id)[0] == "FileSystemNotFound"


def test_throughput_changes_wait_a_day_and_provisioned_is_metered(strata_factory) -> None:  # noqa: ANN001
    # AWS: changing to Provisioned or increasing it starts a 24-hour wait before the mode may
    # change again or the amount decrease; a decrease or a change away starts none. (A server of
    # its own: the day it moves the clock would expire other tests' presigned URLs.)
    strata_server = strata_factory()
    efs = strata_server.client("efs")
    fs_id = new_fs(efs, ThroughputMode="provisioned", ProvisionedThroughputInMibps=10)
    update = efs.update_file_system
    assert update(FileSystemId=fs_id, ProvisionedThroughputInMibps=20)["ProvisionedThroughputInMibps"] == 20
    assert code_of(update, FileSystemId=fs_id, ProvisionedThroughputInMibps=15) == ("TooManyRequests", 429)
    assert code_of(update, FileSystemId=fs_id, ThroughputMode="bursting")[0] == "TooManyRequests"
    strata_server.advance_clock("25h")
    assert update(FileSystemId=fs_id, ProvisionedThroughputInMibps=15)["ProvisionedThroughputInMibps"] == 15
    assert update(FileSystemId=fs_id, ThroughputMode="elastic")["ThroughputMode"] == "elastic"
    assert update(FileSystemId=fs_id, ThroughputMode="bursting")["ThroughputMode"] == "bursting"
    assert update(FileSystemId=fs_id, ThroughputMode="provisioned", ProvisionedThroughputInMibps=5)
    assert code_of(update, FileSystemId=fs_id, ThroughputMode="elastic")[0] == "TooManyRequests"
    # The provisioned MiB/s were metered for the hours they were held (20 MiB/s over the 25 hours).
    with urllib.request.urlopen(f"{strata_server.endpoint}/_strata/meter?service=efs", timeout=10) as r:
        events = json.loads(r.read())["events"]
    held = [
        e["quantity"]
        for e in events
        if e["event"] == "ProvisionedTP-MiBpsHrs" and e["dims"].get("file_system") == fs_id
    ]
    assert sum(held) >= 20 * 25
    efs.delete_file_system(FileSystemId=fs_id)


def test_policies_lifecycle_tags_preferences(strata_server) -> None:  # noqa: ANN001
    efs = strata_server.client("efs")
    fs_id = new_fs(efs)
    assert efs.describe_lifecycle_configuration(FileSystemId=fs_id)["LifecyclePolicies"] == []
    rules = [{"TransitionToIA": "AFTER_30_DAYS"}, {"TransitionToPrimaryStorageClass": "AFTER_1_ACCESS"}]
    assert (
        efs.put_lifecycle_configuration(FileSystemId=fs_id, LifecyclePolicies=rules)["LifecyclePolicies"]
        == rules
    )
    put = efs.put_lifecycle_configuration
    two = [{"TransitionToIA": "AFTER_30_DAYS"}, {"TransitionToIA": "AFTER_7_DAYS"}]
    assert code_of(put, FileSystemId=fs_id, LifecyclePolicies=two)[0] == "BadRequest"
    both = [{"TransitionToIA": "AFTER_30_DAYS", "TransitionToPrimaryStorageClass": "AFTER_1_ACCESS"}]
    assert code_of(put, FileSystemId=fs_id, LifecyclePolicies=both)[0] == "BadRequest"
    archive = [{"TransitionToArchive": "AFTER_90_DAYS"}]  # needs elastic throughput
    assert code_of(put, FileSystemId=fs_id, LifecyclePolicies=archive)[0] == "BadRequest"
    assert efs.describe_backup_policy(FileSystemId=fs_id)["BackupPolicy"]["Status"] == "DISABLED"
    enable = {"FileSystemId": fs_id, "BackupPolicy": {"Status": "ENABLED"}}
    assert code_of(efs.put_backup_policy, **enable)[0] == "BadRequest"
    assert code_of(efs.describe_file_system_policy, FileSystemId=fs_id) == ("PolicyNotFound", 404)
    assert (
        code_of(efs.put_file_system_policy, FileSystemId=fs_id, Policy="{not json")[0]
        == "InvalidPolicyException"
    )
    policy = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "elasticfilesystem:ClientMount"}
            ],
        }
    )
    efs.put_file_system_policy(FileSystemId=fs_id, Policy=policy)
    assert json.loads(efs.describe_file_system_policy(FileSystemId=fs_id)["Policy"]) == json.loads(policy)
    efs.delete_file_system_policy(FileSystemId=fs_id)
    assert code_of(efs.describe_file_system_policy, FileSystemId=fs_id)[0] == "PolicyNotFound"
    efs.tag_resource(ResourceId=fs_id, Tags=[{"Key": "team", "Value": "a"}, {"Key": "Name", "Value": "n"}])
    efs.untag_resource(ResourceId=fs_id, TagKeys=["team"])
    assert efs.list_tags_for_resource(ResourceId=fs_id)["Tags"] == [{"Key": "Name", "Value": "n"}]
    assert efs.describe_file_systems(FileSystemId=fs_id)["FileSystems"][0]["Name"] == "n"
    assert (
        code_of(efs.tag_resource, ResourceId=fs_id, Tags=[{"Key": "aws:x", "Value": "v"}])[0] == "BadRequest"
    )
    many = [{"Key": f"k{i}", "Value": "v"} for i in range(50)]
    assert code_of(efs.tag_resource, ResourceId=fs_id, Tags=many)[0] == "BadRequest"
    out = efs.update_file_system_protection(FileSystemId=fs_id, ReplicationOverwriteProtection="DISABLED")
    assert out["ReplicationOverwriteProtection"] == "DISABLED"
    protection = efs.describe_file_systems(FileSystemId=fs_id)["FileSystems"][0]["FileSystemProtection"]
    assert protection == {"ReplicationOverwriteProtection": "DISABLED"}
    prefs = efs.describe_account_preferences()["ResourceIdPreference"]
    assert prefs == {"ResourceIdType": "LONG_ID", "Resources": ["FILE_SYSTEM", "MOUNT_TARGET"]}
    assert code_of(efs.put_account_preferences, ResourceIdType="SHORT_ID")[0] == "BadRequest"
    efs.delete_file_system(FileSystemId=fs_id)


@needs_nfs
def test_mount_target_and_access_point_rules(strata_server) -> None:  # noqa: ANN001
    efs, ec2 = strata_server.client("efs"), strata_server.client("ec2")
    subnets = {s["AvailabilityZone"]: s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]}
    group = ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]["GroupId"]
    fs_id = new_fs(efs)
    create = efs.create_mount_target
    mt = create(FileSystemId=fs_id, SubnetId=subnets["us-east-1a"], SecurityGroups=[group])
    assert mt["LifeCycleState"] == "creating" and mt["AvailabilityZoneName"] == "us-east-1a"
    assert code_of(create, FileSystemId=fs_id, SubnetId=subnets["us-east-1a"]) == ("MountTargetConflict", 409)
    assert code_of(create, FileSystemId=fs_id, SubnetId="subnet-0123456789abcdef0")[0] == "SubnetNotFound"
    sg = {"FileSystemId": fs_id, "SubnetId": subnets["us-east-1b"]}
    assert code_of(create, **sg, SecurityGroups=["sg-0123456789abcdef0"])[0] == "SecurityGroupNotFound"
    assert code_of(create, **sg, SecurityGroups=[group] * 6)[0] == "SecurityGroupLimitExceeded"
    assert code_of(create, **sg, IpAddress="10.0.0.5")[0] == "BadRequest"
    assert code_of(create, **sg, IpAddress=mt["IpAddress"])[0] == "IpAddressInUse"
    assert efs.describe_mount_target_security_groups(MountTargetId=mt["MountTargetId"])["SecurityGroups"] == [
        group
    ]
    assert code_of(efs.delete_file_system, FileSystemId=fs_id) == ("FileSystemInUse", 409)
    # One Zone: mount targets in its own zone only.
    one_zone = new_fs(efs, AvailabilityZoneName="us-east-1c")
    assert (
        code_of(create, FileSystemId=one_zone, SubnetId=subnets["us-east-1a"])[0]
        == "AvailabilityZonesMismatch"
    )
    # Access points.
    token = os.urandom(8).hex()
    ap = efs.create_access_point(ClientToken=token, FileSystemId=fs_id, PosixUser={"Uid": 7, "Gid": 7})
    with pytest.raises(ClientError) as e:
        efs.create_access_point(ClientToken=token, FileSystemId=fs_id)
    assert e.value.response["Error"]["Code"] == "AccessPointAlreadyExists"
    bad_path = {"FileSystemId": fs_id, "RootDirectory": {"Path": "/a/../b"}}
    assert code_of(efs.create_access_point, **bad_path)[0] == "BadRequest"
    # Up to 16 secondary groups, as on AWS.
    secondary = {"FileSystemId": fs_id, "PosixUser": {"Uid": 1, "Gid": 1, "SecondaryGids": list(range(17))}}
    assert code_of(efs.create_access_point, **secondary)[0] == "BadRequest"
    found = efs.describe_mount_targets(AccessPointId=ap["AccessPointId"])["MountTargets"]
    assert [m["MountTargetId"] for m in found] == [mt["MountTargetId"]]
    efs.tag_resource(ResourceId=ap["AccessPointId"], Tags=[{"Key": "k", "Value": "v"}])
    assert efs.list_tags_for_resource(ResourceId=ap["AccessPointArn"])["Tags"] == [{"Key": "k", "Value": "v"}]
    efs.delete_access_point(AccessPointId=ap["AccessPointId"])
    assert code_of(efs.describe_access_points, AccessPointId=ap["AccessPointId"]) == (
        "AccessPointNotFound",
        404,
    )
    efs.delete_mount_target(MountTargetId=mt["MountTargetId"])
    assert code_of(efs.describe_mount_targets, MountTargetId=mt["MountTargetId"]) == (
        "MountTargetNotFound",
        404,
    )
    efs.delete_file_system(FileSystemId=fs_id)


def test_describe_file_systems_pages(strata_server) -> None:  # noqa: ANN001
    efs = strata_server.client("efs")
    mine = {new_fs(efs) for _ in range(3)}
    seen: list[str] = []
    kwargs: dict = {"MaxItems": 2}
    while True:
        page = efs.describe_file_systems(**kwargs)
        assert len(page["FileSystems"]) <= 2
        seen += [f["FileSystemId"] for f in page["FileSystems"]]
        if "NextMarker" not in page:
            break
        kwargs["Marker"] = page["NextMarker"]
    assert mine <= set(seen) and len(seen) == len(set(seen))
    paginated = efs.get_paginator("describe_file_systems").paginate(PaginationConfig={"PageSize": 1})
    assert mine <= {f["FileSystemId"] for p in paginated for f in p["FileSystems"]}
    assert code_of(efs.describe_file_systems, Marker="fs-0123456789abcdef0")[0] == "BadRequest"
    for fs_id in mine:
        efs.delete_file_system(FileSystemId=fs_id)
