"""The provider's state: the item store plus table metadata cached in memory.

Tables are scoped per account and region; `table()` is the one lookup every operation does, a
dict hit on the hot path.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.dynamodb import pitr, streams
from strata.services.dynamodb.capacity import Consumed
from strata.services.dynamodb.errors import (
    resource_not_found,
    table_not_found,
    transaction_conflict,
    validation,
)
from strata.services.dynamodb.store import ItemStore
from strata.services.dynamodb.tables import TableMeta
from strata.services.dynamodb.throttle import Throttle
from strata.sim.clock import clock


def scope_of(ctx: RequestContext) -> str:
    return f"{ctx.account_id}:{ctx.region}"


def table_name(name: object) -> str:
    """A table name, or the name inside a table ARN (newer APIs accept either)."""
    if isinstance(name, str) and name.startswith("arn:") and ":table/" in name:
        return name.split(":table/", 1)[1].split("/", 1)[0]
    return name if isinstance(name, str) else ""


class State:
    def __init__(
        self,
        path: Path,
        fsync: bool,
        collection_limit: int = 10 * 1024**3,
        metadata_url: str | None = None,
    ) -> None:
        self.store = ItemStore(path, fsync=fsync, metadata_url=metadata_url)
        self.store.db.executescript(pitr.SCHEMA)
        self.store.collection_limit = collection_limit
        self.tables: dict[tuple[str, str], TableMeta] = {}
        # Tables being deleted in the background (bulk.py): invisible to item operations.
        self.deleting: dict[tuple[str, str], TableMeta] = {}
        # Tables being restored (backups.py): CREATING, invisible to item operations too.
        self.creating: dict[tuple[str, str], TableMeta] = {}
        # Items (tid, pk, sk) of TransactWriteItems calls between their write and its durability:
        # a write or another transaction touching one of them meets a transaction conflict.
        self.locks: set[tuple[int, bytes, bytes]] = set()
        self.tx_tokens: set[tuple[str, str]] = set()  # ClientRequestTokens of those transactions
        self.batch_get_bytes = 16 * 1024 * 1024  # a BatchGetItem response's limit
        self.throttle = Throttle()  # provisioned capacity (throttle.py)
        # PostgreSQL: other gateways change tables too; the version of the rows loaded (sync()).
        self.shared = self.store.postgres
        self._version = self.store.tables_version() if self.shared else 0
        self._group = -1  # the write group whose start was checked (`table`)
        self._sync_lock = threading.Lock()
        for meta, _count, _size in self.store.load_tables():
            m = TableMeta.from_json(meta)
            where = {"DELETING": self.deleting, "CREATING": self.creating}.get(m.status, self.tables)
            where[(m.scope, m.name)] = m
            if self.shared:
                self.store.meta_texts[m.tid] = json.dumps(meta)
        every = [*self.tables.values(), *self.deleting.values(), *self.creating.values()]
        streams.attach(self.store, every)
        # Deleted tables' streams, readable for 24 hours (streams.retire), by streams.retired_id.
        self.retired: dict[str, TableMeta] = streams.load_retired(self.store)
        self.store.count_indexes(
            [ix.iid for m in every for ix in m.indexes] + [i for m in every for i in m.dropped]
        )

    def sync(self) -> None:
        """With several gateways (PostgreSQL): bring the tables' metadata up to date with what
        other gateways changed, when the store's `tables_version` moved. Called before every
        operation but the writes (core.DynamoDBCore) and inside writes, once per write group
        (`table`), where it reads under the store's lock: a write never uses a table's metadata
        older than the last change another gateway committed. Tables whose row is as this gateway last saw it keep their object (work
        in progress holds it and compares by identity)."""
        store = self.store
        version = store.tables_version()
        if version == self._version:
            return
        with self._sync_lock:  # read threads and the writer thread may sync at once
            if version > self._version:
                self._reload(version)

    def _reload(self, version: int) -> None:
        store = self.store
        known = {m.tid: m for d in (self.tables, self.creating, self.deleting) for m in d.values()}
        tables: dict[tuple[str, str], TableMeta] = {}
        creating: dict[tuple[str, str], TableMeta] = {}
        deleting: dict[tuple[str, str], TableMeta] = {}
        texts: dict[int, str] = {}
        for tid, text in store.table_rows():
            m = known.get(tid)
            if m is None or store.meta_texts.get(tid) != text:
                m = TableMeta.from_json(json.loads(text))
            texts[tid] = text
            where = {"DELETING": deleting, "CREATING": creating}.get(m.status, tables)
            where[(m.scope, m.name)] = m
        # Each dict is replaced whole (one assignment: readers on the event loop see the old or
        # the new one, never one half made).
        store.meta_texts = texts
        self.tables, self.creating, self.deleting = tables, creating, deleting
        self._version = version

    def table(self, ctx: RequestContext, name: object, describe: bool = False) -> TableMeta:
        if self.shared and self.store.in_write() and self.store.db.groups != self._group:
            # Once per write group: no other gateway writes while the group holds the lock.
            self._group = self.store.db.groups
            self.sync()
        meta = self.tables.get((scope_of(ctx), table_name(name)))
        if meta is None:
            if self.creating and self.promote_restored():
                return self.table(ctx, name, describe)
            raise table_not_found(table_name(name)) if describe else resource_not_found()
        return meta

    def promote_restored(self) -> bool:
        """Restored tables that are loaded and due become ACTIVE (durable before visible);
        whether any did."""
        now = clock.time()
        due = [
            m
            for m in self.creating.values()
            if m.restore and m.restore.get("loaded") and now >= m.restore.get("ready_at", 0.0)
        ]
        if not due:
            return False
        with self.store.write():
            for meta in due:
                meta.status = "ACTIVE"
                self.store.save_meta(meta.to_json())
        for meta in due:
            del self.creating[(meta.scope, meta.name)]
            self.tables[(meta.scope, meta.name)] = meta
        return True

    def find(self, ctx: RequestContext, name: object) -> TableMeta | None:
        """A table in any state (ACTIVE, CREATING by a restore, DELETING), or None."""
        key = (scope_of(ctx), table_name(name))
        if self.creating:
            self.promote_restored()
        return self.tables.get(key) or self.creating.get(key) or self.deleting.get(key)

    def consume(self, meta: TableMeta, consumed: Consumed) -> None:
        """What a request consumed: on the meter, and taken from the table's buckets."""
        consumed.record(meta.billing_mode, meta.scope)
        self.throttle.charge(meta, consumed)

    def check_unlocked(self, tid: int, pk: bytes, sk: bytes) -> None:
        """TransactionConflictException if an in-flight transaction holds the item."""
        if (tid, pk, sk) in self.locks:
            raise transaction_conflict()

    def retire_streams(self, meta: TableMeta) -> None:
        """A deleted table's streams stay readable for 24 hours (inside the deleting write)."""
        if streams.retire(self.store, meta):
            self.retired[streams.retired_id(meta)] = meta

    def save(self, meta: TableMeta) -> None:
        self.store.save_meta(meta.to_json())
        self.tables[(meta.scope, meta.name)] = meta

    def by_arn(self, ctx: RequestContext, arn: object, action: str) -> TableMeta:
        """The table a tagging call names by ARN, with DynamoDB's error for each way an ARN can
        be wrong: not an ARN, or a DynamoDB ARN of no table (an index, another region) ->
        ValidationException; another service's or another account's -> AccessDeniedException;
        no such table -> ResourceNotFoundException."""
        text = arn if isinstance(arn, str) else ""
        parts = text.split(":", 5)
        invalid = validation(f"Invalid TableArn: Invalid ResourceArn provided as input {text}")
        if len(parts) < 6 or parts[0] != "arn":
            raise invalid
        _, _, service, region, account, resource = parts
        if service != "dynamodb" or account != ctx.account_id:
            who = ctx.principal.arn if ctx.principal is not None else "anonymous"
            raise ServiceError(
                "AccessDeniedException",
                f"User: {who} is not authorized to perform: dynamodb:{action} on resource: {text}",
                400,
            )
        kind, _, name = resource.partition("/")
        if kind != "table" or not name or "/" in name or region != ctx.region:
            raise invalid
        meta = self.tables.get((scope_of(ctx), name))
        if meta is None:
            raise resource_not_found(f"Requested resource not found: ResourcArn: {text} not found")
        return meta
