"""The item store's group commit: COMMIT on the loop, fsync of the WAL in the commit thread.

Concurrent writers are acknowledged only after their group is committed; writes go on while a
group's fsync is in flight; WAL checkpoints happen in the commit thread; everything acknowledged is
there after the store is closed and opened again.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from strata.services.dynamodb import store as store_mod
from strata.services.dynamodb.store import ItemStore


async def _writer(store: ItemStore, worker: int, count: int, acked: list[bytes]) -> None:
    for i in range(count):
        pk = f"w{worker}-{i}".encode()
        await store.writable()
        with store.write():
            store.put(1, pk, b"", {"pk": {"S": pk.decode()}}, 10)
        await store.durable()
        acked.append(pk)


@pytest.mark.parametrize("fsync", [True, False])
def test_acknowledged_writes_are_committed_and_survive_reopen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsync: bool
) -> None:
    monkeypatch.setattr(store_mod, "_CHECKPOINT_EVERY", 3)  # exercise checkpoints in a short run
    path = tmp_path / "ddb.sqlite3"
    store = ItemStore(path, fsync=fsync)
    acked: list[bytes] = []

    async def run() -> None:
        await asyncio.gather(*(_writer(store, w, 40, acked) for w in range(8)))

    asyncio.run(run())
    assert len(acked) == 320
    # A reader connection sees every acknowledged write before any close.
    reader = ItemStore(path, fsync=fsync)
    for pk in acked:
        assert reader.get(1, pk, b"", reader.r) is not None
    reader.close()
    store.close()
    reopened = ItemStore(path, fsync=fsync)
    rows = reopened.r.execute("SELECT count(*) FROM ddb_items WHERE tid = 1").fetchone()[0]
    assert rows == 320
    reopened.close()


def test_failed_operation_rolls_back_only_itself(tmp_path: Path) -> None:
    store = ItemStore(tmp_path / "ddb.sqlite3")

    async def run() -> None:
        with store.write():
            store.put(1, b"kept", b"", {"pk": {"S": "kept"}}, 4)
        with pytest.raises(RuntimeError):
            with store.write():
                store.put(1, b"lost", b"", {"pk": {"S": "lost"}}, 4)
                raise RuntimeError("condition failed")
        await store.durable()

    asyncio.run(run())
    assert store.get(1, b"kept", b"", store.r) is not None
    assert store.get(1, b"lost", b"", store.r) is None
    store.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_group_sqlite_rolls_back_on_a_full_disk_acknowledges_none_of_its_writes(tmp_path: Path) -> None:
    """SQLITE_FULL while a group spills to disk rolls back the whole group (every SAVEPOINT in
    it): the writes made before the failing one must not be acknowledged as durable."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], check=True)
    try:
        store = ItemStore(mnt / "ddb.sqlite3")
        store.w.execute("PRAGMA cache_size=-500")  # a group spills to the WAL after ~500 KB

        async def run() -> None:
            with store.write():
                store.put(1, b"first", b"", {"pk": {"S": "first"}}, 5)
            first = asyncio.ensure_future(store.durable())  # asks only after the group is lost
            with pytest.raises(sqlite3.OperationalError):
                for i in range(1000):
                    with store.write():
                        store.put(1, b"k%d" % i, b"", {"d": {"B": os.urandom(100_000)}}, 100_000)
            assert not store.w.in_transaction  # SQLite rolled the group back itself
            with pytest.raises(sqlite3.OperationalError, match="full"):
                await first
            subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)], check=True)
            with store.write():  # the next group works once there is room again
                store.put(1, b"second", b"", {"pk": {"S": "second"}}, 6)
            await store.durable()

        asyncio.run(run())
        assert store.get(1, b"first", b"", store.r) is None
        assert store.get(1, b"second", b"", store.r) is not None
        store.close()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
