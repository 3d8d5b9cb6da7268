"""Node changes held for the maintenance window.

ModifyCacheCluster and ModifyReplicationGroup with ApplyImmediately false (AWS's default) keep a
new CacheNodeType, and a Memcached cluster's new NumCacheNodes (with CacheNodeIdsToRemove), in the
deployment's record (`pending`, shown as each cache cluster's PendingModifiedValues) until its
PreferredMaintenanceWindow next opens on the simulated clock (the `elasticache.maintenance`
rule), or until a later modification with ApplyImmediately true applies them with its own. Other
settings apply at once either way (security and parameter groups, snapshot settings, AUTH
tokens, failover settings); an EngineVersion other than the running one is refused, so nothing of
it waits.
"""

from __future__ import annotations

import logging

from strata.protocol.errors import ServiceError
from strata.services.base import run_blocking
from strata.services.elasticache import events
from strata.services.elasticache.core import ElastiCacheCore
from strata.services.elasticache.nodes import PRIMARY
from strata.sim.clock import clock
from strata.sim.windows import latest_weekly_window_start

log = logging.getLogger("strata.elasticache")
DEFAULT_WINDOW = "sun:23:00-mon:01:30"


def _current(dep: dict, member: str) -> object:
    return dep["node_type"] if member == "CacheNodeType" else len(dep.get("nodes") or [])


def hold(dep: dict, values: dict, apply_immediately: bool) -> dict:
    """Record in `dep` (a standalone cluster or a replication group) what waits for the
    maintenance window; the changes to apply now. `values`: checked CacheNodeType, NumCacheNodes
    (+ CacheNodeIdsToRemove). With ApplyImmediately, the held changes apply with the request's
    (its own win); without, asking for what runs cancels a held change."""
    pending = dict(dep.get("pending") or {})
    if apply_immediately:
        dep.pop("pending", None)
        dep.pop("pending_since", None)
        if "NumCacheNodes" in values:
            pending.pop("CacheNodeIdsToRemove", None)
        return {**pending, **values}
    for member in ("CacheNodeType", "NumCacheNodes"):
        if member not in values:
            continue
        if values[member] == _current(dep, member):
            pending.pop(member, None)
            if member == "NumCacheNodes":
                pending.pop("CacheNodeIdsToRemove", None)
        else:
            pending[member] = values[member]
            if member == "NumCacheNodes":
                pending["CacheNodeIdsToRemove"] = values.get("CacheNodeIdsToRemove") or []
    if pending:
        dep["pending"] = pending
        dep.setdefault("pending_since", clock.time())
    else:
        dep.pop("pending", None)
        dep.pop("pending_since", None)
    return {}


class MaintenanceOperations(ElastiCacheCore):
    async def _apply_cluster_changes(self, doc: dict, now: dict, region: str) -> None:
        """Apply checked node changes to a standalone cluster's record and engines."""
        count = now.get("NumCacheNodes")
        if count is not None and count != len(doc["nodes"]):
            self._meter_usage(doc)
            before = len(doc["nodes"])
            await self._resize_memcached(doc, count, now.get("CacheNodeIdsToRemove") or [], region)  # type: ignore[attr-defined]  # provider
            events.record(
                self.store,
                doc["id"],
                "cache-cluster",
                f"Finished modifying number of nodes from {before} to {count}",
            )
            doc["config_version"] = doc.get("config_version", 1) + 1  # what Auto Discovery reports
            await self._open_discovery(doc, PRIMARY)  # type: ignore[attr-defined]  # provider
        if now.get("CacheNodeType"):
            doc["node_type"] = now["CacheNodeType"]
            await run_blocking(self._apply_node_type, doc, [doc])  # type: ignore[attr-defined]  # provider
            events.record(
                self.store,
                doc["id"],
                "cache-cluster",
                f"Finished modifying cache node type to {doc['node_type']}",
            )

    async def _maintenance_rule(self, since: float, until: float) -> dict[str, int]:
        """The scheduler's `elasticache.maintenance` rule: apply a deployment's held changes once
        its weekly maintenance window has opened after they were held (decided from the record
        and `until` only: a second run to the same instant, or after a restart, does nothing
        new). A deployment busy or not available keeps them ("deferred") for a later run."""
        counts = {"applied": 0, "deferred": 0}
        deployments = [
            ("cluster", d) for d in self.store.list_docs("cluster") if not d.get("group") and d.get("pending")
        ]
        deployments += [("group", g) for g in self.store.list_docs("group") if g.get("pending")]
        for kind, dep in deployments:
            with self.store.acting_for(dep):
                try:
                    opened = latest_weekly_window_start(
                        dep.get("maintenance_window") or DEFAULT_WINDOW, until
                    )
                except ValueError:  # a window recorded unchecked that names no weekly time
                    continue
                if opened <= dep.get("pending_since", 0.0):
                    continue
                lock = self._resource_lock(dep["id"])
                if lock.locked() or dep["status"] != "available":
                    counts["deferred"] += 1
                    continue
                async with lock:
                    fresh = self.store.get_doc(kind, dep["id"])
                    if fresh is None or not fresh.get("pending"):
                        continue
                    now = hold(fresh, {}, True)
                    if kind == "cluster":
                        try:
                            await self._apply_cluster_changes(fresh, now, self.store.region())
                        except ServiceError as e:  # checked when held; the nodes changed since
                            log.warning("held change of %s dropped: %s", fresh["id"], e)
                            counts["failed"] = counts.get("failed", 0) + 1
                        self.store.put_doc("cluster", fresh["id"], fresh)
                    else:
                        if now.get("CacheNodeType"):
                            fresh["node_type"] = now["CacheNodeType"]
                            members = list(self._members(fresh).values())  # type: ignore[attr-defined]  # provider
                            await run_blocking(self._apply_node_type, fresh, members)  # type: ignore[attr-defined]  # provider
                            events.record(
                                self.store,
                                fresh["id"],
                                "replication-group",
                                f"Finished modifying cache node type to {fresh['node_type']}",
                            )
                        self._save_group(fresh)  # type: ignore[attr-defined]  # provider
                    counts["applied"] += 1
        return counts
