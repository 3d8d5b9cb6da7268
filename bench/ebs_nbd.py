"""EBS through NBD: what qemu-img sees from a volume, with the performance limits on and off.

Starts two private servers (limits on, limits off), attaches a volume to each and runs
`qemu-img bench` against its NBD URI: 4 KiB random-ish reads and writes at queue depth 32 (IOPS),
1 MiB sequential reads and writes (throughput). With limits on, a default gp3 (3,000 IOPS,
125 MiB/s) is measured, then the same volume after ModifyVolume to 6,000 IOPS / 250 MiB/s; a
gp2 of 100 GiB shows its burst. With limits off, nbdkit serving a file of the same size on
the same disk is measured beside it (the bound for a userspace NBD server): first sequential
write and read of a whole volume with nbdcopy (fresh random data each round, Strata and nbdkit
taking turns; the issue's bar is a ratio >= 0.5), then qemu-img bench against both. Needs Debian
qemu-utils (and nbdkit, libnbd-bin for the baseline).

Usage: python bench/ebs_nbd.py [--seconds-per-run 5] [--limits on|off|both] [--rounds 3]
Prints one JSON line per measurement.
"""

from __future__ import annotations

import argparse
import json
import os
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


class Nbdkit:
    """nbdkit serving a file of `size` bytes on the same disk: the bound for a userspace server."""

    def __init__(self, tmp: Path, size: int) -> None:
        self.image = tmp / f"nbdkit-{size}.img"
        with open(self.image, "wb") as f:
            f.truncate(size)
        port = free_port()
        self.proc = subprocess.Popen(
            ["nbdkit", "-f", "-i", "127.0.0.1", "-p", str(port), "file", f"file={self.image}"]
        )
        self.uri = f"nbd://127.0.0.1:{port}/"
        deadline = time.monotonic() + 30
        while subprocess.run(["nbdinfo", "--size", self.uri], capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("nbdkit did not start")
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.image.unlink()


def nbdcopy_seconds(source: str, target: str, *, flush: bool) -> float:
    start = time.monotonic()
    subprocess.run(["nbdcopy", *(["--flush"] if flush else []), source, target], check=True, timeout=900)
    return time.monotonic() - start


def sequential_side_by_side(strata_uri: str, tmp: Path, gib: int, rounds: int) -> None:
    """Sequential write (nbdcopy --flush of fresh random data: nothing for either side to skip or
    share) and read (nbdcopy to null:) of a whole volume, Strata and nbdkit taking turns."""
    size = gib * 1024**3
    kit = Nbdkit(tmp, size)
    source = tmp / "random.img"
    try:
        for n in range(rounds):
            with open(source, "wb") as f:
                for _ in range(size // (64 * 1024**2)):
                    f.write(os.urandom(64 * 1024**2))
                f.flush()
                os.fsync(f.fileno())  # its write-back must not land in either side's time
            pairs = [("strata", strata_uri), ("nbdkit", kit.uri)]
            if n % 2:
                pairs.reverse()
            took = {}
            for name, uri in pairs:
                took[name, "write"] = nbdcopy_seconds(str(source), uri, flush=True)
            for name, uri in pairs:
                took[name, "read"] = nbdcopy_seconds(uri, "null:", flush=False)
            for io in ("write", "read"):
                mine, theirs = size / 1024**2 / took["strata", io], size / 1024**2 / took["nbdkit", io]
                print(
                    json.dumps(
                        {
                            "run": f"sequential {io}, {gib} GiB, nbdcopy, round {n + 1}",
                            "strata_MiB/s": round(mine),
                            "nbdkit_MiB/s": round(theirs),
                            "ratio": round(mine / theirs, 2),
                        }
                    ),
                    flush=True,
                )
    finally:
        source.unlink(missing_ok=True)
        kit.stop()


def nbdkit_baseline(tmp: Path, seconds: float) -> None:
    """qemu-img bench against nbdkit serving a 16 GiB file (beside the limits-off run)."""
    if not shutil.which("nbdkit"):
        print(json.dumps({"run": "nbdkit file", "skipped": "nbdkit is not installed"}))
        return
    kit = Nbdkit(tmp, 16 * 1024**3)
    try:
        measure("nbdkit file (16 GiB, same disk)", kit.uri, seconds, 20000, 1000)
    finally:
        kit.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds-per-run", type=float, default=5.0)
    parser.add_argument(
        "--limits",
        choices=("on", "off", "both"),
        default="both",
        help="off: only the limits-off run beside nbdkit (the speed bar)",
    )
    parser.add_argument("--sequential-gib", type=int, default=1, help="volume size for the nbdcopy runs")
    parser.add_argument("--rounds", type=int, default=3, help="side-by-side nbdcopy rounds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for limits in ("on", "off") if args.limits == "both" else (args.limits,):
            server = StrataProcess(
                Path(tmp) / f"data-{limits}", extra_env={"STRATA_EBS_LIMITS": limits}
            ).start()
            try:
                ec2 = server.client("ec2")
                vol = ec2.create_volume(AvailabilityZone="us-east-1a", Size=16, VolumeType="gp3")["VolumeId"]
                uri = attach(server, ec2, vol, "us-east-1a")
                if limits == "off":
                    if shutil.which("nbdkit") and shutil.which("nbdcopy"):
                        small = ec2.create_volume(
                            AvailabilityZone="us-east-1a", Size=args.sequential_gib, VolumeType="gp3"
                        )["VolumeId"]
                        seq_uri = attach(server, ec2, small, "us-east-1a", device="/dev/sdh")
                        sequential_side_by_side(seq_uri, Path(tmp), args.sequential_gib, args.rounds)
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
