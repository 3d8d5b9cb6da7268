"""The metadata-store backends side by side: SQLite (writes on the loop, or in the writer thread)
and PostgreSQL (issue 22 step 2): round trips per operation, CPU per write, writes/s.

    python bench/metadata_backends.py [--writes 4000] [--concurrency 1,32] [--dsn postgresql://...]
    python bench/metadata_backends.py --isolation [--writes 2000]

--isolation: why the PostgreSQL store serializes a store's writes with an advisory lock rather
than running them SERIALIZABLE with retries: two processes (two gateways), 16 writers each, do
read-modify-writes of one hot counter and of keys of their own, both ways; writes/s and retries.

Without --dsn a throwaway PostgreSQL server is initdb'd in a temp dir (the programs RDS uses).
Round trips are counted as psycopg `Connection.execute` calls outside pipeline mode and
pipeline syncs (each waits for one reply; `executemany` is not used here). CPU: this process (all threads) and, for
PostgreSQL, the server's processes (psutil), per write; fsync on for every backend.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import psutil
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from strata.storage import MetadataStore  # noqa: E402
from strata.storage.postgres import PostgresStore  # noqa: E402

SCHEMA = "CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v INTEGER NOT NULL);"
ROUND_TRIPS = 0
_execute = psycopg.Connection.execute


_sync = psycopg.Pipeline.sync


def _counting_execute(self, *a, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
    global ROUND_TRIPS
    if self._pipeline is None:  # in pipeline mode a statement waits only at the next sync
        ROUND_TRIPS += 1
    return _execute(self, *a, **kw)


def _counting_sync(self):  # noqa: ANN001, ANN202
    global ROUND_TRIPS
    ROUND_TRIPS += 1
    return _sync(self)


psycopg.Connection.execute = _counting_execute  # type: ignore[method-assign]
psycopg.Pipeline.sync = _counting_sync  # type: ignore[method-assign]


def _server_cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def _server_pids(dsn: str | None) -> list[int]:
    if not dsn:
        return []
    with psycopg.connect(dsn) as c:
        pid = c.execute("SELECT pid FROM pg_stat_activity WHERE backend_type = 'walwriter'").fetchone()
    if not pid:
        return []
    parent = psutil.Process(pid[0]).parent()
    return [parent.pid, *(p.pid for p in parent.children())] if parent else []


def run(name: str, make: Callable[[], object], writes: int, concurrency: int, dsn: str | None) -> None:
    global ROUND_TRIPS
    store = make()
    keys = iter(range(10**9))

    def put() -> None:
        k = next(keys)
        store.execute("INSERT INTO kv VALUES (?, ?)", (f"{name}-{concurrency}-{k}", k))  # type: ignore[attr-defined]

    async def worker(n: int) -> None:
        for _ in range(n):
            await store.write(put)  # type: ignore[attr-defined]

    async def main() -> None:
        await asyncio.gather(*(worker(writes // concurrency) for _ in range(concurrency)))

    asyncio.run(main())  # warm up: connections, prepared statements, the writer thread
    pids = _server_pids(dsn)
    ROUND_TRIPS = 0
    cpu0, srv0, t0 = time.process_time(), _server_cpu(pids), time.perf_counter()
    asyncio.run(main())
    wall, cpu, srv = time.perf_counter() - t0, time.process_time() - cpu0, _server_cpu(pids) - srv0
    write_rt = ROUND_TRIPS / writes
    ROUND_TRIPS = 0
    r0 = time.process_time()
    for i in range(2000):
        store.query_one("SELECT v FROM kv WHERE k = ?", (f"{name}-{concurrency}-{i}",))  # type: ignore[attr-defined]
    read_cpu = (time.process_time() - r0) / 2000
    read_rt = ROUND_TRIPS / 2000
    extra = f", server {srv / writes * 1e6:.0f} us" if pids else ""
    print(
        f"{name:22} c={concurrency:<3} {writes / wall:8.0f} writes/s  CPU/write: client "
        f"{cpu / writes * 1e6:.0f} us{extra}  round trips/write {write_rt:.2f}  "
        f"read: {read_cpu * 1e6:.0f} us CPU, {read_rt:.0f} round trip(s)"
    )
    store.close()  # type: ignore[attr-defined]


def _lock_worker(dsn: str, name: str, me: int, writes: int, hot: bool) -> tuple[float, int]:
    store = PostgresStore(dsn, name, schema=SCHEMA)

    def bump(k: str) -> None:
        n = store.query_one("SELECT v FROM kv WHERE k = ?", (k,))[0]
        store.execute("UPDATE kv SET v = ? WHERE k = ?", (n + 1, k))

    async def writer(w: int) -> None:
        k = "hot" if hot else f"k{me}-{w}"
        for _ in range(writes // 16):
            await store.write(lambda: bump(k))

    async def main() -> None:
        await asyncio.gather(*(writer(w) for w in range(16)))

    t0 = time.perf_counter()
    asyncio.run(main())
    store.close()
    return time.perf_counter() - t0, 0


def _serializable_worker(dsn: str, name: str, me: int, writes: int, hot: bool) -> tuple[float, int]:
    from concurrent.futures import ThreadPoolExecutor

    from psycopg_pool import ConnectionPool

    pool = ConnectionPool(
        dsn, min_size=8, max_size=8, kwargs={"autocommit": True, "options": f"-c search_path={name}"}
    )
    retries = 0

    def bump(k: str) -> None:
        nonlocal retries
        while True:
            with pool.connection() as c:
                try:
                    c.execute("BEGIN ISOLATION LEVEL SERIALIZABLE")
                    n = c.execute("SELECT v FROM kv WHERE k = %s", (k,)).fetchone()[0]  # type: ignore[index]
                    c.execute("UPDATE kv SET v = %s WHERE k = %s", (n + 1, k))
                    c.execute("COMMIT")
                    return
                except (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected):
                    c.execute("ROLLBACK")
                    retries += 1

    def writer(w: int) -> None:
        k = "hot" if hot else f"k{me}-{w}"
        for _ in range(writes // 16):
            bump(k)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(16) as ex:
        list(ex.map(writer, range(16)))
    pool.close()
    return time.perf_counter() - t0, retries


def isolation(dsn: str, writes: int) -> None:
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    for hot in (True, False):
        for label, fn in (
            ("advisory lock + group commit", _lock_worker),
            ("SERIALIZABLE + retry", _serializable_worker),
        ):
            name = f"iso_{secrets.token_hex(3)}"
            s = PostgresStore(dsn, name, schema=SCHEMA)
            s.executescript("INSERT INTO kv VALUES ('hot', 0);")
            s.executemany("INSERT INTO kv VALUES (?, 0)", [(f"k{m}-{w}",) for m in (1, 2) for w in range(16)])
            with ctx.Pool(2) as p:
                out = p.starmap(fn, [(dsn, name, me, writes, hot) for me in (1, 2)])
            total = s.query_one("SELECT sum(v) FROM kv")[0]
            s.close()
            wall = max(o[0] for o in out)
            print(
                f"{'hot key' if hot else 'own keys':8} {label:30} {2 * (writes // 16) * 16 / wall:7.0f} writes/s  "
                f"retries {sum(o[1] for o in out)}  counted {total}"
            )


def _throwaway_server(root: Path) -> tuple[object, str]:
    from strata.engines.postgres import PgNode

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    node = PgNode(root / "pg", port, "strata")
    password = secrets.token_hex(12)
    node.initdb(password)
    return node, f"postgresql://strata:{password}@127.0.0.1:{port}/postgres"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--writes", type=int, default=4000)
    ap.add_argument("--concurrency", default="1,32")
    ap.add_argument("--dsn", default=os.environ.get("STRATA_BENCH_PG_DSN"))
    ap.add_argument("--isolation", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="strata-mdb-") as tmp:
        root = Path(tmp)
        node = None
        dsn = args.dsn
        if not dsn:
            node, dsn = _throwaway_server(root)
        try:
            if args.isolation:
                isolation(dsn, args.writes)
                return
            for c in (int(x) for x in args.concurrency.split(",")):
                tag = secrets.token_hex(3)
                makers: dict[str, Callable[[], object]] = {
                    "sqlite (loop)": partial(MetadataStore, root / f"a{tag}.db", schema=SCHEMA),
                    "sqlite (writer thread)": partial(
                        MetadataStore, root / f"b{tag}.db", schema=SCHEMA, apply_in="thread"
                    ),
                    "postgresql": partial(PostgresStore, dsn, f"bench_{tag}", schema=SCHEMA),
                }
                for name, make in makers.items():
                    run(name, make, args.writes, c, dsn if name == "postgresql" else None)
        finally:
            if node is not None:
                node.stop()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
