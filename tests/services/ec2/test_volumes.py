"""EBS volumes through boto3: the type table with AWS's errors, describe filters and pages,
idempotency, tags, deletion rules, modifications on the simulated clock, attributes, status."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.services.ec2.helpers import FAST

AZ = "us-east-1a"


@pytest.fixture
def ec2(strata_server):  # noqa: ANN001, ANN201
    return strata_server.client("ec2")


def error_of(fn, **kw) -> tuple[str, str]:  # noqa: ANN001
    with pytest.raises(ClientError) as info:
        fn(**kw)
    return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]


@pytest.mark.parametrize(
    ("kw", "code", "fragment"),
    [
        ({"VolumeType": "gp3", "Size": 16385}, "InvalidParameterValue", "too large; maximum is 16384GiB"),
        ({"VolumeType": "gp2", "Size": 0}, "InvalidParameterValue", "too small; minimum is 1GiB"),
        ({"VolumeType": "io1", "Size": 3, "Iops": 100}, "InvalidParameterValue", "minimum is 4GiB"),
        ({"VolumeType": "io2", "Size": 65537, "Iops": 1000}, "InvalidParameterValue", "maximum is 65536GiB"),
        ({"VolumeType": "st1", "Size": 124}, "InvalidParameterValue", "minimum is 125GiB"),
        ({"VolumeType": "sc1", "Size": 16385}, "InvalidParameterValue", "maximum is 16384GiB"),
        ({"VolumeType": "gp3", "Size": 10, "Iops": 2999}, "InvalidParameterValue", "minimum is 3000"),
        ({"VolumeType": "gp3", "Size": 100, "Iops": 16001}, "InvalidParameterValue", "maximum is 16000"),
        ({"VolumeType": "gp3", "Size": 10, "Iops": 6000}, "InvalidParameterValue", "maximum is 500"),
        ({"VolumeType": "gp3", "Size": 10, "Throughput": 124}, "InvalidParameterValue", "minimum is 125"),
        ({"VolumeType": "gp3", "Size": 10, "Throughput": 1001}, "InvalidParameterValue", "maximum is 1000"),
        (
            {"VolumeType": "gp3", "Size": 100, "Throughput": 1000},
            "InvalidParameterValue",
            "maximum is 0.250000",
        ),
        ({"VolumeType": "io1", "Size": 10, "Iops": 501}, "InvalidParameterValue", "maximum is 50"),
        ({"VolumeType": "io1", "Size": 2000, "Iops": 64001}, "InvalidParameterValue", "maximum is 64000"),
        ({"VolumeType": "io1", "Size": 10, "Iops": 99}, "InvalidParameterValue", "minimum is 100"),
        ({"VolumeType": "io2", "Size": 10, "Iops": 10001}, "InvalidParameterValue", "maximum is 1000"),
        ({"VolumeType": "io2", "Size": 300, "Iops": 256001}, "InvalidParameterValue", "maximum is 256000"),
        ({"VolumeType": "io1", "Size": 10}, "MissingParameter", "iops"),
        ({"VolumeType": "gp2", "Size": 10, "Iops": 300}, "InvalidParameterCombination", "iops"),
        ({"VolumeType": "st1", "Size": 500, "Throughput": 200}, "InvalidParameterCombination", "throughput"),
        (
            {"VolumeType": "gp3", "Size": 10, "MultiAttachEnabled": True},
            "InvalidParameterCombination",
            "Multi-Attach",
        ),
        ({"VolumeType": "gp4", "Size": 10}, "InvalidParameterValue", "volumeType"),
        ({"VolumeType": "gp3"}, "MissingParameter", "size"),
    ],
)
def test_the_type_table_is_enforced_with_aws_errors(ec2, kw: dict, code: str, fragment: str) -> None:  # noqa: ANN001
    got_code, message = error_of(ec2.create_volume, AvailabilityZone=AZ, **kw)
    assert (got_code, fragment in message) == (code, True), message


@pytest.mark.parametrize(
    ("kw", "iops", "throughput"),
    [
        ({"VolumeType": "gp3", "Size": 1}, 3000, 125),
        ({"VolumeType": "gp3", "Size": 32, "Iops": 16000, "Throughput": 1000}, 16000, 1000),
        ({"VolumeType": "gp2", "Size": 10}, 100, None),
        ({"VolumeType": "gp2", "Size": 1000}, 3000, None),
        ({"VolumeType": "gp2", "Size": 16384}, 16000, None),
        ({"VolumeType": "io1", "Size": 4, "Iops": 200, "MultiAttachEnabled": True}, 200, None),
        ({"VolumeType": "io2", "Size": 256, "Iops": 256000}, 256000, None),
        ({"VolumeType": "st1", "Size": 125}, None, None),
        ({"VolumeType": "sc1", "Size": 16384}, None, None),
        ({"VolumeType": "standard", "Size": 1}, None, None),
    ],
)
def test_valid_volumes_of_every_type(ec2, kw: dict, iops: int | None, throughput: int | None) -> None:  # noqa: ANN001
    vol = ec2.create_volume(AvailabilityZone=AZ, **kw)
    assert vol["State"] == "creating"
    ec2.get_waiter("volume_available").wait(VolumeIds=[vol["VolumeId"]], WaiterConfig=FAST)
    shown = ec2.describe_volumes(VolumeIds=[vol["VolumeId"]])["Volumes"][0]
    assert (shown.get("Iops"), shown.get("Throughput"), shown["Size"]) == (iops, throughput, kw["Size"])
    ec2.delete_volume(VolumeId=vol["VolumeId"])


def test_zones_regions_and_the_zone_of_a_volume(ec2, strata_server) -> None:  # noqa: ANN001
    zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]]
    assert zones == [f"us-east-1{c}" for c in "abcdef"]
    west = strata_server.client("ec2", region="eu-west-2")
    assert west.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"] == "eu-west-2a"
    assert "eu-central-1" in [r["RegionName"] for r in ec2.describe_regions()["Regions"]]
    assert error_of(ec2.create_volume, AvailabilityZone="eu-west-2a", Size=1)[0] == "InvalidParameterValue"
    vol = ec2.create_volume(AvailabilityZone="us-east-1d", Size=1)["VolumeId"]
    assert error_of(west.describe_volumes, VolumeIds=[vol])[0] == "InvalidVolume.NotFound"


def test_describe_filters_pages_and_tags(ec2, unique: str) -> None:  # noqa: ANN001
    ids = []
    for i in range(7):
        vol = ec2.create_volume(
            AvailabilityZone="us-east-1e",
            Size=1 + i % 2,
            VolumeType="gp3",
            TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "run", "Value": unique}]}],
        )
        ids.append(vol["VolumeId"])
    mine = [{"Name": "tag:run", "Values": [unique]}]
    assert sorted(v["VolumeId"] for v in ec2.describe_volumes(Filters=mine)["Volumes"]) == sorted(ids)
    two = ec2.describe_volumes(Filters=[*mine, {"Name": "size", "Values": ["2"]}])["Volumes"]
    assert len(two) == 3
    seen, token = [], None
    while True:
        page = ec2.describe_volumes(Filters=mine, MaxResults=5, **({"NextToken": token} if token else {}))
        seen += [v["VolumeId"] for v in page["Volumes"]]
        token = page.get("NextToken")
        if not token:
            break
    assert sorted(seen) == sorted(ids)
    paged = ec2.get_paginator("describe_volumes").paginate(Filters=mine, PaginationConfig={"PageSize": 5})
    assert sum(len(p["Volumes"]) for p in paged) == 7
    assert error_of(ec2.describe_volumes, VolumeIds=ids[:1], MaxResults=5)[0] == "InvalidParameterCombination"
    assert (
        error_of(ec2.describe_volumes, Filters=[{"Name": "colour", "Values": ["x"]}])[0]
        == "InvalidParameterValue"
    )
    assert error_of(ec2.describe_volumes, VolumeIds=["vol-nope"])[0] == "InvalidVolumeID.Malformed"

    ec2.create_tags(Resources=ids[:2], Tags=[{"Key": "tier", "Value": "gold"}])
    tagged = ec2.describe_tags(
        Filters=[{"Name": "key", "Values": ["tier"]}, {"Name": "resource-id", "Values": ids}]
    )
    assert sorted(t["ResourceId"] for t in tagged["Tags"]) == sorted(ids[:2])
    ec2.delete_tags(Resources=[ids[0]], Tags=[{"Key": "tier"}])
    vol = ec2.describe_volumes(VolumeIds=[ids[0]])["Volumes"][0]
    assert {t["Key"] for t in vol["Tags"]} == {"run"}


def test_client_token_makes_create_volume_idempotent(ec2, unique: str) -> None:  # noqa: ANN001
    first = ec2.create_volume(AvailabilityZone=AZ, Size=3, ClientToken=unique)["VolumeId"]
    again = ec2.create_volume(AvailabilityZone=AZ, Size=3, ClientToken=unique)["VolumeId"]
    assert first == again
    # The same token with a different request is refused (EC2's idempotency rule).
    assert error_of(ec2.create_volume, AvailabilityZone=AZ, Size=4, ClientToken=unique)[0] == (
        "IdempotentParameterMismatch"
    )


def test_dry_run_and_deleting_volumes(ec2, strata_server) -> None:  # noqa: ANN001
    assert error_of(ec2.create_volume, AvailabilityZone=AZ, Size=1, DryRun=True)[0] == "DryRunOperation"
    assert error_of(ec2.describe_volume_status, DryRun=True)[0] == "DryRunOperation"
    assert error_of(ec2.get_ebs_encryption_by_default, DryRun=True)[0] == "DryRunOperation"
    assert error_of(ec2.describe_volumes, VolumeIds=["vol-0123456789abcdef0"], DryRun=True)[0] == (
        "InvalidVolume.NotFound"
    )
    vol = ec2.create_volume(AvailabilityZone=AZ, Size=1)["VolumeId"]
    ec2.get_waiter("volume_available").wait(VolumeIds=[vol], WaiterConfig=FAST)
    instance = ec2.describe_instances(Filters=[{"Name": "availability-zone", "Values": [AZ]}])
    instance_id = instance["Reservations"][0]["Instances"][0]["InstanceId"]
    other = ec2.describe_instances(Filters=[{"Name": "availability-zone", "Values": ["us-east-1b"]}])
    other_id = other["Reservations"][0]["Instances"][0]["InstanceId"]
    code, _ = error_of(ec2.attach_volume, VolumeId=vol, InstanceId=other_id, Device="/dev/sdf")
    assert code == "InvalidVolume.ZoneMismatch"
    ec2.attach_volume(VolumeId=vol, InstanceId=instance_id, Device="/dev/sdk")
    ec2.get_waiter("volume_in_use").wait(VolumeIds=[vol], WaiterConfig=FAST)
    assert error_of(ec2.delete_volume, VolumeId=vol)[0] == "VolumeInUse"
    assert (
        error_of(ec2.attach_volume, VolumeId=vol, InstanceId=instance_id, Device="/dev/sdl")[0]
        == "VolumeInUse"
    )
    mapped = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    assert vol in [m["Ebs"]["VolumeId"] for m in mapped["BlockDeviceMappings"]]
    ec2.detach_volume(VolumeId=vol)
    ec2.get_waiter("volume_available").wait(VolumeIds=[vol], WaiterConfig=FAST)
    assert error_of(ec2.detach_volume, VolumeId=vol)[0] == "IncorrectState"
    ec2.delete_volume(VolumeId=vol)
    ec2.get_waiter("volume_deleted").wait(VolumeIds=[vol], WaiterConfig=FAST)
    assert error_of(ec2.delete_volume, VolumeId=vol)[0] == "InvalidVolume.NotFound"


def test_attributes_and_status(ec2) -> None:  # noqa: ANN001
    vol = ec2.create_volume(AvailabilityZone=AZ, Size=1)["VolumeId"]
    assert ec2.describe_volume_attribute(VolumeId=vol, Attribute="autoEnableIO")["AutoEnableIO"] == {
        "Value": False
    }
    ec2.modify_volume_attribute(VolumeId=vol, AutoEnableIO={"Value": True})
    assert ec2.describe_volume_attribute(VolumeId=vol, Attribute="autoEnableIO")["AutoEnableIO"] == {
        "Value": True
    }
    status = ec2.describe_volume_status(VolumeIds=[vol])["VolumeStatuses"][0]
    assert status["VolumeStatus"]["Status"] == "ok"


def test_modify_volume_moves_with_the_simulated_clock(strata_factory) -> None:  # noqa: ANN001
    server = strata_factory()
    ec2 = server.client("ec2")
    vol = ec2.create_volume(AvailabilityZone=AZ, Size=10, VolumeType="gp2")["VolumeId"]
    assert error_of(ec2.modify_volume, VolumeId=vol, Size=5)[0] == "InvalidParameterValue"
    # The type table holds for the target too: 6,000 IOPS on 10 GiB of gp3 is over 500 per GiB.
    code, message = error_of(ec2.modify_volume, VolumeId=vol, VolumeType="gp3", Iops=6000)
    assert (code, "maximum is 500" in message) == ("InvalidParameterValue", True), message
    mod = ec2.modify_volume(VolumeId=vol, Size=20, VolumeType="gp3", Iops=4000)["VolumeModification"]
    assert (mod["ModificationState"], mod["OriginalSize"], mod["TargetSize"]) == ("modifying", 10, 20)
    assert mod["TargetIops"] == 4000 and mod["OriginalVolumeType"] == "gp2"
    assert ec2.describe_volumes(VolumeIds=[vol])["Volumes"][0]["Size"] == 20
    assert error_of(ec2.modify_volume, VolumeId=vol, Size=30)[0] == "IncorrectModificationState"
    server.advance_clock("2m")
    state = ec2.describe_volumes_modifications(VolumeIds=[vol])["VolumesModifications"][0]
    assert state["ModificationState"] == "optimizing"
    server.advance_clock("1h")
    state = ec2.describe_volumes_modifications(VolumeIds=[vol])["VolumesModifications"][0]
    assert state["ModificationState"] == "completed" and state["Progress"] == 100
    for size in (30, 40, 50):  # four modifications in 24 hours, each after the last completed
        ec2.modify_volume(VolumeId=vol, Size=size)
        server.advance_clock("1h")
    assert error_of(ec2.modify_volume, VolumeId=vol, Size=60)[0] == "VolumeModificationRateExceeded"
    server.advance_clock("21h")
    assert ec2.modify_volume(VolumeId=vol, Size=60)["VolumeModification"]["TargetIops"] == 4000


def test_encryption_by_default_per_region(strata_factory) -> None:  # noqa: ANN001
    server = strata_factory()
    ec2 = server.client("ec2")
    west = server.client("ec2", region="us-west-2")
    assert ec2.get_ebs_encryption_by_default()["EbsEncryptionByDefault"] is False
    ec2.enable_ebs_encryption_by_default()
    assert west.get_ebs_encryption_by_default()["EbsEncryptionByDefault"] is False
    vol = ec2.create_volume(AvailabilityZone=AZ, Size=1)
    managed = server.client("kms").describe_key(KeyId="alias/aws/ebs")["KeyMetadata"]
    assert vol["Encrypted"] and vol["KmsKeyId"] == managed["Arn"]
    assert ec2.get_ebs_default_kms_key_id()["KmsKeyId"] == managed["Arn"]
    mine = server.client("kms").create_key()["KeyMetadata"]
    ec2.modify_ebs_default_kms_key_id(KmsKeyId=mine["KeyId"])
    assert ec2.create_volume(AvailabilityZone=AZ, Size=1)["KmsKeyId"] == mine["Arn"]
    assert ec2.reset_ebs_default_kms_key_id()["KmsKeyId"] == managed["Arn"]
    ec2.disable_ebs_encryption_by_default()
    assert ec2.create_volume(AvailabilityZone=AZ, Size=1)["Encrypted"] is False
    code, _ = error_of(ec2.create_volume, AvailabilityZone=AZ, Size=1, Encrypted=True, KmsKeyId="alias/nope")
    assert code == "InvalidParameterValue"


def test_volume_events_reach_the_meter(ec2, strata_server) -> None:  # noqa: ANN001
    vol = ec2.create_volume(AvailabilityZone=AZ, Size=7, VolumeType="io2", Iops=700)["VolumeId"]
    ec2.modify_volume(VolumeId=vol, Size=9)
    ec2.delete_volume(VolumeId=vol)
    events = [
        (e["event"], e["quantity"], e["dims"]["volume_type"], e["dims"]["iops"])
        for e in strata_server.admin("/_strata/meter?service=ec2")["events"]
        if e["dims"].get("volume") == vol
    ]
    assert events == [
        ("VolumeCreated", 7, "io2", 700),
        ("VolumeModified", 9, "io2", 700),
        ("VolumeDeleted", 9, "io2", 700),
    ]
