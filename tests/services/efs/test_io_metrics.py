"""AWS/EFS I/O metrics from the NFS servers' own counters: what a real client read, wrote and did
to metadata shows up in CloudWatch as AWS documents the metrics (Sum bytes, SampleCount
operations; MeteredIOBytes with reads at a third; PercentIOLimit for General Purpose only)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

from tests.services.efs.helpers import file_system_with_targets, needs_nfs

nfs_rs = pytest.importorskip("nfs_rs", reason="needs nfs-rs (pip install nfs-rs; in the test extras)")
pytestmark = needs_nfs
MIB = 1 << 20


def stats(cw, fs_id: str, name: str) -> dict:  # noqa: ANN001
    """The metric's statistics summed over every minute published so far."""
    now = datetime.now(UTC)
    points = cw.get_metric_statistics(
        Namespace="AWS/EFS",
        MetricName=name,
        Dimensions=[{"Name": "FileSystemId", "Value": fs_id}],
        StartTime=now - timedelta(days=2),
        EndTime=now + timedelta(days=2),
        Period=86400 * 4,
        Statistics=["Sum", "SampleCount", "Minimum", "Maximum", "Average"],
    )["Datapoints"]
    assert len(points) <= 1
    return points[0] if points else {}


def test_io_metrics_count_what_a_client_did(strata_factory) -> None:  # noqa: ANN001
    server = strata_factory()  # moves the clock
    efs, fs_id, (a, b) = file_system_with_targets(server, zones=2, ThroughputMode="elastic")
    idle = efs.create_file_system(CreationToken=os.urandom(8).hex(), PerformanceMode="maxIO")["FileSystemId"]
    cw = server.client("cloudwatch")
    data = os.urandom(3 * MIB)
    url = f"nfs://{a['IpAddress']}/?version=4.1"
    with nfs_rs.Client.connect(url, connect_timeout=30, operation_timeout=60) as client:
        client.mkdir("dir")
        with client.open("dir/f.bin", "wb") as f:
            f.write(data)
    url = f"nfs://{b['IpAddress']}/?version=4.1"  # the other mount target: summed per file system
    with nfs_rs.Client.connect(url, connect_timeout=30, operation_timeout=60) as client:
        for _ in range(2):
            with client.open("dir/f.bin", "rb") as f:
                assert f.read(len(data)) == data
        client.stat("dir/f.bin")
    server.advance_clock("1m")

    written = stats(cw, fs_id, "DataWriteIOBytes")
    assert written["Sum"] == len(data) and written["Unit"] == "Bytes"
    assert written["SampleCount"] >= 3  # WRITEs of at most about 1 MiB
    assert written["Minimum"] == written["Maximum"] == pytest.approx(len(data) / written["SampleCount"])
    read = stats(cw, fs_id, "DataReadIOBytes")
    assert read["Sum"] == 2 * len(data) and read["SampleCount"] >= 6
    meta = stats(cw, fs_id, "MetadataIOBytes")
    assert meta["SampleCount"] >= 5  # mkdir, opens, closes, the stat ...
    assert meta["Sum"] == meta["SampleCount"] * 4096
    total = stats(cw, fs_id, "TotalIOBytes")
    assert total["Sum"] == written["Sum"] + read["Sum"] + meta["Sum"]
    assert total["SampleCount"] == written["SampleCount"] + read["SampleCount"] + meta["SampleCount"]
    metered = stats(cw, fs_id, "MeteredIOBytes")
    assert metered["Sum"] == pytest.approx(written["Sum"] + read["Sum"] / 3 + meta["Sum"])
    # Elastic's PermittedThroughput: its write ceiling (us-east-1: 5 GiB/s).
    assert stats(cw, fs_id, "PermittedThroughput")["Maximum"] == 5 * (1 << 30)
    percent = stats(cw, fs_id, "PercentIOLimit")
    assert 0 < percent["Maximum"] < 1 and percent["Unit"] == "Percent"

    # The next minute counts only what happened in it: nothing.
    server.advance_clock("1m")
    assert stats(cw, fs_id, "DataWriteIOBytes")["Sum"] == len(data)
    assert stats(cw, fs_id, "PercentIOLimit")["Minimum"] == 0
    # Max I/O file systems have no PercentIOLimit (AWS submits it for General Purpose only).
    assert stats(cw, idle, "PercentIOLimit") == {}
    assert stats(cw, idle, "TotalIOBytes") == {}
