"""SQLite storage of DynamoDB tables, items and secondary-index entries.

    ddb_tables  (tid, scope, name, meta JSON, item_count, size_bytes)   counts kept incrementally
    ddb_items   (tid, pk, sk, size, item)        WITHOUT ROWID, primary key (tid, pk, sk)
    ddb_index   (iid, pk, sk, tpk, tsk)          WITHOUT ROWID, one row per item in a GSI/LSI
    ddb_tokens  (scope, token, digest, at, response)   TransactWriteItems idempotency

Keys are byte-comparable encodings (keys.py), so a Query is a range scan of the primary key and
an index Query a range scan of ddb_index joined back to the item. Items are stored marshalled in
their wire shape. Index rows are written in the same SQLite transaction as the item.
"""

from __future__ import annotations

import json
import marshal
from collections.abc import Iterator
from pathlib import Path

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
"""

dumps = marshal.dumps
loads = marshal.loads


class ItemStore:
    def __init__(self, path: Path, *, fsync: bool = True) -> None:
        self.db = MetadataStore(path, fsync=fsync, schema=SCHEMA)

    @property
    def conn(self):  # noqa: ANN201 - sqlite3.Connection of the calling thread
        return self.db.conn

    def transaction(self):  # noqa: ANN201 - context manager
        return self.db.transaction()

    # -- tables -----------------------------------------------------------------------------------

    def next_id(self, name: str) -> int:
        """A fresh id from a named counter (table ids, index ids), never reused."""
        c = self.conn
        row = c.execute(
            "INSERT INTO ddb_counters(name, value) VALUES (?, 1) "
            "ON CONFLICT(name) DO UPDATE SET value = value + 1 RETURNING value",
            (name,),
        ).fetchone()
        return row[0]

    def load_tables(self) -> list[tuple[dict, int, int]]:
        rows = self.conn.execute("SELECT meta, item_count, size_bytes FROM ddb_tables").fetchall()
        return [(json.loads(r[0]), r[1], r[2]) for r in rows]

    def insert_table(self, meta: dict) -> None:
        self.conn.execute(
            "INSERT INTO ddb_tables(tid, scope, name, meta) VALUES (?,?,?,?)",
            (meta["tid"], meta["scope"], meta["name"], json.dumps(meta)),
        )

    def save_meta(self, meta: dict) -> None:
        self.conn.execute("UPDATE ddb_tables SET meta = ? WHERE tid = ?", (json.dumps(meta), meta["tid"]))

    def delete_table(self, tid: int, iids: list[int]) -> None:
        c = self.conn
        c.execute("DELETE FROM ddb_items WHERE tid = ?", (tid,))
        for iid in iids:
            c.execute("DELETE FROM ddb_index WHERE iid = ?", (iid,))
        c.execute("DELETE FROM ddb_tables WHERE tid = ?", (tid,))

    def counts(self, tid: int) -> tuple[int, int]:
        row = self.conn.execute("SELECT item_count, size_bytes FROM ddb_tables WHERE tid = ?", (tid,)).fetchone()
        return (row[0], row[1]) if row else (0, 0)

    def adjust_counts(self, tid: int, items: int, size: int) -> None:
        self.conn.execute(
            "UPDATE ddb_tables SET item_count = item_count + ?, size_bytes = size_bytes + ? WHERE tid = ?",
            (items, size, tid),
        )

    def index_count(self, iid: int) -> int:
        return self.conn.execute("SELECT count(*) FROM ddb_index WHERE iid = ?", (iid,)).fetchone()[0]

    def delete_index(self, iid: int) -> None:
        self.conn.execute("DELETE FROM ddb_index WHERE iid = ?", (iid,))

    # -- items ------------------------------------------------------------------------------------

    def get(self, tid: int, pk: bytes, sk: bytes) -> tuple[dict, int] | None:
        row = self.conn.execute(
            "SELECT item, size FROM ddb_items WHERE tid = ? AND pk = ? AND sk = ?", (tid, pk, sk)
        ).fetchone()
        return (loads(row[0]), row[1]) if row else None

    def get_size(self, tid: int, pk: bytes, sk: bytes) -> int | None:
        row = self.conn.execute(
            "SELECT size FROM ddb_items WHERE tid = ? AND pk = ? AND sk = ?", (tid, pk, sk)
        ).fetchone()
        return row[0] if row else None

    def put(self, tid: int, pk: bytes, sk: bytes, item: dict, size: int) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO ddb_items(tid, pk, sk, size, item) VALUES (?,?,?,?,?)",
            (tid, pk, sk, size, dumps(item)),
        )

    def delete(self, tid: int, pk: bytes, sk: bytes) -> None:
        self.conn.execute("DELETE FROM ddb_items WHERE tid = ? AND pk = ? AND sk = ?", (tid, pk, sk))

    def index_put(self, iid: int, pk: bytes, sk: bytes, tpk: bytes, tsk: bytes) -> None:
        self.conn.execute("INSERT OR REPLACE INTO ddb_index(iid, pk, sk, tpk, tsk) VALUES (?,?,?,?,?)",
                          (iid, pk, sk, tpk, tsk))

    def index_delete(self, iid: int, pk: bytes, sk: bytes, tpk: bytes, tsk: bytes) -> None:
        self.conn.execute("DELETE FROM ddb_index WHERE iid = ? AND pk = ? AND sk = ? AND tpk = ? AND tsk = ?",
                          (iid, pk, sk, tpk, tsk))

    # -- range reads ------------------------------------------------------------------------------

    def query(self, tid: int, pk: bytes, lo: bytes | None, lo_incl: bool, hi: bytes | None, hi_incl: bool,
              forward: bool, after: bytes | None, limit: int) -> Iterator[tuple[bytes, bytes, int, bytes]]:
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
        return self.conn.execute(" ".join(sql), args)

    def query_index(self, tid: int, iid: int, pk: bytes, lo: bytes | None, lo_incl: bool, hi: bytes | None,
                    hi_incl: bool, forward: bool, after: tuple[bytes, bytes, bytes] | None,
                    limit: int) -> Iterator[tuple[bytes, bytes, int, bytes]]:
        """Index entries of one index partition joined to their items: (tpk, tsk, size, blob)."""
        sql = ["SELECT x.tpk, x.tsk, i.size, i.item FROM ddb_index x JOIN ddb_items i",
               "ON i.tid = ? AND i.pk = x.tpk AND i.sk = x.tsk WHERE x.iid = ? AND x.pk = ?"]
        args: list = [tid, iid, pk]
        if lo is not None:
            sql.append("AND x.sk >= ?" if lo_incl else "AND x.sk > ?")
            args.append(lo)
        if hi is not None:
            sql.append("AND x.sk <= ?" if hi_incl else "AND x.sk < ?")
            args.append(hi)
        if after is not None:
            sql.append("AND (x.sk, x.tpk, x.tsk) > (?, ?, ?)" if forward else "AND (x.sk, x.tpk, x.tsk) < (?, ?, ?)")
            args.extend(after)
        order = "" if forward else " DESC"
        sql.append(f"ORDER BY x.sk{order}, x.tpk{order}, x.tsk{order} LIMIT ?")
        args.append(limit)
        return self.conn.execute(" ".join(sql), args)

    def scan(self, tid: int, after: tuple[bytes, bytes] | None, limit: int) -> Iterator[tuple[bytes, bytes, int, bytes]]:
        if after is None:
            return self.conn.execute(
                "SELECT pk, sk, size, item FROM ddb_items WHERE tid = ? ORDER BY pk, sk LIMIT ?", (tid, limit))
        return self.conn.execute(
            "SELECT pk, sk, size, item FROM ddb_items WHERE tid = ? AND (pk, sk) > (?, ?) ORDER BY pk, sk LIMIT ?",
            (tid, *after, limit),
        )

    def scan_index(self, tid: int, iid: int, after: tuple[bytes, bytes, bytes, bytes] | None,
                   limit: int) -> Iterator[tuple[bytes, bytes, int, bytes]]:
        sql = ("SELECT x.tpk, x.tsk, i.size, i.item FROM ddb_index x JOIN ddb_items i "
               "ON i.tid = ? AND i.pk = x.tpk AND i.sk = x.tsk WHERE x.iid = ?")
        if after is None:
            return self.conn.execute(sql + " ORDER BY x.pk, x.sk, x.tpk, x.tsk LIMIT ?", (tid, iid, limit))
        return self.conn.execute(
            sql + " AND (x.pk, x.sk, x.tpk, x.tsk) > (?, ?, ?, ?) ORDER BY x.pk, x.sk, x.tpk, x.tsk LIMIT ?",
            (tid, iid, *after, limit),
        )

    def all_items(self, tid: int) -> Iterator[tuple[bytes, bytes, bytes]]:
        return self.conn.execute("SELECT pk, sk, item FROM ddb_items WHERE tid = ?", (tid,))

    # -- idempotency tokens -----------------------------------------------------------------------

    def get_token(self, scope: str, token: str, since: float) -> tuple[str, dict] | None:
        row = self.conn.execute(
            "SELECT digest, response FROM ddb_tokens WHERE scope = ? AND token = ? AND at >= ?", (scope, token, since)
        ).fetchone()
        return (row[0], json.loads(row[1])) if row else None

    def put_token(self, scope: str, token: str, digest: str, at: float, response: dict, expire_before: float) -> None:
        c = self.conn
        c.execute("DELETE FROM ddb_tokens WHERE at < ?", (expire_before,))
        c.execute("INSERT OR REPLACE INTO ddb_tokens(scope, token, digest, at, response) VALUES (?,?,?,?,?)",
                  (scope, token, digest, at, json.dumps(response)))
