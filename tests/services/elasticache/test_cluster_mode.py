"""Cluster mode enabled: a real Redis Cluster with slots spread over node groups, reached through the
configuration endpoint by redis-py's RedisCluster."""

from __future__ import annotations

import pytest
import redis
from redis.cluster import RedisCluster

from tests.services.ec2.helpers import dial
from tests.services.elasticache.conftest import eventually, group
from tests.services.elasticache.test_replication_groups import write_while_replica_lags


def test_cluster_mode_group_with_redis_cluster_client(strata_server, ec, cleanup, unique):
    gid = f"cm-{unique}"
    out = ec.create_replication_group(
        ReplicationGroupId=gid,
        ReplicationGroupDescription="sharded",
        Engine="redis",
        CacheNodeType="cache.t3.micro",
        NumNodeGroups=3,
        ReplicasPerNodeGroup=1,
        AutomaticFailoverEnabled=True,
    )["ReplicationGroup"]
    cleanup.append(("group", gid))
    assert out["ClusterEnabled"] is True
    g = group(ec, gid)
    assert g["Status"] == "available" and g["ClusterMode"] == "enabled"
    assert len(g["NodeGroups"]) == 3 and len(g["MemberClusters"]) == 6
    assert [ng["Slots"] for ng in g["NodeGroups"]] == ["0-5461", "5462-10922", "10923-16383"]
    assert all(len(ng["NodeGroupMembers"]) == 2 for ng in g["NodeGroups"])
    conf = g["ConfigurationEndpoint"]

    rc = RedisCluster(host=conf["Address"], port=conf["Port"], decode_responses=True)
    for i in range(300):
        rc.set(f"user:{i}", i)
    assert rc.get("user:299") == "299"
    # keys are spread over the three shards' primaries
    primaries = rc.get_primaries()
    assert len(primaries) == 3
    counts = [redis.Redis(p.host, p.port).dbsize() for p in primaries]
    assert sum(counts) == 300 and all(c > 50 for c in counts)
    # replicas show in CLUSTER SLOTS once they have replicated something
    eventually(
        lambda: len(RedisCluster(host=conf["Address"], port=conf["Port"]).get_replicas()) == 3,
        what="replicas listed by the cluster",
    )
    slots = {(s[0], s[1]) for s in redis.Redis(conf["Address"], conf["Port"]).cluster("slots")}
    assert len(slots) == 3
    if strata_server.health()["services"]["ec2"].get("engine_ports") == "endpoints only":
        # the nodes gossip on their cluster bus (replicas synced above), which is no endpoint: a
        # local process that is not Strata (this test) is refused there
        conn = redis.Connection(conf["Address"], conf["Port"])
        conn.send_command("CLUSTER", "NODES")  # raw: redis-py's parser drops the bus port
        node = conn.read_response().decode().split()[1]  # "<address>:<port>@<bus port>[,<name>]"
        conn.disconnect()
        address, bus = node.split("@")[0].rsplit(":", 1)[0], node.split("@")[1].split(",")[0]
        assert dial(int(bus), address=address) == "refused"

    # the seed's SCAN + DELETE invalidation, run on each shard's primary (keys live where they hash)
    for node in rc.get_primaries():
        redis_client = redis.Redis(node.host, node.port, decode_responses=True)
        cursor = 0
        while True:
            cursor, keys = redis_client.scan(cursor, match="user:1*", count=100)
            for key in keys:  # in cluster mode one DEL may only name keys of one slot
                redis_client.delete(key)
            if cursor == 0:
                break
    assert rc.get("user:150") is None and rc.get("user:299") == "299"

    # fail over the second shard: a replica takes over its slots, the data is kept
    shard = g["NodeGroups"][1]
    key = next(f"user:{i}" for i in range(200, 300) if 5462 <= rc.keyslot(f"user:{i}") <= 10922)
    redis.Redis(conf["Address"], conf["Port"])  # configuration endpoint still answers
    owner_before = rc.get_node_from_key(key)
    assert redis.Redis(owner_before.host, owner_before.port).wait(1, 10000) == 1
    # ~20 MiB that the shard's replica has not read yet (its process stopped meanwhile): TestFailover
    # is the engine's coordinated failover, so the promoted replica has all of it (issue 12)
    tag = next(f"{{t{i}}}" for i in range(1000) if 5462 <= rc.keyslot(f"{{t{i}}}") <= 10922)
    (lagging,) = [  # cluster mode shows no CurrentRole: ask the nodes
        m
        for m in shard["NodeGroupMembers"]
        if (m["ReadEndpoint"]["Address"], m["ReadEndpoint"]["Port"]) != (owner_before.host, owner_before.port)
    ]
    write_while_replica_lags(
        redis.Redis(owner_before.host, owner_before.port),
        redis.Redis(lagging["ReadEndpoint"]["Address"], lagging["ReadEndpoint"]["Port"]),
        20_000,
        prefix=tag,
    )
    ec.test_failover(ReplicationGroupId=gid, NodeGroupId=shard["NodeGroupId"])

    def promoted() -> bool:
        fresh = RedisCluster(host=conf["Address"], port=conf["Port"], decode_responses=True)
        node = fresh.get_node_from_key(key)
        return (node.host, node.port) != (owner_before.host, owner_before.port) and fresh.get(key) is not None

    eventually(promoted, what="replica promoted in shard 0002")
    fresh = RedisCluster(host=conf["Address"], port=conf["Port"], decode_responses=True)
    assert fresh.set(key, "after") and fresh.get(key) == "after"
    new_owner = fresh.get_node_from_key(key)
    assert (new_owner.host, new_owner.port) == (
        lagging["ReadEndpoint"]["Address"],
        lagging["ReadEndpoint"]["Port"],
    )
    assert len(redis.Redis(new_owner.host, new_owner.port).keys(f"{tag}key:*")) == 20_000
    old = redis.Redis(owner_before.host, owner_before.port, decode_responses=True)
    eventually(lambda: old.role()[0] == "slave", what="old primary rejoined as a replica")

    # more replicas per shard, through the engine's CLUSTER MEET/REPLICATE
    g2 = ec.increase_replica_count(ReplicationGroupId=gid, NewReplicaCount=2, ApplyImmediately=True)[
        "ReplicationGroup"
    ]
    assert all(len(ng["NodeGroupMembers"]) == 3 for ng in g2["NodeGroups"])
    eventually(
        lambda: len(RedisCluster(host=conf["Address"], port=conf["Port"]).get_replicas()) == 6,
        what="new replicas known to the cluster",
    )
    g3 = ec.decrease_replica_count(ReplicationGroupId=gid, NewReplicaCount=1, ApplyImmediately=True)[
        "ReplicationGroup"
    ]
    assert all(len(ng["NodeGroupMembers"]) == 2 for ng in g3["NodeGroups"])
    eventually(
        lambda: len(RedisCluster(host=conf["Address"], port=conf["Port"]).get_replicas()) == 3,
        what="removed replicas forgotten",
    )


def test_cluster_mode_snapshot_restores_every_shard(ec, cleanup, unique):
    gid = f"cms-{unique}"
    ec.create_replication_group(
        ReplicationGroupId=gid, ReplicationGroupDescription="d", NumNodeGroups=2, ReplicasPerNodeGroup=0
    )
    cleanup.append(("group", gid))
    conf = group(ec, gid)["ConfigurationEndpoint"]
    rc = RedisCluster(host=conf["Address"], port=conf["Port"], decode_responses=True)
    for i in range(100):
        rc.set(f"item:{i}", i)
    snap = ec.create_snapshot(ReplicationGroupId=gid, SnapshotName=f"cms-{unique}")["Snapshot"]
    described = ec.describe_snapshots(SnapshotName=snap["SnapshotName"], ShowNodeGroupConfig=True)[
        "Snapshots"
    ][0]
    assert described["NumNodeGroups"] == 2 and len(described["NodeSnapshots"]) == 2
    assert {n["NodeGroupConfiguration"]["Slots"] for n in described["NodeSnapshots"]} == {
        "0-8191",
        "8192-16383",
    }

    gid2 = f"cmr-{unique}"
    ec.create_replication_group(
        ReplicationGroupId=gid2,
        ReplicationGroupDescription="d",
        NumNodeGroups=2,
        ReplicasPerNodeGroup=0,
        SnapshotName=snap["SnapshotName"],
    )
    cleanup.append(("group", gid2))
    conf2 = group(ec, gid2)["ConfigurationEndpoint"]
    restored = RedisCluster(host=conf2["Address"], port=conf2["Port"], decode_responses=True)
    assert all(restored.get(f"item:{i}") == str(i) for i in range(100))
    assert restored.set("item:new", "1")
    ec.delete_snapshot(SnapshotName=snap["SnapshotName"])


def test_a_crashed_shard_primary_is_replaced(ec, cleanup, unique):
    import os
    import signal

    gid = f"cmc-{unique}"
    ec.create_replication_group(
        ReplicationGroupId=gid, ReplicationGroupDescription="d", NumNodeGroups=2, ReplicasPerNodeGroup=1
    )
    cleanup.append(("group", gid))
    conf = group(ec, gid)["ConfigurationEndpoint"]
    rc = RedisCluster(host=conf["Address"], port=conf["Port"], decode_responses=True)
    rc.set("{a}k", "v")
    owner = rc.get_node_from_key("{a}k")
    victim = redis.Redis(owner.host, owner.port)
    assert victim.wait(1, 10000) == 1
    os.kill(int(victim.info("server")["process_id"]), signal.SIGKILL)

    def served_elsewhere() -> bool:
        fresh = RedisCluster(host=conf["Address"], port=conf["Port"], decode_responses=True)
        node = fresh.get_node_from_key("{a}k")
        return (node.host, node.port) != (owner.host, owner.port) and fresh.get("{a}k") == "v"

    eventually(served_elsewhere, what="the shard's replica promoted")
    eventually(
        lambda: redis.Redis(owner.host, owner.port).role()[0] == b"slave",
        what="the dead node back as a replica",
    )
    # that replica dies in turn while the shard takes writes: it is restarted, still a replica, and
    # catches up with its primary
    fresh = RedisCluster(host=conf["Address"], port=conf["Port"], decode_responses=True)
    replica = redis.Redis(owner.host, owner.port)
    dead = int(replica.info("server")["process_id"])
    os.kill(dead, signal.SIGKILL)
    for i in range(500):
        fresh.set(f"{{a}}w{i}", i)
    eventually(lambda: int(replica.info("server")["process_id"]) != dead, what="the replica restarted")
    node = fresh.get_node_from_key("{a}k")
    primary = redis.Redis(node.host, node.port)

    def caught_up() -> bool:
        info = replica.info("replication")
        return (
            info["role"] == "slave"
            and info["master_link_status"] == "up"
            and info["slave_repl_offset"] >= primary.info("replication")["master_repl_offset"]
        )

    eventually(caught_up, what="the restarted replica in sync")
    assert replica.dbsize() == primary.dbsize()


@pytest.mark.parametrize(("shards", "replicas"), [(2, 2), (3, 0)])
def test_every_slot_takes_a_write_as_soon_as_the_group_is_available(ec, cleanup, unique, shards, replicas):
    """Creation hands each shard's slots to a stand-in (its second node, or a temporary node that
    is then forgotten) that its primary then takes over (no 2 s engine delay); whatever the path,
    'available' means every slot is served by the shard's first member, each replica follows it,
    and every node agrees on the slot map and knows only the group's members."""
    from redis.crc import key_slot

    gid = f"cmw-{unique}"
    ec.create_replication_group(
        ReplicationGroupId=gid,
        ReplicationGroupDescription="d",
        NumNodeGroups=shards,
        ReplicasPerNodeGroup=replicas,
    )
    cleanup.append(("group", gid))
    g = group(ec, gid)
    assert g["Status"] == "available"
    conf = g["ConfigurationEndpoint"]
    key_for_slot: dict[int, str] = {}
    i = 0
    while len(key_for_slot) < 16384:
        key_for_slot.setdefault(key_slot(f"k{i}".encode()), f"k{i}")
        i += 1
    written = 0
    for low, high, owner, *_ in redis.Redis(conf["Address"], conf["Port"]).cluster("slots"):
        pipe = redis.Redis(owner[0], owner[1]).pipeline(transaction=False)  # no redirection, no retry
        for slot in range(low, high + 1):
            pipe.set(key_for_slot[slot], slot)
        written += sum(1 for r in pipe.execute() if r is True)
    assert written == 16384
    for ng in g["NodeGroups"]:  # the first member of each shard is its primary, as at AWS
        for m in ng["NodeGroupMembers"]:
            ep = m["ReadEndpoint"]
            role = redis.Redis(ep["Address"], ep["Port"]).role()[0]
            wanted = b"master" if m["CacheClusterId"].endswith("-001") else b"slave"
            assert role == wanted, (m["CacheClusterId"], role)
    views = set()
    for ng in g["NodeGroups"]:
        for m in ng["NodeGroupMembers"]:
            ep = m["ReadEndpoint"]
            node = redis.Redis(ep["Address"], ep["Port"], decode_responses=True)
            assert "cluster_state:ok" in node.execute_command("CLUSTER", "INFO")
            assert len(node.execute_command("CLUSTER", "NODES").splitlines()) == shards * (1 + replicas)
            views.add(tuple(sorted((s[0], s[1], s[2][0]) for s in node.cluster("slots"))))
    assert len(views) == 1
