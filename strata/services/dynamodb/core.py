"""State shared by the DynamoDB operation classes: the item store with its table metadata,
the background bulk work, TTL sweeps on clock moves.

`DynamoDBCore` is the base of every `*Operations` class; provider.py composes them.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any

from botocore import xform_name

from strata.config import redact_url
from strata.context import RequestContext
from strata.protocol.spec import service_model
from strata.services.base import ServiceRuntime
from strata.services.dynamodb import backups, batch, provisioning, replication, streams, ttl, warm
from strata.services.dynamodb.backups import Restorer
from strata.services.dynamodb.bulk import Bulk
from strata.services.dynamodb.control import ControlLimits, ControlPlane
from strata.services.dynamodb.state import State, scope_of
from strata.services.dynamodb.tables import TableMeta, describe
from strata.sim.clock import clock
from strata.sim.scheduler import scheduler

log = logging.getLogger("strata.dynamodb")

# Item writes look their tables up inside their write (state.State.table), where the tables'
# metadata is brought up to date under the store's lock: no check of their own before.
SYNCED_IN_WRITE = frozenset(("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"))
# Item reads (synchronous, touching only the store and state the writer thread touches too): with
# several gateways they run whole in the store's read threads.
READ_IN_THREAD = frozenset(("GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"))


class DynamoDBCore:
    """State and helpers every DynamoDB operation class shares."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        settings = runtime.settings
        self.state = State(
            runtime.data_dir / "dynamodb.sqlite3",
            settings.fsync,
            settings.limit("dynamodb_item_collection_bytes", 10 * 1024**3),
            settings.metadata,
        )
        self.state.batch_get_bytes = settings.limit("dynamodb_batch_get_bytes", batch.MAX_GET_BYTES)
        default = warm.Quota()
        self.quota = self.state.throttle.quota = warm.Quota(
            settings.limit("dynamodb_table_max_units", default.table_max),
            settings.limit("dynamodb_account_max_units", default.account_max),
            settings.limit("dynamodb_on_demand_read_units", default.initial_read),
            settings.limit("dynamodb_on_demand_write_units", default.initial_write),
        )
        self.control = ControlPlane(
            ControlLimits(
                settings.limit("dynamodb_tables", ControlLimits.tables),
                settings.limit("dynamodb_simultaneous_table_operations", ControlLimits.simultaneous),
            ),
            self.state.throttle.enforce,
        )
        # How long a capacity or billing-mode change leaves a table UPDATING (simulated seconds).
        self.update_seconds = float(
            settings.limit("dynamodb_update_seconds", int(provisioning.UPDATE_SECONDS))
        )
        self.bulk = Bulk(self.state, settings.limit("dynamodb_bulk_chunk", 1000))
        self.restorer = Restorer(self.state, self.bulk.chunk, self.bulk.spawn, self._backup_dir())
        if self.state.shared:
            self._follow_other_gateways()
            self._announce(settings.metadata, runtime.data_dir / "dynamodb.sqlite3")
        self.replicator = replication.Replicator(
            self.state,
            self.bulk.chunk,
            float(settings.limit("dynamodb_replication_lag_seconds", 0)),
            float(settings.limit("dynamodb_replica_create_seconds", int(replication.CREATE_SECONDS))),
        )

    @staticmethod
    def _announce(url: str, embedded: Path) -> None:
        """Say where DynamoDB's data is, and that an embedded store left in the data dir is not
        what is served (nothing is copied from it)."""
        log.warning("--metadata: DynamoDB's tables and items are in PostgreSQL at %s", redact_url(url))
        if embedded.exists():
            log.warning(
                "%s holds DynamoDB tables of the embedded store: they are not served while --metadata "
                "is given (start without it to use them)",
                embedded,
            )

    def _follow_other_gateways(self) -> None:
        """PostgreSQL (several gateways): every operation but the item writes (SYNCED_IN_WRITE)
        first brings the tables' metadata up to date (state.State.sync: one indexed read; a
        reload only after a table changed). Done by
        wrapping this instance's operation methods, so the embedded SQLite path (one gateway,
        whose memory is exact) pays nothing. The reads wait in the store's read threads
        (`db.read`), not on the event loop: the item reads (READ_IN_THREAD) run there whole, with
        the check; other operations await the check, then run as they are."""
        state = self.state
        db = state.store.db
        for operation in service_model("dynamodb").operation_names:
            name = xform_name(operation)
            method = getattr(self, name, None)
            if method is None or operation in SYNCED_IN_WRITE:
                continue
            if operation in READ_IN_THREAD:

                async def read(ctx: RequestContext, req: dict, _method: Any = method) -> Any:
                    def run() -> Any:
                        state.sync()
                        return _method(ctx, req)

                    return await db.read(run)

                setattr(self, name, read)
                continue

            async def synced(ctx: RequestContext, req: dict, _method: Any = method) -> Any:
                await db.read(state.sync)
                result = _method(ctx, req)
                return (await result) if inspect.isawaitable(result) else result

            setattr(self, name, synced)

    def _backup_dir(self) -> Path:
        # Several gateways (--metadata with --blob-dir): the files are where every gateway finds them.
        settings = self.runtime.settings
        shared = settings.metadata is not None and settings.blob_dir is not None
        path = (settings.blob_dir if shared else self.runtime.data_dir) / "dynamodb-backups"  # type: ignore[operator]
        path.mkdir(parents=True, exist_ok=True)
        return path

    def health(self) -> str:
        return "running"

    async def start(self) -> None:
        self.bulk.resume()
        self.restorer.resume()
        backups.resume_backups(self.state, self._backup_dir(), self.bulk.spawn)
        # With several gateways on PostgreSQL the rules' state is shared: one gateway (the
        # scheduler's owner) runs them for all, from tables' metadata brought up to date first.
        shared = self.state.shared
        scheduler.register(
            "dynamodb.ttl", self._synced(ttl.rule(self.state, self.bulk.chunk)), every=3600.0, shared=shared
        )
        scheduler.register(
            "dynamodb.streams",
            self._synced(
                streams.rule(
                    lambda: list(self.state.tables.values()),
                    self.state.store,
                    self.state.retired,
                    self.replicator.held,
                )
            ),
            every=3600.0,
            shared=shared,
        )
        scheduler.register(
            "dynamodb.backups",
            self._synced(backups.rule(self.state, self.bulk.chunk, self._backup_dir())),
            every=3600.0,
            shared=shared,
        )
        self.replicator.start()

    def _synced(self, run: Any) -> Any:
        """A scheduler rule that first brings the tables' metadata up to date (a no-op on SQLite)."""
        if not self.state.shared:
            return run

        async def synced_run(since: float, until: float) -> dict[str, int]:
            self.state.sync()
            return await run(since, until)

        return synced_run

    async def stop(self) -> None:
        await self.replicator.stop()
        await self.bulk.stop()
        state = self.state

        def save_levels() -> None:  # what the capacity buckets hold survives the restart
            for meta in list(state.tables.values()):
                levels = state.throttle.levels(meta)
                if levels is not None:
                    meta.provisioning["buckets"] = levels
                    state.store.save_meta(meta.to_json())

        await state.store.db.write(save_levels)
        state.store.close()

    def _table_operation(self, ctx: RequestContext, creates: bool = False) -> None:
        """The account's control-plane limits before a table operation (control.py): the number
        of tables (`creates`: the operation adds one) and of tables busy at once."""
        state, scope = self.state, scope_of(ctx)
        every = [*state.tables.values(), *state.creating.values(), *state.deleting.values()]
        if creates:
            self.control.check_table_count(scope, every)
        self.control.check_simultaneous(scope, every, clock.time())

    def _check_quotas(self, meta: TableMeta, creating: bool = True) -> None:
        """A table being created, updated, restored or imported, against the per-table and
        per-account quotas (warm.py); applies its GSIs' requested warm throughput."""
        warm.check_table(meta, self.quota, creating)
        state = self.state
        warm.check_account(meta, [*state.tables.values(), *state.creating.values()], self.quota)

    def _describe(self, meta: TableMeta, status: str = "ACTIVE") -> dict:
        count, size = self.state.store.counts(meta.tid)
        index_counts = {}
        for ix in meta.indexes:
            n = self.state.store.index_count(ix.iid) if count else 0
            index_counts[ix.name] = (n, size * n // count if count else 0)
        now = clock.time()
        if status == "ACTIVE":
            status = provisioning.status(meta, now)
        out = describe(meta, count, size, index_counts, status, now)
        out["WarmThroughput"] = warm.description(meta, self.quota, now)
        if "GlobalSecondaryIndexes" in out:
            warm.describe_indexes(meta, out["GlobalSecondaryIndexes"], self.quota, now)
        return out
