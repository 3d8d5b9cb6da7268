"""Faults in the engines: kill -9 of a node's process while clients write (issue 12's campaign).

ElastiCache's promise after a node fails: a replica that dies is rebuilt and catches up; a primary
that dies is replaced by the replica that has read furthest (automatic failover) and comes back as
a replica; the endpoints do not change. Replication is asynchronous, so on AWS an unplanned
failover may lose the last writes not yet sent to a replica; what was sent must not be lost.
"""

from __future__ import annotations

import os
import signal
import threading

import redis

from tests.services.elasticache.conftest import eventually, group, roles


class Writer(threading.Thread):
    """Writes w:0, w:1, ... through an endpoint until stopped, reconnecting after errors; remembers
    which writes were acknowledged."""

    def __init__(self, address: str, port: int) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis(address, port, socket_timeout=5, socket_connect_timeout=5)
        self.acked: list[int] = []
        self.errors = 0
        self.halt = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.halt.is_set():
            try:
                self.client.set(f"w:{i}", i)
                self.acked.append(i)
            except (redis.RedisError, OSError):
                self.errors += 1
                self.halt.wait(0.05)
            i += 1

    def stop(self) -> None:
        self.halt.set()
        self.join(30)


def _pid(node: redis.Redis) -> int:
    return int(node.info("server")["process_id"])


def _member_client(g: dict, cid: str) -> redis.Redis:
    m = next(m for m in g["NodeGroups"][0]["NodeGroupMembers"] if m["CacheClusterId"] == cid)
    return redis.Redis(m["ReadEndpoint"]["Address"], m["ReadEndpoint"]["Port"], decode_responses=True)


def _in_sync(primary: redis.Redis, replica: redis.Redis) -> bool:
    """The replica is linked and has the primary's whole stream (so the same data)."""
    info = replica.info("replication")
    return (
        info.get("master_link_status") == "up"
        and info["slave_repl_offset"] >= primary.info("replication")["master_repl_offset"]
    )


def test_killed_primary_and_replica_under_load(ec, cleanup, unique):
    gid = f"fault-{unique}"
    ec.create_replication_group(
        ReplicationGroupId=gid,
        ReplicationGroupDescription="d",
        NumCacheClusters=2,
        AutomaticFailoverEnabled=True,
    )
    cleanup.append(("group", gid))
    g = group(ec, gid)
    ep = g["NodeGroups"][0]["PrimaryEndpoint"]
    first, second = f"{gid}-001", f"{gid}-002"

    # 1. Right after "available", writes reach the replica at once: a primary killed just after
    # acknowledging them loses none (a replica linked but not yet streaming lost them all).
    primary = _member_client(g, first)
    pipe = primary.pipeline(transaction=False)
    for i in range(1000):
        pipe.set(f"early:{i}", i)
    assert all(pipe.execute())
    os.kill(_pid(primary), signal.SIGKILL)
    eventually(lambda: roles(ec, gid)[second] == "primary", what="automatic failover")
    endpoint = redis.Redis(ep["Address"], ep["Port"], decode_responses=True)
    eventually(lambda: endpoint.role()[0] == "master", what="primary endpoint on the promoted node")
    assert len(endpoint.keys("early:*")) == 1000

    # 2. The replica (the old primary, rebuilt) dies under load: it is rebuilt again and catches
    # up; the primary, untouched, has every acknowledged write.
    new_primary, replica = _member_client(g, second), _member_client(g, first)
    eventually(lambda: _in_sync(new_primary, replica), what="old primary back as an in-sync replica")
    writer = Writer(ep["Address"], ep["Port"])
    writer.start()
    eventually(lambda: len(writer.acked) > 200, what="writes flowing")
    dead_pid = _pid(replica)
    os.kill(dead_pid, signal.SIGKILL)
    eventually(lambda: _pid(replica) != dead_pid, what="the replica restarted")
    before = len(writer.acked)
    eventually(lambda: len(writer.acked) > before + 200, what="writes still flowing")
    writer.stop()
    eventually(lambda: _in_sync(new_primary, replica), what="the rebuilt replica caught up")
    present = new_primary.keys("w:*")
    assert {f"w:{i}" for i in writer.acked} <= set(present)
    assert replica.dbsize() == new_primary.dbsize()

    # 3. The primary dies under load: the replica takes over behind the same endpoint, writes go
    # on there, and the dead node comes back as its in-sync replica.
    writer = Writer(ep["Address"], ep["Port"])
    writer.start()
    eventually(lambda: len(writer.acked) > 200, what="writes flowing")
    os.kill(_pid(new_primary), signal.SIGKILL)
    eventually(lambda: roles(ec, gid)[first] == "primary", what="automatic failover back")
    before = len(writer.acked)
    eventually(lambda: len(writer.acked) > before + 200, what="writes through the endpoint after failover")
    writer.stop()
    assert group(ec, gid)["NodeGroups"][0]["PrimaryEndpoint"] == ep
    last_primary, last_replica = _member_client(g, first), _member_client(g, second)
    eventually(lambda: _in_sync(last_primary, last_replica), what="the dead primary back as a replica")
    assert last_replica.dbsize() == last_primary.dbsize()
    assert group(ec, gid)["Status"] == "available"

    # the events tell it: each death a recovery of the member, each lost primary a failover
    def messages(source: str) -> list[str]:
        return [e["Message"] for e in ec.describe_events(SourceIdentifier=source)["Events"]]

    recovery = ["Recovering cache nodes 0001", "Finished recovery for cache nodes 0001"]
    assert messages(first) == recovery * 2 and messages(second) == recovery
    assert messages(gid) == [
        f"Replication group {gid} created",
        f"Failover from master node {first} to replica node {second} completed",
        f"Failover from master node {second} to replica node {first} completed",
    ]
