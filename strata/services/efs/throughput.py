"""Throughput, enforced: a file system's NFS traffic is held to what its throughput mode permits.

AWS meters throughput as one sum: writes and metadata at their size, reads at a third of theirs
(https://aws.amazon.com/blogs/storage/amazon-efs-introduces-3x-read-throughput-increase-at-no-
additional-charge/: "a workload driving 750 MB/s of read operations and 250 MB/s of write [...]
will be metered at 500 MB/s"). Strata holds that sum, over all the file system's mount targets
together (both NFS ports: the root and the access points), with one kernel token bucket per file
system (strata.engines.throttle): the bucket fills at three times the permitted rate, a byte read
takes one token and a byte written three. What the rate is, by mode:

- provisioned: the provisioned MiB/s, or the Bursting baseline its Standard storage gives when that
  is higher (AWS: "If your system's metered size provides a higher baseline rate than the amount of
  Provisioned throughput, then your system uses Bursting throughput mode").
- bursting: the burst rate while the file system has burst credits, its baseline once they are
  spent. Baseline: 50 KiB/s per GiB of Standard storage, at least 1 MiB/s; burst: 100 MiB/s per
  TiB of Standard storage, at least 100 MiB/s. A new file system starts with 2.1 TiB of credits;
  it earns credits at its baseline rate (on the simulated clock) and spends one per metered byte
  (real bytes), and holds at most 2.1 TiB of them, or 2.1 TiB per TiB of Standard storage above
  1 TiB. The balance is settled every `SETTLE_SECONDS` from the kernel's byte counters, so an
  exhausted file system is slowed to its baseline within that (AWS meters by the minute). Sizes
  are those of the last measure (Describe, clock advance), as AWS's hourly metering process.
- elastic: AWS's default Elastic quotas per Regional file system
  (https://docs.aws.amazon.com/efs/latest/ug/limits.html): reads up to 60 GiB/s and writes up to
  5 GiB/s in us-east-1, us-east-2, us-west-2, ap-southeast-1, ap-northeast-1, eu-central-1 and
  eu-west-1; 10 GiB/s and 1 GiB/s elsewhere. Writes (and metadata: all the file system receives)
  go through a bucket of the write ceiling, reads through one of the read ceiling. The kernel holds
  no bucket above 16 GiB/s (strata.engines.throttle.MAX_RATE), so the 60 GiB/s read ceiling is
  held by four buckets of 15 GiB/s that take every fourth packet each (strata.engines.throttle;
  nothing on one machine's loopback moves that much, but it is held). One Zone file systems get the
  same ceilings (AWS gives them ranges, 3-5 GiB/s read and 1-3 GiB/s write, with no per-region
  table). PermittedThroughput is the write ceiling, as AWS reports it for Elastic.

Without nftables (not root) nothing is limited: provisioned throughput is refused at create and
update then, and a Bursting file system runs as one that never runs out of credits.
"""

from __future__ import annotations

import threading
from functools import cache

from strata.engines.ganesha import ACCESS_POINT_PORT, NFS_PORT
from strata.engines.nft import nft_usable
from strata.engines.throttle import Group, Throttle
from strata.sim.clock import clock

MIB = 1 << 20
GIB = 1 << 30
TIB = 1 << 40
READ_COST, WRITE_COST = 1, 3  # tokens per byte: reads are metered at a third of writes
BASELINE_PER_GIB = 50 * 1024  # bytes per second of baseline per GiB of Standard storage
MIN_BASELINE = MIB
BURST_PER_TIB = 100 * MIB
MIN_BURST = 100 * MIB
INITIAL_CREDITS = 2.1 * TIB  # bytes a new file system may burst with
CREDITS_PER_TIB = 2.1 * TIB  # the most a file system can hold, per TiB of Standard (2.1 TiB at least)
SETTLE_SECONDS = 5.0


@cache
def unsupported() -> str | None:
    """Why throughput cannot be enforced here, or None when it can."""
    if not nft_usable():
        return "Strata enforces it with nftables, which needs root and the nft tool (Debian nftables)"
    return None


def baseline(standard_bytes: int) -> float:
    """Bursting's baseline, bytes per second of metered throughput."""
    return max(MIN_BASELINE, standard_bytes / GIB * BASELINE_PER_GIB)


def burst(standard_bytes: int) -> float:
    return max(MIN_BURST, standard_bytes / TIB * BURST_PER_TIB)


def max_credits(standard_bytes: int) -> float:
    return max(INITIAL_CREDITS, standard_bytes / TIB * CREDITS_PER_TIB)


def iops_limits(fs: dict) -> tuple[int, int]:
    """The (read, write) operations a second a General Purpose file system may drive, as AWS's
    performance table gives them (https://docs.aws.amazon.com/efs/latest/ug/performance.html):
    One Zone 35,000 / 7,000; Regional with Elastic throughput 250,000 (frequently accessed data) /
    50,000; Regional otherwise 55,000 / 25,000. (CloudWatch's PercentIOLimit; not enforced.)"""
    if fs.get("az"):
        return 35_000, 7_000
    if fs.get("throughput") == "elastic":
        return 250_000, 50_000
    return 55_000, 25_000


ELASTIC_HIGH_REGIONS = frozenset(
    {"us-east-1", "us-east-2", "us-west-2", "ap-southeast-1", "ap-northeast-1", "eu-central-1", "eu-west-1"}
)


def elastic_limits(region: str) -> tuple[int, int]:
    """Elastic's (read, write) ceilings in bytes per second for a file system in `region`."""
    if region in ELASTIC_HIGH_REGIONS:
        return 60 * GIB, 5 * GIB
    return 10 * GIB, 1 * GIB


def permitted(fs: dict, standard_bytes: int, credits: float) -> float | None:
    """The metered throughput the file system may drive now (bytes per second; Elastic: its
    write ceiling), None: unlimited."""
    mode = fs.get("throughput")
    if mode == "elastic":
        return float(elastic_limits(fs.get("region") or "us-east-1")[1])
    if mode == "provisioned":
        return max(fs["provisioned"] * MIB, baseline(standard_bytes))
    if mode == "bursting":
        return burst(standard_bytes) if credits > 0 else baseline(standard_bytes)
    return None


class ThroughputLimits:
    """The throughput limits of one data dir's file systems, and Bursting file systems' credits
    (`credits`: bytes, in memory; the provider stores them in each file system's record now and
    then, a restart goes on from the last stored balance)."""

    def __init__(self) -> None:
        self._throttle: Throttle | None = None
        self._lock = threading.Lock()
        self.credits: dict[str, float] = {}
        self._settled: dict[str, tuple[float, float]] = {}  # fs -> (simulated time, metered bytes)

    def apply(self, fs: dict, mount_targets: list[dict], standard_bytes: int) -> None:
        """Hold the file system's traffic to what it may drive now, or release it (no mount
        target left, or nothing to enforce it with); blocking."""
        with self._lock:
            credits = self.credits.setdefault(fs["id"], fs.get("burst_credits", INITIAL_CREDITS))
            rate = permitted(fs, standard_bytes, credits)
            if rate is None or not mount_targets or unsupported():
                if self._throttle is not None:
                    self._throttle.remove(fs["id"])
                self._settled.pop(fs["id"], None)
                return
            if self._throttle is None:
                self._throttle = Throttle("efs_throughput")
            addresses = tuple(sorted(m["ip"] for m in mount_targets))
            ports = (NFS_PORT, ACCESS_POINT_PORT)
            if fs.get("throughput") == "elastic":  # reads and writes each held to their own ceiling
                read, write = elastic_limits(fs.get("region") or "us-east-1")
                group = Group(addresses, ports, write, 0, 1, send_bytes_per_second=read)
            else:
                group = Group(addresses, ports, int(WRITE_COST * rate), READ_COST, WRITE_COST)
            self._throttle.set(fs["id"], group)
            if fs["id"] not in self._settled:
                self._settled[fs["id"]] = (clock.time(), self._metered().get(fs["id"], 0.0))

    def settle(self, standard: dict[str, int]) -> list[str]:
        """Settle the credits of the limited Bursting file systems (`standard`: id -> Standard
        bytes): earned at the baseline over the simulated time passed, spent by the bytes metered
        since. Returns those whose permitted rate changed (ran out, or earned some back): the
        caller applies them again."""
        changed = []
        with self._lock:
            metered = self._metered()
            now = clock.time()
            for fs_id, standard_bytes in standard.items():
                last = self._settled.get(fs_id)
                if last is None:
                    continue
                self._settled[fs_id] = (now, metered.get(fs_id, 0.0))
                before = self.credits.get(fs_id, INITIAL_CREDITS)
                balance = (
                    before
                    + baseline(standard_bytes) * max(0.0, now - last[0])
                    - max(0.0, metered.get(fs_id, 0.0) - last[1])
                )
                self.credits[fs_id] = max(0.0, min(max_credits(standard_bytes), balance))
                if (before > 0) != (self.credits[fs_id] > 0):
                    changed.append(fs_id)
        return changed

    def forget(self, fs_id: str) -> None:
        with self._lock:
            self.credits.pop(fs_id, None)
            self._settled.pop(fs_id, None)
            if self._throttle is not None:
                self._throttle.remove(fs_id)

    def _metered(self) -> dict[str, float]:
        """Bytes metered (reads at a third) while each file system has been limited."""
        if self._throttle is None:
            return {}
        return {
            fs_id: sent * READ_COST / WRITE_COST + received
            for fs_id, (sent, received) in self._throttle.totals().items()
        }

    def stop(self) -> None:
        with self._lock:
            if self._throttle is not None:
                self._throttle.stop()
