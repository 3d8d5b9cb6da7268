"""The engine address pool's part of issue 22's proof (bench/ha_proof.py): endpoints that have a
loopback address of their own on the engine host (a replication group's reader and per-node
endpoints, an EFS mount target) are served on pool addresses (`--engine-address A-B/eth0`), which
the engine host holds with the engine address and a new host takes over with the same
assignment (recorded under <blob dir>/engines). A Redis client and an NFS client on the bridge
(the root namespace, another machine than any gateway's) write through those addresses during
the kills; after the engine host's node dies, the same addresses must answer (Describe* as
before) and every acknowledged key and file must be read back.

Redis nodes keep an AOF (appendfsync everysec) on the engine host: a machine that loses its
power may lose the last second's writes. Here the kernel outlives the killed processes (the
page cache keeps what Redis wrote), so a lost key is reported with how long before the kill it
was acknowledged, and one acknowledged more than LOSS_WINDOW before it fails the proof.
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from botocore.exceptions import ClientError
from configs import Topology
from redis.backoff import NoBackoff
from redis.retry import Retry

GROUP = "ha-proof-group"
FS_TOKEN = "ha-proof-files"
LOSS_WINDOW = 1.5  # seconds before the kill in which AOF everysec may lose an acknowledged write
NFS_TIMEOUT = 10.0  # one nfs-cp or nfs-cat (libnfs waits long for a vanished server)


@dataclass
class PoolEndpoints:
    primary: tuple[str, int]  # the group's primary node's own endpoint (a pool address)
    replica: tuple[str, int]  # its replica's own endpoint
    reader: tuple[str, int]  # the group's reader endpoint
    fs_id: str
    mount_ip: str  # the mount target's IpAddress (a pool address)
    shown: dict[str, Any]  # what DescribeReplicationGroups/DescribeMountTargets said


def made(create: Callable[[], Any], exists: str) -> Any:
    """`create()`, or None when it answers `exists`: the SDK retried a create whose first attempt
    was cut (the virtual address moved, a loaded machine's slow answer) after it had been done."""
    try:
        return create()
    except ClientError as e:
        if e.response.get("Error", {}).get("Code", "").removesuffix("Fault") != exists:
            raise
        return None


def _shown(ec: Any, efs: Any, fs_id: str) -> dict[str, Any]:
    """The endpoints clients know, as Describe* gives them (compared after the takeover)."""
    ng = ec.describe_replication_groups(ReplicationGroupId=GROUP)["ReplicationGroups"][0]["NodeGroups"][0]
    mts = efs.describe_mount_targets(FileSystemId=fs_id)["MountTargets"]
    return {
        "PrimaryEndpoint": ng["PrimaryEndpoint"],
        "ReaderEndpoint": ng["ReaderEndpoint"],
        "members": sorted(
            (
                m["CacheClusterId"],
                m["ReadEndpoint"]["Address"],
                m["ReadEndpoint"]["Port"],
                m.get("CurrentRole"),
            )
            for m in ng["NodeGroupMembers"]
        ),
        "mount_targets": sorted((m["MountTargetId"], m["IpAddress"], m["LifeCycleState"]) for m in mts),
    }


def create(t: Topology, client: Callable[[str], Any], say: Callable[[str], None]) -> PoolEndpoints:
    """A Redis replication group (a primary and a replica) and an EFS file system with one mount
    target, through the virtual address, in the proof's security group; waited for."""
    ec2, ec, efs = client("ec2"), client("elasticache"), client("efs")
    sg = ec2.describe_security_groups(GroupNames=["ha-proof"])["SecurityGroups"][0]["GroupId"]
    made(
        lambda: ec.create_replication_group(
            ReplicationGroupId=GROUP,
            ReplicationGroupDescription="the proof's pool endpoints",
            Engine="redis",
            CacheNodeType="cache.t3.micro",
            NumCacheClusters=2,
            SecurityGroupIds=[sg],
        ),
        "ReplicationGroupAlreadyExists",
    )
    made(lambda: efs.create_file_system(CreationToken=FS_TOKEN), "FileSystemAlreadyExists")
    fs_id = efs.describe_file_systems(CreationToken=FS_TOKEN)["FileSystems"][0]["FileSystemId"]
    subnet = sorted(ec2.describe_subnets()["Subnets"], key=lambda s: s["AvailabilityZone"])[0]["SubnetId"]
    deadline = time.monotonic() + 300
    while efs.describe_file_systems(FileSystemId=fs_id)["FileSystems"][0]["LifeCycleState"] != "available":
        if time.monotonic() > deadline:
            raise SystemExit(f"EFS file system {fs_id} never available")
        time.sleep(1)
    made(
        lambda: efs.create_mount_target(FileSystemId=fs_id, SubnetId=subnet, SecurityGroups=[sg]),
        "MountTargetConflict",
    )
    mt = efs.describe_mount_targets(FileSystemId=fs_id)["MountTargets"][0]
    while (g := ec.describe_replication_groups(ReplicationGroupId=GROUP)["ReplicationGroups"][0])[
        "Status"
    ] != "available" or efs.describe_mount_targets(MountTargetId=mt["MountTargetId"])["MountTargets"][0][
        "LifeCycleState"
    ] != "available":
        if time.monotonic() > deadline:
            raise SystemExit(f"replication group {GROUP}: {g['Status']}; or mount target not available")
        time.sleep(1)
    shown = _shown(ec, efs, fs_id)
    members = {role: (addr, port) for _, addr, port, role in shown["members"]}
    reader = (shown["ReaderEndpoint"]["Address"], int(shown["ReaderEndpoint"]["Port"]))
    ip = shown["mount_targets"][0][1]
    pool = set(t.engine_pool)
    on_pool = {reader[0], members["primary"][0], members["replica"][0], ip} <= pool
    say(
        f"pool: replication group {GROUP}: primary node {members['primary'][0]}:{members['primary'][1]},"
        f" replica node {members['replica'][0]}, reader endpoint {reader[0]}; EFS {fs_id} mount target"
        f" {ip} ({'all on pool addresses' if on_pool else 'NOT all on pool addresses ' + str(t.engine_pool)})"
    )
    if not on_pool:
        raise SystemExit("the pool endpoints are not on pool addresses")
    return PoolEndpoints(members["primary"], members["replica"], reader, fs_id, ip, shown)


def same_endpoints(client: Callable[[str], Any], ends: PoolEndpoints) -> tuple[bool, str]:
    """Describe* again (after the takeover): the same endpoints, or what changed."""
    now = _shown(client("elasticache"), client("efs"), ends.fs_id)
    if now == ends.shown:
        return True, "DescribeReplicationGroups and DescribeMountTargets show the same endpoints"
    return False, f"endpoints changed: before {ends.shown}, after {now}"


def _redis(addr: tuple[str, int]) -> redis.Redis:
    """No retries inside redis-py (it retries 3 times by default): each failed attempt counted."""
    return redis.Redis(
        addr[0], addr[1], socket_timeout=2, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0)
    )


@dataclass(kw_only=True)
class SideLoad(ABC):
    """A client thread beside the S3/DynamoDB load: what it had acknowledged (start, end) and
    each failed attempt (start, end, label, retryable, operation), as the proof reports them."""

    acks: list[tuple[float, float]] = field(default_factory=list)
    failures: list[tuple[float, float, str, bool, str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def finish(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()

    @abstractmethod
    def _run(self) -> None:
        """The client's loop, until `stop` is set (each kind of client has its own)."""


@dataclass
class CacheLoad(SideLoad):
    """One thread SETting keys on the group's primary through its node endpoint (a pool address)
    and GETting older ones through the reader endpoint; each acknowledged SET recorded with its
    time, each failed attempt (then a reconnect) recorded."""

    ends: PoolEndpoints
    now: Callable[[], float]
    acked: dict[str, tuple[str, float]] = field(default_factory=dict)  # key -> (value, acknowledged)
    reads: int = 0
    stale_reads: int = 0  # the replica had not the key yet (asynchronous replication)

    def _run(self) -> None:
        primary = reader = None
        seq, delay = 0, 0.05
        while not self.stop.is_set():
            seq += 1
            key, value = f"k{seq}", f"v{seq}-{time.monotonic_ns()}"
            start = self.now()
            op = "set"
            try:
                primary = primary or _redis(self.ends.primary)
                primary.set(key, value)
                self.acked[key] = (value, self.now())
                self.acks.append((start, self.acked[key][1]))
                if seq % 10 == 0 and seq > 100:
                    op = "get"
                    reader = reader or _redis(self.ends.reader)
                    self.reads += 1
                    self.stale_reads += reader.get(f"k{seq - 100}") is None
                delay = 0.05
                time.sleep(0.01)  # ~100 writes a second: the timeline, not a benchmark
            except (redis.RedisError, OSError) as e:
                self.failures.append((start, self.now(), type(e).__name__, True, f"redis_{op}"))
                for c in (primary, reader):
                    if c is not None:
                        c.close()
                primary = reader = None
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    def verify(self, killed_at: float, say: Callable[[str], None]) -> tuple[int, int]:
        """Every acknowledged key read back from the primary node's endpoint, the replica's count
        too; (lost, lost more than LOSS_WINDOW before the kill)."""
        primary, replica = _redis(self.ends.primary), _redis(self.ends.replica)
        keys = list(self.acked)
        got: dict[str, bytes | None] = {}
        on_replica = 0
        for i in range(0, len(keys), 500):
            batch = keys[i : i + 500]
            got.update(zip(batch, primary.mget(batch), strict=True))
            on_replica += sum(v is not None for v in replica.mget(batch))
        lost = [k for k in keys if got[k] is None or got[k].decode() != self.acked[k][0]]
        ages = sorted(killed_at - self.acked[k][1] for k in lost)
        early = sum(1 for a in ages if a > LOSS_WINDOW)
        when = f" (acknowledged {ages[-1]:.2f} to {ages[0]:.2f} s before the host's kill)" if ages else ""
        say(
            f"verify: {len(keys)} acknowledged Redis keys read back through the primary node's pool"
            f" endpoint, {len(lost)} lost{when}; {on_replica} on the replica; reads through the reader"
            f" endpoint during the load: {self.reads} ({self.stale_reads} not replicated yet)"
        )
        return len(lost), early


def nfs_url(ip: str, name: str) -> str:
    return f"nfs://{ip}//{name}?version=4"


def nfs_cat(ip: str, name: str, timeout: float = NFS_TIMEOUT) -> str | None:
    """A file's text read over NFSv4 (libnfs' nfs-cat), None when it could not be read."""
    try:
        cp = subprocess.run(["nfs-cat", nfs_url(ip, name)], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    return cp.stdout if cp.returncode == 0 else None


@dataclass
class FileLoad(SideLoad):
    """One thread writing small files to the file system through its mount target's pool address
    with libnfs' nfs-cp over NFSv4 (under 4,000 bytes: libnfs 4.0's NFSv4 write limit, see
    tests/services/efs/libnfs.py); a file is acknowledged when nfs-cp exits 0."""

    ends: PoolEndpoints
    now: Callable[[], float]
    acked: dict[str, str] = field(default_factory=dict)  # name -> text
    first: str | None = None  # the first acknowledged file (the recovery probe reads it)

    def _run(self) -> None:
        with tempfile.TemporaryDirectory(prefix="ha-proof-nfs-") as tmp:
            seq = 0
            while not self.stop.is_set():
                seq += 1
                name, text = f"f{seq}.txt", f"file {seq} written at {time.time_ns()}\n" * 4
                src = Path(tmp) / name
                src.write_text(text)
                start = self.now()
                try:
                    cp = subprocess.run(
                        ["nfs-cp", str(src), nfs_url(self.ends.mount_ip, name)],
                        capture_output=True,
                        text=True,
                        timeout=NFS_TIMEOUT,
                    )
                    why = f"exit {cp.returncode}" if cp.returncode else ""
                except subprocess.TimeoutExpired:
                    why = "timeout"
                src.unlink()
                if why:
                    self.failures.append((start, self.now(), f"nfs-cp {why}", True, "nfs_write"))
                    time.sleep(0.5)
                else:
                    self.acked[name] = text
                    self.first = self.first or name
                    self.acks.append((start, self.now()))
                    time.sleep(0.2)

    def answers(self) -> bool:
        """The mount target serves the first acknowledged file."""
        first = self.first
        return first is not None and nfs_cat(self.ends.mount_ip, first, 3.0) == self.acked[first]

    def verify(self, say: Callable[[str], None]) -> int:
        """Every acknowledged file read back through the mount target; the number lost or wrong."""
        bad = [n for n, text in self.acked.items() if nfs_cat(self.ends.mount_ip, n) != text]
        say(
            f"verify: {len(self.acked)} acknowledged files read back over NFS through the mount"
            f" target's pool address, {len(bad)} lost or wrong" + (f": {bad[:5]}" if bad else "")
        )
        return len(bad)


def answers_redis(addr: tuple[str, int]) -> bool:
    try:
        return bool(_redis(addr).ping())
    except (redis.RedisError, OSError):
        return False


def recovery_checks(ends: PoolEndpoints, files: FileLoad) -> dict[str, Callable[[], bool]]:
    """What must answer again on the pool addresses after the engine host's kill (timed)."""
    return {
        "the Redis primary node answers at its pool endpoint": lambda: answers_redis(ends.primary),
        "the Redis reader endpoint answers at its pool address": lambda: answers_redis(ends.reader),
        "the EFS mount target serves a file at its pool address": files.answers,
    }


def unmount_under(root: Path) -> None:
    """Unmount the file systems' loop-mounted volumes a killed engine host left under `root`
    (the run directory): its processes die with their namespace, its mounts do not."""
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for m in sorted((m for m in mounts if m.startswith(f"{root}/")), reverse=True):
        subprocess.run(["umount", "-l", m], capture_output=True, check=False)
