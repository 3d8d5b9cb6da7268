"""The blob store: atomic publish, temp files swept, ids that cannot name a path.

The metadata store's contract is test_contract.py."""

from __future__ import annotations

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
    assert BlobStore(tmp_path).sweep_temp() == 1
    assert not leftover.exists()
    with pytest.raises(ValueError):
        blobs.path("../../etc/passwd")
