"""State after a Strata restart or crash: records, endpoints, roles and data come back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import redis
from pymemcache.client.base import Client as MemcacheClient

from tests.services.elasticache.conftest import discover, eventually, group, node_endpoints, roles


def test_everything_comes_back_after_a_restart(strata_factory, unique):
    server = strata_factory()
    ec = server.client("elasticache")
    cid, gid, mid = f"r-{unique}", f"g-{unique}", f"m-{unique}"
    ec.create_cache_cluster(CacheClusterId=cid, Engine="redis", NumCacheNodes=1)
    ec.create_cache_cluster(CacheClusterId=mid, Engine="memcached", NumCacheNodes=2)
    ec.create_replication_group(
        ReplicationGroupId=gid,
        ReplicationGroupDescription="d",
        NumCacheClusters=2,
        AutomaticFailoverEnabled=True,
    )
    ec.test_failover(ReplicationGroupId=gid, NodeGroupId="0001")  # roles differ from the initial ones
    (node,) = node_endpoints(ec, cid)
    redis.Redis(node["Address"], node["Port"]).set("single", "1")
    primary_ep = group(ec, gid)["NodeGroups"][0]["PrimaryEndpoint"]
    primary = redis.Redis(primary_ep["Address"], primary_ep["Port"], decode_responses=True)
    primary.set("grouped", "2")
    assert primary.wait(1, 10000) == 1
    roles_before = roles(ec, gid)
    mem_nodes = node_endpoints(ec, mid)

    server.restart()
    ec = server.client("elasticache")
    assert (
        ec.describe_cache_clusters(CacheClusterId=cid)["CacheClusters"][0]["CacheClusterStatus"]
        == "available"
    )
    assert node_endpoints(ec, cid) == [node]
    assert redis.Redis(node["Address"], node["Port"], decode_responses=True).get("single") == "1"
    g = group(ec, gid)
    assert g["Status"] == "available" and g["NodeGroups"][0]["PrimaryEndpoint"] == primary_ep
    assert roles(ec, gid) == roles_before
    after = redis.Redis(primary_ep["Address"], primary_ep["Port"], decode_responses=True)
    assert after.role()[0] == "master" and after.get("grouped") == "2"
    eventually(lambda: after.wait(1, 5000) == 1, what="replica reconnected after restart")
    _replica_in_sync_has_no_replication_lag(server, ec, gid)
    assert node_endpoints(ec, mid) == mem_nodes
    for ep in mem_nodes:
        client = MemcacheClient((ep["Address"], ep["Port"]))
        assert client.set("k", "v") and client.get("k") == b"v"
    # the memcached configuration endpoint is back, Auto Discovery included
    conf = ec.describe_cache_clusters(CacheClusterId=mid)["CacheClusters"][0]["ConfigurationEndpoint"]
    assert discover((conf["Address"], conf["Port"])) == (1, [(e["Address"], e["Port"]) for e in mem_nodes])
    via_config = MemcacheClient((conf["Address"], conf["Port"]))
    assert via_config.set("via-config", "1", noreply=False) and via_config.get("via-config") == b"1"


def _replica_in_sync_has_no_replication_lag(server, ec, gid: str) -> None:
    """CloudWatch's ReplicationLag of an idle replica that has all its primary sent: 0, though it
    last heard from the primary seconds ago (the primary pings every 10 s); the primary has none."""
    by_role = {role: member for member, role in roles(ec, gid).items()}
    (ep,) = node_endpoints(ec, by_role["replica"])
    replica = redis.Redis(ep["Address"], ep["Port"])
    eventually(lambda: replica.info("replication")["master_last_io_seconds_ago"] >= 2, what="an idle link")
    server.advance_clock("1m")
    cw = server.client("cloudwatch")
    now = datetime.now(UTC)

    def lag(member: str) -> list:
        return cw.get_metric_statistics(
            Namespace="AWS/ElastiCache",
            MetricName="ReplicationLag",
            Dimensions=[
                {"Name": "CacheClusterId", "Value": member},
                {"Name": "CacheNodeId", "Value": "0001"},
            ],
            StartTime=now - timedelta(hours=1),
            EndTime=now + timedelta(hours=1),
            Period=60,
            Statistics=["Maximum"],
        )["Datapoints"]

    latest = max(lag(by_role["replica"]), key=lambda p: p["Timestamp"])
    assert (latest["Maximum"], latest["Unit"]) == (0.0, "Seconds")
    assert latest["Timestamp"] not in {p["Timestamp"] for p in lag(by_role["primary"])}


def test_engines_die_with_a_killed_strata_and_return_with_it(strata_factory, unique):
    server = strata_factory()
    ec = server.client("elasticache")
    cid, gid = f"k-{unique}", f"kg-{unique}"
    ec.create_cache_cluster(CacheClusterId=cid, Engine="redis", NumCacheNodes=1)
    ec.create_replication_group(
        ReplicationGroupId=gid,
        ReplicationGroupDescription="d",
        NumCacheClusters=2,
        AutomaticFailoverEnabled=True,
    )
    (node,) = node_endpoints(ec, cid)
    client = redis.Redis(node["Address"], node["Port"], decode_responses=True)
    client.set("single", "1")
    pid = int(client.info("server")["process_id"])
    primary_ep = group(ec, gid)["NodeGroups"][0]["PrimaryEndpoint"]
    primary = redis.Redis(primary_ep["Address"], primary_ep["Port"], decode_responses=True)
    pipe = primary.pipeline(transaction=False)
    for i in range(500):
        pipe.set(f"g:{i}", i)
    pipe.execute()
    assert primary.wait(1, 10000) == 1
    roles_before = roles(ec, gid)
    server.kill()  # kill -9: no shutdown code runs

    def gone() -> bool:
        try:
            import os

            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return open(f"/proc/{pid}/stat").read().split(")")[1].split()[0] == "Z"

    eventually(gone, what="engine to die with Strata")
    server.start()
    ec = server.client("elasticache")
    assert node_endpoints(ec, cid) == [node]
    back = redis.Redis(node["Address"], node["Port"], decode_responses=True)
    eventually(lambda: back.ping(), what="engine back")
    assert back.get("single") == "1"
    # the replication group: same endpoint, roles and data, the replica in sync again
    g = group(ec, gid)
    assert g["Status"] == "available" and g["NodeGroups"][0]["PrimaryEndpoint"] == primary_ep
    assert roles(ec, gid) == roles_before
    after = redis.Redis(primary_ep["Address"], primary_ep["Port"], decode_responses=True)
    assert after.role()[0] == "master" and len(after.keys("g:*")) == 500
    replica = next(m for m in g["NodeGroups"][0]["NodeGroupMembers"] if m["CurrentRole"] == "replica")
    node2 = redis.Redis(replica["ReadEndpoint"]["Address"], replica["ReadEndpoint"]["Port"])
    assert node2.info("replication")["master_link_status"] == "up" and node2.dbsize() == 500


def test_cluster_mode_group_comes_back_after_a_restart(strata_factory, unique):
    from redis.cluster import RedisCluster

    server = strata_factory()
    ec = server.client("elasticache")
    gid = f"cmr-{unique}"
    ec.create_replication_group(
        ReplicationGroupId=gid, ReplicationGroupDescription="d", NumNodeGroups=2, ReplicasPerNodeGroup=1
    )
    conf = group(ec, gid)["ConfigurationEndpoint"]
    rc = RedisCluster(host=conf["Address"], port=conf["Port"], decode_responses=True)
    for i in range(50):
        rc.set(f"k{i}", i)
    server.restart()
    ec = server.client("elasticache")
    g = group(ec, gid)
    assert g["Status"] == "available" and g["ConfigurationEndpoint"] == conf
    fresh = RedisCluster(host=conf["Address"], port=conf["Port"], decode_responses=True)
    assert all(fresh.get(f"k{i}") == str(i) for i in range(50))
    assert fresh.set("after", "restart")
    for node in fresh.get_primaries():  # acknowledged by the shard's replica too
        assert redis.Redis(node.host, node.port).wait(1, 10000) == 1
    server.kill()  # kill -9 of Strata: the engines die with it and come back with it
    server.start()
    ec = server.client("elasticache")
    g = group(ec, gid)
    assert g["Status"] == "available" and g["ConfigurationEndpoint"] == conf
    again = RedisCluster(host=conf["Address"], port=conf["Port"], decode_responses=True)
    assert all(again.get(f"k{i}") == str(i) for i in range(50)) and again.get("after") == "restart"
    assert again.set("after", "kill")
