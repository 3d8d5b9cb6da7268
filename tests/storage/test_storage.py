"""Contract tests of the metadata and blob stores, including crash behaviour of a real process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from strata.storage import BlobStore, MetadataStore


def test_transaction_is_all_or_nothing(tmp_path: Path) -> None:
    store = MetadataStore(tmp_path / "m.db", schema="CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY);")
    with store.transaction():
        store.execute("INSERT INTO t VALUES ('a')")
    with pytest.raises(RuntimeError), store.transaction():
        store.execute("INSERT INTO t VALUES ('b')")
        raise RuntimeError("boom")
    assert [r[0] for r in store.query("SELECT k FROM t")] == ["a"]


def test_documents_roundtrip_and_prefix_listing(tmp_path: Path) -> None:
    store = MetadataStore(tmp_path / "m.db")
    store.put_doc("db", "alpha-1", {"n": 1})
    store.put_doc("db", "alpha-2", {"n": 2})
    store.put_doc("db", "beta", {"n": 3})
    store.put_doc("db", "alpha-1", {"n": 10})
    assert store.get_doc("db", "alpha-1") == {"n": 10}
    assert [d["n"] for d in store.list_docs("db", "alpha")] == [10, 2]
    assert store.delete_doc("db", "beta")
    assert store.get_doc("db", "beta") is None


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


_WRITER = """
import sys
from pathlib import Path
from strata.storage import MetadataStore
store = MetadataStore(Path(sys.argv[1]), schema="CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY);")
i = 0
while True:
    with store.transaction():
        store.execute("INSERT INTO t VALUES (?)", (i,))
    print(i, flush=True)
    i += 1
"""


def test_acknowledged_commits_survive_kill_9(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(db)], stdout=subprocess.PIPE, text=True)
    acknowledged = -1
    assert proc.stdout is not None
    for line in proc.stdout:
        acknowledged = int(line)
        if acknowledged >= 200:
            break
    proc.kill()
    proc.wait()
    store = MetadataStore(db)
    keys = [r[0] for r in store.query("SELECT k FROM t ORDER BY k")]
    assert keys[: acknowledged + 1] == list(range(acknowledged + 1))
