"""EFS benchmarks against a running Strata (as root, with nfs-ganesha installed).

The NFS client is nfs-rs (PyPI `nfs-rs`: a userspace NFSv3/v4.1 client in Rust, no kernel mount:
this machine's kernel has no NFS client). Over NFSv4.1 it asks for sessions of about 1 MiB, so
its READs and WRITEs are 1,044,480 bytes (ganesha grants what a session asks for; EFS's own mount
advice is rsize=wsize=1 MiB too), eight in flight per call. Writes are UNSTABLE and each `write`
call ends with one COMMIT (ganesha: an fsync). Debian's libnfs 4.0 cannot send an NFSv4 WRITE of
4,000 bytes or more, so it serves only the `nfs-cat` column and the small files.

Both sides run the same copy (`copy`: a reader thread fills one `--chunk` buffer while the other
is written, as a kernel's readahead would) into a new file, with the same durability, and take
turns going first:

- copy to: the local source file (page cache warm) into the file system; every chunk durable
  before the next (nfs-rs: its COMMIT; local: fsync).
- copy from: the file system's file to a local file in `--scratch`, fsync once at the end.
- read: the file read into memory (page cache warm on both sides: ganesha reads from it too), and
  `nfs-cat` (libnfs) beside `cat` to /dev/null.
- small files: create (100 bytes) + stat + delete through NFS (libnfs) beside the local file system.
- create -> available: CreateFileSystem plus three CreateMountTarget, polled until every mount
  target is available and answers NFS (AWS: about a minute).

"local" is the export directory itself (with `--encrypted`, the fscrypt directory in the file
system's loop-mounted ext4 volume), so the two sides differ only by the NFS layer. Each line gives
NFS's rate as a share of local's, and the CPU seconds the client (this process) and the mount
target's NFS server spent; the summary gives min/median/max per measure.

This process runs with glibc's malloc told to keep large blocks (`MALLOC_ENV`, set by re-executing
itself): nfs-rs copies each `write` into a fresh 64 MiB buffer, which glibc otherwise mmaps and
page-faults in anew on every call (measured: the client's CPU for 1 GiB written 1.55 -> 0.57 s).
The local side runs in the same process under the same setting.

Where the NFS server's CPU goes (perf record -g on the mount target's ganesha.nfsd, 1 GiB read
with nfs-rs, 2026-12-07): 88% in the kernel: _copy_to_iter 29% (FSAL_VFS's preadv from the page
cache into ganesha's 1 MiB buffer), _copy_from_iter 18% (sendmsg of that buffer into the loopback
socket), wake-ups and softirq 20-25% (ntirpc hands each request from its receiving thread to a
worker: ~7 futex calls per 1 MiB WRITE); ganesha + ntirpc + libc 12%. A write adds a copy in
user space (a memmove in ntirpc, 10%: the WRITE payload copied out of the receive buffers) to
the recv and page-cache copies; syscalls per 1 MiB WRITE are one pwritev, ~2 recvfrom, one
setgroups/setresuid/setresgid pair. None of this is set by ganesha 4.3's configuration: measured
side by side against a plain server, MaxRPCSendBufferSize/MaxRPCRecvBufferSize = 9 MiB (no
change), RPC_Ioq_ThrdMax = 8 (slower), transparent huge pages for its heap
(GLIBC_TUNABLES=glibc.malloc.hugetlb=1: no change), and Elastic's nft buckets (no change). So a
read through NFS costs at least three copies (server read, server send, client receive) plus
nfs-rs's own where the local read costs one: "read into memory" stays near a quarter to a half of
a page-cache read however the server is set.

Usage:

    python bench/efs_nfs.py --endpoint http://127.0.0.1:4566 --data-dir .strata --mib 1024
"""

from __future__ import annotations

import argparse
import os
import queue
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import boto3
from nfs_rs import Client, NfsError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.local_server import cpu_seconds  # noqa: E402
from tests.services.efs.libnfs import LibNfs  # noqa: E402  (the tests' libnfs client, over ctypes)

MIB = 1 << 20
MALLOC_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(128 * MIB),
    "MALLOC_TRIM_THRESHOLD_": str(1024 * MIB),
    "MALLOC_TOP_PAD_": str(128 * MIB),
}


def own_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(fn: Callable[[], object]) -> float:
    t = time.monotonic()
    fn()
    return time.monotonic() - t


def copy(read_into: Callable[[memoryview], int], write: Callable[[memoryview], object], chunk: int) -> None:
    """Copy until `read_into` returns 0, reading the next chunk while the last one is written."""
    free: queue.Queue[bytearray] = queue.Queue()
    full: queue.Queue[tuple[bytearray, int] | BaseException | None] = queue.Queue(maxsize=1)
    for _ in range(2):
        free.put(bytearray(chunk))

    def reader() -> None:
        try:
            while n := read_into(memoryview(buf := free.get())):
                full.put((buf, n))
            full.put(None)
        except BaseException as e:  # noqa: BLE001 - handed to the writer, which raises it
            full.put(e)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    while (item := full.get()) is not None:
        if isinstance(item, BaseException):
            raise item
        buf, n = item
        write(memoryview(buf)[:n])
        free.put(buf)
    thread.join()


def up_to(readinto: Callable[[memoryview], int], size: int) -> Callable[[memoryview], int]:
    """`readinto` that never asks past `size` bytes (0 once they are read). nfs-rs 0.8.7 answers
    a read across the end of a file with a failure of the next call now and then (see measure),
    so both sides read exactly the file's size."""
    left = size

    def read(buf: memoryview) -> int:
        nonlocal left
        if not left:
            return 0
        n = readinto(buf[: min(len(buf), left)])
        left -= n
        return n

    return read


def drop_cached(path: Path) -> None:
    """Take `path`'s pages out of the page cache (written back first), so the next read of it
    comes from the disk: the "cold" measures do this to the one file both sides read, so neither
    reads from memory while the other reads from disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


# The sending side of `tcp_stream`, in a process of its own (no lock shared with the receiver).
TCP_SENDER = """
import socket, sys
conn = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
with open(sys.argv[2], "rb", buffering=0) as src:
    block = bytearray(1 << 20)
    while n := src.readinto(block):
        conn.sendall(memoryview(block)[:n])
conn.close()
"""


def tcp_stream(path: Path, size: int, into: bytearray) -> float:
    """Seconds to receive `path` into memory over one loopback TCP connection from a process that
    sends it as an NFS server sends READ data (1 MiB read from the page cache into a buffer, then
    sent): no NFS at all, so its rate bounds what any NFS server and client reach over loopback
    TCP on this machine. Timed from the connection on (not the sender's start-up)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        sender = subprocess.Popen([sys.executable, "-c", TCP_SENDER, str(port), str(path)])
        conn, _ = listener.accept()
    with conn:
        t = time.monotonic()
        got, view = 0, memoryview(into)
        while got < size and (n := conn.recv_into(view[: min(len(view), size - got)])):
            got += n
        seconds = time.monotonic() - t
    if sender.wait() or got != size:
        raise RuntimeError(f"loopback TCP stream: {got} of {size} bytes, sender exit {sender.returncode}")
    return seconds


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

    # -- copy to the file system: every chunk durable before the next -------------------------------

    def copy_to_nfs(self) -> None:
        with open(self.source, "rb", buffering=0) as src, self.nfs.open("big.bin", "wb") as dst:
            copy(src.readinto, dst.write, self.chunk)  # each write: UNSTABLE WRITEs, then COMMIT

    def copy_to_local(self) -> None:
        with (
            open(self.source, "rb", buffering=0) as src,
            open(self.export / "big-local.bin", "wb", buffering=0) as dst,
        ):

            def write(data: memoryview) -> None:
                dst.write(data)
                os.fsync(dst.fileno())

            copy(src.readinto, write, self.chunk)

    # -- copy from the file system: fsync once at the end -------------------------------------------

    def copy_from_nfs(self) -> None:
        with self.nfs.open("big.bin", "rb") as src, open(self.scratch / "out.bin", "wb", buffering=0) as dst:
            copy(up_to(src.readinto, self.mib * MIB), dst.write, self.chunk)
            os.fsync(dst.fileno())

    def copy_from_local(self) -> None:
        with open(self.export / "big-local.bin", "rb", buffering=0) as src:
            with open(self.scratch / "out.bin", "wb", buffering=0) as dst:
                copy(up_to(src.readinto, self.mib * MIB), dst.write, self.chunk)
                os.fsync(dst.fileno())

    # -- read into memory ----------------------------------------------------------------------------

    def read_nfs(self) -> None:
        with self.nfs.open("big.bin", "rb") as src:
            read = up_to(src.readinto, self.mib * MIB)
            while read(memoryview(self.buf)):
                pass

    def read_local(self) -> None:
        with open(self.export / "big-local.bin", "rb", buffering=0) as src:
            read = up_to(src.readinto, self.mib * MIB)
            while read(memoryview(self.buf)):
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
    # Elastic: not limited (Bursting would hold it to 100 MiB/s metered).
    fs_id = efs.create_file_system(
        CreationToken=os.urandom(8).hex(), Encrypted=encrypted, ThroughputMode="elastic"
    )["FileSystemId"]
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


def server_pid(mount_target_id: str) -> int:
    """The pid of the ganesha serving the mount target's port 2049 (its config names the id)."""
    out = subprocess.run(
        ["pgrep", "-f", f"ganesha.nfsd .*/{mount_target_id}/root/ganesha.conf"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.split()[0])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", default="http://127.0.0.1:4566")
    ap.add_argument("--data-dir", default=".strata")
    ap.add_argument("--scratch", default=None, help="local directory for copy sources and targets")
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--chunk", type=int, default=64, help="MiB per application write/read")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1, help="rounds run first and not counted")
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--version", default="4.1", choices=["4.0", "4.1"])
    ap.add_argument("--encrypted", action="store_true", help="an encrypted file system (fscrypt, loop ext4)")
    ap.add_argument("--default-malloc", action="store_true", help="this process without MALLOC_ENV")
    args = ap.parse_args()
    if not args.default_malloc and any(os.environ.get(k) != v for k, v in MALLOC_ENV.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **MALLOC_ENV})
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
    nfs_url = f"nfs://{mts[0]['IpAddress']}/?version={args.version}"
    client = Client.connect(nfs_url, connect_timeout=10, operation_timeout=600)
    server = server_pid(mts[0]["MountTargetId"])
    print(f"NFSv{args.version}, negotiated {client.io_limits}; {args.mib} MiB in {args.chunk} MiB chunks")
    b = Bench(client, export, scratch, args.mib, args.chunk)
    b.make_source()
    ratios: dict[str, list[float]] = defaultdict(list)
    nfs_file, local_file = export / "big.bin", export / "big-local.bin"

    def copy_from_nfs_cold() -> None:
        b.copy_from_nfs()

    def copy_from_local_cold() -> None:
        b.copy_from_local()

    def read_nfs_cold() -> None:
        b.read_nfs()

    def read_local_cold() -> None:
        b.read_local()

    measures = [
        ("copy to", b.copy_to_nfs, b.copy_to_local),
        ("copy from", b.copy_from_nfs, b.copy_from_local),
        ("copy from, cold", copy_from_nfs_cold, copy_from_local_cold),
        ("read", b.read_nfs, b.read_local),
        ("read, cold", read_nfs_cold, read_local_cold),
    ]
    url = f"nfs://{mts[0]['IpAddress']}//big.bin?version=4"
    cat_nfs = ["nfs-cat", url] if shutil.which("nfs-cat") else None

    def no_nfs_file(name: str) -> None:
        if b.nfs.exists(name):
            b.nfs.unlink(name)

    def new_out() -> None:
        (scratch / "out.bin").unlink(missing_ok=True)

    # Every copy writes a new file (a truncated one costs the freeing of its blocks first). A cold
    # measure first drops the file it reads from the page cache; the others read it cached, on both
    # sides (the NFS server reads the same page cache the local side does).
    fresh: dict[Callable[[], None], Callable[[], None]] = {
        b.copy_to_nfs: lambda: no_nfs_file("big.bin"),
        b.copy_to_local: lambda: local_file.unlink(missing_ok=True),
        b.copy_from_nfs: new_out,
        b.copy_from_local: new_out,
        copy_from_nfs_cold: lambda: (new_out(), drop_cached(nfs_file)),
        copy_from_local_cold: lambda: (new_out(), drop_cached(local_file)),
        read_nfs_cold: lambda: drop_cached(nfs_file),
        read_local_cold: lambda: drop_cached(local_file),
    }

    def measure(fn: Callable[[], None]) -> tuple[float, float, float]:
        """Seconds, this process's CPU seconds, the NFS server's CPU seconds. nfs-rs 0.8.7 now and
        then fails a call with NFS4ERR_RETRY_UNCACHED_REP (it sent a request with a session slot's
        last sequence id again, which ganesha had not cached; seen most after a read across the
        end of a file): the measure is then run again on a new connection, and says so."""
        for attempt in range(3):
            fresh.get(fn, lambda: None)()
            own, srv = own_cpu(), cpu_seconds(server)
            try:
                seconds = timed(fn)
            except NfsError as e:
                print(f"  (nfs-rs failed: {e}; measuring again on a new connection)", flush=True)
                b.nfs = Client.connect(nfs_url, connect_timeout=10, operation_timeout=600)
                if attempt == 2:
                    raise
                continue
            return seconds, own_cpu() - own, cpu_seconds(server) - srv
        raise AssertionError("unreachable")

    def line(label: str, nfs_s: float, local_s: float, rest: str) -> str:
        return (
            f"{label}: NFS {args.mib / nfs_s:6.0f} MiB/s  local {args.mib / local_s:6.0f} MiB/s"
            f"  ({100 * local_s / nfs_s:3.0f}% of local)  {rest}"
        )

    # Warm-up rounds are printed but not counted: on a just-booted VM the first touch of memory is
    # slow on whichever side goes first (measured: round 1's copies at 40-70% of later rounds').
    for r in range(-args.warmup, args.rounds):
        label = f"round {r + 1}" if r >= 0 else "warm-up"
        for name, remote, local in measures:
            if r % 2:  # every other round the local side goes first
                (local_s, local_cpu, _), (nfs_s, nfs_cpu, srv_cpu) = measure(local), measure(remote)
            else:
                (nfs_s, nfs_cpu, srv_cpu), (local_s, local_cpu, _) = measure(remote), measure(local)
            if r >= 0:
                ratios[name].append(local_s / nfs_s)
            load = "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
            cpu = f"CPU s: client {nfs_cpu:.2f} + server {srv_cpu:.2f} vs local {local_cpu:.2f}"
            print(line(f"{label} {name:15}", nfs_s, local_s, f"{cpu}  ({load})"), flush=True)
        # The same file over bare loopback TCP, beside the same local read (both cached).
        tcp_s = tcp_stream(local_file, args.mib * MIB, b.buf)
        local_s = timed(b.read_local)
        if r >= 0:
            ratios["TCP, no NFS"].append(local_s / tcp_s)
        print(
            line(
                f"{label} {'TCP, no NFS':15}", tcp_s, local_s, "(loopback TCP stream: the ceiling of 'read')"
            )
        )
        if cat_nfs:
            nfs_s = timed(lambda: subprocess.run(cat_nfs, stdout=subprocess.DEVNULL, check=True))
            local_s = timed(
                lambda: subprocess.run(["cat", str(local_file)], stdout=subprocess.DEVNULL, check=True)
            )
            if r >= 0:
                ratios["nfs-cat"].append(local_s / nfs_s)
            print(line(f"{label} {'nfs-cat':15}", nfs_s, local_s, "(libnfs 4.0, NFSv4.0; cat)"), flush=True)
    b.nfs.unlink("big.bin")
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
            f"  {name:15}: {100 * min(values):4.0f}% / {100 * statistics.median(values):4.0f}% / {100 * max(values):4.0f}%"
        )
    b.nfs.close()
    for m in mts:
        efs.delete_mount_target(MountTargetId=m["MountTargetId"])
    efs.delete_file_system(FileSystemId=fs_id)


if __name__ == "__main__":
    main()
