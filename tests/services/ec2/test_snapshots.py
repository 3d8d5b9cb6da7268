"""EBS snapshots through boto3 and NBD: who may see and restore them, CreateSnapshots of an
instance, and DeleteSnapshot freeing only the blocks nothing else needs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.services.ec2.helpers import FAST, attach, detach, qemu_io

AZ = "us-east-1a"
OTHER = "111122223333"


def block_files(server) -> set[str]:  # noqa: ANN001
    root = Path(server.data_dir) / "ec2" / "blocks"
    return {p.name for p in root.glob("??/*")}


@pytest.mark.skipif(not shutil.which("qemu-io"), reason="needs Debian qemu-utils")
def test_delete_snapshot_frees_only_blocks_nobody_else_needs(strata_factory) -> None:  # noqa: ANN001
    server = strata_factory()
    ec2 = server.client("ec2")
    vol = ec2.create_volume(AvailabilityZone=AZ, Size=1)["VolumeId"]
    uri = attach(server, ec2, vol, AZ)
    qemu_io(uri, "write -P 1 0 1M", "flush")  # blocks 0, 1 (one content)
    # The 1 GiB volume's file holds what was written, nothing for the rest (a sparse file).
    volume_file = Path(server.data_dir) / "ec2" / "volumes" / f"{vol}.img"
    assert volume_file.stat().st_blocks * 512 <= 2 * 1024 * 1024
    snap1 = ec2.create_snapshot(VolumeId=vol)["SnapshotId"]
    qemu_io(uri, "write -P 2 0 512K", "flush")  # block 0 changes (after the snapshot began)
    snap2 = ec2.create_snapshot(VolumeId=vol)["SnapshotId"]
    qemu_io(uri, "write -P 3 0 512K", "write -P 4 1M 512K", "flush")
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[snap1, snap2], WaiterConfig=FAST)
    # Contents 1 and 2 are the snapshots'; 3 and 4 live in the volume's own file, not as blocks.
    assert len(block_files(server)) == 2
    detach(ec2, vol)
    ec2.delete_volume(VolumeId=vol)
    assert len(block_files(server)) == 2
    restored = ec2.create_volume(AvailabilityZone="us-east-1b", SnapshotId=snap1)["VolumeId"]
    ec2.delete_snapshot(SnapshotId=snap1)
    assert len(block_files(server)) == 2  # 1 is still snap2's and the restored volume's
    ec2.delete_snapshot(SnapshotId=snap2)
    assert len(block_files(server)) == 1  # 2 was only snap2's; 1 is the restored volume's
    uri = attach(server, ec2, restored, "us-east-1b")
    qemu_io(uri, "read -P 1 0 1M")
    detach(ec2, restored)
    ec2.delete_volume(VolumeId=restored)
    assert block_files(server) == set()


def test_owners_permissions_and_restorable_by(strata_server, unique: str) -> None:  # noqa: ANN001
    ec2 = strata_server.client("ec2")
    vol = ec2.create_volume(AvailabilityZone=AZ, Size=1)["VolumeId"]
    snap = ec2.create_snapshot(
        VolumeId=vol,
        Description=unique,
        TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": "k", "Value": unique}]}],
    )["SnapshotId"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[snap], WaiterConfig=FAST)
    mine = ec2.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "description", "Values": [unique]}])
    assert [s["SnapshotId"] for s in mine["Snapshots"]] == [snap]
    assert not ec2.describe_snapshots(OwnerIds=[OTHER], SnapshotIds=[snap])["Snapshots"]
    assert not ec2.describe_snapshots(RestorableByUserIds=["all"], SnapshotIds=[snap])["Snapshots"]

    ec2.modify_snapshot_attribute(
        SnapshotId=snap, Attribute="createVolumePermission", OperationType="add", UserIds=[OTHER]
    )
    perms = ec2.describe_snapshot_attribute(SnapshotId=snap, Attribute="createVolumePermission")
    assert perms["CreateVolumePermissions"] == [{"UserId": OTHER}]
    restorable = ec2.describe_snapshots(RestorableByUserIds=[OTHER], SnapshotIds=[snap])["Snapshots"]
    assert [s["SnapshotId"] for s in restorable] == [snap]
    ec2.modify_snapshot_attribute(SnapshotId=snap, CreateVolumePermission={"Add": [{"Group": "all"}]})
    assert ec2.describe_snapshots(RestorableByUserIds=["all"], SnapshotIds=[snap])["Snapshots"]
    ec2.reset_snapshot_attribute(SnapshotId=snap, Attribute="createVolumePermission")
    assert (
        ec2.describe_snapshot_attribute(SnapshotId=snap, Attribute="createVolumePermission")[
            "CreateVolumePermissions"
        ]
        == []
    )
    with pytest.raises(ClientError) as info:
        ec2.modify_snapshot_attribute(SnapshotId=snap, CreateVolumePermission={"Add": [{"Group": "some"}]})
    assert info.value.response["Error"]["Code"] == "InvalidParameterValue"
    with pytest.raises(ClientError) as info:
        ec2.describe_snapshots(SnapshotIds=["snap-0123456789abcdef0"])
    assert info.value.response["Error"]["Code"] == "InvalidSnapshot.NotFound"
    with pytest.raises(ClientError) as info:  # a snapshot lives in its region only
        strata_server.client("ec2", region="us-west-2").create_volume(
            AvailabilityZone="us-west-2a", SnapshotId=snap
        )
    assert info.value.response["Error"]["Code"] == "InvalidSnapshot.NotFound"
    with pytest.raises(ClientError) as info:
        ec2.create_volume(AvailabilityZone=AZ, SnapshotId=snap, Size=1, VolumeType="st1")
    assert info.value.response["Error"]["Code"] == "InvalidParameterValue"


def test_an_encrypted_snapshot_only_yields_encrypted_volumes(strata_server) -> None:  # noqa: ANN001
    ec2 = strata_server.client("ec2")
    vol = ec2.create_volume(AvailabilityZone=AZ, Size=1, Encrypted=True)["VolumeId"]
    snap = ec2.create_snapshot(VolumeId=vol)["SnapshotId"]
    assert ec2.describe_snapshots(SnapshotIds=[snap])["Snapshots"][0]["Encrypted"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[snap], WaiterConfig=FAST)
    restored = ec2.create_volume(AvailabilityZone="us-east-1f", SnapshotId=snap)
    assert restored["Encrypted"] and restored["KmsKeyId"]
    with pytest.raises(ClientError) as info:
        ec2.modify_snapshot_attribute(SnapshotId=snap, CreateVolumePermission={"Add": [{"Group": "all"}]})
    assert info.value.response["Error"]["Code"] == "InvalidParameterValue"


def test_create_snapshots_of_an_instance(strata_server) -> None:  # noqa: ANN001
    ec2 = strata_server.client("ec2")
    zone = "us-east-1f"
    vols = [ec2.create_volume(AvailabilityZone=zone, Size=1)["VolumeId"] for _ in range(2)]
    ec2.get_waiter("volume_available").wait(VolumeIds=vols, WaiterConfig=FAST)
    reservations = ec2.describe_instances(Filters=[{"Name": "availability-zone", "Values": [zone]}])
    instance = reservations["Reservations"][0]["Instances"][0]["InstanceId"]
    for vol, device in zip(vols, ("/dev/sdm", "/dev/sdn"), strict=True):
        ec2.attach_volume(VolumeId=vol, InstanceId=instance, Device=device)
    out = ec2.create_snapshots(
        InstanceSpecification={"InstanceId": instance, "ExcludeDataVolumeIds": [vols[1]]},
        Description="instance",
    )
    assert [s["VolumeId"] for s in out["Snapshots"]] == [vols[0]]
    for vol in vols:
        ec2.detach_volume(VolumeId=vol)


@pytest.mark.skipif(not shutil.which("qemu-io"), reason="needs Debian qemu-utils")
def test_start_up_sweeps_what_a_crash_left_behind(strata_factory) -> None:  # noqa: ANN001
    import sqlite3

    server = strata_factory()
    ec2 = server.client("ec2")
    vol = ec2.create_volume(AvailabilityZone=AZ, Size=1)["VolumeId"]
    uri = attach(server, ec2, vol, AZ)
    qemu_io(uri, "write -P 9 0 512K", "flush")
    snap = ec2.create_snapshot(VolumeId=vol)["SnapshotId"]  # the block is published
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[snap], WaiterConfig=FAST)
    server.kill()
    root = Path(server.data_dir) / "ec2"
    (kept,) = block_files(server)
    # A block published but never committed, and a map whose record was never written.
    (root / "blocks" / "ff").mkdir(exist_ok=True)
    (root / "blocks" / "ff" / ("ff" * 32)).write_bytes(b"x" * 100)
    db = sqlite3.connect(root / "ec2.db")
    with db:
        db.execute("INSERT INTO block_map(owner, idx, block) VALUES ('vol-00000000', 0, ?)", (kept,))
    db.close()
    server.restart()
    assert block_files(server) == {kept}
    db = sqlite3.connect(root / "ec2.db")
    assert db.execute("SELECT COUNT(*) FROM block_map WHERE owner = 'vol-00000000'").fetchone() == (0,)
    db.close()
    uri = attach_uri(server, vol)
    qemu_io(uri, "read -P 9 0 512K")


def attach_uri(server, volume: str) -> str:  # noqa: ANN001
    import json
    import urllib.request

    with urllib.request.urlopen(f"{server.endpoint}/_strata/ebs/nbd?volume={volume}", timeout=10) as r:
        return json.loads(r.read())["uri"]


def fsck(server, *extra: str) -> tuple[int, dict]:  # noqa: ANN001
    """`strata fsck --json` of the (stopped) server's data dir: exit code and report."""
    import json
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "strata.cli", "fsck", "--data-dir", str(server.data_dir), "--json", *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.returncode, json.loads(proc.stdout)


@pytest.mark.skipif(not shutil.which("qemu-io"), reason="needs Debian qemu-utils")
def test_fsck_checks_block_files(strata_factory) -> None:  # noqa: ANN001
    server = strata_factory()
    ec2 = server.client("ec2")
    vol = ec2.create_volume(AvailabilityZone=AZ, Size=1)["VolumeId"]
    uri = attach(server, ec2, vol, AZ)
    qemu_io(uri, "write -P 5 0 512K", "write -P 6 512K 512K", "flush")
    snap = ec2.create_snapshot(VolumeId=vol)["SnapshotId"]  # the blocks are published
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[snap], WaiterConfig=FAST)
    server.stop()
    root = Path(server.data_dir) / "ec2" / "blocks"
    first, second = sorted(block_files(server))
    (root / first[:2] / first).unlink()  # data loss: reported, not "repaired"
    (root / "ee").mkdir(exist_ok=True)
    (root / "ee" / ("ee" * 32)).write_bytes(b"orphan")

    code, report = fsck(server, "--repair")
    kinds = {f["kind"] for f in report["findings"]}
    assert code == 1 and {"missing_block", "orphan_block"} <= kinds, report
    missing = next(f for f in report["findings"] if f["kind"] == "missing_block")
    assert snap in missing["detail"]  # who lost data is named
    assert not (root / "ee" / ("ee" * 32)).exists() and (root / second[:2] / second).exists()
    code, report = fsck(server)
    assert {f["kind"] for f in report["findings"]} == {"missing_block"}


@pytest.mark.skipif(not shutil.which("qemu-io"), reason="needs Debian qemu-utils")
def test_fsck_checks_volume_files_and_snapshots(strata_factory) -> None:  # noqa: ANN001
    import sqlite3

    server = strata_factory()
    ec2 = server.client("ec2")
    kept, lost = (ec2.create_volume(AvailabilityZone=AZ, Size=1)["VolumeId"] for _ in range(2))
    for vol, device in ((kept, "/dev/sdf"), (lost, "/dev/sdg")):
        qemu_io(
            attach(server, ec2, vol, AZ, device=device), "write -P 7 0 512K", "write -P 8 512K 512K", "flush"
        )
    snap = ec2.create_snapshot(VolumeId=kept)["SnapshotId"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[snap], WaiterConfig=FAST)
    server.stop()
    code, report = fsck(server)
    assert code == 0, report  # clean first
    root = Path(server.data_dir) / "ec2"
    (root / "volumes" / f"{lost}.img").unlink()  # a volume's data is gone
    (root / "volumes" / "vol-0123456789abcdef0.img").write_bytes(b"left by a crash")
    db = sqlite3.connect(root / "ec2.db")
    with db:  # a snapshot loses a block row; a deleted volume's state record is left
        db.execute("DELETE FROM block_map WHERE owner = ? AND idx = 1", (snap,))
        db.execute(
            "INSERT INTO documents(kind, id, body) VALUES ('volume-file', 'vol-0123456789abcdef0', '{}')"
        )
    db.close()

    code, report = fsck(server, "--repair")
    found = {(f["kind"], f["repaired"]) for f in report["findings"]}
    assert code == 1 and found == {
        ("missing_volume_file", False),
        ("orphan_volume_file", True),
        ("orphan_volume_state", True),
        ("snapshot_blocks_missing", False),
    }, report
    assert not (root / "volumes" / "vol-0123456789abcdef0.img").exists()
    assert (root / "volumes" / f"{kept}.img").exists()
    code, report = fsck(server)
    assert {f["kind"] for f in report["findings"]} == {"missing_volume_file", "snapshot_blocks_missing"}


@pytest.mark.skipif(not shutil.which("qemu-io"), reason="needs Debian qemu-utils")
def test_a_snapshot_is_billed_for_the_blocks_it_stores(strata_factory) -> None:  # noqa: ANN001
    """Snapshot GB-months of the blocks actually stored ($0.05 a GB-month), not of the volume's
    size: two 4 MiB patterns on a 100 GiB volume are two distinct 512 KiB blocks (content-
    addressed: stored once each); a later snapshot of one changed 4 KiB stores one block."""
    from urllib.parse import quote

    server = strata_factory()
    ec2 = server.client("ec2")
    start = server.admin("/_strata/clock")["now"]
    vol = ec2.create_volume(AvailabilityZone=AZ, Size=100)["VolumeId"]
    uri = attach(server, ec2, vol, AZ)
    qemu_io(uri, "write -P 1 0 4M", "write -P 2 1G 4M", "flush")
    first = ec2.create_snapshot(VolumeId=vol)["SnapshotId"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[first], WaiterConfig=FAST)
    qemu_io(uri, "write -P 3 0 4096", "flush")
    second = ec2.create_snapshot(VolumeId=vol)["SnapshotId"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[second], WaiterConfig=FAST)
    detach(ec2, vol)
    server.advance_clock("730h")

    def costs() -> dict[str, float]:
        doc = server.admin(f"/_strata/bill?from={quote(start)}&by=resource")
        return {line["resource"]: line["cost"] for line in doc["services"]["ec2"]["lines"]}

    month = costs()
    assert month[first] == pytest.approx(2 * 512 / 1024 / 1024 * 0.05, rel=1e-3)
    assert month[second] == pytest.approx(512 / 1024 / 1024 * 0.05, rel=1e-3)
    ec2.delete_snapshot(SnapshotId=first)
    server.advance_clock("730h")
    assert costs()[first] == pytest.approx(month[first], rel=1e-6)  # deleted: no more


def test_describe_snapshots_in_pages(strata_server, unique: str) -> None:  # noqa: ANN001
    ec2 = strata_server.client("ec2")
    vol = ec2.create_volume(AvailabilityZone=AZ, Size=1)["VolumeId"]
    snaps = [ec2.create_snapshot(VolumeId=vol, Description=unique)["SnapshotId"] for _ in range(7)]
    mine = [{"Name": "description", "Values": [unique]}]
    pages = ec2.get_paginator("describe_snapshots").paginate(
        OwnerIds=["self"], Filters=mine, PaginationConfig={"PageSize": 5}
    )
    sizes = [len(p["Snapshots"]) for p in pages]
    assert sizes == [5, 2]
    listed = ec2.describe_snapshots(OwnerIds=["self"], Filters=mine)["Snapshots"]
    assert sorted(s["SnapshotId"] for s in listed) == sorted(snaps)
    with pytest.raises(ClientError) as info:
        ec2.describe_snapshots(SnapshotIds=snaps[:1], MaxResults=5)
    assert info.value.response["Error"]["Code"] == "InvalidParameterCombination"
    with pytest.raises(ClientError) as info:
        ec2.describe_snapshots(OwnerIds=["self"], MaxResults=4)
    assert info.value.response["Error"]["Code"] == "InvalidParameterValue"
