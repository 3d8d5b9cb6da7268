"""On-demand backups and restores: backup files, their records, and loading a file into a new table.

A backup is a file of the table's items in key order (`[pk, sk, item bytes]` MessagePack records)
written from one consistent snapshot in a worker thread (pitr.export with no instant after
which to undo), fsync'd and published by rename, plus a record (the `documents` table, kind
`ddb-backup`) with the table's metadata at that moment. CreateBackup answers at once with the
backup CREATING (the snapshot already taken) and it turns AVAILABLE when its file is written, as
on AWS; a backup a stop cut short is made again at start (`resume_backups`). A point-in-time restore writes the same
kind of file for the chosen instant first, so both restores are one path: `Restorer.load`.

A restore creates the target table at once, CREATING (invisible to item operations), and loads
the file in chunks of `dynamodb_bulk_chunk` items, each one `db.write` that also saves how many
items are in, so a restart resumes after the last chunk. The table turns ACTIVE once loaded and
at least RESTORE_SECONDS of simulated time after the restore began (on the clock, like every
duration in Strata). Restores do not copy TTL, PITR, tags, streams or auto scaling settings,
as in DynamoDB.
"""

from __future__ import annotations

import logging
import math
import os
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any

import msgpack

from strata.services.base import run_blocking
from strata.services.dynamodb import items as itm
from strata.services.dynamodb import pitr, provisioning
from strata.services.dynamodb.capacity import Consumed
from strata.services.dynamodb.state import State
from strata.services.dynamodb.store import loads
from strata.services.dynamodb.tables import TableMeta
from strata.services.dynamodb.types import item_size
from strata.sim.clock import clock
from strata.sim.meter import meter

log = logging.getLogger("strata")

KIND = "ddb-backup"
RESTORE_SECONDS = 30.0
SYSTEM_BACKUP_DAYS = 35


def write_file(
    path: Path, produce: Callable[[Callable[[bytes, bytes, bytes], None]], None]
) -> tuple[int, int]:
    """Write the records `produce(write)` emits to `path` durably; (items, bytes of the file)."""
    tmp = path.with_suffix(".tmp")
    packer = msgpack.Packer(use_bin_type=True)
    count = 0
    with open(tmp, "wb", buffering=1 << 20) as f:

        def write(pk: bytes, sk: bytes, blob: bytes) -> None:
            nonlocal count
            f.write(packer.pack([pk, sk, blob]))
            count += 1

        produce(write)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return count, path.stat().st_size


def read_file(path: Path) -> Iterator[tuple[bytes, bytes, bytes]]:
    with open(path, "rb") as f:
        yield from msgpack.Unpacker(f, raw=False, max_buffer_size=64 << 20)


def backup_arn(table_arn: str, now: float) -> str:
    return f"{table_arn}/backup/{int(now * 1000):014d}-{uuid.uuid4().hex[:8]}"


def new_table(
    source: TableMeta, name: str, tid: int, next_iid: Callable[[], int], now: float, restore: dict
) -> TableMeta:
    """The target table of a restore: the source's schema and capacity under a new name and ids."""
    meta = TableMeta.from_json(source.to_json())
    region, account = source.arn.split(":")[3], source.arn.split(":")[4]
    meta.name, meta.tid, meta.table_id = name, tid, str(uuid.uuid4())
    meta.arn = f"arn:aws:dynamodb:{region}:{account}:table/{name}"
    meta.created = now
    for ix in meta.indexes:
        ix.iid, ix.created, ix.provisioning, ix.backfilling, ix.cursor = next_iid(), now, {}, False, None
    meta.tags, meta.ttl, meta.stream, meta.deletion_protection = {}, None, None, False
    meta.streams = []
    meta.pitr, meta.pitr_since, meta.provisioning, meta.dropped = False, 0.0, {}, []
    meta.group, meta.replica = [], None  # a restored table is not a replica of a global table
    meta.status = "CREATING"
    meta.restore = {**restore, "done": 0, "loaded": False, "ready_at": now + RESTORE_SECONDS}
    return meta


def start_backup(
    state: State, directory: Path, meta: TableMeta, backup_name: str, kind: str
) -> tuple[dict, Coroutine[Any, Any, None]]:
    """Catalogue a backup of the table as it is now (CREATING) and return its record with the
    export still to run: AWS takes "a time marker of the request" and makes the backup
    asynchronously, AVAILABLE once done.

    The snapshot (a read transaction) is taken here, before the caller answers, so the backup
    holds exactly what was committed when it was asked for, however long the export then takes
    in a worker thread. USER backups are kept until deleted; SYSTEM ones (DeleteTable of a table
    with PITR on) for 35 days.
    """
    now = clock.time()
    arn = backup_arn(meta.arn, now)
    doc = {
        "arn": arn,
        "name": backup_name,
        "type": kind,
        "status": "CREATING",
        "created": now,
        "expires": now + SYSTEM_BACKUP_DAYS * 86400 if kind == "SYSTEM" else None,
        "size": 0,
        "items": 0,
        "table_bytes": state.store.counts(meta.tid)[1],
        "file": f"{uuid.uuid4().hex}.bak",  # in the backup directory, wherever the data dir is moved
        "table": meta.to_json(),
    }
    conn = pitr.snapshot(state.store.snapshot_source)
    try:
        state.store.db.put_doc(KIND, arn, doc)
    except BaseException:
        conn.close()
        raise
    return doc, _export(
        state, directory, doc, lambda write: pitr.export_from(conn, meta.tid, math.inf, write)
    )


async def _export(state: State, directory: Path, doc: dict, produce: Callable) -> None:
    """Write a CREATING backup's file, then record it AVAILABLE."""
    count, size = await run_blocking(write_file, directory / doc["file"], produce)
    doc.update(status="AVAILABLE", items=count, size=size)
    if state.store.db.get_doc(KIND, doc["arn"]) is not None:
        state.store.db.put_doc(KIND, doc["arn"], doc)


async def take_backup(state: State, directory: Path, meta: TableMeta, backup_name: str, kind: str) -> dict:
    """A backup made before answering (DeleteTable's SYSTEM backup: the table goes next)."""
    doc, export = start_backup(state, directory, meta, backup_name, kind)
    await export
    return doc


def resume_backups(state: State, directory: Path, spawn: Callable) -> None:
    """Backups a stop cut short: made again from the table with PITR at their instant (exactly
    what was asked for), else from the table as it is now; dropped when the table is gone."""
    for doc in state.store.db.list_docs(KIND):
        if doc.get("status") != "CREATING":
            continue
        meta = next((m for m in state.tables.values() if m.table_id == doc["table"]["table_id"]), None)
        if meta is None:
            log.warning("backup %s was being created when its table went: dropped", doc["arn"])
            state.store.db.delete_doc(KIND, doc["arn"])
            continue
        at = doc["created"] if meta.pitr and meta.pitr_since <= doc["created"] else math.inf
        produce = partial(pitr.export, state.store.snapshot_source, meta.tid, at)
        spawn(_export(state, directory, doc, produce))


class Restorer:
    """Loads restore files into their CREATING tables, and makes them ACTIVE when due."""

    def __init__(self, state: State, chunk: int, spawn: Callable, directory: Path) -> None:
        self.state = state
        self.directory = directory
        self.chunk = max(1, chunk)
        self.spawn = spawn

    def resume(self) -> None:
        """Restart the loads a stop cut short; drop files nothing refers to any more (a backup
        or restore export a crash interrupted before it was recorded)."""
        kept = {doc["file"] for doc in self.state.store.db.list_docs(KIND)}
        for meta in list(self.state.creating.values()):
            if meta.restore:
                kept.add(meta.restore["file"])
                if not meta.restore.get("loaded"):
                    self.spawn(self.load(meta))
        for path in self.directory.iterdir():
            if path.name not in kept:
                path.unlink(missing_ok=True)

    async def load(self, meta: TableMeta) -> None:
        store = self.state.store
        restore = meta.restore or {}
        path = self.directory / restore["file"]
        records = islice(read_file(path), restore.get("done", 0), None)
        while True:
            chunk = list(islice(records, self.chunk))
            if not chunk:
                break

            def write(chunk: list = chunk) -> None:
                for pk, sk, blob in chunk:
                    item = loads(blob)
                    itm.write(
                        store, meta, pk, sk, None, None, item, item_size(item), Consumed(meta.name, False)
                    )
                restore["done"] = restore.get("done", 0) + len(chunk)
                store.save_meta(meta.to_json())

            await store.db.write(write)

        def finish() -> None:
            restore["loaded"] = True
            store.save_meta(meta.to_json())

        await store.db.write(finish)
        meter.record("dynamodb", "RestoreDataSize", restore.get("bytes", 0), "byte", table=meta.name)
        if restore.get("temporary"):
            path.unlink(missing_ok=True)
        self.state.promote_restored()


ITEM_OVERHEAD = 100  # bytes DynamoDB adds to each item's size (and each index entry's) for storage


def billable_size(state: State, meta: TableMeta) -> int:
    """The bytes DynamoDB bills a table's storage for: its items' raw size plus 100 bytes each,
    and the same for every index entry (an index entry's size is estimated as the table's average
    item size, as DescribeTable's IndexSizeBytes is)."""
    count, size = state.store.counts(meta.tid)
    total = size + ITEM_OVERHEAD * count
    if count:
        for ix in meta.indexes:
            n = state.store.index_count(ix.iid)
            total += size * n // count + ITEM_OVERHEAD * n
    return total


def rule(state: State, chunk: int, directory: Path) -> Callable[[float, float], Awaitable[dict[str, int]]]:
    """The scheduler's `dynamodb.backups` rule, over simulated time (since, until]:

    - meters provisioned capacity hours (provisioning.meter_hours);
    - meters table storage (`TimedStorage-ByteHrs`, byte-hours of billable_size, per table class);
    - meters backup storage (`BackupStorage`, byte-hours per backup) and point-in-time recovery
      (`PITRStorage`, byte-hours of the table's size while PITR is on), as DynamoDB bills both
      per GB-month;
    - deletes SYSTEM backups (taken when a table with PITR is deleted) after their 35 days;
    - prunes change history older than the longest recovery window (pitr.py), a chunk per write;
    - turns restored tables that are due ACTIVE.
    """

    async def run(since: float, until: float) -> dict[str, int]:
        store = state.store
        counts = {"metered": 0, "expired": 0, "pruned": 0}
        for doc in store.db.list_docs(KIND):
            if doc.get("expires") and doc["expires"] <= until:
                store.db.delete_doc(KIND, doc["arn"])
                (directory / doc["file"]).unlink(missing_ok=True)
                counts["expired"] += 1
            end = min(until, doc.get("expires") or until)
            seconds = end - max(since, doc["created"])
            if seconds > 0:
                meter.record(
                    "dynamodb",
                    "BackupStorage",
                    doc["size"] * seconds / 3600.0,
                    "byte-hour",
                    backup=doc["arn"],
                    table=doc["table"]["name"],
                )
                counts["metered"] += 1

        def capacity_hours() -> None:  # provisioned capacity up to `until` (provisioning.py)
            for meta in list(state.tables.values()):
                # Saved even when on-demand: the warm throughput its traffic raised (throttle.py).
                provisioning.meter_hours(meta, until)
                levels = state.throttle.levels(meta)
                if levels is not None:
                    meta.provisioning["buckets"] = levels
                store.save_meta(meta.to_json())

        await store.db.write(capacity_hours)
        for meta in list(state.tables.values()):
            seconds = until - max(since, meta.created)
            if seconds > 0:
                meter.record(
                    "dynamodb",
                    "TimedStorage-ByteHrs",
                    billable_size(state, meta) * seconds / 3600.0,
                    "byte-hour",
                    table=meta.name,
                    table_class=meta.table_class,
                    scope=meta.scope,
                )
                counts["metered"] += 1
            if meta.pitr:
                seconds = until - max(since, meta.pitr_since)
                if seconds > 0:
                    size = store.counts(meta.tid)[1]
                    meter.record(
                        "dynamodb", "PITRStorage", size * seconds / 3600.0, "byte-hour", table=meta.name
                    )
                    counts["metered"] += 1
        before = until - pitr.MAX_DAYS * pitr.DAY
        while True:
            n = await store.db.write(lambda: pitr.prune_chunk(store, before, chunk))
            counts["pruned"] += n
            if n < chunk:
                break
        state.promote_restored()
        return counts

    return run
