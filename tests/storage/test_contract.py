"""The metadata-store contract (strata/storage/interface.py): every backend must pass all of it.

Transactions are all-or-nothing; writes are isolated (read-check-write inside `write(fn)` loses
no update and lets exactly one of racing conditional inserts win); readers see committed data
only; acknowledged writes survive kill -9; listings come in code point order and page by their
last id; two processes (two gateways) writing the same keys lose no update either. Parametrized
by backend: SQLite (writes applied on the event loop, or in the writer thread) and PostgreSQL (a
throwaway server of tests/storage/conftest.py; a store per test, named after its tmp path).
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest

from strata.storage import MetadataStore
from strata.storage.interface import MetadataBackend
from strata.storage.postgres import PostgresStore
from tests.storage.conftest import DSN_VAR


def _postgres(path: Path, *, schema: str = "") -> PostgresStore:
    """The store a path names on the test server (the same in a writer subprocess)."""
    name = "t_" + hashlib.sha1(str(path).encode()).hexdigest()[:16]
    return PostgresStore(os.environ[DSN_VAR], name, schema=schema)


BACKENDS: dict[str, Callable[..., MetadataBackend]] = {
    "sqlite": MetadataStore,
    "sqlite-writer-thread": partial(MetadataStore, apply_in="thread"),
    "postgresql": _postgres,
}
SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (k BLOB PRIMARY KEY);
"""


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql":
        request.getfixturevalue("pg_node")  # the server, started once per session
    return request.param


@pytest.fixture
def store(backend: str, tmp_path: Path):  # noqa: ANN201
    s = BACKENDS[backend](tmp_path / "meta.db", schema=SCHEMA)
    yield s
    s.close()


def _value(store: MetadataBackend, k: str) -> int | None:
    row = store.query_one("SELECT v FROM kv WHERE k = ?", (k,))
    return row[0] if row else None


# -- transactions --------------------------------------------------------------------------------


def test_transaction_is_all_or_nothing(store: MetadataBackend) -> None:
    with store.transaction() as c:
        c.execute("INSERT INTO kv VALUES ('a', 1)")
    with pytest.raises(RuntimeError), store.transaction():
        store.execute("INSERT INTO kv VALUES ('b', 2)")
        raise RuntimeError("boom")
    assert [r[0] for r in store.query("SELECT k FROM kv")] == ["a"]


def test_nested_transaction_joins_the_outer_one(store: MetadataBackend) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        with store.transaction():
            store.execute("INSERT INTO kv VALUES ('inner', 1)")
        raise RuntimeError("outer fails")
    assert _value(store, "inner") is None


def test_write_returns_its_result_and_a_failure_undoes_only_itself(store: MetadataBackend) -> None:
    def failing() -> None:
        store.execute("INSERT INTO kv VALUES ('lost', 1)")
        raise KeyError("condition failed")

    async def run() -> list:
        return await asyncio.gather(
            store.write(lambda: store.execute("INSERT INTO kv VALUES ('x', 1)").rowcount),
            store.write(failing),
            store.write(lambda: store.execute("INSERT INTO kv VALUES ('y', 2)").rowcount),
            return_exceptions=True,
        )

    first, second, third = asyncio.run(run())
    assert (first, third) == (1, 1)
    assert isinstance(second, KeyError)
    assert [(r[0], r[1]) for r in store.query("SELECT k, v FROM kv ORDER BY k")] == [("x", 1), ("y", 2)]


def test_a_failed_statement_undoes_only_its_own_write(store: MetadataBackend) -> None:
    """A statement the database refuses (a duplicate key) fails its write alone, in whichever group
    of writes it lands: PostgreSQL aborts the transaction up to the write's SAVEPOINT."""
    store.executescript("INSERT INTO kv VALUES ('dup', 0);")

    def put(k: str) -> int:
        store.execute("INSERT INTO kv VALUES (?, 1)", (k,))
        return store.query_one("SELECT count(*) FROM kv")[0]

    async def run() -> list:
        return await asyncio.gather(
            *(store.write(lambda k=k: put(k)) for k in ["p0", "dup", "p1", "dup", "p2"]),
            return_exceptions=True,
        )

    results = asyncio.run(run())
    assert [isinstance(r, Exception) for r in results] == [False, True, False, True, False]
    assert {r[0] for r in store.query("SELECT k FROM kv")} == {"dup", "p0", "p1", "p2"}
    asyncio.run(store.write(lambda: put("p3")))  # the writer goes on
    assert _value(store, "p3") == 1


def test_a_cancelled_writer_still_commits(store: MetadataBackend) -> None:
    async def run() -> None:
        task = asyncio.ensure_future(store.write(lambda: store.execute("INSERT INTO kv VALUES ('c', 1)")))
        await asyncio.sleep(0)  # its statements ran; it waits for durability
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.write(lambda: None)  # a later write's durability covers the earlier one

    asyncio.run(run())
    assert _value(store, "c") == 1


# -- isolation -----------------------------------------------------------------------------------


def test_read_check_write_inside_write_loses_no_update(store: MetadataBackend) -> None:
    store.executescript("INSERT INTO kv VALUES ('n', 0);")

    def bump() -> None:
        n = store.query_one("SELECT v FROM kv WHERE k = 'n'")[0]
        store.execute("UPDATE kv SET v = ? WHERE k = 'n'", (n + 1,))

    def sync_bumps() -> None:
        for _ in range(50):
            with store.transaction():
                bump()

    async def run() -> None:
        await asyncio.gather(*(store.write(bump) for _ in range(200)))

    t = threading.Thread(target=sync_bumps)  # synchronous writers of another thread meanwhile
    t.start()
    asyncio.run(run())
    t.join()
    assert _value(store, "n") == 250


def test_exactly_one_of_racing_conditional_inserts_wins(store: MetadataBackend) -> None:
    def insert_if_absent(i: int) -> bool:
        if store.query_one("SELECT 1 FROM kv WHERE k = 'once'") is not None:
            return False
        store.execute("INSERT INTO kv VALUES ('once', ?)", (i,))
        return True

    async def run() -> list[bool]:
        return await asyncio.gather(*(store.write(lambda i=i: insert_if_absent(i)) for i in range(100)))

    wins = asyncio.run(run())
    assert wins.count(True) == 1
    assert _value(store, "once") == wins.index(True)


def test_readers_see_committed_data_only(store: MetadataBackend) -> None:
    seen: dict[str, object] = {}

    def write() -> None:
        store.execute("INSERT INTO kv VALUES ('r', 7)")
        seen["inside"] = _value(store, "r")  # the write's own statements
        seen["reader"] = store.reader().execute("SELECT v FROM kv WHERE k = 'r'").fetchone()

    asyncio.run(store.write(write))
    assert seen == {"inside": 7, "reader": None}
    assert _value(store, "r") == 7
    assert store.reader().execute("SELECT v FROM kv WHERE k = 'r'").fetchone()[0] == 7


def test_read_answers_committed_data_in_the_callers_context_and_raises_its_error(
    store: MetadataBackend,
) -> None:
    """`read(fn)`: fn's result or exception, fn in the caller's contextvars (PostgreSQL: in a read
    thread, so the event loop serves others meanwhile; SQLite: at once)."""
    asyncio.run(store.write(lambda: store.execute("INSERT INTO kv VALUES ('c', 3)")))
    var: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="")

    async def reads() -> tuple[object, str]:
        var.set("request")
        return await store.read(lambda: (_value(store, "c"), var.get()))

    assert asyncio.run(reads()) == (3, "request")

    def fails() -> None:
        store.execute("SELECT no_such_column FROM kv")

    with pytest.raises(Exception, match="no_such_column"):
        asyncio.run(store.read(fails))


def test_snapshot_reads_one_state(store: MetadataBackend) -> None:
    store.put_doc("k", "a", {"v": 1})
    with store.snapshot() as c:
        before = c.execute("SELECT count(*) FROM documents").fetchone()[0]
        t = threading.Thread(target=store.put_doc, args=("k", "b", {"v": 2}))
        t.start()
        t.join()
        assert c.execute("SELECT count(*) FROM documents").fetchone()[0] == before
    assert store.get_doc("k", "b") == {"v": 2}


# -- ordering and pagination ---------------------------------------------------------------------

IDS = ["a", "B", "a\x01", "ab", "é", "z", "~", "\u00ff", "\u0800", "\uffef", "\U0001f600", "0", " "]


def test_listings_are_in_code_point_order_and_page_by_last_id(store: MetadataBackend) -> None:
    for i in IDS:
        store.put_doc("item", i, {"id": i})
    store.put_doc("other", "a", {"id": "not this kind"})
    assert [d["id"] for d in store.list_docs("item")] == sorted(IDS)
    pages, after = [], ""
    while True:
        page = store.list_docs("item", after=after, limit=4)
        if not page:
            break
        pages.append([d["id"] for d in page])
        after = page[-1]["id"]
        if len(pages) == 1:  # written between pages: ids after the token show up, before it do not
            store.put_doc("item", "\U0010fffd", {"id": "\U0010fffd"})
            store.put_doc("item", "\x00", {"id": "\x00"})
    assert [i for p in pages for i in p] == sorted([*IDS, "\U0010fffd"])
    assert all(len(p) <= 4 for p in pages)
    assert [d["id"] for d in store.list_docs("item", "a")] == ["a", "a\x01", "ab"]
    assert [d["id"] for d in store.list_docs("item", "a", after="a\x01")] == ["ab"]


def test_blob_keys_order_bytewise(store: MetadataBackend) -> None:
    keys = [b"", b"\x00", b"\x00\x00", b"\x01", b"\x7f", b"\x80", b"\xff", b"\xff\x00", b"a", b"ab"]

    def write() -> None:
        for k in reversed(keys):
            store.execute("INSERT INTO blobs VALUES (?)", (k,))

    asyncio.run(store.write(write))
    assert [bytes(r[0]) for r in store.query("SELECT k FROM blobs ORDER BY k")] == sorted(keys)
    after = [bytes(r[0]) for r in store.query("SELECT k FROM blobs WHERE k > ? ORDER BY k", (b"\x7f",))]
    assert after == [k for k in sorted(keys) if k > b"\x7f"]


def test_documents_roundtrip(store: MetadataBackend) -> None:
    store.put_doc("db", "alpha-1", {"n": 1})
    store.put_doc("db", "alpha-1", {"n": 10})
    assert store.get_doc("db", "alpha-1") == {"n": 10}
    assert store.delete_doc("db", "alpha-1")
    assert not store.delete_doc("db", "alpha-1")
    assert store.get_doc("db", "alpha-1") is None


# -- crash safety --------------------------------------------------------------------------------

_ASYNC_WRITER = """
import asyncio, sys
from pathlib import Path
from tests.storage.test_contract import BACKENDS, SCHEMA
store = BACKENDS[sys.argv[1]](Path(sys.argv[2]), schema=SCHEMA)

async def writer(w):
    for i in range(10**9):
        k = f"{w}-{i}"
        await store.write(lambda: store.execute("INSERT INTO kv VALUES (?, ?)", (k, i)))
        print(k, flush=True)

async def main():
    await asyncio.gather(*(writer(w) for w in range(8)))

asyncio.run(main())
"""

_SYNC_WRITER = """
import sys
from pathlib import Path
from tests.storage.test_contract import BACKENDS, SCHEMA
store = BACKENDS[sys.argv[1]](Path(sys.argv[2]), schema=SCHEMA)
for i in range(10**9):
    with store.transaction():
        store.execute("INSERT INTO kv VALUES (?, ?)", (f"s-{i}", i))
    print(f"s-{i}", flush=True)
"""


@pytest.mark.parametrize("script", [_ASYNC_WRITER, _SYNC_WRITER], ids=["write", "transaction"])
def test_acknowledged_writes_survive_kill_9(
    backend: str, tmp_path: Path, script: str, request: pytest.FixtureRequest
) -> None:
    """SQLite: kill -9 of the writing process. PostgreSQL: kill -9 of the whole server while writes
    are in flight (the store lives there), then of the writer; the server is started again."""
    path = tmp_path / "meta.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", script, backend, str(path)], stdout=subprocess.PIPE, text=True
    )
    acknowledged: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        acknowledged.append(line.strip())
        if len(acknowledged) >= 400:
            break
    if backend == "postgresql":
        node = request.getfixturevalue("pg_node")
        node.kill()
        try:  # what the writer acknowledged until it failed
            rest = proc.communicate(timeout=120)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            rest = proc.communicate()[0]
        acknowledged += rest.split()
        node.start()
    proc.kill()
    proc.wait()
    store = BACKENDS[backend](path, schema=SCHEMA)
    try:
        present = {r[0] for r in store.query("SELECT k FROM kv")}
    finally:
        store.close()
    assert len(acknowledged) >= 400
    assert set(acknowledged) <= present


# -- two gateways --------------------------------------------------------------------------------

_GATEWAY = """
import asyncio, json, sys, time
from pathlib import Path
from tests.storage.test_contract import BACKENDS, SCHEMA
store = BACKENDS[sys.argv[1]](Path(sys.argv[2]), schema=SCHEMA)
me, go = int(sys.argv[3]), Path(sys.argv[4])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.005)

def bump():
    n = store.query_one("SELECT v FROM kv WHERE k = 'n'")[0]
    store.execute("UPDATE kv SET v = ? WHERE k = 'n'", (n + 1,))

def insert_if_absent(k):
    if store.query_one("SELECT 1 FROM kv WHERE k = ?", (k,)) is not None:
        return False
    store.execute("INSERT INTO kv VALUES (?, ?)", (k, me))
    return True

async def worker(w):
    wins = []
    for i in range(25):
        await store.write(bump)
        k = f"c-{(i * 8 + w) % 40}"
        if await store.write(lambda: insert_if_absent(k)):
            wins.append(k)
    return wins

async def main():
    return [k for ws in await asyncio.gather(*(worker(w) for w in range(8))) for k in ws]

print(json.dumps(asyncio.run(main())), flush=True)
store.close()
"""


def test_two_gateways_lose_no_update_and_one_conditional_insert_wins(backend: str, tmp_path: Path) -> None:
    """Two processes on one store (SQLite: one file; PostgreSQL: one schema), each 200
    read-modify-writes of one counter and 200 conditional inserts of the same 40 keys, at once."""
    path = tmp_path / "meta.db"
    s = BACKENDS[backend](path, schema=SCHEMA)
    s.executescript("INSERT INTO kv VALUES ('n', 0);")
    s.close()
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _GATEWAY, backend, str(path), str(me), str(go)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for me in (1, 2)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    go.touch()
    wins = {}
    for me, p in enumerate(procs, 1):
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        wins[me] = json.loads(out)
    s = BACKENDS[backend](path, schema=SCHEMA)
    try:
        assert _value(s, "n") == 400
        owners = {r[0]: r[1] for r in s.query("SELECT k, v FROM kv WHERE k LIKE 'c-%'")}
    finally:
        s.close()
    assert len(owners) == 40
    assert sorted(wins[1] + wins[2]) == sorted(owners)  # every key won once, by one process
    assert all(owners[k] == me for me in (1, 2) for k in wins[me])
