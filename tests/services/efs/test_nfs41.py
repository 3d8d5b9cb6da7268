"""EFS over NFSv4.1 with full-size READs and WRITEs (nfs-rs, a userspace client: libnfs 4.0 speaks
NFSv4.0 only and cannot send a WRITE of 4,000 bytes or more).

Reads ask for a file's exact size: nfs-rs 0.8.7, reading across the end of a file with several
READs in flight, now and then fails its next call with NFS4ERR_RETRY_UNCACHED_REP (bench/efs_nfs.py).
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from bench.nfs41_client import Nfs41, Nfs41Error
from tests.services.efs.helpers import file_system_with_targets, fs_files, needs_nfs, nft_ruleset

nfs_rs = pytest.importorskip("nfs_rs", reason="needs nfs-rs (pip install nfs-rs; in the test extras)")
pytestmark = needs_nfs


def connect(ip: str, path: str = "", port: int | None = None) -> nfs_rs.Client:
    extra = f"&nfsport={port}" if port else ""
    return nfs_rs.Client.connect(
        f"nfs://{ip}/{path}?version=4.1{extra}", connect_timeout=30, operation_timeout=60
    )


def test_large_writes_and_reads_over_nfs41(strata_server) -> None:  # noqa: ANN001
    efs, fs_id, (a, b) = file_system_with_targets(strata_server, zones=2)
    data = os.urandom(5 * (1 << 20) + 777)
    with connect(a["IpAddress"]) as client_a, connect(b["IpAddress"]) as client_b:
        # ganesha negotiates its full transfer size: a MiB-sized WRITE and READ each.
        assert client_a.io_limits.max_write >= 1 << 19 and client_a.io_limits.max_read >= 1 << 19
        client_a.mkdir("dir")
        with client_a.open("dir/big.bin", "wb") as f:
            assert f.write(data) == len(data)
        # Closed on A, opened on B: all of it, byte for byte.
        with client_b.open("dir/big.bin", "rb") as f:
            assert f.read(len(data)) == data
        assert client_b.stat("dir/big.bin").size == len(data)
        with client_b.open("dir/big.bin", "r+b") as f:
            f.write_at(b"B" * 100_000, 2_000_000)
        with client_a.open("dir/big.bin", "rb") as f:
            assert (
                f.read_at(1_999_999, 100_002)
                == data[1_999_999:2_000_000] + b"B" * 100_000 + data[2_100_000:2_100_001]
            )
    size = efs.describe_file_systems(FileSystemId=fs_id)["FileSystems"][0]["SizeInBytes"]
    assert size["Value"] == 6144 + 4096 + -(-len(data) // 4096) * 4096


def test_bench_lean_client_reads_and_writes_through_a_mount_target(strata_server) -> None:  # noqa: ANN001
    """bench.nfs41_client (the bench's client of big files): its pipelined READs land in place and
    its WRITEs, committed, are on the disk byte for byte, across several 1 MiB operations and a
    file end that is not a multiple of four bytes."""
    _, fs_id, (mt,) = file_system_with_targets(strata_server, zones=1)
    files = fs_files(strata_server, fs_id)
    on_disk = os.urandom(3 * (1 << 20) + 4097)
    (files / "local.bin").write_bytes(on_disk)
    written = os.urandom(2 * (1 << 20) + 3)
    deadline = time.monotonic() + 30
    while True:  # the mount target's server may still be starting
        try:
            client = Nfs41(mt["IpAddress"], in_flight=2)
            break
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    with client:
        assert client.max_read == client.max_write == 1 << 20
        with client.open_file("local.bin") as f:
            buf = bytearray(len(on_disk) + 5000)
            assert f.readinto(buf) == len(on_disk)
            assert buf[: len(on_disk)] == on_disk
            assert f.readinto(buf) == 0
        with client.open_file("sub.bin", "wb") as f:
            f.write(written[:1_500_001])  # UNSTABLE WRITEs, then COMMIT
            f.write(memoryview(written)[1_500_001:])
        assert (files / "sub.bin").read_bytes() == written
        with client.open_file("sub.bin", "wb") as f:  # opened to write: truncated
            f.write(b"x")
        assert (files / "sub.bin").read_bytes() == b"x"
        with pytest.raises(Nfs41Error) as e:
            client.open_file("missing.bin")
        assert (e.value.status, e.value.op) == (2, 18)  # NFS4ERR_NOENT from OPEN


def test_access_point_over_nfs41(strata_server) -> None:  # noqa: ANN001
    efs, fs_id, (mt,) = file_system_with_targets(strata_server, zones=1)
    ip = mt["IpAddress"]
    aps = [
        efs.create_access_point(
            FileSystemId=fs_id,
            PosixUser={"Uid": uid, "Gid": uid},
            RootDirectory={
                "Path": f"/home/{uid}",
                "CreationInfo": {"OwnerUid": uid, "OwnerGid": uid, "Permissions": "700"},
            },
        )["AccessPointId"]
        for uid in (1001, 1002)
    ]
    data = os.urandom(3 << 20)
    with connect(ip, aps[0], 2050) as client:
        with client.open("big.bin", "wb") as f:
            f.write(data)
        info = client.stat("big.bin")
        assert (info.uid, info.gid, info.size) == (1001, 1001, len(data))
    with connect(ip, aps[1], 2050) as other:
        with pytest.raises(nfs_rs.NfsError):
            other.stat("big.bin")  # each access point its own root
    with connect(ip) as root:
        assert root.stat("home/1001/big.bin").uid == 1001
        with root.open("home/1001/big.bin", "rb") as f:
            assert f.read(len(data)) == data


def test_provisioned_throughput_is_enforced(strata_factory) -> None:  # noqa: ANN001
    # A server of its own: the day it moves the clock would expire other tests' presigned URLs.
    strata_server = strata_factory()
    efs, fs_id, (mt,) = file_system_with_targets(
        strata_server, zones=1, ThroughputMode="provisioned", ProvisionedThroughputInMibps=1.0
    )
    key = fs_id.replace("-", "_")
    assert f"limit {key} " in nft_ruleset()
    data = os.urandom(5 << 20)
    with connect(mt["IpAddress"]) as client:
        # Writes at 1 MiB/s after a burst of 2 MiB (the bucket holds a second of the rate plus
        # 1 MiB): 5 MiB take 3 s; reads at three times that rate, 15 MiB after 4 MiB take 3.7 s.
        # (Lower bounds only: a loaded machine makes it slower, never faster.)
        t = time.monotonic()
        with client.open("big.bin", "wb") as f:
            f.write(data)
        assert time.monotonic() - t > 2.0
        t = time.monotonic()
        for _ in range(3):
            with client.open("big.bin", "rb") as f:
                assert f.read(len(data)) == data
        assert time.monotonic() - t > 2.0
    # The limit follows UpdateFileSystem and the mount targets.
    efs.update_file_system(FileSystemId=fs_id, ProvisionedThroughputInMibps=2.0)
    assert "rate over 6 mbytes/second" in nft_ruleset().split(f"limit {key} ", 1)[1]
    efs.delete_mount_target(MountTargetId=mt["MountTargetId"])
    assert key not in nft_ruleset()
    efs.create_mount_target(FileSystemId=fs_id, SubnetId=mt["SubnetId"])
    assert f"limit {key} " in nft_ruleset()
    strata_server.advance_clock("25h")  # the increase to 2 MiB/s holds the mode for a day
    efs.update_file_system(FileSystemId=fs_id, ThroughputMode="elastic")
    assert_elastic(key)


def assert_elastic(key: str) -> None:
    """Elastic's us-east-1 ceilings: writes (all received) 5 GiB/s; reads 60 GiB/s, above what one
    kernel bucket holds, so held by four buckets of 15 GiB/s dealt packets in turn."""
    ruleset = nft_ruleset()
    assert "rate over 5120 mbytes/second" in ruleset.split(f"limit {key} ", 1)[1].split("}", 1)[0]
    assert f"limit {key}_send " not in ruleset and f"counter {key}_sent" in ruleset
    for i in range(4):
        assert (
            "rate over 15360 mbytes/second" in ruleset.split(f"limit {key}_send_{i} ", 1)[1].split("}", 1)[0]
        )
    received = [line for line in ruleset.splitlines() if "tcp dport" in line and f'"{key}"' in line]
    assert len(received) == 1  # each byte written takes one token (not three, as when metered)
    assert not [line for line in ruleset.splitlines() if "tcp sport" in line and f'"{key}"' in line]
    sent = [line for line in ruleset.splitlines() if "tcp sport" in line and f'"{key}_send_0"' in line]
    assert len(sent) == 1 and "numgen inc mod 4" in sent[0]


def test_reads_and_writes_share_the_provisioned_rate(strata_server) -> None:  # noqa: ANN001
    # AWS meters reads at a third and writes in full, summed against the provisioned rate.
    efs, fs_id, (mt,) = file_system_with_targets(strata_server, zones=1, ThroughputMode="elastic")
    data = os.urandom(12 << 20)
    with connect(mt["IpAddress"]) as client, connect(mt["IpAddress"]) as reading:
        with client.open("read-me.bin", "wb") as f:
            f.write(data)  # Elastic: not limited
        efs.update_file_system(
            FileSystemId=fs_id, ThroughputMode="provisioned", ProvisionedThroughputInMibps=1.0
        )
        errors: list[BaseException] = []

        def read() -> None:
            try:
                with reading.open("read-me.bin", "rb") as f:
                    assert f.read(len(data)) == data
            except BaseException as e:  # noqa: BLE001 - raised below
                errors.append(e)

        # 12 MiB read (metered 4) and 4 MiB written at once: 8 MiB metered at 1 MiB/s, less a
        # burst of 1 1/3 MiB: at least 6.6 s. Each direction held apart would take about 2.7 s.
        t = time.monotonic()
        reader = threading.Thread(target=read)
        reader.start()
        with client.open("written.bin", "wb") as f:
            f.write(os.urandom(4 << 20))
        reader.join(timeout=120)
        assert not errors and not reader.is_alive()
        assert time.monotonic() - t > 5.0


def test_bursting_is_held_to_its_burst_rate(strata_server) -> None:  # noqa: ANN001
    efs, fs_id, (mt,) = file_system_with_targets(strata_server, zones=1)  # Bursting, the default
    key = fs_id.replace("-", "_")
    # A small file system bursts at 100 MiB/s metered: a bucket of 300 MiB/s, writes costing 3.
    limit = nft_ruleset().split(f"limit {key} ", 1)[1]
    assert "rate over 300 mbytes/second" in limit.split("}", 1)[0]
    with connect(mt["IpAddress"]) as client:
        with client.open("f.bin", "wb") as f:
            f.write(os.urandom(1 << 20))
    # Its traffic is counted for its burst credits (written bytes through the NFS port).
    counted = nft_ruleset().split(f"counter {key}_received", 1)[1].split("}", 1)[0]
    assert int(counted.split("bytes ", 1)[1].split()[0]) > 1 << 20
    efs.update_file_system(FileSystemId=fs_id, ThroughputMode="elastic")
    assert_elastic(key)


def test_burst_credits_are_spent_by_what_is_metered(strata_factory) -> None:  # noqa: ANN001
    server = strata_factory()
    efs, fs_id, (mt,) = file_system_with_targets(server, zones=1)  # Bursting
    cw = server.client("cloudwatch")

    def latest(name: str) -> float:
        now = datetime.now(UTC)
        points = cw.get_metric_statistics(
            Namespace="AWS/EFS",
            MetricName=name,
            Dimensions=[{"Name": "FileSystemId", "Value": fs_id}],
            StartTime=now - timedelta(hours=1),
            EndTime=now + timedelta(hours=1),
            Period=60,
            Statistics=["Minimum"],
        )["Datapoints"]
        return max(points, key=lambda p: p["Timestamp"])["Minimum"]  # the last minute's

    server.advance_clock("1m")
    full = 2.1 * (1 << 40)  # a new file system's credits, also the most one under 1 TiB holds
    assert latest("BurstCreditBalance") == pytest.approx(full)
    assert latest("PermittedThroughput") == 100 * (1 << 20)  # its burst rate
    with connect(mt["IpAddress"]) as client:
        with client.open("spend.bin", "wb") as f:
            f.write(os.urandom(200 << 20))
    # 200 MiB written cost 200 MiB of credits; the minute and seconds passed since earned at most
    # about 70 MiB back (the baseline: 1 MiB/s for a file system this small).
    server.advance_clock("1m")
    spent = latest("BurstCreditBalance")
    assert spent < full - (64 << 20)
    # The balance is kept in the file system's record: a restart goes on from it.
    server.stop()
    server.start()
    cw = server.client("cloudwatch")
    server.advance_clock("1m")
    assert latest("BurstCreditBalance") < full - (64 << 20)


def test_elastic_ceilings_follow_the_region(strata_server) -> None:  # noqa: ANN001
    # Outside the large regions Elastic reads up to 10 GiB/s and writes up to 1 GiB/s: both fit a
    # kernel bucket, so both are held (what the servers send, reads, in a bucket of its own).
    efs, ec2 = (
        strata_server.client("efs", region="eu-west-3"),
        strata_server.client("ec2", region="eu-west-3"),
    )
    subnet = ec2.describe_subnets()["Subnets"][0]
    fs_id = efs.create_file_system(CreationToken=os.urandom(8).hex(), ThroughputMode="elastic")[
        "FileSystemId"
    ]
    mt = efs.create_mount_target(FileSystemId=fs_id, SubnetId=subnet["SubnetId"])
    key = fs_id.replace("-", "_")
    ruleset = nft_ruleset()
    assert "rate over 1024 mbytes/second" in ruleset.split(f"limit {key} ", 1)[1].split("}", 1)[0]
    assert "rate over 10240 mbytes/second" in ruleset.split(f"limit {key}_send ", 1)[1].split("}", 1)[0]
    sent = [line for line in ruleset.splitlines() if "tcp sport" in line and f'"{key}_send"' in line]
    assert len(sent) == 1
    with connect(mt["IpAddress"]) as client:  # traffic under the ceilings passes as before
        data = os.urandom(2 << 20)
        with client.open("f.bin", "wb") as f:
            f.write(data)
        with client.open("f.bin", "rb") as f:
            assert f.read(len(data)) == data
    efs.delete_mount_target(MountTargetId=mt["MountTargetId"])
    assert key not in nft_ruleset()
