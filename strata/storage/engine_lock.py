"""Which gateway is the engine host: the holder of the session advisory lock `strata:engines`.

Several gateways on one PostgreSQL run the engine services (RDS, ElastiCache, EC2/EBS, EFS ...)
on one of them at a time, the engine host (strata.gateway.engine_host). Being it is holding this
lock on a connection of its own, as the scheduler's owner holds `strata:scheduler`
(strata.storage.coordination); the host's URL is a document beside it so the others know where
to forward.

The lock's connection is what fences a host: PostgreSQL releases the lock when the session ends,
and must not do so while the old host still runs engines. So both ends watch the connection, the
host more eagerly than the server:
- the host pings it every `PING` seconds, each ping bounded by the client's `tcp_user_timeout`
  (`HOST_GIVES_UP` ms) and keepalives: a host that cannot reach PostgreSQL knows within ~3 s;
- the server gives a silent host up only after its keepalives (5 s idle, then 3 probes 2 s apart)
  or `tcp_user_timeout` (`SERVER_GIVES_UP` ms) ran out: ~11 s. A killed host's kernel closes the
  socket at once, so a kill -9 releases the lock immediately; a lost machine after ~11 s.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from strata.storage.coordination import SESSION
from strata.storage.postgres import PostgresStore, _lock_key

PING = 0.5  # seconds between the host's checks of its lock (and non-hosts' tries for it)
HOST_GIVES_UP = 3000  # ms without an answer before the host's ping fails (client tcp_user_timeout)
SERVER_GIVES_UP = 11000  # ms before PostgreSQL ends a silent host's session (server tcp_user_timeout)
KIND, DOC = "engines", "host"


class EngineHostLock:
    """The `strata:engines` lock and the host's advertised URL. Blocking; one thread uses it."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        # The host's URL. Not a store named "engines": a store's writes take the advisory lock of
        # its name, and this one's would wait for the host's lock forever.
        self.store = PostgresStore(dsn, "engine_host", pool_size=1)
        self.key = _lock_key("engines")
        self._conn: psycopg.Connection | None = None
        self.held = False

    def _connect(self) -> psycopg.Connection:
        return psycopg.connect(
            self.dsn,
            **{
                **SESSION,  # keepalives on both ends, as the scheduler's owner has
                "application_name": "strata-engine-host",
                "tcp_user_timeout": HOST_GIVES_UP,
                "options": f"{SESSION['options']} -c tcp_user_timeout={SERVER_GIVES_UP}",
            },
        )

    def try_take(self) -> bool:
        """Take the lock if it is free (True: this gateway is now the host). Never call it while
        `held`; a broken connection is made again."""
        c = self._conn
        try:
            if c is None or c.broken or c.closed:
                c = self._conn = self._connect()
            row = c.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
        except psycopg.Error:
            self.release()
            return False
        self.held = bool(row and row[0])
        return self.held

    def still_held(self) -> bool:
        """Whether the lock is still this gateway's: its connection answers a ping. False once is
        final (the session may be gone, and the lock with it): the host must fence itself."""
        c = self._conn
        if not self.held or c is None or c.broken or c.closed:
            self.held = False
            return False
        try:
            c.execute("SELECT 1")
        except psycopg.Error:
            self.release()
        return self.held

    def advertise(self, url: str, token: str) -> None:
        """Tell the other gateways where the host serves (once its engines are up), and the token
        their forwarded requests prove they are gateways with (only holders of the database's
        credentials read it)."""
        self.store.put_doc(KIND, DOC, {"url": url, "token": token, "pid": os.getpid()})

    def host(self) -> tuple[str, str] | None:
        """(URL, token) the last host advertised (it may be dead: forwarding finds out)."""
        doc = self.store.get_doc(KIND, DOC)
        return (str(doc["url"]), str(doc["token"])) if doc else None

    def release(self) -> None:
        """End the lock's session (and so the lock, if held)."""
        c, self._conn = self._conn, None
        self.held = False
        if c is not None:
            try:
                c.close()
            except psycopg.Error:
                pass

    def close(self) -> None:
        """Release the lock (a clean stop: after the engines stopped) and the store."""
        self.release()
        self.store.close()


@contextmanager
def held_unless_hosted(dsn: str) -> Iterator[bool]:
    """Hold `strata:engines` for the block if no engine host holds it (yields True), so that no
    gateway becomes the host while `strata fsck` checks and repairs the engines' files as offline;
    False: a host runs the engines (their files are in use and may be written meanwhile). The
    lock goes with the connection at the end, and gateways waiting for it take it as usual."""
    with psycopg.connect(dsn, connect_timeout=15, autocommit=True, application_name="strata-fsck") as c:
        row = c.execute("SELECT pg_try_advisory_lock(%s)", (_lock_key(KIND),)).fetchone()
        yield bool(row and row[0])
