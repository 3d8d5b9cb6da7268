"""Item operations: Put/Get/Update/DeleteItem, Query, Scan, BatchGet/BatchWriteItem,
TransactGet/TransactWriteItems (the semantics live in item_ops, query, batch, transactions)."""

from __future__ import annotations

from strata.context import RequestContext
from strata.services.dynamodb import batch, item_ops, query, transactions
from strata.services.dynamodb.core import DynamoDBCore


class ItemOperations(DynamoDBCore):
    async def put_item(self, ctx: RequestContext, req: dict) -> dict:
        state = self.state
        return await state.store.db.write(
            lambda: item_ops.put_item(state, state.table(ctx, req.get("TableName")), req)
        )

    def get_item(self, ctx: RequestContext, req: dict) -> dict:
        return item_ops.get_item(self.state, self.state.table(ctx, req.get("TableName")), req)

    async def update_item(self, ctx: RequestContext, req: dict) -> dict:
        state = self.state
        return await state.store.db.write(
            lambda: item_ops.update_item(state, state.table(ctx, req.get("TableName")), req)
        )

    async def delete_item(self, ctx: RequestContext, req: dict) -> dict:
        state = self.state
        return await state.store.db.write(
            lambda: item_ops.delete_item(state, state.table(ctx, req.get("TableName")), req)
        )

    def query(self, ctx: RequestContext, req: dict) -> dict:
        return query.query(self.state, self.state.table(ctx, req.get("TableName")), req)

    def scan(self, ctx: RequestContext, req: dict) -> dict:
        return query.scan(self.state, self.state.table(ctx, req.get("TableName")), req)

    def batch_get_item(self, ctx: RequestContext, req: dict) -> dict:
        return batch.batch_get_item(self.state, ctx, req)

    async def batch_write_item(self, ctx: RequestContext, req: dict) -> dict:
        return await self.state.store.db.write(lambda: batch.batch_write_item(self.state, ctx, req))

    async def transact_write_items(self, ctx: RequestContext, req: dict) -> dict:
        state = self.state
        taken: list = []

        def write() -> dict:
            out, held, token = transactions.transact_write_items(state, ctx, req)
            state.locks.update(held)  # until durable: concurrent writes of these items conflict
            if token:
                state.tx_tokens.add(token)
            taken.append((held, token))
            return out

        try:
            return await state.store.db.write(write)
        finally:
            for held, token in taken:
                state.locks.difference_update(held)
                state.tx_tokens.discard(token)

    def transact_get_items(self, ctx: RequestContext, req: dict) -> dict:
        return transactions.transact_get_items(self.state, ctx, req)
