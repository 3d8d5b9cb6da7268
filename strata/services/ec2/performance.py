"""Each volume's IOPS and throughput, enforced on the NBD data path like EBS enforces them.

Token buckets on real (monotonic) time: one for I/O operations, one for bytes. An operation costs
one I/O per started 256 KiB on SSD types and per started 1 MiB on HDD types (AWS's I/O size
units). gp2, st1 and sc1 burst on credits: a credit bucket refills at the baseline rate up to its
capacity (gp2: 5.4 million I/O credits; st1/sc1: 1 TiB of throughput credit per TiB of size) and
the burst rate applies while credits last. Rates come from the type table and the volume's
provisioned values; `STRATA_EBS_LIMITS=off` turns all of this off.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass

from strata.services.ec2.limits import gp2_iops
from strata.sim.clock import clock

MIB = 1024 * 1024
SSD_IO = 256 * 1024
HDD_IO = MIB
GP2_CREDITS = 5_400_000.0
BURST_WINDOW = 0.05  # seconds of the rate a bucket may hold: short bursts, no long ones


def limits_enabled() -> bool:
    return os.environ.get("STRATA_EBS_LIMITS", "on").lower() not in ("off", "0", "false", "no")


class Bucket:
    """Tokens refilling at `rate` per second up to `capacity`; taking more than there are waits."""

    def __init__(self, rate: float, capacity: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.at = clock.monotonic()

    def _refill(self) -> None:
        now = clock.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now

    def take(self, n: float) -> float:
        """Take `n` tokens (going into debt if short); the seconds to wait until the debt is paid."""
        self._refill()
        self.tokens -= n
        return max(0.0, -self.tokens / self.rate)

    def has(self, n: float) -> bool:
        self._refill()
        return self.tokens >= n


@dataclass(frozen=True)
class Rates:
    iops: float  # sustained (baseline) I/O per second
    throughput: float  # sustained bytes per second
    burst_iops: float = 0.0  # on credits (gp2), 0 when the type does not burst I/O
    burst_throughput: float = 0.0  # on credits (st1, sc1)
    io_size: int = SSD_IO


def rates_of(doc: dict) -> Rates:
    """A volume's performance, from its type, size and provisioned values (AWS's tables)."""
    kind, size = doc["type"], doc["size"]
    tib = size / 1024
    if kind == "gp3":
        return Rates(doc["iops"], doc["throughput"] * MIB)
    if kind == "gp2":
        baseline = gp2_iops(size)
        throughput = (128 if size <= 170 else 250) * MIB
        return Rates(baseline, throughput, burst_iops=3000.0 if baseline < 3000 else 0.0)
    if kind == "io1":
        return Rates(doc["iops"], min(1000 * MIB, doc["iops"] * SSD_IO))
    if kind == "io2":
        return Rates(doc["iops"], min(4000 * MIB, doc["iops"] * SSD_IO))
    if kind == "st1":
        return Rates(
            500, min(500, 40 * tib) * MIB, burst_throughput=min(500, 250 * tib) * MIB, io_size=HDD_IO
        )
    if kind == "sc1":
        return Rates(250, min(250, 12 * tib) * MIB, burst_throughput=min(250, 80 * tib) * MIB, io_size=HDD_IO)
    return Rates(200, 90 * MIB, io_size=HDD_IO)  # standard (magnetic): ~100 IOPS, bursts to hundreds


class VolumeLimiter:
    """The buckets of one volume, shared by every NBD connection to it."""

    def __init__(self, doc: dict) -> None:
        self._lock = threading.Lock()  # the NBD threads of every connection share the buckets
        self.retune(doc)

    def retune(self, doc: dict) -> None:
        """New rates (after ModifyVolume); credits already earned are kept."""
        with self._lock:
            self._retune(doc)

    def _retune(self, doc: dict) -> None:
        r = self.rates = rates_of(doc)
        iops = max(r.iops, r.burst_iops)
        throughput = max(r.throughput, r.burst_throughput)
        self.ops = Bucket(iops, max(1.0, iops * BURST_WINDOW))
        self.bytes = Bucket(throughput, max(float(r.io_size), throughput * BURST_WINDOW))
        old = getattr(self, "credits", None)
        if r.burst_iops:
            self.credits: Bucket | None = Bucket(r.iops, GP2_CREDITS)
        elif r.burst_throughput:
            self.credits = Bucket(r.throughput, doc["size"] * 1024 * MIB)
        else:
            self.credits = None
        if old is not None and self.credits is not None:
            self.credits.tokens = min(self.credits.capacity, old.tokens)

    def burst_balance(self) -> float | None:
        """Percent of the burst credit bucket left (CloudWatch's BurstBalance); None without one."""
        with self._lock:
            if self.credits is None:
                return None
            self.credits.take(0)  # refilled to now
            return max(0.0, 100.0 * self.credits.tokens / self.credits.capacity)

    def admit(self, length: int) -> float:
        """Admit an operation of `length` bytes: the seconds the caller must wait before it runs."""
        with self._lock:
            r = self.rates
            ios = max(1, math.ceil(length / r.io_size))
            wait = max(self.ops.take(ios), self.bytes.take(length))
            if self.credits is not None:
                # Credits pay for what goes beyond the baseline; once they are gone, the baseline
                # is all there is (the credit bucket refills at exactly that rate).
                wait = max(wait, self.credits.take(ios if r.burst_iops else length))
            return wait
