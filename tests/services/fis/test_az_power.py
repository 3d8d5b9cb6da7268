"""FIS aws:elasticache:replicationgroup-interrupt-az-power against real Redis/Valkey nodes: the
zone's primary really dies (its process is gone), the engine's replica takes over behind the same
primary endpoint, nothing rebuilds the dead node while the action runs, and when the experiment
ends (here: StopExperiment) the node comes back as an in-sync replica; writes acknowledged after
the failover are kept (those of the old primary's last moment may not be: replication is
asynchronous, as on AWS)."""

from __future__ import annotations

import os
import time

import redis
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from tests.services.elasticache.conftest import eventually, group, roles
from tests.services.elasticache.test_engine_faults import Writer, _in_sync, _member_client, _pid
from tests.services.fis.test_experiments import DONE, wait_for
from tests.services.fis.test_templates import NONE, ROLE, error_of


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _refused(member: redis.Redis) -> bool:
    try:
        member.ping()
    except redis.ConnectionError:
        return True
    return False


class TimedWriter(Writer):
    """A Writer that also keeps the longest time between two acknowledged writes (the downtime)."""

    def __init__(self, address: str, port: int) -> None:
        super().__init__(address, port)
        self.longest_gap = 0.0

    def run(self) -> None:
        i, last = 0, time.monotonic()
        while not self.halt.is_set():
            try:
                self.client.set(f"w:{i}", i)
                self.acked.append(i)
                now = time.monotonic()
                self.longest_gap, last = max(self.longest_gap, now - last), now
            except (redis.RedisError, OSError):
                self.errors += 1
                self.halt.wait(0.05)
            i += 1


def az_power_template(tag: str, zone: str, duration: str = "PT10M") -> dict:
    return {
        "description": "zone a loses power",
        "roleArn": ROLE,
        "stopConditions": NONE,
        "targets": {
            "caches": {
                "resourceType": "aws:elasticache:replicationgroup",
                "resourceTags": {"chaos": tag},
                "selectionMode": "ALL",
                "parameters": {"availabilityZoneIdentifier": zone},
            }
        },
        "actions": {
            "power": {
                "actionId": "aws:elasticache:replicationgroup-interrupt-az-power",
                "parameters": {"duration": duration},
                "targets": {"ReplicationGroups": "caches"},
            }
        },
    }


def test_az_power_interruption_fails_over_and_the_zone_comes_back(strata_server, unique):
    ec = strata_server.client("elasticache")
    fis = strata_server.client("fis")
    gid = f"azp-{unique}"
    ec.create_replication_group(
        ReplicationGroupId=gid,
        ReplicationGroupDescription="d",
        NumCacheClusters=2,
        AutomaticFailoverEnabled=True,
        MultiAZEnabled=True,
        PreferredCacheClusterAZs=["us-east-1a", "us-east-1b"],
        Tags=[{"Key": "chaos", "Value": unique}],
    )
    try:
        g = group(ec, gid)
        first, second = f"{gid}-001", f"{gid}-002"
        assert roles(ec, gid)[first] == "primary"
        ep = g["NodeGroups"][0]["PrimaryEndpoint"]
        old_primary = _member_client(g, first)
        pid = _pid(old_primary)

        # the primary's zone, us-east-1a, by its zone ID
        zone_id = strata_server.client("ec2").describe_availability_zones(ZoneNames=["us-east-1a"])[
            "AvailabilityZones"
        ][0]["ZoneId"]
        tid = fis.create_experiment_template(**az_power_template(unique, zone_id))["experimentTemplate"]["id"]
        writer = TimedWriter(ep["Address"], ep["Port"])
        writer.start()
        eventually(lambda: len(writer.acked) > 100, what="writes flowing")
        exp_id = fis.start_experiment(experimentTemplateId=tid)["experiment"]["id"]
        began = time.monotonic()

        eventually(lambda: _gone(pid), what="the primary's process killed")
        eventually(lambda: roles(ec, gid)[second] == "primary", what="failover to the replica in us-east-1b")
        before = len(writer.acked)
        eventually(lambda: len(writer.acked) > before + 100, what="writes through the same endpoint again")
        print(f"power cut: writes stalled {writer.longest_gap:.3f} s at most ({writer.errors} errors)")
        # The failover restarts a crashed primary at once; this one has no power, so it stays down.
        assert _refused(old_primary)
        exp = fis.get_experiment(id=exp_id)["experiment"]
        assert exp["state"]["status"] == "running"
        assert exp["actions"]["power"]["state"]["status"] == "running"
        assert _refused(old_primary)

        fis.stop_experiment(id=exp_id)
        exp = wait_for(fis, exp_id, DONE, timeout=120)
        print(f"experiment ran {time.monotonic() - began:.1f} s")
        assert exp["state"]["status"] == "stopped", exp["state"]
        # power is back once the experiment has ended: the node answers, as a replica
        eventually(old_primary.ping, what="the old primary answering again")
        writer.stop()
        new_primary = _member_client(g, second)
        eventually(
            lambda: _in_sync(new_primary, old_primary), what="the old primary back as an in-sync replica"
        )
        assert roles(ec, gid) == {first: "replica", second: "primary"}
        present = set(new_primary.keys("w:*"))
        # Replication is asynchronous, as on AWS: writes the old primary acknowledged in its last
        # moment may not have reached the replica. Every write acknowledged after the failover was
        # seen is kept.
        lost = [i for i in writer.acked if f"w:{i}" not in present]
        print(f"acknowledged writes lost to the power cut: {len(lost)} of {len(writer.acked)}")
        assert {f"w:{i}" for i in writer.acked[before:]} <= present
        assert old_primary.dbsize() == new_primary.dbsize()
        assert group(ec, gid)["NodeGroups"][0]["PrimaryEndpoint"] == ep
    finally:
        ec.delete_replication_group(ReplicationGroupId=gid)


def test_az_power_needs_a_zone_and_multi_az(strata_server, unique):
    ec = strata_server.client("elasticache")
    fis = strata_server.client("fis")
    body = az_power_template(unique, "us-east-1a")
    del body["targets"]["caches"]["parameters"]
    code, message, _ = error_of(lambda: fis.create_experiment_template(**body))
    assert code == "ValidationException" and "availabilityZoneIdentifier" in message
    gid = f"azs-{unique}"
    ec.create_replication_group(
        ReplicationGroupId=gid,
        ReplicationGroupDescription="d",
        NumCacheClusters=1,
        Tags=[{"Key": "chaos", "Value": unique}],
    )
    try:
        tid = fis.create_experiment_template(**az_power_template(unique, "us-east-1a"))["experimentTemplate"][
            "id"
        ]
        exp = wait_for(fis, fis.start_experiment(experimentTemplateId=tid)["experiment"]["id"], DONE)
        assert exp["state"]["status"] == "failed"
        assert "Multi-AZ" in exp["actions"]["power"]["state"]["reason"]
        assert redis.Redis(**_endpoint(group(ec, gid))).ping()  # untouched
    finally:
        ec.delete_replication_group(ReplicationGroupId=gid)


def test_az_power_on_a_cluster_mode_group_fails_every_shard_over(strata_server, unique):
    """Both shards' primaries are in the zone that loses power: each shard's replica takes its
    slots over (the configuration endpoint moves off the dead node too), acknowledged keys are
    kept, and when power returns the old primaries rejoin as replicas."""
    ec = strata_server.client("elasticache")
    fis = strata_server.client("fis")
    cid = f"azm-{unique}"
    shard = {
        "ReplicaCount": 1,
        "PrimaryAvailabilityZone": "us-east-1a",
        "ReplicaAvailabilityZones": ["us-east-1b"],
    }
    ec.create_replication_group(
        ReplicationGroupId=cid,
        ReplicationGroupDescription="d",
        ClusterMode="enabled",
        NodeGroupConfiguration=[{"NodeGroupId": "0001", **shard}, {"NodeGroupId": "0002", **shard}],
        AutomaticFailoverEnabled=True,
        MultiAZEnabled=True,
        Tags=[{"Key": "chaos", "Value": f"{unique}-cm"}],
    )
    try:
        conf = group(ec, cid)["ConfigurationEndpoint"]
        rc = RedisCluster(host=conf["Address"], port=conf["Port"], decode_responses=True)
        keys = [f"k{i}" for i in range(200)]
        for key in keys:
            rc.set(key, key)
        owners = {(n.host, n.port) for n in rc.get_primaries()}
        assert len(owners) == 2
        for host, port in owners:  # every key on the replicas before the power goes
            assert redis.Redis(host, port).wait(1, 10000) == 1
        tid = fis.create_experiment_template(**az_power_template(f"{unique}-cm", "us-east-1a"))[
            "experimentTemplate"
        ]["id"]
        exp_id = fis.start_experiment(experimentTemplateId=tid)["experiment"]["id"]
        began = time.monotonic()

        def served_elsewhere() -> bool:
            try:
                fresh = RedisCluster(host=conf["Address"], port=conf["Port"], decode_responses=True)
                moved = {(n.host, n.port) for n in fresh.get_primaries()}
                return not moved & owners and all(fresh.get(k) == k for k in keys)
            except RedisClusterException:  # the configuration endpoint moving off a dead node
                return False

        eventually(served_elsewhere, what="every shard served by its replica in us-east-1b")
        print(f"cluster mode: every slot served again {time.monotonic() - began:.1f} s after the start")
        assert all(_refused(redis.Redis(host, port, socket_timeout=5)) for host, port in owners)
        assert fis.get_experiment(id=exp_id)["experiment"]["state"]["status"] == "running"

        fis.stop_experiment(id=exp_id)
        assert wait_for(fis, exp_id, DONE, timeout=120)["state"]["status"] == "stopped"
        for host, port in owners:  # back, as replicas (restarted with the addresses they hold now)
            eventually(lambda h=host, p=port: redis.Redis(h, p).role()[0] == b"slave", what="rejoined")
        fresh = RedisCluster(host=conf["Address"], port=conf["Port"], decode_responses=True)
        assert fresh.set("after", "1") and fresh.get("after") == "1"
    finally:
        ec.delete_replication_group(ReplicationGroupId=cid)


def _endpoint(g: dict) -> dict:
    ep = g["NodeGroups"][0]["PrimaryEndpoint"]
    return {"host": ep["Address"], "port": ep["Port"]}
