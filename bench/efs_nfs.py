"""EFS benchmarks against a running Strata (as root, with nfs-ganesha installed).

The NFS client is nfs-rs (PyPI `nfs-rs`: a userspace NFSv3/v4.1 client in Rust, no kernel mount:
this machine's kernel has no NFS client). It negotiates ganesha's full READ/WRITE sizes (about
1 MiB over NFSv4.1) and keeps up to eight requests in flight. Debian's libnfs 4.0 cannot send an
NFSv4 WRITE of 4,000 bytes or more, so it serves only the `nfs-cat` column and the small files.

Measured side by side, in alternating rounds (NFS, then the same work on the export directory):

- create -> available: CreateFileSystem plus three CreateMountTarget, polled until every mount
  target is available and answers NFS (AWS: about a minute).
- copy to: a local source file (page cache warm) copied into the file system, in `--chunk` MiB
  writes, each made durable (nfs-rs commits every write; the local copy fsyncs after each).
- copy from: the file system's file copied to a local file, same chunks, fsync at the end.
- read: the file read into memory (page cache warm on both sides), and `nfs-cat` (libnfs) beside
  `cat` to /dev/null.
- small files: create (100 bytes) + stat + delete through NFS (libnfs) beside the local file system.

With `--encrypted` the file system is encrypted (its files in an fscrypt directory of a loop-mounted
ext4 image), and "local" is that directory: the cost of the NFS layer over the encrypted volume.

Each line gives NFS's rate as a share of local's; the summary gives min/median/max per measure.

Usage:

    python bench/efs_nfs.py --endpoint http://127.0.0.1:4566 --data-dir .strata --mib 1024
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
from collections.abc import Callable
from pathlib import Path

import boto3
from nfs_rs import Client

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.services.efs.libnfs import LibNfs  # noqa: E402  (the tests' libnfs client, over ctypes)

MIB = 1 << 20


def timed(fn: Callable[[], object]) -> float:
    t = time.monotonic()
    fn()
    return time.monotonic() - t


class Bench:
    def __init__(self, client: Client, export: Path, scratch: Path, mib: int, chunk: int) -> None:
        self.nfs, self.export, self.scratch = client, export, scratch
        self.mib, self.chunk = mib, chunk * MIB
        self.source = scratch / "source.bin"
        self.buf = bytearray(self.chunk)

    def make_source(self) -> None:
        block = os.urandom(self.chunk)
        with open(self.source, "wb") as f:
            for _ in range(self.mib * MIB // self.chunk):
                f.write(block)
        subprocess.run(["cat", str(self.source)], stdout=subprocess.DEVNULL, check=True)

    # -- copy to the file system ---------------------------------------------------------------------

    def copy_to_nfs(self) -> None:
        with open(self.source, "rb", buffering=0) as src, self.nfs.open("big.bin", "wb") as dst:
            while n := src.readinto(self.buf):
                dst.write(memoryview(self.buf)[:n])

    def copy_to_local(self) -> None:
        with (
            open(self.source, "rb", buffering=0) as src,
            open(self.export / "big-local.bin", "wb", buffering=0) as dst,
        ):
            while n := src.readinto(self.buf):
                dst.write(memoryview(self.buf)[:n])
                os.fsync(dst.fileno())

    # -- copy from the file system -------------------------------------------------------------------

    def copy_from_nfs(self) -> None:
        with self.nfs.open("big.bin", "rb") as src, open(self.scratch / "out.bin", "wb", buffering=0) as dst:
            while n := src.readinto(self.buf):
                dst.write(memoryview(self.buf)[:n])
            os.fsync(dst.fileno())

    def copy_from_local(self) -> None:
        with open(self.export / "big-local.bin", "rb", buffering=0) as src:
            with open(self.scratch / "out.bin", "wb", buffering=0) as dst:
                while n := src.readinto(self.buf):
                    dst.write(memoryview(self.buf)[:n])
                os.fsync(dst.fileno())

    # -- read into memory ----------------------------------------------------------------------------

    def read_nfs(self) -> None:
        with self.nfs.open("big.bin", "rb") as src:
            while src.readinto(self.buf):
                pass

    def read_local(self) -> None:
        with open(self.export / "big-local.bin", "rb", buffering=0) as src:
            while src.readinto(self.buf):
                pass

    def small_files_nfs(self, server: str, count: int) -> None:
        """Through libnfs (one synchronous NFSv4.0 connection): nfs-rs makes every write durable
        (a COMMIT, an fsync on the server, per file), which the local side does not do."""
        client = LibNfs(server)
        try:
            for i in range(count):
                client.write(f"/small-{i}", b"x" * 100)
            for i in range(count):
                client.stat(f"/small-{i}")
            for i in range(count):
                client.unlink(f"/small-{i}")
        finally:
            client.close()

    def small_files_local(self, count: int) -> None:
        for i in range(count):
            (self.export / f"local-{i}").write_bytes(b"x" * 100)
        for i in range(count):
            (self.export / f"local-{i}").stat()
        for i in range(count):
            (self.export / f"local-{i}").unlink()


def create_file_system(efs, ec2, encrypted: bool) -> tuple[str, list[dict]]:
    subnets = sorted(ec2.describe_subnets()["Subnets"], key=lambda s: s["AvailabilityZone"])[:3]
    t0 = time.monotonic()
    fs_id = efs.create_file_system(CreationToken=os.urandom(8).hex(), Encrypted=encrypted)["FileSystemId"]
    mts = [efs.create_mount_target(FileSystemId=fs_id, SubnetId=s["SubnetId"]) for s in subnets]
    while True:
        states = [m["LifeCycleState"] for m in efs.describe_mount_targets(FileSystemId=fs_id)["MountTargets"]]
        if states == ["available"] * 3:
            break
        time.sleep(0.02)
    for m in mts:
        Client.connect(f"nfs://{m['IpAddress']}/?version=4.1", connect_timeout=10).close()
    print(
        f"create -> available (file system + 3 mount targets, NFS answering): {time.monotonic() - t0:.3f} s"
    )
    return fs_id, mts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", default="http://127.0.0.1:4566")
    ap.add_argument("--data-dir", default=".strata")
    ap.add_argument("--scratch", default=None, help="local directory for copy sources and targets")
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--chunk", type=int, default=64, help="MiB per application write/read")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--version", default="4.1", choices=["4.0", "4.1"])
    ap.add_argument("--encrypted", action="store_true", help="an encrypted file system (fscrypt, loop ext4)")
    args = ap.parse_args()
    kw = {"endpoint_url": args.endpoint, "region_name": "us-east-1"}
    kw |= {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
    efs, ec2 = boto3.client("efs", **kw), boto3.client("ec2", **kw)
    fs_id, mts = create_file_system(efs, ec2, args.encrypted)

    if args.encrypted:  # the fscrypt directory in the file system's loop-mounted ext4 volume
        export = Path(args.data_dir) / "efs" / "volumes" / fs_id / "files"
    else:
        export = Path(args.data_dir) / "efs" / "fs" / fs_id
    scratch = Path(args.scratch or Path(args.data_dir) / "bench-scratch")
    scratch.mkdir(parents=True, exist_ok=True)
    client = Client.connect(
        f"nfs://{mts[0]['IpAddress']}/?version={args.version}", connect_timeout=10, operation_timeout=600
    )
    print(f"NFSv{args.version}, negotiated {client.io_limits}; {args.mib} MiB in {args.chunk} MiB chunks")
    b = Bench(client, export, scratch, args.mib, args.chunk)
    b.make_source()
    ratios: dict[str, list[float]] = defaultdict(list)
    measures = [
        ("copy to", b.copy_to_nfs, b.copy_to_local),
        ("copy from", b.copy_from_nfs, b.copy_from_local),
        ("read", b.read_nfs, b.read_local),
    ]
    url = f"nfs://{mts[0]['IpAddress']}//big.bin?version=4"
    cat_nfs = ["nfs-cat", url] if shutil.which("nfs-cat") else None
    for r in range(args.rounds):
        for name, remote, local in measures:
            nfs_s, local_s = timed(remote), timed(local)
            ratios[name].append(local_s / nfs_s)
            print(
                f"round {r + 1} {name:9}: NFS {args.mib / nfs_s:7.0f} MiB/s  local {args.mib / local_s:7.0f} MiB/s"
                f"  ({100 * local_s / nfs_s:3.0f}% of local)",
                flush=True,
            )
        if cat_nfs:
            nfs_s = timed(lambda: subprocess.run(cat_nfs, stdout=subprocess.DEVNULL, check=True))
            local_s = timed(
                lambda: subprocess.run(
                    ["cat", str(export / "big-local.bin")], stdout=subprocess.DEVNULL, check=True
                )
            )
            ratios["nfs-cat"].append(local_s / nfs_s)
            print(
                f"round {r + 1} nfs-cat  : NFS {args.mib / nfs_s:7.0f} MiB/s  local {args.mib / local_s:7.0f} MiB/s"
                f"  ({100 * local_s / nfs_s:3.0f}% of local; libnfs 4.0, NFSv4.0)",
                flush=True,
            )
    client.unlink("big.bin")
    for leftover in ("big-local.bin",):
        (export / leftover).unlink(missing_ok=True)
    shutil.rmtree(scratch, ignore_errors=True)

    if args.files:
        nfs_s, local_s = (
            timed(lambda: b.small_files_nfs(mts[0]["IpAddress"], args.files)),
            timed(lambda: b.small_files_local(args.files)),
        )
        ratios["small files"].append(local_s / nfs_s)
        print(
            f"{args.files} small files, create+stat+delete: NFS {3 * args.files / nfs_s:8.0f} ops/s   "
            f"local disk {3 * args.files / local_s:8.0f} ops/s"
        )
    print("NFS as a share of local (min / median / max):")
    for name, values in ratios.items():
        print(
            f"  {name:11}: {100 * min(values):4.0f}% / {100 * statistics.median(values):4.0f}% / {100 * max(values):4.0f}%"
        )
    client.close()
    for m in mts:
        efs.delete_mount_target(MountTargetId=m["MountTargetId"])
    efs.delete_file_system(FileSystemId=fs_id)


if __name__ == "__main__":
    main()
