"""AWS/EBS metrics per VolumeId, from the NBD data path (strata.services.ec2.nbd): every READ and
WRITE an NBD connection received is counted by the connection's own thread (four integers, no
lock, no clock read on the request path), and sampled here once a simulated minute.

- VolumeReadOps / VolumeWriteOps: the operations of the minute (Sum);
- VolumeReadBytes / VolumeWriteBytes: their bytes as one statistic set, Sum the bytes and
  SampleCount the operations, so Average is the mean operation size, as EBS reports it;
- VolumeIdleTime: 60 in a minute with no operation, else 0 (Strata does not time operations);
- BurstBalance (gp2, st1, sc1, while limits are on): percent of the burst credits left.

Counters live in memory: the I/O between the last sample and a stop of Strata is not published.
"""

from __future__ import annotations

from typing import Any

from strata.services.cloudwatch.store import Bucket, Point, dims_key, scope_of


class EbsSampler:
    def __init__(self) -> None:
        self._last: dict[str, tuple[int, ...]] = {}

    def points(self, provider: Any, at: float) -> list[Point]:
        totals = provider.nbd.io_totals()
        out: list[Point] = []
        for doc in provider.store.list_docs("volume"):
            if doc.get("state") not in ("available", "in-use"):
                continue
            volume = doc["id"]
            scope = scope_of(doc["account"], doc["region"])
            dims = dims_key([{"Name": "VolumeId", "Value": volume}])
            now = totals.get(volume, (0, 0, 0, 0))
            last = self._last.get(volume, (0, 0, 0, 0))
            self._last[volume] = now
            reads, read_bytes, writes, written = (max(0, a - b) for a, b in zip(now, last, strict=True))

            def point(name: str, bucket: Bucket, unit: str, scope: str = scope, dims: str = dims) -> Point:
                return Point(scope, "AWS/EBS", name, dims, at, unit, bucket)

            out += [
                point("VolumeReadOps", _count(reads), "Count"),
                point("VolumeWriteOps", _count(writes), "Count"),
                point("VolumeIdleTime", _count(0.0 if reads or writes else 60.0), "Seconds"),
            ]
            if reads:
                out.append(point("VolumeReadBytes", _sized(read_bytes, reads), "Bytes"))
            if writes:
                out.append(point("VolumeWriteBytes", _sized(written, writes), "Bytes"))
            balance = provider.nbd.burst_balance(volume)
            if balance is not None:
                out.append(point("BurstBalance", _count(balance), "Percent"))
        return out


def _count(v: float) -> Bucket:
    return Bucket(float(v), 1.0, float(v), float(v), [float(v)])


def _sized(total: int, ops: int) -> Bucket:
    mean = total / ops
    return Bucket(float(total), float(ops), mean, mean, None)
