"""Serverless cache snapshots: Create/Describe/Copy/DeleteServerlessCacheSnapshot, restores
(CreateServerlessCache SnapshotArnsToRestore), final snapshots (DeleteServerlessCache
FinalSnapshotName) and daily automatic ones (SnapshotRetentionLimit, DailySnapshotTime).

A snapshot is the primary node's own RDB file, taken with BGSAVE, kept at
`<data>/snapshots/serverless/<engine key>/data.rdb` beside its record (kind
`serverless_snapshot`). A restore places it as the new primary's dump.rdb before the engine
starts. Valkey and Redis OSS caches only: a memcached engine has nothing to save (refused).
A snapshot of a cache with a KMS key, or one given KmsKeyId, keeps its file in an encrypted volume
of its own instead (serverless_at_rest.py).
"""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from strata.context import RequestContext
from strata.engines.process import ENGINE_USER, EngineError, chown_tree
from strata.engines.redis import drop_append_only
from strata.protocol.errors import ServiceError
from strata.services.base import run_blocking
from strata.services.elasticache import events
from strata.services.elasticache import validate as v
from strata.services.elasticache.core import ElastiCacheCore
from strata.services.elasticache.errors import combination, fault, invalid
from strata.services.elasticache.render import arn, ts
from strata.services.elasticache.serverless import engine_id, lead_node, major
from strata.services.elasticache.snapshots import _copy_durably
from strata.sim.clock import clock
from strata.sim.windows import latest_window_start

log = logging.getLogger("strata.elasticache")
KIND = "serverless_snapshot"
FILE = "data.rdb"


def _not_found(name: str | None) -> Exception:
    return fault("ServerlessCacheSnapshotNotFoundFault", f"Serverless cache snapshot {name} not found.")


class ServerlessSnapshotOperations(ElastiCacheCore):
    """A mixin of ElastiCacheProvider."""

    def _sls_snapshot_dir(self, name: str) -> Path:
        return self.snapshot_root / "serverless" / self.store.engine_key(name)

    def _sls_snapshot_file(self, doc: dict) -> Path:
        """A snapshot's RDB file: in its own encrypted volume when its cache had a KMS key."""
        root = self._sls_snapshot_root(doc)  # type: ignore[attr-defined]
        return (root or self._sls_snapshot_dir(doc["name"])) / FILE

    def _sls_snapshot_doc(self, name: str | None) -> dict:
        doc = self.store.get_doc(KIND, name or "")
        if doc is None:
            raise _not_found(name)
        return doc

    def _render_sls_snapshot(self, ctx: RequestContext, doc: dict, status: str | None = None) -> dict:
        out: dict = {
            "ServerlessCacheSnapshotName": doc["name"],
            "ARN": arn(ctx.region, ctx.account_id, "serverlesscachesnapshot", doc["name"]),
            "SnapshotType": doc["type"],
            "Status": status or doc["status"],
            "CreateTime": ts(doc["created"]),
            "BytesUsedForCache": str(doc.get("bytes", 0)),
            "ServerlessCacheConfiguration": {
                "ServerlessCacheName": doc["cache"],
                "Engine": doc["engine"],
                "MajorEngineVersion": major(doc["engine"], doc["engine_version"]),
            },
        }
        if doc.get("expires"):
            out["ExpiryTime"] = ts(doc["expires"])
        if doc.get("_kms_arn"):
            out["KmsKeyId"] = doc["_kms_arn"]
        return out

    async def _take_sls_snapshot(
        self,
        name: str,
        cache: dict,
        kind: str,
        tags: list | None = None,
        at: datetime | None = None,
        key_arn: str | None = None,
    ) -> dict:
        """BGSAVE the cache's primary and keep the file (the caller holds the cache's lock)."""
        if cache["engine"] not in v.REDIS_LIKE:
            raise combination("Snapshots of serverless caches are supported for Valkey and Redis OSS only.")
        if self.store.get_doc(KIND, name) is not None:
            raise fault(
                "ServerlessCacheSnapshotAlreadyExistsFault",
                f"Serverless cache snapshot {name} already exists.",
            )
        created = at or clock.now()
        doc: dict = {
            "name": name,
            "cache": cache["id"],
            "engine": cache["engine"],
            "engine_version": cache["engine_version"],
            "type": kind,
            "status": "creating",
            "created": created.isoformat(),
            "tags": v.tags(tags),
        }
        if kind == "automated":
            doc["expires"] = (created + timedelta(days=cache.get("retention") or 1)).isoformat()
        self.store.put_doc(KIND, name, doc)
        server = self.engines.redis(engine_id(cache["id"]), lead_node(cache))
        try:
            key = key_arn or cache.get("_kms_arn")
            await run_blocking(self._encrypt_sls_snapshot, doc, key)  # type: ignore[attr-defined]
            doc["bytes"] = await run_blocking(server.used_memory)
            path = await run_blocking(server.snapshot)
            await run_blocking(_copy_durably, path, self._sls_snapshot_file(doc))
        except ServiceError:
            self._drop_sls_snapshot(name)
            raise
        except (EngineError, OSError) as e:
            self._drop_sls_snapshot(name)
            raise fault(
                "InvalidServerlessCacheStateFault", f"The engine could not save a snapshot: {e}"
            ) from e
        doc["status"] = "available"
        self.store.put_doc(KIND, name, doc)
        events.record(
            self.store, name, "serverless-cache-snapshot", f"Serverless cache snapshot {name} created"
        )
        return doc

    def _drop_sls_snapshot(self, name: str) -> None:
        self.store.delete_doc(KIND, name)
        shutil.rmtree(self._sls_snapshot_dir(name), ignore_errors=True)
        self._remove_sls_snapshot_volume(name)  # type: ignore[attr-defined]

    def _sls_restore_source(self, ctx: RequestContext, arns: list[str] | None, engine: str) -> dict | None:
        """The snapshot a new cache restores (SnapshotArnsToRestore: one serverless cache snapshot
        of this account and region)."""
        if not arns:
            return None
        if len(arns) > 1:
            raise combination("Strata restores a serverless cache from one snapshot.")
        parts = arns[0].split(":")
        if (
            len(parts) != 7
            or parts[5] != "serverlesscachesnapshot"
            or parts[3:5] != [ctx.region, ctx.account_id]
        ):
            raise invalid(f"Invalid snapshot ARN: {arns[0]}")
        doc = self._sls_snapshot_doc(parts[6])
        if doc["status"] != "available":
            raise fault(
                "InvalidServerlessCacheSnapshotStateFault", f"Snapshot {doc['name']} is not available."
            )
        if engine not in v.REDIS_LIKE:
            raise combination(f"A {engine} serverless cache cannot be restored from a snapshot.")
        return doc

    def _place_sls_snapshot(self, snap: dict, data_dir: Path) -> None:
        target = Path(data_dir) / "dump.rdb"
        drop_append_only(data_dir)
        _copy_durably(self._sls_snapshot_file(snap), target)
        chown_tree(Path(data_dir), ENGINE_USER)

    # -- operations ---------------------------------------------------------------------------------

    async def create_serverless_cache_snapshot(self, ctx: RequestContext, req: dict) -> dict:
        name = v.identifier(req.get("ServerlessCacheSnapshotName"), "ServerlessCacheSnapshotName", 255)
        cache = self._serverless_doc(req.get("ServerlessCacheName"))  # type: ignore[attr-defined]
        key = self._sls_snapshot_key(ctx, req.get("KmsKeyId"), None)  # type: ignore[attr-defined]
        async with self._resource_lock(engine_id(cache["id"])):
            cache = self._serverless_doc(cache["id"])  # type: ignore[attr-defined]
            if cache["status"] != "available":
                raise fault(
                    "InvalidServerlessCacheStateFault", f"Serverless cache {cache['id']} is not available."
                )
            doc = await self._take_sls_snapshot(name, cache, "manual", req.get("Tags"), key_arn=key)
        return {"ServerlessCacheSnapshot": self._render_sls_snapshot(ctx, doc, "creating")}

    def describe_serverless_cache_snapshots(self, ctx: RequestContext, req: dict) -> dict:
        if req.get("ServerlessCacheSnapshotName"):
            docs = [self._sls_snapshot_doc(req["ServerlessCacheSnapshotName"])]
        else:
            docs = sorted(self.store.list_docs(KIND), key=lambda d: d["name"])
        if req.get("ServerlessCacheName"):
            wanted = req["ServerlessCacheName"].lower()
            if self.store.get_doc("serverless", wanted) is None and not any(
                d["cache"] == wanted for d in docs
            ):
                raise fault("ServerlessCacheNotFoundFault", f"Serverless cache {wanted} not found.")
            docs = [d for d in docs if d["cache"] == wanted]
        if req.get("SnapshotType"):
            if req["SnapshotType"] not in ("automated", "manual"):
                raise invalid("SnapshotType must be automated or manual.")
            docs = [d for d in docs if d["type"] == req["SnapshotType"]]
        size = req.get("MaxResults") or 50
        if not 1 <= size <= 50:
            raise invalid("MaxResults must be between 1 and 50.")
        if req.get("NextToken"):
            docs = [d for d in docs if d["name"] > req["NextToken"]]
        out: dict = {"ServerlessCacheSnapshots": [self._render_sls_snapshot(ctx, d) for d in docs[:size]]}
        if len(docs) > size:
            out["NextToken"] = docs[size - 1]["name"]
        return out

    async def copy_serverless_cache_snapshot(self, ctx: RequestContext, req: dict) -> dict:
        source = self._sls_snapshot_doc(req.get("SourceServerlessCacheSnapshotName"))
        target = v.identifier(
            req.get("TargetServerlessCacheSnapshotName"), "TargetServerlessCacheSnapshotName", 255
        )
        if self.store.get_doc(KIND, target) is not None:
            raise fault(
                "ServerlessCacheSnapshotAlreadyExistsFault",
                f"Serverless cache snapshot {target} already exists.",
            )
        if source["status"] != "available":
            raise fault(
                "InvalidServerlessCacheSnapshotStateFault", f"Snapshot {source['name']} is not available."
            )
        doc = {
            **source,
            "name": target,
            "type": "manual",
            "created": clock.now().isoformat(),
            "tags": v.tags(req.get("Tags")),
        }
        for private in ("expires", "_dek", "_kms_arn"):
            doc.pop(private, None)
        key = self._sls_snapshot_key(ctx, req.get("KmsKeyId"), source.get("_kms_arn"))  # type: ignore[attr-defined]
        try:  # a copy of an encrypted snapshot gets a volume of its own, under the same key or its own
            await run_blocking(self._encrypt_sls_snapshot, doc, key)  # type: ignore[attr-defined]
            await run_blocking(_copy_durably, self._sls_snapshot_file(source), self._sls_snapshot_file(doc))
        except ServiceError:
            self._drop_sls_snapshot(target)
            raise
        except OSError as e:  # the source's encrypted volume is locked (its KMS key disabled)
            self._drop_sls_snapshot(target)
            raise fault(
                "InvalidServerlessCacheSnapshotStateFault", f"Snapshot {source['name']} cannot be read: {e}"
            ) from None
        self.store.put_doc(KIND, target, doc)
        events.record(
            self.store,
            target,
            "serverless-cache-snapshot",
            f"Serverless cache snapshot {target} copied from {source['name']}",
        )
        return {"ServerlessCacheSnapshot": self._render_sls_snapshot(ctx, doc, "creating")}

    def delete_serverless_cache_snapshot(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._sls_snapshot_doc(req.get("ServerlessCacheSnapshotName"))
        if doc["status"] != "available":
            raise fault(
                "InvalidServerlessCacheSnapshotStateFault", f"Snapshot {doc['name']} is {doc['status']}."
            )
        rendered = self._render_sls_snapshot(ctx, doc, "deleting")
        self._drop_sls_snapshot(doc["name"])
        events.record(
            self.store,
            doc["name"],
            "serverless-cache-snapshot",
            f"Serverless cache snapshot {doc['name']} deleted",
        )
        return {"ServerlessCacheSnapshot": rendered}

    # -- automatic snapshots (the `elasticache.snapshots` rule) -------------------------------------

    async def _sls_automatic_snapshots(self, until: float) -> int:
        """Each cache with a SnapshotRetentionLimit gets the snapshot of its latest DailySnapshotTime
        (named and stamped with it, so a second run finds it); expired ones are dropped."""
        taken = 0
        now = datetime.fromtimestamp(until, UTC)
        for cache in self.store.list_docs("serverless"):
            with self.store.acting_for(cache):
                try:
                    taken += await self._sls_automatic_snapshot(cache["id"], until)
                except Exception:  # noqa: BLE001 - one cache's failure must not stop the others
                    log.exception("automatic snapshot of serverless cache %s", cache["id"])
                for snap in self.store.list_docs(KIND):
                    if (
                        snap["type"] == "automated"
                        and snap.get("expires")
                        and datetime.fromisoformat(snap["expires"]) <= now
                    ):
                        self._drop_sls_snapshot(snap["name"])
        return taken

    async def _sls_automatic_snapshot(self, name: str, until: float) -> int:
        async with self._resource_lock(engine_id(name)):
            cache = self.store.get_doc("serverless", name)
            if cache is None or cache["status"] != "available" or not cache.get("retention"):
                return 0
            t = cache.get("snapshot_time") or "00:00"
            due = datetime.fromtimestamp(latest_window_start(f"{t}-{t}", until), UTC)
            last = datetime.fromisoformat(cache.get("last_auto_snapshot") or cache["created"])
            if due <= last:
                return 0
            snap_name = f"{name}-{due:%Y-%m-%d-%H-%M}"
            if self.store.get_doc(KIND, snap_name) is None:
                await self._take_sls_snapshot(snap_name, cache, "automated", at=due)
            cache["last_auto_snapshot"] = due.isoformat()
            self.store.put_doc("serverless", name, cache)
            return 1
