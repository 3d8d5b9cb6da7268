"""EBS snapshot time: a first snapshot of a full volume, then one after changing 1% of it.

The issue's bar: the second snapshot takes <= 10% of the first one's time and stores <= 2% of
its blocks. A private server (limits off) gets a gp3 volume of --gib GiB (default 4), filled with
random data by nbdcopy; snapshot 1 is timed from CreateSnapshot until DescribeSnapshots says
completed (polled every 20 ms). Then 1% of the volume's 512 KiB blocks, chosen at random, are
rewritten with fresh random data by qemu-io (flushed), and snapshot 2 is timed the same way.
Stored bytes come from the meter (SnapshotStored events). Needs Debian qemu-utils, libnbd-bin.

Usage: python bench/ebs_snapshot.py [--gib 4] [--rounds 1]
Prints one JSON line per round.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.services.ec2.helpers import attach  # noqa: E402
from tests.strata_process import StrataProcess  # noqa: E402

BLOCK = 512 * 1024
MIB = 1024 * 1024


def timed_snapshot(ec2, volume: str) -> tuple[str, float]:  # noqa: ANN001
    start = time.monotonic()
    snap = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
    while True:
        state = ec2.describe_snapshots(SnapshotIds=[snap])["Snapshots"][0]["State"]
        if state == "completed":
            return snap, time.monotonic() - start
        if state == "error":
            raise RuntimeError(f"snapshot {snap} failed")
        time.sleep(0.02)


def stored(server: StrataProcess, snap: str) -> int:
    events = server.admin("/_strata/meter?service=ec2")["events"]
    return sum(
        e["quantity"] for e in events if e["event"] == "SnapshotStored" and e["dims"].get("snapshot") == snap
    )


def fill(uri: str, tmp: Path, size: int) -> None:
    """The whole volume: random data, written sequentially by nbdcopy (flushed)."""
    source = tmp / "fill.img"
    with open(source, "wb") as f:
        for _ in range(size // (64 * MIB)):
            f.write(os.urandom(64 * MIB))
    subprocess.run(["nbdcopy", "--flush", str(source), uri], check=True, timeout=1800)
    source.unlink()


def change(uri: str, tmp: Path, size: int, share: float, rng: random.Random) -> int:
    """Rewrite `share` of the volume's blocks (at random places) with fresh random data."""
    count = max(1, int(size // BLOCK * share))
    args = ["qemu-io", "-f", "raw"]
    for n, idx in enumerate(rng.sample(range(size // BLOCK), count)):
        piece = tmp / f"piece{n}.bin"
        piece.write_bytes(os.urandom(BLOCK))
        args += ["-c", f"write -q -s {piece} {idx * BLOCK} {BLOCK}"]
    args += ["-c", "flush", uri]
    subprocess.run(args, check=True, timeout=600, capture_output=True)
    return count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    size = args.gib * 1024**3
    with tempfile.TemporaryDirectory() as tmp:
        server = StrataProcess(Path(tmp) / "data", extra_env={"STRATA_EBS_LIMITS": "off"}).start()
        try:
            ec2 = server.client("ec2")
            for round_ in range(args.rounds):
                volume = ec2.create_volume(AvailabilityZone="us-east-1a", Size=args.gib, VolumeType="gp3")[
                    "VolumeId"
                ]
                uri = attach(server, ec2, volume, "us-east-1a", device=f"/dev/sd{'fghijklmnop'[round_]}")
                fill(uri, Path(tmp), size)
                snap1, first = timed_snapshot(ec2, volume)
                changed = change(uri, Path(tmp), size, 0.01, rng)
                snap2, second = timed_snapshot(ec2, volume)
                stored1, stored2 = stored(server, snap1), stored(server, snap2)
                print(
                    json.dumps(
                        {
                            "volume_gib": args.gib,
                            "blocks_changed": changed,
                            "first_s": round(first, 3),
                            "second_s": round(second, 3),
                            "time_ratio": round(second / first, 4),
                            "first_stored_blocks": stored1 // BLOCK,
                            "second_stored_blocks": stored2 // BLOCK,
                            "stored_ratio": round(stored2 / stored1, 4),
                        }
                    ),
                    flush=True,
                )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
