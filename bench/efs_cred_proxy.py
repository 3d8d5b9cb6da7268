"""What the credential proxy (strata.engines.nfs_cred_proxy) costs an access point's data path.

Two file systems, one mount target each, one access point each at "/" as uid 0: on the first the
access point has no SecondaryGids (ganesha squashes; nothing in front of it), on the second it has
one (its mount target's port 2050 is the proxy, which stamps each call). The same 1 GiB copy to,
copy from and read into memory as bench/efs_nfs.py (nfs-rs, NFSv4.1, 1 MiB READs and WRITEs)
runs through each in turn, beside the same copy on local disk, the order changing every round.
Each line gives MiB/s and % of local for both, and the CPU seconds of the access points' ganesha
and of the proxy.

Measured 2026-12-07 (1 GiB, 3 rounds, 2 shared cores at load 12-15, so throughput is noisy; the
CPU seconds are steadier): the proxy spends 0.53-0.61 CPU-s per GiB written and 0.34-0.40 per GiB
read (its server-to-client bytes are spliced, never copied into Python; the client-to-server
records are read whole to find the access point each call works on), beside ganesha's own
0.73-0.90 and 0.50-0.58. Median MiB/s proxied vs squashed: copy to 202 vs 242, read 416 vs 944
(copy from was bound by the local disk's write, not NFS). Only mount targets of a file system
with an access point with SecondaryGids paid it then; since the proxy also checks filehandles
(strata.engines.nfs_subtree) it is in front of every port 2050, so "squashed" has it too, and the
two sides differ only by the stamping.

Before/after that change, 2026-12-07, side by side (two Strata servers, one access point each
without SecondaryGids, nfs-rs NFSv4.1, 256 MiB written then read, 4 rounds alternating, load 8-12
on 2 cores): the proxy (with the filehandle check, and a WRITE's data spliced, not copied) spends
0.10-0.12 CPU-s per 256 MiB written (0.14-0.17 when it copied WRITEs into Python) and 0.07-0.09
per 256 MiB read; ganesha's own CPU is unchanged (0.21-0.29 s written, 0.12-0.16 s read). MiB/s
after vs before, median: write 105 vs 101 (noise), read 250 vs 318.

Usage (as root, against a running Strata):

    python bench/efs_cred_proxy.py --endpoint http://127.0.0.1:4566 --data-dir .strata --mib 1024
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import boto3
from nfs_rs import Client

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.efs_nfs import MALLOC_ENV, Bench, fs_files, timed  # noqa: E402
from bench.local_server import cpu_seconds  # noqa: E402


def pid_of(pattern: str) -> int | None:
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    return int(out.stdout.split()[0]) if out.stdout.split() else None


def access_point_fs(efs, ec2, posix: dict) -> tuple[str, str, str, str]:  # noqa: ANN001
    """A new file system with one mount target and one access point: (fs, mount target, ip, ap)."""
    subnet = sorted(ec2.describe_subnets()["Subnets"], key=lambda s: s["AvailabilityZone"])[0]
    fs_id = efs.create_file_system(CreationToken=os.urandom(8).hex(), ThroughputMode="elastic")[
        "FileSystemId"
    ]
    mt = efs.create_mount_target(FileSystemId=fs_id, SubnetId=subnet["SubnetId"])
    ap = efs.create_access_point(FileSystemId=fs_id, PosixUser=posix)["AccessPointId"]
    while efs.describe_mount_targets(FileSystemId=fs_id)["MountTargets"][0]["LifeCycleState"] != "available":
        time.sleep(0.05)
    return fs_id, mt["MountTargetId"], mt["IpAddress"], ap


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", default="http://127.0.0.1:4566")
    ap.add_argument("--data-dir", default=".strata")
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--chunk", type=int, default=64, help="MiB per application write/read")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if any(os.environ.get(k) != v for k, v in MALLOC_ENV.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **MALLOC_ENV})
    kw = {"endpoint_url": args.endpoint, "region_name": "us-east-1"}
    kw |= {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
    efs, ec2 = boto3.client("efs", **kw), boto3.client("ec2", **kw)
    sides = {
        "squashed": access_point_fs(efs, ec2, {"Uid": 0, "Gid": 0}),
        "proxied": access_point_fs(efs, ec2, {"Uid": 0, "Gid": 0, "SecondaryGids": [1]}),
    }
    scratch = Path(args.data_dir) / "bench-scratch-proxy"
    scratch.mkdir(parents=True, exist_ok=True)
    benches, pids = {}, {}
    for name, (fs_id, mt_id, ip, ap_id) in sides.items():
        url = f"nfs://{ip}/{ap_id}?version=4.1&nfsport=2050"
        client = Client.connect(url, connect_timeout=10, operation_timeout=600)
        benches[name] = Bench(client, fs_files(Path(args.data_dir), fs_id), scratch, args.mib, args.chunk)
        pids[name] = [
            pid_of(f"ganesha.nfsd .*/{mt_id}/access-points/ganesha.conf"),
            pid_of(f"nfs_cred_proxy .*/{mt_id}/access-points/cred-proxy.json"),
        ]
    assert pids["proxied"][1] is not None, pids
    benches["squashed"].make_source()
    benches["proxied"].source = benches["squashed"].source
    local = benches["squashed"]
    measures = {
        "copy to": (lambda b: b.copy_to_nfs, lambda b: b.copy_to_local),
        "copy from": (lambda b: b.copy_from_nfs, lambda b: b.copy_from_local),
        "read": (lambda b: b.read_nfs, lambda b: b.read_local),
    }
    share: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in range(args.rounds):
        order = ["squashed", "proxied", "local"] if r % 2 == 0 else ["local", "proxied", "squashed"]
        for measure, (remote, on_disk) in measures.items():
            seconds, cpu = {}, {}
            for side in order:
                (scratch / "out.bin").unlink(missing_ok=True)
                if side == "local":
                    if measure == "copy to":
                        (local.export / "big-local.bin").unlink(missing_ok=True)
                    seconds[side] = timed(on_disk(local))
                    continue
                b = benches[side]
                if measure == "copy to" and b.nfs.exists("big.bin"):
                    b.nfs.unlink("big.bin")
                before = [cpu_seconds(p) if p else 0.0 for p in pids[side]]
                seconds[side] = timed(remote(b))
                cpu[side] = [
                    (cpu_seconds(p) if p else 0.0) - t for p, t in zip(pids[side], before, strict=True)
                ]
            for side in ("squashed", "proxied"):
                share[(measure, side)].append(seconds["local"] / seconds[side])
            print(
                f"round {r + 1} {measure:9}: local {args.mib / seconds['local']:5.0f} MiB/s | squashed "
                f"{args.mib / seconds['squashed']:5.0f} MiB/s ({100 * seconds['local'] / seconds['squashed']:3.0f}%)"
                f" ganesha {cpu['squashed'][0]:.2f} s | proxied {args.mib / seconds['proxied']:5.0f} MiB/s"
                f" ({100 * seconds['local'] / seconds['proxied']:3.0f}%) ganesha {cpu['proxied'][0]:.2f} s"
                f" + proxy {cpu['proxied'][1]:.2f} s",
                flush=True,
            )
    print("NFS through an access point as a share of local (min / median / max):")
    for (measure, side), values in share.items():
        print(
            f"  {measure:9} {side:8}: {100 * min(values):4.0f}% / {100 * statistics.median(values):4.0f}%"
            f" / {100 * max(values):4.0f}%"
        )
    for name, (fs_id, mt_id, _, ap_id) in sides.items():
        benches[name].nfs.unlink("big.bin")
        benches[name].nfs.close()
        efs.delete_access_point(AccessPointId=ap_id)
        efs.delete_mount_target(MountTargetId=mt_id)
        efs.delete_file_system(FileSystemId=fs_id)
    shutil.rmtree(scratch, ignore_errors=True)
    (local.export / "big-local.bin").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
