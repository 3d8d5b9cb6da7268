"""Multipart uploads: create, upload part (and part copy), complete, abort, list parts/uploads.

Parts are blobs of their own. Completing concatenates them into one new blob in the kernel
(`copy_file_range`, no bytes through Python), then one transaction makes the object visible and
forgets the upload; the part blobs are unlinked afterwards. ETag is MD5(part MD5s)-N; checksums
are COMPOSITE (hash of part checksums, -N) or FULL_OBJECT (CRCs combined from the parts).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.s3.acl_rules import ANONYMOUS_OWNER
from strata.services.s3.conditions import parse_copy_range
from strata.services.s3.core import S3Core, no_such_bucket, owner_id, to_datetime
from strata.services.s3.ingest import (
    CHECKSUM_ALGORITHMS,
    CRC_BYTES,
    _pool,
    b64,
    combine_crc,
    new_hasher,
    publish,
    receive,
    requested_checksums,
)
from strata.services.s3.listing import answer_encoding, url_encoder
from strata.services.s3.lock_rules import LOCK_ATTRS, default_retention, lock_attrs, require_integrity_header
from strata.services.s3.names import check_key, check_storage_class, parse_tagging_header
from strata.services.s3.objects import content_attrs
from strata.services.s3.positions import upload_id_at, upload_position
from strata.services.s3.sse import context_header, customer_key, etag_of, headers_of, require_customer
from strata.services.s3.sse_io import plain_pieces, plain_sizes, run, transcode
from strata.services.s3.store import BucketRow, ObjectRow, prefix_end
from strata.storage import BlobStore


def _no_such_upload(upload_id: str) -> ServiceError:
    return ServiceError(
        "NoSuchUpload",
        "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
        404,
        fields={"UploadId": upload_id},
    )


def _concatenate(blobs: BlobStore, part_blobs: list[str]) -> Any:
    """Copy the parts into one temp file inside the kernel; returns the temp path."""
    tmp, f = blobs.open_temp()
    try:
        out_fd = f.fileno()
        for blob in part_blobs:
            with open(blobs.path(blob), "rb") as src:
                remaining = os.fstat(src.fileno()).st_size
                while remaining > 0:
                    n = os.copy_file_range(src.fileno(), out_fd, min(remaining, 1 << 30))
                    if n == 0:
                        raise OSError("short copy")
                    remaining -= n
        f.close()
        return tmp
    except BaseException:
        f.close()
        blobs.discard(tmp)
        raise


def _copy_range(
    blobs: BlobStore, src_path: Any, first: int, length: int, algorithm: str | None
) -> tuple[Any, bytes, str | None]:
    """A byte range of a blob (a path, or an inline object's bytes) into a new temp file, with its
    MD5 (and checksum) computed."""
    tmp, f = blobs.open_temp()
    md5 = hashlib.md5()
    h = new_hasher(algorithm) if algorithm else None
    try:
        with open(src_path, "rb") if not isinstance(src_path, bytes) else io.BytesIO(src_path) as src:
            src.seek(first)
            remaining = length
            while remaining > 0:
                chunk = src.read(min(remaining, 4 << 20))
                if not chunk:
                    raise OSError("short read")
                md5.update(chunk)
                if h is not None:
                    h.update(chunk)
                f.write(chunk)
                remaining -= len(chunk)
        f.close()
        return tmp, md5.digest(), b64(h.digest()) if h is not None else None
    except BaseException:
        f.close()
        blobs.discard(tmp)
        raise


def initiator_id(ctx: RequestContext) -> str:
    """An upload's Initiator ID as S3 gives it: an account's canonical user id when its root (or
    nobody: the anonymous user's) starts it, else the IAM user's or role session's ARN."""
    principal = ctx.principal
    if principal is None or principal.kind == "root":
        return owner_id(ctx.account_id)
    if not principal.account_id:
        return owner_id(ANONYMOUS_OWNER)
    return principal.arn


class MultipartOperations(S3Core):
    def _upload(self, upload_id: str, bucket: str, key: str) -> dict[str, Any]:
        up = self.store.upload(upload_id)
        if up is None or up[0] != bucket or up[1] != key:
            raise _no_such_upload(upload_id)
        return up[3]

    async def _read_upload(self, upload_id: str, bucket: str, key: str) -> dict[str, Any]:
        """`_upload` through `store.read`: on PostgreSQL in a read thread, not on the event loop
        (UploadPart is as hot as PutObject for large files)."""
        return await self.store.db.read(lambda: self._upload(upload_id, bucket, key))

    def _part_number(self, n: int | None) -> int:
        if n is None or not 1 <= n <= self.limits.max_parts:
            raise ServiceError(
                "InvalidArgument",
                f"Part number must be an integer between 1 and {self.limits.max_parts}, inclusive",
                400,
                fields={"ArgumentName": "partNumber", "ArgumentValue": str(n)},
            )
        return n

    @staticmethod
    def _upload_people(bucket: BucketRow, attrs: dict) -> tuple[dict[str, str], dict[str, str]]:
        """(Owner, Initiator) of an upload in a listing: the account that will own the object (as
        ListObjects shows it), and who called CreateMultipartUpload (the owner, for uploads from
        before the initiator was kept). No DisplayName: S3 stopped returning it in November 2025."""
        acl = attrs.get("acl") if "ownership" in bucket.config else None
        owner = {"ID": owner_id(acl["owner"] if acl else bucket.config.get("owner", ""))}
        return owner, ({"ID": attrs["initiator"]} if attrs.get("initiator") else owner)

    async def create_multipart_upload(self, ctx: RequestContext, req: dict) -> dict:
        bucket = self._require_bucket(req["Bucket"])
        self._count(ctx, bucket.name)
        key = req["Key"]
        check_key(key)
        attrs = content_attrs(req)
        attrs["storage_class"] = check_storage_class(req.get("StorageClass"))
        if req.get("Tagging"):
            attrs["tags"] = parse_tagging_header(req["Tagging"])
        # The retention the headers name; the bucket's default is given when the object is made.
        attrs.update(lock_attrs(bucket, req, self._now(), defaults=False))
        attrs.update(self._new_object_acl(ctx, bucket, req))  # type: ignore[attr-defined]
        attrs["initiator"] = initiator_id(ctx)
        algorithm = (req.get("ChecksumAlgorithm") or "").upper() or None
        ck_type = req.get("ChecksumType") or None
        if algorithm and algorithm not in CHECKSUM_ALGORITHMS:
            raise ServiceError("InvalidRequest", "Checksum algorithm provided is unsupported.", 400)
        if ck_type and not algorithm:
            raise ServiceError(
                "InvalidRequest",
                "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.",
                400,
            )
        if algorithm:
            ck_type = ck_type or ("FULL_OBJECT" if algorithm == "CRC64NVME" else "COMPOSITE")
            if ck_type == "FULL_OBJECT" and algorithm not in CRC_BYTES:
                raise ServiceError(
                    "InvalidRequest",
                    f"The FULL_OBJECT checksum type cannot be used with the {algorithm.lower()} checksum algorithm.",
                    400,
                )
            if ck_type == "COMPOSITE" and algorithm == "CRC64NVME":
                raise ServiceError(
                    "InvalidRequest",
                    "The COMPOSITE checksum type cannot be used with the crc64nvme checksum algorithm.",
                    400,
                )
            attrs["checksum_algorithm"], attrs["checksum_type"] = algorithm, ck_type
        customer = customer_key(req, ctx.http.secure)
        sealing = self.sse_keys.choose(ctx, bucket, key, req, customer)
        if sealing:
            attrs["sse"] = sealing.record  # the parts are encrypted under the upload's keys
        initiated = self._now()
        upload_id = upload_id_at(initiated)

        def write() -> None:
            if self.store.bucket(bucket.name, cached=False) is None:
                raise no_such_bucket(bucket.name)
            self.store.insert_upload(upload_id, bucket.name, key, initiated, attrs)

        await self.store.db.write(write)
        out: dict[str, Any] = {"Bucket": bucket.name, "Key": key, "UploadId": upload_id}
        if algorithm:
            out.update(ChecksumAlgorithm=algorithm, ChecksumType=ck_type)
        if sealing:
            out.update(headers_of(sealing.record, customer), **context_header(sealing.record))
        return out

    def _part_keys(self, ctx: RequestContext, req: dict, attrs: dict) -> tuple[list[bytes] | None, dict]:
        """The layer keys a part of this upload is encrypted under (None: plaintext), and the SSE
        members of the part's answer. SSE-C uploads need their key with every part."""
        record = attrs.get("sse")
        customer = customer_key(req, ctx.http.secure)
        require_customer(record, customer)
        if not record:
            return None, {}
        return self.sse_keys.open(ctx, record, customer), headers_of(record, customer)

    async def upload_part(self, ctx: RequestContext, req: dict) -> dict:
        bucket = self._require_bucket(req["Bucket"])
        number = self._part_number(req.get("PartNumber"))
        attrs = await self._read_upload(req["UploadId"], bucket.name, req["Key"])
        if any(a in attrs for a in LOCK_ATTRS) or default_retention(bucket, self._now()):
            require_integrity_header(req)  # S3: required "if object lock parameters are specified"
        expected, algorithm = requested_checksums(req)
        up_algo = attrs.get("checksum_algorithm")
        if up_algo and algorithm and algorithm != up_algo:
            raise ServiceError(
                "InvalidRequest",
                f"Checksum Type mismatch occurred, expected checksum Type: {up_algo.lower()}, actual checksum Type: {algorithm.lower()}",
                400,
            )
        keys, sse_out = self._part_keys(ctx, req, attrs)
        got = await receive(
            self.blobs,
            req.get("Body"),
            max_size=self.limits.max_part_size,
            content_md5=req.get("ContentMD5"),
            expected=expected,
            algorithm=up_algo or algorithm,
            keys=keys,
        )
        self._count(ctx, bucket.name, bytes_in=got.size)
        blob = await publish(self.blobs, got)
        etag = etag_of(attrs.get("sse"), got.md5)

        def write() -> list[str]:
            self._upload(req["UploadId"], bucket.name, req["Key"])
            return self.store.put_part(
                req["UploadId"], number, blob, got.size, etag, self._now(), got.checksums
            )

        try:
            freed = await self.store.db.write(write)
        except Exception:  # not CancelledError: a cancelled request's write may still commit
            self.blobs.delete(blob)
            raise
        self._free_blobs(freed)
        out: dict[str, Any] = {"ETag": etag, **sse_out}
        for a, v in got.checksums.items():
            out[f"Checksum{a}"] = v
        return out

    async def upload_part_copy(self, ctx: RequestContext, req: dict) -> dict:
        bucket = self._require_bucket(req["Bucket"])
        number = self._part_number(req.get("PartNumber"))
        attrs = await self._read_upload(req["UploadId"], bucket.name, req["Key"])
        self._count(ctx, bucket.name)
        src, _, inline = await self._read_copy_source(req)  # type: ignore[attr-defined]
        first, last = (
            parse_copy_range(req["CopySourceRange"], src.size)
            if req.get("CopySourceRange")
            else (0, src.size - 1)
        )
        length = max(0, last - first + 1)
        if length > self.limits.max_part_size:
            raise ServiceError("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size", 400)
        algorithm = attrs.get("checksum_algorithm")
        loop = asyncio.get_running_loop()
        src_customer = customer_key(req, ctx.http.secure, "CopySourceSSECustomer")
        require_customer(src.attrs.get("sse"), src_customer, copy=True)
        keys, sse_out = self._part_keys(ctx, req, attrs)
        source = self.blobs.path(src.blob) if src.blob else inline
        if keys or src.attrs.get("sse"):
            # Encrypted on either side: the range's plaintext, encrypted for this upload.
            src_keys = (
                self.sse_keys.open(ctx, src.attrs["sse"], src_customer) if src.attrs.get("sse") else None
            )
            pieces = plain_pieces(
                source, src_keys, plain_sizes(src.attrs, src.size), first, first + length - 1
            )
            need = (algorithm,) if algorithm else ()
            tmp, _, digests = await run(transcode, self.blobs, pieces, keys, need)
            md5 = digests["MD5"]
            ck = b64(digests[algorithm]) if algorithm else None
        else:
            tmp, md5, ck = await loop.run_in_executor(
                _pool, _copy_range, self.blobs, source, first, length, algorithm
            )
        blob = await loop.run_in_executor(_pool, self.blobs.publish, tmp)
        etag = etag_of(attrs.get("sse"), md5)
        checksums = {algorithm: ck} if algorithm and ck else {}
        modified = self._now()

        def write() -> list[str]:
            self._upload(req["UploadId"], bucket.name, req["Key"])
            return self.store.put_part(req["UploadId"], number, blob, length, etag, modified, checksums)

        try:
            freed = await self.store.db.write(write)
        except Exception:  # not CancelledError: a cancelled request's write may still commit
            self.blobs.delete(blob)
            raise
        self._free_blobs(freed)
        result: dict[str, Any] = {"ETag": etag, "LastModified": to_datetime(modified)}
        for a, v in checksums.items():
            result[f"Checksum{a}"] = v
        out: dict[str, Any] = {"CopyPartResult": result, **sse_out}
        if src.version_id != "null":
            out["CopySourceVersionId"] = src.version_id
        return out

    async def complete_multipart_upload(self, ctx: RequestContext, req: dict) -> dict:
        bucket = self._require_bucket(req["Bucket"])
        key, upload_id = req["Key"], req["UploadId"]
        self._count(ctx, bucket.name)

        def reads() -> tuple[dict[str, Any], list[dict[str, Any]]]:
            return self._upload(upload_id, bucket.name, key), self.store.parts(upload_id)

        attrs, parts = await self.store.db.read(reads)
        requested = (req.get("MultipartUpload") or {}).get("Parts") or []
        if not requested:
            raise ServiceError(
                "MalformedXML",
                "The XML you provided was not well-formed or did not validate against our published schema",
                400,
            )
        stored = {p["PartNumber"]: p for p in parts}
        numbers = [want.get("PartNumber") or 0 for want in requested]
        if any(b <= a for a, b in zip(numbers, numbers[1:], strict=False)):
            raise ServiceError(
                "InvalidPartOrder",
                "The list of parts was not in ascending order. Parts must be ordered by part number.",
                400,
                fields={"UploadId": upload_id},
            )
        chosen: list[dict[str, Any]] = []
        for i, (n, want) in enumerate(zip(numbers, requested, strict=True)):
            part = stored.get(n)
            if part is None or (want.get("ETag") or "").strip('"') != part["ETag"].strip('"'):
                raise ServiceError(
                    "InvalidPart",
                    "One or more of the specified parts could not be found.  The part may not have been uploaded, or the specified entity tag may not have matched the part's entity tag.",
                    400,
                    fields={"UploadId": upload_id, "PartNumber": str(n), "ETag": want.get("ETag", "")},
                )
            if i < len(requested) - 1 and part["Size"] < self.limits.min_part_size:
                raise ServiceError(
                    "EntityTooSmall",
                    "Your proposed upload is smaller than the minimum allowed object size.",
                    400,
                    fields={
                        "ProposedSize": str(part["Size"]),
                        "MinSizeAllowed": str(self.limits.min_part_size),
                        "PartNumber": str(n),
                        "ETag": part["ETag"],
                    },
                )
            chosen.append(part)
        total = sum(p["Size"] for p in chosen)
        if total > self.limits.max_object_size:
            raise ServiceError("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size", 400)
        if req.get("MpuObjectSize") is not None and int(req["MpuObjectSize"]) != total:
            raise ServiceError(
                "InvalidRequest",
                f"The provided 'x-amz-mp-object-size' header value {req['MpuObjectSize']} does not match what was computed: {total}",
                400,
            )
        md5s = b"".join(bytes.fromhex(p["ETag"].strip('"')) for p in chosen)
        etag = f'"{hashlib.md5(md5s).hexdigest()}-{len(chosen)}"'
        obj_attrs = {
            k: v
            for k, v in attrs.items()
            if k in ("headers", "meta", "expires", "tags", "sse", "acl", *LOCK_ATTRS)
        }
        customer = customer_key(req, ctx.http.secure)
        if customer is not None:
            require_customer(attrs.get("sse"), customer)
        obj_attrs["parts"] = [p["Size"] for p in chosen]
        checksum = self._multipart_checksum(attrs, chosen, req)
        if checksum:
            obj_attrs["checksum"] = checksum
            obj_attrs["part_checksums"] = [p["checksums"].get(checksum["algorithm"]) for p in chosen]
        loop = asyncio.get_running_loop()
        tmp = await loop.run_in_executor(_pool, _concatenate, self.blobs, [p["blob"] for p in chosen])
        blob = await loop.run_in_executor(_pool, self.blobs.publish, tmp)
        row = ObjectRow(
            0,
            bucket.name,
            key,
            self._new_version_id(bucket),
            True,
            False,
            blob,
            total,
            etag,
            self._now(),
            attrs.get("storage_class", "STANDARD"),
            obj_attrs,
        )
        freed: list[str] = []

        def finish(_current: ObjectRow | None) -> None:
            # Runs inside the object's commit transaction: the upload disappears with it.
            if self.store.upload(upload_id) is None:
                raise _no_such_upload(upload_id)
            freed[:] = self.store.delete_upload(upload_id)  # (once more if the write starts over)

        try:
            versioning = await self._commit_object(bucket, row, finish)
        except Exception:  # not CancelledError: a cancelled request's write may still commit
            self.blobs.delete(blob)
            raise
        self._free_blobs(freed)
        out: dict[str, Any] = {
            "Location": f"/{bucket.name}/{quote(key, safe='/~')}",  # a URL: the key url-encoded
            "Bucket": bucket.name,
            "Key": key,
            "ETag": etag,
            **headers_of(attrs.get("sse")),
        }
        if checksum:
            out[f"Checksum{checksum['algorithm']}"] = checksum["value"]
            out["ChecksumType"] = checksum["type"]
        if versioning:
            out["VersionId"] = row.version_id
        expiration = self._expiration_header(bucket, row)
        if expiration:
            out["Expiration"] = expiration
        return out

    @staticmethod
    def _multipart_checksum(attrs: dict, parts: list[dict], req: dict) -> dict[str, str] | None:
        algorithm = attrs.get("checksum_algorithm")
        if not algorithm:
            return None
        values = [p["checksums"].get(algorithm) for p in parts]
        if any(v is None for v in values):
            return None
        raw = [base64.b64decode(v) for v in values]
        if attrs.get("checksum_type") == "FULL_OBJECT":
            crc = int.from_bytes(raw[0], "big")
            for p, r in zip(parts[1:], raw[1:], strict=True):
                crc = combine_crc(algorithm, crc, int.from_bytes(r, "big"), p["Size"])
            value = b64(crc.to_bytes(CRC_BYTES[algorithm], "big"))
            ck = {"algorithm": algorithm, "value": value, "type": "FULL_OBJECT"}
        else:
            h = new_hasher(algorithm)
            h.update(b"".join(raw))
            ck = {"algorithm": algorithm, "value": f"{b64(h.digest())}-{len(parts)}", "type": "COMPOSITE"}
        sent = req.get(f"Checksum{algorithm}")
        if sent and sent != ck["value"]:
            raise ServiceError(
                "BadDigest",
                f"The {algorithm.lower()} you specified did not match the calculated checksum.",
                400,
            )
        return ck

    async def abort_multipart_upload(self, ctx: RequestContext, req: dict) -> dict:
        bucket = self._require_bucket(req["Bucket"])
        self._count(ctx, bucket.name)

        def write() -> list[str]:
            self._upload(req["UploadId"], bucket.name, req["Key"])
            return self.store.delete_upload(req["UploadId"])

        self._free_blobs(await self.store.db.write(write))
        return {}

    def list_parts(self, ctx: RequestContext, req: dict) -> dict:
        bucket = self._require_bucket(req["Bucket"])
        self._count(ctx, bucket.name)
        attrs = self._upload(req["UploadId"], bucket.name, req["Key"])
        customer = customer_key(req, ctx.http.secure)
        if customer is not None:  # optional here; when sent, it must be the upload's
            require_customer(attrs.get("sse"), customer)
        max_parts = min(req.get("MaxParts") if req.get("MaxParts") is not None else 1000, 1000)
        marker = int(req.get("PartNumberMarker") or 0)
        parts = self.store.parts(req["UploadId"], marker, max_parts + 1)
        truncated = len(parts) > max_parts
        parts = parts[:max_parts]
        owner, initiator = self._upload_people(bucket, attrs)
        out: dict[str, Any] = {
            "Bucket": bucket.name,
            "Key": req["Key"],
            "UploadId": req["UploadId"],
            "PartNumberMarker": marker,
            "MaxParts": max_parts,
            "IsTruncated": truncated,
            "Initiator": initiator,
            "Owner": owner,
            "StorageClass": attrs.get("storage_class", "STANDARD"),
            "Parts": [
                {
                    "PartNumber": p["PartNumber"],
                    "LastModified": to_datetime(p["modified"]),
                    "ETag": p["ETag"],
                    "Size": p["Size"],
                    **{f"Checksum{a}": v for a, v in p["checksums"].items()},
                }
                for p in parts
            ],
        }
        if parts:
            out["NextPartNumberMarker"] = parts[-1]["PartNumber"]
        if attrs.get("checksum_algorithm"):
            out.update(ChecksumAlgorithm=attrs["checksum_algorithm"], ChecksumType=attrs["checksum_type"])
        return out

    def _iter_uploads(
        self, bucket: str, prefix: str, delimiter: str | None, key_marker: str, id_marker: str
    ) -> Iterator[tuple[str, str, float, dict] | str]:
        """Uploads after the markers and common prefixes, seeking past each prefix it yields.

        KeyMarker alone skips every upload of that key; with UploadIdMarker, the uploads up to
        and including that one in (initiated, upload id) order. The marker's upload need not
        still exist: its id carries its initiation time (`positions`). An id without one that
        no longer exists resumes at the key's first upload (may repeat, never skips).
        """
        end = prefix_end(prefix)
        start = max(key_marker, prefix)
        after: tuple[float, str] | None = None
        if id_marker:
            found = self.store.upload(id_marker)
            if found is not None and found[0] == bucket and found[1] == key_marker:
                after = (found[2], id_marker)
            else:
                at = upload_position(id_marker)
                after = (at, id_marker) if at is not None else None
        while True:
            for upload in self.store.uploads_from(bucket, start, end):
                upload_id, key = upload[0], upload[1]
                if (
                    key_marker
                    and key == key_marker
                    and (not id_marker or (after is not None and (upload[2], upload_id) <= after))
                ):
                    continue
                i = key.find(delimiter, len(prefix)) if delimiter else -1
                if i >= 0 and delimiter:
                    cp = key[: i + len(delimiter)]
                    if cp != key_marker:
                        yield cp
                    start = prefix_end(cp) or ""
                    break
                yield upload
            else:
                return

    def list_multipart_uploads(self, ctx: RequestContext, req: dict) -> dict:
        bucket = self._require_bucket(req["Bucket"])
        self._count(ctx, bucket.name)
        prefix, delimiter = req.get("Prefix") or "", req.get("Delimiter") or None
        max_uploads = min(req.get("MaxUploads") if req.get("MaxUploads") is not None else 1000, 1000)
        key_marker, id_marker = req.get("KeyMarker") or "", req.get("UploadIdMarker") or ""
        enc = url_encoder(req.get("EncodingType"))
        page: list[tuple[str, str, float, dict] | str] = []
        truncated = False
        for entry in self._iter_uploads(bucket.name, prefix, delimiter, key_marker, id_marker):
            if len(page) == max_uploads:
                truncated = True
                break
            page.append(entry)
        encoding = answer_encoding(
            req.get("EncodingType"),
            [prefix, delimiter, key_marker, *(e if isinstance(e, str) else e[1] for e in page)],
        )
        enc = url_encoder(encoding)
        uploads: list[dict[str, Any]] = []
        for entry in page:
            if isinstance(entry, str):
                continue
            upload_id, key, initiated, attrs = entry
            owner, initiator = self._upload_people(bucket, attrs)
            item = {
                "UploadId": upload_id,
                "Key": enc(key),
                "Initiated": to_datetime(initiated),
                "StorageClass": attrs.get("storage_class", "STANDARD"),
                "Owner": owner,
                "Initiator": initiator,
            }
            if attrs.get("checksum_algorithm"):
                item.update(
                    ChecksumAlgorithm=attrs["checksum_algorithm"], ChecksumType=attrs["checksum_type"]
                )
            uploads.append(item)
        out: dict[str, Any] = {
            "Bucket": bucket.name,
            "KeyMarker": enc(key_marker),
            "UploadIdMarker": id_marker,
            "Prefix": enc(prefix),
            "MaxUploads": max_uploads,
            "IsTruncated": truncated,
        }
        if uploads:
            out["Uploads"] = uploads
        prefixes = [e for e in page if isinstance(e, str)]
        if prefixes:
            out["CommonPrefixes"] = [{"Prefix": enc(p)} for p in prefixes]
        if delimiter:
            out["Delimiter"] = enc(delimiter)
        if encoding:
            out["EncodingType"] = encoding
        if truncated and page:
            last = page[-1]
            if isinstance(last, str):
                out["NextKeyMarker"] = enc(last)
            else:
                out["NextKeyMarker"], out["NextUploadIdMarker"] = enc(last[1]), last[0]
        return out
