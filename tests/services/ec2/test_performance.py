"""Each volume's IOPS and throughput on the NBD path: the token buckets' arithmetic per type
(gp3's baseline and provisioned values, gp2's burst on credits and its baseline once they are
spent, ModifyVolume keeping earned credits), and a limits-on server holding a default gp3 to
its 3,000 IOPS.

The buckets run on real time, so each check allows for the time its own loop took: a loop can
only earn tokens, which makes a wait shorter, never longer (no bound depends on machine speed)."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest

from strata.services.ec2.performance import MIB, VolumeLimiter, rates_of
from tests.services.ec2.helpers import attach

KIB = 1024


def volume(kind: str, size: int, **kw: int) -> dict:
    return {"id": "vol-test", "type": kind, "size": size, **kw}


def admit_many(limiter: VolumeLimiter, count: int, length: int) -> tuple[float, float]:
    """The wait the last of `count` back-to-back operations is told, and the seconds they took."""
    start = time.monotonic()
    wait = 0.0
    for _ in range(count):
        wait = limiter.admit(length)
    return wait, time.monotonic() - start


def assert_wait(got: tuple[float, float], expected: float) -> None:
    wait, took = got
    assert expected - took - 0.01 <= wait <= expected + 1e-6, (wait, took, expected)


@pytest.mark.parametrize(
    ("doc", "iops", "throughput", "burst_iops", "burst_throughput"),
    [
        (volume("gp3", 10, iops=3000, throughput=125), 3000, 125, 0, 0),
        (volume("gp3", 100, iops=16000, throughput=1000), 16000, 1000, 0, 0),
        (volume("gp2", 10), 100, 128, 3000, 0),  # 3 IOPS/GiB, at least 100; bursts to 3,000
        (volume("gp2", 500), 1500, 250, 3000, 0),
        (volume("gp2", 1000), 3000, 250, 0, 0),  # at 3,000 baseline: nothing to burst to
        (volume("gp2", 16384), 16000, 250, 0, 0),
        (volume("io2", 100, iops=50000), 50000, 4000, 0, 0),
        (volume("st1", 2048), 500, 80, 0, 500),  # 40 MiB/s per TiB, bursting to 250 per TiB
        (volume("sc1", 1024), 250, 12, 0, 80),
    ],
)
def test_each_type_gets_its_rates(
    doc: dict, iops: int, throughput: int, burst_iops: int, burst_throughput: int
) -> None:
    r = rates_of(doc)
    assert (r.iops, r.throughput / MIB, r.burst_iops, r.burst_throughput / MIB) == (
        iops,
        throughput,
        burst_iops,
        burst_throughput,
    )


def test_a_default_gp3_is_held_to_3000_iops_and_125_mib_per_second() -> None:
    # 6,000 small operations: 2 s of I/O at 3,000 IOPS, less the 50 ms the bucket holds.
    assert_wait(admit_many(VolumeLimiter(volume("gp3", 10, iops=3000, throughput=125)), 6000, 4 * KIB), 1.95)
    # 250 MiB in 1 MiB operations (4 I/Os each: 1,000 I/Os): 2 s at 125 MiB/s.
    assert_wait(admit_many(VolumeLimiter(volume("gp3", 10, iops=3000, throughput=125)), 250, MIB), 1.95)


def test_modify_volume_raises_the_limits_at_once() -> None:
    limiter = VolumeLimiter(volume("gp3", 100, iops=3000, throughput=125))
    limiter.retune(volume("gp3", 100, iops=6000, throughput=250))
    assert_wait(admit_many(limiter, 12000, 4 * KIB), 1.95)


def test_gp2_bursts_on_credits_then_falls_to_its_baseline() -> None:
    small = volume("gp2", 10)  # baseline 100 IOPS
    assert_wait(admit_many(VolumeLimiter(small), 6000, 4 * KIB), 1.95)  # the burst: 3,000 IOPS
    limiter = VolumeLimiter(small)
    assert limiter.credits is not None and limiter.credits.tokens == 5_400_000  # a new volume's credits
    limiter.credits.tokens = 0  # spent
    assert_wait(admit_many(limiter, 100, 4 * KIB), 1.0)  # the baseline: 100 IOPS
    # Credits earned are kept across ModifyVolume; a gp2 at 3,000 baseline has none to spend.
    limiter.credits.tokens = 1234.0
    limiter.retune(volume("gp2", 20))
    assert 1234.0 <= limiter.credits.tokens <= 1234.0 + 60 * 5
    assert VolumeLimiter(volume("gp2", 1000)).credits is None


@pytest.mark.skipif(not shutil.which("qemu-img"), reason="needs Debian qemu-utils")
def test_a_limits_on_server_holds_a_default_gp3_to_its_iops(strata_factory) -> None:  # noqa: ANN001
    """6,000 random 4 KiB reads at queue depth 32 cannot finish in much under 2 s at 3,000 IOPS
    (a lower bound: a slow machine only takes longer)."""
    server = strata_factory(extra_env={"STRATA_EBS_LIMITS": "on"})
    ec2 = server.client("ec2")
    vol = ec2.create_volume(AvailabilityZone="us-east-1a", Size=8, VolumeType="gp3")["VolumeId"]
    uri = attach(server, ec2, vol, "us-east-1a")
    args = ["qemu-img", "bench", "-f", "raw", "-c", "6000", "-d", "32", "-s", "4k", "-S", "1M", uri]
    start = time.monotonic()
    subprocess.run(args, check=True, capture_output=True, timeout=300)
    assert time.monotonic() - start >= 1.5
