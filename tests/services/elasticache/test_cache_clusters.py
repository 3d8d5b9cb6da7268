"""Standalone cache clusters: Redis/Valkey single nodes and multi-node Memcached, via boto3 + real clients."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import redis
from botocore.exceptions import ClientError
from pymemcache.client.base import Client as MemcacheClient
from pymemcache.client.hash import HashClient

from tests.services.elasticache.conftest import eventually, node_endpoints


class FakeDB:
    """The seed's `db` stand-in: counts queries so the test can see cache hits."""

    def __init__(self) -> None:
        self.users = {"42": {"id": "42", "name": "Ada"}}
        self.queries = 0

    def query_user(self, user_id: str) -> dict:
        self.queries += 1
        return dict(self.users[user_id])

    def update_user(self, user_id: str, data: dict) -> dict:
        self.users[user_id] = {**self.users[user_id], **data}
        return dict(self.users[user_id])


def caching_lab(redis_client: redis.Redis, db: FakeDB, write_queue: list) -> dict:
    """The seed's caching strategies, verbatim but for their free names bound here."""

    def get_user(user_id: str) -> dict:
        return get_user_with_cache_aside(user_id)

    def get_user_with_cache_aside(user_id: str) -> dict:
        cache_key = f"user:{user_id}"
        cached = redis_client.get(cache_key)
        if cached:
            return json.loads(cached)
        user = db.query_user(user_id)
        redis_client.setex(cache_key, timedelta(hours=1), json.dumps(user))
        return user

    def update_user_write_through(user_id: str, data: dict) -> dict:
        cache_key = f"user:{user_id}"
        user = db.update_user(user_id, data)
        redis_client.setex(cache_key, timedelta(hours=1), json.dumps(user))
        return user

    def update_user_write_behind(user_id: str, data: dict) -> dict:
        cache_key = f"user:{user_id}"
        user = {**get_user(user_id), **data}
        redis_client.setex(cache_key, timedelta(hours=1), json.dumps(user))
        write_queue.append({"user_id": user_id, "data": data})
        return user

    def invalidate_user_cache(user_id: str) -> None:
        redis_client.delete(f"user:{user_id}")

    def invalidate_pattern(pattern: str) -> None:
        cursor = 0
        while True:
            cursor, keys = redis_client.scan(cursor, match=pattern, count=100)
            if keys:
                redis_client.delete(*keys)
            if cursor == 0:
                break

    return locals()


def run_caching_lab(client: redis.Redis) -> None:
    """Every strategy of the seed against `client`, asserting what a user would see."""
    db, queue = FakeDB(), []
    lab = caching_lab(client, db, queue)
    assert lab["get_user_with_cache_aside"]("42") == {"id": "42", "name": "Ada"}
    assert lab["get_user_with_cache_aside"]("42") == {"id": "42", "name": "Ada"}
    assert db.queries == 1  # the second read was a cache hit
    ttl = client.ttl("user:42")
    assert 3500 < ttl <= 3600
    assert lab["update_user_write_through"]("42", {"name": "Grace"})["name"] == "Grace"
    assert json.loads(client.get("user:42"))["name"] == "Grace"
    assert lab["update_user_write_behind"]("42", {"email": "g@example.com"})["email"] == "g@example.com"
    assert queue == [{"user_id": "42", "data": {"email": "g@example.com"}}]
    assert json.loads(client.get("user:42"))["email"] == "g@example.com"
    lab["invalidate_user_cache"]("42")
    assert client.get("user:42") is None
    for i in range(250):
        client.set(f"session:{i}", "x")
    client.set("keep:me", "1")
    lab["invalidate_pattern"]("session:*")
    assert client.keys("session:*") == []
    assert client.get("keep:me") == "1"


@pytest.mark.parametrize("engine", ["redis", "valkey"])
def test_single_node_cluster_runs_the_caching_lab(ec, cleanup, unique, engine):
    cid = f"c-{engine}-{unique}"
    created = ec.create_cache_cluster(
        CacheClusterId=cid,
        Engine=engine,
        CacheNodeType="cache.t3.micro",
        NumCacheNodes=1,
        Tags=[{"Key": "team", "Value": "cache"}],
    )["CacheCluster"]
    cleanup.append(("cluster", cid))
    assert created["CacheClusterStatus"] == "creating"
    assert created["Engine"] == engine
    described = ec.describe_cache_clusters(CacheClusterId=cid, ShowCacheNodeInfo=True)["CacheClusters"][0]
    assert described["CacheClusterStatus"] == "available"
    assert described["NumCacheNodes"] == 1
    assert described["ARN"].endswith(f":cluster:{cid}")
    (endpoint,) = node_endpoints(ec, cid)
    client = redis.Redis(endpoint["Address"], endpoint["Port"], decode_responses=True)
    info = client.info("server")
    assert info.get("redis_version") or info.get("valkey_version")
    assert described["EngineVersion"] == (
        info.get("valkey_version") if engine == "valkey" else info["redis_version"]
    )
    run_caching_lab(client)
    # the cluster's ids are listed, and it disappears on delete
    ids = [c["CacheClusterId"] for c in ec.describe_cache_clusters(MaxRecords=100)["CacheClusters"]]
    assert cid in ids
    deleted = ec.delete_cache_cluster(CacheClusterId=cid)["CacheCluster"]
    assert deleted["CacheClusterStatus"] == "deleting"
    with pytest.raises(ClientError) as e:
        ec.describe_cache_clusters(CacheClusterId=cid)
    assert e.value.response["Error"]["Code"] == "CacheClusterNotFound"
    with pytest.raises(redis.ConnectionError):
        redis.Redis(endpoint["Address"], endpoint["Port"], socket_connect_timeout=2).ping()


def test_reboot_keeps_redis_data_and_endpoint(strata_server, ec, cleanup, unique):
    """...and DescribeEvents tells the cluster's story: created, then its node rebooted."""
    cid = f"reboot-{unique}"
    before = datetime.fromisoformat(strata_server.admin("/_strata/clock")["now"])
    ec.create_cache_cluster(CacheClusterId=cid, Engine="redis", NumCacheNodes=1)
    cleanup.append(("cluster", cid))
    (endpoint,) = node_endpoints(ec, cid)
    client = redis.Redis(endpoint["Address"], endpoint["Port"], decode_responses=True)
    client.set("survives", "reboot")
    pid_before = client.info("server")["process_id"]
    out = ec.reboot_cache_cluster(CacheClusterId=cid, CacheNodeIdsToReboot=["0001"])["CacheCluster"]
    assert out["CacheClusterStatus"] == "rebooting cache cluster nodes"
    fresh = redis.Redis(endpoint["Address"], endpoint["Port"], decode_responses=True)
    eventually(lambda: fresh.ping(), what="node back after reboot")
    assert fresh.info("server")["process_id"] != pid_before
    assert fresh.get("survives") == "reboot"
    events = ec.describe_events(SourceIdentifier=cid, SourceType="cache-cluster")["Events"]
    assert [e["Message"] for e in events] == ["Cache cluster created", "Cache node 0001 restarted"]
    assert all(e["SourceType"] == "cache-cluster" and e["Date"] >= before for e in events)
    # the window: the last few minutes hold them; one that ends before the cluster, or starts
    # after the reboot, holds none; nor does another source type of the same name
    assert len(ec.describe_events(SourceIdentifier=cid, Duration=5)["Events"]) == 2
    end = before - timedelta(seconds=1)
    assert not ec.describe_events(SourceIdentifier=cid, EndTime=end, Duration=14 * 24 * 60)["Events"]
    start = events[-1]["Date"] + timedelta(seconds=1)
    assert not ec.describe_events(SourceIdentifier=cid, StartTime=start)["Events"]
    assert not ec.describe_events(SourceIdentifier=cid, SourceType="replication-group")["Events"]
    for bad in ({"SourceType": "cache-node"}, {"MaxRecords": 10}):
        with pytest.raises(ClientError) as e:
            ec.describe_events(**bad)
        assert e.value.response["Error"]["Code"] == "InvalidParameterValue"
    # The node types it may move to (cache.t3.micro by default): larger up, smaller down.
    allowed = ec.list_allowed_node_type_modifications(CacheClusterId=cid)
    assert (
        "cache.r7g.large" in allowed["ScaleUpModifications"]
        and "cache.t3.micro" not in allowed["ScaleUpModifications"]
    )
    assert not allowed["ScaleDownModifications"]


def test_engine_versions_on_offer_are_the_ones_that_run(ec, cleanup, unique):
    """Every version DescribeCacheEngineVersions lists is accepted by CreateCacheCluster, with the
    parameter group family a cache of it gets."""
    versions = ec.describe_cache_engine_versions()["CacheEngineVersions"]
    assert {v["Engine"] for v in versions} == {"redis", "valkey", "memcached"}
    (redis_version,) = ec.describe_cache_engine_versions(Engine="redis", DefaultOnly=True)[
        "CacheEngineVersions"
    ]
    family = redis_version["CacheParameterGroupFamily"]
    assert ec.describe_cache_engine_versions(CacheParameterGroupFamily=family)["CacheEngineVersions"]
    assert not ec.describe_cache_engine_versions(Engine="redis", EngineVersion="2.8")["CacheEngineVersions"]
    assert ec.describe_service_updates()["ServiceUpdates"] == []
    cid = f"ver-{unique}"
    out = ec.create_cache_cluster(
        CacheClusterId=cid, Engine="redis", EngineVersion=redis_version["EngineVersion"], NumCacheNodes=1
    )["CacheCluster"]
    cleanup.append(("cluster", cid))
    assert out["EngineVersion"] == redis_version["EngineVersion"]
    assert out["CacheParameterGroup"]["CacheParameterGroupName"] == f"default.{family}"


@pytest.mark.parametrize("engine", ["redis", "valkey"])
def test_restricted_commands_are_unknown_to_clients(strata_server, ec, cleanup, unique, engine):
    """ElastiCache's restricted commands (user guide, "Restricted commands") answer "unknown command"
    to clients, with no AuthToken too; the rest, FLUSHALL included, work as on ElastiCache; the
    names Strata keeps them under are in no file other users can read."""
    cid = f"restrict-{engine}-{unique}"
    ec.create_cache_cluster(CacheClusterId=cid, Engine=engine, NumCacheNodes=1)
    cleanup.append(("cluster", cid))
    (endpoint,) = node_endpoints(ec, cid)
    client = redis.Redis(endpoint["Address"], endpoint["Port"], decode_responses=True)
    refused = [
        ("CONFIG", "GET", "maxmemory"),
        ("CONFIG", "SET", "maxmemory", "1"),
        ("REPLICAOF", "127.0.0.1", "6379"),
        ("SLAVEOF", "NO", "ONE"),
        ("SHUTDOWN",),
        ("SAVE",),
        ("BGSAVE",),
        ("BGREWRITEAOF",),
        ("DEBUG", "SLEEP", "0"),
        ("MIGRATE", "127.0.0.1", "1", "k", "0", "1000"),
        ("SYNC",),
    ]
    for command in refused:
        with pytest.raises(redis.ResponseError, match="unknown command"):
            client.execute_command(*command)
    assert client.ping()  # still up: SHUTDOWN did nothing
    client.set("k", "v")
    assert client.flushall() and client.dbsize() == 0
    # Strata still uses them: a resize sets maxmemory, a snapshot saves
    ec.modify_cache_cluster(CacheClusterId=cid, CacheNodeType="cache.t3.small", ApplyImmediately=True)
    assert client.info("memory")["maxmemory"] > 0
    nodes = Path(strata_server.data_dir) / "elasticache" / "nodes" / cid
    conf = next(nodes.rglob("redis.conf"))
    assert conf.stat().st_mode & 0o077 == 0
    token = Path(strata_server.data_dir) / "elasticache" / "engine-admin.token"
    assert token.stat().st_mode & 0o077 == 0


def test_memcached_cluster_with_several_nodes(ec, cleanup, unique):
    cid = f"mc-{unique}"
    created = ec.create_cache_cluster(
        CacheClusterId=cid, Engine="memcached", CacheNodeType="cache.t3.micro", NumCacheNodes=3
    )["CacheCluster"]
    cleanup.append(("cluster", cid))
    assert created["ConfigurationEndpoint"]["Port"] == created["ConfigurationEndpoint"]["Port"]
    cluster = ec.describe_cache_clusters(CacheClusterId=cid, ShowCacheNodeInfo=True)["CacheClusters"][0]
    assert cluster["NumCacheNodes"] == 3 and cluster["Engine"] == "memcached"
    assert [n["CacheNodeId"] for n in cluster["CacheNodes"]] == ["0001", "0002", "0003"]
    nodes = [(n["Endpoint"]["Address"], n["Endpoint"]["Port"]) for n in cluster["CacheNodes"]]
    assert len(set(nodes)) == 3
    # pymemcache spreads keys over the nodes, as an application configured with the node list does
    client = HashClient(nodes)
    for i in range(60):
        client.set(f"k{i}", f"v{i}")
    assert all(client.get(f"k{i}") == f"v{i}".encode() for i in range(60))
    per_node = [int(MemcacheClient(n).stats()[b"curr_items"]) for n in nodes]
    assert sum(per_node) == 60 and all(count > 0 for count in per_node)
    # the configuration endpoint is a live memcached too
    conf = cluster["ConfigurationEndpoint"]
    cfg_client = MemcacheClient((conf["Address"], conf["Port"]))
    cfg_client.set("via-config", "yes")
    assert cfg_client.get("via-config") == b"yes"

    # add two nodes, then remove two named ones
    ec.modify_cache_cluster(CacheClusterId=cid, NumCacheNodes=5, ApplyImmediately=True)
    grown = ec.describe_cache_clusters(CacheClusterId=cid, ShowCacheNodeInfo=True)["CacheClusters"][0]
    assert [n["CacheNodeId"] for n in grown["CacheNodes"]] == ["0001", "0002", "0003", "0004", "0005"]
    new = grown["CacheNodes"][4]["Endpoint"]
    MemcacheClient((new["Address"], new["Port"])).set("on-new-node", "1")
    ec.modify_cache_cluster(
        CacheClusterId=cid, NumCacheNodes=3, CacheNodeIdsToRemove=["0001", "0004"], ApplyImmediately=True
    )
    shrunk = ec.describe_cache_clusters(CacheClusterId=cid, ShowCacheNodeInfo=True)["CacheClusters"][0]
    assert [n["CacheNodeId"] for n in shrunk["CacheNodes"]] == ["0002", "0003", "0005"]
    gone = grown["CacheNodes"][3]["Endpoint"]
    with pytest.raises(OSError):
        MemcacheClient((gone["Address"], gone["Port"]), connect_timeout=2).get("x")
    # the configuration endpoint survived the removal of the node that held it
    eventually(
        lambda: MemcacheClient((conf["Address"], conf["Port"]), connect_timeout=2).set("again", "1"),
        what="configuration endpoint after removing node 0001",
    )


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"CacheClusterId": "1bad", "Engine": "redis"}, "InvalidParameterValue"),
        ({"CacheClusterId": "two--hyphens", "Engine": "redis"}, "InvalidParameterValue"),
        ({"CacheClusterId": "ok-id", "Engine": "mongodb"}, "InvalidParameterValue"),
        ({"CacheClusterId": "ok-id", "Engine": "redis", "NumCacheNodes": 2}, "InvalidParameterValue"),
        (
            {"CacheClusterId": "ok-id", "Engine": "redis", "AuthToken": "a-long-enough-token"},
            "InvalidParameterValue",
        ),
        (
            {
                "CacheClusterId": "ok-id",
                "Engine": "redis",
                "TransitEncryptionEnabled": True,
                "AuthToken": "short",
            },
            "InvalidParameterValue",
        ),
        (
            {"CacheClusterId": "ok-id", "Engine": "memcached", "NumCacheNodes": 41},
            "NodeQuotaForClusterExceeded",
        ),
        (
            {"CacheClusterId": "ok-id", "Engine": "redis", "SnapshotName": "no-such-snapshot"},
            "SnapshotNotFoundFault",
        ),
        (
            {"CacheClusterId": "ok-id", "Engine": "redis", "CacheNodeType": "m5.large"},
            "InvalidParameterValue",
        ),
    ],
)
def test_create_cache_cluster_validation(ec, kwargs, code):
    with pytest.raises(ClientError) as e:
        ec.create_cache_cluster(**kwargs)
    assert e.value.response["Error"]["Code"] == code


def test_duplicate_and_missing_clusters(ec, cleanup, unique):
    cid = f"dup-{unique}"
    ec.create_cache_cluster(CacheClusterId=cid, Engine="memcached", NumCacheNodes=1)
    cleanup.append(("cluster", cid))
    with pytest.raises(ClientError) as e:
        ec.create_cache_cluster(CacheClusterId=cid, Engine="memcached", NumCacheNodes=1)
    assert e.value.response["Error"]["Code"] == "CacheClusterAlreadyExists"
    for call in (
        lambda: ec.delete_cache_cluster(CacheClusterId=f"none-{unique}"),
        lambda: ec.reboot_cache_cluster(CacheClusterId=f"none-{unique}", CacheNodeIdsToReboot=["0001"]),
        lambda: ec.modify_cache_cluster(CacheClusterId=f"none-{unique}", NumCacheNodes=2),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert e.value.response["Error"]["Code"] == "CacheClusterNotFound"
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_describe_pagination(ec, cleanup, unique):
    ids = [f"page-{unique}-{i}" for i in range(3)]
    for cid in ids:
        ec.create_cache_cluster(CacheClusterId=cid, Engine="memcached", NumCacheNodes=1)
        cleanup.append(("cluster", cid))
    seen: list[str] = []
    pages = ec.get_paginator("describe_cache_clusters").paginate(PaginationConfig={"PageSize": 20})
    for page in pages:
        seen += [c["CacheClusterId"] for c in page["CacheClusters"]]
    assert set(ids) <= set(seen) and len(seen) == len(set(seen))


def test_requested_port_is_used_when_free(ec, cleanup, unique):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        wanted = s.getsockname()[1]
    cid = f"port-{unique}"
    ec.create_cache_cluster(CacheClusterId=cid, Engine="redis", NumCacheNodes=1, Port=wanted)
    cleanup.append(("cluster", cid))
    (ep,) = node_endpoints(ec, cid)
    assert ep["Port"] == wanted
    assert redis.Redis(ep["Address"], ep["Port"]).ping()
    # a port already in use falls back to a free one
    other = f"port2-{unique}"
    ec.create_cache_cluster(CacheClusterId=other, Engine="redis", NumCacheNodes=1, Port=wanted)
    cleanup.append(("cluster", other))
    (ep2,) = node_endpoints(ec, other)
    assert ep2["Port"] != wanted and redis.Redis(ep2["Address"], ep2["Port"]).ping()
