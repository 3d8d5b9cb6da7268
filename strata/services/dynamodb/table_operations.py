"""Table operations: Create/Describe/List/Update/DeleteTable, TTL, continuous backups, tags,
limits and endpoints."""

from __future__ import annotations

from strata.context import RequestContext
from strata.services.dynamodb import backups, provisioning, streams, warm
from strata.services.dynamodb.bulk import index_rows
from strata.services.dynamodb.core import DynamoDBCore
from strata.services.dynamodb.errors import (
    invalid_parameter,
    limit_exceeded,
    resource_in_use,
    resource_not_found,
    table_not_found,
    validation,
)
from strata.services.dynamodb.state import scope_of, table_name
from strata.services.dynamodb.tables import (
    MAX_GSI,
    TableMeta,
    ask_warm,
    attribute_types,
    build_index,
    build_table,
    check_on_demand,
    check_table_name,
    check_throughput,
    key_attribute_names,
)
from strata.sim.clock import clock


class TableOperations(DynamoDBCore):
    def create_table(self, ctx: RequestContext, req: dict) -> dict:
        scope = scope_of(ctx)
        store = self.state.store
        name = check_table_name(req.get("TableName"))
        if (scope, name) in self.state.tables:
            raise resource_in_use(f"Table already exists: {name}")
        if (scope, name) in self.state.deleting:
            raise resource_in_use(_being_deleted(name))
        if (scope, name) in self.state.creating:
            raise resource_in_use(f"Table already exists: {name}")
        spec = req.get("StreamSpecification")
        view = streams.check_spec(spec, None, False, name) if spec is not None else None
        self._table_operation(ctx, creates=True)
        with store.write():
            meta = build_table(
                req,
                scope,
                ctx.region,
                ctx.account_id,
                store.next_id("table"),
                lambda: store.next_id("index"),
                clock.time(),
            )
            self._check_quotas(meta)
            warm.apply_request(meta, req.get("WarmThroughput"), self.quota, creating=True)
            if view is not None:
                streams.enable(store, meta, view)
            store.insert_table(meta.to_json())
        self.state.tables[(scope, name)] = meta
        desc = self._describe(meta, "ACTIVE")
        if not req.get("WarmThroughput"):  # CreateTable answers with it only when it was asked for
            del desc["WarmThroughput"]
        return {"TableDescription": desc}

    def describe_table(self, ctx: RequestContext, req: dict) -> dict:
        other = self.state.find(ctx, req.get("TableName"))
        if other is not None and other.status in ("DELETING", "CREATING"):
            return {"Table": self._describe(other, other.status)}
        return {"Table": self._describe(self.state.table(ctx, req.get("TableName"), describe=True))}

    def list_tables(self, ctx: RequestContext, req: dict) -> dict:
        scope = scope_of(ctx)
        every = [*self.state.tables, *self.state.deleting, *self.state.creating]
        names = sorted(n for s, n in every if s == scope)
        start = req.get("ExclusiveStartTableName")
        if start:
            names = [n for n in names if n > start]
        limit = req.get("Limit") or 100
        if not 1 <= limit <= 100:
            raise validation(
                f"1 validation error detected: Value '{limit}' at 'limit' failed to satisfy constraint: "
                "Member must have value less than or equal to 100"
            )
        out: dict = {"TableNames": names[:limit]}
        if len(names) > limit:
            out["LastEvaluatedTableName"] = names[limit - 1]
        return out

    async def delete_table(self, ctx: RequestContext, req: dict) -> dict:
        """Small tables go at once; a large one turns DELETING and is removed in the background."""
        key = (scope_of(ctx), table_name(req.get("TableName")))
        if key in self.state.deleting:
            raise resource_in_use(_being_deleted(key[1]))
        if key in self.state.creating:
            raise resource_in_use(
                f"Attempt to change a resource which is still in use: Table is being created: {key[1]}"
            )
        meta = self.state.table(ctx, req.get("TableName"), describe=True)
        provisioning.check_deletable(meta, clock.time())
        self._table_operation(ctx)
        if meta.deletion_protection:
            raise validation(
                "Resource cannot be deleted as it is currently protected against deletion. Disable "
                "deletion protection first."
            )
        self.replicator.check_detachable(meta)
        if meta.pitr:  # DynamoDB keeps a SYSTEM backup of a table with PITR for 35 days
            await backups.take_backup(
                self.state, self._backup_dir(), meta, f"{meta.name}$DeletedTableBackup", "SYSTEM"
            )
        if self.state.tables.get(key) is not meta:
            raise table_not_found(key[1])  # deleted by another request meanwhile
        await self.replicator.detach(meta)  # a replica of a global table leaves it first
        return await self._drop_table(key, meta)

    async def _drop_table(self, key: tuple[str, str], meta: TableMeta) -> dict:
        """Remove a table: small ones at once, a large one DELETING in the background."""
        store = self.state.store
        desc = self._describe(meta, "DELETING")
        del self.state.tables[key]
        self.state.throttle.forget(meta)
        if store.counts(meta.tid)[0] <= self.bulk.chunk and not meta.dropped:

            def drop() -> None:
                store.delete_table(meta.tid, [ix.iid for ix in meta.indexes])
                self.state.retire_streams(meta)

            await store.db.write(drop)
            return {"TableDescription": desc}
        self.state.deleting[key] = meta
        meta.status = "DELETING"
        await store.db.write(lambda: store.save_meta(meta.to_json()))
        self.bulk.spawn(self.bulk.delete_table(meta))
        return {"TableDescription": desc}

    async def update_table(self, ctx: RequestContext, req: dict) -> dict:
        live = self.state.table(ctx, req.get("TableName"), describe=True)
        now = clock.time()
        provisioning.check_not_updating(live, now)
        self._table_operation(ctx)
        meta = TableMeta.from_json(live.to_json())  # edit a copy; publish it only after commit
        store = self.state.store
        was_on_demand = meta.billing_mode == "PAY_PER_REQUEST"
        changed = False
        if req.get("BillingMode") or req.get("ProvisionedThroughput"):
            changed = provisioning.apply_throughput(
                meta, req.get("BillingMode") or meta.billing_mode, req.get("ProvisionedThroughput"), now
            )
        if meta.billing_mode == "PROVISIONED":  # a maximum on-demand throughput means nothing then
            meta.on_demand = None
            for ix in meta.indexes:
                ix.on_demand = None
        meta.on_demand = check_on_demand(
            req.get("OnDemandThroughput"), meta.billing_mode, meta.on_demand, creating=False
        )
        stream_spec = req.get("StreamSpecification")
        view = (
            streams.check_spec(stream_spec, meta.stream, True, meta.name) if stream_spec is not None else None
        )
        if req.get("SSESpecification") is not None:
            meta.sse = req["SSESpecification"] if req["SSESpecification"].get("Enabled") else None
        if req.get("DeletionProtectionEnabled") is not None:
            meta.deletion_protection = bool(req["DeletionProtectionEnabled"])
        if req.get("TableClass"):
            meta.table_class = req["TableClass"]
        types = {d["AttributeName"]: d["AttributeType"] for d in meta.attribute_definitions}
        types.update(attribute_types(req.get("AttributeDefinitions") or []))
        updates = req.get("GlobalSecondaryIndexUpdates") or []
        if updates and (meta.dropped or any(ix.backfilling for ix in meta.indexes)):
            raise limit_exceeded(
                "Subscriber limit exceeded: Only 1 online index can be created or deleted simultaneously per table"
            )
        large = store.counts(meta.tid)[0] > self.bulk.chunk
        background = []

        def write() -> None:
            nonlocal changed
            if view is not None:
                streams.enable(store, meta, view)
            elif stream_spec is not None:
                streams.disable(store, meta)
            for upd in updates:
                if "Create" in upd:
                    spec = upd["Create"]
                    if any(ix.name == spec.get("IndexName") for ix in meta.indexes):
                        raise validation("Attempting to create an index which already exists")
                    if sum(ix.is_global for ix in meta.indexes) >= MAX_GSI:
                        raise validation("GlobalSecondaryIndex count exceeds the per-table limit of 20")
                    ix = build_index(
                        spec, types, store.next_id("index"), True, meta.billing_mode, clock.time()
                    )
                    meta.indexes.append(ix)
                    if large:  # CREATING until bulk.py has indexed the items already there
                        ix.backfilling = True
                        background.append((self.bulk.backfill, ix.iid))
                    else:
                        index_rows(store, ix, store.items_after(meta.tid, None, self.bulk.chunk + 1))
                elif "Delete" in upd:
                    name = upd["Delete"].get("IndexName")
                    ix = next((i for i in meta.indexes if i.name == name and i.is_global), None)
                    if ix is None:
                        raise resource_not_found(f"Requested resource not found: Index: {name} not found")
                    meta.indexes.remove(ix)
                    if large:  # its rows go in the background; nothing reads them any more
                        meta.dropped.append(ix.iid)
                        background.append((self.bulk.drop_index, ix.iid))
                    else:
                        store.delete_index(ix.iid)
                elif "Update" in upd:
                    name = upd["Update"].get("IndexName")
                    ix = next((i for i in meta.indexes if i.name == name and i.is_global), None)
                    if ix is None:
                        raise resource_not_found(f"Requested resource not found: Index: {name} not found")
                    action = upd["Update"]
                    ix.on_demand = check_on_demand(
                        action.get("OnDemandThroughput"), meta.billing_mode, ix.on_demand, False, name
                    )
                    ask_warm(ix, action.get("WarmThroughput"), creating=False)
                    if action.get("OnDemandThroughput") or action.get("WarmThroughput"):
                        if "ProvisionedThroughput" not in action:
                            continue  # a GSI's maximum or warm throughput alone
                    old = ix.throughput or {"ReadCapacityUnits": 0, "WriteCapacityUnits": 0}
                    ix.throughput = check_throughput(
                        action.get("ProvisionedThroughput"), meta.billing_mode, name
                    )
                    if meta.billing_mode == "PROVISIONED" and not was_on_demand:
                        if any(ix.throughput[k] < old[k] for k in ix.throughput):
                            provisioning.check_decrease(ix.provisioning, now)
                        provisioning.note_change(ix.provisioning, old, ix.throughput, now)
                    changed = True
            if meta.billing_mode == "PROVISIONED":
                for ix in meta.indexes:  # a switch to PROVISIONED needs every GSI's capacity
                    if ix.is_global and not (ix.throughput or {}).get("ReadCapacityUnits"):
                        check_throughput(None, "PROVISIONED", ix.name)
            warm.grow(meta, self.quota)
            before = warm.snapshot(meta, self.quota)
            self._check_quotas(meta, creating=False)
            warm.apply_request(meta, req.get("WarmThroughput"), self.quota, creating=False)
            if warm.note_raises(meta, before, now + self.update_seconds) or changed:
                provisioning.start_update(meta, now, self.update_seconds)
            # The capacity in force until now is metered from the published metadata (the hourly
            # rule may have metered part of it while this request waited for the writer).
            provisioning.meter_hours(live, now)
            meta.provisioning["metered_to"] = live.provisioning["metered_to"]
            used = key_attribute_names(meta.hash_key, meta.range_key, meta.indexes)
            meta.attribute_definitions = [
                {"AttributeName": k, "AttributeType": v} for k, v in types.items() if k in used
            ]
            self.state.save(meta)

        await store.db.write(write)
        for work, iid in background:
            self.bulk.spawn(work(meta, iid))
        return {"TableDescription": self._describe(meta)}

    def update_time_to_live(self, ctx: RequestContext, req: dict) -> dict:
        meta = self.state.table(ctx, req.get("TableName"), describe=True)
        spec = req.get("TimeToLiveSpecification") or {}
        enabled = bool(spec.get("Enabled"))
        current = meta.ttl or {}
        if enabled and current.get("Enabled"):
            raise validation("TimeToLive is already enabled")
        if not enabled and not current.get("Enabled"):
            raise validation("TimeToLive is already disabled")
        if not spec.get("AttributeName"):
            raise invalid_parameter("AttributeName must be specified")
        self._table_operation(ctx)
        with self.state.store.write():
            meta.ttl = {"Enabled": enabled, "AttributeName": spec["AttributeName"]}
            self.state.save(meta)
        return {"TimeToLiveSpecification": {"Enabled": enabled, "AttributeName": spec["AttributeName"]}}

    def describe_time_to_live(self, ctx: RequestContext, req: dict) -> dict:
        meta = self.state.table(ctx, req.get("TableName"), describe=True)
        if meta.ttl and meta.ttl.get("Enabled"):
            return {
                "TimeToLiveDescription": {
                    "TimeToLiveStatus": "ENABLED",
                    "AttributeName": meta.ttl["AttributeName"],
                }
            }
        return {"TimeToLiveDescription": {"TimeToLiveStatus": "DISABLED"}}

    def describe_contributor_insights(self, ctx: RequestContext, req: dict) -> dict:
        self.control.admit(scope_of(ctx), "DescribeContributorInsights", clock.time())
        meta = self.state.table(ctx, req.get("TableName"), describe=True)
        out = {"TableName": meta.name, "ContributorInsightsStatus": "DISABLED"}
        if req.get("IndexName"):
            out["IndexName"] = meta.index(req["IndexName"]).name
        return out

    def describe_kinesis_streaming_destination(self, ctx: RequestContext, req: dict) -> dict:
        meta = self.state.table(ctx, req.get("TableName"), describe=True)
        return {"TableName": meta.name, "KinesisDataStreamDestinations": []}

    def tag_resource(self, ctx: RequestContext, req: dict) -> dict:
        if not req.get("Tags"):
            raise validation("Atleast one Tag needs to be provided as Input.")
        meta = self.state.by_arn(ctx, req.get("ResourceArn"), "TagResource")
        tags = {**meta.tags, **{t["Key"]: t["Value"] for t in req.get("Tags") or []}}
        if len(tags) > 50:
            raise validation(
                "One or more parameter values were invalid: The number of tags exceeds the limit of 50"
            )
        with self.state.store.write():
            meta.tags = tags
            self.state.save(meta)
        return {}

    def untag_resource(self, ctx: RequestContext, req: dict) -> dict:
        meta = self.state.by_arn(ctx, req.get("ResourceArn"), "UntagResource")
        with self.state.store.write():
            for k in req.get("TagKeys") or []:
                meta.tags.pop(k, None)
            self.state.save(meta)
        return {}

    def list_tags_of_resource(self, ctx: RequestContext, req: dict) -> dict:
        meta = self.state.by_arn(ctx, req.get("ResourceArn"), "ListTagsOfResource")
        return {"Tags": [{"Key": k, "Value": v} for k, v in meta.tags.items()]}

    def describe_limits(self, ctx: RequestContext, req: dict) -> dict:
        self.control.admit(scope_of(ctx), "DescribeLimits", clock.time())
        return {
            "AccountMaxReadCapacityUnits": self.quota.account_max,
            "AccountMaxWriteCapacityUnits": self.quota.account_max,
            "TableMaxReadCapacityUnits": self.quota.table_max,
            "TableMaxWriteCapacityUnits": self.quota.table_max,
        }

    def describe_endpoints(self, ctx: RequestContext, req: dict) -> dict:
        return {
            "Endpoints": [{"Address": f"dynamodb.{ctx.region}.amazonaws.com", "CachePeriodInMinutes": 1440}]
        }


def _being_deleted(name: str) -> str:
    return f"Attempt to change a resource which is still in use: Table is being deleted: {name}"
