"""The metadata store: SQLite in WAL mode, one database file per service.

Why SQLite: an embedded, crash-safe, indexed store with real transactions. WAL lets readers run
while one writer commits; every write goes through one writer connection and its group commit
(group_commit.py), which fsyncs the WAL before a write is acknowledged (when Settings.fsync is
on); any mode survives a kill -9 of the process.

Reads go through a connection per thread (SQLite connections are not shared across threads) and
see committed data only. Inside a write, `conn` (and so `execute`, `query`, `query_one`) is the
writer connection on the writing thread, so a service's store methods work unchanged inside and
outside writes. Services keep their SQL in their own `store.py` and use this class for
connections, writes, schema set-up and a small JSON document table for resource records.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from strata.storage.group_commit import GroupCommit

T = TypeVar("T")
MMAP_BYTES = 1 << 30

_DOCS_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, id)
) WITHOUT ROWID;
"""


class MetadataStore:
    """One SQLite database: per-thread read connections and the one group-committing writer."""

    def __init__(self, path: Path, *, fsync: bool = True, schema: str = "", apply_in: str = "loop") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fsync = fsync
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.writer = GroupCommit(self.path, self._connect, fsync=fsync, apply_in=apply_in)
        self._in_thread = apply_in == "thread"
        self.executescript(_DOCS_SCHEMA + schema)

    # -- connections -----------------------------------------------------------------------------

    def _connect(self, synchronous: str) -> sqlite3.Connection:
        c = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        c.execute("PRAGMA journal_mode=WAL")
        c.execute(f"PRAGMA synchronous={synchronous}")
        c.execute("PRAGMA foreign_keys=ON")
        c.execute("PRAGMA cache_size=-65536")
        with self._lock:
            self._all.append(c)
        return c

    def reader(self) -> sqlite3.Connection:
        """The calling thread's read connection: committed data only, even inside a write."""
        c = getattr(self._local, "conn", None)
        if c is None:
            c = self._connect("FULL" if self._fsync else "NORMAL")
            # Memory-mapped reads: a range scan of a large, cold table costs no read() calls.
            c.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
            self._local.conn = c
        return c

    @property
    def conn(self) -> sqlite3.Connection:
        """The writer connection inside a write on this thread, else the thread's read connection."""
        w = self.writer
        if w.owner == threading.get_ident():
            return w.conn
        return self.reader()

    def close(self) -> None:
        self.writer.close()
        with self._lock:
            for c in self._all:
                try:
                    c.close()
                except sqlite3.Error:
                    pass
            self._all.clear()
        self._local = threading.local()

    # -- writes ----------------------------------------------------------------------------------

    def write(self, fn: Callable[[], T]) -> Coroutine[Any, Any, T]:
        """Run `fn` (statements through this store) as one atomic write; await its result, which
        comes once the write is durable.

        `fn` runs in order with every other write: at once on the calling thread (the default),
        or in the writer thread (apply_in="thread"); an exception from it rolls back only its
        own statements and is raised to the caller. Concurrent writes share one commit and one
        fsync. (A plain function returning the writer's coroutine: one frame less per write.)
        """
        if self._in_thread:
            return self.writer.write_in_thread(fn)
        return self.writer.write(fn)

    async def read(self, fn: Callable[[], T]) -> T:
        """Run `fn` (reads through this store) at once on the calling thread: a local SQLite read
        takes microseconds, less than a hop to a thread would (PostgresStore runs it in one)."""
        return fn()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: all of it commits, or none of it on any exception; durable on exit.

        Nested use (or use inside `write`) joins the outer write. Blocks for one fsync: for
        start-up, resource records and other paths where a request may wait for the disk.
        """
        with self.writer.transaction() as c:
            yield c

    # -- statements ------------------------------------------------------------------------------

    def execute(self, sql: str, args: Sequence[Any] | dict = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, args)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> sqlite3.Cursor:
        return self.conn.executemany(sql, rows)

    def executescript(self, script: str) -> None:
        """Schema set-up and migrations, through the writer; durable on return."""
        if script.strip():
            self.writer.script(script)

    def query(self, sql: str, args: Sequence[Any] | dict = ()) -> list[sqlite3.Row | tuple]:
        return self.conn.execute(sql, args).fetchall()

    def query_one(self, sql: str, args: Sequence[Any] | dict = ()) -> Any:
        return self.conn.execute(sql, args).fetchone()

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A consistent read of several statements (one read transaction)."""
        r = self.reader()
        r.execute("BEGIN")
        try:
            yield r
        finally:
            r.execute("COMMIT")

    # -- JSON documents (resource records: RDS instances, cache clusters, keys ...) ---------------

    def put_doc(self, kind: str, id: str, body: dict) -> None:
        """Insert or replace a document; durable on return (or with the write it is part of)."""
        with self.transaction() as c:
            c.execute(
                "INSERT INTO documents(kind, id, body) VALUES (?,?,?) "
                "ON CONFLICT(kind, id) DO UPDATE SET body = excluded.body",
                (kind, id, json.dumps(body, default=str)),
            )

    def get_doc(self, kind: str, id: str) -> dict | None:
        row = self.query_one("SELECT body FROM documents WHERE kind = ? AND id = ?", (kind, id))
        return json.loads(row[0]) if row else None

    def list_docs(
        self, kind: str, prefix: str = "", *, after: str = "", limit: int | None = None
    ) -> list[dict]:
        """Documents of one kind in id order (code point order), optionally only ids starting
        with `prefix`, only ids after `after` (a page's last id is the next page's token), and
        at most `limit` of them."""
        sql = "SELECT body FROM documents WHERE kind = ?"
        args: list[Any] = [kind]
        if after:
            sql += " AND id > ?"
            args.append(after)
        if prefix:
            sql += " AND id >= ? AND id < ?"
            args += [prefix, prefix + "\U0010ffff"]
        sql += " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [json.loads(r[0]) for r in self.query(sql, args)]

    def delete_doc(self, kind: str, id: str) -> bool:
        """Delete a document; durable on return. False if there was none."""
        with self.transaction() as c:
            return c.execute("DELETE FROM documents WHERE kind = ? AND id = ?", (kind, id)).rowcount > 0
