"""Provisioned throughput, enforced: a file system's NFS traffic is held to what it provisioned.

AWS meters reads at a third of the rate of writes, so a file system provisioned at P MiB/s reads
at up to 3P and writes at up to P (https://aws.amazon.com/blogs/storage/amazon-efs-introduces-3x-
read-throughput-increase-at-no-additional-charge/). Strata holds each direction to its own limit,
over all the file system's mount targets together (both NFS ports: the root and the access
points), with the kernel's token buckets (strata.engines.throttle): reads to 3P, writes to P. A
mix of reads and writes can therefore drive each to its limit at once (metered up to 2P), where
AWS holds their metered sum to P; and a provisioned file system large enough that Bursting would
give it more keeps the provisioned figure here.

Bursting and Elastic file systems are not throttled: Strata does not keep burst credits, so a
Bursting file system runs as one that never runs out of them and without the 100 MiB/s burst
ceiling; Elastic's own ceilings (GiB/s) are beyond one machine's loopback NFS.
"""

from __future__ import annotations

from functools import cache

from strata.engines.ganesha import ACCESS_POINT_PORT, NFS_PORT
from strata.engines.nft import nft_usable
from strata.engines.throttle import Group, Throttle

MIB = 1 << 20
READ_FACTOR = 3  # reads are metered at a third of the rate of writes


@cache
def unsupported() -> str | None:
    """Why provisioned throughput cannot be enforced here, or None when it can."""
    if not nft_usable():
        return "Strata enforces it with nftables, which needs root and the nft tool (Debian nftables)"
    return None


class ThroughputLimits:
    """The throughput limits of one data dir's file systems."""

    def __init__(self) -> None:
        self._throttle: Throttle | None = None

    def apply(self, fs: dict, mount_targets: list[dict]) -> None:
        """Hold the file system's traffic to its provisioned throughput, or release it (not
        provisioned, no mount target left); blocking."""
        if fs.get("throughput") != "provisioned" or not mount_targets:
            if self._throttle is not None:
                self._throttle.remove(fs["id"])
            return
        if self._throttle is None:
            self._throttle = Throttle("efs_throughput")
        rate = int(fs["provisioned"] * MIB)
        addresses = tuple(sorted(m["ip"] for m in mount_targets))
        self._throttle.set(
            fs["id"], Group(addresses, (NFS_PORT, ACCESS_POINT_PORT), READ_FACTOR * rate, rate)
        )

    def stop(self) -> None:
        if self._throttle is not None:
            self._throttle.stop()
