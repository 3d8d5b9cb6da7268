"""Bulk work in the background: DeleteTable, GSI backfill, dropping a deleted GSI's rows, and the
one-time rewrite of items stored in an older format (TTL sweeps run from the scheduler: ttl.py).

On a large table each of these touches millions of rows; done in one go on the event loop it
would stall every other request for seconds. Here the work is cut into chunks of
`dynamodb_bulk_chunk` rows; each chunk is one `db.write` (a SAVEPOINT in the group commit,
awaited until durable), so other requests run between chunks and the work is paced by the disk.

Meanwhile the table shows DELETING and the index CREATING (Backfilling=true), as in DynamoDB.
Every step is durable before the next, and the state that says what is left is saved in the same
SAVEPOINT as the chunk it describes, so after a kill -9 `resume()` picks up where it stopped: a
DELETING table (invisible to item operations) finishes deleting, a backfill continues after its
saved cursor (re-indexing an item twice is harmless: index rows are keyed), a dropped index's
remaining rows are removed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from functools import partial
from typing import Any

from strata.services.dynamodb import items as itm
from strata.services.dynamodb.state import State
from strata.services.dynamodb.store import ITEM_FORMAT, loads
from strata.services.dynamodb.tables import IndexMeta, TableMeta

log = logging.getLogger("strata")


class Bulk:
    def __init__(self, state: State, chunk: int) -> None:
        self.state = state
        self.chunk = max(1, chunk)
        self._tasks: set[asyncio.Task] = set()

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("dynamodb background work failed: %r", task.exception())

    def resume(self) -> None:
        """Restart the work a previous run left unfinished (after a crash or a stop)."""
        before = len(self._tasks)
        for meta in list(self.state.deleting.values()):
            self.spawn(self.delete_table(meta))
        for meta in list(self.state.tables.values()):
            for iid in meta.dropped:
                self.spawn(self.drop_index(meta, iid))
            for ix in meta.indexes:
                if ix.backfilling:
                    self.spawn(self.backfill(meta, ix.iid))
        if len(self._tasks) > before:
            log.info("dynamodb: resuming %d unfinished table jobs", len(self._tasks) - before)
        if self.state.store.item_format() < ITEM_FORMAT:
            self.spawn(self.migrate())

    async def stop(self) -> None:
        """Cancel the work in flight; what is done is durable, `resume()` does the rest later."""
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def idle(self) -> None:
        """Wait until no background work is left (tests, orderly shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def delete_table(self, meta: TableMeta) -> None:
        """Remove a DELETING table's items, its index rows, then the table itself."""
        store = self.state.store
        while True:
            n = await store.db.write(lambda: store.delete_items_chunk(meta.tid, self.chunk))
            if n < self.chunk:
                break
        for iid in [ix.iid for ix in meta.indexes] + list(meta.dropped):
            await self._delete_index_rows(iid)

        def drop() -> None:
            store.drop_table_row(meta.tid)
            self.state.retire_streams(meta)

        await store.db.write(drop)
        key = (meta.scope, meta.name)
        if self.state.deleting.get(key) is meta:
            del self.state.deleting[key]

    async def _delete_index_rows(self, iid: int) -> None:
        store = self.state.store

        def chunk() -> int:
            n = store.delete_index_chunk(iid, self.chunk)
            if n < self.chunk:
                store.forget_index(iid)
            return n

        while await store.db.write(chunk) == self.chunk:
            pass

    async def drop_index(self, meta: TableMeta, iid: int) -> None:
        """Remove a deleted GSI's rows, then forget it in the table's metadata."""
        await self._delete_index_rows(iid)
        current = self.state.tables.get((meta.scope, meta.name))
        if current is None or current.tid != meta.tid or iid not in current.dropped:
            return  # the table was deleted meanwhile (its deletion covers the rows)
        current.dropped.remove(iid)
        await self.state.store.db.write(lambda: self.state.store.save_meta(current.to_json()))

    async def migrate(self) -> None:
        """Rewrite items stored by an earlier version (marshal) as MessagePack, a chunk at a time.

        Reads understand both formats, so nothing waits for this; a restart starts the pass
        over (rows already rewritten are only read again).
        """
        store = self.state.store
        after = await store.db.write(partial(store.migrate_chunk, None, self.chunk))
        while after is not None:
            after = await store.db.write(partial(store.migrate_chunk, after, self.chunk))

    def _index(self, meta: TableMeta, iid: int) -> tuple[TableMeta, IndexMeta] | None:
        """The table's current metadata (UpdateTable replaces it) and the index, if both remain."""
        current = self.state.tables.get((meta.scope, meta.name))
        if current is None or current.tid != meta.tid:
            return None
        ix = next((i for i in current.indexes if i.iid == iid), None)
        return (current, ix) if ix is not None and ix.backfilling else None

    async def backfill(self, meta: TableMeta, iid: int) -> None:
        """Index the table's existing items, a chunk at a time, then make the index ACTIVE.

        Items written meanwhile are indexed by their own write (the index is in the table's
        metadata from the start), so only the items already there need this pass.
        """
        store = self.state.store
        while True:
            found = self._index(meta, iid)
            if found is None:
                return  # index or table deleted meanwhile
            current, ix = found
            after = (bytes.fromhex(ix.cursor[0]), bytes.fromhex(ix.cursor[1])) if ix.cursor else None

            def chunk(current: TableMeta = current, ix: IndexMeta = ix, after: tuple | None = after) -> None:
                rows = store.items_after(current.tid, after, self.chunk)
                index_rows(store, ix, rows)
                if len(rows) < self.chunk:
                    ix.backfilling, ix.cursor = False, None
                else:
                    ix.cursor = [rows[-1][0].hex(), rows[-1][1].hex()]
                store.save_meta(current.to_json())

            await store.db.write(chunk)
            if not ix.backfilling:
                return


def index_rows(store: Any, ix: IndexMeta, rows: list[tuple[bytes, bytes, bytes]]) -> None:
    """Write the index rows of stored items (pk, sk, blob) for one index."""
    added = 0
    for pk, sk, blob in rows:
        ikey = itm.index_key(ix, loads(blob))
        if ikey is not None:
            added += store.index_put(ix.iid, ikey[0], ikey[1], pk, sk)
    if added:
        store.adjust_index_count(ix.iid, added)
