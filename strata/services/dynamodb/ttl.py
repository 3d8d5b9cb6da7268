"""Time to live: items whose TTL attribute (epoch seconds) has passed are deleted.

DynamoDB deletes expired items in the background, typically within days; Strata sweeps from the
one scheduler (`rule`): when the simulated clock is advanced (so "30 days later" in a test shows
the items gone), every simulated hour, and when the server starts. As in DynamoDB, only Number values count, values more than five years in the past
are ignored, and TTL deletions are free (no capacity, no meter events).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from functools import partial

from strata.services.dynamodb import items as itm
from strata.services.dynamodb.capacity import Consumed
from strata.services.dynamodb.state import State
from strata.services.dynamodb.store import loads
from strata.services.dynamodb.tables import TableMeta

FIVE_YEARS = 5 * 365 * 86400


def expired(item: dict, attribute: str, now: float, since: float | None = None) -> bool:
    """Whether the item's TTL fell due by `now`, and not more than five years before `since`.

    A value already five years old when the sweep before (`since`) ran is not a TTL (DynamoDB
    ignores it); one that fell due in between is, however long the clock jumped meanwhile, so a
    jump of years deletes what the same years in small steps would.
    """
    value = item.get(attribute)
    if value is None or "N" not in value:
        return False
    try:
        at = Decimal(value["N"])
    except InvalidOperation:
        return False
    return min(now, since if since is not None else now) - FIVE_YEARS <= at <= now


def expire_chunk(
    state: State,
    meta: TableMeta,
    now: float,
    after: tuple[bytes, bytes] | None,
    n: int,
    since: float | None = None,
) -> tuple[int, tuple[bytes, bytes] | None]:
    """Delete the expired items among the next n after `after` (inside `store.write()`).

    Returns how many were deleted and the key to continue after, None at the end of the table.
    """
    store = state.store
    attribute = (meta.ttl or {}).get("AttributeName")
    rows = store.items_after(meta.tid, after, n)
    deleted = 0
    for pk, sk, blob in rows:
        if attribute and expired(loads(blob), attribute, now, since):
            got = store.get(meta.tid, pk, sk)
            if got is not None:
                itm.write(
                    store, meta, pk, sk, got[0], got[1], None, 0, Consumed(meta.name, read=False), by_ttl=True
                )
                deleted += 1
    return deleted, ((rows[-1][0], rows[-1][1]) if len(rows) == n else None)


def rule(state: State, chunk: int) -> Callable[[float, float], Awaitable[dict[str, int]]]:
    """The scheduler's `dynamodb.ttl` rule (strata.sim.scheduler): delete what expired by `until`.

    Every table with TTL enabled is swept a chunk per group commit, so requests are served
    between chunks however large the table; until the sweep reaches an item it may still be
    read, which DynamoDB allows too (it deletes expired items within days).
    """

    async def run(since: float, until: float) -> dict[str, int]:
        store = state.store
        deleted = 0
        for meta in list(state.tables.values()):
            after: tuple[bytes, bytes] | None = None
            while True:
                current = state.tables.get((meta.scope, meta.name))
                if current is None or current.tid != meta.tid or not (current.ttl or {}).get("Enabled"):
                    break  # disabled, or the table deleted meanwhile
                n, after = await store.db.write(
                    partial(expire_chunk, state, current, until, after, chunk, since)
                )
                deleted += n
                if after is None:
                    break
        return {"deleted": deleted}

    return run
