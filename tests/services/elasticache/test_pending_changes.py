"""ModifyCacheCluster and ModifyReplicationGroup honour ApplyImmediately: without it (AWS's
default) a new node type or Memcached node count waits in PendingModifiedValues for the
maintenance window on the simulated clock; with it, it applies at once with what was held."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from botocore.exceptions import ClientError

from tests.services.elasticache.conftest import eventually


def test_node_changes_wait_for_the_maintenance_window(strata_factory, unique) -> None:
    server = strata_factory()  # a private server: this test moves its clock
    ec = server.client("elasticache")
    now = datetime.fromisoformat(server.admin("/_strata/clock")["now"])
    opens = now + timedelta(days=2)  # a window opening between one and three days from now
    day, hour = opens.strftime("%a").lower(), opens.hour
    window = (
        f"{day}:{hour:02d}:00-{day}:{(hour + 1) % 24:02d}:00" if hour < 23 else f"{day}:23:00-{day}:23:59"
    )
    mc, gid = f"mc-{unique}", f"rg-{unique}"
    ec.create_cache_cluster(
        CacheClusterId=mc,
        Engine="memcached",
        CacheNodeType="cache.t3.micro",
        NumCacheNodes=1,
        PreferredMaintenanceWindow=window,
    )
    ec.create_replication_group(
        ReplicationGroupId=gid,
        ReplicationGroupDescription="d",
        Engine="redis",
        CacheNodeType="cache.t3.micro",
        NumCacheClusters=1,
        PreferredMaintenanceWindow=window,
    )
    eventually(
        lambda: (
            ec.describe_replication_groups(ReplicationGroupId=gid)["ReplicationGroups"][0]["Status"]
            == "available"
        ),
        what="replication group available",
    )

    def cluster(cid: str) -> dict:
        return ec.describe_cache_clusters(CacheClusterId=cid, ShowCacheNodeInfo=True)["CacheClusters"][0]

    rg_member = ec.describe_replication_groups(ReplicationGroupId=gid)["ReplicationGroups"][0][
        "MemberClusters"
    ][0]

    # Without ApplyImmediately: held, nothing changed.
    out = ec.modify_cache_cluster(CacheClusterId=mc, NumCacheNodes=2, CacheNodeType="cache.t3.small")
    assert out["CacheCluster"]["PendingModifiedValues"] == {
        "NumCacheNodes": 2,
        "CacheNodeType": "cache.t3.small",
    }
    member = cluster(mc)
    assert (member["NumCacheNodes"], member["CacheNodeType"]) == (1, "cache.t3.micro")
    assert member["PendingModifiedValues"] == {"NumCacheNodes": 2, "CacheNodeType": "cache.t3.small"}
    try:  # a member's node type is the group's
        ec.modify_cache_cluster(CacheClusterId=rg_member, CacheNodeType="cache.t3.small")
        raise AssertionError("a member's CacheNodeType was accepted")
    except ClientError as e:
        assert e.response["Error"]["Code"] == "InvalidParameterCombination"
    ec.modify_replication_group(ReplicationGroupId=gid, CacheNodeType="cache.t3.small")
    assert cluster(rg_member)["PendingModifiedValues"] == {"CacheNodeType": "cache.t3.small"}
    assert cluster(rg_member)["CacheNodeType"] == "cache.t3.micro"

    # A day on, the window has not opened; two days more, it has: applied once.
    assert not server.advance_clock("1d")["ran"].get("elasticache.maintenance", {}).get("applied")
    counts = server.advance_clock("2d")["ran"]["elasticache.maintenance"]
    applied = counts.get("applied", 0)
    for _ in range(20):  # a deployment busy at that instant is "deferred": a second later it is taken
        if not counts.get("deferred"):
            break
        time.sleep(0.5)
        counts = server.advance_clock("1s")["ran"]["elasticache.maintenance"]
        applied += counts.get("applied", 0)
    assert applied == 2
    member = cluster(mc)
    assert (member["NumCacheNodes"], member["CacheNodeType"]) == (2, "cache.t3.small")
    assert member["PendingModifiedValues"] == {}
    assert [n["CacheNodeId"] for n in member["CacheNodes"]] == ["0001", "0002"]
    assert cluster(rg_member)["CacheNodeType"] == "cache.t3.small"
    assert cluster(rg_member)["PendingModifiedValues"] == {}
    assert not server.advance_clock("1s")["ran"].get("elasticache.maintenance", {}).get("applied")

    # ApplyImmediately: at once, with what was held before.
    ec.modify_cache_cluster(CacheClusterId=mc, CacheNodeType="cache.t3.medium")
    ec.modify_cache_cluster(CacheClusterId=mc, NumCacheNodes=1, ApplyImmediately=True)
    member = cluster(mc)
    assert (member["NumCacheNodes"], member["CacheNodeType"]) == (1, "cache.t3.medium")
    assert member["PendingModifiedValues"] == {}
    ec.delete_replication_group(ReplicationGroupId=gid)
    ec.delete_cache_cluster(CacheClusterId=mc)
