"""PartiQLOperations: ExecuteStatement, BatchExecuteStatement and ExecuteTransaction.

Each statement is parsed (cached), bound to its Parameters and compiled to the request of an item
operation of this same provider (get_item, query, scan, put_item, update_item, delete_item,
transact_get_items, transact_write_items), so validation, conditions, capacity, the meter,
durability and transaction conflicts are the classic API's own.

- ExecuteStatement: one statement; a SELECT pages by Limit / 1 MB with NextToken (and the page's
  LastEvaluatedKey).
- BatchExecuteStatement: up to 25 statements, all reads (each a single-item read) or all writes;
  each statement succeeds or fails on its own, its error in its Responses entry.
- ExecuteTransaction: up to 100 statements, all reads (TransactGetItems) or all writes
  (TransactWriteItems, with EXISTS(...) as a condition check): all or nothing.
"""

from __future__ import annotations

import asyncio

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.dynamodb.errors import transaction_canceled, validation
from strata.services.dynamodb.item_operations import ItemOperations
from strata.services.dynamodb.partiql import authz
from strata.services.dynamodb.partiql import compile as comp
from strata.services.dynamodb.partiql import parser as p
from strata.services.dynamodb.partiql.results import (
    batch_error,
    duplicate_item,
    merge_capacity,
    next_token,
    start_key,
)

MAX_BATCH = 25
MAX_TRANSACTION = 100
_READS_ONLY_EXISTS = "EXISTS can only be used in ExecuteTransaction write requests."
_TRANSACT_KIND = {"put": "Put", "update": "Update", "delete": "Delete", "check": "ConditionCheck"}


def _length(member: str, items: list, limit: int) -> None:
    if not items:
        raise validation(
            f"1 validation error detected: Value '[]' at '{member}' failed to satisfy constraint: "
            "Member must have length greater than or equal to 1"
        )
    if len(items) > limit:
        raise validation(
            f"1 validation error detected: Value at '{member}' failed to satisfy constraint: "
            f"Member must have length less than or equal to {limit}"
        )


class PartiQLOperations(ItemOperations):
    def request_targets(
        self, operation: str, req: dict, region: str, account: str
    ) -> list[tuple[str, str]] | None:
        """The authorizer's hook: PartiQL requests need PartiQL actions on the tables they name."""
        if operation not in authz.OPERATIONS:
            return None
        return authz.targets(operation, req, region, account)

    def _compile(self, ctx: RequestContext, spec: dict) -> tuple[p.Parsed, comp.Request]:
        parsed = p.parse(spec.get("Statement") or "")
        bound = comp.bound_values(parsed, spec.get("Parameters"))
        stmt = parsed.statement
        table = stmt.select.table if isinstance(stmt, p.Exists) else stmt.table
        meta = self.state.table(ctx, table)
        r = comp.template(parsed, meta).bind(bound)
        if isinstance(stmt, p.Select):
            if spec.get("ConsistentRead"):
                if stmt.index is not None and meta.index(stmt.index).is_global:
                    raise validation("Strongly consistent read is not supported on Global Secondary Indexes")
                r.req["ConsistentRead"] = True
            return parsed, r
        if spec.get("ReturnValuesOnConditionCheckFailure") and r.kind != "put":
            r.req["ReturnValuesOnConditionCheckFailure"] = spec["ReturnValuesOnConditionCheckFailure"]
        return parsed, r

    async def _write(self, ctx: RequestContext, r: comp.Request) -> dict:
        try:
            if r.kind == "put":
                return await self.put_item(ctx, r.req)
            if r.kind == "update":
                return await self.update_item(ctx, r.req)
            return await self.delete_item(ctx, r.req)
        except ServiceError as e:
            if r.kind == "put" and e.code == "ConditionalCheckFailedException":
                raise duplicate_item() from None
            raise

    async def execute_statement(self, ctx: RequestContext, req: dict) -> dict:
        limit = req.get("Limit")
        if limit is not None and limit < 1:
            raise validation(
                f"1 validation error detected: Value '{limit}' at 'limit' failed to satisfy constraint: "
                "Member must have value greater than or equal to 1"
            )
        parsed, r = self._compile(ctx, req)
        if isinstance(parsed.statement, p.Exists):
            raise validation(_READS_ONLY_EXISTS)
        if req.get("ReturnConsumedCapacity"):
            r.req["ReturnConsumedCapacity"] = req["ReturnConsumedCapacity"]
        out: dict = {}
        # Reads through `store.read` (on PostgreSQL in a read thread, not on the event loop), by
        # ItemOperations' own methods: with several gateways the instance's are wrapped in
        # coroutines that sync the tables first (done already for this operation).
        read = self.state.store.db.read
        if r.kind == "get":
            got = await read(lambda: ItemOperations.get_item(self, ctx, r.req))
            out["Items"] = [got["Item"]] if "Item" in got else []
        elif r.kind in ("query", "scan"):
            got = await read(lambda: self._read_pages(ctx, r, req, out))
        else:
            got = await self._write(ctx, r)
            out["Items"] = [got["Attributes"]] if got.get("Attributes") else []
        if r.shape is not None:  # (an empty RETURNING MODIFIED projection is no row at all)
            shaped = [r.shape.apply(i) for i in out["Items"]]
            out["Items"] = [x for x in shaped if x] if r.shape.modified else shaped
        if "ConsumedCapacity" in got:
            out["ConsumedCapacity"] = got["ConsumedCapacity"]
        return out

    def _read_pages(self, ctx: RequestContext, r: comp.Request, req: dict, out: dict) -> dict:
        """A Query or Scan page into `out`; a `pk IN (...)` SELECT queries its partitions in turn,
        Limit counting across them, the NextToken saying which partition and where in it."""
        statement = req["Statement"]
        part, start = start_key(statement, req["NextToken"]) if req.get("NextToken") else (0, None)
        parts = r.parts if r.parts is not None else [r.req]
        if part >= len(parts):
            raise validation("Invalid NextToken")
        limit = req.get("Limit")
        items: list[dict] = []
        reports: list[dict] = []
        got: dict = {}
        while part < len(parts):
            one = dict(parts[part])
            if req.get("ReturnConsumedCapacity"):
                one["ReturnConsumedCapacity"] = req["ReturnConsumedCapacity"]
            if req.get("ConsistentRead"):
                one["ConsistentRead"] = True
            if limit is not None:
                one["Limit"] = limit
            if start is not None:
                one["ExclusiveStartKey"] = start
            got = (ItemOperations.query if r.kind == "query" else ItemOperations.scan)(self, ctx, one)
            items += got.get("Items", [])
            if "ConsumedCapacity" in got:
                reports.append(got["ConsumedCapacity"])
            if got.get("LastEvaluatedKey"):
                out["NextToken"] = next_token(statement, got["LastEvaluatedKey"], part)
                out["LastEvaluatedKey"] = got["LastEvaluatedKey"]
                break
            part, start = part + 1, None
            if limit is not None:
                limit -= got.get("ScannedCount", 0)
                if limit <= 0 and part < len(parts):
                    out["NextToken"] = next_token(statement, None, part)
                    break
        out["Items"] = items
        return {"ConsumedCapacity": merge_capacity(reports)[0]} if reports else {}

    async def batch_execute_statement(self, ctx: RequestContext, req: dict) -> dict:
        statements = req.get("Statements") or []
        _length("statements", statements, MAX_BATCH)
        capacity = req.get("ReturnConsumedCapacity")
        responses: list[dict] = []
        work: list[tuple[int, comp.Request]] = []
        reads = writes = False
        for i, spec in enumerate(statements):
            responses.append({})
            try:
                parsed, r = self._compile(ctx, spec)
            except ServiceError as e:
                responses[i]["Error"] = batch_error(e)
                continue
            if isinstance(parsed.statement, p.Exists):
                responses[i]["Error"] = batch_error(validation(_READS_ONLY_EXISTS))
                continue
            if isinstance(parsed.statement, p.Select):
                reads = True
                if r.kind != "get":
                    responses[i]["Error"] = batch_error(
                        validation(
                            "Select statements within BatchExecuteStatement must specify the primary key in the "
                            "where clause."
                        )
                    )
                    continue
            else:
                writes = True
            if capacity:
                r.req["ReturnConsumedCapacity"] = capacity
            work.append((i, r))
        if reads and writes:
            raise validation("Read and write requests together in the same batch is not supported.")
        reports: list[dict] = []
        if reads:
            results = await self.state.store.db.read(lambda: self._batch_reads(ctx, work))
        else:
            # Submitted together, the writes share one group commit; each is atomic on its own.
            results = await asyncio.gather(*(self._write(ctx, r) for _, r in work), return_exceptions=True)
        for (i, r), got in zip(work, results, strict=True):
            entry = responses[i]
            if isinstance(got, ServiceError):
                entry["Error"] = batch_error(got)
                entry["TableName"] = r.table
                continue
            if isinstance(got, BaseException):
                raise got
            entry["TableName"] = r.table
            item = got.get("Item") or got.get("Attributes")
            if item and r.shape is not None:
                item = r.shape.apply(item)
            if item:
                entry["Item"] = item
            if "ConsumedCapacity" in got:
                reports.append(got["ConsumedCapacity"])
        out: dict = {"Responses": responses}
        if capacity in ("TOTAL", "INDEXES"):
            out["ConsumedCapacity"] = merge_capacity(reports)
        return out

    def _batch_reads(self, ctx: RequestContext, work: list[tuple[int, comp.Request]]) -> list:
        """Each SELECT of a batch: its GetItem's answer, or the ServiceError it met."""
        results: list = []
        for _, r in work:
            try:
                results.append(ItemOperations.get_item(self, ctx, r.req))
            except ServiceError as e:
                results.append(e)
        return results

    async def execute_transaction(self, ctx: RequestContext, req: dict) -> dict:
        statements = req.get("TransactStatements") or []
        _length("transactStatements", statements, MAX_TRANSACTION)
        items: list[dict] = []
        inserts: set[int] = set()
        reads = writes = False
        for i, spec in enumerate(statements):
            parsed, r = self._compile(ctx, spec)
            stmt = parsed.statement

            def refuse(message: str, i: int = i) -> Exception:
                return validation(f"Validation failed in TransactStatements[{i}]: {message}")

            if isinstance(stmt, (p.Update, p.Delete)) and stmt.returning:
                raise refuse("RETURNING clause is not supported in ExecuteTransaction.")
            if isinstance(stmt, p.Select):
                reads = True
                if stmt.index is not None:
                    raise refuse("Reads on indices are not supported within transactions.")
                if r.kind != "get":
                    raise refuse(
                        "Select statements within ExecuteTransaction must specify the primary key in the where clause."
                    )
                r.req.pop("ConsistentRead", None)
                items.append({"Get": r.req})
            else:
                writes = True
                if r.kind == "put":
                    inserts.add(i)
                items.append({_TRANSACT_KIND[r.kind]: r.req})
            if reads and writes:
                raise validation(
                    "ExecuteTransaction API does not support both read and write operations in the same request."
                )
        inner: dict = {"TransactItems": items}
        if req.get("ReturnConsumedCapacity"):
            inner["ReturnConsumedCapacity"] = req["ReturnConsumedCapacity"]
        if reads:
            got = await self.state.store.db.read(lambda: ItemOperations.transact_get_items(self, ctx, inner))
            out: dict = {"Responses": got["Responses"]}
        else:
            if req.get("ClientRequestToken"):
                inner["ClientRequestToken"] = req["ClientRequestToken"]
            try:
                got = await self.transact_write_items(ctx, inner)
            except ServiceError as e:
                if e.code != "TransactionCanceledException" or not inserts:
                    raise
                reasons = [
                    {"Code": "DuplicateItem", "Message": "Duplicate primary key exists in table"}
                    if i in inserts and reason.get("Code") == "ConditionalCheckFailed"
                    else reason
                    for i, reason in enumerate(e.fields.get("CancellationReasons", []))
                ]
                raise transaction_canceled(reasons) from None
            out = {}
        if "ConsumedCapacity" in got:
            out["ConsumedCapacity"] = got["ConsumedCapacity"]
        return out
