"""Durable state: the metadata store and the blob store. Every durable write of Strata goes here.

Public API (stable: services and other packages persist through it):

    MetadataStore(path, *, fsync=True, schema="", apply_in="loop")
                                                       SQLite in WAL mode, one file per service;
                                                       write functions run on the caller's event
                                                       loop, or in the writer thread ("thread")
        await store.write(fn) -> fn()'s result         one atomic write, group-committed; returns
                                                       once durable (survives kill -9, and power
                                                       loss with fsync on)
        with store.transaction() as conn: ...          the same, synchronous; durable on exit
        store.conn / execute / executemany / query / query_one
                                                       inside a write: its connection; elsewhere
                                                       committed data only
        store.reader()                                 committed data only, always
        with store.snapshot() as conn: ...             several reads of one state
        store.executescript(sql)                       schema set-up and migrations
        put_doc(kind, id, body) / get_doc(kind, id) / list_docs(kind, prefix, after=, limit=) /
        delete_doc(kind, id)                           JSON resource records, listed in id order
        store.close()

    BlobStore(root, *, fsync=True)                     immutable files published atomically, in a
                                                       directory several gateways may share
        open_temp() / open_temp_fd() -> publish(tmp, id) or discard(tmp); path(id), delete(id),
        sweep_temp(), all_ids(), collectable(blobs) (start-up GC: dead writers' only),
        mark_freed(ids) / freed() / delete_freed(id) (unlinks waiting), close()
    blobs.instance_alive(root, instance), blobs.writer_of(id)
                                                       whether a blob's writer still runs (fsck)

    interface.MetadataBackend                          what every backend implements;
                                                       tests/storage/test_contract.py is its contract
    postgres.PostgresStore(dsn, name, *, schema="")    the PostgreSQL backend (several gateways): a
                                                       PostgreSQL schema per store, writes in its
                                                       writer thread under the store's advisory lock
                                                       (imported from its module: psycopg loads only
                                                       where it is used)

    shared.open_store(path, name, *, url, fsync, schema, apply_in)
                                                       a service's store: SQLite at `path`, or the
                                                       PostgreSQL store `name` with --metadata
    shared.Freshness(store, name)                      a change counter that per-process caches
                                                       check before use (several gateways)
    copy_rows.copy_store(sqlite_conn, pg_conn, name)   every table of a SQLite store into its
                                                       PostgreSQL store, by column (`strata migrate`)
    coordination.SharedSim(dsn)                        the clock's offset, the scheduler's owner
                                                       lock and rules' progress in PostgreSQL
    shared_tallies.SharedTallies(store)                every gateway's request counts (CloudWatch's
                                                       request metrics), moved once a second
    shared_faults.FaultSharing(sim)                    the engine host's FIS faults, on every gateway

A service keeps its schema and SQL in its own store module, runs each write operation as
`await store.write(fn)` (statements through `store.execute` or the connection it gives), and
never opens connections, commits or fsyncs itself. group_commit.py explains the commit strategy.
"""

from strata.storage.blobs import BlobStore
from strata.storage.metadata import MetadataStore

__all__ = ["BlobStore", "MetadataStore"]
