"""Automatic ElastiCache snapshots as the scheduler's `elasticache.snapshots` rule: taken in the
SnapshotWindow on the simulated clock, once per window however far the clock jumps, kept
SnapshotRetentionLimit days, reported by the clock advance, and resumed after a restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import redis

from tests.services.elasticache.conftest import eventually, node_endpoints


def test_snapshots_follow_the_window_through_a_jump_and_a_restart(strata_factory, unique):
    server = strata_factory()  # a private server: this test moves its clock
    ec = server.client("elasticache")
    now = datetime.fromisoformat(server.admin("/_strata/clock")["now"])
    hour = (now.hour + 2) % 24
    cid = f"win-{unique}"
    ec.create_cache_cluster(
        CacheClusterId=cid,
        Engine="redis",
        NumCacheNodes=1,
        SnapshotRetentionLimit=3,
        SnapshotWindow=f"{hour:02d}:00-{(hour + 1) % 24:02d}:00",
    )
    (ep,) = node_endpoints(ec, cid)
    client = redis.Redis(ep["Address"], ep["Port"], decode_responses=True)

    def automatic() -> list[dict]:
        snaps = ec.describe_snapshots(CacheClusterId=cid, SnapshotSource="system")["Snapshots"]
        return sorted(
            (s for s in snaps if s["SnapshotStatus"] == "available"),
            key=lambda s: s["NodeSnapshots"][0]["SnapshotCreateTime"],
        )

    def ran(duration: str) -> dict:
        return server.advance_clock(duration)["ran"]["elasticache.snapshots"]

    assert ran("1h") == {}  # no window opened yet
    client.set("k", "day1")
    assert ran("1d") == {"snapshots": 1}
    (first,) = automatic()
    stamp = first["NodeSnapshots"][0]["SnapshotCreateTime"].astimezone(UTC)
    assert (stamp.hour, stamp.minute) == (hour, 0)
    assert first["SnapshotName"] == f"automatic.{cid}-{stamp:%Y-%m-%d-%H-%M}"
    assert ran("1s") == {}  # the same window again: nothing
    messages = [
        e["Message"] for e in ec.describe_events(SourceIdentifier=cid, Duration=2 * 24 * 60)["Events"]
    ]
    assert messages == [
        "Cache cluster created",
        f"Snapshot succeeded for snapshot with ID '{first['SnapshotName']}' of cache cluster with ID '{cid}'",
    ]

    # Three years at once: one snapshot for the latest window, and the old one is past retention.
    client.set("k", "later")
    before = datetime.fromisoformat(server.admin("/_strata/clock")["now"])
    assert ran("1095d") == {"snapshots": 1, "pruned": 1}
    (latest,) = automatic()
    assert latest["NodeSnapshots"][0]["SnapshotCreateTime"] > before + timedelta(days=1094)
    # Events are kept 14 days: from the cluster's creation on, only the latest snapshot's is left.
    kept = ec.describe_events(SourceIdentifier=cid, StartTime=now - timedelta(hours=1))["Events"]
    assert [e["Message"] for e in kept] == [
        f"Snapshot succeeded for snapshot with ID '{latest['SnapshotName']}' of cache cluster with ID '{cid}'"
    ]

    # A restart in the middle: nothing is taken twice, and the next windows are taken.
    server.restart()
    eventually(
        lambda: (
            ec.describe_cache_clusters(CacheClusterId=cid)["CacheClusters"][0]["CacheClusterStatus"]
            == "available"
        ),
        what="cluster available after the restart",
    )
    assert ran("1s") == {}
    assert ran("1d") == {"snapshots": 1}
    assert [s["SnapshotName"] for s in automatic()][0] == latest["SnapshotName"]
    assert len(automatic()) == 2
    ec.delete_cache_cluster(CacheClusterId=cid)
