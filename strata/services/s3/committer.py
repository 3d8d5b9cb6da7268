"""Group commit: concurrent object writes share one SQLite transaction and one fsync.

With `synchronous=FULL` every COMMIT waits for the disk (~3 ms here). Writes queued while one
commit is in flight are applied together in the next transaction, each in its own SAVEPOINT so
one request's error (PreconditionFailed, NoSuchUpload ...) rolls back only its own changes. A
request's future resolves only after the COMMIT that holds its change is durable.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from strata.storage import MetadataStore

T = TypeVar("T")
_MAX_BATCH = 256


def _settle(fut: asyncio.Future, ok: bool, value: Any) -> None:
    if fut.cancelled():
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)


def _settle_all(settle: list[tuple[asyncio.Future, bool, Any]]) -> None:
    for fut, ok, value in settle:
        _settle(fut, ok, value)


class Committer:
    """One writer thread applying queued write functions in shared, durable transactions."""

    def __init__(self, db: MetadataStore) -> None:
        self._db = db
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    async def run(self, fn: Callable[[], T]) -> T:
        """Apply `fn` (SQL writes through the store) in the next group transaction; its result."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        self._start()
        self._queue.put((fn, loop, fut))
        # The write is committed (or not) by the writer thread whatever happens to this request:
        # cancelling the request cancels only this future, which _settle then leaves alone.
        return await fut

    def _start(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._loop, name="s3-commit", daemon=True)
                    self._thread.start()

    def _loop(self) -> None:
        while True:
            items = [self._queue.get()]
            while len(items) < _MAX_BATCH:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            # One wake-up per event loop and group, not one per write.
            by_loop: dict[Any, list[tuple[asyncio.Future, bool, Any]]] = {}
            for (_, loop, fut), (ok, value) in zip(items, self._apply(items), strict=True):
                by_loop.setdefault(loop, []).append((fut, ok, value))
            for loop, settle in by_loop.items():
                try:
                    loop.call_soon_threadsafe(_settle_all, settle)
                except RuntimeError:  # the loop is closed (shutdown)
                    pass

    def _apply(self, items: list[tuple]) -> list[tuple[bool, Any]]:
        conn = self._db.conn
        results: list[tuple[bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for fn, _, _ in items:
                conn.execute("SAVEPOINT one")
                try:
                    value = fn()
                except BaseException as e:  # noqa: BLE001 - handed to the waiting request
                    conn.execute("ROLLBACK TO one")
                    conn.execute("RELEASE one")
                    results.append((False, e))
                else:
                    conn.execute("RELEASE one")
                    results.append((True, value))
            conn.execute("COMMIT")
        except BaseException as e:  # noqa: BLE001 - the commit itself failed: nothing was written
            # (SQLITE_FULL or an I/O error may already have rolled the whole group back; a
            # failing ROLLBACK must not end this thread: the next group starts afresh.)
            try:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            return [(False, e)] * len(items)
        return results
