"""Loopback ports for engines and their stable endpoints, from `settings.engine_port_range`.

One allocation table for the whole data directory (`<data_dir>/engines/ports.db`), shared by every
service (RDS, ElastiCache ...), so two services never hand out the same port. An owner (any string,
e.g. "rds/instance/mydb/endpoint") keeps its port for life — across Strata restarts — until it is
released. A new allocation skips ports some other program on the machine is listening on.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from strata.config import Settings
from strata.engines.nft import remove_dead_tables
from strata.storage.metadata import MetadataStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ports (
    port INTEGER PRIMARY KEY,
    owner TEXT NOT NULL UNIQUE
);
"""


_SWEEP_EVERY = 10.0  # seconds between two sweeps of dead Stratas' nft tables (see allocate)


class PortsExhausted(Exception):
    """Every port of the configured range is taken."""


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True if nothing listens on host:port right now (we can bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


class PortAllocator:
    """Persistent owner -> port map over a fixed range."""

    def __init__(self, db_path: Path, port_range: tuple[int, int], *, fsync: bool = True) -> None:
        self.low, self.high = port_range
        self._store = MetadataStore(db_path, fsync=fsync, schema=_SCHEMA)
        self._lock = threading.RLock()  # reassign() allocates while holding it
        self._watchers: list[Callable[[], None]] = []
        self._swept = -_SWEEP_EVERY  # when remove_dead_tables last ran (time.monotonic)

    @classmethod
    def for_settings(cls, settings: Settings) -> PortAllocator:
        """The allocator of this data directory (one instance per process is cached)."""
        key = (str(settings.data_dir), tuple(settings.engine_port_range))
        with _CACHE_LOCK:
            alloc = _CACHE.get(key)
            if alloc is None:
                path = settings.data_dir / "engines" / "ports.db"
                alloc = _CACHE[key] = cls(path, settings.engine_port_range, fsync=settings.fsync)
            return alloc

    def watch(self, callback: Callable[[], None]) -> None:
        """Call `callback` after every change of the table, in the thread that made it, before the
        port is returned: a guard of the ports (strata.engines.internal_guard) covers a new one
        before its engine listens on it."""
        self._watchers.append(callback)

    def unwatch(self, callback: Callable[[], None]) -> None:
        if callback in self._watchers:
            self._watchers.remove(callback)

    def _changed(self) -> None:
        for callback in list(self._watchers):
            callback()

    def get(self, owner: str) -> int | None:
        row = self._store.query_one("SELECT port FROM ports WHERE owner = ?", (owner,))
        return int(row[0]) if row else None

    def allocate(self, owner: str, preferred: int | None = None) -> int:
        """The owner's port: the one it already has, else `preferred` if free, else a random free one."""
        row = self._store.query_one("SELECT port FROM ports WHERE owner = ?", (owner,))
        if row:
            return int(row[0])
        # Redirect rules left by a Strata killed with -9 would capture a port handed out again.
        self._remove_dead_tables()
        with self._lock, self._store.transaction() as c:
            row = c.execute("SELECT port FROM ports WHERE owner = ?", (owner,)).fetchone()
            if row:
                return int(row[0])
            taken = {r[0] for r in c.execute("SELECT port FROM ports")}
            # Random order: several Stratas (tests, developers) share one machine and one range, and a
            # port free at allocation time may be taken by another while its engine is stopped.
            candidates = list(range(self.low, self.high + 1))
            random.shuffle(candidates)
            if preferred is not None and preferred not in taken and port_is_free(preferred):
                port = preferred
            else:
                port = next((p for p in candidates if p not in taken and port_is_free(p)), None)
                if port is None:
                    raise PortsExhausted(f"no free port left in {self.low}-{self.high}")
            c.execute("INSERT INTO ports(port, owner) VALUES (?, ?)", (port, owner))
        self._changed()
        return port

    def _remove_dead_tables(self) -> None:
        """remove_dead_tables, at most once per _SWEEP_EVERY: each run is an nft process, which on
        a loaded host waits seconds for a CPU, and a Create allocates several ports in a row. A
        dead Strata's tables are also deleted by their janitors within a second of its death."""
        now = time.monotonic()
        if now - self._swept < _SWEEP_EVERY:
            return
        self._swept = now
        remove_dead_tables()

    def reassign(self, owner: str) -> int:
        """A new port for `owner` (its old one was taken by another program while it was down)."""
        with self._lock:
            self.release(owner)
            return self.allocate(owner)

    def release(self, owner: str) -> None:
        with self._store.transaction() as c:
            c.execute("DELETE FROM ports WHERE owner = ?", (owner,))
        self._changed()

    def release_prefix(self, prefix: str) -> None:
        """Release every port whose owner starts with `prefix` (e.g. all ports of one instance)."""
        with self._store.transaction() as c:
            c.execute("DELETE FROM ports WHERE owner >= ? AND owner < ?", (prefix, prefix + "\U0010ffff"))
        self._changed()

    def owned(self, prefix: str = "") -> dict[str, int]:
        rows = self._store.query(
            "SELECT owner, port FROM ports WHERE owner >= ? AND owner < ?", (prefix, prefix + "\U0010ffff")
        )
        return {r[0]: int(r[1]) for r in rows}


_CACHE: dict[tuple, PortAllocator] = {}
_CACHE_LOCK = threading.Lock()
