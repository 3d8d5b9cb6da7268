"""AWS/EBS metrics from the NBD data path: the operations and bytes a client sent to a volume
(counted by qemu-io's requests), idle time, and gp2's burst balance."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta

import pytest

from tests.services.ec2.helpers import FAST, attach, detach, qemu_io

pytestmark = pytest.mark.skipif(
    not shutil.which("qemu-io"), reason="needs Debian qemu-utils (scripts/apt-packages.txt)"
)
KIB = 1024


def _stats(cw, name: str, volume: str, stat: str = "Sum") -> list[dict]:  # noqa: ANN001
    now = datetime.now(UTC)
    return cw.get_metric_statistics(
        Namespace="AWS/EBS",
        MetricName=name,
        Dimensions=[{"Name": "VolumeId", "Value": volume}],
        StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(hours=1),
        Period=7200,
        Statistics=[stat, "SampleCount"],
    )["Datapoints"]


def test_volume_operations_and_bytes_are_what_the_client_sent(strata_factory) -> None:  # noqa: ANN001
    server = strata_factory()
    ec2, cw = server.client("ec2"), server.client("cloudwatch")
    volume = ec2.create_volume(Size=1, AvailabilityZone="us-east-1a", VolumeType="gp2")["VolumeId"]
    ec2.get_waiter("volume_available").wait(VolumeIds=[volume], WaiterConfig=FAST)
    uri = attach(server, ec2, volume, "us-east-1a")
    qemu_io(uri, "write -P 0xab 0 64k", "write -P 0xcd 64k 64k", "write -P 0xef 1M 16k")
    qemu_io(uri, "read -P 0xab 0 64k", "read -P 0xef 1M 16k")
    server.advance_clock("2m")

    (writes,) = _stats(cw, "VolumeWriteOps", volume)
    assert writes["Sum"] == 3
    (written,) = _stats(cw, "VolumeWriteBytes", volume)
    assert (written["Sum"], written["SampleCount"]) == (144 * KIB, 3)  # SampleCount: the operations
    (reads,) = _stats(cw, "VolumeReadOps", volume)
    assert reads["Sum"] == 2
    (read,) = _stats(cw, "VolumeReadBytes", volume, stat="Average")
    assert read["Average"] == 40 * KIB  # the mean operation size
    (idle,) = _stats(cw, "VolumeIdleTime", volume, stat="Maximum")
    assert idle["Maximum"] == 0  # the minute of the I/O
    server.advance_clock("1m")
    (idle,) = _stats(cw, "VolumeIdleTime", volume, stat="Maximum")
    assert idle["Maximum"] == 60  # a minute without any
    (burst,) = _stats(cw, "BurstBalance", volume, stat="Minimum")
    assert 0 < burst["Minimum"] <= 100
    detach(ec2, volume)
