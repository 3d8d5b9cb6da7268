"""The item store on strata.storage's group commit (COMMIT on the loop, fsync in a thread).

Concurrent writers are acknowledged only after their group is committed; writes go on while a
group's fsync is in flight; WAL checkpoints happen in their thread; everything acknowledged is
there after the store is closed and opened again.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from strata.services.dynamodb.store import ItemStore
from strata.storage import group_commit


async def _writer(store: ItemStore, worker: int, count: int, acked: list[bytes]) -> None:
    for i in range(count):
        pk = f"w{worker}-{i}".encode()
        await store.db.write(lambda pk=pk: store.put(1, pk, b"", {"pk": {"S": pk.decode()}}, 10))
        acked.append(pk)


@pytest.mark.parametrize("fsync", [True, False])
def test_acknowledged_writes_are_committed_and_survive_reopen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsync: bool
) -> None:
    monkeypatch.setattr(group_commit, "CHECKPOINT_FRAMES", 3)  # exercise checkpoints in a short run
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

    def failing() -> None:
        store.put(1, b"lost", b"", {"pk": {"S": "lost"}}, 4)
        raise RuntimeError("condition failed")

    async def run() -> None:
        kept = asyncio.ensure_future(
            store.db.write(lambda: store.put(1, b"kept", b"", {"pk": {"S": "kept"}}, 4))
        )
        await asyncio.sleep(0)  # "kept" is written: the failing write joins its open group
        with pytest.raises(RuntimeError):
            await store.db.write(failing)
        await kept

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
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], capture_output=True, text=True
    )
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        store = ItemStore(mnt / "ddb.sqlite3")
        store.w.execute("PRAGMA cache_size=-500")  # a group spills to the WAL after ~500 KB

        def put(pk: bytes, size: int) -> Callable[[], None]:
            return lambda: store.put(1, pk, b"", {"d": {"B": os.urandom(size)}}, size)

        async def run() -> None:
            # Created in one loop turn: all are applied to the group before it commits.
            first = asyncio.ensure_future(store.db.write(put(b"first", 5)))
            rest = [asyncio.ensure_future(store.db.write(put(b"k%d" % i, 100_000))) for i in range(120)]
            await asyncio.gather(*rest, return_exceptions=True)
            with pytest.raises(sqlite3.OperationalError, match="full"):
                await first
            subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)], check=True)
            await store.db.write(put(b"second", 6))  # the next group works once there is room again

        asyncio.run(run())
        assert store.get(1, b"first", b"", store.r) is None
        assert store.get(1, b"second", b"", store.r) is not None
        store.close()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
