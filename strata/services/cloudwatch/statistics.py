"""Statistics over stored buckets: periods, the five basic statistics and percentiles.

A period groups every stored bucket whose start falls in it; a bucket wider than the period (data
already rolled up) counts in the period its start falls in, as CloudWatch answers old data only at
its stored resolution. Percentiles need raw values: a period whose buckets came as statistic sets
(or held more values than the store keeps) has no percentile, and CloudWatch omits it too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from strata.protocol.constraints import validation_errors, validation_message
from strata.protocol.errors import ServiceError
from strata.protocol.spec import operation_model
from strata.services.cloudwatch.store import Bucket

BASIC = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
_PERCENTILE = re.compile(r"^p(\d{1,2}(?:\.\d{1,10})?|100(?:\.0+)?)$")
HIGH_RES_PERIODS = (1, 5, 10, 30)


def invalid(message: str) -> ServiceError:
    return ServiceError("InvalidParameterValue", message, 400)


def check_constraints(operation: str, req: dict) -> None:
    """The model's lengths, ranges and enums: one ValidationError listing every broken one."""
    errors = validation_errors(operation_model("cloudwatch", operation).input_shape, req)
    if errors:
        raise ServiceError("ValidationError", validation_message(errors), 400)


def check_period(period: int, what: str = "The parameter Period") -> None:
    """Periods are 1, 5, 10, 30 or a multiple of 60 seconds (CloudWatch's rule)."""
    if period < 1 or (period not in HIGH_RES_PERIODS and period % 60):
        raise invalid(f"{what} must be 1, 5, 10, 30, or a multiple of 60.")


def percentile_of(stat: str) -> float | None:
    """The percentile a statistic names (p99 -> 99.0), None for a basic statistic."""
    m = _PERCENTILE.match(stat)
    return float(m.group(1)) if m else None


def is_statistic(stat: str) -> bool:
    return stat in BASIC or percentile_of(stat) is not None


def aligned_start(start: float, period: int) -> int:
    """Where periods begin: the start rounded down to the minute (to the second under a minute)."""
    step = 60 if period >= 60 else 1
    return int(start // step * step)


def by_period(
    rows: Iterable[tuple[int, int, str, Bucket]], start: float, end: float, period: int
) -> dict[tuple[int, str], Bucket]:
    """(period start, unit) -> the merged bucket of every stored bucket starting in that period."""
    origin = aligned_start(start, period)
    out: dict[tuple[int, str], Bucket] = {}
    for t, _width, unit, bucket in rows:
        if t < origin or t >= end:
            continue
        key = (origin + (t - origin) // period * period, unit)
        have = out.get(key)
        if have is None:
            out[key] = Bucket(bucket.sum, bucket.n, bucket.lo, bucket.hi, bucket.vals)
        else:
            have.merge(bucket)
    return out


def value(bucket: Bucket, stat: str) -> float | None:
    """A statistic of a merged bucket; None when it cannot be told (percentile without values)."""
    if stat == "SampleCount":
        return bucket.n
    if stat == "Sum":
        return bucket.sum
    if stat == "Minimum":
        return bucket.lo
    if stat == "Maximum":
        return bucket.hi
    if stat == "Average":
        return bucket.sum / bucket.n if bucket.n else 0.0
    p = percentile_of(stat)
    if p is None or not bucket.vals:
        return None
    ordered = sorted(bucket.vals)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))  # nearest rank
    return ordered[min(rank, len(ordered)) - 1]
