"""States that move on their own, as on AWS (creating, attaching, detaching, pending with
Progress), and Multi-Attach of io1/io2 volumes to several of a zone's Strata instances.

The state test runs a server whose transitions last a minute (STRATA_EBS_STATE_SECONDS) and moves
the simulated clock instead of waiting, so what a client sees at each step does not depend on how
fast the machine is."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from botocore.exceptions import ClientError

from tests.services.ec2.helpers import FAST, attach, instance_in, qemu_io

AZ = "us-east-1a"


def error_code(fn, **kwargs) -> str:  # noqa: ANN001
    with pytest.raises(ClientError) as info:
        fn(**kwargs)
    return info.value.response["Error"]["Code"]


def test_volumes_attachments_and_snapshots_move_through_their_states(strata_factory) -> None:  # noqa: ANN001
    server = strata_factory(extra_env={"STRATA_EBS_STATE_SECONDS": "60"})
    ec2 = server.client("ec2")
    instance = instance_in(ec2, AZ)

    def volume() -> dict:
        return ec2.describe_volumes(VolumeIds=[vol])["Volumes"][0]

    created = ec2.create_volume(AvailabilityZone=AZ, Size=1)
    vol = created["VolumeId"]
    assert created["State"] == "creating" and volume()["State"] == "creating"
    assert error_code(ec2.attach_volume, VolumeId=vol, InstanceId=instance, Device="/dev/sdf") == (
        "IncorrectState"
    )
    server.advance_clock("61s")
    assert volume()["State"] == "available"

    answer = ec2.attach_volume(VolumeId=vol, InstanceId=instance, Device="/dev/sdf")
    assert answer["State"] == "attaching"
    assert volume()["State"] == "in-use" and volume()["Attachments"][0]["State"] == "attaching"
    server.advance_clock("61s")
    assert volume()["Attachments"][0]["State"] == "attached"

    snap = ec2.create_snapshot(VolumeId=vol)["SnapshotId"]
    shown = ec2.describe_snapshots(SnapshotIds=[snap])["Snapshots"][0]
    assert shown["State"] == "pending" and shown["Progress"] != "100%"
    code = error_code(ec2.create_volume, AvailabilityZone=AZ, SnapshotId=snap)
    assert code == "IncorrectState"
    server.advance_clock("61s")
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[snap], WaiterConfig=FAST)
    assert ec2.describe_snapshots(SnapshotIds=[snap])["Snapshots"][0]["Progress"] == "100%"

    assert ec2.detach_volume(VolumeId=vol)["State"] == "detaching"
    assert volume()["State"] == "in-use" and volume()["Attachments"][0]["State"] == "detaching"
    assert error_code(ec2.detach_volume, VolumeId=vol) == "IncorrectState"
    assert error_code(ec2.attach_volume, VolumeId=vol, InstanceId=instance, Device="/dev/sdg") == (
        "VolumeInUse"
    )
    server.advance_clock("61s")
    ec2.get_waiter("volume_available").wait(VolumeIds=[vol], WaiterConfig=FAST)
    assert volume()["Attachments"] == []


def test_multi_attach_to_a_zones_instances(strata_server) -> None:  # noqa: ANN001
    ec2 = strata_server.client("ec2")
    zone = "us-east-1e"
    found = ec2.describe_instances(Filters=[{"Name": "availability-zone", "Values": [zone]}])
    instances = [i["InstanceId"] for r in found["Reservations"] for i in r["Instances"]]
    assert len(instances) == 16
    plain = ec2.create_volume(AvailabilityZone=zone, Size=4, VolumeType="io2", Iops=100)["VolumeId"]
    shared = ec2.create_volume(
        AvailabilityZone=zone, Size=4, VolumeType="io2", Iops=100, MultiAttachEnabled=True
    )["VolumeId"]
    ec2.get_waiter("volume_available").wait(VolumeIds=[plain, shared], WaiterConfig=FAST)

    ec2.attach_volume(VolumeId=plain, InstanceId=instances[0], Device="/dev/sdf")
    code = error_code(ec2.attach_volume, VolumeId=plain, InstanceId=instances[1], Device="/dev/sdf")
    assert code == "VolumeInUse"
    for instance in instances:
        ec2.attach_volume(VolumeId=shared, InstanceId=instance, Device="/dev/sdg")
    code = error_code(ec2.attach_volume, VolumeId=shared, InstanceId=instances[3], Device="/dev/sdh")
    assert code == "VolumeInUse"
    shown = ec2.describe_volumes(VolumeIds=[shared])["Volumes"][0]
    assert sorted(a["InstanceId"] for a in shown["Attachments"]) == sorted(instances)
    second = ec2.describe_instances(InstanceIds=[instances[1]])["Reservations"][0]["Instances"][0]
    assert [m["Ebs"]["VolumeId"] for m in second["BlockDeviceMappings"]] == [shared]

    # A volume with several attachments is detached one instance at a time.
    assert error_code(ec2.detach_volume, VolumeId=shared) == "MissingParameter"
    for instance in instances[1:]:
        ec2.detach_volume(VolumeId=shared, InstanceId=instance)
    ec2.detach_volume(VolumeId=plain)
    ec2.get_waiter("volume_available").wait(VolumeIds=[plain], WaiterConfig=FAST)
    left = ec2.describe_volumes(VolumeIds=[shared])["Volumes"][0]
    assert left["State"] == "in-use" and [a["InstanceId"] for a in left["Attachments"]] == [instances[0]]


@pytest.mark.skipif(not shutil.which("qemu-io"), reason="needs Debian qemu-utils")
def test_a_multi_attached_volume_serves_several_nbd_clients_at_once(strata_server) -> None:  # noqa: ANN001
    ec2 = strata_server.client("ec2")
    zone = "us-east-1d"
    vol = ec2.create_volume(
        AvailabilityZone=zone, Size=4, VolumeType="io1", Iops=200, MultiAttachEnabled=True
    )["VolumeId"]
    uri = attach(strata_server, ec2, vol, zone)
    found = ec2.describe_instances(Filters=[{"Name": "availability-zone", "Values": [zone]}])
    other = found["Reservations"][1]["Instances"][0]["InstanceId"]
    ec2.attach_volume(VolumeId=vol, InstanceId=other, Device="/dev/sdf")

    # Two clients (one per instance) at the same time, each writing its half, then each reads
    # what the other wrote.
    writers = [
        subprocess.Popen(["qemu-io", "-f", "raw", "-c", f"write -P {p} {off} 8M", "-c", "flush", uri])
        for p, off in ((0x61, "0"), (0x62, "8M"))
    ]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    qemu_io(uri, "read -P 0x61 0 8M", "read -P 0x62 8M 8M")

    # Detaching one instance leaves the other's client served.
    ec2.detach_volume(VolumeId=vol, InstanceId=other)
    qemu_io(uri, "read -P 0x62 8M 8M")
