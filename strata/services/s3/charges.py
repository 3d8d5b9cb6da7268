"""Early-deletion charges: S3 bills an object removed (deleted, overwritten or transitioned out)
before its class's minimum storage duration for the days it did not stay.

STANDARD_IA and ONEZONE_IA keep 30 days, GLACIER_IR and GLACIER 90, DEEP_ARCHIVE 180, counted from
when the object entered the class (its creation, or the lifecycle transition that moved it:
`attrs["class_since"]`). The charge goes to the meter as `EarlyDelete-<class>` in byte-hours of
the remaining time, priced like the class's storage.
"""

from __future__ import annotations

from strata.services.s3.names import MIN_STORAGE_DAYS
from strata.sim.meter import meter

DAY = 86400.0


def charge_early_delete(bucket: str, storage_class: str, size: int, since: float, at: float) -> None:
    """Meter the rest of the minimum duration of an object of `storage_class` removed at `at`."""
    days = MIN_STORAGE_DAYS.get(storage_class)
    if not days or size <= 0:
        return
    left = since + days * DAY - at
    if left > 0:
        meter.record("s3", f"EarlyDelete-{storage_class}", size * left / 3600.0, "byte-hour", bucket=bucket)
