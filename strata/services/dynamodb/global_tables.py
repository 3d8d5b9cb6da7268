"""Global tables, version 2019.11.21: UpdateTable's ReplicaUpdates, the replicas DescribeTable
shows, a replica's deletion. The replication itself is replication.py's; the replicas' auto
scaling replica_autoscaling.py's, the legacy version's API legacy_global_tables.py's.

A replica is created by `ReplicaUpdates: [{Create: {RegionName}}]` on a table whose stream is
enabled with NEW_AND_OLD_IMAGES (as DynamoDB requires): a table of the same name, keys, indexes,
billing and capacity in that region of this Strata, with its own stream, CREATING until its
copy of the items is done (30 s of simulated time at least: replication.CREATE_SECONDS). `Delete` removes a replica
(so does DeleteTable in its region). Replica settings overrides (KMS key, read capacity, table
class) are refused, not ignored. Changes of billing, capacity, indexes and TTL made to one
replica are made to every replica, as DynamoDB does.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.dynamodb import provisioning, streams
from strata.services.dynamodb.errors import resource_in_use, validation
from strata.services.dynamodb.legacy_global_tables import VERSION as LEGACY_VERSION
from strata.services.dynamodb.legacy_global_tables import LegacyGlobalTableOperations
from strata.services.dynamodb.replica_autoscaling import ReplicaAutoScalingOperations
from strata.services.dynamodb.replication import VERSION, cursor_name, region_of, scope_in
from strata.services.dynamodb.state import scope_of, table_name
from strata.services.dynamodb.table_operations import TableOperations
from strata.services.dynamodb.tables import TableMeta
from strata.services.iam.service_roles import ensure_service_linked_role
from strata.services.s3.names import KNOWN_REGIONS
from strata.sim.clock import clock

log = logging.getLogger("strata")

# UpdateTable members a request with ReplicaUpdates may not also set.
_EXCLUSIVE = (
    "BillingMode",
    "ProvisionedThroughput",
    "GlobalSecondaryIndexUpdates",
    "StreamSpecification",
    "SSESpecification",
    "TableClass",
    "DeletionProtectionEnabled",
    "OnDemandThroughput",
    "WarmThroughput",
)
_REPLICA_ACTIONS = (
    ("Create", "dynamodb:CreateTableReplica"),
    ("Update", "dynamodb:UpdateTable"),
    ("Delete", "dynamodb:DeleteTableReplica"),
)
# UpdateTable members that change every replica of a global table.
_SHARED = (
    "AttributeDefinitions",
    "BillingMode",
    "ProvisionedThroughput",
    "OnDemandThroughput",
    "GlobalSecondaryIndexUpdates",
)
_OVERRIDES = (
    "KMSMasterKeyId",
    "ProvisionedThroughputOverride",
    "OnDemandThroughputOverride",
    "GlobalSecondaryIndexes",
)


def _invalid(message: str):
    return validation(f"One or more parameter values were invalid: {message}")


def check_global_update(meta: TableMeta, req: dict) -> None:
    """A table with replicas keeps its stream: DynamoDB refuses to disable it."""
    spec = req.get("StreamSpecification")
    if meta.group and spec is not None and not spec.get("StreamEnabled"):
        raise _invalid(f"Cannot disable the stream of a table that has replicas: TableName: {meta.name}")


class GlobalTableOperations(ReplicaAutoScalingOperations, LegacyGlobalTableOperations, TableOperations):
    def request_targets(
        self, operation: str, req: dict, region: str, account: str
    ) -> list[tuple[str, str]] | None:
        """The authorizer's hook: an UpdateTable with ReplicaUpdates also needs
        dynamodb:CreateTableReplica / DeleteTableReplica (UpdateTable for an Update) on the
        table in each replica's region, as DynamoDB asks there."""
        updates = req.get("ReplicaUpdates") if operation == "UpdateTable" else None
        if not updates or not isinstance(updates, list):
            return super().request_targets(operation, req, region, account)  # type: ignore[misc]
        name = table_name(req.get("TableName"))
        pairs = [("dynamodb:UpdateTable", f"arn:aws:dynamodb:{region}:{account}:table/{name}")]
        for update in updates:
            for member, action in _REPLICA_ACTIONS:
                spec = update.get(member) if isinstance(update, dict) else None
                if isinstance(spec, dict) and isinstance(spec.get("RegionName"), str):
                    pairs.append((action, f"arn:aws:dynamodb:{spec['RegionName']}:{account}:table/{name}"))
        return pairs

    async def update_table(self, ctx: RequestContext, req: dict) -> dict:
        if req.get("ReplicaUpdates"):
            live = self.state.table(ctx, req.get("TableName"), describe=True)
            if self._legacy(ctx.account_id, live.name) is not None and live.group:
                raise _invalid(
                    f"Table {live.name} is a global table of version {LEGACY_VERSION}: use UpdateGlobalTable"
                )
            return await self._replica_updates(ctx, live, req)
        found = self.state.tables.get((scope_of(ctx), table_name(req.get("TableName"))))
        if found is None or not found.group:
            return await super().update_table(ctx, req)
        check_global_update(found, req)
        shared = {k: req[k] for k in _SHARED if req.get(k) is not None}
        others = self.replicator.others(found) if shared else []
        if any(m.status == "CREATING" for m in others):
            raise resource_in_use(
                f"Attempt to change a resource which is still in use: Table is being updated: {found.name}"
            )
        for m in others:  # what would stop the change in a replica stops it everywhere
            provisioning.check_not_updating(m, clock.time())
        out = await super().update_table(ctx, req)
        # Capacity, billing and indexes are the global table's: DynamoDB makes the same change in
        # every replica (each a table of its own region here, updated as UpdateTable there would).
        for m in others:
            change = _for_replica(m, shared, by_user=ctx.principal is not None)
            if change:
                try:
                    await super().update_table(
                        replace(ctx, region=region_of(m)), {"TableName": m.name, **change}
                    )
                except ServiceError as e:  # that replica keeps its settings; the source's change stands
                    log.warning("dynamodb: UpdateTable of the replica %s failed: %s", m.arn, e.message)
        return out

    def update_time_to_live(self, ctx: RequestContext, req: dict) -> dict:
        """TTL is a setting of the global table: every replica gets it."""
        out = super().update_time_to_live(ctx, req)
        meta = self.state.table(ctx, req.get("TableName"), describe=True)
        others = self.replicator.others(meta)
        if others:
            with self.state.store.write():
                for m in others:
                    m.ttl = dict(meta.ttl or {})
                    self.state.store.save_meta(m.to_json())
        return out

    def _replicas(self, meta: TableMeta) -> list[dict]:
        """DescribeTable's Replicas: every other replica of the table's global table."""
        out = []
        for region in meta.group:
            if region == region_of(meta):
                continue
            other = self.replicator.member(meta, region)
            if other is None:
                continue
            desc: dict = {"RegionName": region, "ReplicaStatus": other.status}
            if other.status == "CREATING":
                desc["ReplicaStatusPercentProgress"] = "100" if (other.replica or {}).get("copied") else "0"
            desc["ReplicaTableClassSummary"] = {"TableClass": other.table_class}
            out.append(desc)
        return out

    def _describe(self, meta: TableMeta, status: str = "ACTIVE") -> dict:
        out = super()._describe(meta, status)
        if meta.group:
            legacy = self._legacy(meta.scope.split(":", 1)[0], meta.name)
            out["GlobalTableVersion"] = (
                LEGACY_VERSION if legacy and region_of(meta) in legacy["regions"] else VERSION
            )
            out["Replicas"] = self._replicas(meta)
            if out["TableStatus"] == "ACTIVE" and any(
                r["ReplicaStatus"] == "CREATING" for r in out["Replicas"]
            ):
                out["TableStatus"] = "UPDATING"  # as DynamoDB shows while a replica is added
        return out

    async def _replica_updates(self, ctx: RequestContext, live: TableMeta, req: dict) -> dict:
        """UpdateTable with ReplicaUpdates: each Create, Update or Delete in turn."""
        for member in _EXCLUSIVE:
            if req.get(member) is not None:
                raise _invalid(f"ReplicaUpdates cannot be combined with {member} in one UpdateTable request")
        for update in req["ReplicaUpdates"]:
            actions = [k for k in ("Create", "Update", "Delete", "Disassociate") if update.get(k) is not None]
            if len(actions) != 1:
                raise _invalid(
                    "Only one of Create, Update or Delete can be specified in a ReplicationGroupUpdate"
                )
            action, spec = actions[0], update[actions[0]]
            region = spec.get("RegionName") or ""
            if action == "Disassociate":
                raise validation("ReplicaUpdates Disassociate is not supported by Strata")
            if action == "Create":
                await self._create_replica(live, region, spec)
                # As on AWS, the first replica creates DynamoDB's replication service-linked role.
                ensure_service_linked_role(
                    self.runtime.settings, ctx.account_id, "replication.dynamodb.amazonaws.com"
                )
            elif action == "Update":
                self._member_region(live, region)
                for member in (*_OVERRIDES, "TableClassOverride"):
                    if spec.get(member) and not (
                        member == "TableClassOverride" and spec[member] == "STANDARD"
                    ):
                        raise validation(f"Replica {member} is not supported by Strata")
            else:
                await self._delete_replica(live, region)
        return {"TableDescription": self._describe(live)}

    def _member_region(self, live: TableMeta, region: str) -> TableMeta:
        other = self.replicator.member(live, region) if region != region_of(live) else None
        if region not in live.group or other is None:
            raise _invalid(f"Replica in region {region} does not exist for table: {live.name}")
        return other

    async def _create_replica(self, live: TableMeta, region: str, spec: dict) -> None:
        for member in _OVERRIDES:
            if spec.get(member):
                raise validation(f"Replica {member} is not supported by Strata")
        if spec.get("TableClassOverride") not in (None, "STANDARD"):
            raise validation("Replica TableClassOverride is not supported by Strata")
        own = region_of(live)
        if region not in KNOWN_REGIONS or region == "EU":
            raise _invalid(f"Invalid region name: {region}")
        if region == own:
            raise _invalid(f"A replica cannot be created in the table's own region: {region}")
        key = (scope_in(live, region), live.name)
        if region in live.group or any(
            key in d for d in (self.state.tables, self.state.creating, self.state.deleting)
        ):
            raise validation(
                f"Failed to create a the new replica of table with name: '{live.name}' because one or more "
                "replicas already existed as tables."
            )
        if not live.stream or live.stream.get("StreamViewType") != "NEW_AND_OLD_IMAGES":
            raise _invalid(
                "Table must have DynamoDB Streams enabled with StreamViewType NEW_AND_OLD_IMAGES to add replicas: "
                f"TableName: {live.name}"
            )
        if live.billing_mode == "PROVISIONED" and not self._write_autoscaled(live):
            raise validation("Table write capacity should either be Pay-Per-Request or AutoScaled.")
        if any(ix.backfilling for ix in live.indexes) or live.dropped:
            raise resource_in_use(
                f"Attempt to change a resource which is still in use: Table is being updated: {live.name}"
            )
        store = self.state.store
        members = [live, *self.replicator.others(live)]
        if any(m.status == "CREATING" for m in members):
            raise resource_in_use(
                f"Attempt to change a resource which is still in use: Table is being updated: {live.name}"
            )
        now = clock.time()

        def write() -> tuple[TableMeta, dict[tuple[int, int], int]]:
            replica = _replica_of(
                live,
                region,
                store.next_id("table"),
                lambda: store.next_id("index"),
                now,
                self.replicator.create_seconds,
            )
            streams.enable(store, replica, "NEW_AND_OLD_IMAGES")
            group = [*(live.group or [own]), region]
            for m in (*members, replica):
                m.group = list(group)
            store.insert_table(replica.to_json())
            for m in members:
                store.save_meta(m.to_json())
            # The source's changes from now on follow the copy; the other replicas' changes from
            # where the source has them (the copy holds what it had).
            seq = streams.current_seq(store)
            cursors = {(live.tid, replica.tid): seq}
            for m in members:
                cursors[(replica.tid, m.tid)] = seq
                if m is not live:
                    cursors[(m.tid, replica.tid)] = self.replicator.cursors.get((m.tid, live.tid), seq)
            store.w.executemany(
                "INSERT INTO ddb_counters(name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                [(cursor_name(*pair), value) for pair, value in cursors.items()],
            )
            return replica, cursors

        replica, cursors = await store.db.write(write)
        self.state.creating[key] = replica
        self.replicator.cursors.update(cursors)
        self.replicator.wake()

    def _write_autoscaled(self, meta: TableMeta) -> bool:
        """Whether Application Auto Scaling manages the table's write capacity."""
        aas = self.runtime.peer("application-autoscaling")
        if aas is None or not hasattr(aas, "records"):
            return False
        key = f"{meta.scope}|dynamodb|table/{meta.name}|dynamodb:table:WriteCapacityUnits"
        return aas.records.target(key) is not None

    async def _delete_replica(self, live: TableMeta, region: str) -> None:
        other = self._member_region(live, region)
        if other.status == "CREATING":
            raise resource_in_use(
                f"Attempt to change a resource which is still in use: Replica is being created: {region}"
            )
        provisioning.check_deletable(other, clock.time())
        if other.deletion_protection:  # as DeleteTable in its region would answer
            raise validation(
                "Resource cannot be deleted as it is currently protected against deletion. Disable "
                "deletion protection first."
            )
        key = (other.scope, other.name)
        await self.replicator.detach(other)
        if self.state.tables.get(key) is other:
            await self._drop_table(key, other)


def _for_replica(meta: TableMeta, shared: dict, by_user: bool) -> dict:
    """The part of a global table's UpdateTable a replica takes: all of it, but for a read
    capacity Application Auto Scaling set in one region (reads scale per replica, `by_user`
    False) and a capacity the replica already has (DynamoDB would refuse "will not change")."""
    change = dict(shared)
    tp = change.get("ProvisionedThroughput")
    if tp:
        if not by_user:
            tp = {
                **tp,
                "ReadCapacityUnits": meta.throughput.get("ReadCapacityUnits", tp.get("ReadCapacityUnits")),
            }
        same_mode = change.get("BillingMode") in (None, meta.billing_mode)
        if same_mode and all(meta.throughput.get(k) == v for k, v in tp.items()):
            del change["ProvisionedThroughput"]
        else:
            change["ProvisionedThroughput"] = tp
    if not by_user and change.get("GlobalSecondaryIndexUpdates"):
        kept = []
        for update in change["GlobalSecondaryIndexUpdates"]:
            spec = update.get("Update") or {}
            ix = next((i for i in meta.indexes if i.name == spec.get("IndexName")), None)
            if ix is not None and spec.get("ProvisionedThroughput"):
                own = (ix.throughput or {}).get("ReadCapacityUnits")
                tp = {**spec["ProvisionedThroughput"], "ReadCapacityUnits": own}
                if tp == (ix.throughput or {}):
                    continue
                update = {"Update": {**spec, "ProvisionedThroughput": tp}}
            kept.append(update)
        change["GlobalSecondaryIndexUpdates"] = kept
    if change.get("BillingMode") == meta.billing_mode and "ProvisionedThroughput" not in change:
        del change["BillingMode"]
    effective = ("BillingMode", "ProvisionedThroughput", "OnDemandThroughput", "GlobalSecondaryIndexUpdates")
    return change if any(change.get(k) for k in effective) else {}


def _replica_of(
    src: TableMeta, region: str, tid: int, next_iid, now: float, create_seconds: float
) -> TableMeta:
    """A new replica's metadata: the source's keys, indexes, billing, capacity and TTL; a table
    of its own (id, ARN, stream, tags, backups, deletion protection)."""
    meta = TableMeta.from_json(src.to_json())
    account = src.scope.split(":", 1)[0]
    meta.scope = scope_in(src, region)
    meta.tid = tid
    meta.table_id = str(uuid.uuid4())
    meta.arn = f"arn:aws:dynamodb:{region}:{account}:table/{src.name}"
    meta.created = now
    meta.stream, meta.streams = None, []
    meta.tags = {}
    meta.pitr, meta.pitr_since = False, 0.0
    meta.deletion_protection = False
    meta.status = "CREATING"
    meta.dropped = []
    meta.provisioning = {}
    meta.restore = None
    for ix in meta.indexes:
        ix.iid = next_iid()
        ix.provisioning = {}
        ix.created = now
    meta.replica = {"from": region_of(src), "copied": False, "ready_at": now + create_seconds}
    return meta
