"""EFS benchmarks against a running Strata (as root, with nfs-ganesha installed).

The NFS clients are userspace ones (this machine's kernel has no NFS client, so no kernel mount):
- The big files' copies and reads go through bench.nfs41_client (`--client lean`, the default), a
  lean NFSv4.1 client written for this bench. It is a real one (EXCHANGE_ID, CREATE_SESSION,
  RECLAIM_COMPLETE, then COMPOUNDs led by SEQUENCE on session slots: OPEN, READ, WRITE, COMMIT,
  CLOSE; AUTH_SYS), with READs and WRITEs of 1 MiB (EFS's own mount advice: rsize=wsize=1 MiB) and
  `--reads-in-flight` (2) of them in flight, because ganesha serves fewer concurrent READs of one
  file with less CPU (below). What it does differently is receive each READ reply's data straight
  into the destination buffer (and send WRITE data from the source buffer): see "The client's
  CPU" below for why and what it gave.
- nfs-rs (PyPI `nfs-rs`: NFSv3/v4.1 in Rust) runs the same copies beside it ("copy to, nfs-rs",
  "copy from, nfs-rs", in the same rounds), and every big-file measure with `--client nfs-rs`.
  Over NFSv4.1 it asks for sessions of about 1 MiB, so its READs and WRITEs are 1,044,480 bytes
  (ganesha grants what a session asks for). A call keeps up to eight READs or WRITEs in flight;
  the bench reads in calls of `--reads-in-flight` READs.
- Both clients' writes are UNSTABLE and each `write` call ends with one COMMIT (ganesha: an fsync).
  Debian's libnfs 4.0 (NFSv4.0 only) cannot send an NFSv4 WRITE of 4,000 bytes or more, so it
  serves only the `nfs-cat` column and the small files.

Both sides run the same copy (`copy`: a reader thread fills one `--chunk` buffer while the other
is written, as a kernel's readahead would) into a new file, with the same durability, and take
turns going first; a warm-up round runs first and is not counted (on this VM the first touch of
memory is slow: round 1's copies ran at 40-70% of later rounds', on whichever side went first):

- copy to: the local source file (page cache warm) into the file system; every chunk durable
  before the next (NFS: a COMMIT; local: fsync).
- copy from: the file system's file to a local file in `--scratch`, written over in place (see
  `Bench.copy_target`; `--new-target` for a new file each time), fsync once at the end. The file
  read is in the page cache on both sides (the NFS server reads the same page cache); "cold" drops
  it from the page cache first on both sides, so both read it from the disk.
- read: the file read into memory, cached and cold as above; "8 in flight" is 8 READs in flight
  (nfs-rs's most) beside the chosen number; `nfs-cat` (libnfs) beside `cat` to /dev/null.
- TCP, no NFS: the same file sent by another process over one loopback TCP connection as a
  server sends READ data (1 MiB pread, then send) and received into memory, beside the local read.
  It is the ceiling of "read" for any NFS over TCP on this machine.
- small files: create (100 bytes) + stat + delete through NFS (libnfs) beside the local file system.
- create -> available: CreateFileSystem plus three CreateMountTarget, polled until every mount
  target is available and answers NFS (AWS: about a minute).

"local" is the export directory itself (the file system's loop-mounted ext4 volume's `files/`,
an fscrypt directory with `--encrypted`), so the two sides differ only by the NFS layer. Each line gives
NFS's rate as a share of local's, the CPU seconds the client (this process) and the mount target's
NFS server spent, and the load average; the summary gives min/median/max per measure. The machine
has 2 cores shared with other work: at a load average above 2 every figure swings by 2x or more
(either side), so compare medians of runs at the lowest load found, and read the load beside them.

The cold measures are the noisiest. On this VM memory the guest frees goes back to the host
(virtio-balloon free page reporting), and a first touch of such memory stalls the copy that makes
it (a new 1 GiB file written: 0.3 to 1.7 CPU s in copy_folio_from_iter_atomic, either side). And
"copy from, cold" right after "copy to" and "copy from" has ganesha spend 1.2-2.1 CPU s per GiB,
86% of it in _copy_to_iter of its preadv from the freshly read page cache, where the local side
spends 0.2 s: not explained yet. The same cold copy from the same NFS-written file, after other
cold reads of it, runs at 925-1003 MiB/s with ganesha at 0.25 s (2026-12-07, load 8-12).

This process runs with glibc's malloc told to keep large blocks (`MALLOC_ENV`, set by re-executing
itself): nfs-rs copies each `write` into a fresh 64 MiB buffer, which glibc otherwise mmaps and
page-faults in anew on every call (measured: the client's CPU for 1 GiB written 1.55 -> 0.57 s).
The local side runs in the same process under the same setting.

Where the time goes on a cached read (2026-12-07, 1 GiB, load averages 8-21):
- The wire. A page-cache read into memory is one copy (4-18 GiB/s here, by load); over NFS the
  data is copied three times (server pread, send into the loopback socket, client receive) plus
  TCP's own work, by two processes that hand each 1 MiB over. Bare loopback TCP with no NFS at all,
  received into the same 64 MiB buffer, moves 1.8-3.4 GiB/s: 15-45% of the local read in the same
  rounds (66% once, when the local read fell to 4 GiB/s), and neither 4 or 16 MiB socket buffers
  nor two connections raise it. So "read" cannot reach 50% through any NFS server or client over
  TCP here; nfs-rs reaches 50-90% of that ceiling. nfs-cat, which receives into a small buffer and
  throws it away, moves 1.8-4.3 GiB/s, 15-74% of `cat` (median 24-58% by run).
- Concurrent READs. On one file ganesha spends more CPU per GiB with eight READs in flight than
  with one or two: 0.29-0.35 vs 0.21-0.25 s in the bench's rounds (0.30 vs 0.14-0.18 s measured
  alone), and under load it reads slower (alone, at a load average of 8: 1.0-1.1 vs 2.1-2.2 GiB/s;
  copy from 60% vs 81-95% of local). Within the bench's runs the rates are closer and not always
  in that order (medians, eight vs two: 1.68 vs 1.76 GiB/s at load 8-10; 2.28 vs 2.02 at load
  7-8), only the server CPU is. Where that CPU goes was not profiled. A server with Slot_Table_Size = 2 (at most two
  requests in flight per session, for every client) did not clearly recover it for an eight-READ
  client (median 1.79 vs 1.93 GiB/s, server CPU 0.26 vs 0.30 s), so the server is left as it is.
- The server's settings. perf record -g on ganesha.nfsd reading with eight READs in flight: 88% in
  the kernel: _copy_to_iter 29% (FSAL_VFS's preadv from the page cache into ganesha's 1 MiB
  buffer), _copy_from_iter 18% (sendmsg of that buffer), wake-ups and softirq 20-25% (ntirpc hands
  requests between threads: ~7 futex calls per 1 MiB WRITE); ganesha + ntirpc + libc 12%. A write
  adds a copy in user space (a memmove in ntirpc, 10%: the WRITE payload copied out of the receive
  buffers); syscalls per 1 MiB WRITE are one pwritev, ~2 recvfrom, one setgroups/setresuid/
  setresgid pair. None of this is set by ganesha 4.3's configuration: measured side by side against
  a plain server, MaxRPCSendBufferSize/MaxRPCRecvBufferSize = 9 MiB (no change), RPC_Ioq_ThrdMax = 8
  (slower), transparent huge pages for its heap (GLIBC_TUNABLES=glibc.malloc.hugetlb=1: no change),
  and Elastic's nft buckets (no change); nor do loopback socket buffers of 4 or 16 MiB or two
  connections move bare TCP's rate.

The client's CPU (2026-12-07, sixth session; the machine at load averages 8-18 throughout, so the
rates swing and only CPU seconds per GiB and same-run comparisons are read here):
- Copy from was the measure below the bar (39-47% of local on a quiet machine, nfs-rs), and it is
  CPU-bound: reader, NFS server and writer share 2 cores. nfs-rs spent 0.55-0.65 CPU s per GiB read
  into memory where bare loopback TCP costs ~0.15: perf record on it showed memmove 29% and memset
  8% of its samples against the kernel's receive copy (_copy_to_iter) at 12%, i.e. each READ reply
  zeroed and copied twice in user space after the kernel's copy.
- bench.nfs41_client receives a READ reply's RPC and COMPOUND header (108 bytes) into a small buffer
  and its data with recv_into on the destination itself: 0.23-0.28 CPU s per GiB read, and perf
  shows the kernel's receive copy at 50% of all its samples, the rest mostly the interpreter's
  start-up (the floor of any TCP receive here; receiving the data with MSG_WAITALL, one call per
  READ: 0.23 either way). Beside a kernel mount (none on this machine):
  Linux's NFS client receives READ data into the page cache and read() copies it out again, so a cp
  from a mounted EFS copies once more on the client than this client does, and nfs-rs's zeroing and
  second user-space copy once more than a kernel mount. In the same rounds (3 rounds, load 11-18):
  copy from, client 0.49-0.53 + ganesha 0.40-0.43 s per GiB vs nfs-rs 0.91-1.13 + 0.41-0.53 (the
  local copy 0.42-0.47: so NFS's cost beyond the local copy fell from ~0.95 to ~0.50 s per GiB);
  copy to, client 0.47-0.51 + ganesha 0.73-0.76 vs nfs-rs 0.85-0.89 + 0.79-0.85. Again with
  `--copies-only` (two runs, 4 and 5 rounds, load 8-14): copy from 0.46-0.59 + 0.35-0.51 vs nfs-rs
  0.75-0.99 + 0.33-0.45 (local 0.39-0.51); copy to 0.45-0.55 + 0.74-0.91 vs 0.87-0.99 + 0.79-1.02.
  At load 1-3 earlier that day, nfs-rs's copy from was 49-51% of local (client 0.90-0.95 + ganesha
  0.45-0.47 vs local 0.49-0.57); a quiet machine to rate the lean client's was not found. Under
  load the rates favour whichever side has more threads to be scheduled, so the lean client's
  copies ran at about nfs-rs's share of local; with this process and the Strata server (so its
  ganesha) at nice -10 (load 9-11, other work still in other cgroups), copy from was 75-82% of
  local through the lean client vs 58-69% through nfs-rs, in the same 3 rounds.
- READs in flight for the lean client, reading 1 GiB alternately (load 14, 5-8 rounds each): ganesha
  0.35-0.39 s per GiB with one in flight vs 0.41-0.44 with two, three, four or eight, the client
  0.24-0.27 for all; inside a copy from (writer running) one vs two was within the noise (ganesha
  0.42 vs 0.45, client 0.59 vs 0.55), so two is kept.
- ganesha after the change (perf record on it while the lean client reads): _copy_to_iter 35% (its
  preadv from the page cache), _copy_from_iter 22% (its sendmsg), the nft rules ~5% (nft_do_chain,
  lookups, conntrack; the machine then carried the tables of every helper's Strata, 687 lines),
  scheduling ~5%, its own code and libc a few %: what is left is the two copies any read()/send()
  server makes plus TCP's per-packet work, none of it set by a setting (see "The server's settings"
  above). The loop device's readahead is already 2,560 KiB (only the cold measures read the disk),
  so `blockdev --setra` was not changed.

Usage:

    python bench/efs_nfs.py --endpoint http://127.0.0.1:4566 --data-dir .strata --mib 1024
"""

from __future__ import annotations

import argparse
import io
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
from bench.nfs41_client import Nfs41  # noqa: E402
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
    def __init__(
        self,
        client: Client,
        export: Path,
        scratch: Path,
        mib: int,
        chunk: int,
        reads_in_flight: int,
        lean_address: str | None,
    ) -> None:
        self.nfs, self.export, self.scratch = client, export, scratch
        self.mib, self.chunk = mib, chunk * MIB
        self.reads_in_flight = reads_in_flight
        self.source = scratch / "source.bin"
        self.buf = bytearray(self.chunk)
        self.lean_address = lean_address  # None: nfs-rs moves the big files' data
        self.lean: dict[int, Nfs41] = {}  # a session per number of READs in flight

    def open_nfs(self, name: str, mode: str):  # noqa: ANN201 - nfs-rs's file or the lean client's
        if self.lean_address is None:
            return self.nfs.open(name, mode)
        if self.reads_in_flight not in self.lean:
            self.lean[self.reads_in_flight] = Nfs41(self.lean_address, in_flight=self.reads_in_flight)
        return self.lean[self.reads_in_flight].open_file(name, mode)

    def nfs_reader(self, f) -> Callable[[memoryview], int]:  # noqa: ANN001
        """The file's `readinto` (the lean client's fills a buffer with `reads_in_flight` READs in
        flight; nfs-rs's in calls of that many READs)."""
        return f.readinto if self.lean_address is not None else self.in_calls(f.readinto)

    def close(self) -> None:
        for lean in self.lean.values():
            lean.close()
        self.nfs.close()

    def in_calls(self, readinto: Callable[[memoryview], int]) -> Callable[[memoryview], int]:
        """nfs-rs's `readinto` filling the buffer in calls of `reads_in_flight` READs each (nfs-rs
        keeps up to eight of a call's READs in flight, never more than the call asks for)."""
        most = self.reads_in_flight * self.nfs.io_limits.max_read

        def read(buf: memoryview) -> int:
            done = 0
            while done < len(buf) and (n := readinto(buf[done : done + most])):
                done += n
            return done

        return read

    def make_source(self) -> None:
        block = os.urandom(self.chunk)
        with open(self.source, "wb") as f:
            for _ in range(self.mib * MIB // self.chunk):
                f.write(block)
        subprocess.run(["cat", str(self.source)], stdout=subprocess.DEVNULL, check=True)

    # -- copy to the file system: every chunk durable before the next -------------------------------

    def copy_to_nfs(self) -> None:
        with open(self.source, "rb", buffering=0) as src, self.open_nfs("big.bin", "wb") as dst:
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

    def copy_target(self) -> io.FileIO:
        """The local file a copy from writes: written over in place (not truncated) unless
        `new_target` (then the caller removed it first). A new file's page cache is memory the
        kernel takes from its free lists, and on this VM freed memory goes back to the host
        (virtio-balloon free page reporting): its first touch faults to the host, which made
        writing a new 1 GiB file cost 0.3 to 1.7 CPU seconds in copy_folio_from_iter_atomic
        alone, on either side, by when the last one was freed. Written in place, both sides copy
        into the same cached pages and blocks."""
        return open(os.open(self.scratch / "out.bin", os.O_WRONLY | os.O_CREAT, 0o644), "wb", buffering=0)

    def copy_from_nfs(self) -> None:
        with self.open_nfs("big.bin", "rb") as src, self.copy_target() as dst:
            copy(up_to(self.nfs_reader(src), self.mib * MIB), dst.write, self.chunk)
            os.fsync(dst.fileno())

    def copy_from_local(self) -> None:
        with open(self.export / "big-local.bin", "rb", buffering=0) as src:
            with self.copy_target() as dst:
                copy(up_to(src.readinto, self.mib * MIB), dst.write, self.chunk)
                os.fsync(dst.fileno())

    # -- read into memory ----------------------------------------------------------------------------

    def read_nfs(self) -> None:
        with self.open_nfs("big.bin", "rb") as src:
            read = up_to(self.nfs_reader(src), self.mib * MIB)
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


def fs_files(data_dir: Path, fs_id: str) -> Path:
    """The file system's files on disk: its volume's `files/`, or a plain directory (a host without
    loop devices)."""
    volume = data_dir / "efs" / "volumes" / fs_id / "files"
    return volume if volume.is_dir() else data_dir / "efs" / "fs" / fs_id


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
    ap.add_argument(
        "--reads-in-flight", type=int, default=2, help="READs in flight (nfs-rs: READs per call, 1-8)"
    )
    ap.add_argument(
        "--client",
        default="lean",
        choices=["lean", "nfs-rs"],
        help="the client of the big files' copies and reads (bench.nfs41_client, or nfs-rs)",
    )
    ap.add_argument(
        "--copies-only",
        action="store_true",
        help="only the cached copies to and from (more rounds in the time)",
    )
    ap.add_argument("--new-target", action="store_true", help="copy from into a new local file each time")
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

    export = fs_files(Path(args.data_dir), fs_id)
    scratch = Path(args.scratch or Path(args.data_dir) / "bench-scratch")
    scratch.mkdir(parents=True, exist_ok=True)
    nfs_url = f"nfs://{mts[0]['IpAddress']}/?version={args.version}"
    client = Client.connect(nfs_url, connect_timeout=10, operation_timeout=600)
    server = server_pid(mts[0]["MountTargetId"])
    if args.client == "lean" and args.version != "4.1":
        ap.error("the lean client speaks NFSv4.1 only (--client nfs-rs for 4.0)")
    lean = None if args.client == "nfs-rs" else mts[0]["IpAddress"]
    b = Bench(client, export, scratch, args.mib, args.chunk, args.reads_in_flight, lean)
    if lean:
        with b.open_nfs("probe", "wb"):
            lean_client = b.lean[args.reads_in_flight]
            limits = f"READ {lean_client.max_read}, WRITE {lean_client.max_write}"
        b.nfs.unlink("probe")
        who = f"the lean client (bench.nfs41_client; {limits}), {args.reads_in_flight} in flight"
    else:
        who = f"nfs-rs ({client.io_limits}), {args.reads_in_flight} READs per call"
    print(f"NFSv{args.version}; {args.mib} MiB in {args.chunk} MiB chunks; big files through {who}")
    b.make_source()
    ratios: dict[str, list[float]] = defaultdict(list)
    rates: dict[str, list[tuple[float, float]]] = defaultdict(list)  # MiB/s: (NFS, local)

    def record(name: str, nfs_s: float, local_s: float) -> None:
        ratios[name].append(local_s / nfs_s)
        rates[name].append((args.mib / nfs_s, args.mib / local_s))

    nfs_file, local_file = export / "big.bin", export / "big-local.bin"

    def copy_from_nfs_cold() -> None:
        b.copy_from_nfs()

    def copy_from_local_cold() -> None:
        b.copy_from_local()

    def read_nfs_cold() -> None:
        b.read_nfs()

    def read_local_cold() -> None:
        b.read_local()

    def through_nfs_rs(fn: Callable[[], None]) -> Callable[[], None]:
        """`fn` through nfs-rs, beside the lean client's (same run, same server)."""

        def run() -> None:
            lean_address, b.lean_address = b.lean_address, None
            try:
                fn()
            finally:
                b.lean_address = lean_address

        return run

    copy_to_nfs_rs, copy_from_nfs_rs = through_nfs_rs(b.copy_to_nfs), through_nfs_rs(b.copy_from_nfs)

    def read_nfs_8() -> None:
        """The same read with 8 READs in flight (nfs-rs's most), beside the chosen number."""
        chosen, b.reads_in_flight = b.reads_in_flight, 8
        try:
            b.read_nfs()
        finally:
            b.reads_in_flight = chosen

    measures = [
        ("copy to", b.copy_to_nfs, b.copy_to_local),
        *([("copy to, nfs-rs", copy_to_nfs_rs, b.copy_to_local)] if lean else []),
        ("copy from", b.copy_from_nfs, b.copy_from_local),
        ("copy from, cold", copy_from_nfs_cold, copy_from_local_cold),
        *([("copy from, nfs-rs", copy_from_nfs_rs, b.copy_from_local)] if lean else []),
        ("read", b.read_nfs, b.read_local),
        ("read, cold", read_nfs_cold, read_local_cold),
        ("read, 8 in flight", read_nfs_8, b.read_local),
    ]
    if args.copies_only:
        measures = [m for m in measures if m[0].startswith(("copy to", "copy from")) and "cold" not in m[0]]
    url = f"nfs://{mts[0]['IpAddress']}//big.bin?version=4"
    cat_nfs = ["nfs-cat", url] if shutil.which("nfs-cat") else None

    def no_nfs_file(name: str) -> None:
        if b.nfs.exists(name):
            b.nfs.unlink(name)

    def new_out() -> None:
        if args.new_target:
            (scratch / "out.bin").unlink(missing_ok=True)

    # Every copy to writes a new file (a truncated one costs the freeing of its blocks first); a copy
    # from writes over the last one's local file in place (see `copy_target`). A cold
    # measure first drops the file it reads from the page cache; the others read it cached, on both
    # sides (the NFS server reads the same page cache the local side does).
    fresh: dict[Callable[[], None], Callable[[], None]] = {
        b.copy_to_nfs: lambda: no_nfs_file("big.bin"),
        b.copy_to_local: lambda: local_file.unlink(missing_ok=True),
        copy_to_nfs_rs: lambda: no_nfs_file("big.bin"),
        b.copy_from_nfs: new_out,
        copy_from_nfs_rs: new_out,
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
                record(name, nfs_s, local_s)
            load = "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
            cpu = f"CPU s: client {nfs_cpu:.2f} + server {srv_cpu:.2f} vs local {local_cpu:.2f}"
            print(line(f"{label} {name:17}", nfs_s, local_s, f"{cpu}  ({load})"), flush=True)
        if args.copies_only:
            continue
        # The same file over bare loopback TCP, beside the same local read (both cached).
        tcp_s = tcp_stream(local_file, args.mib * MIB, b.buf)
        local_s = timed(b.read_local)
        if r >= 0:
            record("TCP, no NFS", tcp_s, local_s)
        print(
            line(
                f"{label} {'TCP, no NFS':17}", tcp_s, local_s, "(loopback TCP stream: the ceiling of 'read')"
            )
        )
        if cat_nfs:
            nfs_s = timed(lambda: subprocess.run(cat_nfs, stdout=subprocess.DEVNULL, check=True))
            local_s = timed(
                lambda: subprocess.run(["cat", str(local_file)], stdout=subprocess.DEVNULL, check=True)
            )
            if r >= 0:
                record("nfs-cat", nfs_s, local_s)
            print(line(f"{label} {'nfs-cat':17}", nfs_s, local_s, "(libnfs 4.0, NFSv4.0; cat)"), flush=True)
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
    print("NFS as a share of local (min / median / max), and the median MiB/s of each side:")
    for name, values in ratios.items():
        medians = ""
        if name in rates:
            nfs_rate = statistics.median(r[0] for r in rates[name])
            local_rate = statistics.median(r[1] for r in rates[name])
            medians = f"   NFS {nfs_rate:6.0f}  local {local_rate:6.0f}"
        print(
            f"  {name:17}: {100 * min(values):4.0f}% / {100 * statistics.median(values):4.0f}% / {100 * max(values):4.0f}%"
            + medians
        )
    b.close()
    for m in mts:
        efs.delete_mount_target(MountTargetId=m["MountTargetId"])
    efs.delete_file_system(FileSystemId=fs_id)


if __name__ == "__main__":
    main()
