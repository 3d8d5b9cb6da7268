"""What ElastiCache offers on this server: engine versions, node-type changes, service updates.

DescribeCacheEngineVersions lists the versions Strata really runs (the installed Redis OSS,
Valkey and Memcached servers; the TLS-capable build when it differs), each with the parameter
group family a cache of that version gets, so what it lists is exactly what CreateCacheCluster
and CreateReplicationGroup accept. ListAllowedNodeTypeModifications answers from the node types
whose memory Strata knows (validate.NODE_MEMORY_MB), larger ones up and smaller ones down, as
ModifyCacheCluster/ModifyReplicationGroup accept them. Strata never publishes service updates, so
DescribeServiceUpdates and DescribeUpdateActions are empty, as they are on AWS between updates.
"""

from __future__ import annotations

from strata.context import RequestContext
from strata.engines.memcached import binary as memcached_binary
from strata.engines.process import EngineError
from strata.engines.redis import server_binary
from strata.services.elasticache import cache_parameters as cp
from strata.services.elasticache import validate as v
from strata.services.elasticache.core import ElastiCacheCore, paginate
from strata.services.elasticache.errors import combination

_DESCRIPTIONS = {"redis": "Redis", "valkey": "Valkey", "memcached": "Memcached"}


def installed_versions() -> list[tuple[str, str]]:
    """(engine, version) of every server binary Strata can start, engines in AWS's order."""
    found: list[tuple[str, str]] = []
    for engine in ("memcached", "redis", "valkey"):
        if engine == "memcached":
            versions = [memcached_binary()[1]]
        else:
            versions = []
            for tls in (False, True):
                try:
                    versions.append(server_binary(engine, tls=tls).version)
                except EngineError:
                    continue
        for version in dict.fromkeys(versions):
            found.append((engine, version))
    return found


class OfferingOperations(ElastiCacheCore):
    def describe_cache_engine_versions(self, ctx: RequestContext, req: dict) -> dict:
        rows = []
        for engine, version in installed_versions():
            if req.get("Engine") and req["Engine"] != engine:
                continue
            if req.get("EngineVersion"):
                want = [p for p in req["EngineVersion"].split(".") if p != "x"]
                if want != version.split(".")[: len(want)]:
                    continue
            family = cp.family_of(engine, version)
            if req.get("CacheParameterGroupFamily") and req["CacheParameterGroupFamily"] != family:
                continue
            rows.append(
                {
                    "id": f"{engine} {version}",
                    "Engine": engine,
                    "EngineVersion": version,
                    "CacheParameterGroupFamily": family,
                    "CacheEngineDescription": _DESCRIPTIONS[engine],
                    "CacheEngineVersionDescription": f"{_DESCRIPTIONS[engine]} {version}",
                }
            )
        if req.get("DefaultOnly"):  # one (the newest) version per engine
            newest: dict[str, dict] = {}
            for row in rows:
                key = tuple(int(p) for p in row["EngineVersion"].split(".") if p.isdigit())
                best = newest.get(row["Engine"])
                if best is None or key > tuple(
                    int(p) for p in best["EngineVersion"].split(".") if p.isdigit()
                ):
                    newest[row["Engine"]] = row
            rows = list(newest.values())
        page, marker = paginate(rows, req)
        out: dict = {"CacheEngineVersions": [{k: r[k] for k in r if k != "id"} for r in page]}
        if marker is not None:
            out["Marker"] = marker
        return out

    def list_allowed_node_type_modifications(self, ctx: RequestContext, req: dict) -> dict:
        if req.get("ReplicationGroupId"):
            current = self._group_doc(req["ReplicationGroupId"])["node_type"]
        elif req.get("CacheClusterId"):
            current = self._cluster_doc(req["CacheClusterId"])["node_type"]
        else:
            raise combination("Either CacheClusterId or ReplicationGroupId must be specified.")
        memory = v.node_memory_mb(current)
        known = sorted(v.NODE_MEMORY_MB, key=lambda t: (v.NODE_MEMORY_MB[t], t))
        return {
            "ScaleUpModifications": [t for t in known if v.NODE_MEMORY_MB[t] > memory],
            "ScaleDownModifications": [t for t in known if v.NODE_MEMORY_MB[t] < memory],
        }

    def describe_service_updates(self, ctx: RequestContext, req: dict) -> dict:
        paginate([], req)  # MaxRecords is checked as for every listing
        return {"ServiceUpdates": []}

    def describe_update_actions(self, ctx: RequestContext, req: dict) -> dict:
        paginate([], req)
        for group in req.get("ReplicationGroupIds") or []:
            self._group_doc(group)
        for cluster in req.get("CacheClusterIds") or []:
            self._cluster_doc(cluster)
        return {"UpdateActions": []}
