"""Object operations: PutObject, GetObject, HeadObject, DeleteObject(s), CopyObject and
GetObjectAttributes.

A large PUT streams its body to a temp file (ingest), publishes the blob, then commits the row,
and its GET returns `FileBody(path, offset, length)` so the gateway can send the file zero-copy.
A small body (up to 64 KiB) is committed inside its row and served from there as bytes.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.protocol.http import FileBody
from strata.services.s3.acl import authorized_object
from strata.services.s3.charges import charge_early_delete
from strata.services.s3.conditions import check_read_conditions, parse_range, write_condition
from strata.services.s3.core import CONTENT_FIELDS, no_such_key, prefetched_object, to_datetime
from strata.services.s3.ingest import (
    CHECKSUM_ALGORITHMS,
    _pool,
    b64,
    publish,
    receive,
    requested_checksums,
    stored_bytes,
)
from strata.services.s3.lock_rules import (
    check_removable,
    default_retention,
    lock_attrs,
    lock_headers,
    require_integrity_header,
)
from strata.services.s3.names import (
    MAX_USER_METADATA_BYTES,
    check_key,
    check_storage_class,
    parse_tagging_header,
)
from strata.services.s3.restore import readable, restore_header
from strata.services.s3.sse import (
    SSE_FIELDS,
    context_header,
    customer_key,
    etag_of,
    headers_of,
    md5_etag,
    require_customer,
)
from strata.services.s3.sse_io import EncryptedObjects, _digest, opened, plain_sizes
from strata.services.s3.store import BucketRow, ObjectRow
from strata.services.s3.tiering_rules import ARCHIVE_TIERS
from strata.sim.clock import clock

_OVERRIDES = {
    "ResponseCacheControl": "CacheControl",
    "ResponseContentDisposition": "ContentDisposition",
    "ResponseContentEncoding": "ContentEncoding",
    "ResponseContentLanguage": "ContentLanguage",
    "ResponseContentType": "ContentType",
}


def content_attrs(req: dict) -> dict[str, Any]:
    """The stored attributes of a new object: content headers, Expires and user metadata."""
    headers = {f: req[f] for f in CONTENT_FIELDS if req.get(f) not in (None, "")}
    headers.setdefault("ContentType", "binary/octet-stream")
    meta = dict(req.get("Metadata") or {})
    size = sum(len(k.encode()) + len(str(v).encode()) for k, v in meta.items())
    if size > MAX_USER_METADATA_BYTES:
        raise ServiceError(
            "MetadataTooLarge",
            "Your metadata headers exceed the maximum allowed metadata size",
            400,
            fields={"MaxSizeAllowed": str(MAX_USER_METADATA_BYTES), "Size": str(size)},
        )
    attrs: dict[str, Any] = {"headers": headers, "meta": meta}
    expires = req.get("Expires")
    if isinstance(expires, datetime):
        attrs["expires"] = expires.timestamp()
    return attrs


def checksum_fields(row: ObjectRow) -> dict[str, Any]:
    """Checksum<algorithm> and ChecksumType members for a stored object (empty when none was stored)."""
    ck = row.attrs.get("checksum")
    if not ck:
        return {}
    return {f"Checksum{ck['algorithm']}": ck["value"], "ChecksumType": ck.get("type", "FULL_OBJECT")}


def object_headers(row: ObjectRow, bucket: BucketRow) -> dict[str, Any]:
    """The members GET and HEAD share: ETag, dates, content headers, metadata, class, tags."""
    out: dict[str, Any] = {
        "ETag": row.etag,
        "LastModified": to_datetime(row.modified),
        "ContentLength": row.size,
        "AcceptRanges": "bytes",
        "Metadata": dict(row.attrs.get("meta", {})),
    }
    # Rows from before encryption at rest kept the SSE headers of their PUT: they are plaintext.
    out.update({k: v for k, v in row.attrs.get("headers", {}).items() if k not in SSE_FIELDS})
    out.update(headers_of(row.attrs.get("sse")))
    if "expires" in row.attrs:
        out["Expires"] = datetime.fromtimestamp(row.attrs["expires"], UTC)
    if row.storage_class != "STANDARD":
        out["StorageClass"] = row.storage_class
    if bucket.versioning:
        out["VersionId"] = row.version_id
    if row.attrs.get("tags"):
        out["TagCount"] = len(row.attrs["tags"])
    if row.attrs.get("parts"):
        out["PartsCount"] = len(row.attrs["parts"])
    if "retention" in row.attrs or "legal_hold" in row.attrs:
        out.update(lock_headers(row.attrs))
    if row.attrs.get("restore"):
        restore = restore_header(row.attrs, clock.time())
        if restore:
            out["Restore"] = restore
    return out


# A copy source through an access point: `arn:aws:s3:<region>:<account>:accesspoint/<name>/object/<key>`.
_ACCESS_POINT_SOURCE = re.compile(
    r"^(arn:aws[a-z-]*:s3:[a-z0-9-]*:\d{12}:accesspoint/[a-z0-9-]+)/object/(.+)$"
)


def parse_copy_source(value: str) -> tuple[str, str, str | None]:
    """`x-amz-copy-source`: `[/]bucket/key[?versionId=v]`, URL-encoded; the "bucket" may be an
    access point's ARN (`<access point ARN>/object/<key>`: see AccessPointAuthz._source_bucket)."""
    path, _, query = value.partition("?")
    try:
        path = unquote(path, errors="strict").lstrip("/")
        version = None
        if query:
            for part in query.split("&"):
                name, _, v = part.partition("=")
                if name == "versionId":
                    version = unquote(v, errors="strict")
    except UnicodeDecodeError:
        raise ServiceError(
            "InvalidArgument",
            "Invalid copy source encoding.",
            400,
            fields={"ArgumentName": "x-amz-copy-source", "ArgumentValue": value},
        ) from None
    m = _ACCESS_POINT_SOURCE.match(path)
    bucket, key = (m.group(1), m.group(2)) if m else path.partition("/")[::2]
    if not bucket or not key:
        raise ServiceError(
            "InvalidArgument",
            "Invalid copy source object key",
            400,
            fields={"ArgumentName": "x-amz-copy-source", "ArgumentValue": value},
        )
    return bucket, key, version


class ObjectOperations(EncryptedObjects):
    # -- PutObject -------------------------------------------------------------------------------

    async def put_object(self, ctx: RequestContext, req: dict) -> dict:
        bucket = self._require_bucket(req["Bucket"])
        key = req["Key"]
        check_key(key)
        storage_class = check_storage_class(req.get("StorageClass"))
        tags = parse_tagging_header(req["Tagging"]) if req.get("Tagging") else None
        attrs = content_attrs(req)
        locks = lock_attrs(bucket, req, self._now(), defaults=False)
        if locks or default_retention(bucket, self._now()):
            require_integrity_header(req)
        attrs.update(locks)
        attrs.update(self._new_object_acl(ctx, bucket, req))  # type: ignore[attr-defined]
        check = write_condition(key, req.get("IfMatch"), req.get("IfNoneMatch"))
        if check is not None:
            check(await self.store.db.read(lambda: self.store.current(bucket.name, key)))
        expected, algorithm = requested_checksums(req)
        customer = customer_key(req, ctx.http.secure)
        sealing = self.sse_keys.choose(ctx, bucket, key, req, customer)
        got = await receive(
            self.blobs,
            req.get("Body"),
            max_size=self.limits.max_put_size,
            content_md5=req.get("ContentMD5"),
            expected=expected,
            algorithm=algorithm,
            keys=sealing.keys if sealing else None,
        )
        self._count(ctx, bucket.name, bytes_in=got.size)
        if tags:
            attrs["tags"] = tags
        if sealing:
            attrs["sse"] = sealing.record
        row, versioning = await self._store_ingested(bucket, key, got, attrs, storage_class, check)
        out: dict[str, Any] = {"ETag": row.etag, "Size": row.size, **checksum_fields(row)}
        if sealing:
            out.update(headers_of(sealing.record, customer), **context_header(sealing.record))
        if versioning:
            out["VersionId"] = row.version_id
        expiration = self._expiration_header(bucket, row)
        if expiration:
            out["Expiration"] = expiration
        return out

    async def _store_ingested(
        self, bucket: Any, key: str, got: Any, attrs: dict[str, Any], storage_class: str, check: Any
    ) -> tuple[ObjectRow, bool]:
        """Publish a received body (inline when small, else as a blob) and commit its row.

        Shared by PutObject and browser POST uploads; a failed commit frees the blob it published.
        """
        inline = got.data if got.data is not None and got.size <= self.limits.inline_max else None
        if inline is not None and got.keys:
            inline = stored_bytes(got)
        blob = None if inline is not None else await publish(self.blobs, got)
        if got.checksums:
            algo, value = next(iter(got.checksums.items()))
            attrs["checksum"] = {"algorithm": algo, "value": value, "type": "FULL_OBJECT"}
        row = ObjectRow(
            0,
            bucket.name,
            key,
            self._new_version_id(bucket),
            True,
            False,
            blob,
            got.size,
            etag_of(attrs.get("sse"), got.md5),
            self._now(),
            storage_class,
            attrs,
        )
        try:
            versioning = await self._commit_object(bucket, row, check, inline)
        except Exception:  # not CancelledError: a cancelled request's write may still commit
            if blob is not None:
                self.blobs.delete(blob)
            raise
        return row, versioning

    # -- GetObject / HeadObject ------------------------------------------------------------------

    async def _object(
        self, bucket: BucketRow, req: dict, *, head: bool = False, body: bool = False
    ) -> ObjectRow:
        """The object version a request names (`_read_version`), unless its authorization read it
        already; read through `store.read` (on PostgreSQL in a read thread, not on the loop)."""
        row = authorized_object(req) or (prefetched_object(req, head) if self.store.shared else None)
        if row is not None:
            return row
        key, version_id = req["Key"], req.get("VersionId")
        return await self.store.db.read(
            lambda: self._read_version(bucket.name, key, version_id, head=head, body=body)
        )

    async def _read(
        self, req: dict, *, head: bool
    ) -> tuple[ObjectRow, BucketRow, dict[str, Any], tuple[int, int] | None]:
        bucket = self._require_bucket(req["Bucket"])
        row = await self._object(bucket, req, head=head, body=not head)
        check_read_conditions(
            row.etag,
            row.modified,
            req.get("IfMatch"),
            req.get("IfNoneMatch"),
            req.get("IfModifiedSince"),
            req.get("IfUnmodifiedSince"),
        )
        out = object_headers(row, bucket)
        if row.latest:
            expiration = self._expiration_header(bucket, row)
            if expiration:
                out["Expiration"] = expiration
        if row.storage_class == "INTELLIGENT_TIERING":
            tier = self._access_tier(bucket, row)
            if tier in ARCHIVE_TIERS:
                if not head:
                    raise ServiceError(
                        "InvalidObjectState",
                        "The operation is not valid for the object's access tier",
                        403,
                        fields={"StorageClass": row.storage_class, "AccessTier": tier},
                    )
                out["ArchiveStatus"] = tier
            elif not head:
                self._record_access(row)  # an access: back to Frequent Access
        if not head and not readable(row.storage_class, row.attrs, self._now()):
            raise ServiceError(
                "InvalidObjectState",
                "The operation is not valid for the object's storage class",
                403,
                fields={"StorageClass": row.storage_class},
            )
        span: tuple[int, int] | None = None
        part_number = req.get("PartNumber")
        if part_number is not None:
            parts = row.attrs.get("parts") or [row.size]
            if part_number < 1 or part_number > len(parts):
                raise ServiceError(
                    "InvalidPartNumber",
                    "The requested partnumber is not satisfiable",
                    416,
                    fields={"PartNumberRequested": str(part_number), "ActualPartCount": str(len(parts))},
                )
            first = sum(parts[: part_number - 1])
            if row.attrs.get("parts"):
                span = (first, first + parts[part_number - 1] - 1)
            out["PartsCount"] = len(parts)
        elif req.get("Range"):
            span = parse_range(req["Range"], row.size)
        if span is not None and row.size > 0:
            out["ContentRange"] = f"bytes {span[0]}-{span[1]}/{row.size}"
            out["ContentLength"] = span[1] - span[0] + 1
            out["StatusCode"] = 206
        if req.get("ChecksumMode") == "ENABLED" and span is None:
            out.update(checksum_fields(row))
        for param, member in _OVERRIDES.items():
            if req.get(param):
                out[member] = req[param]
        if req.get("ResponseExpires"):
            out["Expires"] = req["ResponseExpires"]
        return row, bucket, out, span

    async def get_object(self, ctx: RequestContext, req: dict) -> dict:
        row, _, out, span = await self._read(req, head=False)
        customer = self._customer(ctx, req, row, out)
        if "retention" in row.attrs or "legal_hold" in row.attrs:
            self._hide_unpermitted_lock_headers(ctx, req, out)  # type: ignore[attr-defined]
        offset, length = (span[0], span[1] - span[0] + 1) if span else (0, row.size)
        record = row.attrs.get("sse")
        if record:
            keys = self.sse_keys.open(ctx, record, customer)
            source = self.blobs.path(row.blob) if row.blob is not None else self.store.inline_bytes(row)
            sizes = plain_sizes(row.attrs, row.size)
            out["Body"] = opened(source, keys, sizes, offset, offset + length - 1)
        elif row.blob is not None:
            out["Body"] = FileBody(self.blobs.path(row.blob), offset, length)
        else:
            out["Body"] = self.store.inline_bytes(row)[offset : offset + length]
        self._count(ctx, row.bucket, bytes_out=length)
        return out

    async def head_object(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req.get("Bucket"))
        row, _, out, _ = await self._read(req, head=True)
        self._customer(ctx, req, row, out)
        if "retention" in row.attrs or "legal_hold" in row.attrs:
            self._hide_unpermitted_lock_headers(ctx, req, out)  # type: ignore[attr-defined]
        return out

    # -- DeleteObject(s) -------------------------------------------------------------------------

    def _delete_one(
        self, bucket: BucketRow, key: str, version_id: str | None, bypass: bool = False
    ) -> tuple[dict[str, Any], list[str]]:
        """Delete a key or one version per the bucket's versioning state (run inside a store write).

        Returns the Deleted entry and the blobs to unlink once committed.
        """
        out: dict[str, Any] = {}
        freed: list[str] = []
        bucket = self._bucket_for_write(bucket.name)
        if version_id:
            row = self.store.version(bucket.name, key, version_id)
            if row is None:
                if version_id != "null" and not (len(version_id) == 32):
                    raise ServiceError(
                        "InvalidArgument",
                        "Invalid version id specified",
                        400,
                        fields={"ArgumentName": "versionId", "ArgumentValue": version_id},
                    )
                return {"VersionId": version_id}, []
            check_removable(row, bypass, self._now())  # Object Lock (lock_rules.py)
            freed = self.store.delete_version(row)
            out["VersionId"] = version_id
            if row.dm:
                out["DeleteMarker"] = True
            else:
                self._charge_removal(row)
        elif not bucket.versioning:
            row = self.store.current(bucket.name, key)
            freed = self.store.delete_version(row) if row else []
            if row is not None and not row.dm:
                self._charge_removal(row)
        else:
            marker = ObjectRow(
                0,
                bucket.name,
                key,
                self._new_version_id(bucket),
                True,
                True,
                None,
                0,
                "",
                self._now(),
                "STANDARD",
                {},
            )
            replaced: list[tuple[str, int, float]] = []
            freed = self.store.insert_version(
                marker, replace_null=marker.version_id == "null", replaced=replaced
            )
            for storage_class, size, since in replaced:
                charge_early_delete(bucket.name, storage_class, size, since, marker.modified)
            out.update(DeleteMarker=True, VersionId=marker.version_id)
        return out, freed

    async def delete_object(self, ctx: RequestContext, req: dict) -> dict:
        bucket = self._require_bucket(req["Bucket"])
        self._count(ctx, bucket.name)
        if req.get("IfMatch"):
            cur = await self.store.db.read(lambda: self.store.current(bucket.name, req["Key"]))
            if cur is None or cur.dm:
                raise no_such_key(req["Key"])
            check_read_conditions(cur.etag, cur.modified, req["IfMatch"], None, None, None)
        out, freed = await self.store.db.write(
            lambda: self._delete_one(
                bucket, req["Key"], req.get("VersionId"), bool(req.get("BypassGovernanceRetention"))
            )
        )
        self._free_blobs(freed)
        return out

    async def delete_objects(self, ctx: RequestContext, req: dict) -> dict:
        bucket = self._require_bucket(req["Bucket"])
        self._count(ctx, bucket.name)
        spec = req.get("Delete") or {}
        objects = spec.get("Objects") or []
        if not objects or len(objects) > 1000:
            raise ServiceError(
                "MalformedXML",
                "The XML you provided was not well-formed or did not validate against our published schema",
                400,
            )

        bypass = bool(req.get("BypassGovernanceRetention"))

        def delete_all() -> list[tuple[dict, Any]]:
            results: list[tuple[dict, Any]] = []
            for obj in objects:
                try:
                    results.append(
                        (obj, self._delete_one(bucket, obj.get("Key", ""), obj.get("VersionId"), bypass))
                    )
                except ServiceError as e:
                    results.append((obj, e))
            return results

        deleted, errors = [], []
        for obj, result in await self.store.db.write(delete_all):
            key = obj.get("Key", "")
            if isinstance(result, ServiceError):
                e = result
                err = {"Key": key, "Code": e.code, "Message": e.message}
                if obj.get("VersionId"):
                    err["VersionId"] = obj["VersionId"]
                errors.append(err)
                continue
            entry, freed = result
            self._free_blobs(freed)
            if not spec.get("Quiet"):
                item: dict[str, Any] = {"Key": key}
                if obj.get("VersionId"):
                    item["VersionId"] = obj["VersionId"]
                    if entry.get("DeleteMarker"):
                        item["DeleteMarker"] = True
                        item["DeleteMarkerVersionId"] = obj["VersionId"]
                elif entry.get("DeleteMarker"):
                    item["DeleteMarker"] = True
                    item["DeleteMarkerVersionId"] = entry["VersionId"]
                deleted.append(item)
        out: dict[str, Any] = {}
        if deleted:
            out["Deleted"] = deleted
        if errors:
            out["Errors"] = errors
        return out

    # -- CopyObject ------------------------------------------------------------------------------

    async def _read_copy_source(self, req: dict) -> tuple[ObjectRow, BucketRow, bytes | None]:
        """`_copy_source`, and the source's bytes when they are stored inline, read through
        `store.read` (on PostgreSQL in a read thread: the event loop serves others meanwhile)."""
        task = asyncio.current_task()

        def reads() -> tuple[ObjectRow, BucketRow, bytes | None]:
            src, src_bucket = self._copy_source(req, task=task)
            return src, src_bucket, self.store.inline_data(src.id) if src.blob is None else None

        return await self.store.db.read(reads)

    def _copy_source(self, req: dict, *, task: object = None) -> tuple[ObjectRow, BucketRow]:
        """The source object of a copy, with x-amz-copy-source-if-* conditions checked. `task`:
        the request's, when this runs in a read thread for it (see S3Store.bucket)."""
        src_bucket_name, src_key, src_version = parse_copy_source(req["CopySource"])
        src_bucket = self._require_bucket(self._source_bucket(src_bucket_name)[0], task=task)  # type: ignore[attr-defined]
        try:
            src = self._read_version(src_bucket.name, src_key, src_version)
        except ServiceError as e:
            if e.code == "MethodNotAllowed":
                raise ServiceError(
                    "InvalidRequest",
                    "The source of a copy request may not specifically refer to a delete marker by version id.",
                    400,
                ) from None
            raise
        if not readable(src.storage_class, src.attrs, self._now()):
            raise ServiceError(
                "InvalidObjectState",
                "Operation is not valid for the source object's storage class",
                403,
                fields={"StorageClass": src.storage_class},
            )
        check_read_conditions(
            src.etag,
            src.modified,
            req.get("CopySourceIfMatch"),
            req.get("CopySourceIfNoneMatch"),
            req.get("CopySourceIfModifiedSince"),
            req.get("CopySourceIfUnmodifiedSince"),
            copy_source=True,
        )
        return src, src_bucket

    async def copy_object(self, ctx: RequestContext, req: dict) -> dict:
        bucket = self._require_bucket(req["Bucket"])
        key = req["Key"]
        check_key(key)
        src, src_bucket, src_inline = await self._read_copy_source(req)
        src_customer = customer_key(req, ctx.http.secure, "CopySourceSSECustomer")
        require_customer(src.attrs.get("sse"), src_customer, copy=True)
        customer = customer_key(req, ctx.http.secure)
        self._count(ctx, bucket.name)
        if src.size > self.limits.max_put_size:
            raise ServiceError(
                "InvalidRequest",
                f"The specified copy source is larger than the maximum allowable size for a copy source: {self.limits.max_put_size}",
                400,
            )
        directive = (req.get("MetadataDirective") or "COPY").upper()
        tag_directive = (req.get("TaggingDirective") or "COPY").upper()
        if directive not in ("COPY", "REPLACE") or tag_directive not in ("COPY", "REPLACE"):
            raise ServiceError("InvalidArgument", "Unknown metadata directive.", 400)
        # A copy is STANDARD unless the request names a class (it does not inherit the source's).
        storage_class = check_storage_class(req.get("StorageClass"))
        same = src.bucket == bucket.name and src.key == key
        if (
            same
            and directive == "COPY"
            and not req.get("StorageClass")
            and not req.get("WebsiteRedirectLocation")
            and not req.get("ServerSideEncryption")
            and customer is None
            and not req.get("ChecksumAlgorithm")
        ):
            raise ServiceError(
                "InvalidRequest",
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
                400,
            )
        if directive == "REPLACE":
            attrs = content_attrs(req)
        else:
            attrs = {k: v for k, v in src.attrs.items() if k in ("headers", "meta", "expires")}
        if tag_directive == "REPLACE":
            tags = parse_tagging_header(req["Tagging"]) if req.get("Tagging") else None
        else:
            tags = src.attrs.get("tags")
        if tags:
            attrs["tags"] = tags
        attrs.update(lock_attrs(bucket, req, self._now(), defaults=False))  # not the source's
        attrs.update(self._new_object_acl(ctx, bucket, req))  # type: ignore[attr-defined]  # nor its ACL
        # The copy is a new single-part object: multipart sources get a fresh MD5 ETag.
        want_algo = (req.get("ChecksumAlgorithm") or "").upper() or None
        src_ck = src.attrs.get("checksum")
        sealing = self.sse_keys.choose(ctx, bucket, key, req, customer)
        need = []
        # The copy's ETag comes from its data's MD5, which the source's ETag is only when it is a
        # single-part object that shows the MD5 of its data; and it shows it only if the copy does.
        if src.attrs.get("parts") or not md5_etag(src.attrs.get("sse")):
            need.append("MD5")
        if want_algo and not (
            src_ck and src_ck["algorithm"] == want_algo and src_ck.get("type") == "FULL_OBJECT"
        ):
            if want_algo not in CHECKSUM_ALGORITHMS:
                raise ServiceError("InvalidRequest", "Checksum algorithm provided is unsupported.", 400)
            need.append(want_algo)
        digests: dict[str, bytes] = {}
        if sealing or src.attrs.get("sse"):
            # Encrypted on either side: the bytes are re-encrypted for the destination.
            blob, inline, digests = await self._recrypt(
                ctx, src, src_inline, src_customer, sealing, tuple(need)
            )
            if sealing:
                attrs["sse"] = sealing.record
        else:
            blob = self._link_blob(src.blob) if src.blob else None
            inline = src_inline
        try:
            if src_ck and src_ck.get("type") == "FULL_OBJECT" and not want_algo:
                attrs["checksum"] = dict(src_ck)
            if need:
                digests = digests or await asyncio.get_running_loop().run_in_executor(
                    _pool, _digest, self.blobs.path(blob) if blob else inline, tuple(need)
                )
                if want_algo in digests:
                    attrs["checksum"] = {
                        "algorithm": want_algo,
                        "value": b64(digests[want_algo]),
                        "type": "FULL_OBJECT",
                    }
            elif want_algo and src_ck:
                attrs["checksum"] = dict(src_ck)
            md5 = digests.get("MD5") or bytes.fromhex(src.etag.strip('"'))  # (see `need`)
            etag = etag_of(attrs.get("sse"), md5)
            row = ObjectRow(
                0,
                bucket.name,
                key,
                self._new_version_id(bucket),
                True,
                False,
                blob,
                src.size,
                etag,
                self._now(),
                storage_class,
                attrs,
            )
            versioning = await self._commit_object(
                bucket, row, write_condition(key, req.get("IfMatch"), req.get("IfNoneMatch")), inline
            )
        except Exception:  # not CancelledError: a cancelled request's write may still commit
            if blob:
                self.blobs.delete(blob)
            raise
        result: dict[str, Any] = {"ETag": row.etag, "LastModified": to_datetime(row.modified)}
        ck = attrs.get("checksum")
        if ck:
            result[f"Checksum{ck['algorithm']}"] = ck["value"]
            result["ChecksumType"] = ck.get("type", "FULL_OBJECT")
        out: dict[str, Any] = {"CopyObjectResult": result}
        if sealing:
            out.update(headers_of(sealing.record, customer), **context_header(sealing.record))
        if versioning:
            out["VersionId"] = row.version_id
        if src_bucket.versioning:
            out["CopySourceVersionId"] = src.version_id
        expiration = self._expiration_header(bucket, row)
        if expiration:
            out["Expiration"] = expiration
        return out

    # -- GetObjectAttributes ---------------------------------------------------------------------

    def get_object_attributes(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        bucket = self._require_bucket(req["Bucket"])
        row = authorized_object(req) or self._read_version(bucket.name, req["Key"], req.get("VersionId"))
        require_customer(row.attrs.get("sse"), customer_key(req, ctx.http.secure))
        wanted = set(req.get("ObjectAttributes") or [])
        if not wanted:
            raise ServiceError("InvalidArgument", "Invalid attribute name specified.", 400)
        out: dict[str, Any] = {"LastModified": to_datetime(row.modified)}
        if bucket.versioning:
            out["VersionId"] = row.version_id
        if "ETag" in wanted:
            out["ETag"] = row.etag.strip('"')
        if "StorageClass" in wanted:
            out["StorageClass"] = row.storage_class
        if "ObjectSize" in wanted:
            out["ObjectSize"] = row.size
        if "Checksum" in wanted and row.attrs.get("checksum"):
            out["Checksum"] = checksum_fields(row)
        if "ObjectParts" in wanted and row.attrs.get("parts"):
            sizes = row.attrs["parts"]
            part_cks = row.attrs.get("part_checksums") or []
            marker = int(req.get("PartNumberMarker") or 0)
            max_parts = int(req.get("MaxParts") or 1000)
            numbers = list(range(marker + 1, len(sizes) + 1))[:max_parts]
            parts = []
            for n in numbers:
                p: dict[str, Any] = {"PartNumber": n, "Size": sizes[n - 1]}
                if n - 1 < len(part_cks) and part_cks[n - 1]:
                    p[f"Checksum{row.attrs['checksum']['algorithm']}"] = part_cks[n - 1]
                parts.append(p)
            truncated = bool(numbers) and numbers[-1] < len(sizes)
            out["ObjectParts"] = {
                "TotalPartsCount": len(sizes),
                "PartNumberMarker": marker,
                "NextPartNumberMarker": numbers[-1] if numbers else marker,
                "MaxParts": max_parts,
                "IsTruncated": truncated,
                "Parts": parts,
            }
        return out
