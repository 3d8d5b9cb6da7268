"""Time to live: items whose TTL attribute (epoch seconds) has passed are deleted.

DynamoDB deletes expired items in the background, typically within days; Strata sweeps when the
simulated clock is advanced (so "30 days later" in a test shows the items gone) and when the
server starts. As in DynamoDB, only Number values count, values more than five years in the past
are ignored, and TTL deletions are free (no capacity, no meter events).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from strata.services.dynamodb import items as itm
from strata.services.dynamodb.capacity import Consumed
from strata.services.dynamodb.state import State
from strata.services.dynamodb.store import loads

FIVE_YEARS = 5 * 365 * 86400


def expired(item: dict, attribute: str, now: float) -> bool:
    value = item.get(attribute)
    if value is None or "N" not in value:
        return False
    try:
        at = Decimal(value["N"])
    except InvalidOperation:
        return False
    return now - FIVE_YEARS <= at <= now


def sweep(state: State, now: float) -> int:
    """Delete every expired item of every table with TTL enabled; returns how many."""
    deleted = 0
    store = state.store
    for meta in list(state.tables.values()):
        ttl = meta.ttl or {}
        if not ttl.get("Enabled"):
            continue
        attribute = ttl["AttributeName"]
        doomed = []
        for pk, sk, blob in store.all_items(meta.tid):
            item = loads(blob)
            if expired(item, attribute, now):
                doomed.append((pk, sk))
        for pk, sk in doomed:
            with store.write():
                got = store.get(meta.tid, pk, sk)
                if got is not None and expired(got[0], attribute, now):
                    itm.write(store, meta, pk, sk, got[0], got[1], None, 0, Consumed(meta.name, read=False))
                    deleted += 1
    store.commit_now()
    return deleted
