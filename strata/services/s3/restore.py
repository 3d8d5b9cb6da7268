"""RestoreObject: GLACIER and DEEP_ARCHIVE objects become readable for a while, on the simulated clock.

A restore request records when the temporary copy will be ready (request time + the tier's
retrieval time, the lower bound AWS documents) and when it expires (ready + Days, rounded up to
the next midnight UTC, as S3 does). Nothing runs in the background: an object's restore state is
computed from those two instants and `clock.time()` whenever it is read, so advancing the
simulated clock completes (and later expires) restores exactly as time passing would.

GET/HEAD report the state in `x-amz-restore` (`ongoing-request="true"`, or
`ongoing-request="false", expiry-date="..."`); GET and copies of an archived object succeed only
while a completed restore has not expired.
"""

from __future__ import annotations

import math
from email.utils import formatdate
from typing import Any

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.s3.core import S3Core, to_datetime
from strata.services.s3.names import ARCHIVED_CLASSES
from strata.services.s3.tiering_rules import ARCHIVE_TIERS
from strata.services.s3.tiering_rules import RETRIEVAL as TIER_RETRIEVAL
from strata.sim.meter import meter

DAY = 86400.0
# Retrieval time per storage class and tier, in seconds (the lower bound of AWS's ranges).
RETRIEVAL = {
    "GLACIER": {"Expedited": 60.0, "Standard": 3 * 3600.0, "Bulk": 5 * 3600.0},
    "DEEP_ARCHIVE": {"Standard": 12 * 3600.0, "Bulk": 48 * 3600.0},
}
MAX_DAYS = 30_000  # S3 accepts restore periods up to 30,000 days


def _next_midnight(ts: float) -> float:
    return math.ceil(ts / DAY) * DAY


def restore_state(attrs: dict[str, Any], now: float) -> tuple[str, float | None]:
    """("none" | "ongoing" | "done" | "expired", expiry time when done) for an object's attrs."""
    r = attrs.get("restore")
    if not r:
        return "none", None
    if now < r["ready"]:
        return "ongoing", None
    if now < r["expiry"]:
        return "done", r["expiry"]
    return "expired", None


def readable(storage_class: str, attrs: dict[str, Any], now: float) -> bool:
    """Whether an object's bytes can be read now (archived classes only while restored)."""
    return storage_class not in ARCHIVED_CLASSES or restore_state(attrs, now)[0] == "done"


def restore_header(attrs: dict[str, Any], now: float) -> str | None:
    """The `x-amz-restore` value for an object, or None when no restore is current."""
    state, expiry = restore_state(attrs, now)
    if state == "ongoing":
        return 'ongoing-request="true"'
    if state == "done":
        return f'ongoing-request="false", expiry-date="{formatdate(expiry, usegmt=True)}"'
    return None


def restore_status(attrs: dict[str, Any], now: float) -> dict[str, Any] | None:
    """The ListObjectsV2 `RestoreStatus` element (OptionalObjectAttributes=RestoreStatus)."""
    state, expiry = restore_state(attrs, now)
    if state == "ongoing":
        return {"IsRestoreInProgress": True}
    if state == "done":
        return {"IsRestoreInProgress": False, "RestoreExpiryDate": to_datetime(expiry or 0)}
    return None


def _days(spec: dict) -> int:
    days = spec.get("Days")
    if days is None:
        raise ServiceError(
            "MalformedXML",
            "The XML you provided was not well-formed or did not validate against our published schema",
            400,
        )
    if not 1 <= days <= MAX_DAYS:
        raise ServiceError(
            "InvalidArgument",
            f"Days must be between 1 and {MAX_DAYS}",
            400,
            fields={"ArgumentName": "Days", "ArgumentValue": str(days)},
        )
    return days


def _tier(spec: dict, storage_class: str) -> str:
    tier = (spec.get("GlacierJobParameters") or {}).get("Tier") or spec.get("Tier") or "Standard"
    times = RETRIEVAL[storage_class]
    if tier not in times:
        if tier in ("Expedited", "Standard", "Bulk"):
            raise ServiceError(
                "InvalidArgument",
                f"{tier} retrievals are not available for the {storage_class} storage class",
                400,
                fields={"ArgumentName": "Tier", "ArgumentValue": tier},
            )
        raise ServiceError(
            "MalformedXML",
            "The XML you provided was not well-formed or did not validate against our published schema",
            400,
        )
    return tier


class RestoreOperations(S3Core):
    async def restore_object(self, ctx: RequestContext, req: dict) -> dict:
        bucket = self._require_bucket(req["Bucket"])
        self._count(ctx, bucket.name)
        spec = req.get("RestoreRequest") or {}
        if spec.get("Type") == "SELECT" or spec.get("SelectParameters") or spec.get("OutputLocation"):
            raise ServiceError(
                "NotImplemented",
                "A header you provided implies functionality that is not implemented",
                501,
            )

        def write() -> dict:
            row = self._read_version(bucket.name, req["Key"], req.get("VersionId"))
            if row.storage_class == "INTELLIGENT_TIERING":
                return self._restore_tiered(bucket, row)
            if row.storage_class not in ARCHIVED_CLASSES:
                raise ServiceError(
                    "InvalidObjectState",
                    "Restore is not allowed for the object's current storage class",
                    403,
                    fields={"StorageClass": row.storage_class},
                )
            days = _days(spec)
            tier = _tier(spec, row.storage_class)
            now = self._now()
            state, _ = restore_state(row.attrs, now)
            if state == "ongoing":
                raise ServiceError("RestoreAlreadyInProgress", "Object restore is already in progress", 409)
            if state == "done":
                # A completed restore gets a new period, counted from now.
                row.attrs["restore"] = {**row.attrs["restore"], "expiry": _next_midnight(now + days * DAY)}
                self.store.update_attrs(row)
                return {"StatusCode": 200}
            ready = now + RETRIEVAL[row.storage_class][tier]
            row.attrs["restore"] = {
                "requested": now,
                "ready": ready,
                "expiry": _next_midnight(ready + days * DAY),
                "tier": tier,
                "days": days,
            }
            self.store.update_attrs(row)
            meter.record(
                "s3", f"Restore-{row.storage_class}-{tier}-Bytes", row.size, "byte", bucket=bucket.name
            )
            return {"StatusCode": 202}

        return await self._write(write)

    def _restore_tiered(self, bucket: Any, row: Any) -> dict:
        """An Intelligent-Tiering object in an archive tier comes back to Frequent Access once
        the tier's retrieval time has passed (no temporary copy: no Days)."""
        tier = self._access_tier(bucket, row)
        now = self._now()
        if restore_state(row.attrs, now)[0] == "ongoing":
            raise ServiceError("RestoreAlreadyInProgress", "Object restore is already in progress", 409)
        if tier not in ARCHIVE_TIERS:
            raise ServiceError(
                "InvalidObjectState",
                "Restore is not allowed for the object's current storage class",
                403,
                fields={"StorageClass": row.storage_class},
            )
        ready = now + TIER_RETRIEVAL[tier]
        row.attrs["restore"] = {"requested": now, "ready": ready, "expiry": ready, "access_tier": tier}
        self.store.update_attrs(row)
        meter.record("s3", f"Restore-INTELLIGENT_TIERING-{tier}-Bytes", row.size, "byte", bucket=bucket.name)
        return {"StatusCode": 202}
