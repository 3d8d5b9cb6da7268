"""Which gateway is the engine host: the holder of the session advisory lock `strata:engines`.

Several gateways on one PostgreSQL run the engine services (RDS, ElastiCache, EC2/EBS, EFS ...)
on one of them at a time, the engine host (strata.gateway.engine_host). Being it is holding this
lock on a connection of its own, as the scheduler's owner holds `strata:scheduler`
(strata.storage.coordination); the host's URL is a document beside it so the others know where
to forward.

The lock alone cannot fence a host: a PostgreSQL restart, a Patroni promotion or a proxy moving
ends the host's session (and frees the lock) while its engines, which do not need PostgreSQL, go
on serving. Killing them for that would move every engine at every database failover. So the
lock has a row beside it, `engine_host.beat` (one row), written only through the lock's own
connection while the lock is held:
- `holder`: a random id per takeover, written by a new host FIRST, right after it decided to
  take the engines over and before it waits its grace and starts any engine; `url`: where it
  serves (and answers GET /_strata/engine-host?holder=ID, strata.gateway.admin);
- `at`: PostgreSQL's now() at the holder's last heartbeat (every `PING` s, `UPDATE ... WHERE
  holder = me`: a heartbeat that finds another holder tells the host it was replaced);
- `released`: set by a clean stop, once its engines are down.

The timing argument (why two gateways never run the same engines):
- The host fences itself (kills its engines, exits) once `KEEP` seconds passed since it SENT its
  last heartbeat that succeeded (a watchdog thread, whatever the watcher is blocked in). Until
  then it tries to get the lock back: it keeps the engines only if it holds the lock again AND
  the row still names it. Only a gateway about to start engines writes another holder (under the
  lock), so the row naming the host proves nobody else started them since. A row naming another
  holder fences it at once, lock or not.
- Every commit is synchronous (`synchronous_commit=on`, Patroni's synchronous mode): a heartbeat
  the host saw succeed is in whichever node is promoted, so its `at` = b is at or after the send
  time the host counts from: the host's engines are dead by b + KEEP (+ the watchdog's tick).
- A gateway that takes the lock and finds the row naming a host that did not release cleanly asks
  that host's URL whether it still holds that takeover (`PROBE_TIMEOUT`):
  * yes: the host is alive and reconnecting: release the lock, back off, try again later;
  * connection refused: nothing listens there, the host's process is gone and its engines with
    it (they die with their parent): the usual `TAKEOVER_GRACE`;
  * it answers "no" (a restarted gateway on that URL: the old process is gone): the usual grace;
  * no answer (the machine is dead or cut off from us; it may still run the engines until its
    KEEP runs out): take over, write our id, but start the engines only after
    KEEP + `MARGIN` - age, with age = now() - at measured by PostgreSQL: at or after b + KEEP +
    MARGIN, when the old host has fenced. MARGIN covers the watchdog's tick, the kill, and the
    PostgreSQL nodes' clocks (at and now() may come from two nodes: NTP keeps them within ms).
- The session also goes by the server's side when the host's machine is lost: PostgreSQL gives a
  silent host up after its keepalives (5 s idle, then 3 probes 2 s apart) or `tcp_user_timeout`
  (`SERVER_GIVES_UP` ms): ~11 s. The host's own statements give up after `HOST_GIVES_UP` ms.
- A gateway of an older Strata does not read the row: while the host regains the lock, a lock
  held by a session named `OLD_APP_NAME` fences the host at once (a rolling upgrade).

Where the engines run (`--engine-host`, strata.gateway.engine_host): a gateway set to `never`
never tries for the lock; one set to `prefer` holds the shared advisory lock
`strata:engines-preferred` on the lock's session for as long as it lives (taken again with every
new session); one set to `any` tries for `strata:engines` in one statement that first looks
whether any session holds that shared lock (`try_take(defer=True)`), and leaves a free lock alone
while one does. Only who takes the lock changes: whoever takes it decides, waits and fences as
above, so the preference never weakens the timing argument.
Assumed: each gateway's URL is its own; a refused connection means no process listens (no firewall between gateways answering
REJECT with a TCP reset); a firewall that does must DROP instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg

from strata.storage.coordination import SESSION, _lock_ids
from strata.storage.postgres import PostgresStore, _lock_key

PING = 0.5  # seconds between the host's heartbeats (and non-hosts' tries for the lock)
HOST_GIVES_UP = 3000  # ms without an answer before the host's statement fails (client tcp_user_timeout)
SERVER_GIVES_UP = 11000  # ms before PostgreSQL ends a silent host's session (server tcp_user_timeout)
# Seconds a host keeps its engines without a heartbeat that succeeded: a Patroni promotion (ttl
# 15 s, then the promotion: ~17 s without a primary) with room to reconnect.
KEEP = 24.0
MARGIN = 2.0  # seconds a new host adds to KEEP when the old one may still be alive (see above)
KIND, DOC = "engines", "host"
_BEAT = """
CREATE TABLE IF NOT EXISTS beat (
    one BOOLEAN PRIMARY KEY DEFAULT true CHECK (one),
    holder TEXT NOT NULL,
    url TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL,
    released BOOLEAN NOT NULL DEFAULT false
);
"""
# The lock's session names itself so: one named only "strata-engine-host" is an older Strata's,
# which takes the engines over after its short grace without reading the row (a rolling upgrade).
APP_NAME = "strata-engine-host/beat"
OLD_APP_NAME = "strata-engine-host"
_HOLDER_APP = (
    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = %s AND l.objid::bigint = %s "
    "AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)
_GRANTED = (
    "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid::bigint = %s "
    "AND objid::bigint = %s AND objsubid = 1 "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)
# A gateway set to `any`: take the lock unless a `prefer` gateway lives; then say whether it is free.
_TRY_UNLESS_PREFERRED = (
    f"SELECT CASE WHEN NOT EXISTS ({_GRANTED}) THEN pg_try_advisory_lock(%s)::text "
    f"WHEN EXISTS ({_GRANTED}) THEN 'held' ELSE 'free' END"
)
PREFERRED = "engines-preferred"  # the shared lock every live `--engine-host prefer` gateway holds
_READ = "SELECT holder, url, extract(epoch FROM now() - at)::float8, released FROM engine_host.beat"


@dataclass(frozen=True)
class Beat:
    """The row as a taker of the lock reads it: the last holder, and how long ago it last beat."""

    holder: str
    url: str
    age: float  # seconds, by PostgreSQL's clock
    released: bool


class EngineHostLock:
    """The `strata:engines` lock, its heartbeat row and the host's advertised URL. Blocking; one
    thread uses it."""

    def __init__(self, dsn: str, preferred: bool = False) -> None:
        self.dsn = dsn
        self.preferred = preferred  # --engine-host prefer: its sessions say so (PREFERRED)
        self.preferred_key = _lock_key(PREFERRED)
        # The host's URL. Not a store named "engines": a store's writes take the advisory lock of
        # its name, and this one's would wait for the host's lock forever.
        self.store = PostgresStore(dsn, "engine_host", pool_size=1, schema=_BEAT)
        self.key = _lock_key("engines")
        self._conn: psycopg.Connection | None = None
        self.held = False

    def _connect(self) -> psycopg.Connection:
        return psycopg.connect(
            self.dsn,
            **{
                **SESSION,  # keepalives on both ends, as the scheduler's owner has
                "connect_timeout": 3,
                "application_name": APP_NAME,
                "tcp_user_timeout": HOST_GIVES_UP,
                "options": f"{SESSION['options']} -c tcp_user_timeout={SERVER_GIVES_UP} "
                f"-c statement_timeout={HOST_GIVES_UP} -c synchronous_commit=on",
            },
        )

    def _session(self) -> psycopg.Connection:
        c = self._conn
        if c is None or c.broken or c.closed:
            c = self._conn = self._connect()
            if self.preferred:  # for as long as this session lives (raises psycopg.Error)
                c.execute("SELECT pg_try_advisory_lock_shared(%s)", (self.preferred_key,))
        return c

    def try_take(self, defer: bool = False) -> bool | None:
        """Take the lock if it is free (True: this gateway holds it, and decides with `last` whether
        to `claim` the engines or `release` it). Never call it while `held`. `defer` (a gateway set
        to `any`): not while a `prefer` gateway lives; then None if the lock is free (left to
        that gateway), False if it is held."""
        try:
            c = self._session()
            if defer:
                ids = (*_lock_ids(self.preferred_key), self.key, *_lock_ids(self.key))
                row = c.execute(_TRY_UNLESS_PREFERRED, ids).fetchone()
                if row is not None and row[0] == "free":
                    return None
                got = row is not None and row[0] == "true"
            else:
                row = c.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
                got = bool(row and row[0])
        except psycopg.Error:
            self.release()
            return False
        self.held = got
        return got

    def last(self) -> Beat | None:
        """The heartbeat row (None: no host ever claimed the engines). Raises psycopg.Error."""
        row = self._session().execute(_READ).fetchone()
        return Beat(row[0], row[1], float(row[2]), bool(row[3])) if row else None

    def claim(self, holder: str, url: str) -> None:
        """Name this gateway's takeover in the row, before anything else (see the module
        docstring). Raises psycopg.Error: then nothing may start (the lock is released)."""
        try:
            self._session().execute(
                "INSERT INTO engine_host.beat (one, holder, url, at, released) "
                "VALUES (true, %s, %s, now(), false) ON CONFLICT (one) DO UPDATE SET "
                "holder = excluded.holder, url = excluded.url, at = now(), released = false",
                (holder, url),
            )
        except psycopg.Error:
            self.release()
            raise

    def beat(self, holder: str) -> bool:
        """The heartbeat: False once the row names another holder (replaced: fence). Raises
        psycopg.Error when the connection failed (the lock may be gone: `regain` it)."""
        c = self._conn
        if not self.held or c is None or c.broken or c.closed:
            raise psycopg.OperationalError("the lock's connection is gone")
        try:
            return (
                c.execute("UPDATE engine_host.beat SET at = now() WHERE holder = %s", (holder,)).rowcount == 1
            )
        except psycopg.Error:
            self.release()
            raise

    def regain(self, holder: str) -> bool | None:
        """After the lock's connection failed: True once the lock is this gateway's again and the
        row still names `holder` (nobody took the engines over meanwhile); False as soon as it
        names another, or an older Strata's gateway holds the lock; None: not known yet (PostgreSQL
        away, or the lock still held by the old session or by a gateway deciding): try again."""
        try:
            got = self.try_take()
            beat = self.last() if self._conn is not None else None
        except psycopg.Error:
            self.release()
            return None
        if self._conn is None:
            return None
        if beat is None or beat.holder != holder or (not got and self._older_strata_holds()):
            self.release()
            return False
        return True if got else None

    def _older_strata_holds(self) -> bool:
        """Whether the lock is held by an older Strata's gateway (it may start the engines)."""
        try:
            row = self._session().execute(_HOLDER_APP, _lock_ids(self.key)).fetchone()
        except psycopg.Error:
            return False  # not known: the next try asks again, and KEEP bounds it all
        return bool(row and row[0] == OLD_APP_NAME)

    def advertise(self, url: str, token: str) -> None:
        """Tell the other gateways where the host serves (once its engines are up), and the token
        their forwarded requests prove they are gateways with (only holders of the database's
        credentials read it)."""
        self.store.put_doc(KIND, DOC, {"url": url, "token": token, "pid": os.getpid()})

    def host(self) -> tuple[str, str] | None:
        """(URL, token) the last host advertised (it may be dead: forwarding finds out)."""
        doc = self.store.get_doc(KIND, DOC)
        return (str(doc["url"]), str(doc["token"])) if doc else None

    def let_go(self) -> None:
        """Give the lock back, keeping the session: a `prefer` gateway's preference lives on it
        (backing off from a live host must not hide it from the others)."""
        c = self._conn
        if self.held and c is not None and not (c.broken or c.closed):
            try:
                c.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
                self.held = False
                return
            except psycopg.Error:
                pass
        self.release()

    def release(self) -> None:
        """End the lock's session (and so the lock, if held)."""
        c, self._conn = self._conn, None
        self.held = False
        if c is not None:
            try:
                c.close()
            except psycopg.Error:
                pass

    def close(self, holder: str | None = None) -> None:
        """Release the lock and the store; `holder`: a clean stop of that host, after its engines
        stopped: the row says so, and the next host needs no wait."""
        if holder is not None and self.held and self._conn is not None:
            try:
                self._conn.execute("UPDATE engine_host.beat SET released = true WHERE holder = %s", (holder,))
            except psycopg.Error:
                pass
        self.release()
        self.store.close()


@contextmanager
def held_unless_hosted(dsn: str) -> Iterator[bool]:
    """Hold `strata:engines` for the block if no engine host holds it (yields True), so that no
    gateway becomes the host while `strata fsck` checks and repairs the engines' files as offline;
    False: a host runs the engines (their files are in use and may be written meanwhile), or may
    still: one that lost its lock's connection keeps them up to KEEP s after its last heartbeat.
    The lock goes with the connection at the end, and gateways waiting for it take it as usual."""
    with psycopg.connect(dsn, connect_timeout=15, autocommit=True, application_name="strata-fsck") as c:
        row = c.execute("SELECT pg_try_advisory_lock(%s)", (_lock_key(KIND),)).fetchone()
        free = bool(row and row[0])
        if free and c.execute("SELECT to_regclass('engine_host.beat') IS NOT NULL").fetchone()[0]:  # type: ignore[index]
            beat = c.execute(_READ).fetchone()
            free = beat is None or bool(beat[3]) or float(beat[2]) > KEEP + MARGIN
            if not free:  # a host may be regaining it: not held across the read-only checks
                c.execute("SELECT pg_advisory_unlock(%s)", (_lock_key(KIND),))
        yield free
