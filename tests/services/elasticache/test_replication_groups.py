"""Replication groups without cluster mode: engine replication, roles, failover, replicas, endpoints."""

from __future__ import annotations

import os
import signal
import threading

import pytest
import redis
from botocore.exceptions import ClientError

from tests.services.elasticache.conftest import eventually, group, roles


def primary_client(g: dict, **kw) -> redis.Redis:
    ep = g["NodeGroups"][0]["PrimaryEndpoint"]
    return redis.Redis(ep["Address"], ep["Port"], decode_responses=True, **kw)


def test_group_replicates_and_fails_over_behind_a_stable_endpoint(ec, cleanup, unique):
    gid = f"rg-{unique}"
    out = ec.create_replication_group(
        ReplicationGroupId=gid,
        ReplicationGroupDescription="sessions",
        Engine="redis",
        CacheNodeType="cache.t3.micro",
        NumCacheClusters=3,
        AutomaticFailoverEnabled=True,
        MultiAZEnabled=True,
    )["ReplicationGroup"]
    cleanup.append(("group", gid))
    assert out["Status"] == "creating"
    g = group(ec, gid)
    assert g["Status"] == "available"
    assert g["AutomaticFailover"] == "enabled" and g["MultiAZ"] == "enabled" and g["ClusterEnabled"] is False
    assert g["MemberClusters"] == [f"{gid}-001", f"{gid}-002", f"{gid}-003"]
    ng = g["NodeGroups"][0]
    assert roles(ec, gid) == {f"{gid}-001": "primary", f"{gid}-002": "replica", f"{gid}-003": "replica"}
    primary_ep, reader_ep = ng["PrimaryEndpoint"], ng["ReaderEndpoint"]
    assert len({m["PreferredAvailabilityZone"] for m in ng["NodeGroupMembers"]}) > 1

    primary = primary_client(g)
    assert primary.role()[0] == "master"
    for i in range(100):
        primary.set(f"order:{i}", i)
    assert primary.wait(2, 10000) == 2  # both replicas acknowledged: the engine's own replication
    reader = redis.Redis(reader_ep["Address"], reader_ep["Port"], decode_responses=True)
    assert reader.role()[0] == "slave"
    assert reader.get("order:99") == "99"
    with pytest.raises(redis.ReadOnlyError):
        reader.set("x", "1")
    # the reader endpoint spreads connections over the replicas, as AWS's DNS round robin does
    replicas = {m["ReadEndpoint"]["Address"] for m in ng["NodeGroupMembers"] if m["CurrentRole"] == "replica"}
    assert _nodes_behind(reader_ep) == replicas
    # each member's own endpoint reaches that node
    for m in ng["NodeGroupMembers"]:
        node = redis.Redis(m["ReadEndpoint"]["Address"], m["ReadEndpoint"]["Port"], decode_responses=True)
        assert node.get("order:50") == "50"
        assert node.role()[0] == ("master" if m["CurrentRole"] == "primary" else "slave")
    # the member clusters are cache clusters of the group
    member = ec.describe_cache_clusters(CacheClusterId=f"{gid}-002", ShowCacheNodeInfo=True)["CacheClusters"][
        0
    ]
    assert member["ReplicationGroupId"] == gid and member["NumCacheNodes"] == 1

    failed = ec.test_failover(ReplicationGroupId=gid, NodeGroupId="0001")["ReplicationGroup"]
    assert failed["ReplicationGroupId"] == gid
    new_roles = roles(ec, gid)
    assert new_roles[f"{gid}-001"] == "replica"
    assert list(new_roles.values()).count("primary") == 1
    g2 = group(ec, gid)
    assert g2["NodeGroups"][0]["PrimaryEndpoint"] == primary_ep  # endpoints do not change
    assert g2["NodeGroups"][0]["ReaderEndpoint"] == reader_ep
    after = primary_client(g2)
    eventually(lambda: after.role()[0] == "master", what="primary endpoint on the promoted node")
    assert after.get("order:99") == "99"  # the replicated data is there
    assert after.set("after-failover", "yes")
    assert after.wait(2, 10000) == 2  # the old primary came back as a replica and follows
    old = next(m for m in g2["NodeGroups"][0]["NodeGroupMembers"] if m["CacheClusterId"] == f"{gid}-001")
    old_node = redis.Redis(old["ReadEndpoint"]["Address"], old["ReadEndpoint"]["Port"], decode_responses=True)
    eventually(
        lambda: old_node.get("after-failover") == "yes", what="old primary replicating from the new one"
    )
    now_replicas = {
        m["ReadEndpoint"]["Address"]
        for m in g2["NodeGroups"][0]["NodeGroupMembers"]
        if m["CurrentRole"] == "replica"
    }
    assert f"{gid}-001" in {m["CacheClusterId"] for m in g2["NodeGroups"][0]["NodeGroupMembers"]}
    assert _nodes_behind(reader_ep) == now_replicas
    # the group's events: created, the failover asked for, and done
    events = ec.describe_events(SourceIdentifier=gid, SourceType="replication-group")["Events"]
    promoted = next(c for c, r in new_roles.items() if r == "primary")
    assert [e["Message"] for e in events] == [
        f"Replication group {gid} created",
        "Test Failover API called for node group 0001",
        f"Failover from master node {gid}-001 to replica node {promoted} completed",
    ]


def _nodes_behind(endpoint: dict, connections: int = 8) -> set[str]:
    """The node addresses that new connections to `endpoint` reach (the server's side of each)."""
    out = set()
    for _ in range(connections):
        with redis.Redis(endpoint["Address"], endpoint["Port"], decode_responses=True) as c:
            info = c.execute_command("CLIENT", "INFO")
            laddr = next(f for f in info.split() if f.startswith("laddr="))
            out.add(laddr.removeprefix("laddr=").rsplit(":", 1)[0])
    return out


def test_replica_count_and_primary_switch(ec, cleanup, unique):
    gid = f"rc-{unique}"
    ec.create_replication_group(
        ReplicationGroupId=gid,
        ReplicationGroupDescription="d",
        Engine="valkey",
        NumCacheClusters=2,
        AutomaticFailoverEnabled=True,
    )
    cleanup.append(("group", gid))
    primary = primary_client(group(ec, gid))
    primary.set("before", "1")
    g = ec.increase_replica_count(ReplicationGroupId=gid, NewReplicaCount=3, ApplyImmediately=True)[
        "ReplicationGroup"
    ]
    assert len(g["MemberClusters"]) == 4
    assert primary.wait(3, 10000) == 3
    new = g["NodeGroups"][0]["NodeGroupMembers"][-1]
    node = redis.Redis(new["ReadEndpoint"]["Address"], new["ReadEndpoint"]["Port"], decode_responses=True)
    eventually(lambda: node.get("before") == "1", what="new replica synced")

    # a graceful switch of the primary (ModifyReplicationGroup PrimaryClusterId) keeps every write
    target = f"{gid}-003"
    ec.modify_replication_group(ReplicationGroupId=gid, PrimaryClusterId=target, ApplyImmediately=True)
    assert roles(ec, gid)[target] == "primary"
    switched = primary_client(group(ec, gid))
    eventually(lambda: switched.info("server") and switched.role()[0] == "master", what="switch")
    assert switched.get("before") == "1"
    direct = next(
        m for m in group(ec, gid)["NodeGroups"][0]["NodeGroupMembers"] if m["CacheClusterId"] == target
    )
    assert switched.info("server")["tcp_port"] == direct["ReadEndpoint"]["Port"]

    g = ec.decrease_replica_count(
        ReplicationGroupId=gid, ReplicasToRemove=[f"{gid}-004"], ApplyImmediately=True
    )
    assert f"{gid}-004" not in g["ReplicationGroup"]["MemberClusters"]
    g = ec.decrease_replica_count(ReplicationGroupId=gid, NewReplicaCount=1, ApplyImmediately=True)[
        "ReplicationGroup"
    ]
    assert len(g["MemberClusters"]) == 2 and target in g["MemberClusters"]
    with pytest.raises(ClientError) as e:  # automatic failover needs a replica
        ec.decrease_replica_count(ReplicationGroupId=gid, NewReplicaCount=0, ApplyImmediately=True)
    assert e.value.response["Error"]["Code"] == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        ec.delete_cache_cluster(CacheClusterId=target)
    assert e.value.response["Error"]["Code"] == "InvalidCacheClusterState"


def test_group_validation_and_errors(ec, unique):
    cases = [
        (
            dict(
                ReplicationGroupId=f"v-{unique}",
                ReplicationGroupDescription="d",
                NumCacheClusters=1,
                AutomaticFailoverEnabled=True,
            ),
            "InvalidParameterCombination",
        ),
        (
            dict(
                ReplicationGroupId=f"v-{unique}",
                ReplicationGroupDescription="d",
                NumCacheClusters=2,
                MultiAZEnabled=True,
            ),
            "InvalidParameterCombination",
        ),
        (
            dict(ReplicationGroupId=f"v-{unique}", ReplicationGroupDescription="d", NumCacheClusters=7),
            "InvalidParameterValue",
        ),
        (
            dict(ReplicationGroupId=f"v-{unique}", ReplicationGroupDescription="d", Engine="memcached"),
            "InvalidParameterValue",
        ),
        (
            dict(
                ReplicationGroupId=f"v-{unique}",
                ReplicationGroupDescription="d",
                AuthToken="0123456789abcdef0",
            ),
            "InvalidParameterValue",
        ),
    ]
    for kwargs, code in cases:
        with pytest.raises(ClientError) as e:
            ec.create_replication_group(**kwargs)
        assert e.value.response["Error"]["Code"] == code, kwargs
    with pytest.raises(ClientError) as e:
        ec.describe_replication_groups(ReplicationGroupId=f"none-{unique}")
    assert e.value.response["Error"]["Code"] == "ReplicationGroupNotFoundFault"


def test_failover_needs_automatic_failover_and_a_node_group(ec, cleanup, unique):
    gid = f"nf-{unique}"
    ec.create_replication_group(ReplicationGroupId=gid, ReplicationGroupDescription="d", NumCacheClusters=2)
    cleanup.append(("group", gid))
    with pytest.raises(ClientError) as e:
        ec.test_failover(ReplicationGroupId=gid, NodeGroupId="0001")
    assert e.value.response["Error"]["Code"] == "InvalidReplicationGroupState"
    ec.modify_replication_group(ReplicationGroupId=gid, AutomaticFailoverEnabled=True, ApplyImmediately=True)
    assert group(ec, gid)["AutomaticFailover"] == "enabled"
    with pytest.raises(ClientError) as e:
        ec.test_failover(ReplicationGroupId=gid, NodeGroupId="0009")
    assert e.value.response["Error"]["Code"] == "NodeGroupNotFoundFault"


def test_group_from_an_existing_cluster_and_back(ec, cleanup, unique):
    cid, gid = f"solo-{unique}", f"grown-{unique}"
    ec.create_cache_cluster(CacheClusterId=cid, Engine="redis", NumCacheNodes=1)
    cleanup.append(("cluster", cid))
    (node,) = [
        n["Endpoint"]
        for n in ec.describe_cache_clusters(CacheClusterId=cid, ShowCacheNodeInfo=True)["CacheClusters"][0][
            "CacheNodes"
        ]
    ]
    redis.Redis(node["Address"], node["Port"]).set("kept", "yes")

    # the standalone cluster becomes the primary of a new group; replicas sync its data
    g = ec.create_replication_group(
        ReplicationGroupId=gid,
        ReplicationGroupDescription="grown",
        PrimaryClusterId=cid,
        NumCacheClusters=3,
        AutomaticFailoverEnabled=True,
    )["ReplicationGroup"]
    cleanup.append(("group", gid))
    assert g["MemberClusters"][0] == cid and len(g["MemberClusters"]) == 3
    assert roles(ec, gid)[cid] == "primary"
    member = ec.describe_cache_clusters(CacheClusterId=cid)["CacheClusters"][0]
    assert member["ReplicationGroupId"] == gid
    primary = primary_client(group(ec, gid))
    assert primary.get("kept") == "yes" and primary.wait(2, 10000) == 2
    assert group(ec, gid)["NodeGroups"][0]["PrimaryEndpoint"]["Port"] == node["Port"]

    # deleting the group but retaining the primary leaves a standalone cluster on the same node
    primary.set("later", "1")
    ec.delete_replication_group(ReplicationGroupId=gid, RetainPrimaryCluster=True)
    with pytest.raises(ClientError):
        ec.describe_replication_groups(ReplicationGroupId=gid)
    remaining = [c["CacheClusterId"] for c in ec.describe_cache_clusters()["CacheClusters"]]
    assert cid in remaining and not any(c.startswith(f"{gid}-") for c in remaining)
    solo = ec.describe_cache_clusters(CacheClusterId=cid, ShowCacheNodeInfo=True)["CacheClusters"][0]
    assert "ReplicationGroupId" not in solo and solo["CacheNodes"][0]["Endpoint"] == node
    client = redis.Redis(node["Address"], node["Port"], decode_responses=True)
    assert client.get("later") == "1" and client.role()[0] == "master"
    # a new group under the same name gets a port of its own
    ec.create_replication_group(
        ReplicationGroupId=gid, ReplicationGroupDescription="again", NumCacheClusters=1
    )
    assert group(ec, gid)["NodeGroups"][0]["PrimaryEndpoint"]["Port"] != node["Port"]
    assert client.get("kept") == "yes"


def write_while_replica_lags(primary: redis.Redis, replica: redis.Redis, keys: int, prefix: str = "") -> None:
    """Write `keys` 1 KiB values while the replica's process is stopped (SIGSTOP), and let it run
    again only a second later, in the background: whatever the caller starts next (a failover)
    begins with a replica far behind a primary that has acknowledged every write."""
    pid = int(replica.info("server")["process_id"])
    os.kill(pid, signal.SIGSTOP)
    try:
        pipe = primary.pipeline(transaction=False)
        for i in range(keys):
            pipe.set(f"{prefix}key:{i}", "v" * 1024)
        assert all(pipe.execute())
    finally:
        threading.Timer(1.0, os.kill, (pid, signal.SIGCONT)).start()


def test_a_planned_failover_loses_no_acknowledged_write(ec, cleanup, unique):
    """TestFailover is the engine's coordinated failover: the promoted replica has every write the
    primary acknowledged before the call, even one far behind; and "available" means the replica is
    linked and in sync (issue 12: 1,000 keys written right after create were all lost)."""
    gid = f"fo-{unique}"
    ec.create_replication_group(
        ReplicationGroupId=gid,
        ReplicationGroupDescription="d",
        NumCacheClusters=2,
        AutomaticFailoverEnabled=True,
    )
    cleanup.append(("group", gid))
    g = group(ec, gid)
    assert g["Status"] == "available"
    replica = next(m for m in g["NodeGroups"][0]["NodeGroupMembers"] if m["CurrentRole"] == "replica")
    node = redis.Redis(
        replica["ReadEndpoint"]["Address"], replica["ReadEndpoint"]["Port"], decode_responses=True
    )
    assert node.info("replication")["master_link_status"] == "up"
    primary = primary_client(g)
    write_while_replica_lags(primary, node, 10_000)  # ~10 MiB the replica has not read yet
    ec.test_failover(ReplicationGroupId=gid, NodeGroupId="0001")
    assert roles(ec, gid)[replica["CacheClusterId"]] == "primary"
    after = primary_client(group(ec, gid))
    eventually(lambda: after.role()[0] == "master", what="primary endpoint on the promoted node")
    assert after.dbsize() == 10_000


def test_settings_strata_cannot_change_are_refused_not_ignored(ec, unique: str, cleanup: list) -> None:
    gid = f"fixed-{unique}"[:40]
    with pytest.raises(ClientError) as e:
        ec.create_replication_group(
            ReplicationGroupId=gid, ReplicationGroupDescription="d", CacheParameterGroupName="my-params"
        )
    assert e.value.response["Error"]["Code"] == "CacheParameterGroupNotFound"
    ec.create_replication_group(
        ReplicationGroupId=gid, ReplicationGroupDescription="d", CacheParameterGroupName="default.redis7"
    )
    cleanup.append(("group", gid))
    eventually(lambda: group(ec, gid)["Status"] == "available", 120, "group available")
    for change in (
        {"ClusterMode": "enabled"},
        {"TransitEncryptionEnabled": True},
        {"NodeGroupId": "0001", "PrimaryClusterId": f"{gid}-001"},
        {"CacheParameterGroupName": "default.redis7.cluster.on"},
        {"EngineVersion": "6.2"},
    ):
        with pytest.raises(ClientError) as e:
            ec.modify_replication_group(ReplicationGroupId=gid, ApplyImmediately=True, **change)
        assert e.value.response["Error"]["Code"] in (
            "InvalidParameterCombination",
            "CacheParameterGroupNotFound",
        ), change
    g = group(ec, gid)
    assert g["ClusterEnabled"] is False and g.get("TransitEncryptionEnabled") in (False, None)
    ec.modify_replication_group(
        ReplicationGroupId=gid, ClusterMode="disabled", CacheParameterGroupName="default.redis7"
    )
