"""The EBS direct APIs through boto3, over the same snapshots EC2 and NBD make and read."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.services.ec2.helpers import FAST, attach, detach, qemu_io, read_all

BLOCK = 512 * 1024
needs_qemu = pytest.mark.skipif(
    not (shutil.which("qemu-io") and shutil.which("nbdcopy")), reason="needs Debian qemu-utils and libnbd-bin"
)


def checksum(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def put(ebs, snapshot_id: str, idx: int, data: bytes) -> None:  # noqa: ANN001
    ebs.put_snapshot_block(
        SnapshotId=snapshot_id,
        BlockIndex=idx,
        BlockData=data,
        DataLength=len(data),
        Checksum=checksum(data),
        ChecksumAlgorithm="SHA256",
    )


@needs_qemu
def test_a_snapshot_of_a_volume_is_readable_block_by_block(strata_server) -> None:  # noqa: ANN001
    ec2, ebs = strata_server.client("ec2"), strata_server.client("ebs")
    vol = ec2.create_volume(AvailabilityZone="us-east-1c", Size=1)["VolumeId"]
    uri = attach(strata_server, ec2, vol, "us-east-1c", device="/dev/sdp")
    qemu_io(uri, "write -P 0x21 0 512K", "write -P 0x22 5M 4096", "flush")
    first = ec2.create_snapshot(VolumeId=vol)["SnapshotId"]
    qemu_io(uri, "write -P 0x23 100M 512K", "flush")
    second = ec2.create_snapshot(VolumeId=vol)["SnapshotId"]
    detach(ec2, vol)

    listed = ebs.list_snapshot_blocks(SnapshotId=first)
    assert listed["BlockSize"] == BLOCK and listed["VolumeSize"] == 1
    assert [b["BlockIndex"] for b in listed["Blocks"]] == [0, 10]
    block = ebs.get_snapshot_block(
        SnapshotId=first, BlockIndex=10, BlockToken=listed["Blocks"][1]["BlockToken"]
    )
    data = block["BlockData"].read()
    assert data == b"\x22" * 4096 + bytes(BLOCK - 4096)
    assert block["Checksum"] == checksum(data) and block["DataLength"] == BLOCK

    changed = ebs.list_changed_blocks(FirstSnapshotId=first, SecondSnapshotId=second)["ChangedBlocks"]
    assert [c["BlockIndex"] for c in changed] == [200]
    assert "FirstBlockToken" not in changed[0] and changed[0]["SecondBlockToken"]
    with pytest.raises(ClientError) as info:
        ebs.get_snapshot_block(SnapshotId=second, BlockIndex=0, BlockToken=listed["Blocks"][1]["BlockToken"])
    assert info.value.response["Error"]["Code"] == "ValidationException"


@needs_qemu
def test_a_snapshot_written_block_by_block_restores_to_a_volume(strata_server, tmp_path: Path) -> None:  # noqa: ANN001
    ec2, ebs = strata_server.client("ec2"), strata_server.client("ebs")
    started = ebs.start_snapshot(VolumeSize=1, Description="direct", Tags=[{"Key": "k", "Value": "v"}])
    snap = started["SnapshotId"]
    assert started["Status"] == "pending" and started["BlockSize"] == BLOCK
    blocks = {0: os.urandom(BLOCK), 7: os.urandom(BLOCK), 2047: os.urandom(BLOCK)}
    for idx, data in blocks.items():
        put(ebs, snap, idx, data)
    with pytest.raises(ClientError) as info:
        ebs.put_snapshot_block(
            SnapshotId=snap,
            BlockIndex=3,
            BlockData=blocks[0],
            DataLength=BLOCK,
            Checksum=checksum(b"other"),
            ChecksumAlgorithm="SHA256",
        )
    assert info.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as info:
        put(ebs, snap, 2048, blocks[0])  # beyond a 1 GiB volume
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert ec2.describe_snapshots(SnapshotIds=[snap])["Snapshots"][0]["State"] == "pending"
    with pytest.raises(ClientError) as info:
        ec2.create_volume(AvailabilityZone="us-east-1d", SnapshotId=snap)
    assert info.value.response["Error"]["Code"] == "IncorrectState"
    with pytest.raises(ClientError) as info:
        ebs.complete_snapshot(SnapshotId=snap, ChangedBlocksCount=2)
    assert info.value.response["Error"]["Code"] == "ValidationException"
    aggregate = checksum(b"".join(hashlib.sha256(blocks[i]).digest() for i in sorted(blocks)))
    done = ebs.complete_snapshot(
        SnapshotId=snap,
        ChangedBlocksCount=3,
        Checksum=aggregate,
        ChecksumAlgorithm="SHA256",
        ChecksumAggregationMethod="LINEAR",
    )
    assert done["Status"] == "completed"
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[snap], WaiterConfig=FAST)

    vol = ec2.create_volume(AvailabilityZone="us-east-1d", SnapshotId=snap)["VolumeId"]
    uri = attach(strata_server, ec2, vol, "us-east-1d", device="/dev/sdo")
    image = read_all(uri, tmp_path / "image.img")
    for idx, data in blocks.items():
        assert image[idx * BLOCK : (idx + 1) * BLOCK] == data
    assert image[BLOCK : 7 * BLOCK].count(0) == 6 * BLOCK
    detach(ec2, vol)

    # A child of it: starts with the parent's blocks, changes one.
    child = ebs.start_snapshot(VolumeSize=1, ParentSnapshotId=snap)["SnapshotId"]
    put(ebs, child, 7, b"\x01" * BLOCK)
    ebs.complete_snapshot(SnapshotId=child, ChangedBlocksCount=1)
    assert [b["BlockIndex"] for b in ebs.list_snapshot_blocks(SnapshotId=child)["Blocks"]] == [0, 7, 2047]
    changed = ebs.list_changed_blocks(FirstSnapshotId=snap, SecondSnapshotId=child)["ChangedBlocks"]
    assert [c["BlockIndex"] for c in changed] == [7]


def test_an_unfinished_snapshot_times_out_into_error(strata_factory) -> None:  # noqa: ANN001
    server = strata_factory()
    ebs, ec2 = server.client("ebs"), server.client("ec2")
    snap = ebs.start_snapshot(VolumeSize=1, Timeout=10)["SnapshotId"]
    put(ebs, snap, 0, os.urandom(BLOCK))
    server.advance_clock("11m")
    assert ec2.describe_snapshots(SnapshotIds=[snap])["Snapshots"][0]["State"] == "error"
    with pytest.raises(ClientError) as info:
        ebs.complete_snapshot(SnapshotId=snap, ChangedBlocksCount=1)
    assert info.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as info:
        ebs.list_snapshot_blocks(SnapshotId="snap-0123456789abcdef0")
    assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"


@needs_qemu
def test_snapshots_taken_during_writes_are_point_in_time(strata_server) -> None:  # noqa: ANN001
    """A writer rewrites blocks 0-7 with generation g (whole blocks, in order) while snapshots are
    taken: every snapshot holds whole writes only, and generations never increase with the index
    (block i of generation g is written before block i+1 of generation g)."""
    import subprocess

    ec2, ebs = strata_server.client("ec2"), strata_server.client("ebs")
    vol = ec2.create_volume(AvailabilityZone="us-east-1e", Size=1)["VolumeId"]
    uri = attach(strata_server, ec2, vol, "us-east-1e", device="/dev/sdj")
    commands = [f"write -P {g} {i * BLOCK} {BLOCK}" for g in range(1, 41) for i in range(8)]
    args = ["qemu-io", "-f", "raw"]
    for c in commands:
        args += ["-c", c]
    writer = subprocess.Popen([*args, uri], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    snapshots = []
    try:
        while writer.poll() is None and len(snapshots) < 15:
            snapshots.append(ec2.create_snapshot(VolumeId=vol)["SnapshotId"])
    finally:
        writer.wait(timeout=120)
    detach(ec2, vol)
    assert snapshots
    for snap in snapshots:
        gens = []
        blocks = {
            b["BlockIndex"]: b["BlockToken"] for b in ebs.list_snapshot_blocks(SnapshotId=snap)["Blocks"]
        }
        for i in range(8):
            if i not in blocks:
                gens.append(0)
                continue
            data = ebs.get_snapshot_block(SnapshotId=snap, BlockIndex=i, BlockToken=blocks[i])[
                "BlockData"
            ].read()
            assert data == bytes([data[0]]) * BLOCK, (snap, i)  # one whole write, never torn
            gens.append(data[0])
        assert gens == sorted(gens, reverse=True) and gens[0] - gens[-1] <= 1, (snap, gens)
