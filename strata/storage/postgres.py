"""The PostgreSQL backend of the metadata store (interface.py): one store, several gateways.

Why PostgreSQL: several gateways on several machines must share one metadata store, and
replication and failover are PostgreSQL's (Patroni's) work, not Strata's. psycopg 3, with a
connection pool (psycopg_pool) for reads.

Layout: a store is one PostgreSQL schema (namespace) named after it, so services' table names
never collide; every connection of the store has it as its search_path. `BLOB` is a domain over
bytea in that namespace, so services' schemas say BLOB on both backends.

Writes, as in SQLite's group commit with apply_in="thread" (group_commit.py): a writer thread of
this process takes the queued writes, runs them in one transaction (a SAVEPOINT each: an exception
undoes only its own write), COMMITs, and answers each caller once the commit is durable
(synchronous_commit=on: PostgreSQL flushes its WAL before COMMIT returns). Concurrent writes of
one process share one commit and one WAL flush.

Isolation between gateways: a write transaction first takes a transaction-level advisory lock
named by the store (`pg_advisory_xact_lock`), so the groups of every process writing the store
run one after another, exactly as the interface promises ("`fn` runs serialized with every other
write of the store"). Statements run in READ COMMITTED after the lock is held, so each sees every
group committed before: read-check-write inside `fn` loses no update, and of racing conditional
inserts exactly one wins, whatever the process. Each `fn` runs once (never retried): SERIALIZABLE
would re-run a write function on a serialization failure, which services' write functions (they
touch in-memory state too) do not allow. The lock is released by COMMIT after the WAL flush, so
the next group sees this one. The price, measured (bench/metadata_backends.py --isolation, two
processes of 16 writers, loaded 2-core machine): a store's writes are one at a time across
gateways, so they scale with round trips, not connections — read-modify-writes of distinct keys
ran 1.4-2.5x faster as SERIALIZABLE transactions with retries; of one hot key the lock was 1-5x
faster (SERIALIZABLE retried ~4 times per write).

Reads (`reader()`, and `conn`/`execute`/`query` outside a write) borrow a pooled autocommit
connection per statement: committed data only. `snapshot()` holds one in REPEATABLE READ.
`read(fn)` runs a request's reads in the store's read threads (one per pooled connection), so the
event loop goes on serving while they wait for the server: a round trip each, and while a failover
or a stopped server answers nothing, as long as that lasts (bench/pg_loop.py measures both). A
read waits at most READ_WAIT for a pooled connection; then it fails (psycopg_pool.PoolTimeout),
which the gateway answers with a retryable 503 ServiceUnavailable (strata.storage.errors).

Round trips: a group is BEGIN+lock+SAVEPOINT (one, sent as one simple query), one per statement
of its writes (the RELEASE/SAVEPOINT between writes and the COMMIT are pipelined with them), and
the COMMIT's wait for the WAL flush. A lone write of one statement: 3; in a busy group ~1 per
statement. A read: 1 (it blocks its thread for that long: a read thread's, through `read`).

Known differences from SQLite a service must respect (see issue 22's note): a failed statement
aborts the transaction up to the write's SAVEPOINT (catching the error inside `fn` and going on
does not work: use ON CONFLICT); errors are psycopg's, not sqlite3's; `lastrowid`, PRAGMAs,
`INSERT OR REPLACE` and SQLite functions do not exist. Schema scripts are translated (pg_sql.ddl:
INTEGER is BIGINT, REAL is DOUBLE PRECISION, INTEGER PRIMARY KEY numbered as SQLite's rowid).
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import logging
import queue
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg_pool import ConnectionPool

from strata.storage.group_commit import _answer, serve_queue
from strata.storage.pg_sql import bind, ddl

T = TypeVar("T")
log = logging.getLogger("strata")
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# Listings are in code point order: a database whose collation orders text otherwise is refused.
# ms a store's connection may leave bytes unacknowledged (or keepalives unanswered) before it is
# given up: well above a loaded server's stall, well below TCP's own ~15 min.
CONN_GIVES_UP = 20000
# Seconds a read waits for a pooled connection (all busy: a slow or stopped server) before it fails
# (503, retried by SDKs): a request's wait, below SDKs' 60 s read timeout, not the pool's 30 s
# default on top of the statement's own wait.
READ_WAIT = 10.0
# Seconds the interpreter lets a thread hold the GIL while another waits for it (Python's default:
# 0.005), in a gateway on PostgreSQL (`strata serve` sets it). A read in a read thread needs the
# GIL twice (to send its statement, to take the reply) while the event loop, busy with other
# requests, holds it: each time it may wait the whole interval (more when several read threads
# queue), for a read of ~0.1 ms. Measured alone (bench/pg_loop.py, two runs on a loaded machine)
# the p99 of GETs and GetItems was 0.7-0.9x the default's, ops/s 0.86-1.7x: a gain, but near the
# noise; fewer hand-offs per request (S3's _prefetch) did more. The embedded SQLite path reads
# inline and keeps the default.
GIL_SWITCH = 0.0005
ORDER_CHECK = "SELECT 'B' < 'a' AND 'Z' < '_' AND 'z' < 'é' AND 'é' < '\U0001f600'"

_DOCS_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    kind TEXT NOT NULL,
    id BYTEA NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
"""


def _lock_key(name: str) -> int:
    """The advisory lock of a store: a signed 64-bit number of its name."""
    return int.from_bytes(
        hashlib.blake2b(f"strata:{name}".encode(), digest_size=8).digest(), "big", signed=True
    )


class PgConnection:
    """One psycopg connection speaking the interface's dialect (`?` placeholders).

    In a group of writes the writer connection is in pipeline mode (`pipe`): the group's own
    statements (SAVEPOINT, RELEASE) are queued and go out with the next statement of a write,
    which waits for its result at once (services read rowcount and rows right after execute).
    """

    __slots__ = ("pipe", "raw")

    def __init__(self, raw: psycopg.Connection) -> None:
        self.raw = raw
        self.pipe: psycopg.Pipeline | None = None

    @property
    def in_transaction(self) -> bool:
        """As sqlite3.Connection's: whether a transaction is open (S3 caches only outside one)."""
        return self.raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE

    def execute(self, sql: str, args: Sequence[Any] | dict = (), /) -> psycopg.Cursor:
        q, p = bind(sql, args)
        cur = self.raw.execute(q, p)  # type: ignore[arg-type]  # a translated, cached str
        if self.pipe is not None:
            self.pipe.sync()
        return cur

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> psycopg.Cursor:
        cur = self.raw.cursor()
        if rows:
            cur.executemany(bind(sql, rows[0])[0], rows)  # type: ignore[arg-type]
            if self.pipe is not None:
                self.pipe.sync()
        return cur


class PgReader:
    """Committed data only: each statement on a pooled autocommit connection."""

    __slots__ = ("pool",)

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    in_transaction = False  # each statement commits on its own (sqlite3.Connection's attribute)

    def execute(self, sql: str, args: Sequence[Any] | dict = (), /) -> psycopg.Cursor:
        q, p = bind(sql, args)
        c = self.pool.getconn()
        try:
            return c.execute(q, p)  # type: ignore[arg-type]  # the rows are fetched: usable after
        except psycopg.OperationalError:
            if not c.broken:
                raise
        finally:
            self.pool.putconn(c)  # a broken one is thrown away
        # A pooled connection the server closed (a restart, a failover): the others are likely
        # gone too, so every idle one is checked (and replaced) before the read is tried again.
        self.pool.check()
        with self.pool.connection() as c:
            return c.execute(q, p)  # type: ignore[arg-type]

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> psycopg.Cursor:
        with self.pool.connection() as c:
            return PgConnection(c).executemany(sql, rows)


class PostgresStore:
    """One store (a PostgreSQL schema) of a PostgreSQL database; see the module docstring."""

    def __init__(
        self,
        dsn: str,
        name: str,
        *,
        schema: str = "",
        pool_size: int = 4,
        fsync: bool = True,
        apply_in: str = "thread",
    ) -> None:
        # `fsync` is accepted for MetadataStore's signature: PostgreSQL's commits are always
        # durable here (synchronous_commit=on), since a kill -9 of the server must lose none.
        if apply_in != "thread":
            # Write functions on the event loop (DynamoDB's: they use loop-owned state) would block
            # it for every statement's round trip and for other gateways' groups: not built.
            raise ValueError("the PostgreSQL store runs write functions in its writer thread only")
        if not _NAME.fullmatch(name):
            raise ValueError(f"a store name is lower-case letters, digits and _, not {name!r}")
        self.name = name
        self._dsn = dsn
        self._kwargs: dict[str, Any] = {
            "autocommit": True,
            "options": f"-c search_path={name} -c synchronous_commit=on",
            "application_name": f"strata-{name}",
            # Reads run on the event loop: a server gone without a word (a failover's lost machine)
            # must fail them within seconds, not after TCP's retransmissions (~15 min) or libpq's
            # connect wait. Unacknowledged bytes for CONN_GIVES_UP ms end the connection.
            "connect_timeout": 10,
            "keepalives": 1,
            "keepalives_idle": 5,
            "keepalives_interval": 2,
            "keepalives_count": 3,
            "tcp_user_timeout": CONN_GIVES_UP,
        }
        key = _lock_key(name)
        self._lock_sql = f"SELECT pg_advisory_xact_lock({key})"
        self._begin_sql = f"BEGIN ISOLATION LEVEL READ COMMITTED; {self._lock_sql}; SAVEPOINT w"
        self._lock = threading.RLock()
        self.owner = 0  # the thread inside a write (its statements go to the writer connection)
        self._depth = 0
        self._open = False  # a group transaction is open on the writer connection
        self._dirty = False  # a write succeeded inside the current SAVEPOINT w
        # Write transactions begun so far: a service that checks what other gateways changed
        # (DynamoDB's table metadata) does it once per group, since the store's lock is held
        # from a group's BEGIN to its COMMIT.
        self.groups = 0
        self._wraw: psycopg.Connection | None = None
        self._writer: PgConnection | None = None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._setup()
        self._pool = ConnectionPool(
            dsn,
            min_size=1,
            max_size=pool_size,
            kwargs=self._kwargs,
            num_workers=1,
            name=f"strata-{name}",
            timeout=READ_WAIT,
            open=True,
        )
        self._reader = PgReader(self._pool)
        # As many read threads as pooled connections: a read in a thread seldom waits for one.
        self._readers = ThreadPoolExecutor(pool_size, thread_name_prefix=f"strata-pg-read-{name}")
        self.executescript(_DOCS_SCHEMA + schema)

    def _setup(self) -> None:
        """The store's namespace and BLOB domain (under the store's lock: gateways start together)."""
        c = self._writer_conn().raw
        if not c.execute(ORDER_CHECK).fetchone()[0]:  # type: ignore[index]
            raise ValueError(
                "the database does not order text by code point: create it with LOCALE 'C' "
                "(CREATE DATABASE ... TEMPLATE template0 LOCALE 'C')"
            )
        with c.transaction():
            c.execute(self._lock_sql)
            c.execute(f"CREATE SCHEMA IF NOT EXISTS {self.name}")
            if not c.execute(
                "SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
                "WHERE n.nspname = %s AND t.typname = 'blob'",
                (self.name,),
            ).fetchone():
                c.execute(f"CREATE DOMAIN {self.name}.blob AS bytea")

    # -- connections -----------------------------------------------------------------------------

    def _writer_conn(self) -> PgConnection:
        """The writer connection, made again after it broke (a failover, a restarted server)."""
        raw = self._wraw
        if raw is None or raw.closed or raw.broken:
            if raw is not None:
                raw.close()
            raw = self._wraw = psycopg.connect(self._dsn, **self._kwargs)
            self._writer = PgConnection(raw)
        assert self._writer is not None
        return self._writer

    def reader(self) -> PgReader:
        """Committed data only, even inside a write."""
        return self._reader

    @property
    def conn(self) -> PgConnection | PgReader:
        """The writer connection inside a write on this thread, else the reader."""
        if self.owner == threading.get_ident() and self._writer is not None:
            return self._writer
        return self._reader

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        self._readers.shutdown(wait=False, cancel_futures=True)
        self._pool.close()
        if self._wraw is not None:
            self._wraw.close()

    # -- writes ----------------------------------------------------------------------------------

    async def write(self, fn: Callable[[], T]) -> T:
        """Run `fn` as one atomic write in the writer thread; its result once durable."""
        fut = asyncio.get_running_loop().create_future()
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name=f"strata-pg-{self.name}", daemon=True
                    )
                    self._thread.start()
        self._queue.put((fn, fut))
        # Committed (or not) by the writer thread whatever happens to this caller.
        return await fut

    async def read(self, fn: Callable[[], T]) -> T:
        """Run `fn` (reads through this store) in a read thread, in the caller's context; its
        result. The event loop serves other requests, and /_strata/health, while it waits."""
        return await asyncio.get_running_loop().run_in_executor(
            self._readers, contextvars.copy_context().run, fn
        )

    @contextmanager
    def transaction(self) -> Iterator[PgConnection]:
        """A write transaction for synchronous callers; durable on exit. Nested ones (and one
        inside `write`) are a SAVEPOINT of the outer one."""
        with self._lock:
            if self._depth:
                yield from self._nested()
                return
            c = self._start()
            self.owner, self._depth = threading.get_ident(), 1
            try:
                yield c
            except BaseException:
                self._abort()
                raise
            finally:
                self._depth, self.owner = 0, 0
            self._commit()

    def _nested(self) -> Iterator[PgConnection]:
        c = self._writer_conn()
        owner, self.owner = self.owner, threading.get_ident()
        sp = f"n{self._depth}"
        self._depth += 1
        c.raw.execute(f"SAVEPOINT {sp}")
        try:
            yield c
        except BaseException:
            c.raw.execute(f"ROLLBACK TO {sp}")
            raise
        else:
            c.raw.execute(f"RELEASE {sp}")
        finally:
            self._depth -= 1
            self.owner = owner

    def _start(self) -> PgConnection:
        """A write's SAVEPOINT w, opening the group (BEGIN, the store's lock) if none is open."""
        if not self._open:
            c = self._writer_conn()
            try:
                c.raw.execute(self._begin_sql)
            except psycopg.OperationalError:
                # The server closed the idle connection (a restart, a failover): nothing of the
                # group ran yet, so a new connection may start it.
                self._discard()
                c = self._writer_conn()
                try:
                    c.raw.execute(self._begin_sql)
                except psycopg.Error:
                    self._discard()
                    raise
            except psycopg.Error:
                self._discard()
                raise
            self._open, self._dirty = True, False
            self.groups += 1
            return c
        assert self._writer is not None
        if self._dirty:  # queued in pipeline mode: no round trip of their own
            self._writer.raw.execute("RELEASE w")
            self._writer.raw.execute("SAVEPOINT w")
            self._dirty = False
        return self._writer

    def _undo(self) -> bool:
        """Roll back the failed write's statements only; False if the group is lost with them."""
        assert self._writer is not None
        try:
            self._writer.raw.execute("ROLLBACK TO w")  # w stays: the next write starts from it
            if self._writer.pipe is not None:
                self._writer.pipe.sync()
            return True
        except psycopg.Error:
            self._discard()
            return False

    def _commit(self) -> None:
        assert self._writer is not None
        self._open = False
        try:
            self._writer.raw.execute("COMMIT")
            if self._writer.pipe is not None:
                self._writer.pipe.sync()
        except psycopg.Error:
            self._discard()  # the outcome is unknown: nothing of the group is acknowledged
            raise

    def _abort(self) -> None:
        self._open = False
        try:
            if self._writer is not None:
                self._writer.raw.execute("ROLLBACK")
        except psycopg.Error:
            self._discard()

    def _discard(self) -> None:
        """Drop a writer connection in an unknown state (its transaction dies with it)."""
        self._open = False
        if self._wraw is not None:
            self._wraw.close()

    def _run(self) -> None:
        serve_queue(self._queue, self._apply_batch)

    def _apply_batch(self, items: list[tuple[Callable[[], Any], asyncio.Future]]) -> None:
        """Apply queued writes in one transaction (a SAVEPOINT each), commit, answer them."""
        results: list[tuple[asyncio.Future, bool, Any]] = []
        lost: BaseException | None = None
        with self._lock:
            try:
                c = self._start()  # BEGIN, the lock, SAVEPOINT w: one round trip
                with c.raw.pipeline() as c.pipe:
                    try:
                        for fn, fut in items:
                            self._start()
                            self.owner, self._depth = threading.get_ident(), 1
                            try:
                                value = fn()
                            except BaseException as e:  # noqa: BLE001 - handed to the waiting caller
                                if not self._undo():
                                    lost = e
                                    break
                                results.append((fut, False, e))
                            else:
                                self._dirty = True
                                results.append((fut, True, value))
                            finally:
                                self._depth, self.owner = 0, 0
                        if lost is None and self._open:
                            self._commit()
                    finally:
                        c.pipe = None
            except psycopg.Error as e:  # the group did not commit: nothing of it is acknowledged
                lost = e
                self._discard()
        if lost is not None:
            log.warning("a write group of store %s failed: %s", self.name, lost)
            results = [(fut, False, lost) for _, fut in items]
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, bool, Any]]] = {}
        for r in results:
            by_loop.setdefault(r[0].get_loop(), []).append(r)
        for loop, batch in by_loop.items():  # one wake-up per event loop and group
            try:
                loop.call_soon_threadsafe(_answer, batch)
            except RuntimeError:  # that loop is closed (shutdown)
                pass

    # -- statements ------------------------------------------------------------------------------

    def execute(self, sql: str, args: Sequence[Any] | dict = ()) -> psycopg.Cursor:
        return self.conn.execute(sql, args)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> psycopg.Cursor:
        return self.conn.executemany(sql, rows)

    def executescript(self, script: str) -> None:
        """Schema set-up and migrations: one transaction under the store's lock; durable on return."""
        if script.strip():
            with self.transaction() as c:
                c.raw.execute(ddl(script))  # type: ignore[arg-type]  # no parameters: several statements

    def query(self, sql: str, args: Sequence[Any] | dict = ()) -> list[Any]:
        return self.conn.execute(sql, args).fetchall()

    def query_one(self, sql: str, args: Sequence[Any] | dict = ()) -> Any:
        return self.conn.execute(sql, args).fetchone()

    @contextmanager
    def snapshot(self) -> Iterator[PgConnection]:
        """Several reads of one committed state (REPEATABLE READ, read only)."""
        with self._pool.connection() as raw:
            raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                yield PgConnection(raw)
            finally:
                raw.execute("COMMIT")

    # -- JSON documents: ids as UTF-8 bytes (bytewise = code point order; text cannot hold NUL) ---

    def put_doc(self, kind: str, id: str, body: dict) -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT INTO documents(kind, id, body) VALUES (?,?,?) "
                "ON CONFLICT(kind, id) DO UPDATE SET body = excluded.body",
                (kind, id.encode(), json.dumps(body, default=str)),
            )

    def get_doc(self, kind: str, id: str) -> dict | None:
        row = self.query_one("SELECT body FROM documents WHERE kind = ? AND id = ?", (kind, id.encode()))
        return json.loads(row[0]) if row else None

    def list_docs(
        self, kind: str, prefix: str = "", *, after: str = "", limit: int | None = None
    ) -> list[dict]:
        sql = "SELECT body FROM documents WHERE kind = ?"
        args: list[Any] = [kind]
        if after:
            sql += " AND id > ?"
            args.append(after.encode())
        if prefix:
            p = prefix.encode()
            sql += " AND id >= ? AND id < ?"
            args += [p, p + b"\xff"]  # no UTF-8 byte is 0xff
        sql += " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [json.loads(r[0]) for r in self.query(sql, args)]

    def delete_doc(self, kind: str, id: str) -> bool:
        with self.transaction() as c:
            return (
                c.execute("DELETE FROM documents WHERE kind = ? AND id = ?", (kind, id.encode())).rowcount > 0
            )
