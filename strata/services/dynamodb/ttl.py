"""Time to live: items whose TTL attribute (epoch seconds) has passed are deleted.

DynamoDB deletes expired items in the background, typically within days; Strata sweeps when the
simulated clock is advanced (so "30 days later" in a test shows the items gone) and when the
server starts. As in DynamoDB, only Number values count, values more than five years in the past
are ignored, and TTL deletions are free (no capacity, no meter events).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal, InvalidOperation
from typing import Any

from strata.services.dynamodb import items as itm
from strata.services.dynamodb.capacity import Consumed
from strata.services.dynamodb.state import State
from strata.services.dynamodb.store import loads
from strata.services.dynamodb.tables import TableMeta

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


def expire_chunk(
    state: State, meta: TableMeta, now: float, after: tuple[bytes, bytes] | None, n: int
) -> tuple[int, tuple[bytes, bytes] | None]:
    """Delete the expired items among the next n after `after` (inside `store.write()`).

    Returns how many were deleted and the key to continue after, None at the end of the table.
    """
    store = state.store
    attribute = (meta.ttl or {}).get("AttributeName")
    rows = store.items_after(meta.tid, after, n)
    deleted = 0
    for pk, sk, blob in rows:
        if attribute and expired(loads(blob), attribute, now):
            got = store.get(meta.tid, pk, sk)
            if got is not None:
                itm.write(store, meta, pk, sk, got[0], got[1], None, 0, Consumed(meta.name, read=False))
                deleted += 1
    return deleted, ((rows[-1][0], rows[-1][1]) if len(rows) == n else None)


def sweep(state: State, now: float, bulk: Any = None) -> int:
    """Delete every expired item of every table with TTL enabled; returns how many were deleted now.

    A table larger than one bulk chunk is swept in the background, a chunk per group commit
    (bulk.py), so a clock move never stalls the server; until then its expired items may still
    be read, which DynamoDB allows too (it deletes them within days).
    """
    deleted = 0
    store = state.store
    background = bulk is not None and _loop_running()
    for meta in list(state.tables.values()):
        if not (meta.ttl or {}).get("Enabled"):
            continue
        if background and store.counts(meta.tid)[0] > bulk.chunk:
            bulk.expire(meta, now)
            continue
        after = None
        while True:
            with store.write():
                n, after = expire_chunk(state, meta, now, after, 1000)
            deleted += n
            if after is None:
                break
    return deleted


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
