"""ElastiCache events: what happened to a cache cluster, replication group, snapshot, parameter
group, serverless cache, user, user group or cache subnet group, as DescribeEvents answers it
(cache security groups, EC2-Classic's, are not served, so none of their events are).

The lifecycle code records an event with `record(self.store, source, source_type, message)` at
the point the change is done (after the engine work, so an event never announces what failed).
Records are `event` documents of the caller's account and region, keyed by the simulated time
they happened at, so they list in order; ElastiCache keeps 14 days of events, and so does Strata:
older ones are pruned as new ones arrive and whenever events are described.
"""

from __future__ import annotations

import datetime as dt
import itertools

from strata.context import RequestContext
from strata.services.elasticache.core import ElastiCacheCore, paginate
from strata.services.elasticache.errors import invalid
from strata.services.owned_docs import OwnedDocs
from strata.sim.clock import clock

SOURCE_TYPES = (
    "cache-cluster",
    "cache-parameter-group",
    "cache-security-group",
    "cache-subnet-group",
    "replication-group",
    "serverless-cache",
    "serverless-cache-snapshot",
    "user",
    "user-group",
)
KEPT = dt.timedelta(days=14)  # ElastiCache answers for the past 14 days at most
DEFAULT_MINUTES = 60  # DescribeEvents without a window: the last hour
PRUNE_EVERY = 64  # writes between two prunes (a prune lists every event of the account)

_seq = itertools.count()


def record(store: OwnedDocs, source: str, source_type: str, message: str) -> None:
    """Record one event of `source` (its identifier) dated now on the simulated clock."""
    if source_type not in SOURCE_TYPES:
        raise ValueError(f"not an ElastiCache event source type: {source_type}")
    now = clock.now()
    n = next(_seq)
    # the time first so the keys list in order; the counter keeps events of one instant apart
    key = f"{now.timestamp():017.6f}-{n % 1_000_000:06d}"
    store.put_doc(
        "event",
        key,
        {"key": key, "source": source, "type": source_type, "message": message, "date": now.isoformat()},
    )
    if n % PRUNE_EVERY == 0:
        prune(store, now)


def prune(store: OwnedDocs, now: dt.datetime) -> int:
    """Delete the caller's events older than ElastiCache keeps them; how many went."""
    oldest = f"{(now - KEPT).timestamp():017.6f}"
    gone = 0
    for e in store.list_docs("event"):
        if e["key"] >= oldest:
            break  # listed in key order: the rest are younger
        gone += store.delete_doc("event", e["key"])
    return gone


class EventOperations(ElastiCacheCore):
    """DescribeEvents."""

    def describe_events(self, ctx: RequestContext, req: dict) -> dict:
        kind = req.get("SourceType")
        if kind is not None and kind not in SOURCE_TYPES:
            raise invalid(
                f"Invalid value for SourceType: {kind}. Valid values are: {', '.join(SOURCE_TYPES)}."
            )
        now = clock.now()
        prune(self.store, now)
        end = req.get("EndTime") or now
        start = req.get("StartTime")
        if start is None:
            # a Duration longer than the 14 days kept (or below zero) is clamped
            asked = req.get("Duration")
            minutes = DEFAULT_MINUTES if asked is None else int(asked)
            minutes = min(max(minutes, 0), int(KEPT.total_seconds() // 60))
            try:
                start = end - dt.timedelta(minutes=minutes)
            except OverflowError:  # an EndTime in year 1
                start = dt.datetime.min.replace(tzinfo=dt.UTC)
        source = (req.get("SourceIdentifier") or "").lower()
        chosen = []
        for e in self.store.list_docs("event"):
            date = dt.datetime.fromisoformat(e["date"])
            if not start <= date <= end:
                continue
            if source and e["source"].lower() != source:
                continue
            if kind and e["type"] != kind:
                continue
            chosen.append(e)
        page, marker = paginate(chosen, req, key="key")
        out: dict = {
            "Events": [
                {
                    "SourceIdentifier": e["source"],
                    "SourceType": e["type"],
                    "Message": e["message"],
                    "Date": dt.datetime.fromisoformat(e["date"]),
                }
                for e in page
            ]
        }
        if marker:
            out["Marker"] = marker
        return out
