"""What an Availability Zone cut (FIS aws:network:disrupt-connectivity, scopes all and
availability-zone) severs between RDS nodes: the replication between a node in the cut zones and
its source in another zone, or the other way round.

- Nodes that replicate over TCP (MariaDB/MySQL/Aurora MySQL standbys and replicas) are cut by the
  network: `cut_cgroups` names the engine cgroups of every node in the cut zones, which
  strata.engines.partition severs from all other engines.
- PostgreSQL nodes stream over unix sockets, which nftables does not see; `cut_standbys` names
  the standbys and replicas on the other side of the cut from their source, whose replay the caller
  pauses (PgNode.pause_replay): what is committed across the cut is not seen there until it ends.
  The WAL itself still arrives, so a synchronous standby across the cut goes on acknowledging
  commits: the writer in the healthy zone commits as an RDS Multi-AZ primary does once RDS has
  given up on its unreachable standby, without that wait.

A resource that is not `available` (failing over, rebooting, building a standby) is left out of
the cut while it is so, and so is its source: AWS's failovers do not depend on the partitioned
network (a Multi-AZ standby has every acknowledged write through its synchronous storage, Aurora's
readers share the cluster volume), while Strata's hand over through the engines' own replication.
Cross-region replicas and global clusters are left out (their source is not in this region's zones).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from strata.engines.postgres import PgNode

if TYPE_CHECKING:
    from strata.services.rds.core import RDSCore

NodeKey = tuple[str, str]  # (instance engine key, node name)


def _upstream(core: RDSCore, doc: dict, docs: dict[str, dict]) -> dict | None:
    """The instance whose primary node `doc`'s primary replicates from (None: none in this region)."""
    if doc.get("cluster"):
        c = core.store.get_doc("cluster", doc["cluster"])
        if not c or c.get("writer") == doc["id"] or c.get("global_role") == "secondary":
            return None
        if c.get("status") != "available":
            return None
        return docs.get(c.get("writer") or "")
    source = doc.get("source")
    return docs.get(source) if source and not source.startswith("arn:") else None


def _settled(doc: dict | None) -> bool:
    return doc is not None and doc.get("status") == "available"


def cut_cgroups(core: RDSCore, zones: list[str]) -> list[str]:
    """The engine cgroups of the settled instances' nodes in `zones` (an instance of a cluster that
    is failing over is not settled)."""
    out = []
    clusters = {c["id"]: c for c in core.store.list_docs("cluster")}
    for doc in core.store.list_docs("instance"):
        if not _settled(doc) or (doc.get("cluster") and not _settled(clusters.get(doc["cluster"]))):
            continue
        for name, info in (doc.get("nodes") or {}).items():
            if info.get("az") in zones:
                out.append(core.fleet.node_cgroup(doc, name))
    return out


def cut_standbys(core: RDSCore, zones: list[str]) -> dict[NodeKey, PgNode]:
    """The PostgreSQL standbys and replicas whose source node is on the other side of the cut."""
    docs = {d["id"]: d for d in core.store.list_docs("instance")}
    out: dict[NodeKey, PgNode] = {}

    def across(a: str | None, b: str | None) -> bool:
        return (a in zones) != (b in zones)

    for doc in docs.values():
        if doc.get("kind") != "postgres" or not _settled(doc) or core.fleet.locked(doc["id"]):
            continue  # (a locked encrypted instance runs no engine)
        nodes = doc.get("nodes") or {}
        primary = nodes.get(doc.get("primary") or "")
        if primary is None:
            continue
        for name, info in nodes.items():  # a Multi-AZ standby follows its own primary
            if info.get("role") == "standby" and across(info.get("az"), primary.get("az")):
                out[(core.fleet.key(doc["id"]), name)] = core.fleet.node(doc, name)  # type: ignore[assignment]
        up = _upstream(core, doc, docs)
        if _settled(up):
            up_primary = (up.get("nodes") or {}).get(up.get("primary") or "")  # type: ignore[union-attr]
            if up_primary is not None and across(primary.get("az"), up_primary.get("az")):
                out[(core.fleet.key(doc["id"]), doc["primary"])] = core.fleet.primary(doc)  # type: ignore[assignment]
    return out
