"""Backup operations: Create/Describe/List/DeleteBackup, RestoreTableFromBackup, and point-in-time
recovery (Update/DescribeContinuousBackups, RestoreTableToPointInTime). The mechanics live in
backups.py (files, restores) and pitr.py (the change history); storage is metered by the
`dynamodb.backups` scheduler rule (backup_rule.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.base import run_blocking
from strata.services.dynamodb import pitr
from strata.services.dynamodb.backups import KIND, new_table, start_backup, write_file
from strata.services.dynamodb.core import DynamoDBCore
from strata.services.dynamodb.errors import validation
from strata.services.dynamodb.state import scope_of, table_name
from strata.services.dynamodb.tables import (
    TableMeta,
    build_index,
    check_on_demand,
    check_table_name,
    check_throughput,
    describe,
)
from strata.sim.clock import clock


def _ts(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _error(code: str, message: str) -> ServiceError:
    return ServiceError(code, message, 400)


class BackupOperations(DynamoDBCore):
    # -- on-demand backups ------------------------------------------------------------------------

    async def create_backup(self, ctx: RequestContext, req: dict) -> dict:
        name = table_name(req.get("TableName"))
        meta = self.state.tables.get((scope_of(ctx), name))
        if meta is None:
            raise _error("TableNotFoundException", f"Table not found: {name}")
        backup_name = check_table_name(req.get("BackupName"), "backupName")
        doc, export = start_backup(self.state, self._backup_dir(), meta, backup_name, "USER")
        details = _details(doc)  # CREATING: AVAILABLE once the export is done (backups.py)
        self.bulk.spawn(export)
        return {"BackupDetails": details}

    def _backup(self, ctx: RequestContext, arn: object) -> dict:
        doc = self.state.store.db.get_doc(KIND, arn) if isinstance(arn, str) else None
        if doc is None or doc["table"]["scope"] != scope_of(ctx):
            raise _error("BackupNotFoundException", f"Backup not found: {arn}")
        return doc

    def describe_backup(self, ctx: RequestContext, req: dict) -> dict:
        return {"BackupDescription": _description(self._backup(ctx, req.get("BackupArn")))}

    def list_backups(self, ctx: RequestContext, req: dict) -> dict:
        scope = scope_of(ctx)
        limit = req.get("Limit") or 100
        if not 1 <= limit <= 100:
            raise validation(
                f"1 validation error detected: Value '{limit}' at 'limit' failed to satisfy constraint: "
                "Member must have value less than or equal to 100"
            )
        kind = req.get("BackupType") or "USER"
        lower, upper = req.get("TimeRangeLowerBound"), req.get("TimeRangeUpperBound")
        docs = [
            d
            for d in self.state.store.db.list_docs(KIND)
            if d["table"]["scope"] == scope
            and (kind == "ALL" or d["type"] == kind)
            and (not req.get("TableName") or d["table"]["name"] == table_name(req["TableName"]))
            and (lower is None or d["created"] >= lower.timestamp())
            and (upper is None or d["created"] < upper.timestamp())
        ]
        docs.sort(key=lambda d: (d["created"], d["arn"]))
        start = req.get("ExclusiveStartBackupArn")
        if start:
            at = next((i for i, d in enumerate(docs) if d["arn"] == start), None)
            docs = docs[at + 1 :] if at is not None else []
        out: dict = {"BackupSummaries": [_summary(d) for d in docs[:limit]]}
        if len(docs) > limit:
            out["LastEvaluatedBackupArn"] = docs[limit - 1]["arn"]
        return out

    def _available(self, ctx: RequestContext, arn: object) -> dict:
        doc = self._backup(ctx, arn)
        if doc.get("status") == "CREATING":
            raise _error(
                "BackupInUseException",
                "There is another ongoing conflicting backup control plane operation on the table. "
                "The backup is either being created, deleted or restored to a table.",
            )
        return doc

    async def delete_backup(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._available(ctx, req.get("BackupArn"))
        if any((m.restore or {}).get("backup_arn") == doc["arn"] for m in self.state.creating.values()):
            raise _error("BackupInUseException", f"Backup is being used to restore a table: {doc['arn']}")
        self.state.store.db.delete_doc(KIND, doc["arn"])
        (self._backup_dir() / doc["file"]).unlink(missing_ok=True)
        doc["status"] = "DELETED"
        return {"BackupDescription": _description(doc)}

    # -- restores ---------------------------------------------------------------------------------

    async def restore_table_from_backup(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._available(ctx, req.get("BackupArn"))
        source = TableMeta.from_json(doc["table"])
        info = {
            "backup_arn": doc["arn"],
            "restore_time": doc["created"],
            "file": doc["file"],
            "bytes": doc["size"],
        }
        return self._restore(ctx, req, source, info)

    async def restore_table_to_point_in_time(self, ctx: RequestContext, req: dict) -> dict:
        given = req.get("SourceTableArn") or req.get("SourceTableName")
        if not given:
            raise validation("One of SourceTableArn or SourceTableName must be specified")
        name = table_name(given)
        source = self.state.tables.get((scope_of(ctx), name))
        if source is None:
            raise _error("SourceTableNotFoundException", f"Source table not found: {name}")
        if not source.pitr:
            raise _error(
                "PointInTimeRecoveryUnavailableException",
                f"Point in time recovery is not enabled for table '{name}'",
            )
        self._check_target(ctx, req.get("TargetTableName"))
        earliest, latest = pitr.window(source, clock.time())
        if req.get("UseLatestRestorableTime"):
            at = latest
        elif req.get("RestoreDateTime") is None:
            raise validation("Either RestoreDateTime or UseLatestRestorableTime must be specified")
        else:
            at = req["RestoreDateTime"].timestamp()
            if not earliest <= at <= latest:
                raise _error(
                    "InvalidRestoreTimeException",
                    f"Restore time {_ts(at).isoformat()} is not between EarliestRestorableDateTime "
                    f"{_ts(earliest).isoformat()} and LatestRestorableDateTime {_ts(latest).isoformat()}",
                )
        path = self._backup_dir() / f"pitr-{uuid.uuid4().hex}.bak"
        _, size = await run_blocking(
            write_file,
            path,
            lambda write: pitr.export(self.state.store.snapshot_source, source.tid, at, write),
        )
        info = {
            "table_arn": source.arn,
            "restore_time": at,
            "file": path.name,
            "temporary": True,
            "bytes": size,
        }
        try:
            return self._restore(ctx, req, source, info)
        except ServiceError:
            path.unlink(missing_ok=True)
            raise

    def _check_target(self, ctx: RequestContext, target: object) -> str:
        name = check_table_name(target, "targetTableName")
        if self.state.find(ctx, name) is not None:
            raise _error("TableAlreadyExistsException", f"Table already exists: {name}")
        return name

    def _restore(self, ctx: RequestContext, req: dict, source: TableMeta, info: dict) -> dict:
        """Create the target table (CREATING) and start loading `info['file']` into it."""
        name = self._check_target(ctx, req.get("TargetTableName"))
        self._table_operation(ctx, creates=True)
        store = self.state.store
        now = clock.time()
        with store.write():
            meta = new_table(source, name, store.next_id("table"), lambda: store.next_id("index"), now, info)
            meta.scope = scope_of(ctx)
            _overrides(meta, req, lambda: store.next_id("index"), now)
            self._check_quotas(meta)
            store.insert_table(meta.to_json())
        self.state.creating[(meta.scope, name)] = meta
        self.bulk.spawn(self.restorer.load(meta))
        return {"TableDescription": describe(meta, 0, 0, {}, "CREATING", now)}

    # -- point-in-time recovery -------------------------------------------------------------------

    def _pitr_table(self, ctx: RequestContext, name: object) -> TableMeta:
        meta = self.state.tables.get((scope_of(ctx), table_name(name)))
        if meta is None:
            raise _error("TableNotFoundException", f"Table not found: {table_name(name)}")
        return meta

    def describe_continuous_backups(self, ctx: RequestContext, req: dict) -> dict:
        meta = self._pitr_table(ctx, req.get("TableName"))
        desc: dict = {"PointInTimeRecoveryStatus": "ENABLED" if meta.pitr else "DISABLED"}
        if meta.pitr:
            earliest, latest = pitr.window(meta, clock.time())
            desc.update(
                EarliestRestorableDateTime=_ts(earliest),
                LatestRestorableDateTime=_ts(latest),
                RecoveryPeriodInDays=meta.pitr_days,
            )
        return {
            "ContinuousBackupsDescription": {
                "ContinuousBackupsStatus": "ENABLED",
                "PointInTimeRecoveryDescription": desc,
            }
        }

    async def update_continuous_backups(self, ctx: RequestContext, req: dict) -> dict:
        meta = self._pitr_table(ctx, req.get("TableName"))
        spec = req.get("PointInTimeRecoverySpecification") or {}
        enabled = bool(spec.get("PointInTimeRecoveryEnabled"))
        days = spec.get("RecoveryPeriodInDays")
        if days is not None and not 1 <= days <= pitr.MAX_DAYS:
            raise validation(
                f"1 validation error detected: Value '{days}' at 'pointInTimeRecoverySpecification."
                "recoveryPeriodInDays' failed to satisfy constraint: Member must have value "
                f"{'greater than or equal to 1' if days < 1 else 'less than or equal to 35'}"
            )
        if days is not None and not enabled:
            raise validation(
                "RecoveryPeriodInDays can only be specified when PointInTimeRecoveryEnabled is true"
            )
        store = self.state.store

        def write() -> None:
            if enabled and not meta.pitr:
                meta.pitr_since = clock.time()
            meta.pitr = enabled
            meta.pitr_days = days or (meta.pitr_days if enabled else pitr.MAX_DAYS)
            self.state.save(meta)

        await store.db.write(write)
        return self.describe_continuous_backups(ctx, req)


def _overrides(meta: TableMeta, req: dict, next_iid, now: float) -> None:
    """The restore request's Billing/Throughput/OnDemandThroughput/Index/SSE overrides, applied to
    the new table (an on-demand maximum is kept from the source unless overridden)."""
    billing = req.get("BillingModeOverride") or meta.billing_mode
    if req.get("BillingModeOverride") or req.get("ProvisionedThroughputOverride"):
        tp = req.get("ProvisionedThroughputOverride")
        if tp is None and billing == "PROVISIONED" and meta.billing_mode == "PROVISIONED":
            tp = meta.throughput
        meta.throughput = check_throughput(tp, billing)
        meta.billing_mode = billing
    if billing == "PROVISIONED":
        meta.on_demand = None
    if req.get("OnDemandThroughputOverride"):
        meta.on_demand = check_on_demand(req["OnDemandThroughputOverride"], billing)
    types = {d["AttributeName"]: d["AttributeType"] for d in meta.attribute_definitions}
    for member, is_global in (("GlobalSecondaryIndexOverride", True), ("LocalSecondaryIndexOverride", False)):
        specs = req.get(member)
        if specs is None:
            continue
        kept = [ix for ix in meta.indexes if ix.is_global != is_global]
        built = [build_index(s, types, next_iid(), is_global, billing, now, meta.hash_key) for s in specs]
        meta.indexes = kept + built
    for ix in meta.indexes:
        if billing == "PROVISIONED":
            ix.on_demand = None
        if ix.is_global and billing == "PAY_PER_REQUEST":
            ix.throughput = {"ReadCapacityUnits": 0, "WriteCapacityUnits": 0}
        elif ix.is_global and not (ix.throughput or {}).get("ReadCapacityUnits"):
            ix.throughput = dict(meta.throughput)
    if req.get("SSESpecificationOverride") is not None:
        sse = req["SSESpecificationOverride"]
        meta.sse = sse if sse.get("Enabled") else None


def _details(doc: dict) -> dict:
    out = {
        "BackupArn": doc["arn"],
        "BackupName": doc["name"],
        "BackupSizeBytes": doc["size"],
        "BackupStatus": doc.get("status", "AVAILABLE"),
        "BackupType": doc["type"],
        "BackupCreationDateTime": _ts(doc["created"]),
    }
    if doc.get("expires"):
        out["BackupExpiryDateTime"] = _ts(doc["expires"])
    return out


def _summary(doc: dict) -> dict:
    t = doc["table"]
    return {"TableName": t["name"], "TableId": t["table_id"], "TableArn": t["arn"], **_details(doc)}


def _description(doc: dict) -> dict:
    meta = TableMeta.from_json(doc["table"])
    table = describe(meta, doc["items"], doc["table_bytes"], {}, "ACTIVE", doc["created"])
    source = {
        "TableName": meta.name,
        "TableId": meta.table_id,
        "TableArn": meta.arn,
        "TableSizeBytes": doc["table_bytes"],
        "KeySchema": meta.key_schema,
        "TableCreationDateTime": _ts(meta.created),
        "ProvisionedThroughput": {
            "ReadCapacityUnits": meta.throughput["ReadCapacityUnits"],
            "WriteCapacityUnits": meta.throughput["WriteCapacityUnits"],
        },
        "ItemCount": doc["items"],
        "BillingMode": meta.billing_mode,
    }
    features: dict = {}
    for member in ("LocalSecondaryIndexes", "GlobalSecondaryIndexes", "SSEDescription"):
        if member in table:
            keep = ("IndexName", "KeySchema", "Projection", "ProvisionedThroughput")
            features[member] = (
                [{k: v for k, v in ix.items() if k in keep} for ix in table[member]]
                if member != "SSEDescription"
                else table[member]
            )
    return {
        "BackupDetails": _details(doc),
        "SourceTableDetails": source,
        "SourceTableFeatureDetails": features,
    }
