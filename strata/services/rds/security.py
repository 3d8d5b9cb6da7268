"""VpcSecurityGroupIds of DB instances and Aurora clusters: validated against EC2's security
groups, shown in Describe, and enforced on the endpoints (strata.services.ec2.security_groups).

As on AWS, an Aurora cluster's groups are its members' groups: each member instance carries them
(guarded on its own endpoint) and so do the cluster's writer and reader endpoints; they are set
with Create/ModifyDBCluster only (an instance of a cluster refuses its own)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from strata.protocol.errors import ServiceError
from strata.services.rds import model as m

if TYPE_CHECKING:
    from strata.services.ec2.network import Network
    from strata.services.ec2.security_groups import SecurityGroups
    from strata.services.rds.core import RDSCore


def custom_endpoints_of(core: RDSCore, cluster_id: str) -> list[dict]:
    """The custom endpoint records of a cluster (cluster_endpoints.py), guarded with it."""
    return [d for d in core.store.list_docs("cluster_endpoint") if d["cluster"] == cluster_id]


def custom_host(slot: int) -> str:
    """The loopback address of a cluster's custom endpoint in `slot` (0-4): 127.0.0.1 and .2 are
    its writer and reader endpoints."""
    return f"127.0.0.{3 + slot}"


def _groups(core: RDSCore) -> SecurityGroups | None:
    ec2 = core.runtime.peer("ec2")
    return getattr(ec2, "security_groups", None)


def vpc_groups(
    core: RDSCore, ids: list[str] | None, vpc: str | None = None, *, egress: bool = False
) -> list[str]:
    """The group ids of an instance or cluster in `vpc` (its DB subnet group's; None: the default
    VPC), that VPC's default group when none are given. A group of another VPC is refused with
    InvalidParameterCombination, as AWS does. `egress`: its engines' connections are filtered
    (`engine_cgroup`), so groups whose egress rules restrict may be carried."""
    sgs = _groups(core)
    if sgs is None:
        if ids:
            raise m.fault("InvalidParameterValue", "VpcSecurityGroupIds need Strata's EC2 service")
        return []
    try:
        return sgs.check_attachable(core.account, core.region, list(ids or []), vpc, egress=egress)
    except ServiceError as e:
        code = (
            "InvalidParameterCombination"
            if e.code == "InvalidParameterCombination"
            else "InvalidParameterValue"
        )
        raise m.fault(code, e.message) from None


def _key(core: RDSCore, doc: dict) -> str:
    return f"rds:instance:{core.store.engine_key(doc['id'])}"


def _network(core: RDSCore) -> Network | None:
    return getattr(core.runtime.peer("ec2"), "network", None)


def engine_cgroup(core: RDSCore, doc: dict) -> str:
    """The engine cgroup (strata.engines.cgroups) of an instance's nodes, whose connections its
    groups' egress rules filter. PostgreSQL replicas stream over unix sockets, so all its TCP
    connections are the user's; MariaDB replicas (a standby, a read replica, an Aurora MySQL
    reader) dial their source's node port on 127.0.0.1, so those ports are exempt (`node_ports`)."""
    return f"rds-{core.store.engine_key(doc['id'])}"


def node_ports(core: RDSCore, doc: dict) -> tuple[int, int] | None:
    """The port range Strata allocates nodes' ports from, which a MariaDB instance's engines may
    dial on 127.0.0.1 whatever its egress rules say (replication; the stable endpoint ports users
    reach are not exempt: strata.services.ec2.security_groups)."""
    return None if doc.get("kind") == "postgres" else (core.fleet.ports.low, core.fleet.ports.high)


def guard(core: RDSCore, doc: dict) -> None:
    """Enforce the instance's groups on its endpoint (and on its engines'
    outbound connections) from now on, and record the subnet of its zone in its DB subnet group
    as in use (DeleteSubnet: DependencyViolation) (blocking)."""
    sgs = _groups(core)
    if sgs is not None and doc.get("vpc_groups"):
        sgs.guard(
            _key(core, doc),
            core.account,
            core.region,
            [("127.0.0.1", doc["port"])],
            doc["vpc_groups"],
            cgroup=engine_cgroup(core, doc),
            node_ports=node_ports(core, doc),
        )
    net = _network(core)
    if net is not None:
        subnets = core._subnets_of(doc.get("subnet_group"))
        net.use(_key(core, doc), [s["id"] for s in subnets if s["az"] == doc["az"]][:1])


def unguard(core: RDSCore, doc: dict) -> None:
    sgs = _groups(core)
    if sgs is not None:
        sgs.unguard(_key(core, doc))
    net = _network(core)
    if net is not None:
        net.release(_key(core, doc))


def _cluster_key(core: RDSCore, cluster: dict) -> str:
    return f"rds:cluster:{core.store.engine_key(cluster['id'])}"


def guard_cluster(core: RDSCore, cluster: dict, reader_host: str) -> None:
    """Enforce the cluster's groups on its writer, reader and custom endpoints (blocking); a cluster
    recorded before clusters had groups has none here (its members keep their own)."""
    net = _network(core)
    if net is not None:  # a cluster's subnets: those of its DB subnet group
        subnets = core._subnets_of(cluster.get("subnet_group"))
        net.use(_cluster_key(core, cluster), [s["id"] for s in subnets])
    sgs = _groups(core)
    if sgs is not None and cluster.get("vpc_groups"):
        endpoints = [("127.0.0.1", cluster["port"]), (reader_host, cluster["port"])]
        endpoints += [
            (custom_host(ep["slot"]), cluster["port"]) for ep in custom_endpoints_of(core, cluster["id"])
        ]
        sgs.guard(
            _cluster_key(core, cluster),
            core.account,
            core.region,
            endpoints,
            cluster["vpc_groups"],
            own_addresses=False,
        )


def unguard_cluster(core: RDSCore, cluster: dict) -> None:
    sgs = _groups(core)
    if sgs is not None:
        sgs.unguard(_cluster_key(core, cluster))
    net = _network(core)
    if net is not None:
        net.release(_cluster_key(core, cluster))


def guard_old_records(core: RDSCore, reader_host: str) -> int:
    """At start-up: clusters and instances recorded before their groups were enforced carry none;
    give each the groups AWS gives every one (its VPC's default group; a cluster's member, its
    cluster's) and guard it, rather than leave its endpoints open until it is modified
    (blocking). How many were given groups."""
    if _groups(core) is None:
        return 0
    n = 0
    for kind in ("cluster", "instance"):
        for doc in core.store.list_docs(kind):
            if doc.get("vpc_groups") or doc.get("status") == "deleting":
                continue
            with core.store.acting_for(doc):
                if kind == "cluster":
                    doc["vpc_groups"] = vpc_groups(
                        core, None, core._subnet_group_vpc(doc.get("subnet_group"))
                    )
                    core.store.put_doc("cluster", doc["id"], doc)
                    guard_cluster(core, doc, reader_host)
                else:
                    cluster = core.store.get_doc("cluster", doc["cluster"]) if doc.get("cluster") else None
                    doc["vpc_groups"] = (
                        member_groups(core, cluster, None)
                        if cluster is not None
                        else vpc_groups(core, None, core._subnet_group_vpc(doc.get("subnet_group")))
                    )
                    core.store.put_doc("instance", doc["id"], doc)
                    guard(core, doc)
            n += 1
    return n


def member_groups(core: RDSCore, cluster: dict, ids: list[str] | None) -> list[str]:
    """The groups of a new member of `cluster`: the cluster's. Other groups given for it are
    refused, as AWS manages a member's groups through its cluster."""
    groups = cluster.get("vpc_groups") or vpc_groups(
        core,
        None,
        core._subnet_group_vpc(cluster.get("subnet_group")),
    )
    if ids and list(dict.fromkeys(ids)) != groups:
        raise m.fault(
            "InvalidParameterCombination",
            "The requested DB Instance will be a member of a DB Cluster: its VPC security groups "
            "are the DB Cluster's (set them with CreateDBCluster or ModifyDBCluster).",
        )
    return list(groups)


MANAGED_BY_CLUSTER = (  # AWS's text for ModifyDBInstance(VpcSecurityGroupIds) on a cluster's member
    "The specified DB Instance is a member of a cluster. "
    "Modify vpc security group for the DB Cluster using the ModifyDbCluster API"
)


def rendered(doc: dict) -> list[dict]:
    return [{"VpcSecurityGroupId": g, "Status": "active"} for g in doc.get("vpc_groups") or []]
