"""A plain volume's file and the snapshots taken from it, driven directly (no server), so the
moments that matter — a write landing while a snapshot's job has not read its block yet, a
restart that lost track of what changed — happen exactly when the test says."""

from __future__ import annotations

import os
from pathlib import Path

from strata.services.ec2.blocks import SCHEMA, BlockStore, Sealer
from strata.services.ec2.limits import BLOCK_SIZE
from strata.storage.metadata import MetadataStore

SIZE = 16 * BLOCK_SIZE


def open_store(root: Path) -> BlockStore:
    store = MetadataStore(root / "ec2.db", fsync=False, schema=SCHEMA)
    return BlockStore(store, root / "blocks", fsync=False)


def snapshot(blocks: BlockStore, dev, snapshot_id: str) -> list[int]:  # noqa: ANN001
    """Take a snapshot to the end; returns the indexes its job read from the file."""
    job = dev.start_snapshot(snapshot_id, lambda ref: True)
    dev.run_job(job)
    assert job.failed is None
    return job.order


def image(blocks: BlockStore, owner: str) -> bytes:
    out = bytearray(SIZE)
    for idx, block_id in blocks.block_map(owner).items():
        out[idx * BLOCK_SIZE : (idx + 1) * BLOCK_SIZE] = blocks.read_block(block_id, Sealer())
    return bytes(out)


def test_a_snapshot_is_the_volume_when_it_began_however_it_is_written_meanwhile(tmp_path: Path) -> None:
    blocks = open_store(tmp_path)
    dev = blocks.device("vol-1", SIZE, Sealer())
    first = os.urandom(4 * BLOCK_SIZE)
    dev.write(0, first)
    job = dev.start_snapshot("snap-1", lambda ref: True)
    # Before the job reads anything: a whole block, part of another, and one never written.
    dev.write(BLOCK_SIZE, b"\x01" * BLOCK_SIZE)
    dev.write(2 * BLOCK_SIZE + 100, b"\x02" * 1000)
    dev.write(9 * BLOCK_SIZE, b"\x03" * 10)
    dev.run_job(job)
    assert job.failed is None
    assert image(blocks, "snap-1") == first + bytes(SIZE - len(first))
    now = dev.read(0, 10 * BLOCK_SIZE)
    assert now[BLOCK_SIZE : 2 * BLOCK_SIZE] == b"\x01" * BLOCK_SIZE
    assert now[2 * BLOCK_SIZE + 100 : 2 * BLOCK_SIZE + 1100] == b"\x02" * 1000
    assert now[9 * BLOCK_SIZE : 9 * BLOCK_SIZE + 10] == b"\x03" * 10


def test_a_later_snapshot_reads_only_the_blocks_written_since(tmp_path: Path) -> None:
    blocks = open_store(tmp_path)
    dev = blocks.device("vol-1", SIZE, Sealer())
    dev.write(0, os.urandom(6 * BLOCK_SIZE))
    assert snapshot(blocks, dev, "snap-1") == [0, 1, 2, 3, 4, 5]
    dev.write(4 * BLOCK_SIZE + 7, b"changed")
    dev.zero(BLOCK_SIZE, BLOCK_SIZE)
    assert snapshot(blocks, dev, "snap-2") == [1, 4]
    expected = dev.read(0, SIZE)
    assert image(blocks, "snap-2") == expected
    assert sorted(blocks.block_map("snap-2")) == [0, 2, 3, 4, 5]  # the zeroed block takes no space
    assert blocks.stored_bytes("snap-2", besides="snap-1") == BLOCK_SIZE


def test_after_a_crash_the_next_snapshot_reads_every_written_block(tmp_path: Path) -> None:
    blocks = open_store(tmp_path)
    dev = blocks.device("vol-1", SIZE, Sealer())
    dev.write(0, os.urandom(3 * BLOCK_SIZE))
    snapshot(blocks, dev, "snap-1")
    dev.write(10 * BLOCK_SIZE, b"x" * 100)
    dev.flush()  # then the process dies: the device is never closed
    again = open_store(tmp_path).device("vol-1", SIZE, Sealer())
    assert again.changed is None
    assert snapshot(again.store, again, "snap-2") == [0, 1, 2, 10]
    assert again.store.stored_bytes("snap-2", besides="snap-1") == BLOCK_SIZE  # the rest is shared

    # A clean close keeps what changed: the next snapshot after it is incremental again.
    again.write(0, b"y")
    again.close()
    third = open_store(tmp_path).device("vol-1", SIZE, Sealer())
    assert third.changed == {0}


def test_a_restored_volume_reads_its_snapshot_until_written(tmp_path: Path) -> None:
    blocks = open_store(tmp_path)
    source = blocks.device("vol-1", SIZE, Sealer())
    data = os.urandom(2 * BLOCK_SIZE)
    source.write(0, data)
    snapshot(blocks, source, "snap-1")
    blocks.copy_map("snap-1", "vol-2")  # CreateVolume from the snapshot
    restored = blocks.device("vol-2", SIZE, Sealer())
    assert restored.read(0, 2 * BLOCK_SIZE) == data
    restored.write(10, b"new")
    assert restored.read(0, 2 * BLOCK_SIZE) == data[:10] + b"new" + data[13:]
    assert sorted(blocks.block_map("vol-2")) == [0, 1]  # until a flush makes the file durable
    restored.flush()
    assert sorted(blocks.block_map("vol-2")) == [1]
    assert restored.read(0, 2 * BLOCK_SIZE) == data[:10] + b"new" + data[13:]


def test_writes_racing_snapshots_are_all_in_the_next_one(tmp_path: Path) -> None:
    """Writers (many of their writes on the lock-free path, taken while no snapshot job runs)
    race snapshots starting and running; once they stop, one more snapshot must equal the
    volume: a write that landed as a snapshot began is in it or marked changed for the next."""
    import random
    import threading

    size = 128 * BLOCK_SIZE  # more blocks than the writers touch while one job runs
    blocks = open_store(tmp_path)
    dev = blocks.device("vol-1", size, Sealer())
    stop = threading.Event()  # set once the snapshots are done

    def writer(seed: int) -> None:
        rnd = random.Random(seed)
        while not stop.is_set():
            length = rnd.choice((512, 4096, BLOCK_SIZE))
            offset = rnd.randrange(size // BLOCK_SIZE) * BLOCK_SIZE + rnd.randrange(
                0, BLOCK_SIZE - length + 1, 512
            )
            dev.write(offset, rnd.randbytes(length))

    writers = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    for t in writers:
        t.start()
    try:
        for n in range(8):
            job = dev.start_snapshot(f"snap-{n}", lambda ref: True)
            dev.run_job(job)
            assert job.failed is None
            stop.wait(0.05)  # no job: the writers take the lock-free path
    finally:
        stop.set()
        for t in writers:
            t.join()
    snapshot(blocks, dev, "snap-last")
    saved = bytearray(size)
    for idx, block_id in blocks.block_map("snap-last").items():
        saved[idx * BLOCK_SIZE : (idx + 1) * BLOCK_SIZE] = blocks.read_block(block_id, Sealer())
    assert bytes(saved) == dev.read(0, size)
