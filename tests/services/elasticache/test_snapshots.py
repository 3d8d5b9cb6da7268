"""Snapshots: BGSAVE files kept by Strata, copy/delete, restore on create, final and automatic snapshots."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from botocore.exceptions import ClientError

from tests.services.elasticache.conftest import eventually, group, node_endpoints


def fill(client: redis.Redis, prefix: str, n: int = 200) -> None:
    pipe = client.pipeline()
    for i in range(n):
        pipe.set(f"{prefix}:{i}", i)
    pipe.hset(f"{prefix}:hash", mapping={"a": 1, "b": 2})
    pipe.execute()


def test_snapshot_copy_restore_delete(ec, cleanup, unique, strata_server):
    cid = f"snap-{unique}"
    ec.create_cache_cluster(CacheClusterId=cid, Engine="redis", NumCacheNodes=1, SnapshotRetentionLimit=3)
    cleanup.append(("cluster", cid))
    (ep,) = node_endpoints(ec, cid)
    fill(redis.Redis(ep["Address"], ep["Port"]), "p")

    snap = ec.create_snapshot(CacheClusterId=cid, SnapshotName=f"s1-{unique}")["Snapshot"]
    assert snap["SnapshotStatus"] == "creating" and snap["SnapshotSource"] == "manual"
    described = ec.describe_snapshots(SnapshotName=f"s1-{unique}")["Snapshots"][0]
    assert described["SnapshotStatus"] == "available"
    assert described["CacheClusterId"] == cid and described["Engine"] == "redis"
    assert described["NodeSnapshots"][0]["CacheNodeId"] == "0001"
    assert [s["SnapshotName"] for s in ec.describe_snapshots(CacheClusterId=cid)["Snapshots"]] == [
        f"s1-{unique}"
    ]
    with pytest.raises(ClientError) as e:
        ec.create_snapshot(CacheClusterId=cid, SnapshotName=f"s1-{unique}")
    assert e.value.response["Error"]["Code"] == "SnapshotAlreadyExistsFault"

    ec.copy_snapshot(SourceSnapshotName=f"s1-{unique}", TargetSnapshotName=f"s2-{unique}")
    ec.delete_snapshot(SnapshotName=f"s1-{unique}")
    messages = [e["Message"] for e in ec.describe_events(SourceIdentifier=cid)["Events"]]
    assert messages[-3:] == [
        f"Snapshot succeeded for snapshot with ID 's1-{unique}' of cache cluster with ID '{cid}'",
        f"Copied snapshot with ID 's1-{unique}' to snapshot with ID 's2-{unique}' of cache cluster with ID '{cid}'",
        f"Deleted snapshot with ID 's1-{unique}' of cache cluster with ID '{cid}'",
    ]
    with pytest.raises(ClientError) as e:
        ec.describe_snapshots(SnapshotName=f"s1-{unique}")
    assert e.value.response["Error"]["Code"] == "SnapshotNotFoundFault"

    # restore the copy into a new cluster: the data is there
    restored = f"restored-{unique}"
    ec.create_cache_cluster(
        CacheClusterId=restored, Engine="redis", NumCacheNodes=1, SnapshotName=f"s2-{unique}"
    )
    cleanup.append(("cluster", restored))
    (rep,) = node_endpoints(ec, restored)
    client = redis.Redis(rep["Address"], rep["Port"], decode_responses=True)
    assert client.get("p:199") == "199" and client.hgetall("p:hash") == {"a": "1", "b": "2"}
    assert client.dbsize() == 201

    # A restore whose engine cannot start (its RDB damaged on disk) fails, and leaves no cluster:
    # a Create answers with the resource or leaves none, so a retry of it is not refused as
    # CacheClusterAlreadyExists for a cluster the caller was told was not made.
    ec.copy_snapshot(SourceSnapshotName=f"s2-{unique}", TargetSnapshotName=f"s3-{unique}")
    (rdb,) = [f for f in Path(strata_server.data_dir).rglob("*.rdb") if f"s3-{unique}" in str(f)]
    rdb.write_bytes(b"not an RDB file")
    broken = f"broken-{unique}"
    for _ in range(2):  # as an SDK's retry would ask again
        with pytest.raises(ClientError) as e:
            ec.create_cache_cluster(
                CacheClusterId=broken, Engine="redis", NumCacheNodes=1, SnapshotName=f"s3-{unique}"
            )
        assert e.value.response["Error"]["Code"] == "InsufficientCacheClusterCapacity"
    with pytest.raises(ClientError) as e:
        ec.describe_cache_clusters(CacheClusterId=broken)
    assert e.value.response["Error"]["Code"] == "CacheClusterNotFound"
    ec.delete_snapshot(SnapshotName=f"s3-{unique}")
    ec.delete_snapshot(SnapshotName=f"s2-{unique}")


def test_group_final_snapshot_and_restore_into_a_group(ec, cleanup, unique):
    gid = f"fs-{unique}"
    ec.create_replication_group(
        ReplicationGroupId=gid,
        ReplicationGroupDescription="d",
        NumCacheClusters=2,
        AutomaticFailoverEnabled=True,
    )
    cleanup.append(("group", gid))
    ep = group(ec, gid)["NodeGroups"][0]["PrimaryEndpoint"]
    fill(redis.Redis(ep["Address"], ep["Port"]), "g", 50)
    ec.delete_replication_group(ReplicationGroupId=gid, FinalSnapshotIdentifier=f"final-{unique}")
    with pytest.raises(ClientError):
        ec.describe_replication_groups(ReplicationGroupId=gid)
    with pytest.raises(ClientError):
        ec.describe_cache_clusters(CacheClusterId=f"{gid}-001")
    snap = ec.describe_snapshots(SnapshotName=f"final-{unique}")["Snapshots"][0]
    assert snap["ReplicationGroupId"] == gid and snap["NumNodeGroups"] == 1

    gid2 = f"fr-{unique}"
    ec.create_replication_group(
        ReplicationGroupId=gid2,
        ReplicationGroupDescription="d",
        NumCacheClusters=2,
        SnapshotName=f"final-{unique}",
    )
    cleanup.append(("group", gid2))
    g2 = group(ec, gid2)
    primary = redis.Redis(
        g2["NodeGroups"][0]["PrimaryEndpoint"]["Address"],
        g2["NodeGroups"][0]["PrimaryEndpoint"]["Port"],
        decode_responses=True,
    )
    assert primary.get("g:49") == "49"
    reader = redis.Redis(
        g2["NodeGroups"][0]["ReaderEndpoint"]["Address"],
        g2["NodeGroups"][0]["ReaderEndpoint"]["Port"],
        decode_responses=True,
    )
    assert primary.wait(1, 10000) == 1 and reader.get("g:49") == "49"
    ec.delete_snapshot(SnapshotName=f"final-{unique}")


def test_memcached_has_no_snapshots(ec, cleanup, unique):
    cid = f"mcs-{unique}"
    ec.create_cache_cluster(CacheClusterId=cid, Engine="memcached", NumCacheNodes=1)
    cleanup.append(("cluster", cid))
    with pytest.raises(ClientError) as e:
        ec.create_snapshot(CacheClusterId=cid, SnapshotName=f"m-{unique}")
    assert e.value.response["Error"]["Code"] == "SnapshotFeatureNotSupportedFault"


def test_automatic_daily_snapshots_follow_the_simulated_clock(strata_factory, unique):
    server = strata_factory()  # a private server: this test moves its clock
    ec = server.client("elasticache")
    cid = f"auto-{unique}"
    ec.create_cache_cluster(CacheClusterId=cid, Engine="redis", NumCacheNodes=1, SnapshotRetentionLimit=2)
    (ep,) = node_endpoints(ec, cid)
    client = redis.Redis(ep["Address"], ep["Port"], decode_responses=True)

    def automated() -> list[dict]:
        snaps = ec.describe_snapshots(CacheClusterId=cid, SnapshotSource="system")["Snapshots"]
        return [s for s in snaps if s["SnapshotStatus"] == "available"]

    assert automated() == []
    for day in range(1, 4):
        client.set("day", day)
        server.advance_clock("1d")
        eventually(
            lambda d=day: (
                len(automated()) == min(d, 2)
                and any(
                    s["NodeSnapshots"][0]["SnapshotCreateTime"].day == _clock_day(server) for s in automated()
                )
            ),
            what=f"automatic snapshot of day {day}",
        )
    # the three simulated days were metered as node-hours of this one-node cluster
    events = server.admin("/_strata/meter?service=elasticache")["events"]
    hours = sum(
        e["quantity"] for e in events if e["event"] == "NodeHours" and e["dims"].get("cache_cluster") == cid
    )
    assert 72 <= hours < 73
    names = sorted(s["SnapshotName"] for s in automated())
    assert len(names) == 2 and all(n.startswith(f"automatic.{cid}-") for n in names)
    # the newest automatic snapshot restores the newest data
    newest = max(automated(), key=lambda s: s["NodeSnapshots"][0]["SnapshotCreateTime"])
    ec.create_cache_cluster(
        CacheClusterId=f"{cid}-r", Engine="redis", NumCacheNodes=1, SnapshotName=newest["SnapshotName"]
    )
    (rep,) = node_endpoints(ec, f"{cid}-r")
    assert redis.Redis(rep["Address"], rep["Port"], decode_responses=True).get("day") == "3"
    # a manual snapshot is never pruned; deleting the cluster deletes its automatic snapshots
    ec.create_snapshot(CacheClusterId=cid, SnapshotName=f"keep-{unique}")
    ec.delete_cache_cluster(CacheClusterId=cid)
    remaining = [s["SnapshotName"] for s in ec.describe_snapshots()["Snapshots"]]
    assert remaining == [f"keep-{unique}"]


def _clock_day(server) -> int:
    """The day of the latest opening of the default SnapshotWindow (05:00 UTC) until now:
    automatic snapshots are stamped with their window's opening."""
    from datetime import datetime, timedelta

    now = datetime.fromisoformat(server.admin("/_strata/clock")["now"])
    return (now - timedelta(hours=5)).day


def test_restore_across_engines_follows_rdb_compatibility(ec, cleanup, unique):
    redis_id, valkey_id = f"rdb-r-{unique}", f"rdb-v-{unique}"
    ec.create_cache_cluster(CacheClusterId=redis_id, Engine="redis", NumCacheNodes=1)
    ec.create_cache_cluster(CacheClusterId=valkey_id, Engine="valkey", NumCacheNodes=1)
    cleanup += [("cluster", redis_id), ("cluster", valkey_id)]
    (ep,) = node_endpoints(ec, redis_id)
    redis.Redis(ep["Address"], ep["Port"]).set("from", "redis")
    ec.create_snapshot(CacheClusterId=redis_id, SnapshotName=f"rdb-r-{unique}")
    ec.create_snapshot(CacheClusterId=valkey_id, SnapshotName=f"rdb-v-{unique}")
    # Redis OSS 7.0 data moves up to Valkey 8 ...
    up = f"rdb-up-{unique}"
    ec.create_cache_cluster(
        CacheClusterId=up, Engine="valkey", NumCacheNodes=1, SnapshotName=f"rdb-r-{unique}"
    )
    cleanup.append(("cluster", up))
    (uep,) = node_endpoints(ec, up)
    assert redis.Redis(uep["Address"], uep["Port"], decode_responses=True).get("from") == "redis"
    # ... but an older engine cannot read a newer engine's snapshot
    with pytest.raises(ClientError) as e:
        ec.create_cache_cluster(
            CacheClusterId=f"rdb-down-{unique}",
            Engine="redis",
            NumCacheNodes=1,
            SnapshotName=f"rdb-v-{unique}",
        )
    assert e.value.response["Error"]["Code"] == "InvalidParameterCombination"
    for name in (f"rdb-r-{unique}", f"rdb-v-{unique}"):
        ec.delete_snapshot(SnapshotName=name)
