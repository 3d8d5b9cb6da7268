"""Storage metered as S3 bills it: byte-hours per storage class, with S3's minimum billable sizes.

Each run of the `s3.lifecycle` rule (lifecycle_run.py) meters the storage of every bucket for the
simulated time it covers, `(since, until]`: a version counts from its creation (or `since`) to
`until`, or to the instant lifecycle removed it, in the class it was in at each moment (a jump of
a year over objects that moved STANDARD -> STANDARD_IA -> GLACIER meters each class for its part).
Objects a client deleted meanwhile are not metered for the part of the run's span they lived.

S3's minimums: STANDARD_IA, ONEZONE_IA and GLACIER_IR bill at least 128 KiB per object; GLACIER
and DEEP_ARCHIVE add 32 KiB per object at the class's rate and 8 KiB at STANDARD's (the index
S3 keeps for them). Events: `TimedStorage-<class>` in byte-hours, per bucket.
"""

from __future__ import annotations

from strata.services.s3.names import ARCHIVE_OVERHEAD, MIN_BILLABLE_SIZE
from strata.sim.meter import meter


class StorageTally:
    """Byte-seconds and object-seconds per class, metered in one event per class."""

    def __init__(self) -> None:
        self.byte_seconds: dict[str, float] = {}
        self.object_seconds: dict[str, float] = {}

    def add(self, storage_class: str, size: int, seconds: float) -> None:
        if seconds <= 0:
            return
        billed = max(size, MIN_BILLABLE_SIZE.get(storage_class, 0))
        self.byte_seconds[storage_class] = self.byte_seconds.get(storage_class, 0.0) + billed * seconds
        self.object_seconds[storage_class] = self.object_seconds.get(storage_class, 0.0) + seconds

    def add_sums(self, storage_class: str, byte_seconds: float, object_seconds: float) -> None:
        """Sums computed elsewhere (SQL), minimum sizes already applied."""
        self.byte_seconds[storage_class] = self.byte_seconds.get(storage_class, 0.0) + byte_seconds
        self.object_seconds[storage_class] = self.object_seconds.get(storage_class, 0.0) + object_seconds

    def record(self, bucket: str) -> None:
        byte_hours = {cls: bs / 3600.0 for cls, bs in self.byte_seconds.items()}
        for cls, seconds in self.object_seconds.items():
            for into, overhead in ARCHIVE_OVERHEAD.get(cls, {}).items():
                target = cls if into == "self" else into
                byte_hours[target] = byte_hours.get(target, 0.0) + overhead * seconds / 3600.0
        for cls, quantity in byte_hours.items():
            if quantity > 0:
                meter.record("s3", f"TimedStorage-{cls}", quantity, "byte-hour", bucket=bucket)
        self.byte_seconds.clear()
        self.object_seconds.clear()
