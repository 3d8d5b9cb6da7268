"""What several gateways on one PostgreSQL share besides services' stores: the simulated clock's
offset, the scheduler's progress, which gateway owns the time-driven work, and how many gateways
are alive.

Why here, and no consensus of Strata's own: PostgreSQL already is the one place every gateway
agrees on. An idle gateway sends almost nothing (a count every RECOUNT seconds): it waits on its
connections instead of polling them.
- The clock's offset is a document of the `sim` store; `advance` adds to it in one write (under
  the store's lock, so two advances on two gateways both count) and NOTIFYs `strata_clock`; every
  gateway LISTENs on a connection of its own (the follower) and reads the offset again when told,
  and whenever that connection is made again (a notification missed while it was down). An
  advance on gateway A is on gateway B within milliseconds.
- Live gateways: the follower holds the shared session advisory lock `strata:gateways` for as
  long as its connection lives, so PostgreSQL's pg_locks counts the gateways alive (a killed
  gateway's session ends, and its lock with it). A gateway NOTIFYs `strata_gateways` when it joins,
  and the others count again at once; a death is seen at the next count (within RECOUNT seconds).
  `live.count` is that number, read by what divides a limit among gateways (DynamoDB's capacity);
  while a death is not yet counted the survivors admit less, never more, than the limit.
- FIS faults: the engine host publishes the faults its experiments inject now (one document) and
  NOTIFYs `strata_faults`; every follower reads it when told, and each time its connection is
  made (strata.storage.shared_faults).
- One owner at a time: the gateway that holds the session advisory lock `strata:scheduler` (on a
  connection of its own) runs the scheduler's shared rules and writes their progress. The others
  wait for it in `pg_advisory_lock`: when the owner dies (kill -9, a lost machine), PostgreSQL
  ends its session and so releases the lock, and one waiter has it at that moment, continuing
  from the progress the last owner wrote. The owner's thread waits on its idle connection, so a
  connection the server closed is seen as soon as it closes: it is then no longer the owner.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg

from strata.sim.clock import clock
from strata.storage.postgres import PostgresStore, _lock_key
from strata.storage.shared import live

log = logging.getLogger("strata")
CHANNEL = "strata_clock"
JOINED = "strata_gateways"  # NOTIFYed by a gateway that joined (or left cleanly)
FAULTS = "strata_faults"  # NOTIFYed when the engine host's injected faults change
WAIT = 1.0  # seconds a waiting thread looks at its stop flag (a local wait: no statement)
RECOUNT = 5.0  # seconds between counts of the live gateways (a join is counted at once)
FIRST_TRY = 5.0  # seconds own() waits for the first attempt at the scheduler's lock
# The sessions whose locks say who is alive: TCP keepalives on both ends (~11 s without an answer),
# so a gateway whose machine is lost (no FIN from a dead kernel) loses its locks in seconds, not
# after the operating system's two hours, and a gateway cut off from PostgreSQL sees it as soon.
SESSION: dict = {
    "autocommit": True,
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "options": "-c tcp_keepalives_idle=5 -c tcp_keepalives_interval=2 -c tcp_keepalives_count=3",
}


def _lock_ids(key: int) -> tuple[int, int]:
    """pg_locks' (classid, objid) of a bigint advisory lock key: its high and low 32 bits."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    return unsigned >> 32, unsigned & 0xFFFFFFFF


COUNT = (
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND mode = 'ShareLock'"
    " AND classid::bigint = %s AND objid::bigint = %s AND objsubid = 1"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


class SharedSim:
    """The `sim` store of a PostgreSQL database: clock state, rules' progress, the owner lock."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.store = PostgresStore(dsn, "sim", pool_size=2)
        self._owner_conn: psycopg.Connection | None = None  # holds (or waits for) the lock
        self._owning = False
        self._lock_key = _lock_key("scheduler")
        self._member_key = _lock_key("gateways")
        self._member_ids = _lock_ids(self._member_key)
        self._stop = threading.Event()
        self._tried = threading.Event()  # the owner thread's first attempt is answered
        self._holding = False  # the owner thread is started
        self._threads: list[threading.Thread] = []
        self._faults_changed: Callable[[dict], None] | None = None

    def _thread(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    # -- the clock (strata.sim.clock.Clock.share) and the live gateways ----------------------------

    def read_clock(self) -> tuple[float, list[tuple[float, float]]] | None:
        """(offset, history) as stored; None before any gateway stored one."""
        doc = self.store.get_doc("clock", "state")
        if doc is None:
            return None
        return float(doc["offset_seconds"]), [(float(a), float(b)) for a, b in doc["history"]]

    def init_clock(self, offset: float, history: list[tuple[float, float]]) -> None:
        """Store a first state (this gateway's own, from before it shared one) unless one exists."""
        with self.store.transaction():
            if self.store.get_doc("clock", "state") is None:
                self.store.put_doc("clock", "state", {"offset_seconds": offset, "history": history})

    def add_to_clock(self, seconds: float, wall: float) -> tuple[float, list[tuple[float, float]]]:
        """Move the shared offset forward by `seconds` (durably), and tell every gateway."""
        with self.store.transaction() as c:
            state = self.read_clock() or (0.0, [(0.0, 0.0)])
            offset = state[0] + seconds
            history = [*state[1], (wall, offset)]
            self.store.put_doc("clock", "state", {"offset_seconds": offset, "history": history})
            c.execute(f"NOTIFY {CHANNEL}")
        return offset, history

    def watch_clock(self, changed: Callable[[float, list[tuple[float, float]]], None]) -> None:
        """Call `changed(offset, history)` (from a thread of its own) whenever the stored offset
        may have moved: on every NOTIFY, and each time the listening connection is made. The same
        thread keeps this gateway counted among the live ones and `live.count` current."""
        self._thread(self._follow, "strata-clock", changed)

    # -- FIS faults (strata.storage.shared_faults) --------------------------------------------------

    def publish_faults(self, body: dict) -> None:
        """Store the faults injected now (durably), and tell every gateway."""
        with self.store.transaction() as c:
            self.store.put_doc("faults", "active", body)
            c.execute(f"NOTIFY {FAULTS}")

    def read_faults(self) -> dict:
        return self.store.get_doc("faults", "active") or {}

    def watch_faults(self, changed: Callable[[dict], None]) -> None:
        """Call `changed(published)` now and (from the follower's thread) whenever it may change."""
        self._faults_changed = changed
        changed(self.read_faults())

    def _tell_faults(self) -> None:
        changed = self._faults_changed
        if changed is not None:
            try:
                changed(self.read_faults())
            except psycopg.Error:
                raise
            except Exception:  # noqa: BLE001 - the follower must keep following the clock
                log.exception("applying the published faults failed")

    def _follow(self, changed: Callable[[float, list[tuple[float, float]]], None]) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.dsn, application_name="strata-gateway", **SESSION) as c:
                    c.execute("SELECT pg_advisory_lock_shared(%s)", (self._member_key,))
                    c.execute(f"LISTEN {CHANNEL}")
                    c.execute(f"LISTEN {JOINED}")
                    c.execute(f"LISTEN {FAULTS}")
                    c.execute(f"NOTIFY {JOINED}")
                    heard = {CHANNEL, JOINED, FAULTS}  # as if told: read all now
                    counted = 0.0
                    while not self._stop.is_set():
                        if CHANNEL in heard:
                            state = self.read_clock()
                            if state is not None:
                                changed(*state)
                        if FAULTS in heard:
                            self._tell_faults()
                        if JOINED in heard or clock.monotonic() - counted >= RECOUNT:
                            row = c.execute(COUNT, self._member_ids).fetchone()
                            live.count = max(1, int(row[0]) if row else 1)
                            counted = clock.monotonic()
                        heard = {n.channel for n in c.notifies(timeout=WAIT, stop_after=1)}
                    # a clean stop: leave, and have the others count again now
                    c.execute("SELECT pg_advisory_unlock_shared(%s)", (self._member_key,))
                    c.execute(f"NOTIFY {JOINED}")
            except psycopg.Error as e:
                log.warning("following the shared clock and gateways: %s (trying again)", e)
                self._stop.wait(WAIT)

    # -- the scheduler (strata.sim.scheduler.Scheduler.share) ---------------------------------------

    def own(self) -> bool:
        """Whether this gateway owns the shared time-driven work now. The first call starts the
        thread that takes (or waits for) the lock, and waits for its first attempt; later calls
        only read what that thread knows (no statement)."""
        if not self._holding:
            self._holding = True
            self._thread(self._hold, "strata-scheduler")
        self._tried.wait(FIRST_TRY)
        return self._owning

    def _hold(self) -> None:
        """Take the scheduler's lock, or wait in PostgreSQL until it is free; then hold it until
        the connection breaks or close()."""
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.dsn, application_name="strata-scheduler", **SESSION) as c:
                    self._owner_conn = c
                    row = c.execute("SELECT pg_try_advisory_lock(%s)", (self._lock_key,)).fetchone()
                    self._tried.set()
                    if not (row and row[0]):
                        c.execute("SELECT pg_advisory_lock(%s)", (self._lock_key,))  # till it is free
                    self._owning = True
                    log.warning("this gateway now runs the shared time-driven rules (the scheduler's owner)")
                    while not self._stop.is_set():
                        for _ in c.notifies(timeout=WAIT):  # none come: this wakes when it breaks
                            pass
            except psycopg.Error as e:
                if self._owning:
                    log.warning("lost the scheduler's lock: %s", e)
                elif not self._stop.is_set():
                    log.warning("waiting for the scheduler's lock: %s (trying again)", e)
            finally:
                self._owning = False
                self._owner_conn = None
                self._tried.set()
            self._stop.wait(WAIT)

    def progress(self) -> dict[str, float]:
        """Simulated time each shared rule has caught up to (written by the owners)."""
        return {d["rule"]: float(d["done"]) for d in self.store.list_docs("progress")}

    def save_progress(self, rule: str, done: float) -> None:
        self.store.put_doc("progress", rule, {"rule": rule, "done": done})

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:  # their connections close, and the locks go with them
            for _ in range(3):
                owner = self._owner_conn
                if owner is not None and not self._owning:
                    owner.cancel_safe()  # out of its wait in pg_advisory_lock
                thread.join(timeout=WAIT + 0.5)
                if not thread.is_alive():
                    break
        self.store.close()
