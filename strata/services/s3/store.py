"""S3's metadata: buckets, object versions, multipart uploads and parts, in the embedded SQLite
or (`--metadata postgresql://...`) in PostgreSQL; dialect.py spells what differs. The schema and
the row dataclasses are in rows.py, the statements of multipart uploads and parts in
upload_rows.py (a base class of S3Store); this module keeps buckets (and their cache) and objects.

Every object write is a row in `objects`, keyed by a growing sequence number (`id`) so the
versions of a key sort newest first (a small partial index finds a bucket's Intelligent-Tiering
objects). Two indexes make every listing a range scan:

- `objects_versions (bucket, key, id DESC)`: ListObjectVersions, and finding one key's versions;
- `objects_current (bucket, key) WHERE latest = 1 AND dm = 0`: the visible object of every key,
  which ListObjects(V2) scans from a start key forward. Its cost depends on the page size (and
  the number of common prefixes returned), never on the bucket size.

Bodies up to `Limits.inline_max` (64 KiB) live in the row's `data` column, so a small PUT is one
group-committed SQLite write. Larger bodies live in the BlobStore; a row is committed only after
its blob is published, and a blob is unlinked only after the row that referenced it is gone, so a
crash leaves at worst an orphan blob that start-up garbage collection removes.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from strata.protocol.errors import ServiceError
from strata.services.s3.dialect import PostgresDialect, SqliteDialect, nul_free, open_metadata
from strata.services.s3.names import MIN_BILLABLE_SIZE
from strata.services.s3.positions import version_id_at
from strata.services.s3.rows import OBJ_COLS, SCHEMA, BucketChanged, BucketRow, ObjectRow, prefix_end
from strata.services.s3.upload_rows import UploadRows

# Names the other S3 modules import from here (their rows live in rows.py).
__all__ = ["NEW_VERSION", "SCHEMA", "BucketChanged", "BucketRow", "ObjectRow", "S3Store", "prefix_end"]

NEW_VERSION = ""  # the version id of a row whose id `insert_version` chooses


def _request_task() -> object:
    """The asyncio task running on this thread, or None (a thread, no loop). The gateway runs
    each request in a task of its own, so the task names the request."""
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


# The bucket row `check_bucket` read for the request running in this context (name, row).
_CHECKED: contextvars.ContextVar[tuple[str, BucketRow] | None] = contextvars.ContextVar(
    "s3_checked_bucket", default=None
)


class SharedBucketRows:
    """`resource_rows` (strata.auth.enforce's short cut) on a store other gateways write too:
    each `get` is the store's checked lookup, so a remembered authorization decision is used only
    while the bucket's stored row is what it was when the decision was made."""

    __slots__ = ("_store",)

    def __init__(self, store: S3Store) -> None:
        self._store = store

    def get(self, name: object) -> BucketRow | None:
        return self._store.bucket(name) if type(name) is str else None


class S3Store(UploadRows):
    """The SQL of S3. Methods are short statements; writes run inside `db.write` (group commit)."""

    def __init__(self, path: Path, *, fsync: bool = True, metadata_url: str | None = None) -> None:
        self.db = open_metadata(path, SCHEMA, fsync=fsync, url=metadata_url)
        self.sql = PostgresDialect() if metadata_url else SqliteDialect()
        if "data" not in {d[0] for d in self.db.execute("SELECT * FROM objects LIMIT 0").description}:
            # Databases from before inlining.
            self.db.executescript("ALTER TABLE objects ADD COLUMN data BLOB")
        sc = self.sql.class_since
        self._lc_cols = f"id, key, version_id, dm, size, modified, storage_class, blob, {sc}"
        # Inserting a version: SQLite gives the new row's id as `lastrowid` (no RETURNING: it cost
        # an insert 3.6 us); PostgreSQL has no lastrowid, so it returns the id.
        self._insert_sql = f"INSERT INTO objects({OBJ_COLS}, data) VALUES (?,?,?,?,1,?,?,?,?,?,?,?,?)"
        self._bucket_sql = (
            "SELECT name, region, created, versioning, tags, config FROM buckets WHERE name = ?"
        )
        if self.sql.postgres:
            self._insert_sql += " RETURNING id"
            self._bucket_sql = self._bucket_sql.replace(" FROM", ", xmin::text FROM")
            # The same insert, made only while the bucket's row is the one read (its xmin): a
            # changed row inserts nothing (insert_version raises BucketChanged).
            self._insert_unchanged_sql = (
                f"INSERT INTO objects({OBJ_COLS}, data) SELECT ?,?,?,?,1,?,?,?,?,?,?,?,? WHERE EXISTS "
                "(SELECT 1 FROM buckets WHERE name = ? AND xmin::text = ?) RETURNING id"
            )
        # Per-process cache of bucket rows. With one gateway (SQLite) it is exact: every bucket
        # write goes through this process and drops the row. On PostgreSQL other gateways write
        # buckets too, so a cached row is used by a request only after one read of the stored row
        # in that request found it unchanged (`bucket`): a policy revoked on another gateway binds
        # the next request here, and the row's remembered authorization decisions live as long as
        # the row is unchanged.
        self._buckets: dict[str, BucketRow] = {}
        self.shared = self.sql.postgres
        # Called (on the event loop) when a cached lookup on a shared store finds a bucket's row
        # new to this gateway, changed, or gone (None): what the gateway keeps in memory per
        # bucket (request metrics, access logging) follows another gateway's change.
        self.on_bucket_changed: Callable[[str, BucketRow | None], None] | None = None
        self.resource_rows: dict[str, BucketRow] | SharedBucketRows = (
            SharedBucketRows(self) if self.shared else self._buckets
        )

    def refuse_key(self, key: str) -> None:
        """PostgreSQL's TEXT cannot hold NUL: such a key is refused there (SQLite stores it)."""
        if self.sql.postgres and "\x00" in key:
            raise ServiceError(
                "InvalidArgument",
                "Object keys containing NUL (U+0000) are not supported with PostgreSQL metadata",
                400,
                fields={"ArgumentName": "key"},
            )

    def close(self) -> None:
        self.db.close()

    # -- buckets ---------------------------------------------------------------------------------

    def bucket(self, name: str, *, cached: bool = True, task: object = None) -> BucketRow | None:
        """A bucket's row. The event-loop thread (the only writer of buckets) reads through a
        cache that every bucket write invalidates; other threads pass cached=False.

        On a shared store the first cached lookup of a request reads the stored row (one round
        trip) and keeps the cached row, with what was remembered on it, when the stored text is
        unchanged; later lookups of the same request (its asyncio task) use it without asking.
        `task`: the request, when the lookup runs in a read thread for it (`check_bucket`)."""
        hit = None
        if cached:
            if self.shared:
                checked = _CHECKED.get()
                if checked is not None and checked[0] == name:
                    return checked[1]  # checked for this request (`check_bucket`)
            hit = self._buckets.get(name)
            if hit is not None:
                if not self.shared:
                    return hit
                if task is None:
                    task = _request_task()
                if task is not None and hit.checked is task:
                    return hit
        if self.sql.postgres and "\x00" in name:
            return None  # (a name from a request path: no bucket has one)
        r = self.db.query_one(self._bucket_sql, (name,))
        if r is None:
            if hit is not None:
                self._buckets.pop(name, None)  # deleted by another gateway
                if self.on_bucket_changed is not None:
                    self.on_bucket_changed(name, None)
            return None
        xmin = r[6] if self.shared else None
        if hit is not None and hit.stored == r[3:6] and hit.region == r[1] and hit.created == r[2]:
            hit.checked, hit.xmin = task or _request_task(), xmin
            return hit
        row = BucketRow(
            r[0], r[1], r[2], r[3], json.loads(r[4]) if r[4] is not None else None, json.loads(r[5])
        )
        row.xmin = xmin
        if cached and not self.db.conn.in_transaction:
            if self.shared:
                row.stored, row.checked = tuple(r[3:6]), task or _request_task()
                if self.on_bucket_changed is not None:
                    self.on_bucket_changed(name, row)
            self._buckets[name] = row
        return row

    async def check_bucket(self, name: object, then: Callable[[BucketRow], Any] | None = None) -> Any:
        """On a shared store, the request's first lookup of its bucket (`bucket`), made in the
        store's read threads: its later lookups (authorization's, the operation's) on the event
        loop find the row checked for it. Nothing on SQLite, whose cache is exact. `then`: more
        reads of the request, made in the same read thread when the bucket exists (one hand-off
        between the loop and the threads, not two); their result."""
        if self.shared and type(name) is str:
            task = asyncio.current_task()

            def reads() -> tuple[BucketRow | None, Any]:
                row = self.bucket(name, task=task)
                return row, then(row) if then is not None and row is not None else None

            row, got = await self.db.read(reads)
            # The request's own (its task's context; read threads run in a copy of it).
            _CHECKED.set((name, row) if row is None or row is self._buckets.get(name) else None)
            return got
        return None

    def forget_bucket(self, name: str) -> None:
        self._buckets.pop(name, None)
        checked = _CHECKED.get()
        if checked is not None and checked[0] == name:
            _CHECKED.set(None)

    def insert_bucket(self, name: str, region: str, created: float) -> bool:
        """False when the name is taken (names are global)."""
        self._buckets.pop(name, None)
        # ON CONFLICT, not a caught IntegrityError: on PostgreSQL a failed statement aborts the
        # rest of its write.
        cur = self.db.execute(
            "INSERT INTO buckets(name, region, created) VALUES (?,?,?) ON CONFLICT DO NOTHING",
            (name, region, created),
        )
        return cur.rowcount == 1

    def delete_bucket(self, name: str) -> None:
        self._buckets.pop(name, None)
        self.db.execute("DELETE FROM buckets WHERE name = ?", (name,))

    def list_buckets(self, after: str = "", prefix: str = "", limit: int = 10_000) -> list[BucketRow]:
        """Buckets named after `after` and starting with `prefix`, in name order (at most limit)."""
        sql = (
            "SELECT name, region, created, versioning, tags, config FROM buckets WHERE name > ? AND name >= ?"
        )
        args: list[Any] = [after, prefix]
        end = prefix_end(prefix)
        if end is not None:
            sql += " AND name < ?"
            args.append(end)
        rows = self.db.query(sql + " ORDER BY name LIMIT ?", [*args, limit])
        return [
            BucketRow(
                r[0], r[1], r[2], r[3], json.loads(r[4]) if r[4] is not None else None, json.loads(r[5])
            )
            for r in rows
        ]

    def set_bucket_field(self, name: str, column: str, value: Any) -> None:
        assert column in ("versioning", "tags", "config")
        if column in ("tags", "config") and value is not None:
            value = json.dumps(value)
        self._buckets.pop(name, None)
        self.db.execute(f"UPDATE buckets SET {column} = ? WHERE name = ?", (value, name))

    def bucket_is_empty(self, name: str) -> bool:
        return (
            self.db.query_one("SELECT 1 FROM objects WHERE bucket = ? LIMIT 1", (name,)) is None
            and self.db.query_one("SELECT 1 FROM uploads WHERE bucket = ? LIMIT 1", (name,)) is None
        )

    # -- object versions -------------------------------------------------------------------------

    def current(self, bucket: str, key: str, *, with_data: bool = False) -> ObjectRow | None:
        """The latest version of a key (possibly a delete marker); `with_data`: a small object's
        bytes too (`ObjectRow.data`), in the same statement."""
        if self.sql.postgres and "\x00" in key:
            return None  # never stored there (refuse_key)
        cols = f"{OBJ_COLS}, data" if with_data else OBJ_COLS
        r = self.db.query_one(
            f"SELECT {cols} FROM objects WHERE bucket = ? AND key = ? ORDER BY id DESC LIMIT 1",
            (bucket, key),
        )
        return ObjectRow.from_row(r) if r else None

    def version(self, bucket: str, key: str, version_id: str, *, with_data: bool = False) -> ObjectRow | None:
        if self.sql.postgres and ("\x00" in key or "\x00" in version_id):
            return None
        cols = f"{OBJ_COLS}, data" if with_data else OBJ_COLS
        r = self.db.query_one(
            f"SELECT {cols} FROM objects WHERE bucket = ? AND key = ? AND version_id = ? ORDER BY id DESC LIMIT 1",
            (bucket, key, version_id),
        )
        return ObjectRow.from_row(r) if r else None

    def insert_version(
        self,
        row: ObjectRow,
        *,
        replace_null: bool,
        data: bytes | None = None,
        replaced: list[tuple[str, int, float]] | None = None,
        unchanged: BucketRow | None = None,
    ) -> list[str]:
        """Make `row` the latest version of its key; returns blob ids no longer referenced.

        A small object's bytes come as `data` and live in the row itself (row.blob is None).
        With `replace_null` (unversioned or suspended buckets) an existing `null` version is
        removed first, as S3 overwrites it. A row whose version id is `NEW_VERSION` gets its
        sequence number chosen here and a version id that encodes it (`positions.version_id_at`),
        so a listing can resume after it even once it is deleted. `replaced` collects the
        (storage class, size, in class since) of a null version removed. Call inside a transaction.
        `unchanged` (PostgreSQL, a bucket row read with its xmin): the insert happens only while
        the bucket's stored row is still that one, else BucketChanged (the caller's transaction
        then undoes what this did), so the caller need not read the row again inside the write.
        """
        self.refuse_key(row.key)
        freed: list[str] = []
        row_id = None
        if row.version_id == NEW_VERSION:
            (row_id,) = self.db.query_one("SELECT COALESCE(MAX(id), 0) + 1 FROM objects")
            row.version_id = version_id_at(row_id)
        if replace_null:
            old = self.db.query(
                f"SELECT id, blob, storage_class, size, {self.sql.class_since} "
                "FROM objects WHERE bucket = ? AND key = ? AND version_id = 'null'",
                (row.bucket, row.key),
            )
            for oid, blob, storage_class, size, since in old:
                self.db.execute("DELETE FROM objects WHERE id = ?", (oid,))
                if blob:
                    freed.append(blob)
                if replaced is not None:
                    replaced.append((storage_class, size, since))
        self.db.execute(
            "UPDATE objects SET latest = 0 WHERE bucket = ? AND key = ? AND latest = 1", (row.bucket, row.key)
        )
        guard = (unchanged.name, unchanged.xmin) if unchanged is not None and unchanged.xmin else ()
        cur = self.db.execute(
            self._insert_unchanged_sql if guard else self._insert_sql,
            (
                row_id,
                row.bucket,
                row.key,
                row.version_id,
                int(row.dm),
                row.blob,
                row.size,
                row.etag,
                row.modified,
                row.storage_class,
                json.dumps(row.attrs),
                data,
                *guard,
            ),
        )
        if self.sql.postgres:
            inserted = cur.fetchone()
            if inserted is None:
                raise BucketChanged(row.bucket)
            row.id = inserted[0] or 0
        else:
            row.id = cur.lastrowid or 0
        row.latest = True
        return [b for b in freed if not self.blob_referenced(b)]

    def delete_version(self, row: ObjectRow) -> list[str]:
        """Remove one version; the next newest becomes latest. Returns freed blob ids."""
        self.db.execute("DELETE FROM objects WHERE id = ?", (row.id,))
        if row.latest:
            nxt = self.db.query_one(
                "SELECT id FROM objects WHERE bucket = ? AND key = ? ORDER BY id DESC LIMIT 1",
                (row.bucket, row.key),
            )
            if nxt:
                self.db.execute("UPDATE objects SET latest = 1 WHERE id = ?", (nxt[0],))
        if row.blob and not self.blob_referenced(row.blob):
            return [row.blob]
        return []

    def inline_data(self, row_id: int) -> bytes:
        """The bytes of a small object stored in its row."""
        r = self.db.query_one("SELECT data FROM objects WHERE id = ?", (row_id,))
        return bytes(r[0]) if r and r[0] is not None else b""

    def inline_bytes(self, row: ObjectRow) -> bytes:
        """A small object's bytes: as read with its row, else read now."""
        return row.data if row.data is not None else self.inline_data(row.id)

    def update_attrs(self, row: ObjectRow) -> None:
        self.db.execute("UPDATE objects SET attrs = ? WHERE id = ?", (json.dumps(row.attrs), row.id))

    def blob_referenced(self, blob: str) -> bool:
        return (
            self.db.query_one("SELECT 1 FROM objects WHERE blob = ? LIMIT 1", (blob,)) is not None
            or self.db.query_one("SELECT 1 FROM parts WHERE blob = ? LIMIT 1", (blob,)) is not None
        )

    def current_range(
        self, bucket: str, start: str, inclusive: bool, end: str | None, limit: int
    ) -> Iterator[ObjectRow]:
        """Visible objects with start < key (<= when inclusive) and key < end, in key order.

        Rows are stepped lazily from the cursor, so a caller that stops early (a listing that
        hit a common prefix and seeks past it) never pays for rows it did not read.
        """
        if self.sql.postgres:
            start, moved = nul_free(start)
            inclusive = inclusive or moved
            end = end if end is None else nul_free(end)[0]
        op = ">=" if inclusive else ">"
        sql = (
            f"SELECT {OBJ_COLS} FROM objects{self.sql.hint('objects_current')} "
            f"WHERE bucket = ? AND key {op} ? AND latest = 1 AND dm = 0"
        )
        args: list[Any] = [bucket, start]
        if end is not None:
            sql += " AND key < ?"
            args.append(end)
        sql += " ORDER BY key LIMIT ?"
        args.append(limit)
        return map(ObjectRow.from_row, self.db.execute(sql, args))

    def versions_range(
        self, bucket: str, start_key: str, after_id: int | None, end: str | None, limit: int
    ) -> Iterator[ObjectRow]:
        """Versions from `start_key` on (older than `after_id` within start_key), key asc, newest first."""
        if self.sql.postgres:
            start_key, moved = nul_free(start_key)
            after_id = None if moved else after_id
            end = end if end is None else nul_free(end)[0]
        args: list[Any]
        if after_id is None:
            cond, args = "key >= ?", [bucket, start_key]
        else:
            cond, args = "(key > ? OR (key = ? AND id < ?))", [bucket, start_key, start_key, after_id]
        sql = f"SELECT {OBJ_COLS} FROM objects{self.sql.hint('objects_versions')} WHERE bucket = ? AND {cond}"
        if end is not None:
            sql += " AND key < ?"
            args.append(end)
        sql += " ORDER BY key, id DESC LIMIT ?"
        args.append(limit)
        return map(ObjectRow.from_row, self.db.execute(sql, args))

    def all_blob_ids(self) -> Iterator[str]:
        for (b,) in self.db.query("SELECT blob FROM objects WHERE blob IS NOT NULL"):
            yield b
        for (b,) in self.db.query("SELECT blob FROM parts"):
            yield b

    # -- lifecycle -------------------------------------------------------------------------------

    def lifecycle_buckets(self) -> list[str]:
        """Names of the buckets that have a lifecycle configuration."""
        return [r[0] for r in self.db.query("SELECT name FROM buckets WHERE config LIKE '%\"lifecycle\"%'")]

    def lifecycle_rows(
        self, bucket: str, start: str, after: str | None, end: str | None, limit: int, with_attrs: bool
    ) -> list[tuple]:
        """Versions of the keys from `start` (after key `after`) below `end`, key order, newest
        first: (id, key, version_id, dm, size, modified, storage_class, blob, in class since,
        attrs or None).
        Attributes are decoded only when asked for (tag filters): most rules need none."""
        if self.sql.postgres:  # (a rule's prefix may hold NUL)
            start = nul_free(start)[0]
            if after is not None:
                after, moved = nul_free(after)
                start, after = (after, None) if moved else (start, after)
            end = end if end is None else nul_free(end)[0]
        cols = self._lc_cols + (", attrs" if with_attrs else "")
        sql = f"SELECT {cols} FROM objects{self.sql.hint('objects_versions')} WHERE bucket = ? AND "
        args: list[Any] = [bucket]
        if after is None:
            sql += "key >= ?"
            args.append(start)
        else:
            sql += "key > ?"
            args.append(after)
        if end is not None:
            sql += " AND key < ?"
            args.append(end)
        rows = self.db.query(sql + " ORDER BY key, id DESC LIMIT ?", [*args, limit])
        return [(*r[:9], json.loads(r[9]) if with_attrs else None) for r in rows]

    def key_rows(self, bucket: str, key: str, with_attrs: bool) -> list[tuple]:
        """Every version of one key, as `lifecycle_rows` gives them."""
        cols = self._lc_cols + (", attrs" if with_attrs else "")
        rows = self.db.query(
            f"SELECT {cols} FROM objects WHERE bucket = ? AND key = ? ORDER BY id DESC", (bucket, key)
        )
        return [(*r[:9], json.loads(r[9]) if with_attrs else None) for r in rows]

    def key_after(self, bucket: str, start: str, end: str | None, skip: int) -> str | None:
        """The key `skip` versions on from `start` (below `end`), None when fewer are left:
        where to cut a range into chunks of about `skip` rows."""
        if self.sql.postgres:
            start = nul_free(start)[0]
            end = end if end is None else nul_free(end)[0]
        sql = f"SELECT key FROM objects{self.sql.hint('objects_versions')} WHERE bucket = ? AND key >= ?"
        args: list[Any] = [bucket, start]
        if end is not None:
            sql += " AND key < ?"
            args.append(end)
        r = self.db.query_one(sql + " ORDER BY key LIMIT 1 OFFSET ?", [*args, skip])
        return r[0] if r and r[0] != start else None

    def storage_sums(
        self, bucket: str, start: str, end: str | None, since: float, until: float
    ) -> list[tuple[str, float, float]]:
        """(class, billed byte-seconds, object-seconds) of the objects with start <= key < end
        over (since, until], each from its creation if later, at S3's minimum billable sizes.
        Intelligent-Tiering objects are left out: they are metered per access tier."""
        if self.sql.postgres:
            start = nul_free(start)[0]
            end = end if end is None else nul_free(end)[0]
        big = self.sql.greatest
        billed = (
            "CASE storage_class "
            + " ".join(f"WHEN '{c}' THEN {big}(size, {n})" for c, n in MIN_BILLABLE_SIZE.items())
            + " ELSE size END"
        )
        sql = (
            f"SELECT storage_class, SUM(({billed}) * (? - {big}(?, modified))), SUM(? - {big}(?, modified)) "
            "FROM objects WHERE bucket = ? AND dm = 0 AND modified < ? AND key >= ? "
            "AND storage_class != 'INTELLIGENT_TIERING'"
        )
        args: list[Any] = [until, since, until, since, bucket, until, start]
        if end is not None:
            sql += " AND key < ?"
            args.append(end)
        return [
            (r[0], r[1] or 0.0, r[2] or 0.0) for r in self.db.query(sql + " GROUP BY storage_class", args)
        ]

    def tiered_rows(self, bucket: str, after_id: int, limit: int) -> list[tuple[int, str, int, float, dict]]:
        """(id, key, size, modified, attrs) of a bucket's Intelligent-Tiering versions, by id."""
        rows = self.db.query(
            f"SELECT id, key, size, modified, attrs FROM objects{self.sql.hint('objects_tiered')} WHERE bucket = ? "
            "AND id > ? AND dm = 0 AND storage_class = 'INTELLIGENT_TIERING' ORDER BY id LIMIT ?",
            (bucket, after_id, limit),
        )
        return [(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows]

    def set_tier(self, row_id: int, tier: str) -> None:
        self.db.execute(
            f"UPDATE objects SET attrs = {self.sql.set_attr('tier', 'text')} WHERE id = ?", (tier, row_id)
        )

    def set_class(self, row_id: int, storage_class: str, since: float) -> None:
        """A lifecycle transition: the version's class, and when it entered it."""
        self.db.execute(
            f"UPDATE objects SET storage_class = ?, attrs = {self.sql.set_attr('class_since', 'real')} WHERE id = ?",
            (storage_class, since, row_id),
        )

    def make_newest_latest(self, bucket: str, key: str) -> None:
        """After the latest version of a key was removed: the newest left becomes latest."""
        nxt = self.db.query_one(
            "SELECT id FROM objects WHERE bucket = ? AND key = ? ORDER BY id DESC LIMIT 1", (bucket, key)
        )
        if nxt:
            self.db.execute("UPDATE objects SET latest = 1 WHERE id = ?", (nxt[0],))
