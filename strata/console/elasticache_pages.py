"""ElastiCache: replication groups and clusters with endpoints and roles, create a replication group
(cluster mode off: a primary and replicas; on: shards), test failover, and a key browser for Redis
(SCAN with a pattern, one page per request).

The key browser connects to the cache's own endpoint as any Redis client would, and only to an
endpoint that a DescribeReplicationGroups / DescribeCacheClusters call made as the signed-in
identity names: the console is never a proxy to an address the browser chooses. Caches with an
AUTH token or in-transit encryption are not browsed (the console does not hold their secrets).
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis

from strata.console.aws import AwsError, off_loop
from strata.console.web import Page, form_int, url
from strata.protocol.http import HttpResponse
from strata.services.elasticache.validate import DEFAULT_NODE_TYPE, NODE_MEMORY_MB, REDIS_LIKE

SCAN_COUNT = 100
MAX_SCANS_PER_PAGE = 50
PREVIEW = 200  # characters of a string value shown


async def caches(page: Page) -> HttpResponse:
    groups, clusters = await asyncio.gather(
        page.call("elasticache", "describe_replication_groups"),
        page.call("elasticache", "describe_cache_clusters", ShowCacheNodeInfo=True),
    )
    standalone = [c for c in clusters.get("CacheClusters", []) if not c.get("ReplicationGroupId")]
    return page.render(
        "elasticache.html",
        title="ElastiCache",
        groups=groups.get("ReplicationGroups", []),
        clusters=standalone,
        engines=REDIS_LIKE,
        node_types=sorted(NODE_MEMORY_MB),
        default_node_type=DEFAULT_NODE_TYPE,
    )


async def create_group(page: Page) -> HttpResponse:
    """CreateReplicationGroup: cluster mode off (NumCacheClusters: the primary and its replicas) or
    on (NumNodeGroups shards of ReplicasPerNodeGroup replicas each)."""
    form = page.form
    name = form.get("group", "").strip()
    params: dict[str, Any] = {
        "ReplicationGroupId": name,
        "ReplicationGroupDescription": form.get("description", "").strip() or name,
        "Engine": form.get("engine", ""),
        "CacheNodeType": form.get("node_type", ""),
        "AutomaticFailoverEnabled": form.get("failover") == "1",
        "MultiAZEnabled": form.get("multi_az") == "1",
        "AtRestEncryptionEnabled": form.get("at_rest") == "1",
    }
    if form.get("version", "").strip():
        params["EngineVersion"] = form["version"].strip()
    replicas = form_int(form, "replicas", "Replicas", 1)
    if form.get("cluster_mode") == "enabled":
        params["NumNodeGroups"] = form_int(form, "shards", "Shards", 1)
        params["ReplicasPerNodeGroup"] = replicas
    else:
        params["NumCacheClusters"] = replicas + 1
    done = f"Creating replication group {name}."
    return await page.act("elasticache", "create_replication_group", done, url("/elasticache"), **params)


async def fail_over(page: Page) -> HttpResponse:
    group, node_group = page.form.get("group", ""), page.form.get("node_group", "")
    return await page.act(
        "elasticache",
        "test_failover",
        f"Failing over node group {node_group} of {group}.",
        url("/elasticache"),
        ReplicationGroupId=group,
        NodeGroupId=node_group,
    )


async def _endpoint(page: Page, group: str, cluster: str) -> tuple[str, int, dict]:
    """(host, port, description) of the cache to browse, from a Describe call as the identity."""
    if not group and not cluster:
        raise AwsError("InvalidParameterValue", "Name a replication group or a cache cluster.")
    if group:
        groups = (await page.call("elasticache", "describe_replication_groups", ReplicationGroupId=group))[
            "ReplicationGroups"
        ]
        g = next((x for x in groups if x["ReplicationGroupId"] == group), None)
        ep = g and (g.get("ConfigurationEndpoint") or (g.get("NodeGroups") or [{}])[0].get("PrimaryEndpoint"))
        if not g or not ep:
            raise AwsError("InvalidReplicationGroupState", f"{group} has no endpoint yet.")
        return ep["Address"], int(ep["Port"]), g
    clusters = (
        await page.call(
            "elasticache", "describe_cache_clusters", CacheClusterId=cluster, ShowCacheNodeInfo=True
        )
    )["CacheClusters"]
    c = next((x for x in clusters if x["CacheClusterId"] == cluster), None)
    if c is None or c.get("Engine") not in ("redis", "valkey"):
        raise AwsError("InvalidParameterValue", "Only Redis and Valkey caches have a key browser.")
    ep = (c.get("CacheNodes") or [{}])[0].get("Endpoint")
    if not ep:
        raise AwsError("InvalidCacheClusterState", f"{cluster} has no endpoint yet.")
    return ep["Address"], int(ep["Port"]), c


def _scan(host: str, port: int, pattern: str, cursor: int) -> tuple[int, list[dict]]:
    client = redis.Redis(
        host=host, port=port, socket_timeout=10, socket_connect_timeout=10, decode_responses=False
    )
    try:
        # SCAN with a pattern may answer few or no keys per call: go on until a page is full or
        # the keyspace is done, within a bound of calls per page.
        keys: list[Any] = []
        for _ in range(MAX_SCANS_PER_PAGE):
            cursor, found = client.scan(cursor=cursor, match=pattern or "*", count=SCAN_COUNT)
            keys += found
            if cursor == 0 or len(keys) >= SCAN_COUNT:
                break
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.type(key)
            pipe.ttl(key)
        answers = pipe.execute()
        rows = []
        for i, key in enumerate(keys):
            kind = answers[2 * i].decode()
            preview = ""
            if kind == "string":
                value: Any = client.getrange(key, 0, PREVIEW)
                preview = value.decode("utf-8", "replace")
            rows.append(
                {
                    "key": key.decode("utf-8", "replace"),
                    "type": kind,
                    "ttl": answers[2 * i + 1],
                    "value": preview,
                }
            )
        return int(cursor), sorted(rows, key=lambda r: r["key"])
    finally:
        client.close()


async def keys(page: Page) -> HttpResponse:
    group, cluster = page.query.get("group", ""), page.query.get("cluster", "")
    host, port, described = await _endpoint(page, group, cluster)
    if described.get("AuthTokenEnabled") or described.get("TransitEncryptionEnabled"):
        raise AwsError(
            "NotBrowsable", "This cache needs an AUTH token or TLS: browse it with redis-cli or a client."
        )
    pattern = page.query.get("pattern", "")
    try:
        cursor = int(page.query.get("cursor") or 0)
        next_cursor, rows = await off_loop(_scan, host, port, pattern, cursor)
    except ValueError:
        raise AwsError("InvalidParameterValue", "The cursor is a number.") from None
    except redis.RedisError as e:
        raise AwsError("CacheUnreachable", f"{host}:{port} did not answer: {e}") from None
    return page.render(
        "elasticache_keys.html",
        title="Keys",
        group=group,
        cluster=cluster,
        endpoint=f"{host}:{port}",
        pattern=pattern,
        rows=rows,
        next_url=url("/elasticache/keys", group=group, cluster=cluster, pattern=pattern, cursor=next_cursor)
        if next_cursor
        else "",
    )


ROUTES = {
    ("GET", "/elasticache"): caches,
    ("POST", "/elasticache/create"): create_group,
    ("POST", "/elasticache/failover"): fail_over,
    ("GET", "/elasticache/keys"): keys,
}
