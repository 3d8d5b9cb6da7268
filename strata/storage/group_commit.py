"""Group commit: the one writer of a SQLite database, shared by every write of every caller.

Every write runs as a SAVEPOINT (atomic on its own: an exception rolls back only that write)
inside one open transaction on the writer connection; the group is COMMITted (an append to the
WAL, which a kill -9 of the process no longer loses) and one fsync of the WAL makes the whole
group survive power loss. A caller of `write()` is answered only when the fsync covering its
write is done. Writes arriving during an fsync form the next group, so each fsync covers all
of them. Two ways to apply the writes, chosen per store:

    apply_in="loop" (DynamoDB)   `fn` runs at once on the caller's event loop; after that turn
        the group is COMMITted on the loop (synchronous=NORMAL) and fdatasynced in a thread while
        the next group grows; readers may see a group during its fsync (it survives kill -9 and
        is not yet acknowledged), as they did with DynamoDB's own store.
        No thread hand-off per write; fits write functions that touch loop-owned state
        (DynamoDB's table metadata and transaction locks). A write that failed is answered once
        the writes it may have read are committed (readers see no less).
    apply_in="thread" (S3)       `fn` runs in the writer thread, which applies the queued writes,
        COMMITs with synchronous=FULL (readers never see a write before it is durable, as with
        S3's committer), then answers every waiter with one wake-up per event loop. SQLite
        releases the GIL while it executes, so the loop parses the next requests meanwhile.

Measured side by side (issue 22's note): S3's 4 KiB PUT costs 196-210 us of CPU per request
with its writes on the loop against 186-195 in the thread, and the serving thread's share rises
from ~118 to ~185 us; DynamoDB's PutItem on the loop costs no more than before (its write
functions use loop-owned state, so they stay there).

A group SQLite rolls back itself (SQLITE_FULL or an I/O error while the group spills to disk:
SQLite then drops the whole transaction, every SAVEPOINT in it) is lost: every write of it fails
with that error, none is acknowledged; the next write starts a new group.

Synchronous callers (`transaction()`: start-up, resource records, admin paths) use the same
connection and commit durably before returning, taking any open group with them.
Checkpoints: in the writer thread, SQLite's own (inside a COMMIT every ~1000 pages, stalling no
one but that thread). On the loop, when the WAL holds CHECKPOINT_FRAMES pages the fsync thread
also checkpoints it (RESTART) while writes wait, a few milliseconds; reads go on. SQLite restarts
a WAL only when it was copied back whole with no write begun in between, so a writer that always
has a group open would otherwise grow it without end.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import sqlite3
import struct
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger("strata")
CHECKPOINT_FRAMES = 1000  # pages in the WAL that make a checkpoint due (SQLite's own default)
WAL_SIZE_LIMIT = 64 << 20  # a restarted WAL file larger than this is cut back to it


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


def serve_queue(q: queue.SimpleQueue | queue.Queue, apply: Callable[[list], None], group: int = 256) -> None:
    """A writer thread's loop: what is queued (up to `group` writes) is applied as one group; a
    None queued by close() ends it, after the writes queued before it."""
    while True:
        items = [q.get()]
        while len(items) < group:
            try:
                items.append(q.get_nowait())
            except queue.Empty:
                break
        if items[-1] is None:
            if len(items) > 1:
                apply(items[:-1])
            return
        apply(items)


def _answer(batch: list[tuple[asyncio.Future, bool, Any]]) -> None:
    for fut, ok, value in batch:
        if not fut.done():
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)


class GroupCommit:
    """The writer connection of one database file, its group transaction and its fsync thread."""

    def __init__(
        self,
        path: Path,
        connect: Callable[[str], sqlite3.Connection],
        *,
        fsync: bool,
        apply_in: str = "loop",
    ) -> None:
        if apply_in not in ("loop", "thread"):
            raise ValueError(f"apply_in must be 'loop' or 'thread', not {apply_in!r}")
        self.path = Path(path)
        self.fsync = fsync
        self.apply_in = apply_in
        # In the writer thread the COMMIT itself waits for the disk (synchronous=FULL), so no reader
        # ever sees a write before it is durable, as with S3's committer; on the loop the fsync
        # runs in a thread after a COMMIT that only appends to the WAL (see _flush).
        self._commit_syncs = apply_in == "thread" and fsync
        self.conn = connect("FULL" if self._commit_syncs else "NORMAL")
        if apply_in == "loop":
            # Checkpoints happen between groups, in the fsync thread (see _flush); in the writer
            # thread SQLite's own, inside a COMMIT every ~1000 pages, stalls no one but it.
            self.conn.execute("PRAGMA wal_autocheckpoint=0")
        self.conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        self._connect = connect
        self._lock = threading.RLock()
        self.owner = 0  # the thread inside a write (its statements go to this connection)
        self._depth = 0
        self._waiters: list[asyncio.Future] = []
        self._scheduled = False
        self._syncing = False  # an fsync of a committed group is running in the sync thread
        self._sync_pool: ThreadPoolExecutor | None = None
        self._wal_fd: int | None = None
        self._shm_fd: int | None = None
        self._ckpt: sqlite3.Connection | None = None  # the sync thread's own connection
        self._gate: asyncio.Event | None = None  # set while a checkpoint holds writes back
        self._queue: queue.SimpleQueue = queue.SimpleQueue()  # apply_in="thread": (fn, future)
        self._thread: threading.Thread | None = None
        self._stale = False  # a ROLLBACK failed: the open transaction holds writes that failed

    # -- writes -----------------------------------------------------------------------------------

    @contextmanager
    def savepoint(self) -> Iterator[sqlite3.Connection]:
        """One atomic write inside the open group transaction (nested ones nest)."""
        with self._lock:
            c = self._begin()
            c.execute("SAVEPOINT w")
            owner, self.owner = self.owner, threading.get_ident()
            self._depth += 1
            try:
                yield c
            except BaseException as e:
                self._undo(e)
                raise
            else:
                self._release(c)
            finally:
                self._depth -= 1
                self.owner = owner

    async def write(self, fn: Callable[[], T]) -> T:
        """Apply `fn` atomically; its result once the group holding it is durable."""
        if self.apply_in == "thread":
            return await self.write_in_thread(fn)
        while self._gate is not None:  # a checkpoint is restarting the WAL: reads go on meanwhile
            await self._gate.wait()
        # savepoint(), spelt out: this is every DynamoDB write's path.
        with self._lock:
            c = self.conn
            if not c.in_transaction or self._stale:
                c = self._begin()
            c.execute("SAVEPOINT w")
            owner, self.owner = self.owner, threading.get_ident()
            self._depth += 1
            error: BaseException | None = None
            try:
                value = fn()
            except BaseException as e:
                error = e
                self._undo(e)
            else:
                try:
                    self._release(c)
                except sqlite3.Error as e:  # the group is lost (see _release)
                    error = e
            finally:
                self._depth -= 1
                self.owner = owner
        if error is not None:
            # It may have read writes of the open group, which a kill -9 would lose: answer once
            # they are committed, so a failure exposes no more than a read can.
            if self._waiters:
                with suppress(Exception):  # the write's own error is the answer
                    await self._durable()
            raise error
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

    def _begin(self) -> sqlite3.Connection:
        """The writer connection with a group open (caller holds the lock). A transaction a failed
        ROLLBACK left open holds writes that were answered as failed: it is rolled back first."""
        c = self.conn
        if self._stale and c.in_transaction:
            c.execute("ROLLBACK")  # failing again: this write fails too (the disk is refusing)
        self._stale = False
        if not c.in_transaction:
            c.execute("BEGIN IMMEDIATE")
        return c

    def _release(self, c: sqlite3.Connection) -> None:
        """End a write that succeeded. SQLite may have rolled the whole group back under it (a write
        function that swallowed SQLITE_FULL): then the group is lost, and so is this write."""
        try:
            if not c.in_transaction:
                raise sqlite3.OperationalError("the group transaction was rolled back")
            c.execute("RELEASE w")
        except sqlite3.Error as e:
            self._lose_group(e)
            raise

    def _undo(self, error: BaseException) -> None:
        """Roll back a failed write's SAVEPOINT only. When SQLite already rolled back the whole group
        (SQLITE_FULL or an I/O error while it spilled to disk), or the rollback itself fails, the
        group is lost: the earlier writes of it must not be acknowledged either."""
        c = self.conn
        if c.in_transaction:
            try:
                c.execute("ROLLBACK TO w")
                c.execute("RELEASE w")
                return
            except sqlite3.Error:
                pass
        self._lose_group(error)

    def _lose_group(self, error: BaseException) -> None:
        """The open group is gone (or must go): roll back what is left of it, and fail every write
        waiting for it (caller holds the lock). Writes applied in the writer thread are failed by
        `_apply_batch`, which sees the error."""
        self._rollback()
        waiters, self._waiters = self._waiters, []
        _settle(waiters, error)

    def _rollback(self) -> None:
        """ROLLBACK whatever is open; a failure is logged, never raised (it must not end the writer
        thread nor hide the error that caused it): the next group rolls back first (`_begin`)."""
        c = self.conn
        if not c.in_transaction:
            return
        try:
            c.execute("ROLLBACK")
        except sqlite3.Error as e:
            self._stale = c.in_transaction
            log.warning("ROLLBACK of a failed group of %s failed: %s", self.path, e)

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
            if self.apply_in == "loop" and self._checkpoint_due():  # no write begins: we hold the lock
                self._checkpoint_writer()
        _settle(waiters, None)

    def _commit(self) -> None:
        c = self.conn
        if self._stale:  # only writes answered as failed are open: never commit them
            if c.in_transaction:
                c.execute("ROLLBACK")
            self._stale = False
            return
        if not c.in_transaction:
            return
        try:
            c.execute("COMMIT")
        except sqlite3.Error:
            self._rollback()
            raise

    def _checkpoint_due(self) -> bool:
        """Whether the WAL holds CHECKPOINT_FRAMES pages: mxFrame of the wal-index header
        (https://sqlite.org/walformat.html: a native-order u32 at offset 16 of the -shm file)."""
        if self._shm_fd is None:
            try:
                self._shm_fd = os.open(f"{self.path}-shm", os.O_RDONLY)
            except FileNotFoundError:
                return False
        head = os.pread(self._shm_fd, 20, 0)
        return len(head) == 20 and struct.unpack_from("=I", head, 16)[0] >= CHECKPOINT_FRAMES

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

    # -- apply_in="thread": the writes run in the writer thread ---------------------------------------

    async def write_in_thread(self, fn: Callable[[], T]) -> T:
        """`write(fn)` with apply_in="thread"; MetadataStore calls it directly (a frame less)."""
        fut = asyncio.get_running_loop().create_future()
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="strata-writer", daemon=True)
                    self._thread.start()
        self._queue.put((fn, fut))
        # Committed (or not) by the writer thread whatever happens to this request: cancelling
        # it cancels only this future, which the settling then leaves alone.
        return await fut

    def _run(self) -> None:
        serve_queue(self._queue, self._apply_batch)

    def _apply_batch(self, items: list[tuple[Callable[[], Any], asyncio.Future]]) -> None:
        """Apply queued writes in one transaction (a SAVEPOINT each), commit, fsync, answer them.

        Writes queued during the fsync form the next group, so each fsync covers all of them. A
        group SQLite rolled back itself (see `_undo`) or that did not commit fails every write of it.
        """
        results: list[tuple[asyncio.Future, bool, Any]] = []
        waiters: list[asyncio.Future] = []
        lost: BaseException | None = None
        try:
            with self._lock:
                c = self._begin()
                self.owner = threading.get_ident()
                self._depth = 1
                try:
                    for fn, fut in items:  # savepoint(), spelt out: every S3 write's path
                        c.execute("SAVEPOINT w")
                        try:
                            value = fn()
                        except BaseException as e:  # noqa: BLE001 - handed to the waiting request
                            if not c.in_transaction:  # SQLite dropped the group: all of it failed
                                lost = e
                                break
                            c.execute("ROLLBACK TO w")
                            c.execute("RELEASE w")
                            results.append((fut, False, e))
                        else:
                            if not c.in_transaction:  # dropped under a write that swallowed the error
                                lost = sqlite3.OperationalError("the group transaction was rolled back")
                                break
                            c.execute("RELEASE w")
                            results.append((fut, True, value))
                finally:
                    self._depth = 0
                    self.owner = 0
                waiters, self._waiters = self._waiters, []
                if lost is None:
                    self._commit()
            if lost is None:
                self._sync()
        except (sqlite3.Error, OSError) as e:  # the group did not commit: nothing was written
            lost = e
        if lost is not None:
            with self._lock:
                self._rollback()  # never raises: this thread must go on with the next group
            results = [(fut, False, lost) for _, fut in items]
        _settle(waiters, lost)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, bool, Any]]] = {}
        for r in results:
            by_loop.setdefault(r[0].get_loop(), []).append(r)
        for loop, batch in by_loop.items():  # one wake-up per event loop and group
            try:
                loop.call_soon_threadsafe(_answer, batch)
            except RuntimeError:  # that loop is closed (shutdown)
                pass

    # -- disk -------------------------------------------------------------------------------------

    def _sync(self) -> None:
        """Make every committed group durable: one fdatasync of the WAL covers all commits before it."""
        if not self.fsync or self._commit_syncs:
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

    def _checkpoint_writer(self) -> None:
        """Checkpoint through the writer connection (caller holds the lock, no group is open)."""
        self.conn.execute("PRAGMA busy_timeout=100")
        self._checkpoint(self.conn)
        self.conn.execute("PRAGMA busy_timeout=30000")

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        """Copy the WAL back into the database and have the next write restart it (RESTART).

        Runs while no write is open. A reader still on an older snapshot makes it give up
        (busy); the next checkpoint tries again.
        """
        try:
            conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
        except sqlite3.Error as e:
            log.error("WAL checkpoint of %s failed: %s", self.path, e)

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        try:
            self.commit_now()  # its waiters get the error; a stop on a full disk still closes
        except (sqlite3.Error, OSError) as e:
            log.warning("last commit of %s at close failed: %s", self.path, e)
        if self._sync_pool is not None:
            self._sync_pool.shutdown(wait=True)
        if self._ckpt is not None:
            self._ckpt.close()
        try:  # optional: the next open replays the WAL
            self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as e:
            log.warning("checkpoint of %s at close failed: %s", self.path, e)
        self.conn.close()
        for fd in (self._wal_fd, self._shm_fd):
            if fd is not None:
                os.close(fd)
        self._wal_fd = self._shm_fd = None
