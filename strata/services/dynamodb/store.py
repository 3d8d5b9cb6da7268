"""SQLite storage of DynamoDB tables, items and secondary-index entries.

    ddb_tables  (tid, scope, name, meta JSON, item_count, size_bytes)   counts kept incrementally
    ddb_items   (tid, pk, sk, size, item)        WITHOUT ROWID, primary key (tid, pk, sk)
    ddb_index   (iid, pk, sk, tpk, tsk)          WITHOUT ROWID, one row per item in a GSI/LSI
    ddb_tokens  (scope, token, digest, at, response)   TransactWriteItems idempotency
    ddb_index_counts (iid, n)    rows per index, kept in step by every index write (DescribeTable
                                 then costs nothing on a huge index)

Keys are byte-comparable encodings (keys.py), so a Query is a range scan of the primary key and
an index Query a range scan of ddb_index joined back to the item. Items are stored in their wire
shape as MessagePack (a specified format, unlike CPython's marshal, and faster to encode and
decode for items; rows written as marshal by earlier versions are still read, and rewritten by
`migrate_chunk` in the background). Index rows are written in the same SQLite transaction as the item.

Group commit: every write operation runs as a SAVEPOINT (atomic on its own) inside one open
transaction on the writer connection; `durable()` schedules a COMMIT after the current event-loop
turn and resolves when the group is durable. The COMMIT only appends the group to the WAL (the
writer runs with synchronous=NORMAL); the one fsync of the WAL that makes it survive power loss
runs in a commit thread while the event loop goes on with the next group's writes, so the writes
of concurrent requests share one fsync, none is acknowledged before it is durable, and neither
reads nor writes wait for the disk. Reads (GetItem, Query, Scan) use a separate connection and
so only ever see committed data.
"""

from __future__ import annotations

import asyncio
import json
import logging
import marshal
import os
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import msgpack

from strata.storage import MetadataStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS ddb_tables (
    tid INTEGER PRIMARY KEY,
    scope TEXT NOT NULL,
    name TEXT NOT NULL,
    meta TEXT NOT NULL,
    item_count INTEGER NOT NULL DEFAULT 0,
    size_bytes INTEGER NOT NULL DEFAULT 0,
    UNIQUE (scope, name)
);
CREATE TABLE IF NOT EXISTS ddb_items (
    tid INTEGER NOT NULL,
    pk BLOB NOT NULL,
    sk BLOB NOT NULL,
    size INTEGER NOT NULL,
    item BLOB NOT NULL,
    PRIMARY KEY (tid, pk, sk)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ddb_index (
    iid INTEGER NOT NULL,
    pk BLOB NOT NULL,
    sk BLOB NOT NULL,
    tpk BLOB NOT NULL,
    tsk BLOB NOT NULL,
    PRIMARY KEY (iid, pk, sk, tpk, tsk)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ddb_tokens (
    scope TEXT NOT NULL,
    token TEXT NOT NULL,
    digest TEXT NOT NULL,
    at REAL NOT NULL,
    response TEXT NOT NULL,
    PRIMARY KEY (scope, token)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ddb_counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS ddb_index_counts (iid INTEGER PRIMARY KEY, n INTEGER NOT NULL);
"""

MMAP_BYTES = 1 << 30
log = logging.getLogger("strata")
_CHECKPOINT_EVERY = 256  # group commits between WAL checkpoints (a few pages each)
ITEM_FORMAT = 2  # 1: marshal (before), 2: MessagePack
_MARSHAL_DICT = frozenset((0x7B, 0xFB))  # marshal's dict type byte, plain or with FLAG_REF
# Only ever called inside ItemStore.write() (under its lock), so one Packer is safe to share.
dumps = msgpack.Packer(use_bin_type=True).pack
_unpackb = msgpack.unpackb


def loads(blob: bytes) -> dict:
    """An item from its stored bytes: MessagePack, or marshal for rows of format 1.

    A MessagePack map starts with 0x80-0x8f, 0xde or 0xdf, never with marshal's dict bytes.
    """
    if blob[0] in _MARSHAL_DICT:
        return marshal.loads(blob)
    return _unpackb(blob)


def _settle(waiters: list[asyncio.Future], error: BaseException | None) -> None:
    for f in waiters:
        if not f.done():
            if error is None:
                f.set_result(None)
            else:
                f.set_exception(error)


class ItemStore:
    def __init__(self, path: Path, *, fsync: bool = True) -> None:
        self.db = MetadataStore(path, fsync=fsync, schema=SCHEMA)
        self.path = Path(path)
        self.fsync = fsync
        self.w = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        self.w.execute("PRAGMA journal_mode=WAL")
        # COMMIT only appends to the WAL (the OS has it: a kill -9 loses nothing); the fsync that
        # makes a group survive power loss is ours, in the commit thread (see _flush).
        self.w.execute("PRAGMA synchronous=NORMAL")
        # Checkpoints run in a thread of their own, never inside a COMMIT on the event loop.
        self.w.execute("PRAGMA wal_autocheckpoint=0")
        self.w.execute("PRAGMA cache_size=-65536")
        self._waiters: list[asyncio.Future] = []
        self._group = 0  # number of the group transaction open (or last opened) on the writer
        self._lost: tuple[int, BaseException] | None = None  # the last group rolled back, and why
        self._scheduled = False
        self._mapped: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="dynamodb-commit")
        self._syncing = False  # an fsync (or checkpoint) is running in the commit thread
        self._wal_fd: int | None = None
        self._since_checkpoint = 0
        self._ckpt: sqlite3.Connection | None = None  # the checkpoint thread's own connection
        self._ckpt_executor = ThreadPoolExecutor(1, thread_name_prefix="dynamodb-checkpoint")
        self._checkpointing = False
        # Item collections (one partition key's items) of tables with LSIs are capped (10 GB in AWS).
        self.collection_limit = 10 * 1024**3

    @property
    def r(self) -> sqlite3.Connection:
        """The reading connection of the calling thread (sees committed data only)."""
        c = self.db.conn
        if c is not self._mapped:
            # Memory-mapped reads: a Query on a large, cold table costs no read() system calls.
            c.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
            self._mapped = c
        return c

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One atomic write operation inside the open group transaction (a SAVEPOINT).

        When SQLite itself rolls the whole group back (SQLITE_FULL or an I/O error while the
        group spills to disk), the earlier writes of the group are gone too: the group is
        marked lost, so none of them is acknowledged (see `_lose_group`).
        """
        with self._lock:
            w = self.w
            if not w.in_transaction:
                w.execute("BEGIN IMMEDIATE")
                self._group += 1
            w.execute("SAVEPOINT op")
            try:
                yield w
            except BaseException as e:
                try:
                    if w.in_transaction:
                        w.execute("ROLLBACK TO op")
                        w.execute("RELEASE op")
                except sqlite3.Error:
                    if w.in_transaction:
                        w.execute("ROLLBACK")
                if not w.in_transaction:
                    self._lose_group(e)
                raise
            try:
                w.execute("RELEASE op")
            except sqlite3.Error as e:
                if w.in_transaction:
                    w.execute("ROLLBACK")
                self._lose_group(e)
                raise

    def _lose_group(self, error: BaseException) -> None:
        """The open group was rolled back: fail everyone waiting for it, and any later
        `durable()` for it (a writer that has not yet asked)."""
        self._lost = (self._group, error)
        waiters, self._waiters = self._waiters, []
        _settle(waiters, error)

    def _commit(self) -> None:
        with self._lock:
            if self.w.in_transaction:
                try:
                    self.w.execute("COMMIT")
                except sqlite3.Error as e:
                    self._lost = (self._group, e)
                    try:
                        if self.w.in_transaction:
                            self.w.execute("ROLLBACK")
                    except sqlite3.Error:
                        log.warning("dynamodb: rollback after a failed commit failed: %s", e)
                    raise

    def _sync(self) -> None:
        """Make every committed group durable (fsync of the WAL), and checkpoint now and then.

        Runs in the commit thread; one fsync covers every COMMIT made before it started.
        """
        if not self.fsync:
            return
        if self._wal_fd is None:
            wal = f"{self.path}-wal"
            if not os.path.exists(wal):  # nothing was ever committed through the WAL
                return
            self._wal_fd = os.open(wal, os.O_RDONLY)
            dir_fd = os.open(self.path.parent, os.O_RDONLY)  # the WAL's directory entry, once
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        os.fdatasync(self._wal_fd)

    def _checkpoint(self) -> None:
        """Copy the WAL back into the database (PASSIVE: never blocks the writer or readers).

        Runs in its own thread, so neither a COMMIT nor a group's fsync ever waits for it.
        """
        if self._ckpt is None:
            self._ckpt = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._ckpt.execute(f"PRAGMA synchronous={'FULL' if self.fsync else 'NORMAL'}")
        self._ckpt.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def _maybe_checkpoint(self) -> None:
        self._since_checkpoint += 1
        if self._since_checkpoint < _CHECKPOINT_EVERY or self._checkpointing:
            return
        self._since_checkpoint = 0
        self._checkpointing = True
        task = asyncio.get_running_loop().run_in_executor(self._ckpt_executor, self._checkpoint)

        def done(f: asyncio.Future) -> None:
            self._checkpointing = False
            if f.exception() is not None:
                log.error("dynamodb WAL checkpoint failed: %s", f.exception())

        task.add_done_callback(done)

    def commit_now(self) -> None:
        """Commit the group transaction (if any) durably now, and wake everyone waiting for it."""
        waiters, self._waiters = self._waiters, []
        try:
            self._commit()
            self._sync()
        except (sqlite3.Error, OSError) as e:
            _settle(waiters, e)
            raise
        _settle(waiters, None)

    async def writable(self) -> None:
        """Kept for callers: writes never wait for a commit in flight (it only fsyncs)."""

    async def durable(self) -> None:
        """Wait until every write made so far is durable (group commit after this loop turn)."""
        if self._lost is not None and self._lost[0] == self._group:
            raise self._lost[1]  # this group (so this caller's write) was rolled back
        if not self.w.in_transaction:
            return
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._waiters.append(fut)
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        await fut

    def _flush(self) -> None:
        """COMMIT the group here (an append to the WAL, no fsync), then fsync it in the commit thread.

        While a group's fsync is in flight the next group keeps growing in the open transaction
        (writes never wait for the disk) and is committed the moment that fsync ends, so each
        fsync covers as many writes as arrived meanwhile. Requests are answered only once their
        group's fsync is done. Readers may see a committed group before its fsync ends; it
        already survives a kill -9, and it is not yet acknowledged to its writer.
        """
        self._scheduled = False
        if self._syncing:  # _synced() commits this group when the fsync in flight ends
            return
        waiters, self._waiters = self._waiters, []
        if not self.w.in_transaction:  # already committed by commit_now()
            _settle(waiters, None)
            return
        try:
            self._commit()
        except sqlite3.Error as e:
            _settle(waiters, e)
            return
        self._maybe_checkpoint()
        if not self.fsync:  # durable enough once committed (the OS has it)
            _settle(waiters, None)
            return
        self._syncing = True
        task = asyncio.get_running_loop().run_in_executor(self._executor, self._sync)
        task.add_done_callback(lambda f: self._synced(waiters, f))

    def _synced(self, batch: list[asyncio.Future], f: asyncio.Future) -> None:
        self._syncing = False
        _settle(batch, f.exception())
        if self._waiters and not self._scheduled:
            self._flush()

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A consistent read of several items (TransactGetItems)."""
        r = self.r
        r.execute("BEGIN")
        try:
            yield r
        finally:
            r.execute("COMMIT")

    def close(self) -> None:
        self.commit_now()
        self._executor.shutdown(wait=True)
        self._ckpt_executor.shutdown(wait=True)
        if self._ckpt is not None:
            self._ckpt.close()
        self.w.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        self.w.close()
        if self._wal_fd is not None:
            os.close(self._wal_fd)
            self._wal_fd = None
        self.db.close()

    # -- tables -----------------------------------------------------------------------------------

    def next_id(self, name: str) -> int:
        """A fresh id from a named counter (table ids, index ids), never reused."""
        row = self.w.execute(
            "INSERT INTO ddb_counters(name, value) VALUES (?, 1) "
            "ON CONFLICT(name) DO UPDATE SET value = value + 1 RETURNING value",
            (name,),
        ).fetchone()
        return row[0]

    def load_tables(self) -> list[tuple[dict, int, int]]:
        rows = self.r.execute("SELECT meta, item_count, size_bytes FROM ddb_tables").fetchall()
        return [(json.loads(r[0]), r[1], r[2]) for r in rows]

    def insert_table(self, meta: dict) -> None:
        self.w.execute(
            "INSERT INTO ddb_tables(tid, scope, name, meta) VALUES (?,?,?,?)",
            (meta["tid"], meta["scope"], meta["name"], json.dumps(meta)),
        )

    def save_meta(self, meta: dict) -> None:
        self.w.execute("UPDATE ddb_tables SET meta = ? WHERE tid = ?", (json.dumps(meta), meta["tid"]))

    def delete_table(self, tid: int, iids: list[int]) -> None:
        c = self.w
        c.execute("DELETE FROM ddb_items WHERE tid = ?", (tid,))
        for iid in iids:
            self.delete_index(iid)
        c.execute("DELETE FROM ddb_tables WHERE tid = ?", (tid,))

    def delete_items_chunk(self, tid: int, n: int) -> int:
        """Delete up to n of a table's items (the first n in key order); returns how many."""
        c = self.w
        last = c.execute(
            "SELECT pk, sk FROM ddb_items WHERE tid = ? ORDER BY pk, sk LIMIT 1 OFFSET ?", (tid, n - 1)
        ).fetchone()
        if last is None:
            return c.execute("DELETE FROM ddb_items WHERE tid = ?", (tid,)).rowcount
        return c.execute("DELETE FROM ddb_items WHERE tid = ? AND (pk, sk) <= (?, ?)", (tid, *last)).rowcount

    def delete_index_chunk(self, iid: int, n: int) -> int:
        """Delete up to n of an index's rows; returns how many."""
        c = self.w
        last = c.execute(
            "SELECT pk, sk, tpk, tsk FROM ddb_index WHERE iid = ? ORDER BY pk, sk, tpk, tsk LIMIT 1 OFFSET ?",
            (iid, n - 1),
        ).fetchone()
        if last is None:
            return c.execute("DELETE FROM ddb_index WHERE iid = ?", (iid,)).rowcount
        return c.execute(
            "DELETE FROM ddb_index WHERE iid = ? AND (pk, sk, tpk, tsk) <= (?, ?, ?, ?)", (iid, *last)
        ).rowcount

    def items_after(
        self, tid: int, after: tuple[bytes, bytes] | None, n: int
    ) -> list[tuple[bytes, bytes, bytes]]:
        """The next n items (pk, sk, blob) of a table after `after` in key order, read by the writer."""
        if after is None:
            sql, args = "SELECT pk, sk, item FROM ddb_items WHERE tid = ? ORDER BY pk, sk LIMIT ?", (tid, n)
        else:
            sql = "SELECT pk, sk, item FROM ddb_items WHERE tid = ? AND (pk, sk) > (?, ?) ORDER BY pk, sk LIMIT ?"
            args = (tid, *after, n)
        return self.w.execute(sql, args).fetchall()

    def drop_table_row(self, tid: int) -> None:
        self.w.execute("DELETE FROM ddb_tables WHERE tid = ?", (tid,))

    def counts(self, tid: int) -> tuple[int, int]:
        row = self.r.execute("SELECT item_count, size_bytes FROM ddb_tables WHERE tid = ?", (tid,)).fetchone()
        return (row[0], row[1]) if row else (0, 0)

    def adjust_counts(self, tid: int, items: int, size: int) -> None:
        self.w.execute(
            "UPDATE ddb_tables SET item_count = item_count + ?, size_bytes = size_bytes + ? WHERE tid = ?",
            (items, size, tid),
        )

    def index_count(self, iid: int) -> int:
        row = self.r.execute("SELECT n FROM ddb_index_counts WHERE iid = ?", (iid,)).fetchone()
        return row[0] if row else 0

    def adjust_index_count(self, iid: int, delta: int) -> None:
        self.w.execute(
            "INSERT INTO ddb_index_counts(iid, n) VALUES (?, ?) ON CONFLICT(iid) DO UPDATE SET n = n + excluded.n",
            (iid, delta),
        )

    def count_indexes(self, iids: list[int]) -> None:
        """Store the row count of indexes that have none (a store from before the counts table)."""
        if self.w.execute("SELECT 1 FROM ddb_counters WHERE name = 'index_counts'").fetchone():
            return
        with self.write() as c:
            for iid in iids:
                n = c.execute("SELECT count(*) FROM ddb_index WHERE iid = ?", (iid,)).fetchone()[0]
                c.execute("INSERT OR REPLACE INTO ddb_index_counts(iid, n) VALUES (?, ?)", (iid, n))
            c.execute("INSERT OR REPLACE INTO ddb_counters(name, value) VALUES ('index_counts', 1)")
        self.commit_now()

    def forget_index(self, iid: int) -> None:
        self.w.execute("DELETE FROM ddb_index_counts WHERE iid = ?", (iid,))

    def delete_index(self, iid: int) -> None:
        self.w.execute("DELETE FROM ddb_index WHERE iid = ?", (iid,))
        self.forget_index(iid)

    # -- items ------------------------------------------------------------------------------------

    def get(
        self, tid: int, pk: bytes, sk: bytes, conn: sqlite3.Connection | None = None
    ) -> tuple[dict, int] | None:
        """An item and its size; by default through the writer (reads that decide a write)."""
        row = (
            (conn or self.w)
            .execute("SELECT item, size FROM ddb_items WHERE tid = ? AND pk = ? AND sk = ?", (tid, pk, sk))
            .fetchone()
        )
        return (loads(row[0]), row[1]) if row else None

    def get_size(self, tid: int, pk: bytes, sk: bytes) -> int | None:
        row = self.w.execute(
            "SELECT size FROM ddb_items WHERE tid = ? AND pk = ? AND sk = ?", (tid, pk, sk)
        ).fetchone()
        return row[0] if row else None

    def put(self, tid: int, pk: bytes, sk: bytes, item: dict, size: int) -> None:
        self.w.execute(
            "INSERT OR REPLACE INTO ddb_items(tid, pk, sk, size, item) VALUES (?,?,?,?,?)",
            (tid, pk, sk, size, dumps(item)),
        )

    def collection_size(self, tid: int, pk: bytes) -> int:
        return self.w.execute(
            "SELECT coalesce(sum(size), 0) FROM ddb_items WHERE tid = ? AND pk = ?", (tid, pk)
        ).fetchone()[0]

    def delete(self, tid: int, pk: bytes, sk: bytes) -> None:
        self.w.execute("DELETE FROM ddb_items WHERE tid = ? AND pk = ? AND sk = ?", (tid, pk, sk))

    def index_put(self, iid: int, pk: bytes, sk: bytes, tpk: bytes, tsk: bytes) -> int:
        """Add an index row; 1 if it is new, 0 if it was there (the row is all key)."""
        return self.w.execute(
            "INSERT OR IGNORE INTO ddb_index(iid, pk, sk, tpk, tsk) VALUES (?,?,?,?,?)",
            (iid, pk, sk, tpk, tsk),
        ).rowcount

    def index_delete(self, iid: int, pk: bytes, sk: bytes, tpk: bytes, tsk: bytes) -> int:
        """Remove an index row; how many were removed (0 if a backfill has not reached it yet)."""
        return self.w.execute(
            "DELETE FROM ddb_index WHERE iid = ? AND pk = ? AND sk = ? AND tpk = ? AND tsk = ?",
            (iid, pk, sk, tpk, tsk),
        ).rowcount

    # -- range reads ------------------------------------------------------------------------------

    def query(
        self,
        tid: int,
        pk: bytes,
        lo: bytes | None,
        lo_incl: bool,
        hi: bytes | None,
        hi_incl: bool,
        forward: bool,
        after: bytes | None,
        limit: int,
    ) -> Iterator[tuple[bytes, bytes, int, bytes]]:
        """Items of one partition with lo <= sk <= hi, after `after` in scan direction: (pk, sk, size, blob)."""
        sql = ["SELECT pk, sk, size, item FROM ddb_items WHERE tid = ? AND pk = ?"]
        args: list = [tid, pk]
        if lo is not None:
            sql.append("AND sk >= ?" if lo_incl else "AND sk > ?")
            args.append(lo)
        if hi is not None:
            sql.append("AND sk <= ?" if hi_incl else "AND sk < ?")
            args.append(hi)
        if after is not None:
            sql.append("AND sk > ?" if forward else "AND sk < ?")
            args.append(after)
        sql.append("ORDER BY sk" if forward else "ORDER BY sk DESC")
        sql.append("LIMIT ?")
        args.append(limit)
        return self.r.execute(" ".join(sql), args)

    def query_index(
        self,
        tid: int,
        iid: int,
        pk: bytes,
        lo: bytes | None,
        lo_incl: bool,
        hi: bytes | None,
        hi_incl: bool,
        forward: bool,
        after: tuple[bytes, bytes, bytes] | None,
        limit: int,
    ) -> Iterator[tuple[bytes, bytes, int, bytes]]:
        """Index entries of one index partition joined to their items: (tpk, tsk, size, blob)."""
        sql = [
            "SELECT x.tpk, x.tsk, i.size, i.item FROM ddb_index x JOIN ddb_items i",
            "ON i.tid = ? AND i.pk = x.tpk AND i.sk = x.tsk WHERE x.iid = ? AND x.pk = ?",
        ]
        args: list = [tid, iid, pk]
        if lo is not None:
            sql.append("AND x.sk >= ?" if lo_incl else "AND x.sk > ?")
            args.append(lo)
        if hi is not None:
            sql.append("AND x.sk <= ?" if hi_incl else "AND x.sk < ?")
            args.append(hi)
        if after is not None:
            sql.append(
                "AND (x.sk, x.tpk, x.tsk) > (?, ?, ?)" if forward else "AND (x.sk, x.tpk, x.tsk) < (?, ?, ?)"
            )
            args.extend(after)
        order = "" if forward else " DESC"
        sql.append(f"ORDER BY x.sk{order}, x.tpk{order}, x.tsk{order} LIMIT ?")
        args.append(limit)
        return self.r.execute(" ".join(sql), args)

    def scan(
        self, tid: int, after: tuple[bytes, bytes] | None, limit: int
    ) -> Iterator[tuple[bytes, bytes, int, bytes]]:
        if after is None:
            return self.r.execute(
                "SELECT pk, sk, size, item FROM ddb_items WHERE tid = ? ORDER BY pk, sk LIMIT ?", (tid, limit)
            )
        return self.r.execute(
            "SELECT pk, sk, size, item FROM ddb_items WHERE tid = ? AND (pk, sk) > (?, ?) ORDER BY pk, sk LIMIT ?",
            (tid, *after, limit),
        )

    def scan_index(
        self, tid: int, iid: int, after: tuple[bytes, bytes, bytes, bytes] | None, limit: int
    ) -> Iterator[tuple[bytes, bytes, int, bytes]]:
        sql = (
            "SELECT x.tpk, x.tsk, i.size, i.item FROM ddb_index x JOIN ddb_items i "
            "ON i.tid = ? AND i.pk = x.tpk AND i.sk = x.tsk WHERE x.iid = ?"
        )
        if after is None:
            return self.r.execute(sql + " ORDER BY x.pk, x.sk, x.tpk, x.tsk LIMIT ?", (tid, iid, limit))
        return self.r.execute(
            sql + " AND (x.pk, x.sk, x.tpk, x.tsk) > (?, ?, ?, ?) ORDER BY x.pk, x.sk, x.tpk, x.tsk LIMIT ?",
            (tid, iid, *after, limit),
        )

    def all_items(self, tid: int, chunk: int = 1000) -> Iterator[tuple[bytes, bytes, bytes]]:
        """Every item of a table in key order, read in chunks (safe to write index rows meanwhile)."""
        rows = self.w.execute(
            "SELECT pk, sk, item FROM ddb_items WHERE tid = ? ORDER BY pk, sk LIMIT ?", (tid, chunk)
        ).fetchall()
        while rows:
            yield from rows
            last = rows[-1]
            rows = self.w.execute(
                "SELECT pk, sk, item FROM ddb_items WHERE tid = ? AND (pk, sk) > (?, ?) ORDER BY pk, sk LIMIT ?",
                (tid, last[0], last[1], chunk),
            ).fetchall()

    # -- format migration -------------------------------------------------------------------------

    def item_format(self) -> int:
        row = self.w.execute("SELECT value FROM ddb_counters WHERE name = 'item_format'").fetchone()
        return row[0] if row else 1

    def migrate_chunk(
        self, after: tuple[int, bytes, bytes] | None, n: int
    ) -> tuple[int, bytes, bytes] | None:
        """Rewrite format-1 items among the next n rows after `after`; the last key, None when done."""
        c = self.w
        if after is None:
            rows = c.execute("SELECT tid, pk, sk, item FROM ddb_items ORDER BY tid, pk, sk LIMIT ?", (n,))
        else:
            rows = c.execute(
                "SELECT tid, pk, sk, item FROM ddb_items WHERE (tid, pk, sk) > (?, ?, ?) "
                "ORDER BY tid, pk, sk LIMIT ?",
                (*after, n),
            )
        rows = rows.fetchall()
        for tid, pk, sk, blob in rows:
            if blob[0] in _MARSHAL_DICT:
                c.execute(
                    "UPDATE ddb_items SET item = ? WHERE tid = ? AND pk = ? AND sk = ?",
                    (dumps(marshal.loads(blob)), tid, pk, sk),
                )
        if len(rows) < n:
            c.execute(
                "INSERT OR REPLACE INTO ddb_counters(name, value) VALUES ('item_format', ?)", (ITEM_FORMAT,)
            )
            return None
        return rows[-1][0], rows[-1][1], rows[-1][2]

    # -- idempotency tokens -----------------------------------------------------------------------

    def get_token(self, scope: str, token: str, since: float) -> tuple[str, dict] | None:
        row = self.w.execute(
            "SELECT digest, response FROM ddb_tokens WHERE scope = ? AND token = ? AND at >= ?",
            (scope, token, since),
        ).fetchone()
        return (row[0], json.loads(row[1])) if row else None

    def put_token(
        self, scope: str, token: str, digest: str, at: float, response: dict, expire_before: float
    ) -> None:
        c = self.w
        c.execute("DELETE FROM ddb_tokens WHERE at < ?", (expire_before,))
        c.execute(
            "INSERT OR REPLACE INTO ddb_tokens(scope, token, digest, at, response) VALUES (?,?,?,?,?)",
            (scope, token, digest, at, json.dumps(response)),
        )
