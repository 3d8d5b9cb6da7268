"""KMS key storage on the meter: the `kms.keys` rule, hourly on the simulated clock.

AWS bills every customer managed key $1 a month, prorated by the hour, from its creation until it
is scheduled for deletion (a key pending deletion is not billed); each of the first two rotations
of its material adds another $1 a month from the rotation on (later rotations are free). AWS
managed keys (`aws/s3` ...) cost nothing. Each run meters, per key, the key-hours of (since,
until] weighted by the versions billed at each instant (`KeyHours`, unit `key-hour`).

A key scheduled for deletion and purged (on a read after its window) before a run reached the
instant it was scheduled loses that last span: at most one rule period of one key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from strata.services.base import run_blocking
from strata.services.kms.keys import KeyRing
from strata.sim.meter import meter

DAY = 86400.0
BILLED_ROTATIONS = 2


def billed_key_hours(doc: dict, since: float, until: float) -> float:
    """Key-hours of one key in (since, until], each billed rotation counting as one more key."""
    if doc.get("manager") != "CUSTOMER":
        return 0.0
    end = until
    if doc.get("state") == "PendingDeletion" and doc.get("deletion_date"):
        end = min(end, doc["deletion_date"] - (doc.get("pending_days") or 0) * DAY)
    start = max(since, doc["created"])
    if end <= start:
        return 0.0
    hours = (end - start) / 3600.0
    rotations = sorted(m["at"] for m in doc.get("materials", ()) if m.get("type") != "INITIAL")
    for at in rotations[:BILLED_ROTATIONS]:
        hours += max(0.0, end - max(start, at)) / 3600.0
    return hours


def _current(keys: KeyRing) -> list[dict]:
    """Every key as stored, with the automatic rotations due by now applied (a key whose deletion
    window has passed is purged by that read: its stored record still says when it was scheduled)."""
    return [keys.get(doc["id"]) or doc for doc in keys.store.list_docs("key")]


def rule(keys: KeyRing) -> Callable[[float, float], Awaitable[dict[str, int]]]:
    async def run(since: float, until: float) -> dict[str, int]:
        docs = await run_blocking(_current, keys)
        metered = 0
        for doc in docs:
            hours = billed_key_hours(doc, since, until)
            if hours > 0:
                meter.record(
                    "kms",
                    "KeyHours",
                    hours,
                    "key-hour",
                    key=doc["id"],
                    account=doc["account"],
                    region=doc["region"],
                )
                metered += 1
        return {"metered": metered}

    return run
