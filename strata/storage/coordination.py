"""What several gateways on one PostgreSQL share besides services' stores: the simulated clock's
offset, the scheduler's progress, and which gateway owns the time-driven work.

Why here, and no consensus of Strata's own: PostgreSQL already is the one place every gateway
agrees on.
- The clock's offset is a document of the `sim` store; `advance` adds to it in one write (under
  the store's lock, so two advances on two gateways both count) and NOTIFYs `strata_clock`; every
  gateway LISTENs on a connection of its own and reads the offset again when told (and once a
  second, should a notification be missed across a reconnection). An advance on gateway A is on
  gateway B within milliseconds.
- One owner at a time: the gateway that holds the session advisory lock `strata:scheduler`
  (`pg_try_advisory_lock` on a connection of its own) runs the scheduler's shared rules and writes
  their progress. When the owner dies (kill -9, a lost machine), PostgreSQL ends its session and
  so releases the lock; the others try for it every scheduler tick (a second) and one takes over,
  continuing from the progress the last owner wrote. An owner whose connection broke is no longer
  one (it checks the connection before every tick's work).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg

from strata.storage.postgres import PostgresStore, _lock_key

log = logging.getLogger("strata")
CHANNEL = "strata_clock"
POLL = 1.0  # seconds between reads of the offset when no notification came


class SharedSim:
    """The `sim` store of a PostgreSQL database: clock state, rules' progress, the owner lock."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.store = PostgresStore(dsn, "sim", pool_size=2)
        self._owner_conn: psycopg.Connection | None = None  # holds the lock while _owning
        self._owning = False
        self._lock_key = _lock_key("scheduler")
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    # -- the clock (strata.sim.clock.Clock.share) --------------------------------------------------

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
        may have moved: on every NOTIFY, and once a `POLL` otherwise."""
        self._watcher = threading.Thread(
            target=self._watch, args=(changed,), name="strata-clock", daemon=True
        )
        self._watcher.start()

    def _watch(self, changed: Callable[[float, list[tuple[float, float]]], None]) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True, application_name="strata-clock") as c:
                    c.execute(f"LISTEN {CHANNEL}")
                    while not self._stop.is_set():
                        state = self.read_clock()
                        if state is not None:
                            changed(*state)
                        for _ in c.notifies(timeout=POLL, stop_after=1):
                            pass
            except psycopg.Error as e:
                log.warning("following the shared clock: %s (trying again)", e)
                self._stop.wait(POLL)

    # -- the scheduler (strata.sim.scheduler.Scheduler.share) ---------------------------------------

    def own(self) -> bool:
        """Whether this gateway owns the shared time-driven work now (taking it if it is free).
        Blocking: one round trip on the lock's own connection (made again if it broke)."""
        c = self._owner_conn
        try:
            if c is None or c.broken or c.closed:
                if self._owning:
                    log.warning("lost the scheduler's lock (its connection to PostgreSQL broke)")
                self._owning = False
                c = self._owner_conn = psycopg.connect(
                    self.dsn, autocommit=True, application_name="strata-scheduler", connect_timeout=5
                )
            if self._owning:
                c.execute("SELECT 1")
                return True
            row = c.execute("SELECT pg_try_advisory_lock(%s)", (self._lock_key,)).fetchone()
        except psycopg.Error as e:
            if self._owning:
                log.warning("lost the scheduler's lock: %s", e)
            self._owning = False
            if c is not None:
                c.close()
            return False
        self._owning = bool(row and row[0])
        if self._owning:
            log.warning("this gateway now runs the shared time-driven rules (the scheduler's owner)")
        return self._owning

    def progress(self) -> dict[str, float]:
        """Simulated time each shared rule has caught up to (written by the owners)."""
        return {d["rule"]: float(d["done"]) for d in self.store.list_docs("progress")}

    def save_progress(self, rule: str, done: float) -> None:
        self.store.put_doc("progress", rule, {"rule": rule, "done": done})

    def close(self) -> None:
        self._stop.set()
        if self._owner_conn is not None:
            self._owner_conn.close()  # the lock goes with the session
            self._owner_conn = None
        if self._watcher is not None:
            self._watcher.join(timeout=POLL + 1)
        self.store.close()
