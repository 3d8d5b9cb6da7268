"""Group commit: the one writer of a SQLite database, shared by every write of every caller.

Every write runs as a SAVEPOINT (atomic on its own: an exception rolls back only that write)
inside one open transaction on the writer connection. After the event-loop turn in which writes
arrived, the group is COMMITted on the loop — in WAL mode with synchronous=NORMAL that only
appends the group to the WAL, which a kill -9 of the process no longer loses — and the one fsync
of the WAL that makes it survive power loss runs in a thread while the loop goes on and the next
group grows in a new transaction. When that fsync ends the next group is committed at once, so
each fsync covers every write that arrived meanwhile. A caller of `write()` is answered only when
the fsync covering its group is done; a write that failed is answered once the writes it may have
read are committed (a kill -9 no longer loses them; readers see no less).

Why this strategy (DynamoDB's before; S3 applied its writes in a writer thread and COMMITted
with synchronous=FULL there): running the write functions on the loop costs no thread hand-off
per write, and the loop never waits for the disk. Measured side by side in issue 22's note.

Synchronous callers (`transaction()`: start-up, resource records, admin paths) use the same
connection and commit durably before returning, taking any open group with them.
When the WAL has grown past CHECKPOINT_BYTES, the fsync thread also checkpoints it and restarts it
from empty; writes wait for that (a few milliseconds), reads do not.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger("strata")
CHECKPOINT_BYTES = 4 << 20  # a WAL this large is checkpointed and restarted (~1000 pages, SQLite's default)
CHECK_EVERY = 16  # commits between looks at the WAL's size


def _settle(waiters: list[asyncio.Future], error: BaseException | None) -> None:
    """Resolve futures of possibly several event loops, each on its own loop's thread."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future]] = {}
    for f in waiters:
        by_loop.setdefault(f.get_loop(), []).append(f)
    for loop, futs in by_loop.items():
        if loop is running:
            _resolve(futs, error)
        else:
            try:
                loop.call_soon_threadsafe(_resolve, futs, error)
            except RuntimeError:  # that loop is closed: nobody waits any more
                pass


def _resolve(futs: list[asyncio.Future], error: BaseException | None) -> None:
    for f in futs:
        if not f.done():  # a cancelled request's write still commits; its future is left alone
            if error is None:
                f.set_result(None)
            else:
                f.set_exception(error)


class GroupCommit:
    """The writer connection of one database file, its group transaction and its fsync thread."""

    def __init__(self, path: Path, connect: Callable[[str], sqlite3.Connection], *, fsync: bool) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.conn = connect("NORMAL")
        # Checkpoints run in a thread of their own, never inside a COMMIT.
        self.conn.execute("PRAGMA wal_autocheckpoint=0")
        self._connect = connect
        self._lock = threading.RLock()
        self.owner = 0  # the thread inside a write (its statements go to this connection)
        self._depth = 0
        self._waiters: list[asyncio.Future] = []
        self._scheduled = False
        self._syncing = False  # an fsync of a committed group is running in the sync thread
        self._sync_pool: ThreadPoolExecutor | None = None
        self._wal_fd: int | None = None
        self._commits = 0
        self._ckpt: sqlite3.Connection | None = None  # the sync thread's own connection
        self._gate: asyncio.Event | None = None  # set while a checkpoint holds writes back

    # -- writes -----------------------------------------------------------------------------------

    @contextmanager
    def savepoint(self) -> Iterator[sqlite3.Connection]:
        """One atomic write inside the open group transaction (nested ones nest)."""
        with self._lock:
            c = self.conn
            if not c.in_transaction:
                c.execute("BEGIN IMMEDIATE")
            c.execute("SAVEPOINT w")
            owner, self.owner = self.owner, threading.get_ident()
            self._depth += 1
            try:
                yield c
            except BaseException:
                c.execute("ROLLBACK TO w")
                c.execute("RELEASE w")
                raise
            else:
                c.execute("RELEASE w")
            finally:
                self._depth -= 1
                self.owner = owner

    async def write(self, fn: Callable[[], T]) -> T:
        """Apply `fn` now, atomically; its result once the group holding it is durable."""
        while self._gate is not None:  # a checkpoint is restarting the WAL: reads go on meanwhile
            await self._gate.wait()
        try:
            with self.savepoint():
                value = fn()
        except Exception:
            # It may have read writes of the open group, which a kill -9 would lose: answer once
            # they are committed, so a failure exposes no more than a read can.
            if self._waiters:
                with suppress(Exception):  # the write's own error is the answer
                    await self._durable()
            raise
        await self._durable()
        return value

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A synchronous write: atomic, and durable when the outermost one exits."""
        with self._lock:
            outer = self._depth == 0
            try:
                with self.savepoint() as c:
                    yield c
            finally:
                if outer:
                    self.commit_now()

    def script(self, sql: str) -> None:
        """Run a script of statements (schema set-up) after the open group; durable on return."""
        with self._lock:
            self.commit_now()  # executescript would COMMIT the open group without its fsync
            self.conn.executescript(sql)
            self._sync()

    def commit_now(self) -> None:
        """Commit the open group durably now (blocking), and wake everyone waiting for it."""
        with self._lock:
            waiters, self._waiters = self._waiters, []
            try:
                self._commit()
                self._sync()
            except (sqlite3.Error, OSError) as e:
                _settle(waiters, e)
                raise
            if self._checkpoint_due():  # nobody can begin a write while we hold the lock
                self.conn.execute("PRAGMA busy_timeout=100")
                self._checkpoint(self.conn)
                self.conn.execute("PRAGMA busy_timeout=30000")
        _settle(waiters, None)

    def _commit(self) -> None:
        c = self.conn
        if not c.in_transaction:
            return
        try:
            c.execute("COMMIT")
        except sqlite3.Error:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise
        self._commits += 1

    def _checkpoint_due(self) -> bool:
        if self._commits < CHECK_EVERY:
            return False
        self._commits = 0
        try:
            return os.stat(f"{self.path}-wal").st_size >= CHECKPOINT_BYTES
        except FileNotFoundError:
            return False

    # -- the group commit on the event loop -------------------------------------------------------

    async def _durable(self) -> None:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._waiters.append(fut)
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        await fut

    def _flush(self) -> None:
        """COMMIT the group (an append to the WAL), then fsync it in the sync thread.

        While a group's fsync is in flight the next group keeps growing in the open transaction
        and is committed the moment that fsync ends. Readers may see a committed group before its
        fsync ends: it already survives a kill -9, and it is not yet acknowledged to its writers.
        """
        self._scheduled = False
        if self._syncing:  # _synced() commits this group when the fsync in flight ends
            return
        with self._lock:
            waiters, self._waiters = self._waiters, []
            try:
                self._commit()
            except sqlite3.Error as e:
                _settle(waiters, e)
                return
        due = self._checkpoint_due()
        if not due and (not self.fsync or not waiters):
            _settle(waiters, None)
            return
        self._syncing = True
        job = self._sync
        if due:
            # No write may begin until the checkpoint is done: SQLite restarts the WAL only when
            # it has been copied back whole with no writer in between (else it grows forever).
            self._gate = asyncio.Event()
            job = self._sync_and_checkpoint
        if self._sync_pool is None:
            self._sync_pool = ThreadPoolExecutor(1, thread_name_prefix="strata-fsync")
        task = asyncio.get_running_loop().run_in_executor(self._sync_pool, job)
        task.add_done_callback(lambda f: self._synced(waiters, f))

    def _synced(self, waiters: list[asyncio.Future], f: asyncio.Future) -> None:
        self._syncing = False
        if self._gate is not None:
            self._gate.set()
            self._gate = None
        _settle(waiters, f.exception())
        if self._waiters and not self._scheduled:
            self._flush()

    # -- disk -------------------------------------------------------------------------------------

    def _sync(self) -> None:
        """Make every committed group durable: one fdatasync of the WAL covers all commits before it."""
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

    def _sync_and_checkpoint(self) -> None:
        self._sync()
        if self._ckpt is None:
            self._ckpt = self._connect("FULL" if self.fsync else "NORMAL")
            self._ckpt.execute("PRAGMA busy_timeout=100")  # a long reader: try again later
        self._checkpoint(self._ckpt)

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        """Copy the WAL back into the database and restart it from empty (TRUNCATE).

        Runs while no write is open. A reader still on an older snapshot makes it give up
        (busy); the next checkpoint tries again.
        """
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error as e:
            log.error("WAL checkpoint of %s failed: %s", self.path, e)

    def close(self) -> None:
        self.commit_now()
        if self._sync_pool is not None:
            self._sync_pool.shutdown(wait=True)
        if self._ckpt is not None:
            self._ckpt.close()
        self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        self.conn.close()
        if self._wal_fd is not None:
            os.close(self._wal_fd)
            self._wal_fd = None
