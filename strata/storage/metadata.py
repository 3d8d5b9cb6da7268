"""The metadata store: SQLite in WAL mode, one database file per service.

Why SQLite: an embedded, crash-safe, indexed store with real transactions. WAL lets readers run
while one writer commits; `synchronous=FULL` (the default when Settings.fsync is on) makes a
committed transaction survive power loss, and any mode survives a kill -9 of the process.

Each thread gets its own connection (SQLite connections are not shared across threads); the
event-loop thread does short queries inline and long work goes through `run_blocking`.
Services keep their SQL in their own `store.py` and use this class for connections,
transactions, schema set-up and a small JSON document table for resource records.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_DOCS_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, id)
) WITHOUT ROWID;
"""


class MetadataStore:
    """One SQLite database with per-thread connections and explicit write transactions."""

    def __init__(self, path: Path, *, fsync: bool = True, schema: str = "") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fsync = fsync
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.executescript(_DOCS_SCHEMA + schema)

    # -- connections -----------------------------------------------------------------------------

    @property
    def conn(self) -> sqlite3.Connection:
        c = getattr(self._local, "conn", None)
        if c is None:
            c = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            c.execute("PRAGMA journal_mode=WAL")
            c.execute(f"PRAGMA synchronous={'FULL' if self._fsync else 'NORMAL'}")
            c.execute("PRAGMA foreign_keys=ON")
            c.execute("PRAGMA cache_size=-65536")
            self._local.conn = c
            with self._lock:
                self._all.append(c)
        return c

    def close(self) -> None:
        with self._lock:
            for c in self._all:
                try:
                    c.close()
                except sqlite3.Error:
                    pass
            self._all.clear()
        self._local = threading.local()

    # -- statements ------------------------------------------------------------------------------

    def execute(self, sql: str, args: Sequence[Any] | dict = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, args)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> sqlite3.Cursor:
        return self.conn.executemany(sql, rows)

    def executescript(self, script: str) -> None:
        if script.strip():
            self.conn.executescript(script)

    def query(self, sql: str, args: Sequence[Any] | dict = ()) -> list[sqlite3.Row | tuple]:
        return self.conn.execute(sql, args).fetchall()

    def query_one(self, sql: str, args: Sequence[Any] | dict = ()) -> Any:
        return self.conn.execute(sql, args).fetchone()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE): all of it commits, or none of it on any exception.

        Nested use joins the outer transaction.
        """
        c = self.conn
        if c.in_transaction:
            yield c
            return
        c.execute("BEGIN IMMEDIATE")
        try:
            yield c
        except BaseException:
            c.execute("ROLLBACK")
            raise
        else:
            c.execute("COMMIT")

    # -- JSON documents (resource records: RDS instances, cache clusters, keys ...) ---------------

    def put_doc(self, kind: str, id: str, body: dict) -> None:
        self.execute(
            "INSERT INTO documents(kind, id, body) VALUES (?,?,?) "
            "ON CONFLICT(kind, id) DO UPDATE SET body = excluded.body",
            (kind, id, json.dumps(body, default=str)),
        )

    def get_doc(self, kind: str, id: str) -> dict | None:
        row = self.query_one("SELECT body FROM documents WHERE kind = ? AND id = ?", (kind, id))
        return json.loads(row[0]) if row else None

    def list_docs(self, kind: str, prefix: str = "") -> list[dict]:
        """Documents of one kind in id order, optionally only ids starting with `prefix`."""
        if prefix:
            rows = self.query(
                "SELECT body FROM documents WHERE kind = ? AND id >= ? AND id < ? ORDER BY id",
                (kind, prefix, prefix + "\U0010ffff"),
            )
        else:
            rows = self.query("SELECT body FROM documents WHERE kind = ? ORDER BY id", (kind,))
        return [json.loads(r[0]) for r in rows]

    def delete_doc(self, kind: str, id: str) -> bool:
        return self.execute("DELETE FROM documents WHERE kind = ? AND id = ?", (kind, id)).rowcount > 0
