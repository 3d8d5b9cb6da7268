"""Cache parameter groups: the API as ElastiCache answers it, and the values reaching the real engines
(redis: at once, seen in INFO and in keyspace notifications; memcached: at the next reboot, seen in
`stats settings`)."""

from __future__ import annotations

import pytest
import redis
from botocore.exceptions import ClientError

from tests.services.elasticache.conftest import eventually, group, memcached_exchange, node_endpoints

MIB = 1024 * 1024


def error_code(call, **kwargs) -> str:
    with pytest.raises(ClientError) as e:
        call(**kwargs)
    return e.value.response["Error"]["Code"]


def parameters(ec, name: str) -> dict[str, dict]:
    out = ec.describe_cache_parameters(CacheParameterGroupName=name)
    return {p["ParameterName"]: p for p in out["Parameters"]}


def cluster(ec, cid: str) -> dict:
    return ec.describe_cache_clusters(CacheClusterId=cid, ShowCacheNodeInfo=True)["CacheClusters"][0]


def memcached_settings(address: tuple[str, int]) -> dict[str, str]:
    data = memcached_exchange(address, b"stats settings\r\nstats\r\n", 2).decode()
    return {
        p[1]: p[2] for p in (line.split() for line in data.splitlines()) if len(p) == 3 and p[0] == "STAT"
    }


def test_parameter_group_api_as_elasticache_answers_it(ec, unique: str) -> None:
    name = f"pg-{unique}"[:40]
    created = ec.create_cache_parameter_group(
        CacheParameterGroupName=name.upper(),
        CacheParameterGroupFamily="redis7",
        Description="app settings",
        Tags=[{"Key": "team", "Value": "core"}],
    )["CacheParameterGroup"]
    assert created["CacheParameterGroupName"] == name  # stored lower-cased, as ElastiCache does
    assert created["ARN"].endswith(f":parametergroup:{name}") and created["IsGlobal"] is False
    assert ec.list_tags_for_resource(ResourceName=created["ARN"])["TagList"] == [
        {"Key": "team", "Value": "core"}
    ]
    assert (
        error_code(
            ec.create_cache_parameter_group,
            CacheParameterGroupName=name,
            CacheParameterGroupFamily="redis7",
            Description="again",
        )
        == "CacheParameterGroupAlreadyExists"
    )
    assert (
        error_code(
            ec.create_cache_parameter_group,
            CacheParameterGroupName=f"{name}-x",
            CacheParameterGroupFamily="redis2.6",
            Description="a family Strata does not run",
        )
        == "InvalidParameterValue"
    )
    listed = {
        g["CacheParameterGroupName"] for g in ec.describe_cache_parameter_groups()["CacheParameterGroups"]
    }
    assert {name, "default.redis7", "default.redis7.cluster.on", "default.memcached1.6"} <= listed

    before = parameters(ec, name)
    assert before["maxmemory-policy"]["ParameterValue"] == "volatile-lru"
    assert before["maxmemory-policy"]["Source"] == "system"
    assert before["reserved-memory-percent"]["ParameterValue"] == "25"
    assert before["activedefrag"]["IsModifiable"] is False
    ec.modify_cache_parameter_group(
        CacheParameterGroupName=name,
        ParameterNameValues=[
            {"ParameterName": "maxmemory-policy", "ParameterValue": "allkeys-lru"},
            {"ParameterName": "timeout", "ParameterValue": "300"},
        ],
    )
    after = parameters(ec, name)
    assert after["maxmemory-policy"]["ParameterValue"] == "allkeys-lru"
    assert after["maxmemory-policy"]["Source"] == "user"
    users = ec.describe_cache_parameters(CacheParameterGroupName=name, Source="user")["Parameters"]
    assert sorted(p["ParameterName"] for p in users) == ["maxmemory-policy", "timeout"]

    def modify(*pairs: tuple[str, str]) -> str:
        return error_code(
            ec.modify_cache_parameter_group,
            CacheParameterGroupName=name,
            ParameterNameValues=[{"ParameterName": n, "ParameterValue": v} for n, v in pairs],
        )

    assert modify(("maxmemory-policy", "lots-lru")) == "InvalidParameterValue"
    assert modify(("timeout", "5")) == "InvalidParameterValue"  # 1-19 are not allowed
    assert modify(("no-such-parameter", "1")) == "InvalidParameterValue"
    assert modify(("activedefrag", "yes")) == "InvalidParameterValue"  # refused, never ignored
    assert modify(*[("timeout", str(20 + i)) for i in range(21)]) == "InvalidParameterCombination"
    assert parameters(ec, name)["timeout"]["ParameterValue"] == "300"
    assert (
        error_code(
            ec.modify_cache_parameter_group,
            CacheParameterGroupName="default.redis7",
            ParameterNameValues=[{"ParameterName": "timeout", "ParameterValue": "30"}],
        )
        == "InvalidParameterValue"
    )

    ec.reset_cache_parameter_group(
        CacheParameterGroupName=name, ParameterNameValues=[{"ParameterName": "timeout"}]
    )
    assert parameters(ec, name)["timeout"]["Source"] == "system"
    ec.reset_cache_parameter_group(CacheParameterGroupName=name, ResetAllParameters=True)
    assert ec.describe_cache_parameters(CacheParameterGroupName=name, Source="user")["Parameters"] == []

    # a group of another family, or a missing one, is refused by the clusters that would use it
    assert (
        error_code(
            ec.create_cache_cluster,
            CacheClusterId=f"c-{unique}"[:40],
            Engine="memcached",
            CacheParameterGroupName=name,
        )
        == "InvalidParameterCombination"
    )
    assert (
        error_code(ec.create_cache_cluster, CacheClusterId=f"c-{unique}"[:40], CacheParameterGroupName="nope")
        == "CacheParameterGroupNotFound"
    )
    defaults = ec.describe_engine_default_parameters(CacheParameterGroupFamily="memcached1.6")[
        "EngineDefaults"
    ]
    by_name = {p["ParameterName"]: p for p in defaults["Parameters"]}
    assert by_name["max_item_size"]["ParameterValue"] == "1048576"
    assert by_name["max_item_size"]["ChangeType"] == "requires-reboot"
    memory = defaults["CacheNodeTypeSpecificParameters"][0]
    assert memory["ParameterName"] == "max_cache_memory"
    assert {"CacheNodeType": "cache.t3.micro", "Value": "512"} in memory["CacheNodeTypeSpecificValues"]

    # pages of MaxRecords parameters, the node-type values with the first page only
    first = ec.describe_cache_parameters(CacheParameterGroupName=name, MaxRecords=20)
    second = ec.describe_cache_parameters(CacheParameterGroupName=name, MaxRecords=20, Marker=first["Marker"])
    assert len(first["Parameters"]) == 20 and "CacheNodeTypeSpecificParameters" not in second
    assert first["Parameters"][-1]["ParameterName"] < second["Parameters"][0]["ParameterName"]
    assert error_code(ec.describe_cache_parameters, CacheParameterGroupName=name, MaxRecords=5) == (
        "InvalidParameterValue"
    )

    ec.delete_cache_parameter_group(CacheParameterGroupName=name)
    assert (
        error_code(ec.describe_cache_parameters, CacheParameterGroupName=name)
        == "CacheParameterGroupNotFound"
    )
    assert (
        error_code(ec.delete_cache_parameter_group, CacheParameterGroupName="default.redis7")
        == "InvalidParameterValue"
    )


def test_redis_parameters_reach_the_engine_at_once(ec, unique: str, cleanup: list) -> None:
    name, cid = f"rp-{unique}"[:40], f"rpc-{unique}"[:40]
    ec.create_cache_parameter_group(
        CacheParameterGroupName=name, CacheParameterGroupFamily="redis7", Description="d"
    )
    ec.modify_cache_parameter_group(
        CacheParameterGroupName=name,
        ParameterNameValues=[
            {"ParameterName": "maxmemory-policy", "ParameterValue": "allkeys-lru"},
            {"ParameterName": "notify-keyspace-events", "ParameterValue": "E$"},
            {"ParameterName": "lazyfree-lazy-user-flush", "ParameterValue": "yes"},  # the engine takes it
        ],
    )
    ec.create_cache_cluster(
        CacheClusterId=cid, Engine="redis", CacheNodeType="cache.t3.micro", CacheParameterGroupName=name
    )
    cleanup.append(("cluster", cid))
    eventually(lambda: cluster(ec, cid)["CacheClusterStatus"] == "available", 120, "cluster available")
    described = cluster(ec, cid)["CacheParameterGroup"]
    assert described == {
        "CacheParameterGroupName": name,
        "ParameterApplyStatus": "in-sync",
        "CacheNodeIdsToReboot": [],
    }
    endpoint = node_endpoints(ec, cid)[0]
    client = redis.Redis(host=endpoint["Address"], port=endpoint["Port"], decode_responses=True)
    memory = client.info("memory")
    assert memory["maxmemory_policy"] == "allkeys-lru"
    assert memory["maxmemory"] == 512 * MIB * 75 // 100  # 25% reserved, as AWS's default group does
    assert [e["Message"] for e in ec.describe_events(SourceIdentifier=name)["Events"]] == [
        f"Cache parameter group {name} created",
        f"Updated parameters lazyfree-lazy-user-flush, maxmemory-policy, notify-keyspace-events of cache parameter group {name}",
    ]

    # what the engine runs with and no group can change: listed with the engine's own values
    listed = ec.describe_cache_parameters(CacheParameterGroupName=name)["Parameters"]
    fixed = {p["ParameterName"]: p for p in listed if p["ParameterName"] in ("maxclients", "appendonly")}
    assert not any(p["IsModifiable"] for p in fixed.values())
    assert client.info("clients")["maxclients"] == int(fixed["maxclients"]["ParameterValue"])
    assert fixed["appendonly"]["ParameterValue"] == "no" and client.info("persistence")["aof_enabled"] == 0
    for setting in (("appendonly", "yes"), ("rename-commands", "FLUSHALL nuke"), ("maxclients", "100")):
        assert (
            error_code(
                ec.modify_cache_parameter_group,
                CacheParameterGroupName=name,
                ParameterNameValues=[{"ParameterName": setting[0], "ParameterValue": setting[1]}],
            )
            == "InvalidParameterValue"
        ), setting

    events = client.pubsub()
    events.subscribe("__keyevent@0__:set")
    eventually(lambda: events.get_message(timeout=1), 10, "subscribed")
    client.set("k", "v")
    message = eventually(lambda: events.get_message(timeout=1), 10, "the keyspace event")
    assert message["data"] == "k"
    events.close()

    # a change to the group reaches the running engine without a reboot
    ec.modify_cache_parameter_group(
        CacheParameterGroupName=name,
        ParameterNameValues=[
            {"ParameterName": "maxmemory-policy", "ParameterValue": "noeviction"},
            {"ParameterName": "reserved-memory-percent", "ParameterValue": "50"},
        ],
    )
    memory = client.info("memory")
    assert (memory["maxmemory_policy"], memory["maxmemory"]) == ("noeviction", 256 * MIB)
    assert cluster(ec, cid)["CacheParameterGroup"]["ParameterApplyStatus"] == "in-sync"

    # in use: not deletable, and settings fixed at creation stay fixed
    assert error_code(ec.delete_cache_parameter_group, CacheParameterGroupName=name) == (
        "InvalidCacheParameterGroupState"
    )
    assert (
        error_code(
            ec.modify_cache_parameter_group,
            CacheParameterGroupName=name,
            ParameterNameValues=[{"ParameterName": "databases", "ParameterValue": "32"}],
        )
        == "InvalidCacheParameterGroupState"
    )

    # back to the default group: the defaults return on the same engine
    ec.modify_cache_cluster(
        CacheClusterId=cid, CacheParameterGroupName="default.redis7", ApplyImmediately=True
    )
    assert client.info("memory")["maxmemory_policy"] == "volatile-lru"
    assert cluster(ec, cid)["CacheParameterGroup"]["CacheParameterGroupName"] == "default.redis7"
    ec.delete_cache_parameter_group(CacheParameterGroupName=name)


def test_memcached_parameters_wait_for_a_reboot(ec, unique: str, cleanup: list) -> None:
    name, cid = f"mp-{unique}"[:40], f"mpc-{unique}"[:40]
    ec.create_cache_cluster(
        CacheClusterId=cid, Engine="memcached", CacheNodeType="cache.t3.micro", NumCacheNodes=1
    )
    cleanup.append(("cluster", cid))
    eventually(lambda: cluster(ec, cid)["CacheClusterStatus"] == "available", 120, "cluster available")
    assert cluster(ec, cid)["CacheParameterGroup"]["CacheParameterGroupName"] == "default.memcached1.6"
    endpoint = node_endpoints(ec, cid)[0]
    address = (endpoint["Address"], endpoint["Port"])
    stats = memcached_settings(address)
    assert stats["item_size_max"] == str(MIB)
    assert stats["limit_maxbytes"] == str((512 - 100) * MIB)  # less memcached_connections_overhead

    ec.create_cache_parameter_group(
        CacheParameterGroupName=name, CacheParameterGroupFamily="memcached1.6", Description="d"
    )
    ec.modify_cache_parameter_group(
        CacheParameterGroupName=name,
        ParameterNameValues=[{"ParameterName": "max_item_size", "ParameterValue": str(2 * MIB)}],
    )
    ec.modify_cache_cluster(CacheClusterId=cid, CacheParameterGroupName=name, ApplyImmediately=True)
    described = cluster(ec, cid)
    assert described["CacheParameterGroup"] == {
        "CacheParameterGroupName": name,
        "ParameterApplyStatus": "pending-reboot",
        "CacheNodeIdsToReboot": ["0001"],
    }
    assert described["CacheNodes"][0]["ParameterGroupStatus"] == "pending-reboot"
    assert memcached_settings(address)["item_size_max"] == str(MIB)  # not before the reboot

    ec.reboot_cache_cluster(CacheClusterId=cid, CacheNodeIdsToReboot=["0001"])
    eventually(lambda: memcached_settings(address).get("item_size_max") == str(2 * MIB), 60, "new item size")
    assert cluster(ec, cid)["CacheParameterGroup"]["ParameterApplyStatus"] == "in-sync"


def test_a_group_reaches_every_member_and_survives_a_kill(strata_factory, unique: str) -> None:
    server = strata_factory()
    ec = server.client("elasticache")
    name, gid = f"gp-{unique}"[:40], f"gpg-{unique}"[:40]
    ec.create_cache_parameter_group(
        CacheParameterGroupName=name, CacheParameterGroupFamily="redis7", Description="d"
    )
    ec.modify_cache_parameter_group(
        CacheParameterGroupName=name,
        ParameterNameValues=[{"ParameterName": "maxmemory-policy", "ParameterValue": "allkeys-lfu"}],
    )
    ec.create_replication_group(
        ReplicationGroupId=gid,
        ReplicationGroupDescription="d",
        NumCacheClusters=2,
        CacheParameterGroupName=name,
    )
    eventually(lambda: group(ec, gid)["Status"] == "available", 120, "group available")

    def policies() -> set[str]:
        members = group(ec, gid)["NodeGroups"][0]["NodeGroupMembers"]
        endpoints = [(m["ReadEndpoint"]["Address"], m["ReadEndpoint"]["Port"]) for m in members]
        return {redis.Redis(host=h, port=p).info("memory")["maxmemory_policy"] for h, p in endpoints}

    assert policies() == {"allkeys-lfu"}  # the replica too
    ec.modify_cache_parameter_group(
        CacheParameterGroupName=name,
        ParameterNameValues=[{"ParameterName": "maxmemory-policy", "ParameterValue": "volatile-ttl"}],
    )
    assert policies() == {"volatile-ttl"}
    member = group(ec, gid)["MemberClusters"][0]
    assert cluster(ec, member)["CacheParameterGroup"]["CacheParameterGroupName"] == name

    server.kill()  # the acknowledged change is on disk: the engines come back with it
    server.start()
    ec = server.client("elasticache")
    eventually(lambda: group(ec, gid)["Status"] == "available", 120, "group back")
    assert eventually(lambda: policies() == {"volatile-ttl"}, 60, "the group's value after the restart")
    assert parameters(ec, name)["maxmemory-policy"]["ParameterValue"] == "volatile-ttl"

    # a group whose cluster-enabled disagrees with the replication group's cluster mode is refused
    on = f"gpon-{unique}"[:40]
    ec.create_cache_parameter_group(
        CacheParameterGroupName=on, CacheParameterGroupFamily="redis7", Description="d"
    )
    ec.modify_cache_parameter_group(
        CacheParameterGroupName=on,
        ParameterNameValues=[{"ParameterName": "cluster-enabled", "ParameterValue": "yes"}],
    )
    assert (
        error_code(
            ec.modify_replication_group,
            ReplicationGroupId=gid,
            CacheParameterGroupName=on,
            ApplyImmediately=True,
        )
        == "InvalidParameterCombination"
    )
    assert (
        error_code(ec.create_cache_cluster, CacheClusterId=f"gpc-{unique}"[:40], CacheParameterGroupName=on)
        == "InvalidParameterCombination"
    )
    ec.delete_cache_parameter_group(CacheParameterGroupName=on)

    # the group goes back to its default parameter group: the defaults return on every member
    ec.modify_replication_group(
        ReplicationGroupId=gid, CacheParameterGroupName="default.redis7", ApplyImmediately=True
    )
    assert policies() == {"volatile-lru"}
    ec.delete_cache_parameter_group(CacheParameterGroupName=name)
