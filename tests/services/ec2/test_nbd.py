"""Volumes as real block devices: written and read over NBD by qemu-io and nbdcopy, snapshotted,
changed, snapshotted again, restored into another zone and another region, byte for byte."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services.ec2.helpers import FAST, attach, detach, qemu_io, read_all, write_file

pytestmark = pytest.mark.skipif(
    not (shutil.which("qemu-io") and shutil.which("nbdcopy")),
    reason="needs Debian qemu-utils and libnbd-bin (scripts/apt-packages.txt)",
)
MIB = 1024 * 1024
BLOCK = 512 * 1024
GIB = 1024 * MIB


def snapshot_stored(server, snapshot_id: str) -> int:  # noqa: ANN001
    events = server.admin("/_strata/meter?service=ec2")["events"]
    return sum(
        e["quantity"]
        for e in events
        if e["event"] == "SnapshotStored" and e["dims"].get("snapshot") == snapshot_id
    )


def test_pattern_snapshot_change_snapshot_restore_elsewhere(strata_server, tmp_path: Path) -> None:  # noqa: ANN001
    ec2 = strata_server.client("ec2")
    west = strata_server.client("ec2", region="us-west-2")
    volume = ec2.create_volume(Size=1, AvailabilityZone="us-east-1a", VolumeType="gp3")["VolumeId"]
    ec2.get_waiter("volume_available").wait(VolumeIds=[volume], WaiterConfig=FAST)
    uri = attach(strata_server, ec2, volume, "us-east-1a")

    # 16 MiB of random data at the start, a pattern at 512 MiB; the rest is never written.
    first = os.urandom(16 * MIB)
    (tmp_path / "first.img").write_bytes(first)
    write_file(uri, tmp_path / "first.img")
    qemu_io(uri, "write -P 0xab 512M 1M", "flush")
    snap1 = ec2.create_snapshot(VolumeId=volume, Description="first")["SnapshotId"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[snap1], WaiterConfig=FAST)
    image1 = read_all(uri, tmp_path / "image1.img")
    assert image1[: 16 * MIB] == first
    assert image1[512 * MIB : 513 * MIB] == b"\xab" * MIB
    assert image1[16 * MIB : 512 * MIB].count(0) == 496 * MIB

    # Change one 4 KiB piece of one block, then snapshot again.
    qemu_io(uri, "write -P 0x5a 4096 4096", "flush")
    snap2 = ec2.create_snapshot(VolumeId=volume, Description="second")["SnapshotId"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[snap2], WaiterConfig=FAST)
    image2 = bytearray(image1)
    image2[4096:8192] = b"\x5a" * 4096

    # The first snapshot stored every distinct written block (32 random ones, and the two pattern
    # blocks are one block); the second only the changed one.
    assert snapshot_stored(strata_server, snap1) == 33 * BLOCK
    assert snapshot_stored(strata_server, snap2) == BLOCK
    detach(ec2, volume)

    # Restore snapshot 1 in another zone, snapshot 2 in another region (through a copy).
    restored1 = ec2.create_volume(SnapshotId=snap1, AvailabilityZone="us-east-1c")["VolumeId"]
    ec2.get_waiter("volume_available").wait(VolumeIds=[restored1], WaiterConfig=FAST)
    uri1 = attach(strata_server, ec2, restored1, "us-east-1c")
    assert read_all(uri1, tmp_path / "restored1.img") == image1

    copy = west.copy_snapshot(SourceSnapshotId=snap2, SourceRegion="us-east-1")["SnapshotId"]
    west.get_waiter("snapshot_completed").wait(SnapshotIds=[copy], WaiterConfig=FAST)
    restored2 = west.create_volume(SnapshotId=copy, AvailabilityZone="us-west-2b", VolumeType="gp3")[
        "VolumeId"
    ]
    uri2 = attach(strata_server, west, restored2, "us-west-2b")
    assert read_all(uri2, tmp_path / "restored2.img") == bytes(image2)
    # And each the other way round: snapshot 2 in another zone, snapshot 1 in another region.
    zoned2 = ec2.create_volume(SnapshotId=snap2, AvailabilityZone="us-east-1d")["VolumeId"]
    uri_zoned2 = attach(strata_server, ec2, zoned2, "us-east-1d", device="/dev/sdj")
    assert identical(uri_zoned2, uri2) and not identical(uri_zoned2, uri1)
    copy1 = west.copy_snapshot(SourceSnapshotId=snap1, SourceRegion="us-east-1")["SnapshotId"]
    west.get_waiter("snapshot_completed").wait(SnapshotIds=[copy1], WaiterConfig=FAST)
    regioned1 = west.create_volume(SnapshotId=copy1, AvailabilityZone="us-west-2a")["VolumeId"]
    uri_regioned1 = attach(strata_server, west, regioned1, "us-west-2a", device="/dev/sdj")
    assert identical(uri_regioned1, uri1)
    for client, vol in ((ec2, zoned2), (west, regioned1), (west, restored2)):
        detach(client, vol)

    # The restore is a volume of its own: writing it leaves the snapshot alone.
    qemu_io(uri1, "write -P 0x11 0 1M", "flush")
    detach(ec2, restored1)
    again = ec2.create_volume(SnapshotId=snap1, AvailabilityZone="us-east-1a")["VolumeId"]
    uri3 = attach(strata_server, ec2, again, "us-east-1a", device="/dev/sdg")
    assert read_all(uri3, tmp_path / "again.img")[: 16 * MIB] == first


def identical(uri: str, other: str) -> bool:
    """Whether two devices hold the same bytes (qemu-img compare skips what both report as holes)."""
    args = ["qemu-img", "compare", "-f", "raw", "-F", "raw", uri, other]
    return subprocess.run(args, capture_output=True, timeout=120).returncode == 0


def test_a_flushed_write_survives_kill_9(strata_factory, tmp_path: Path) -> None:  # noqa: ANN001
    """Flushed writes by nbdcopy and qemu-io, and on raw connections batches of writes each
    closed by an answered FLUSH with more writes and a FLUSH still on their way at the kill
    (plain and encrypted volumes: an encrypted one keeps its block map in memory until a FLUSH
    writes it back). After kill -9 and a restart every write of an answered FLUSH is there."""
    from tests.services.ec2.test_nbd_protocol import connect

    server = strata_factory(extra_env={"STRATA_EBS_LIMITS": "off"})  # it reads the whole volume
    ec2 = server.client("ec2")
    volume = ec2.create_volume(Size=1, AvailabilityZone="us-east-1b")["VolumeId"]
    uri = attach(server, ec2, volume, "us-east-1b")
    data = os.urandom(3 * MIB + 12345)
    (tmp_path / "data.img").write_bytes(data)
    write_file(uri, tmp_path / "data.img")  # nbdcopy --flush: acknowledged by FLUSH
    qemu_io(uri, "write -P 0x77 700M 4096", "flush")
    streamed = {}
    for encrypted, device in ((False, "/dev/sdg"), (True, "/dev/sdh")):
        vol = ec2.create_volume(Size=1, AvailabilityZone="us-east-1b", Encrypted=encrypted)["VolumeId"]
        sock = connect(attach(server, ec2, vol, "us-east-1b", device=device))
        streamed[vol] = (sock, stream_writes(sock))
    server.kill()
    for sock, _ in streamed.values():
        sock.close()
    server.restart()
    ec2 = server.client("ec2")
    assert ec2.describe_volumes(VolumeIds=[volume])["Volumes"][0]["State"] == "in-use"
    uri = attach_uri(server, volume)
    image = read_all(uri, tmp_path / "after.img")
    assert image[: len(data)] == data
    assert image[700 * MIB : 700 * MIB + 4096] == b"\x77" * 4096
    for vol, (_, flushed) in streamed.items():
        assert_holds(attach_uri(server, vol), flushed)


def stream_writes(sock: socket.socket) -> dict[int, bytes]:
    """Four batches of writes, each closed by a FLUSH whose reply is awaited, then 48 more writes
    and a FLUSH sent and not awaited; returns what the answered FLUSHes cover (offset: bytes)."""
    from tests.services.ec2.test_nbd_protocol import FLUSH, WRITE, replies, request

    flushed: dict[int, bytes] = {}
    handle = 0
    for batch in range(4):
        sent = {}
        for i in range(8):
            offset = (batch * 8 + i) * 3 * MIB + 4096 * i  # unaligned to the blocks, apart
            sent[offset] = os.urandom(MIB + 512 * i)
            handle += 1
            sock.sendall(request(WRITE, handle, offset, len(sent[offset]), sent[offset]))
        handle += 1
        sock.sendall(request(FLUSH, handle, 0, 0))
        assert all(e == 0 for e, _ in replies(sock, {}, 9).values())
        flushed.update(sent)
    for i in range(48):  # elsewhere: in flight at the kill
        handle += 1
        sock.sendall(request(WRITE, handle, (200 + i) * MIB, MIB, os.urandom(MIB)))
    sock.sendall(request(FLUSH, handle + 1, 0, 0))
    return flushed


def assert_holds(uri: str, flushed: dict[int, bytes]) -> None:
    from tests.services.ec2.test_nbd_protocol import READ, connect, replies, request

    sock = connect(uri)
    for offset, data in flushed.items():
        sock.sendall(request(READ, 1, offset, len(data)))
        assert replies(sock, {1: len(data)}, 1) == {1: (0, data)}, offset
    sock.close()


def attach_uri(server, volume: str) -> str:  # noqa: ANN001
    import json
    import urllib.request

    with urllib.request.urlopen(f"{server.endpoint}/_strata/ebs/nbd?volume={volume}", timeout=10) as r:
        return json.loads(r.read())["uri"]


def test_nbd_serves_only_attached_volumes(strata_server, tmp_path: Path) -> None:  # noqa: ANN001
    ec2 = strata_server.client("ec2")
    volume = ec2.create_volume(Size=1, AvailabilityZone="us-east-1a")["VolumeId"]
    uri = attach(strata_server, ec2, volume, "us-east-1a", device="/dev/sdh")
    cli = [sys.executable, "-m", "strata.cli", "ebs", "nbd-uri", volume, "--endpoint", strata_server.endpoint]
    assert subprocess.run(cli, capture_output=True, text=True, timeout=60, check=True).stdout.strip() == uri
    info = subprocess.run(["nbdinfo", "--json", uri], capture_output=True, text=True, timeout=60, check=True)
    assert '"export-size": 1073741824' in info.stdout
    detach(ec2, volume)
    gone = subprocess.run(["nbdinfo", uri], capture_output=True, text=True, timeout=60)
    assert gone.returncode != 0


def data_extents(uri: str) -> list[tuple[int, int]]:
    """(offset, length) of the ranges NBD BLOCK_STATUS (base:allocation) reports as data."""
    import json

    out = subprocess.run(
        ["nbdinfo", "--map", "--json", uri], capture_output=True, text=True, timeout=60, check=True
    )
    extents = json.loads(out.stdout)
    assert sum(e["length"] for e in extents) == GIB  # the whole device, in order
    assert {e["type"] for e in extents} <= {0, 3}  # data, or a hole that reads as zeros
    return [(e["offset"], e["length"]) for e in extents if e["type"] == 0]


def test_block_status_reports_what_was_never_written(strata_server, tmp_path: Path) -> None:  # noqa: ANN001
    ec2 = strata_server.client("ec2")
    volume = ec2.create_volume(Size=1, AvailabilityZone="us-east-1a")["VolumeId"]
    uri = attach(strata_server, ec2, volume, "us-east-1a", device="/dev/sdi")
    assert data_extents(uri) == []
    qemu_io(uri, "write -P 1 0 1M", "write -P 2 512M 4096", "flush")
    assert data_extents(uri) == [(0, MIB), (512 * MIB, 4096)]
    # A volume restored from a snapshot: the snapshot's blocks (512 KiB) are data until written.
    snap = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[snap], WaiterConfig=FAST)
    restored = ec2.create_volume(SnapshotId=snap, AvailabilityZone="us-east-1a")["VolumeId"]
    uri2 = attach(strata_server, ec2, restored, "us-east-1a", device="/dev/sdj")
    assert data_extents(uri2) == [(0, MIB), (512 * MIB, BLOCK)]
    # nbdcopy skips the holes and still reads the device as it is.
    image = read_all(uri2, tmp_path / "restored.img")
    assert image[:MIB] == b"\x01" * MIB and image[512 * MIB : 512 * MIB + 4096] == b"\x02" * 4096
    assert image.count(0) == GIB - MIB - 4096
