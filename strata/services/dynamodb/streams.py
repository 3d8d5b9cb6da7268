"""DynamoDB Streams, the write side: a stream record for every item change of a table whose stream
is enabled, written in the same SQLite write as the change (so an acknowledged write's record
survives kill -9 with it), and pruned after 24 hours of simulated time.

    ddb_stream (seq, sid, at, ev, old, new)   seq the rowid; index (sid, seq): a stream's records
                                              are a range scan in order. Both B-trees are only
                                              appended to (a rowid table rather than WITHOUT
                                              ROWID: records of a few hundred bytes are cheaper
                                              to insert in one)

`sid` names one stream (each enabling of a table's stream starts a new one, with its own label
and ARN: `TableMeta.streams`); `seq` is one counter for the whole store, kept in memory and
advanced inside the write (writes are serialized, so sequence order is commit order and so the
order of changes per item). `ev` is the event (INSERT, MODIFY, REMOVE; +4: a TTL deletion; +8:
a change replicated from another region's replica of a global table),
`old` and `new` the item's stored bytes before and after (NULL: absent). Images are kept whole;
the view type is applied when the records are read, so a record costs no decoding: the new
image is the bytes the write stores anyway (encoded once), the old one the row's bytes, read
only when the caller did not load the old item. Tables without a stream pay one attribute test
(`meta.stream`) in `items.write`.

Shards are ranges of a stream's sequence numbers, kept in its metadata (`shards`: id, start,
end, parent): a record belongs to the shard whose range holds its number, so a record names no
shard. Closing a shard (rolled over by the scheduler after four hours, or the stream disabled)
sets its end to the counter inside a write; the child starts at a number reserved then.

The counter survives restarts: at start it is the largest of the last record's sequence number,
each stream's start and the value saved by every prune (records all pruned leave no row to find
it by).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime

from strata.services.dynamodb.errors import validation
from strata.services.dynamodb.store import ItemStore, dumps, loads
from strata.services.dynamodb.tables import TableMeta
from strata.sim.clock import clock

SCHEMA = """
CREATE TABLE IF NOT EXISTS ddb_stream (
    seq INTEGER PRIMARY KEY,
    sid INTEGER NOT NULL,
    at REAL NOT NULL,
    ev INTEGER NOT NULL,
    old BLOB,
    new BLOB
);
CREATE INDEX IF NOT EXISTS ddb_stream_sid ON ddb_stream(sid, seq);
"""

RETENTION = 86400.0  # records are readable for 24 hours
SHARD_HOURS = 4  # a shard is closed and a child opened after about four hours
VIEW_TYPES = ("KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES")
_INSERT = "INSERT INTO ddb_stream(sid, seq, at, ev, old, new) VALUES (?,?,?,?,?,?)"
_OLD = "SELECT item FROM ddb_items WHERE tid = ? AND pk = ? AND sk = ?"
EVENTS = ("INSERT", "MODIFY", "REMOVE")
TTL = 4
REPLICATED = 8  # a change replicated from another replica of a global table (replication.py)


def attach(store: ItemStore, metas: list[TableMeta]) -> None:
    """Create the records table and set the store's sequence counter (at start-up)."""
    store.db.executescript(SCHEMA)
    row = store.w.execute("SELECT value FROM ddb_counters WHERE name = 'stream_seq'").fetchone()
    last = max(
        row[0] if row else 0, store.w.execute("SELECT coalesce(max(seq), 0) FROM ddb_stream").fetchone()[0]
    )
    for meta in metas:
        if meta.stream and not meta.streams:
            meta.stream = None  # set by a version that accepted it without serving streams
        for s in meta.streams:
            last = max(last, s["start"])
    store.stream_seq = last
    if store.postgres:  # the counter of every gateway: its row, from now on (next_seq)
        with store.write() as c:
            c.execute(_SHARED_SEQ, (last,))


# With several gateways (PostgreSQL) the counter is one row that every record's write advances
# under the store's lock, so sequence numbers stay unique and in commit order across gateways.
_SHARED_SEQ = (
    "INSERT INTO ddb_counters(name, value) VALUES ('stream_seq', ?) "
    "ON CONFLICT(name) DO UPDATE SET value = GREATEST(ddb_counters.value, excluded.value) RETURNING value"
)
_SHARED_NEXT = (
    "INSERT INTO ddb_counters(name, value) VALUES ('stream_seq', 1) "
    "ON CONFLICT(name) DO UPDATE SET value = ddb_counters.value + 1 RETURNING value"
)


def next_seq(store: ItemStore) -> int:
    """A new sequence number (inside a write)."""
    if store.postgres:
        store.stream_seq = store.w.execute(_SHARED_NEXT).fetchone()[0]
        return store.stream_seq
    store.stream_seq += 1
    return store.stream_seq


def current_seq(store: ItemStore) -> int:
    """The last sequence number given (inside a write: shards closed at it, replication cursors)."""
    if store.postgres:
        store.stream_seq = store.w.execute(_SHARED_SEQ, (store.stream_seq,)).fetchone()[0]
    return store.stream_seq


def last_seq(store: ItemStore, sid: int, end: int | None = None) -> int:
    """The sequence number of a stream's last committed record (up to `end`; 0: none)."""
    row = store.r.execute(
        "SELECT seq FROM ddb_stream WHERE sid = ? AND seq <= ? ORDER BY seq DESC LIMIT 1",
        (sid, end if end is not None else 2**62),
    ).fetchone()
    return row[0] if row else 0


def record(
    store: ItemStore,
    meta: TableMeta,
    pk: bytes,
    sk: bytes,
    old: dict | None,
    old_size: int | None,
    new: dict | None,
    new_blob: bytes | None,
    by_ttl: bool,
    replicated: bool = False,
) -> tuple[float, int] | None:
    """Add the stream record of a change about to be written (inside the write, before it);
    nothing when it changes nothing (a delete of a missing item, a put of the same item).
    The record's (time, sequence number), None when there is none.

    `old` may be None while the item exists (old_size set: a PutItem that did not need it);
    `new_blob` is `new` encoded, the bytes the write stores. `replicated`: a change another
    replica of a global table made (replication.py does not send it back)."""
    if old_size is None:
        if new is None:
            return None
        ev, old_blob = 0, None
    else:
        if old is not None:
            if old == new:
                return None
            old_blob = dumps(old)
        else:
            old_blob = store.w.execute(_OLD, (meta.tid, pk, sk)).fetchone()[0]
            if new_blob is not None and len(old_blob) == len(new_blob):
                # The same bytes, or the same attributes in another order: nothing changed.
                if old_blob == new_blob or loads(old_blob) == new:
                    return None
        ev = 1 if new is not None else 2
    if by_ttl:
        ev += TTL
    if replicated:
        ev |= REPLICATED
    sid = meta.streams[-1]["sid"]
    at, seq = clock.time(), next_seq(store)
    store.w.execute(_INSERT, (sid, seq, at, ev, old_blob, new_blob))
    return at, seq


def check_spec(spec: dict, current: dict | None, updating: bool, table: str) -> str | None:
    """The view type a StreamSpecification enables (None: it disables or leaves off), with
    DynamoDB's errors for a missing or invalid view type and for no change."""
    enabled = spec.get("StreamEnabled")
    view = spec.get("StreamViewType")
    if enabled is None:
        raise validation(
            "1 validation error detected: Value null at 'streamSpecification.streamEnabled' failed to "
            "satisfy constraint: Member must not be null"
        )
    if view is not None and view not in VIEW_TYPES:
        raise validation(
            f"1 validation error detected: Value '{view}' at 'streamSpecification.streamViewType' failed to "
            "satisfy constraint: Member must satisfy enum value set: [NEW_IMAGE, OLD_IMAGE, "
            "NEW_AND_OLD_IMAGES, KEYS_ONLY]"
        )
    if not enabled:
        if view is not None:
            raise validation(
                "One or more parameter values were invalid: Disabled stream must not specify StreamViewType"
            )
        if updating and current is None:
            raise validation(f"Table does not have a stream to disable: TableName: {table}")
        return None
    if view is None:
        raise validation(
            "One or more parameter values were invalid: Enabled stream must specify a StreamViewType"
        )
    if updating and current is not None:
        raise validation(f"Table already has an enabled stream: TableName: {table}")
    return view


def enable(store: ItemStore, meta: TableMeta, view_type: str) -> None:
    """Start a new stream on the table (inside a write): a fresh id, label and start position."""
    now = clock.time()
    label = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    if meta.streams and meta.streams[-1]["label"] >= label:  # two in one millisecond
        label = meta.streams[-1]["label"] + "1"
    start = next_seq(store)
    sid = store.next_id("stream")
    meta.streams.append(
        {
            "sid": sid,
            "label": label,
            "view": view_type,
            "created": now,
            "start": start,
            "disabled": None,
            "shards": [_shard(sid, 0, start, now, None)],
        }
    )
    meta.stream = {"StreamEnabled": True, "StreamViewType": view_type}


def _shard(sid: int, n: int, start: int, now: float, parent: str | None) -> dict:
    """A shard: the stream's records with start < seq <= end (end None: open)."""
    return {
        "id": f"shardId-{int(now * 1000):020d}-{sid & 0xFFFF:04x}{n & 0xFFFF:04x}",
        "start": start,
        "end": None,
        "parent": parent,
        "created": now,
    }


def disable(store: ItemStore, meta: TableMeta) -> None:
    """Close the table's current stream and its open shard (inside a write): it stays readable
    until its records age out."""
    if meta.streams and meta.streams[-1]["disabled"] is None:
        meta.streams[-1]["disabled"] = clock.time()
        meta.streams[-1]["shards"][-1]["end"] = current_seq(store)
    meta.stream = None


def roll(store: ItemStore, meta: TableMeta, now: float) -> bool:
    """Close the open shard of the table's stream and open its child, when the shard is
    SHARD_HOURS old (inside a write); whether it did. DynamoDB's shards roll over about every
    four hours; a consumer then reads the parent to its end before the child.

    Streams disabled for 24 hours (their records pruned) are forgotten here too, but for the
    latest, which DescribeTable still names."""
    if len(meta.streams) > 1:
        kept = [s for s in meta.streams[:-1] if s["disabled"] is None or now - s["disabled"] < RETENTION]
        if len(kept) != len(meta.streams) - 1:
            meta.streams[:-1] = kept
            store.save_meta(meta.to_json())
    if not meta.stream or not meta.streams:
        return False
    s = meta.streams[-1]
    current = s["shards"][-1]
    if now - current["created"] < SHARD_HOURS * 3600:
        return False
    current["end"] = current_seq(store)
    s["shards"].append(_shard(s["sid"], len(s["shards"]), next_seq(store), now, current["id"]))
    store.save_meta(meta.to_json())
    return True


RETIRED = "ddb-retired-streams"  # documents: the streams of deleted tables, readable 24 hours


def retire(store: ItemStore, meta: TableMeta) -> bool:
    """Keep a deleted table's streams readable for 24 hours, as DynamoDB does (inside a write):
    the stream is disabled and the table's metadata kept as a document; whether it had any."""
    if not meta.streams:
        return False
    disable(store, meta)
    store.db.put_doc(RETIRED, retired_id(meta), {"meta": meta.to_json(), "deleted": clock.time()})
    return True


def retired_id(meta: TableMeta) -> str:
    return f"{meta.arn}#{meta.table_id}"


def load_retired(store: ItemStore) -> dict[str, TableMeta]:
    return {
        retired_id(m): m for m in (TableMeta.from_json(doc["meta"]) for doc in store.db.list_docs(RETIRED))
    }


def expire_retired(store: ItemStore, retired: dict[str, TableMeta], now: float) -> int:
    """Forget deleted tables' streams 24 hours after their last record (inside a write)."""
    gone = [
        key
        for key, meta in retired.items()
        if all(s["disabled"] is not None and now - s["disabled"] >= RETENTION for s in meta.streams)
    ]
    for key in gone:
        for s in retired[key].streams:
            store.w.execute("DELETE FROM ddb_stream WHERE sid = ?", (s["sid"],))
        store.db.delete_doc(RETIRED, key)
        del retired[key]
    return len(gone)


def read(
    store: ItemStore, sid: int, after: int, end: int | None, limit: int
) -> Iterator[tuple[int, float, tuple]]:
    """Up to `limit` committed records of a stream after sequence number `after` (to `end` for a
    closed shard), decoded as the caller takes them: (seq, at, (event name, old image, new image,
    by TTL))."""
    rows = store.r.execute(
        "SELECT seq, at, ev, old, new FROM ddb_stream WHERE sid = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
        (sid, after, end if end is not None else 2**62, limit),
    )
    for seq, at, ev, old, new in rows:
        yield (
            seq,
            at,
            (EVENTS[ev & 3], loads(old) if old else None, loads(new) if new else None, bool(ev & TTL)),
        )


def first_seq(store: ItemStore, sid: int, after: int, end: int | None) -> int | None:
    """The sequence number of a shard's first record still kept (None: none)."""
    row = store.r.execute(
        "SELECT seq FROM ddb_stream WHERE sid = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT 1",
        (sid, after, end if end is not None else 2**62),
    ).fetchone()
    return row[0] if row else None


def prune_chunk(store: ItemStore, sids: list[int], before: float, held: dict[int, int] | None = None) -> int:
    """Delete records older than `before` (inside a write); save the counter first. `held`: per
    stream, the last record every replica of its global table has (later ones are kept)."""
    if store.postgres:
        current_seq(store)  # the row is the counter itself: it only ever grows
    else:
        store.w.execute(
            "INSERT INTO ddb_counters(name, value) VALUES ('stream_seq', ?) "
            "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            (store.stream_seq,),
        )
    n = 0
    for sid in sids:
        row = store.w.execute(
            "SELECT seq FROM ddb_stream WHERE sid = ? AND at >= ? ORDER BY seq LIMIT 1", (sid, before)
        ).fetchone()
        bound = row[0] if row is not None else 2**62
        if held and sid in held:
            bound = min(bound, held[sid] + 1)
        gone = store.w.execute(
            "SELECT max(seq) FROM ddb_stream WHERE sid = ? AND seq < ?", (sid, bound)
        ).fetchone()[0]
        if gone is None:
            continue
        # The trim horizon: every record of the stream up to `gone` is no longer readable.
        store.w.execute(
            "INSERT INTO ddb_counters(name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = "
            "CASE WHEN excluded.value > ddb_counters.value THEN excluded.value ELSE ddb_counters.value END",
            (f"stream_trim:{sid}", gone),
        )
        n += store.w.execute("DELETE FROM ddb_stream WHERE sid = ? AND seq < ?", (sid, bound)).rowcount
    return n


def trimmed(store: ItemStore, sid: int) -> int:
    """The last sequence number of a stream whose record has been pruned (0: none yet)."""
    row = store.r.execute("SELECT value FROM ddb_counters WHERE name = ?", (f"stream_trim:{sid}",)).fetchone()
    return row[0] if row else 0


def rule(
    tables: Callable[[], list[TableMeta]],
    store: ItemStore,
    retired: dict[str, TableMeta] | None = None,
    held: Callable[[], dict[int, int]] | None = None,
) -> Callable[[float, float], Awaitable[dict]]:
    """The scheduler's `dynamodb.streams` rule: records older than 24 hours are deleted (but for
    those a replica of a global table has yet to receive: `held`), shards open for four hours
    roll over to a child, deleted tables' streams are forgotten after 24 hours."""
    kept: dict[str, TableMeta] = retired if retired is not None else {}

    async def run(since: float, until: float) -> dict[str, int]:
        before = until - RETENTION
        sids = [s["sid"] for m in [*tables(), *kept.values()] for s in m.streams]
        kept_for = held() if held is not None else None
        n = await store.db.write(lambda: prune_chunk(store, sids, before, kept_for))
        # The tables as published when the write runs (UpdateTable publishes inside its write).
        rolled = await store.db.write(lambda: sum(roll(store, m, until) for m in tables()))
        expired = await store.db.write(lambda: expire_retired(store, kept, until)) if kept else 0
        return {"pruned": n, "shards_rolled": rolled, "deleted_tables_forgotten": expired}

    return run
