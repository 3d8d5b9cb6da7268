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

Durability is strata.storage's: each write operation is one `db.write(fn)` (a SAVEPOINT in the
group transaction, acknowledged once the group's fsync is done); reads (GetItem, Query, Scan) use
a per-thread read connection and so only ever see committed data.

Backends: the embedded SQLite (`dynamodb.sqlite3`, write functions on the event loop), or with
`--metadata postgresql://...` the `dynamodb` store of that database (strata.storage.postgres:
write functions in its writer thread, each group under the store's advisory lock, so the
read-check-write of a conditional write or a transaction is serialized with every other
gateway's writes too). The statements are the same text on both (the interface's common SQL).
"""

from __future__ import annotations

import json
import marshal
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

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

ITEM_FORMAT = 2  # 1: marshal (before), 2: MessagePack
_MARSHAL_DICT = frozenset((0x7B, 0xFB))  # marshal's dict type byte, plain or with FLAG_REF
# Only ever called inside a write (under the writer's lock), so one Packer is safe to share.
dumps = msgpack.Packer(use_bin_type=True).pack
_unpackb = msgpack.unpackb


def loads(blob: bytes) -> dict:
    """An item from its stored bytes: MessagePack, or marshal for rows of format 1.

    A MessagePack map starts with 0x80-0x8f, 0xde or 0xdf, never with marshal's dict bytes.
    """
    if blob[0] in _MARSHAL_DICT:
        return marshal.loads(blob)
    return _unpackb(blob)


class ItemStore:
    """The SQL of DynamoDB over one metadata store.

    Statements that write, and reads that decide a write, go through `w`, the store's writer
    connection; they run inside `db.write(fn)` (or `write()` for synchronous paths). Reads that
    answer requests go through `r`, which sees committed data only.
    """

    def __init__(self, path: Path, *, fsync: bool = True, metadata_url: str | None = None) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.postgres = metadata_url is not None
        # What pitr.snapshot opens for backups, restores and exports: the file, or the database.
        self.snapshot_source: Path | str = metadata_url if metadata_url is not None else self.path
        self.db: Any
        if metadata_url is None:
            self.db = MetadataStore(path, fsync=fsync, schema=SCHEMA)
            self.w: Any = self.db.writer.conn  # the one writer connection, for the store's life
            self._writes: Any = self.db.writer  # whose `owner` is the thread inside a write
        else:
            from strata.storage.postgres import PostgresStore  # psycopg loads only where it is used

            self.db = PostgresStore(metadata_url, "dynamodb", schema=SCHEMA)
            self.w = _Writer(self.db)  # the writer connection is made again after a failover
            self._writes = self.db
        # Item collections (one partition key's items) of tables with LSIs are capped (10 GB in AWS).
        self.collection_limit = 10 * 1024**3
        self.stream_seq = 0  # the last stream record's sequence number (streams.py)
        self.meta_texts: dict[int, str] = {}  # PostgreSQL: tid -> its ddb_tables.meta as last seen

    @property
    def r(self) -> sqlite3.Connection:
        """The reading connection of the calling thread (sees committed data only)."""
        return self.db.reader()

    def write(self) -> AbstractContextManager[sqlite3.Connection]:
        """Marks a write: inside `db.write(fn)` (which makes it atomic) nothing more; elsewhere a
        durable transaction of its own (start-up, table settings)."""
        if self._writes.owner == threading.get_ident():
            return nullcontext(self.w)
        return self.db.transaction()

    def snapshot(self) -> AbstractContextManager[sqlite3.Connection]:
        """A consistent read of several items (TransactGetItems)."""
        return self.db.snapshot()

    def close(self) -> None:
        self.db.close()

    # -- tables -----------------------------------------------------------------------------------

    def next_id(self, name: str) -> int:
        """A fresh id from a named counter (table ids, index ids), never reused."""
        row = self.w.execute(
            "INSERT INTO ddb_counters(name, value) VALUES (?, 1) "
            "ON CONFLICT(name) DO UPDATE SET value = ddb_counters.value + 1 RETURNING value",
            (name,),
        ).fetchone()
        return row[0]

    def load_tables(self) -> list[tuple[dict, int, int]]:
        rows = self.r.execute("SELECT meta, item_count, size_bytes FROM ddb_tables").fetchall()
        return [(json.loads(r[0]), r[1], r[2]) for r in rows]

    def insert_table(self, meta: dict) -> None:
        text = json.dumps(meta)
        self.w.execute(
            "INSERT INTO ddb_tables(tid, scope, name, meta) VALUES (?,?,?,?)",
            (meta["tid"], meta["scope"], meta["name"], text),
        )
        if self.postgres:
            self._tables_changed(meta["tid"], text)

    def save_meta(self, meta: dict) -> None:
        text = json.dumps(meta)
        self.w.execute("UPDATE ddb_tables SET meta = ? WHERE tid = ?", (text, meta["tid"]))
        if self.postgres:
            self._tables_changed(meta["tid"], text)

    def delete_table(self, tid: int, iids: list[int]) -> None:
        c = self.w
        c.execute("DELETE FROM ddb_items WHERE tid = ?", (tid,))
        for iid in iids:
            self.delete_index(iid)
        c.execute("DELETE FROM ddb_tables WHERE tid = ?", (tid,))
        if self.postgres:
            self._tables_changed(tid, None)

    # -- table metadata shared by several gateways (PostgreSQL) -----------------------------------
    #
    # Each gateway keeps the tables' metadata in memory (state.py). With several gateways a table
    # created, updated or deleted through one must be seen by the others: every change of a
    # ddb_tables row advances the `tables_version` counter in the same write, and a gateway reads
    # the counter (one indexed row) before an operation, and again inside a write under the
    # store's lock, reloading the rows when it moved (state.State.sync).

    def _tables_changed(self, tid: int, text: str | None) -> None:
        if text is None:
            self.meta_texts.pop(tid, None)
        else:
            self.meta_texts[tid] = text  # the row as this gateway wrote it (state.State.sync)
        self.w.execute(
            "INSERT INTO ddb_counters(name, value) VALUES ('tables_version', 1) "
            "ON CONFLICT(name) DO UPDATE SET value = ddb_counters.value + 1"
        )

    def tables_version(self) -> int:
        """The counter of table changes: inside a write under the store's lock, else committed."""
        row = self.db.conn.execute("SELECT value FROM ddb_counters WHERE name = 'tables_version'").fetchone()
        return row[0] if row else 0

    def table_rows(self) -> list[tuple[int, str]]:
        """(tid, meta JSON) of every table, through the same connection as `tables_version`."""
        return self.db.conn.execute("SELECT tid, meta FROM ddb_tables").fetchall()

    def in_write(self) -> bool:
        """Whether the calling thread is inside a write of this store."""
        return self._writes.owner == threading.get_ident()

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
        if self.postgres:
            self._tables_changed(tid, None)

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
            "INSERT INTO ddb_index_counts(iid, n) VALUES (?, ?) ON CONFLICT(iid) DO UPDATE SET n = ddb_index_counts.n + excluded.n",
            (iid, delta),
        )

    def count_indexes(self, iids: list[int]) -> None:
        """Store the row count of indexes that have none (a store from before the counts table)."""
        if self.w.execute("SELECT 1 FROM ddb_counters WHERE name = 'index_counts'").fetchone():
            return
        with self.write() as c:
            for iid in iids:
                n = c.execute("SELECT count(*) FROM ddb_index WHERE iid = ?", (iid,)).fetchone()[0]
                c.execute(
                    "INSERT INTO ddb_index_counts(iid, n) VALUES (?, ?) ON CONFLICT(iid) DO UPDATE SET n = excluded.n",
                    (iid, n),
                )
            c.execute(
                "INSERT INTO ddb_counters(name, value) VALUES ('index_counts', 1) "
                "ON CONFLICT(name) DO UPDATE SET value = excluded.value"
            )

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

    def put(self, tid: int, pk: bytes, sk: bytes, item: dict, size: int, blob: bytes | None = None) -> None:
        """Store an item (`blob`: its bytes when the caller encoded it already, streams.py)."""
        self.w.execute(
            "INSERT INTO ddb_items(tid, pk, sk, size, item) VALUES (?,?,?,?,?) "
            "ON CONFLICT(tid, pk, sk) DO UPDATE SET size = excluded.size, item = excluded.item",
            (tid, pk, sk, size, blob if blob is not None else dumps(item)),
        )

    def collection_size(self, tid: int, pk: bytes) -> int:
        return int(  # (PostgreSQL's sum of BIGINT is a NUMERIC: a Decimal)
            self.w.execute(
                "SELECT coalesce(sum(size), 0) FROM ddb_items WHERE tid = ? AND pk = ?", (tid, pk)
            ).fetchone()[0]
        )

    def delete(self, tid: int, pk: bytes, sk: bytes) -> None:
        self.w.execute("DELETE FROM ddb_items WHERE tid = ? AND pk = ? AND sk = ?", (tid, pk, sk))

    def index_put(self, iid: int, pk: bytes, sk: bytes, tpk: bytes, tsk: bytes) -> int:
        """Add an index row; 1 if it is new, 0 if it was there (the row is all key)."""
        return self.w.execute(
            "INSERT INTO ddb_index(iid, pk, sk, tpk, tsk) VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING",
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
        args.append(limit if limit >= 0 or not self.postgres else None)  # -1 / NULL: no limit
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
        args.append(limit if limit >= 0 or not self.postgres else None)  # -1 / NULL: no limit
        return self.r.execute(" ".join(sql), args)

    def scan(
        self, tid: int, after: tuple[bytes, bytes] | None, limit: int | None
    ) -> Iterator[tuple[bytes, bytes, int, bytes]]:
        if limit is not None and limit < 0 and self.postgres:
            limit = None  # SQLite's LIMIT -1 is PostgreSQL's LIMIT NULL: no limit
        if after is None:
            return self.r.execute(
                "SELECT pk, sk, size, item FROM ddb_items WHERE tid = ? ORDER BY pk, sk LIMIT ?", (tid, limit)
            )
        return self.r.execute(
            "SELECT pk, sk, size, item FROM ddb_items WHERE tid = ? AND (pk, sk) > (?, ?) ORDER BY pk, sk LIMIT ?",
            (tid, *after, limit),
        )

    def scan_index(
        self, tid: int, iid: int, after: tuple[bytes, bytes, bytes, bytes] | None, limit: int | None
    ) -> Iterator[tuple[bytes, bytes, int, bytes]]:
        if limit is not None and limit < 0 and self.postgres:
            limit = None
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
                "INSERT INTO ddb_counters(name, value) VALUES ('item_format', ?) "
                "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                (ITEM_FORMAT,),
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
            "INSERT INTO ddb_tokens(scope, token, digest, at, response) VALUES (?,?,?,?,?) "
            "ON CONFLICT(scope, token) DO UPDATE SET digest = excluded.digest, at = excluded.at, "
            "response = excluded.response",
            (scope, token, digest, at, json.dumps(response)),
        )


class _Writer:
    """`ItemStore.w` on PostgreSQL: the store's connection of the moment (inside a write its writer
    connection, which PostgresStore makes again after a failover; elsewhere its reader)."""

    __slots__ = ("db",)

    def __init__(self, db: Any) -> None:
        self.db = db

    def execute(self, sql: str, args: Any = (), /) -> Any:
        return self.db.conn.execute(sql, args)

    def executemany(self, sql: str, rows: Any) -> Any:
        return self.db.conn.executemany(sql, rows)
