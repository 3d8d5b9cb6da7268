"""Snapshots: the engine's own RDB files, taken with BGSAVE, kept under the service's data directory.

A snapshot holds one RDB file per node group (`<data>/snapshots/<name>/shard-<n>.rdb`) plus its
record (the AWS Snapshot shape). Restoring places the file as a new primary's dump.rdb before the
engine starts, so the engine loads it itself. Automatic snapshots are taken in the daily
SnapshotWindow of the simulated clock for deployments with a SnapshotRetentionLimit, and pruned
past that many days: the scheduler's `elasticache.snapshots` rule (`_snapshot_rule`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from strata.context import RequestContext
from strata.engines.process import ENGINE_USER, EngineError, chown_tree
from strata.engines.redis import RedisServer, drop_append_only
from strata.protocol.errors import ServiceError
from strata.services.base import run_blocking
from strata.services.elasticache import events
from strata.services.elasticache.backup_storage import meter_backup_storage
from strata.services.elasticache.core import ElastiCacheCore
from strata.services.elasticache.errors import fault, invalid
from strata.services.elasticache.render import parameter_group_name, render_snapshot
from strata.services.elasticache.validate import REDIS_LIKE, identifier
from strata.services.elasticache.validate import tags as validate_tags
from strata.services.owned_docs import OwnedDocs
from strata.sim.clock import clock
from strata.sim.meter import meter
from strata.sim.windows import latest_window_start

if TYPE_CHECKING:
    from strata.services.elasticache.provider import ElastiCacheProvider

log = logging.getLogger("strata.elasticache")
DAY = timedelta(days=1)


def _copy_durably(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(".tmp")
    with open(src, "rb") as fin, open(tmp, "wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
        fout.flush()
        os.fsync(fout.fileno())
    os.replace(tmp, dst)


def _major(version: str) -> int:
    try:
        return int(version.split(".")[0])
    except ValueError:
        return 0


class SnapshotOperations(ElastiCacheCore):
    """Snapshot operations and helpers (a mixin of ElastiCacheProvider)."""

    def _snapshot_dir(self: ElastiCacheProvider, name: str) -> Path:
        """Where a snapshot's files are (per account: another account's snapshot of the name has its own);
        in a volume of its own when it holds data encrypted at rest (at_rest.py)."""
        volume = self._snapshot_volume(name)
        if self.volumes.exists(volume):
            return self.volumes.files(volume)
        return self.snapshot_root / self.store.engine_key(name)

    def _snapshot_doc(self: ElastiCacheProvider, name: str | None) -> dict:
        doc = self.store.get_doc("snapshot", name or "")
        if doc is None:
            raise fault("SnapshotNotFoundFault", f"Snapshot {name} not found.")
        return doc

    def _snapshot_for_restore(
        self: ElastiCacheProvider, name: str | None, engine: str, shards: int, version: str = ""
    ) -> dict | None:
        """The snapshot a create restores from (validated against the new deployment), or None."""
        if not name:
            return None
        snap = self._snapshot_doc(name)
        if engine not in REDIS_LIKE:
            raise fault(
                "InvalidParameterCombinationException",
                "Snapshots are only supported for Valkey and Redis OSS.",
            )
        if snap["SnapshotStatus"] != "available":
            raise fault("InvalidSnapshotStateFault", f"Snapshot {name} is not available.")
        if version and _major(snap["EngineVersion"]) > _major(version):
            # an RDB file is readable by its own engine version and newer ones, never by older ones
            raise fault(
                "InvalidParameterCombinationException",
                f"Snapshot {name} was taken with {snap['Engine']} {snap['EngineVersion']}; it cannot be "
                f"restored into {engine} {version}.",
            )
        if len(snap["_files"]) != shards:
            raise fault(
                "InvalidParameterCombinationException",
                f"Snapshot {name} has {len(snap['_files'])} node group(s); the new deployment has {shards}.",
            )
        return snap

    def _place_snapshot_file(self: ElastiCacheProvider, snap: dict, shard: int, data_dir: Path) -> None:
        """Put a snapshot's RDB for node group `shard` where a new engine will load it."""
        target = Path(data_dir) / "dump.rdb"
        drop_append_only(data_dir)
        _copy_durably(self._snapshot_dir(snap["SnapshotName"]) / snap["_files"][shard], target)
        chown_tree(Path(data_dir), ENGINE_USER)

    # -- taking snapshots ---------------------------------------------------------------------------

    def _sources(
        self: ElastiCacheProvider, cluster: dict | None, group: dict | None
    ) -> list[tuple[str, RedisServer]]:
        """(node group id, server to BGSAVE) for each node group of what is being snapshotted."""
        if cluster is not None:
            return [(cluster.get("node_group") or "0001", self.engines.redis(cluster["id"]))]
        assert group is not None
        roles = self._roles(group)
        out = []
        for ng in group["node_groups"]:
            chosen = group.get("snapshotting_cluster") if not group.get("cluster_mode") else None
            if not chosen or chosen not in ng["members"] or not self._alive(chosen):
                chosen = next(
                    (c for c in ng["members"] if roles.get(c) == "primary" and self._alive(c)), None
                )
            if chosen is None:
                raise fault(
                    "InvalidReplicationGroupStateFault",
                    f"Node group {ng['id']} has no live node to snapshot.",
                )
            out.append((ng["id"], self.engines.redis(chosen)))
        return out

    async def _take_snapshot(
        self: ElastiCacheProvider,
        name: str,
        source: str,
        *,
        cluster: dict | None = None,
        group: dict | None = None,
        tags: list | None = None,
        at: datetime | None = None,
        kms_arn: str | None = None,
    ) -> dict:
        """BGSAVE each node group and keep the files; returns the stored record. Caller holds the
        lock. `at` stamps it (an automatic snapshot: its window's opening); else now. The files are
        encrypted at rest under `kms_arn`, or the deployment's key when it is encrypted."""
        name = identifier(name, "SnapshotName", 255) if source == "manual" else name
        if self.store.get_doc("snapshot", name) is not None:
            raise fault("SnapshotAlreadyExistsFault", f"Snapshot {name} already exists.")
        dep = group if group is not None else self._deployment_of(cluster)  # type: ignore[arg-type]
        if dep["engine"] not in REDIS_LIKE:
            raise fault(
                "SnapshotFeatureNotSupportedFault", "Snapshots are not supported for memcached clusters."
            )
        sources = self._sources(cluster, group)
        when = (at or clock.now()).isoformat()
        doc = self._snapshot_record(name, source, dep, cluster, group, when)
        doc["_tags"] = validate_tags(tags)
        self.store.put_doc("snapshot", name, doc)
        try:
            await run_blocking(self._encrypt_snapshot, doc, kms_arn or dep.get("_kms_arn"))
            self.store.put_doc("snapshot", name, doc)
            files, node_snaps = await run_blocking(self._save_files, name, sources, dep, when)
        except ServiceError:  # KMS would not make the snapshot's key
            await run_blocking(self._drop_snapshot, name)
            raise
        except (EngineError, OSError) as e:
            await run_blocking(self._drop_snapshot, name)
            raise fault("InvalidCacheClusterStateFault", f"The snapshot could not be taken: {e}") from e
        doc["_files"], doc["NodeSnapshots"], doc["SnapshotStatus"] = files, node_snaps, "available"
        self.store.put_doc("snapshot", name, doc)
        meter.record(
            "elasticache",
            "SnapshotBytes",
            sum(int(n["CacheSize"].split()[0]) for n in node_snaps) * 1024 * 1024,
            "byte",
            snapshot=name,
        )
        _snapshot_event(self.store, doc, f"Snapshot succeeded for snapshot with ID '{name}'")
        return doc

    def _save_files(
        self: ElastiCacheProvider, name: str, sources: list[tuple[str, RedisServer]], dep: dict, when: str
    ) -> tuple[list[str], list[dict]]:
        files, node_snaps = [], []
        for i, (ng_id, server) in enumerate(sources):
            rdb = server.snapshot()
            fname = f"shard-{i + 1:04d}.rdb"
            _copy_durably(rdb, self._snapshot_dir(name) / fname)
            files.append(fname)
            cid, nid = server.name.split("/")
            member = self.store.get_doc("cluster", cid) or {}
            ng = next((n for n in dep.get("node_groups", []) if n["id"] == ng_id), None)
            entry: dict = {
                "CacheNodeId": nid,
                "CacheSize": f"{max(1, rdb.stat().st_size // (1024 * 1024))} MB",
                "CacheNodeCreateTime": member.get("created") or dep["created"],
                "SnapshotCreateTime": when,
            }
            if dep.get("node_groups"):
                entry["NodeGroupId"] = ng_id
                entry["NodeGroupConfiguration"] = {
                    "NodeGroupId": ng_id,
                    "ReplicaCount": len(ng["members"]) - 1 if ng else 0,
                    **({"Slots": ng["slots"]} if ng and ng.get("slots") else {}),
                }
            else:
                entry["CacheClusterId"] = cid
            node_snaps.append(entry)
        return files, node_snaps

    def _snapshot_record(
        self: ElastiCacheProvider,
        name: str,
        source: str,
        dep: dict,
        cluster: dict | None,
        group: dict | None,
        when: str,
    ) -> dict:
        doc: dict = {
            "SnapshotName": name,
            "SnapshotStatus": "creating",
            "SnapshotSource": source,
            "CacheNodeType": dep["node_type"],
            "Engine": dep["engine"],
            "EngineVersion": dep["engine_version"],
            "PreferredMaintenanceWindow": dep.get("maintenance_window", "sun:23:00-mon:01:30"),
            "Port": dep["port"],
            "CacheParameterGroupName": parameter_group_name(dep),
            "CacheSubnetGroupName": dep.get("subnet_group") or "default",
            "VpcId": "vpc-strata",
            "AutoMinorVersionUpgrade": True,
            "SnapshotRetentionLimit": dep.get("retention", 0),
            "SnapshotWindow": dep.get("window", "05:00-06:00"),
            "NodeSnapshots": [],
            "DataTiering": "disabled",
            "_files": [],
            "_created": when,
        }
        if group is not None:
            doc.update(
                {
                    "ReplicationGroupId": group["id"],
                    "ReplicationGroupDescription": group["description"],
                    "NumNodeGroups": len(group["node_groups"]),
                    "AutomaticFailover": "enabled" if group.get("automatic_failover") else "disabled",
                }
            )
        else:
            assert cluster is not None
            doc.update(
                {
                    "CacheClusterId": cluster["id"],
                    "NumCacheNodes": len(cluster["nodes"]),
                    "PreferredAvailabilityZone": cluster["az"],
                    "CacheClusterCreateTime": cluster["created"],
                }
            )
            if cluster.get("group"):
                doc["ReplicationGroupId"] = cluster["group"]
        return doc

    # -- operations -------------------------------------------------------------------------------------

    async def create_snapshot(self: ElastiCacheProvider, ctx: RequestContext, req: dict) -> dict:
        if bool(req.get("ReplicationGroupId")) == bool(req.get("CacheClusterId")):
            raise fault(
                "InvalidParameterCombinationException",
                "Exactly one of ReplicationGroupId and CacheClusterId must be given.",
            )
        kms_arn = None
        if req.get("KmsKeyId"):  # the snapshot is encrypted at rest under it
            self._refuse_unsupported()
            kms_arn = self._data_keys.resolve(ctx.account_id, ctx.region, req["KmsKeyId"])
        if req.get("ReplicationGroupId"):
            group = self._group_doc(req["ReplicationGroupId"])
            async with self._resource_lock(group["id"]):
                group = self._group_doc(group["id"])
                self._available(group)
                doc = await self._take_snapshot(
                    req.get("SnapshotName") or "",
                    "manual",
                    group=group,
                    tags=req.get("Tags"),
                    kms_arn=kms_arn,
                )
        else:
            cluster = self._cluster_doc(req["CacheClusterId"])
            async with self._resource_lock(cluster.get("group") or cluster["id"]):
                if cluster["status"] != "available":
                    raise fault(
                        "InvalidCacheClusterStateFault", f"Cache cluster {cluster['id']} is not available."
                    )
                doc = await self._take_snapshot(
                    req.get("SnapshotName") or "",
                    "manual",
                    cluster=cluster,
                    tags=req.get("Tags"),
                    kms_arn=kms_arn,
                )
        return {
            "Snapshot": render_snapshot({**doc, "SnapshotStatus": "creating"}, ctx.region, ctx.account_id)
        }

    def describe_snapshots(self: ElastiCacheProvider, ctx: RequestContext, req: dict) -> dict:
        from strata.services.elasticache.core import paginate

        if req.get("SnapshotName"):
            docs = [self._snapshot_doc(req["SnapshotName"])]
        else:
            docs = self.store.list_docs("snapshot")
        if req.get("CacheClusterId"):
            self._cluster_doc(req["CacheClusterId"])
            docs = [d for d in docs if d.get("CacheClusterId") == req["CacheClusterId"].lower()]
        if req.get("ReplicationGroupId"):
            docs = [d for d in docs if d.get("ReplicationGroupId") == req["ReplicationGroupId"].lower()]
        if req.get("SnapshotSource"):
            if req["SnapshotSource"] not in ("system", "user", "automated", "manual"):
                raise invalid("SnapshotSource must be one of system, user.")
            wanted = "automated" if req["SnapshotSource"] in ("system", "automated") else "manual"
            docs = [d for d in docs if d["SnapshotSource"] == wanted]
        for d in docs:
            d["id"] = d["SnapshotName"]
        req = {**req, "MaxRecords": req.get("MaxRecords") or 50}
        page, marker = paginate(docs, req)
        out: dict = {
            "Snapshots": [
                render_snapshot({k: x for k, x in d.items() if k != "id"}, ctx.region, ctx.account_id)
                for d in page
            ]
        }
        if marker:
            out["Marker"] = marker
        return out

    async def copy_snapshot(self: ElastiCacheProvider, ctx: RequestContext, req: dict) -> dict:
        source = self._snapshot_doc(req.get("SourceSnapshotName"))
        target = identifier(req.get("TargetSnapshotName"), "TargetSnapshotName", 255)
        if req.get("TargetBucket"):
            raise invalid("Strata does not export snapshots to S3 buckets yet (TargetBucket).")
        if self.store.get_doc("snapshot", target) is not None:
            raise fault("SnapshotAlreadyExistsFault", f"Snapshot {target} already exists.")
        if source["SnapshotStatus"] != "available":
            raise fault("InvalidSnapshotStateFault", f"Snapshot {source['SnapshotName']} is not available.")
        doc = {
            **source,
            "SnapshotName": target,
            "SnapshotSource": "manual",
            "_created": clock.now().isoformat(),
            "_tags": validate_tags(req.get("Tags")),
        }
        for name in ("_dek", "_kms_arn", "KmsKeyId"):
            doc.pop(name, None)
        # The copy is encrypted when its source is (under KmsKeyId if given) or KmsKeyId is given.
        kms_arn = source.get("_kms_arn")
        if req.get("KmsKeyId"):
            self._refuse_unsupported()
            kms_arn = self._data_keys.resolve(ctx.account_id, ctx.region, req["KmsKeyId"])

        def copy() -> None:
            self._encrypt_snapshot(doc, kms_arn)
            for fname in source["_files"]:
                _copy_durably(
                    self._snapshot_dir(source["SnapshotName"]) / fname, self._snapshot_dir(target) / fname
                )

        await run_blocking(copy)
        self.store.put_doc("snapshot", target, doc)
        _snapshot_event(
            self.store,
            doc,
            f"Copied snapshot with ID '{source['SnapshotName']}' to snapshot with ID '{target}'",
        )
        return {
            "Snapshot": render_snapshot({**doc, "SnapshotStatus": "creating"}, ctx.region, ctx.account_id)
        }

    async def delete_snapshot(self: ElastiCacheProvider, ctx: RequestContext, req: dict) -> dict:
        doc = self._snapshot_doc(req.get("SnapshotName"))
        if doc["SnapshotStatus"] != "available":
            raise fault(
                "InvalidSnapshotStateFault", f"Snapshot {doc['SnapshotName']} is {doc['SnapshotStatus']}."
            )
        self._drop_snapshot(doc["SnapshotName"])
        _snapshot_event(self.store, doc, f"Deleted snapshot with ID '{doc['SnapshotName']}'")
        return {
            "Snapshot": render_snapshot({**doc, "SnapshotStatus": "deleting"}, ctx.region, ctx.account_id)
        }

    def _drop_snapshot(self: ElastiCacheProvider, name: str) -> None:
        self.store.delete_doc("snapshot", name)
        shutil.rmtree(self._snapshot_dir(name), ignore_errors=True)
        self._remove_snapshot_volume(name)

    def _delete_automatic_snapshots(
        self: ElastiCacheProvider, *, cluster_id: str | None = None, group_id: str | None = None
    ) -> None:
        """AWS deletes a deployment's automatic snapshots with it (manual ones stay)."""
        for d in self.store.list_docs("snapshot"):
            if d["SnapshotSource"] == "automated" and (
                (cluster_id and d.get("CacheClusterId") == cluster_id)
                or (group_id and d.get("ReplicationGroupId") == group_id)
            ):
                self._drop_snapshot(d["SnapshotName"])

    # -- automatic snapshots ----------------------------------------------------------------------------

    async def _snapshot_rule(self: ElastiCacheProvider, since: float, until: float) -> dict[str, int]:
        """The scheduler's `elasticache.snapshots` rule: meter node-hours, take each deployment's
        automatic snapshot in its daily SnapshotWindow, prune past SnapshotRetentionLimit days.

        A snapshot is due when the latest window opening at or before `until` is newer than the
        deployment's last automatic snapshot; it is named and stamped with that opening, so a
        second run to the same `until` (or after a restart) finds it and does nothing.
        Simplification: AWS takes one a day; a jump over many windows takes one, for the latest
        window (the engine holds only the data of now), and the missed days have none. BGSAVE
        runs in a worker thread: requests are served meanwhile.
        """
        counts = {"snapshots": 0, "deferred": 0, "pruned": 0}
        deployments = [("cluster", d) for d in self.store.list_docs("cluster") if not d.get("group")]
        deployments += [("group", d) for d in self.store.list_docs("group")]
        for kind, dep in deployments:
            with self.store.acting_for(dep):
                if self._resource_lock(dep["id"]).locked():
                    # an operation on it is running (a scale-out can take seconds): the clock
                    # advance does not wait for it; the deployment is done once the lock is free
                    counts["deferred"] += 1
                    task = asyncio.get_running_loop().create_task(self._deferred_snapshot(kind, dep, until))
                    self._deferred.add(task)
                    task.add_done_callback(self._deferred.discard)
                    continue
                await self._automatic_snapshot(kind, dep, until, counts)
        counts["snapshots"] += await self._sls_automatic_snapshots(until)
        await run_blocking(meter_backup_storage, self.store, since, until)  # metering: not a count
        await run_blocking(self._meter_all_serverless)
        return counts

    async def _deferred_snapshot(self: ElastiCacheProvider, kind: str, dep: dict, until: float) -> None:
        with self.store.acting_for(dep):  # this coroutine runs as its own task: the scope stays in it
            await self._automatic_snapshot(kind, dep, until, {"snapshots": 0, "pruned": 0})

    async def _automatic_snapshot(
        self: ElastiCacheProvider, kind: str, dep: dict, until: float, counts: dict[str, int]
    ) -> None:
        try:
            async with self._resource_lock(dep["id"]):
                fresh = self.store.get_doc(kind, dep["id"])
                if fresh is None or fresh["status"] != "available":
                    return
                self._meter_usage(fresh)
                self.store.put_doc(kind, fresh["id"], fresh)
                if fresh["engine"] not in REDIS_LIKE or not fresh.get("retention"):
                    return
                due = datetime.fromtimestamp(
                    latest_window_start(fresh.get("window") or "05:00-06:00", until), UTC
                )
                last = datetime.fromisoformat(fresh.get("last_auto_snapshot") or fresh["created"])
                if due > last:
                    name = f"automatic.{fresh['id']}-{due:%Y-%m-%d-%H-%M}"
                    cut = self.store.get_doc("snapshot", name)
                    if cut is not None and cut["SnapshotStatus"] != "available":
                        self._drop_snapshot(name)  # cut short by a stop or a kill: taken again
                    if cut is None or cut["SnapshotStatus"] != "available":
                        kw = {"group": fresh} if kind == "group" else {"cluster": fresh}
                        await self._take_snapshot(name, "automated", at=due, **kw)
                        counts["snapshots"] += 1
                    fresh = self.store.get_doc(kind, dep["id"]) or fresh
                    fresh["last_auto_snapshot"] = due.isoformat()
                    self.store.put_doc(kind, fresh["id"], fresh)
                counts["pruned"] += self._prune(kind, fresh, datetime.fromtimestamp(until, UTC))
        except Exception:  # noqa: BLE001 - one deployment's failure must not stop the others
            log.exception("automatic snapshot of %s %s", kind, dep["id"])

    def _prune(self: ElastiCacheProvider, kind: str, dep: dict, now: datetime) -> int:
        key = "ReplicationGroupId" if kind == "group" else "CacheClusterId"
        autos = sorted(
            (
                d
                for d in self.store.list_docs("snapshot")
                if d["SnapshotSource"] == "automated" and d.get(key) == dep["id"]
            ),
            key=lambda d: d["_created"],
            reverse=True,
        )
        keep = dep["retention"]
        pruned = 0
        for i, snap in enumerate(autos):
            age = now - datetime.fromisoformat(snap["_created"])
            if i >= keep or age >= keep * DAY:
                self._drop_snapshot(snap["SnapshotName"])
                pruned += 1
        return pruned


def _snapshot_event(store: OwnedDocs, snapshot: dict, message: str) -> None:
    """An event of the replication group (else the cache cluster) a snapshot was taken of: node
    snapshots have no event source type of their own."""
    if snapshot.get("ReplicationGroupId"):
        events.record(
            store,
            snapshot["ReplicationGroupId"],
            "replication-group",
            f"{message} of replication group with ID '{snapshot['ReplicationGroupId']}'",
        )
    elif snapshot.get("CacheClusterId"):
        events.record(
            store,
            snapshot["CacheClusterId"],
            "cache-cluster",
            f"{message} of cache cluster with ID '{snapshot['CacheClusterId']}'",
        )
