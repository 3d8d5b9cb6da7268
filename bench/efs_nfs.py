"""EFS benchmarks against a running Strata (as root, with nfs-ganesha and libnfs-utils installed).

- create -> available: CreateFileSystem plus three CreateMountTarget, polled until every mount
  target is available and answers NFS (AWS: about a minute).
- sequential read of a file through NFS (libnfs `nfs-cat`) beside `cat` of the same file in the
  export directory on local disk, both to /dev/null, page cache warm for both.
- create (with 100 bytes) + stat + delete of many small files through NFS (libnfs's synchronous
  API over ctypes, one connection) beside the same through the local file system.

- sequential write through NFS beside local disk, both in 3,800-byte writes: Debian's libnfs 4.0
  cannot send an NFSv4 WRITE of 4,000 bytes or more (client-side "Failed to encode
  COMPOUND4args"), and there is no kernel NFS client here, so large writes cannot be measured.

Usage:

    python bench/efs_nfs.py --endpoint http://127.0.0.1:4566 --data-dir .strata --mib 1024
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.services.efs.libnfs import LibNfs  # noqa: E402  (the tests' NFSv4 client)


def sequential_write(nfs: LibNfs, local: Path, mib: int, chunk: int = 3800) -> None:
    """Both sides write `chunk` bytes at a time and fsync at the end (libnfs 4.0 cannot send a
    larger NFSv4 WRITE, so this measures the server at the client's small writes)."""
    total = mib << 20
    payload = os.urandom(total)
    t = time.monotonic()
    nfs.write("/seq.bin", payload, chunk)
    remote = time.monotonic() - t
    os.sync()
    data = os.urandom(chunk)
    t = time.monotonic()
    with open(local / "seq-local.bin", "wb", buffering=0) as f:
        for offset in range(0, total, chunk):
            f.write(data[: min(chunk, total - offset)])
        os.fsync(f.fileno())
    here = time.monotonic() - t
    (local / "seq-local.bin").unlink()
    nfs.unlink("/seq.bin")
    print(
        f"write {mib} MiB in {chunk}-byte writes: NFS {mib / remote:8.1f} MiB/s   local disk {mib / here:8.1f} MiB/s"
        f"  ({100 * here / remote:.0f}% of local)"
    )


def small_files(nfs: LibNfs, local: Path, count: int) -> None:
    data = b"x" * 100
    t = time.monotonic()
    for i in range(count):
        nfs.write(f"/small-{i}", data)
    for i in range(count):
        nfs.stat(f"/small-{i}")
    for i in range(count):
        nfs.unlink(f"/small-{i}")
    remote = time.monotonic() - t
    t = time.monotonic()
    for i in range(count):
        (local / f"local-{i}").write_bytes(data)
    for i in range(count):
        (local / f"local-{i}").stat()
    for i in range(count):
        (local / f"local-{i}").unlink()
    here = time.monotonic() - t
    print(
        f"{count} small files, create+stat+delete: NFS {3 * count / remote:8.0f} ops/s   "
        f"local disk {3 * count / here:8.0f} ops/s"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", default="http://127.0.0.1:4566")
    ap.add_argument("--data-dir", default=".strata")
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--files", type=int, default=10_000)
    args = ap.parse_args()
    kw = {"endpoint_url": args.endpoint, "region_name": "us-east-1"}
    kw |= {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
    efs, ec2 = boto3.client("efs", **kw), boto3.client("ec2", **kw)
    subnets = sorted(ec2.describe_subnets()["Subnets"], key=lambda s: s["AvailabilityZone"])[:3]

    t0 = time.monotonic()
    fs_id = efs.create_file_system(CreationToken=os.urandom(8).hex())["FileSystemId"]
    mts = [efs.create_mount_target(FileSystemId=fs_id, SubnetId=s["SubnetId"]) for s in subnets]
    while True:
        states = [m["LifeCycleState"] for m in efs.describe_mount_targets(FileSystemId=fs_id)["MountTargets"]]
        if states == ["available"] * 3:
            break
        time.sleep(0.02)
    for m in mts:
        subprocess.run(["nfs-ls", f"nfs://{m['IpAddress']}/?version=4"], check=True, capture_output=True)
    print(
        f"create -> available (file system + 3 mount targets, NFS answering): {time.monotonic() - t0:.3f} s"
    )

    path = Path(args.data_dir) / "efs" / "fs" / fs_id / "big.bin"
    with open(path, "wb") as f:
        block = os.urandom(1 << 20)
        for _ in range(args.mib):
            f.write(block)
    url = f"nfs://{mts[0]['IpAddress']}//big.bin?version=4"
    subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)  # warm the cache
    for r in range(args.rounds):
        t = time.monotonic()
        subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)
        local = time.monotonic() - t
        t = time.monotonic()
        subprocess.run(["nfs-cat", url], stdout=subprocess.DEVNULL, check=True)
        nfs = time.monotonic() - t
        print(
            f"round {r + 1}: read {args.mib} MiB  local {args.mib / local:8.1f} MiB/s  "
            f"NFS {args.mib / nfs:8.1f} MiB/s  ({100 * local / nfs:.0f}% of local)"
        )
    path.unlink()
    client = LibNfs(mts[0]["IpAddress"])
    sequential_write(client, path.parent, min(args.mib, 256))
    small_files(client, path.parent, args.files)
    for m in mts:
        efs.delete_mount_target(MountTargetId=m["MountTargetId"])
    efs.delete_file_system(FileSystemId=fs_id)


if __name__ == "__main__":
    main()
