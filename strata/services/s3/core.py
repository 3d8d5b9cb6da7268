"""State and helpers shared by the S3 topic modules: the stores, lookups with S3's errors,
version-id rules, object writes, blob clean-up and metering.

`S3Core` is the base of `S3Provider`; each topic module (buckets, objects, multipart, listing,
versioning, post_object) is a mixin of operation methods on top of it.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import hashlib
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from strata.config import redact_url
from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.base import ServiceRuntime
from strata.services.s3.acl_rules import ANONYMOUS_CANONICAL_ID, ANONYMOUS_OWNER
from strata.services.s3.charges import charge_early_delete
from strata.services.s3.encryption import RootKey
from strata.services.s3.lifecycle_rules import Rules
from strata.services.s3.lock_rules import default_retention
from strata.services.s3.names import Limits
from strata.services.s3.sse import ObjectKeys
from strata.services.s3.store import NEW_VERSION, BucketChanged, BucketRow, ObjectRow, S3Store
from strata.services.s3.tiering_rules import ARCHIVE_TIERS, archive_after, tier_at
from strata.sim.clock import clock
from strata.sim.meter import meter
from strata.storage import BlobStore

log = logging.getLogger("strata.s3")

UNLINK_DELAY = 5.0
T = TypeVar("T")

# Object attributes copied from a PUT request into the stored row and returned on GET/HEAD.
# Operations whose object row `_prefetch` reads with the bucket's (several gateways): is it a HEAD.
PREFETCHED_OBJECT = {"GetObject": False, "HeadObject": True}
# (request, head, its object row or the error reading it) as `_prefetch` read it for the request
# running in this context.
_PREFETCHED: contextvars.ContextVar[tuple[dict, bool, ObjectRow | ServiceError] | None] = (
    contextvars.ContextVar("s3_prefetched_object", default=None)
)


def prefetched_object(req: dict, head: bool) -> ObjectRow | None:
    """The object row `_prefetch` read for this very request (a GET or HEAD on PostgreSQL), or
    the error reading it raised; None when it read none."""
    hit = _PREFETCHED.get()
    if hit is None or hit[0] is not req or hit[1] is not head:
        return None
    if isinstance(hit[2], ServiceError):
        raise hit[2]
    return hit[2]


CONTENT_FIELDS = (
    "ContentType",
    "ContentEncoding",
    "ContentDisposition",
    "ContentLanguage",
    "CacheControl",
    "WebsiteRedirectLocation",
)


def no_such_bucket(bucket: str) -> ServiceError:
    return ServiceError(
        "NoSuchBucket", "The specified bucket does not exist", 404, fields={"BucketName": bucket}
    )


def no_such_key(key: str, headers: dict[str, str] | None = None) -> ServiceError:
    return ServiceError(
        "NoSuchKey", "The specified key does not exist.", 404, fields={"Key": key}, headers=headers
    )


def to_datetime(ts: float) -> datetime:
    # S3 timestamps have millisecond precision on the wire; HTTP dates have seconds.
    return datetime.fromtimestamp(int(ts * 1000) / 1000, UTC)


@functools.lru_cache(maxsize=256)
def owner_id(account_id: str) -> str:
    """A stable 64-hex canonical user id for an account, as S3 shows in Owner elements (S3's own
    id for the anonymous user)."""
    if account_id == ANONYMOUS_OWNER:
        return ANONYMOUS_CANONICAL_ID
    return hashlib.sha256(f"strata-canonical:{account_id}".encode()).hexdigest()


class S3Core:
    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.limits = Limits.from_settings(runtime.settings)
        data_dir = runtime.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        # `--metadata postgresql://...`: S3's metadata in PostgreSQL, object and part bytes under
        # `--blob-dir` (default: the data dir); what else moves is in strata.server.share.
        url = runtime.settings.metadata
        self.store = S3Store(data_dir / "meta.db", fsync=runtime.settings.fsync, metadata_url=url)
        # the cached bucket rows, read by strata.auth.enforce (policy.py: `resource_member`);
        # on PostgreSQL each read checks the row against the database (store.py)
        self.resource_rows = self.store.resource_rows
        blob_dir = runtime.settings.blob_dir
        self.blobs = BlobStore(blob_dir / "s3" if blob_dir else data_dir, fsync=runtime.settings.fsync)
        if url:
            log.warning(
                "--metadata: S3's metadata is in PostgreSQL at %s and its object bytes in %s",
                redact_url(url),
                self.blobs.root,
            )
        self.sse_keys = ObjectKeys(runtime, self._root_key(data_dir / "sse-root.key", blob_dir is not None))
        self._unlink_later: set[str] = set()  # freed blobs waiting out UNLINK_DELAY
        self._lifecycle: dict[str, tuple[dict, Rules]] = {}  # bucket -> (stored config, compiled)
        self._accesses: dict[int, float] = {}  # Intelligent-Tiering reads not yet written (row id -> when)
        self._access_flush: asyncio.Task | None = None  # writing them (shared store only)
        self._recover()

    # -- life cycle ------------------------------------------------------------------------------

    def _recover(self) -> None:
        """Start-up clean-up: remove temp files of unfinished writes, then blobs no row references.

        Other gateways may be writing the same blob directory meanwhile (several gateways): only
        dead writers' temp files and blobs go (BlobStore.collectable). Their writers are found
        dead first; then, on a shared store, an empty write waits out the write group in flight
        (a dead gateway's COMMIT may still be on its way: the group holds the store's lock until
        it ends), so every row those writers will ever commit is seen by the check after it."""
        swept = self.blobs.sweep_temp()
        unreferenced = self.blobs.all_ids() - set(self.store.all_blob_ids())
        candidates = self.blobs.collectable(unreferenced)
        if candidates and self.store.shared:
            with self.store.db.transaction():
                pass
        orphans = [b for b in candidates if not self.store.blob_referenced(b)]
        for blob in orphans:
            self.blobs.delete(blob)
        for blob in self.blobs.freed():  # freed by a gateway that died before unlinking them
            if not self.store.blob_referenced(blob):
                self.blobs.delete_freed(blob)
                orphans.append(blob)
        if swept or orphans:
            log.info("s3 recovery: removed %d temp files and %d orphan blobs", swept, len(orphans))

    def _root_key(self, own: Path, shared: bool) -> RootKey:
        """The SSE-S3 root key. With `--blob-dir` it lives beside the blobs every gateway shares
        (an object sealed on one gateway opens on the others); a gateway that had one of its own
        there before brings it along when the shared one does not exist yet."""
        if not shared:
            return RootKey.load(own)
        path = self.blobs.root / "sse-root.key"
        initial = own.read_bytes() if not path.exists() and own.exists() else None
        return RootKey.load(path, initial=initial)

    async def stop(self) -> None:
        # Freed blobs still waiting for their delayed unlink go now: a clean stop leaves no orphans.
        self._delete_blobs(list(self._unlink_later))
        if self._accesses:
            await self.store.db.write(self._flush_accesses)
        self.store.close()
        self.blobs.close()

    def health(self) -> str:
        self.store.db.query_one("SELECT 1")
        return "ok"

    # -- lookups ---------------------------------------------------------------------------------

    async def _prefetch(self, req: dict, operation: str = "") -> None:
        """Several gateways (the gateway calls it before authorizing): the request's bucket row,
        checked in the store's read threads, so no lookup of this request waits on the loop; for
        a GetObject or HeadObject its object row too, in the same read thread (`_object` takes
        it, after authorization: its error, NoSuchKey..., is answered only then). Each hand-off
        to a read thread and back costs a loaded gateway far more than the read (bench/pg_loop.py)."""
        head = PREFETCHED_OBJECT.get(operation)
        key, version = req.get("Key"), req.get("VersionId")
        if head is None or type(key) is not str:
            await self.store.check_bucket(req.get("Bucket"))
            return

        def read(bucket: BucketRow) -> ObjectRow | ServiceError:
            try:
                return self._read_version(bucket.name, key, version, head=head, body=not head)
            except ServiceError as e:
                return e

        got = await self.store.check_bucket(req.get("Bucket"), read)
        if got is not None:
            _PREFETCHED.set((req, head, got))

    def _require_bucket(self, name: str, *, task: object = None) -> BucketRow:
        b = self.store.bucket(name, task=task)
        if b is None:
            raise no_such_bucket(name)
        return b

    def _bucket_for_write(self, name: str) -> BucketRow:
        """The bucket row read inside a write (uncached), or NoSuchBucket."""
        b = self.store.bucket(name, cached=False)
        if b is None:
            raise no_such_bucket(name)
        return b

    async def _write(self, fn: Callable[[], T], *, bucket: str | None = None) -> T:
        """Run a write through the store's group commit; forget the cached bucket row it may change."""
        try:
            return await self.store.db.write(fn)
        finally:
            if bucket is not None:
                self.store.forget_bucket(bucket)

    def _read_version(
        self, bucket: str, key: str, version_id: str | None, *, head: bool = False, body: bool = False
    ) -> ObjectRow:
        """The object a GET/HEAD names, or S3's error (NoSuchKey, NoSuchVersion, MethodNotAllowed);
        `body`: a small object's bytes too, read with the row (a GET: one statement, not two, and
        the bytes of the very version whose headers are answered)."""
        if version_id:
            row = self.store.version(bucket, key, version_id, with_data=body)
            if row is None:
                if version_id != "null" and not plausible_version_id(version_id):
                    raise ServiceError(
                        "InvalidArgument",
                        "Invalid version id specified",
                        400,
                        fields={"ArgumentName": "versionId", "ArgumentValue": version_id},
                    )
                raise ServiceError(
                    "NoSuchVersion",
                    "The specified version does not exist.",
                    404,
                    fields={"Key": key, "VersionId": version_id},
                )
            if row.dm:
                raise ServiceError(
                    "MethodNotAllowed",
                    "The specified method is not allowed against this resource.",
                    405,
                    fields={"Method": "HEAD" if head else "GET", "ResourceType": "DeleteMarker"},
                    headers={
                        "x-amz-delete-marker": "true",
                        "x-amz-version-id": row.version_id,
                        "Last-Modified": _http_date(row.modified),
                    },
                )
            return row
        row = self.store.current(bucket, key, with_data=body)
        if row is None:
            raise no_such_key(key)
        if row.dm:
            raise no_such_key(
                key, headers={"x-amz-delete-marker": "true", "x-amz-version-id": row.version_id}
            )
        return row

    def _lifecycle_rules(self, bucket: BucketRow) -> Rules | None:
        """The bucket's compiled lifecycle rules (cached against its stored configuration)."""
        stored = bucket.config.get("lifecycle")
        if not stored:
            return None
        hit = self._lifecycle.get(bucket.name)
        if hit is not None and hit[0] is stored:
            return hit[1]
        rules = Rules(stored)
        self._lifecycle[bucket.name] = (stored, rules)
        return rules

    def _expiration_header(self, bucket: BucketRow, row: ObjectRow) -> str | None:
        """`x-amz-expiration` for the current version of an object a lifecycle rule will expire."""
        rules = self._lifecycle_rules(bucket) if bucket.config.get("lifecycle") else None
        if rules is None or row.dm:
            return None
        return rules.expiration_header(row.key, row.size, row.attrs.get("tags"), row.modified)

    # -- Intelligent-Tiering (tiering_rules.py) --------------------------------------------------

    @staticmethod
    def _tiering_configs(bucket: BucketRow) -> dict[str, dict]:
        return bucket.config.get("tiering") or {}

    def _accessed(self, row: ObjectRow) -> float:
        """When an Intelligent-Tiering object was last accessed (a completed restore counts)."""
        at = max(self._accesses.get(row.id, 0.0), row.attrs.get("accessed", row.modified))
        restore = row.attrs.get("restore")
        if restore and restore.get("access_tier") in ARCHIVE_TIERS and restore["ready"] <= self._now():
            at = max(at, restore["ready"])
        return at

    def _access_tier(self, bucket: BucketRow, row: ObjectRow) -> str:
        archive = archive_after(self._tiering_configs(bucket), row.key, row.attrs.get("tags"))
        return tier_at(row.size, self._accessed(row), self._now(), archive)

    def _record_access(self, row: ObjectRow) -> None:
        """A read of an Intelligent-Tiering object (it goes back to Frequent Access). Kept in
        memory and written in bulk by the lifecycle run; on a shared store written at once in the
        background (one group write for the reads meanwhile), so every gateway's tiering and
        lifecycle run see it."""
        self._accesses[row.id] = self._now()
        if self.store.shared and self._access_flush is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._access_flush = loop.create_task(self._flush_accesses_soon())

    async def _flush_accesses_soon(self) -> None:
        try:
            await self.store.db.write(self._flush_accesses)
        except Exception:  # noqa: BLE001 - a background write: logged (those reads' accesses are lost)
            log.warning("writing Intelligent-Tiering accesses failed", exc_info=True)
        finally:
            self._access_flush = None

    def _flush_accesses(self) -> None:
        """Write the accesses kept in memory (inside a store write)."""
        accesses, self._accesses = self._accesses, {}
        if not accesses:
            return
        sql = (
            f"UPDATE objects SET attrs = {self.store.sql.set_attr('accessed', 'real')} WHERE id = ? "
            "AND storage_class = 'INTELLIGENT_TIERING'"
        )
        if not self.store.shared:
            self.store.db.executemany(sql, [(at, row_id) for row_id, at in accesses.items()])
            return
        # Gateways' flushes may commit out of order: an access never moves back in time.
        sql += " AND COALESCE(CAST(attrs::jsonb ->> 'accessed' AS DOUBLE PRECISION), 0) < ?"
        self.store.db.executemany(sql, [(at, row_id, at) for row_id, at in accesses.items()])

    # -- writes ----------------------------------------------------------------------------------

    @staticmethod
    def _new_version_id(bucket: BucketRow) -> str:
        """A fresh version id (chosen when the row is inserted) when versioning is Enabled, else
        the `null` version."""
        return NEW_VERSION if bucket.versioning == "Enabled" else "null"

    async def _commit_object(
        self,
        bucket: BucketRow,
        row: ObjectRow,
        check: Callable[[ObjectRow | None], None] | None = None,
        data: bytes | None = None,
    ) -> str:
        """Make a published blob visible as the newest version of its key (group-committed).

        The version id follows the bucket's versioning state at commit time; returns that state
        ('' when never versioned) so callers know whether to report the version id.
        `check(current)` runs inside the transaction (conditional writes: If-None-Match,
        If-Match, a multipart upload still existing); when it raises, nothing is written and the
        caller drops the blob.

        On PostgreSQL the bucket row the request read (it reads it from the database once per
        request, see S3Store.bucket) is used as it is while the insert finds it unchanged (its
        xmin, in the INSERT itself): no read of the row again inside the write. A row changed in
        between makes the write start over with the row read inside it, as SQLite's always is.
        """
        attrs = dict(row.attrs)

        def write(known: BucketRow | None) -> tuple[list[str], str]:
            fresh = known or self._bucket_for_write(bucket.name)
            if check is not None:
                check(self.store.current(row.bucket, row.key))
            row.version_id = self._new_version_id(fresh)
            if "retention" not in row.attrs:  # Object Lock's default retention (object_lock.py)
                retention = default_retention(fresh, row.modified)
                if retention is not None:
                    row.attrs["retention"] = retention
            replaced: list[tuple[str, int, float]] = []
            freed = self.store.insert_version(
                row, replace_null=row.version_id == "null", data=data, replaced=replaced, unchanged=known
            )
            for storage_class, size, since in replaced:  # an overwritten object
                charge_early_delete(row.bucket, storage_class, size, since, row.modified)
            return freed, fresh.versioning

        known = bucket if self.store.shared and bucket.xmin else None
        try:
            freed, versioning = await self.store.db.write(lambda: write(known))
        except BucketChanged:
            row.attrs.clear()  # as it came: the write decides again (its default retention)
            row.attrs.update(attrs)
            freed, versioning = await self.store.db.write(lambda: write(None))
        self._free_blobs(freed)
        return versioning

    def _charge_removal(self, row: ObjectRow) -> None:
        """Early-deletion charge of a version removed now (charges.py)."""
        since = row.attrs.get("class_since", row.modified)
        charge_early_delete(row.bucket, row.storage_class, row.size, since, self._now())

    def _free_blobs(self, blob_ids: list[str]) -> None:
        """Unlink blobs whose rows are committed gone (a crash before this leaves orphans for GC).

        The unlink waits a few seconds when a loop runs, so a GET that read the old row just
        before the overwrite can still open its file (once open, the bytes stay readable).
        """
        if not blob_ids:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None:
            for b in blob_ids:
                self.blobs.delete(b)
        else:
            self._unlink_later.update(blob_ids)
            if self.store.shared:  # another gateway's start-up removes them if this one dies
                loop.run_in_executor(None, self.blobs.mark_freed, list(blob_ids))
            loop.call_later(UNLINK_DELAY, loop.run_in_executor, None, self._delete_blobs, list(blob_ids))

    def _delete_blobs(self, blob_ids: list[str]) -> None:
        delete = self.blobs.delete_freed if self.store.shared else self.blobs.delete
        for b in blob_ids:
            delete(b)
            self._unlink_later.discard(b)

    def _link_blob(self, src_blob: str) -> str:
        """A new blob id with the same bytes (a hard link: blobs are immutable)."""
        new_id = self.blobs.new_id()
        dst = self.blobs.path(new_id)
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.link(self.blobs.path(src_blob), dst)
        return new_id

    # -- metering --------------------------------------------------------------------------------

    @staticmethod
    def _count(
        ctx: RequestContext, bucket: str | None = None, *, bytes_in: int = 0, bytes_out: int = 0
    ) -> None:
        key, dims = _meter_dims(bucket) if bucket else _NO_DIMS
        meter.record_keyed("s3", ctx.operation or "Request", 1, "request", key, dims)
        if bytes_in:
            meter.record_keyed("s3", "DataTransfer-In-Bytes", bytes_in, "byte", key, dims)
        if bytes_out:
            meter.record_keyed("s3", "DataTransfer-Out-Bytes", bytes_out, "byte", key, dims)

    @staticmethod
    def _now() -> float:
        return clock.time()


_NO_DIMS: tuple[tuple, dict] = ((), {})
_DIMS: dict[str, tuple[tuple, dict]] = {}


def _meter_dims(bucket: str) -> tuple[tuple, dict]:
    """A bucket's meter dimensions and their key, made once per bucket (never mutated: the meter
    keeps the dict of a tally's first event): every request is metered, and building them each
    time was a third of the meter's cost of a GET."""
    found = _DIMS.get(bucket)
    if found is None:
        if len(_DIMS) >= 4096:
            _DIMS.clear()
        dims = {"bucket": bucket}
        found = _DIMS[bucket] = (tuple(dims.items()), dims)
    return found


def plausible_version_id(v: str) -> bool:
    """Whether `v` has the form of a Strata version id (other than `null`)."""
    return len(v) == 32 and all(c.isalnum() or c in "-_" for c in v)


def _http_date(ts: float) -> str:
    from email.utils import formatdate

    return formatdate(ts, usegmt=True)
