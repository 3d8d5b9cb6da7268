"""Last-writer-wins versions of the items of global tables (replication.py).

    ddb_rep_versions (tid, pk, sk, at, seq)   WITHOUT ROWID: the version of the last change
                                              applied to an item of a replica table

A version is (at, seq): the simulated time of the change and its stream record's sequence
number, one counter for the whole store, so no two changes share a version and a later
commit at the same instant wins the tie. Every replica keeps the version of each item's last
change, local or replicated, deletions included (a tombstone), outside the item: DynamoDB's
2019.11.21 global tables expose no `aws:rep:*` attributes. A replicated change older than the
item's version is dropped, so replicas that took writes to one item concurrently converge on
the later one.
"""

from __future__ import annotations

from strata.services.dynamodb.store import ItemStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS ddb_rep_versions (
    tid INTEGER NOT NULL,
    pk BLOB NOT NULL,
    sk BLOB NOT NULL,
    at REAL NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (tid, pk, sk)
) WITHOUT ROWID;
"""

Version = tuple[float, int]


def stamp(store: ItemStore, tid: int, pk: bytes, sk: bytes, version: Version) -> None:
    """Record the version of the change just written to an item (inside the write)."""
    store.w.execute(
        "INSERT INTO ddb_rep_versions(tid, pk, sk, at, seq) VALUES (?,?,?,?,?) "
        "ON CONFLICT(tid, pk, sk) DO UPDATE SET at = excluded.at, seq = excluded.seq",
        (tid, pk, sk, version[0], version[1]),
    )


def version_of(store: ItemStore, tid: int, pk: bytes, sk: bytes) -> Version | None:
    """The version of an item's last change (None: none recorded since the table became global)."""
    row = store.w.execute(
        "SELECT at, seq FROM ddb_rep_versions WHERE tid = ? AND pk = ? AND sk = ?", (tid, pk, sk)
    ).fetchone()
    return (row[0], row[1]) if row else None


def forget(store: ItemStore, tid: int) -> None:
    """A table left its global table (or was deleted): its versions go (inside a write)."""
    store.w.execute("DELETE FROM ddb_rep_versions WHERE tid = ?", (tid,))
