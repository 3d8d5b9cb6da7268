"""SQLite's group commit beyond the contract: the WAL stays bounded under continuous writes; a
group SQLite rolls back on a full disk acknowledges none of its writes.

SQLite restarts its WAL only when a checkpoint has copied all of it back with no write in
between; a writer that always has a group open would otherwise grow the WAL without end.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from strata.storage import MetadataStore, group_commit
from strata.storage.errors import disk_refused


@pytest.mark.parametrize("fsync", [True, False])
def test_wal_is_restarted_under_continuous_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsync: bool
) -> None:
    monkeypatch.setattr(group_commit, "CHECKPOINT_FRAMES", 64)
    path = tmp_path / "m.db"
    store = MetadataStore(path, fsync=fsync, schema="CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB);")
    value = os.urandom(4096)
    largest = 0

    async def writer(w: int) -> None:
        nonlocal largest
        for i in range(300):
            k = w * 1000 + i
            await store.write(lambda k=k: store.execute("INSERT INTO t VALUES (?, ?)", (k, value)))
            assert store.query_one("SELECT count(*) FROM t WHERE k = ?", (k,))[0] == 1  # a reader too
            largest = max(largest, os.stat(f"{path}-wal").st_size)

    async def run() -> None:
        await asyncio.gather(*(writer(w) for w in range(8)))

    asyncio.run(run())
    # 2,400 rows of 4 KiB (~10 MB) went through the WAL; it never held more than a few checkpoints' worth.
    assert largest < 3 * 1024 * 1024
    assert store.query_one("SELECT count(*) FROM t")[0] == 2400
    store.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
@pytest.mark.parametrize("apply_in", ["loop", "thread"])
def test_a_group_sqlite_rolls_back_on_a_full_disk_acknowledges_none_of_its_writes(
    tmp_path: Path, apply_in: str
) -> None:
    """SQLITE_FULL while a group spills to disk rolls back the whole group (every SAVEPOINT in
    it): the writes applied before the failing one must fail too, not be acknowledged as durable;
    the writer goes on with the next group once there is room again."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], capture_output=True, text=True
    )
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    schema = "CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v BLOB);"
    try:
        store = MetadataStore(mnt / "m.db", schema=schema, apply_in=apply_in)
        store.writer.conn.execute("PRAGMA cache_size=-500")  # a group spills to the WAL after ~500 KB

        def put(k: str, v: bytes) -> Callable[[], object]:
            return lambda: store.execute("INSERT INTO t VALUES (?, ?)", (k, v))

        async def run() -> list[object]:
            release = threading.Event()
            blocker = None
            if apply_in == "thread":
                # Hold the writer thread in a write until every write below is queued: they are
                # then applied as one group.
                started = threading.Event()

                def hold() -> None:
                    started.set()
                    release.wait(60)

                blocker = asyncio.ensure_future(store.write(hold))
                assert await asyncio.to_thread(started.wait, 60)
            # Created in one loop turn: on the loop they are applied before the group commits.
            writes = [asyncio.ensure_future(store.write(put("first", b"1")))]
            writes += [
                asyncio.ensure_future(store.write(put(f"k{i}", os.urandom(100_000)))) for i in range(120)
            ]
            for _ in range(3):
                await asyncio.sleep(0)  # every write is queued
            release.set()
            if blocker is not None:
                await blocker
            results = await asyncio.gather(*writes, return_exceptions=True)
            subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)], check=True)
            await store.write(put("second", b"2"))  # the next group works once there is room again
            return results

        results = asyncio.run(run())
        # Each failed with the disk's own error (a retryable 503 at the gateway).
        assert isinstance(results[0], sqlite3.Error) and disk_refused(results[0]), results[0]
        assert results[0].sqlite_errorcode & 0xFF == sqlite3.SQLITE_FULL, results[0]
        acked = [f"k{i}" for i, r in enumerate(results[1:]) if not isinstance(r, BaseException)]
        store.close()
        reopened = MetadataStore(mnt / "m.db", schema=schema)
        assert reopened.query_one("SELECT count(*) FROM t WHERE k = 'first'")[0] == 0
        assert reopened.query_one("SELECT count(*) FROM t WHERE k = 'second'")[0] == 1
        for k in acked:
            assert reopened.query_one("SELECT count(*) FROM t WHERE k = ?", (k,))[0] == 1, k
        reopened.close()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
