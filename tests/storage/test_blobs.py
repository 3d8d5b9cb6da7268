"""The blob store: atomic publish, temp files swept, ids that cannot name a path.

The metadata store's contract is test_contract.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from strata.storage import BlobStore


def test_blob_publish_is_atomic_and_temp_files_are_swept(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    tmp, fh = blobs.open_temp()
    fh.write(b"hello")
    fh.close()
    blob_id = blobs.publish(tmp)
    assert blobs.path(blob_id).read_bytes() == b"hello"
    assert not tmp.exists()
    leftover, fh = blobs.open_temp()
    fh.write(b"half")
    fh.close()
    assert BlobStore(tmp_path).sweep_temp() == 0  # its writer is alive: an unfinished write
    assert leftover.exists()
    os.close(blobs._lock_fd)  # type: ignore[arg-type]  # the writer dies (no clean close)
    assert BlobStore(tmp_path).sweep_temp() == 1
    assert not leftover.exists()
    with pytest.raises(ValueError):
        blobs.path("../../etc/passwd")


def test_a_store_sharing_the_directory_collects_only_dead_writers_blobs(tmp_path: Path) -> None:
    """Gateways sharing a blob directory: an unreferenced blob of a live store is its in-flight
    write (published, its row not committed yet), never garbage; a dead store's is."""
    writer, other = BlobStore(tmp_path), BlobStore(tmp_path)
    tmp, fh = writer.open_temp()
    fh.write(b"in flight")
    fh.close()
    in_flight = writer.publish(tmp)
    old_layout = "ab" * 16  # an id from before instances: no writer to wait for
    writer.path(old_layout).parent.mkdir(parents=True)
    writer.path(old_layout).write_bytes(b"orphan")
    assert other.collectable({in_flight, old_layout}) == {old_layout}
    assert writer.alive(other.instance) and other.alive(writer.instance)
    writer.close()  # a clean stop gives its instance up
    assert other.collectable({in_flight}) == {in_flight}
    assert not other.alive(writer.instance)
    other.close()
