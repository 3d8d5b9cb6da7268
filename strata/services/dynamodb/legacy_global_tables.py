"""Global tables version 2017.11.29 (legacy): CreateGlobalTable, UpdateGlobalTable,
DescribeGlobalTable, ListGlobalTables.

A legacy global table joins tables that already exist, one per region, of the same name and
key schema, empty, with NEW_AND_OLD_IMAGES streams, as DynamoDB requires; from then on they
replicate like version 2019.11.21 replicas (replication.py). What marks it legacy is a
document per account and name (`ddb-global-tables`: its regions and creation time), which
the legacy operations list and describe; tables made global by UpdateTable ReplicaUpdates have
none, so DescribeGlobalTable does not know them, as in DynamoDB. Unlike DynamoDB's legacy
version, Strata adds no `aws:rep:*` attributes to the items (a difference an application can
see only by reading them).
"""

from __future__ import annotations

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.dynamodb.core import DynamoDBCore
from strata.services.dynamodb.errors import validation
from strata.services.dynamodb.tables import TableMeta, _ts
from strata.sim.clock import clock

KIND = "ddb-global-tables"
VERSION = "2017.11.29"


def _not_found(name: str) -> ServiceError:
    return ServiceError(
        "GlobalTableNotFoundException",
        f"Global table not found: Global table with name: '{name}' does not exist.",
        400,
    )


class LegacyGlobalTableOperations(DynamoDBCore):
    def _legacy(self, account: str, name: str) -> dict | None:
        """The legacy global table of that name in the account, or None."""
        return self.state.store.db.get_doc(KIND, f"{account}/{name}")

    def _legacy_tables(self, ctx: RequestContext, name: str, regions: list[str]) -> list[TableMeta]:
        """The tables of that name in those regions, each as a legacy replica must be."""
        out = []
        for region in regions:
            meta = self.state.tables.get((f"{ctx.account_id}:{region}", name))
            if meta is None:
                raise ServiceError(
                    "TableNotFoundException", f"Table not found: {name} in region {region}", 400
                )
            if not meta.stream or meta.stream.get("StreamViewType") != "NEW_AND_OLD_IMAGES":
                raise validation(
                    "One or more parameter values were invalid: Table must have DynamoDB Streams enabled with "
                    f"StreamViewType NEW_AND_OLD_IMAGES: {name} in region {region}"
                )
            if self.state.store.counts(meta.tid)[0]:
                raise validation(
                    f"One or more parameter values were invalid: Table is not empty: {name} in region {region}"
                )
            if meta.group:
                raise ServiceError(
                    "GlobalTableAlreadyExistsException", f"Global table already exists: {name}", 400
                )
            out.append(meta)
        if out and any(m.key_schema != out[0].key_schema for m in out):
            raise validation(
                "One or more parameter values were invalid: The tables of a global table must have the same "
                f"key schema: {name}"
            )
        return out

    def _legacy_description(self, ctx: RequestContext, doc: dict) -> dict:
        return {
            "GlobalTableName": doc["name"],
            "GlobalTableArn": f"arn:aws:dynamodb::{ctx.account_id}:global-table/{doc['name']}",
            "CreationDateTime": _ts(doc["created"]),
            "GlobalTableStatus": "ACTIVE",
            "ReplicationGroup": [
                {"RegionName": r, "ReplicaStatus": "ACTIVE"} for r in self._legacy_regions(ctx, doc)
            ],
        }

    def _legacy_regions(self, ctx: RequestContext, doc: dict) -> list[str]:
        """The doc's regions that still hold the table (DeleteTable removes one)."""
        return [r for r in doc["regions"] if (f"{ctx.account_id}:{r}", doc["name"]) in self.state.tables]

    async def create_global_table(self, ctx: RequestContext, req: dict) -> dict:
        name = req.get("GlobalTableName") or ""
        regions = [g.get("RegionName") for g in req.get("ReplicationGroup") or []]
        if self._legacy(ctx.account_id, name) is not None:
            raise ServiceError(
                "GlobalTableAlreadyExistsException", f"Global table already exists: {name}", 400
            )
        if not regions:
            raise validation("One or more parameter values were invalid: ReplicationGroup must not be empty")
        if len(set(regions)) != len(regions):
            raise validation(
                "One or more parameter values were invalid: Duplicate region in ReplicationGroup"
            )
        tables = self._legacy_tables(ctx, name, regions)
        doc = {"name": name, "regions": regions, "created": clock.time()}
        if len(tables) > 1:
            await self.replicator.link(tables[:1], tables[1:])
        await self.state.store.db.write(
            lambda: self.state.store.db.put_doc(KIND, f"{ctx.account_id}/{name}", doc)
        )
        return {"GlobalTableDescription": self._legacy_description(ctx, doc)}

    def describe_global_table(self, ctx: RequestContext, req: dict) -> dict:
        name = req.get("GlobalTableName") or ""
        doc = self._legacy(ctx.account_id, name)
        if doc is None:
            raise _not_found(name)
        return {"GlobalTableDescription": self._legacy_description(ctx, doc)}

    def list_global_tables(self, ctx: RequestContext, req: dict) -> dict:
        limit = req.get("Limit") or 100
        if limit < 1:
            raise validation(
                f"1 validation error detected: Value '{limit}' at 'limit' failed to satisfy constraint: "
                "Member must have value greater than or equal to 1"
            )
        start = req.get("ExclusiveStartGlobalTableName") or ""
        region = req.get("RegionName")
        found = []
        for doc in self.state.store.db.list_docs(KIND, f"{ctx.account_id}/"):
            regions = self._legacy_regions(ctx, doc)
            if doc["name"] > start and (region is None or region in regions):
                found.append(
                    {"GlobalTableName": doc["name"], "ReplicationGroup": [{"RegionName": r} for r in regions]}
                )
        out: dict = {"GlobalTables": found[:limit]}
        if len(found) > limit:
            out["LastEvaluatedGlobalTableName"] = found[limit - 1]["GlobalTableName"]
        return out

    async def update_global_table(self, ctx: RequestContext, req: dict) -> dict:
        name = req.get("GlobalTableName") or ""
        doc = self._legacy(ctx.account_id, name)
        if doc is None:
            raise _not_found(name)
        for update in req.get("ReplicaUpdates") or []:
            current = self._legacy_regions(ctx, doc)
            members = [self._member(ctx, name, r) for r in current]
            if update.get("Create"):
                region = update["Create"].get("RegionName")
                if region in current:
                    raise ServiceError(
                        "ReplicaAlreadyExistsException", f"Replica already exists in region {region}", 400
                    )
                joining = self._legacy_tables(ctx, name, [region])
                if members:
                    await self.replicator.link(members, joining)
                doc["regions"] = [*current, region]
            elif update.get("Delete"):
                region = update["Delete"].get("RegionName")
                if region not in current:
                    raise ServiceError(
                        "ReplicaNotFoundException", f"Replica not found in region {region}", 400
                    )
                await self.replicator.detach(self._member(ctx, name, region))
                doc["regions"] = [r for r in current if r != region]
            await self.state.store.db.write(
                lambda: self.state.store.db.put_doc(KIND, f"{ctx.account_id}/{name}", doc)
            )
        return {"GlobalTableDescription": self._legacy_description(ctx, doc)}

    def _member(self, ctx: RequestContext, name: str, region: str) -> TableMeta:
        key = (f"{ctx.account_id}:{region}", name)
        return self.state.tables[key]
