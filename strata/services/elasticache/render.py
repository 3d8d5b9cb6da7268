"""Stored records -> the ElastiCache output shapes (CacheCluster, ReplicationGroup, Snapshot).

Records keep Strata's own compact fields; everything AWS derives (ARNs, endpoints, member lists,
roles, statuses) is derived here, so each fact is stored once.
"""

from __future__ import annotations

from datetime import datetime

from strata.services.elasticache import security
from strata.services.elasticache.cache_parameters import family_of
from strata.services.elasticache.nodes import PRIMARY, READER


def ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def arn(ctx_region: str, account: str, kind: str, name: str) -> str:
    return f"arn:aws:elasticache:{ctx_region}:{account}:{kind}:{name}"


def endpoint(address: str, port: int) -> dict:
    return {"Address": address, "Port": port}


def default_parameter_group(dep: dict) -> str:
    """The default parameter group of a deployment's engine version (cluster mode: .cluster.on)."""
    family = family_of(dep["engine"], dep["engine_version"])
    return f"default.{family}" + (".cluster.on" if dep.get("cluster_mode") else "")


def parameter_group_name(dep: dict) -> str:
    return dep.get("param_group") or default_parameter_group(dep)


def render_cluster(
    cluster: dict, dep: dict, region: str, account: str, show_nodes: bool, pending: list[str] | None = None
) -> dict:
    """A CacheCluster; `dep` holds the deployment settings (the cluster itself, or its group);
    `pending` names the nodes whose static parameters wait for a reboot."""
    nodes = cluster["nodes"]
    azs = {n["az"] for n in nodes}
    pending = pending or []
    out: dict = {
        "CacheClusterId": cluster["id"],
        "CacheNodeType": dep["node_type"],
        "Engine": dep["engine"],
        "EngineVersion": dep["engine_version"],
        "CacheClusterStatus": cluster["status"],
        "NumCacheNodes": len(nodes),
        "PreferredAvailabilityZone": azs.pop() if len(azs) == 1 else "Multiple",
        "CacheClusterCreateTime": ts(cluster["created"]),
        "PreferredMaintenanceWindow": dep.get("maintenance_window", "sun:23:00-mon:01:30"),
        "PendingModifiedValues": {k: v for k, v in (dep.get("pending") or {}).items() if v not in (None, [])},
        "CacheSecurityGroups": [],
        "CacheParameterGroup": {
            "CacheParameterGroupName": parameter_group_name(dep),
            "ParameterApplyStatus": "pending-reboot" if pending else "in-sync",
            "CacheNodeIdsToReboot": list(pending),
        },
        "CacheSubnetGroupName": dep.get("subnet_group") or "default",
        "AutoMinorVersionUpgrade": True,
        "SecurityGroups": security.rendered(dep),
        "AuthTokenEnabled": bool(dep.get("auth")),
        "TransitEncryptionEnabled": bool(dep.get("transit")),
        "AtRestEncryptionEnabled": bool(dep.get("at_rest")),
        "ARN": arn(region, account, "cluster", cluster["id"]),
        "ReplicationGroupLogDeliveryEnabled": False,
        "LogDeliveryConfigurations": [],
        "NetworkType": "ipv4",
        "IpDiscovery": "ipv4",
    }
    if dep.get("auth_modified"):
        out["AuthTokenLastModifiedDate"] = ts(dep["auth_modified"])
    if dep.get("transit"):
        out["TransitEncryptionMode"] = "required"
    if dep["engine"] != "memcached":
        out["SnapshotRetentionLimit"] = dep.get("retention", 0)
        out["SnapshotWindow"] = dep.get("window", "05:00-06:00")
    else:
        out["ConfigurationEndpoint"] = endpoint(PRIMARY, dep["port"])
        out["ClientDownloadLandingPage"] = "https://console.aws.amazon.com/elasticache/home#client-download:"
    if cluster.get("group"):
        out["ReplicationGroupId"] = cluster["group"]
    if show_nodes:
        out["CacheNodes"] = [
            {
                "CacheNodeId": n["id"],
                "CacheNodeStatus": n.get("status", "available"),
                "CacheNodeCreateTime": ts(n["created"]),
                "Endpoint": endpoint(n["address"], dep["port"]),
                "ParameterGroupStatus": "pending-reboot" if n["id"] in pending else "in-sync",
                "CustomerAvailabilityZone": n["az"],
            }
            for n in nodes
        ]
    return out


def render_group(
    group: dict, members: dict[str, dict], roles: dict[str, str], region: str, account: str
) -> dict:
    """A ReplicationGroup; `members` maps member cluster id -> record, `roles` id -> primary/replica."""
    port = group["port"]
    cluster_mode = bool(group.get("cluster_mode"))
    node_groups = []
    for ng in group["node_groups"]:
        entry: dict = {
            "NodeGroupId": ng["id"],
            "Status": group["status"] if group["status"] != "deleting" else "deleting",
        }
        if ng.get("slots"):
            entry["Slots"] = ng["slots"]
        if not cluster_mode:
            entry["PrimaryEndpoint"] = endpoint(PRIMARY, port)
            entry["ReaderEndpoint"] = endpoint(READER, port)
        entry["NodeGroupMembers"] = []
        for cid in ng["members"]:
            member = members.get(cid)
            if member is None:
                continue
            m: dict = {
                "CacheClusterId": cid,
                "CacheNodeId": "0001",
                "ReadEndpoint": endpoint(member["nodes"][0]["address"], port),
                "PreferredAvailabilityZone": member["az"],
            }
            if not cluster_mode and cid in roles:
                m["CurrentRole"] = roles[cid]
            entry["NodeGroupMembers"].append(m)
        node_groups.append(entry)
    azs = {m["az"] for m in members.values()}
    out: dict = {
        "ReplicationGroupId": group["id"],
        "Description": group["description"],
        "Status": group["status"],
        "PendingModifiedValues": {},
        "MemberClusters": [cid for ng in group["node_groups"] for cid in ng["members"]],
        "NodeGroups": node_groups,
        "AutomaticFailover": "enabled" if group.get("automatic_failover") else "disabled",
        "MultiAZ": "enabled" if group.get("multi_az") and len(azs) > 1 else "disabled",
        "SnapshotRetentionLimit": group.get("retention", 0),
        "SnapshotWindow": group.get("window", "05:00-06:00"),
        "ClusterEnabled": cluster_mode,
        "CacheNodeType": group["node_type"],
        "AuthTokenEnabled": bool(group.get("auth")),
        "TransitEncryptionEnabled": bool(group.get("transit")),
        "AtRestEncryptionEnabled": bool(group.get("at_rest")),
        "MemberClustersOutpostArns": [],
        "ARN": arn(region, account, "replicationgroup", group["id"]),
        "UserGroupIds": list(group.get("user_groups") or []),
        "LogDeliveryConfigurations": [],
        "ReplicationGroupCreateTime": ts(group["created"]),
        "DataTiering": "disabled",
        "AutoMinorVersionUpgrade": True,
        "NetworkType": "ipv4",
        "IpDiscovery": "ipv4",
        "ClusterMode": "enabled" if cluster_mode else "disabled",
        "Engine": group["engine"],
    }
    if group.get("snapshotting_cluster"):
        out["SnapshottingClusterId"] = group["snapshotting_cluster"]
    if cluster_mode:
        out["ConfigurationEndpoint"] = endpoint(PRIMARY, port)
    if group.get("auth_modified"):
        out["AuthTokenLastModifiedDate"] = ts(group["auth_modified"])
    if group.get("transit"):
        out["TransitEncryptionMode"] = "required"
    if group.get("at_rest"):
        out["KmsKeyId"] = group.get("kms_key_id") or ""
        if not out["KmsKeyId"]:
            del out["KmsKeyId"]
    return out


def render_snapshot(snap: dict, region: str, account: str) -> dict:
    out = {k: v for k, v in snap.items() if not k.startswith("_")}
    out["ARN"] = arn(region, account, "snapshot", snap["SnapshotName"])
    if "CacheClusterCreateTime" in out:
        out["CacheClusterCreateTime"] = ts(out["CacheClusterCreateTime"])
    out["NodeSnapshots"] = [
        {
            **ns,
            "CacheNodeCreateTime": ts(ns.get("CacheNodeCreateTime")),
            "SnapshotCreateTime": ts(ns.get("SnapshotCreateTime")),
        }
        for ns in snap.get("NodeSnapshots", [])
    ]
    return out
