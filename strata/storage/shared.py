"""Where a service's metadata store lives, and how a per-process cache notices other gateways.

`open_store` is the one place a service's store is opened: the embedded SQLite file at `path`, or,
with `--metadata postgresql://...` (several gateways sharing one cloud), the PostgreSQL store
`name` (a schema of that database). A service whose state is engines and files keeps calling
`MetadataStore` itself, runs on the engine host only and is named in `ON_ENGINE_HOST` (logged at
start-up).

`Freshness` is what makes a per-process cache of documents (IAM's identities and keys, S3 Control's
account settings) safe with several gateways: every change bumps a counter in the same write, and
a reader compares it with the counter its cache was built at (one indexed read, ~0.1 ms on
loopback) before it trusts the cache. So a key deleted through gateway A is refused by gateway B on
the very next request. On SQLite (one gateway) both are no-ops: the cache is always current.
That read is made once per request, off the event loop: the gateway awaits the cache's check in
the store's read threads (`store.read`) at the request's start and marks it checked for the
request (`checked`: a context variable, so per asyncio task); the request's later checks, outside
writes, trust it (a stopped PostgreSQL then stalls that request, not the gateway).

`live` is how many gateways share the cloud now (strata.storage.coordination counts them; 1 on
SQLite): a limit AWS sets per table, not per server, is divided by it (DynamoDB's capacity).
"""

from __future__ import annotations

import contextvars
from pathlib import Path
from typing import Any

from strata.storage.metadata import MetadataStore

SMALL_POOL = 2  # pooled read connections of a store opened here (S3's has its own, larger)

# What runs on the engine host only (strata.gateway.engine_host) with --metadata, and why: its
# state is engines and files, under <blob dir>/engines/, which one gateway at a time may run; the
# other gateways forward these services' requests to the host (the start-up log says so).
ON_ENGINE_HOST = {
    "rds": "its engines (PostgreSQL, MariaDB) and their data",
    "elasticache": "its engines (Redis/Valkey, Memcached) and snapshots",
    "ec2": "EBS volumes' bytes and their NBD servers",
    "ebs": "the EBS direct APIs read and write EC2's snapshot blocks",
    "efs": "file systems and their NFS servers",
    "fis": "experiments act on the host's engines; their API faults and outages reach every gateway",
    "application-autoscaling": "scalable targets and policies act on the host's engines",
    "cloudwatch": "metrics and alarms of the host's engines (every gateway's request counts and meter events)",
}


def open_store(
    path: Path,
    name: str,
    *,
    url: str | None,
    fsync: bool = True,
    schema: str = "",
    apply_in: str = "loop",
) -> Any:
    """The store of a service: SQLite at `path`, or the PostgreSQL store `name` at `url`.

    On PostgreSQL write functions run in the store's writer thread whatever `apply_in` says: they
    must touch only the store (in-memory state is changed after the awaited write)."""
    if url is None:
        return MetadataStore(path, fsync=fsync, schema=schema, apply_in=apply_in)
    from strata.storage.postgres import PostgresStore  # psycopg loads only where it is used

    # Two pooled readers: these stores are read mostly from the event loop's thread, one statement
    # at a time; PostgreSQL's 100 connections go round more gateways (about 20 each, S3's included).
    return PostgresStore(url, name, schema=schema, pool_size=SMALL_POOL)


class LiveGateways:
    """The number of gateways alive on this cloud's PostgreSQL, as last counted (a plain attribute:
    the hot path reads it per request, the coordination thread writes it)."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 1


live = LiveGateways()


def is_shared(store: object) -> bool:
    """Whether several gateways may share `store` (it is not this process's SQLite file; a
    wrapper such as OwnedDocs is judged by the store it wraps, `docs`)."""
    return not isinstance(getattr(store, "docs", store), MetadataStore)


# The Freshness counters checked for the request running in this context (`Freshness.checked`).
_CHECKED: contextvars.ContextVar[tuple[Freshness, ...]] = contextvars.ContextVar("fresh_checked", default=())


def _in_write(store: Any) -> bool:
    """Whether this thread is inside one of `store`'s writes (its writer connection's transaction)."""
    return bool(getattr(getattr(store, "conn", None), "in_transaction", False))


class Freshness:
    """A change counter stored beside a per-process cache; see the module docstring."""

    KIND = "version"

    def __init__(self, store: Any, name: str) -> None:
        self.store = store
        self.name = name
        self.shared = is_shared(store)
        self.seen = self._stored() if self.shared else 0

    def _stored(self) -> int:
        doc = self.store.get_doc(self.KIND, self.name)
        return int(doc["n"]) if doc else 0

    def changed(self) -> int | None:
        """The stored counter if another gateway changed the state since the cache was built (or
        last `bump`ed here), else None. Read it before rebuilding the cache, and set `seen` to it
        after: a change landing during the rebuild is then seen by the next check. Inside a write
        it reads the write's own view, under the store's lock."""
        if not self.shared:
            return None
        if self in _CHECKED.get() and not _in_write(self.store):
            return None  # checked at the start of this request (`checked`)
        stored = self._stored()
        return stored if stored != self.seen else None

    def checked(self) -> None:
        """Say the request running in this context (its asyncio task) checked the counter, and
        brought the cache up to date: its later `changed()` outside a write answer None."""
        done = _CHECKED.get()
        if self not in done:
            _CHECKED.set((*done, self))

    def bump(self) -> None:
        """Count a change (call inside the store write that makes it)."""
        if not self.shared:
            return
        before = self._stored()
        self.store.put_doc(self.KIND, self.name, {"n": before + 1})
        if before == self.seen:  # else another gateway's change is still to be read: stay stale
            self.seen = before + 1
