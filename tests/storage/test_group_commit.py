"""SQLite's group commit beyond the contract: the WAL stays bounded under continuous writes.

SQLite restarts its WAL only when a checkpoint has copied all of it back with no write in
between; a writer that always has a group open would otherwise grow the WAL without end.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from strata.storage import MetadataStore, group_commit


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
