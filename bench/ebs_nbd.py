"""EBS through NBD: what qemu-img sees from a volume, with the performance limits on and off.

Starts two private servers (limits on, limits off), attaches a volume to each and runs
`qemu-img bench` against its NBD URI: 4 KiB random-ish reads and writes at queue depth 32 (IOPS),
1 MiB sequential reads and writes (throughput). With limits on, a default gp3 (3,000 IOPS,
125 MiB/s) is measured, then the same volume after ModifyVolume to 6,000 IOPS / 250 MiB/s; a
gp2 of 100 GiB shows its burst. With limits off, nbdkit serving a file of the same size on
the same disk is measured beside it (the bound for a userspace NBD server). Needs Debian
qemu-utils (and nbdkit, libnbd-bin for the baseline).

Usage: python bench/ebs_nbd.py [--seconds-per-run 5]
Prints one JSON line per measurement.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.services.ec2.helpers import attach  # noqa: E402
from tests.strata_process import StrataProcess, free_port  # noqa: E402


def qemu_bench(uri: str, *, size: str, count: int, depth: int, write: bool) -> float:
    """Seconds qemu-img bench took for `count` requests of `size`."""
    args = ["qemu-img", "bench", "-f", "raw", "-c", str(count), "-d", str(depth), "-s", size, "-S", "65536"]
    if write:
        args += ["-w", "--no-drain"]
    out = subprocess.run([*args, uri], capture_output=True, text=True, check=True, timeout=600).stdout
    return float(re.search(r"Run completed in ([0-9.]+) seconds", out).group(1))


def measure(label: str, uri: str, seconds: float, expected_iops: float, expected_mib: float) -> None:
    for write in (True, False):  # writes first, so the reads read data
        count = int(max(expected_iops, 500) * seconds)
        took = qemu_bench(uri, size="4k", count=count, depth=32, write=write)
        print(
            json.dumps(
                {
                    "run": label,
                    "io": "write" if write else "read",
                    "size": "4KiB",
                    "iops": round(count / took),
                }
            )
        )
        count = int(max(expected_mib, 50) * seconds)
        took = qemu_bench(uri, size="1M", count=count, depth=4, write=write)
        mib = count / took
        print(
            json.dumps(
                {"run": label, "io": "write" if write else "read", "size": "1MiB", "MiB/s": round(mib, 1)}
            )
        )


def nbdkit_baseline(tmp: Path, seconds: float) -> None:
    """The bound for a userspace NBD server: nbdkit serving a file of the same size, same disk."""
    if not shutil.which("nbdkit"):
        print(json.dumps({"run": "nbdkit file", "skipped": "nbdkit is not installed"}))
        return
    image = tmp / "nbdkit.img"
    with open(image, "wb") as f:
        f.truncate(16 * 1024**3)
    port = free_port()
    proc = subprocess.Popen(["nbdkit", "-f", "-i", "127.0.0.1", "-p", str(port), "file", f"file={image}"])
    try:
        uri = f"nbd://127.0.0.1:{port}/"
        deadline = time.monotonic() + 30
        while subprocess.run(["nbdinfo", "--size", uri], capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("nbdkit did not start")
            time.sleep(0.1)
        measure("nbdkit file (16 GiB, same disk)", uri, seconds, 20000, 1000)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds-per-run", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for limits in ("on", "off"):
            server = StrataProcess(
                Path(tmp) / f"data-{limits}", extra_env={"STRATA_EBS_LIMITS": limits}
            ).start()
            try:
                ec2 = server.client("ec2")
                vol = ec2.create_volume(AvailabilityZone="us-east-1a", Size=16, VolumeType="gp3")["VolumeId"]
                uri = attach(server, ec2, vol, "us-east-1a")
                if limits == "off":
                    measure("limits off (gp3 16 GiB)", uri, args.seconds_per_run, 20000, 1000)
                    nbdkit_baseline(Path(tmp), args.seconds_per_run)
                    continue
                measure("gp3 default (3000 IOPS, 125 MiB/s)", uri, args.seconds_per_run, 3000, 125)
                ec2.modify_volume(VolumeId=vol, Iops=6000, Throughput=250)
                time.sleep(0.5)
                measure("gp3 after ModifyVolume (6000 IOPS, 250 MiB/s)", uri, args.seconds_per_run, 6000, 250)
                gp2 = ec2.create_volume(AvailabilityZone="us-east-1a", Size=100, VolumeType="gp2")["VolumeId"]
                uri = attach(server, ec2, gp2, "us-east-1a", device="/dev/sdg")
                measure(
                    "gp2 100 GiB (300 IOPS baseline, burst 3000 on credits)",
                    uri,
                    args.seconds_per_run,
                    3000,
                    128,
                )
            finally:
                server.stop()


if __name__ == "__main__":
    main()
