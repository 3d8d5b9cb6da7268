"""ListObjects, ListObjectsV2 and ListObjectVersions as range scans.

Each listing walks an index from a start key forward in batches. With a delimiter, the first
key under a new common prefix yields that prefix and the scan seeks straight past everything
under it (`prefix_end(cp)`), so a page costs O(page size + prefixes returned) index steps
whatever the bucket holds.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import quote

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.s3.core import S3Core, owner_id, plausible_version_id, to_datetime
from strata.services.s3.positions import version_position
from strata.services.s3.restore import restore_status
from strata.services.s3.store import BucketRow, ObjectRow, prefix_end

Entry = ObjectRow | str  # an object version, or a common prefix


def _encode_token(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode("utf-8", "surrogatepass")).decode()


def _decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode("utf-8", "surrogatepass")
    except ValueError:
        raise ServiceError(
            "InvalidArgument",
            "The continuation token provided is incorrect",
            400,
            fields={"ArgumentName": "continuation-token"},
        ) from None


def _max_keys(value: int | None) -> int:
    if value is None:
        return 1000
    if value < 0:
        raise ServiceError(
            "InvalidArgument",
            "Argument maxKeys must be an integer between 0 and 2147483647",
            400,
            fields={"ArgumentName": "maxKeys", "ArgumentValue": str(value)},
        )
    return min(value, 1000)


def url_encoder(encoding_type: str | None) -> Callable[[str], str]:
    """The key encoder for `encoding-type` (only `url` exists): keys any XML can carry."""
    if encoding_type is None or encoding_type == "":
        return lambda s: s
    if encoding_type != "url":
        raise ServiceError(
            "InvalidArgument",
            "Invalid Encoding Method specified in Request",
            400,
            fields={"ArgumentName": "encoding-type", "ArgumentValue": encoding_type},
        )
    return lambda s: quote(s, safe="/~") if s is not None else s


# Characters XML 1.0 cannot carry, not even as character references.
_XML_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(text: str) -> bool:
    """Whether XML 1.0 can carry `text` (escaped or not)."""
    return _XML_ILLEGAL.search(text) is None


def answer_encoding(requested: str | None, texts: Iterable[str | None]) -> str | None:
    """The encoding-type a listing answers with: the one requested, else `url` if it must.

    S3 puts a key with a control character (U+0001..U+001F but tab/LF/CR, U+FFFE...) into its
    XML as `&#x1;`, which XML 1.0 forbids: strict parsers (botocore's included, when it did not ask
    for url encoding itself) cannot read that page at all. Strata instead answers such a page
    url-encoded and says so in `EncodingType`, as if `encoding-type=url` had been sent: every
    response parses, and the keys arrive intact. Pages of ordinary keys are untouched.
    """
    if requested:
        return requested
    return "url" if _XML_ILLEGAL.search("".join(t for t in texts if t)) else None


def _page_texts(page: list[Entry]) -> Iterator[str]:
    for e in page:
        yield e if isinstance(e, str) else e.key


def _owner_dict(account: str) -> dict[str, str]:
    """An Owner element: the canonical id alone (S3 stopped returning DisplayName on November 21, 2025)."""
    return {"ID": owner_id(account)}


def _common_prefix(key: str, prefix: str, delimiter: str | None) -> str | None:
    if not delimiter:
        return None
    i = key.find(delimiter, len(prefix))
    return key[: i + len(delimiter)] if i >= 0 else None


class ListingOperations(S3Core):
    # -- scans -----------------------------------------------------------------------------------

    def _iter_current(
        self, bucket: str, prefix: str, delimiter: str | None, after: str, batch: int
    ) -> Iterator[Entry]:
        """Visible objects and common prefixes after `after`, in key order."""
        end = prefix_end(prefix)
        cursor, inclusive = (after, False) if after and after >= prefix else (prefix, True)
        while True:
            n = 0
            for row in self.store.current_range(bucket, cursor, inclusive, end, batch):
                n += 1
                cp = _common_prefix(row.key, prefix, delimiter)
                if cp is not None:
                    if cp != after:
                        yield cp
                    cursor, inclusive = prefix_end(cp) or "", True
                    break
                yield row
                cursor, inclusive = row.key, False
            else:
                if n < batch:
                    return

    def _iter_versions(
        self,
        bucket: str,
        prefix: str,
        delimiter: str | None,
        key_marker: str,
        version_marker: str | None,
        batch: int,
    ) -> Iterator[Entry]:
        """Every version and delete marker after the markers: key order, newest first per key."""
        end = prefix_end(prefix)
        start, after_id = prefix, None
        skip_cp = None
        if key_marker and key_marker >= prefix:
            start, after_id = key_marker, 0
            skip_cp = key_marker
            if version_marker:
                after_id = self._version_marker_position(bucket, key_marker, version_marker)
        while True:
            n = 0
            for row in self.store.versions_range(bucket, start, after_id, end, batch):
                n += 1
                cp = _common_prefix(row.key, prefix, delimiter)
                if cp is not None:
                    if cp != skip_cp:
                        yield cp
                    start, after_id = prefix_end(cp) or "", None
                    break
                yield row
                start, after_id = row.key, row.id
            else:
                if n < batch:
                    return

    def _version_marker_position(self, bucket: str, key: str, version_marker: str) -> int | None:
        """Where a listing resumes inside `key`: after the marker's version, which need not exist.

        A version id carries its sequence number (`positions`), so a version deleted since the
        last page still marks its place. A `null` version or an id from before that encoding
        that no longer exists marks no place: the listing resumes at the key's newest version
        (it may repeat versions, never skips one). Anything that cannot be a version id is
        S3's InvalidArgument.
        """
        row = self.store.version(bucket, key, version_marker)
        if row is not None:
            return row.id
        if version_marker != "null" and not plausible_version_id(version_marker):
            raise ServiceError(
                "InvalidArgument",
                "Invalid version id specified",
                400,
                fields={"ArgumentName": "version-id-marker", "ArgumentValue": version_marker},
            )
        return version_position(version_marker)

    @staticmethod
    def _page(entries: Iterator[Entry], max_keys: int) -> tuple[list[Entry], bool]:
        page: list[Entry] = []
        if max_keys == 0:
            return page, False
        for e in entries:
            if len(page) == max_keys:
                return page, True
            page.append(e)
        return page, False

    @staticmethod
    def _content(
        bucket: BucketRow, row: ObjectRow, owner: dict | None, restore_at: float | None = None
    ) -> dict[str, Any]:
        """One listed object; `owner` is its bucket's owner, or None when no Owner is shown (while
        ACLs are on, an object another account owns shows that account)."""
        item: dict[str, Any] = {
            "Key": row.key,
            "LastModified": to_datetime(row.modified),
            "ETag": row.etag,
            "Size": row.size,
            "StorageClass": row.storage_class,
        }
        ck = row.attrs.get("checksum")
        if ck:
            item["ChecksumAlgorithm"] = [ck["algorithm"]]
            item["ChecksumType"] = ck.get("type", "FULL_OBJECT")
        if owner:
            acl = row.attrs.get("acl") if "ownership" in bucket.config else None
            item["Owner"] = _owner_dict(acl["owner"]) if acl else owner
        if restore_at is not None and row.attrs.get("restore"):
            status = restore_status(row.attrs, restore_at)
            if status:
                item["RestoreStatus"] = status
        return item

    def _restore_at(self, req: dict) -> float | None:
        """Now, when the listing asked for OptionalObjectAttributes=RestoreStatus."""
        return self._now() if "RestoreStatus" in (req.get("OptionalObjectAttributes") or []) else None

    @staticmethod
    def _owner(bucket: BucketRow) -> dict[str, str]:
        return _owner_dict(bucket.config.get("owner", ""))

    # -- operations ------------------------------------------------------------------------------

    async def _listed(
        self, bucket: str, prefix: str, delimiter: str | None, after: str, max_keys: int
    ) -> tuple[list[Entry], bool]:
        """A page of the listing, read through `store.read` (on PostgreSQL in a read thread)."""
        return await self.store.db.read(
            lambda: self._page(
                self._iter_current(bucket, prefix, delimiter, after, min(max_keys + 1, 1001)), max_keys
            )
        )

    async def list_objects_v2(self, ctx: RequestContext, req: dict) -> dict:
        bucket = self._require_bucket(req["Bucket"])
        self._count(ctx, bucket.name)
        enc = url_encoder(req.get("EncodingType"))
        prefix, delimiter = req.get("Prefix") or "", req.get("Delimiter") or None
        max_keys = _max_keys(req.get("MaxKeys"))
        token = req.get("ContinuationToken")
        after = _decode_token(token) if token else (req.get("StartAfter") or "")
        page, truncated = await self._listed(bucket.name, prefix, delimiter, after, max_keys)
        owner = self._owner(bucket) if req.get("FetchOwner") else None
        restore_at = self._restore_at(req)
        encoding = answer_encoding(
            req.get("EncodingType"), [prefix, delimiter, req.get("StartAfter"), *_page_texts(page)]
        )
        enc = url_encoder(encoding)
        out: dict[str, Any] = {
            "Name": bucket.name,
            "Prefix": enc(prefix),
            "MaxKeys": max_keys,
            "KeyCount": len(page),
            "IsTruncated": truncated,
            "Contents": [
                {**self._content(bucket, e, owner, restore_at), "Key": enc(e.key)}
                for e in page
                if isinstance(e, ObjectRow)
            ],
            "CommonPrefixes": [{"Prefix": enc(e)} for e in page if isinstance(e, str)],
        }
        if delimiter:
            out["Delimiter"] = enc(delimiter)
        if encoding:
            out["EncodingType"] = encoding
        if token:
            out["ContinuationToken"] = token
        if req.get("StartAfter"):
            out["StartAfter"] = enc(req["StartAfter"])
        if truncated:
            last = page[-1]
            out["NextContinuationToken"] = _encode_token(last if isinstance(last, str) else last.key)
        return _drop_empty(out)

    async def list_objects(self, ctx: RequestContext, req: dict) -> dict:
        bucket = self._require_bucket(req["Bucket"])
        self._count(ctx, bucket.name)
        enc = url_encoder(req.get("EncodingType"))
        prefix, delimiter = req.get("Prefix") or "", req.get("Delimiter") or None
        max_keys = _max_keys(req.get("MaxKeys"))
        marker = req.get("Marker") or ""
        page, truncated = await self._listed(bucket.name, prefix, delimiter, marker, max_keys)
        owner = self._owner(bucket)
        restore_at = self._restore_at(req)
        encoding = answer_encoding(req.get("EncodingType"), [prefix, delimiter, marker, *_page_texts(page)])
        enc = url_encoder(encoding)
        out: dict[str, Any] = {
            "Name": bucket.name,
            "Prefix": enc(prefix),
            "Marker": enc(marker),
            "MaxKeys": max_keys,
            "IsTruncated": truncated,
            "Contents": [
                {**self._content(bucket, e, owner, restore_at), "Key": enc(e.key)}
                for e in page
                if isinstance(e, ObjectRow)
            ],
            "CommonPrefixes": [{"Prefix": enc(e)} for e in page if isinstance(e, str)],
        }
        if delimiter:
            out["Delimiter"] = enc(delimiter)
            if truncated:
                last = page[-1]
                out["NextMarker"] = enc(last if isinstance(last, str) else last.key)
        if encoding:
            out["EncodingType"] = encoding
        return _drop_empty(out)

    def list_object_versions(self, ctx: RequestContext, req: dict) -> dict:
        bucket = self._require_bucket(req["Bucket"])
        self._count(ctx, bucket.name)
        enc = url_encoder(req.get("EncodingType"))
        prefix, delimiter = req.get("Prefix") or "", req.get("Delimiter") or None
        max_keys = _max_keys(req.get("MaxKeys"))
        key_marker = req.get("KeyMarker") or ""
        version_marker = req.get("VersionIdMarker") or None
        if version_marker and not key_marker:
            raise ServiceError(
                "InvalidArgument",
                "A version-id marker cannot be specified without a key marker.",
                400,
                fields={"ArgumentName": "version-id-marker", "ArgumentValue": version_marker},
            )
        entries = self._iter_versions(
            bucket.name, prefix, delimiter, key_marker, version_marker, min(max_keys + 1, 1001)
        )
        page, truncated = self._page(entries, max_keys)
        owner = self._owner(bucket)
        restore_at = self._restore_at(req)
        encoding = answer_encoding(
            req.get("EncodingType"), [prefix, delimiter, key_marker, *_page_texts(page)]
        )
        enc = url_encoder(encoding)
        versions, markers, prefixes = [], [], []
        for e in page:
            if isinstance(e, str):
                prefixes.append({"Prefix": enc(e)})
            elif e.dm:
                markers.append(
                    {
                        "Owner": _owner_dict(bucket.config.get("owner", "")),
                        "Key": enc(e.key),
                        "VersionId": e.version_id,
                        "IsLatest": e.latest,
                        "LastModified": to_datetime(e.modified),
                    }
                )
            else:
                v = self._content(bucket, e, owner, restore_at)
                v.update(Key=enc(e.key), VersionId=e.version_id, IsLatest=e.latest)
                versions.append(v)
        out: dict[str, Any] = {
            "Name": bucket.name,
            "Prefix": enc(prefix),
            "KeyMarker": enc(key_marker),
            "MaxKeys": max_keys,
            "IsTruncated": truncated,
            "Versions": versions,
            "DeleteMarkers": markers,
            "CommonPrefixes": prefixes,
        }
        if version_marker:
            out["VersionIdMarker"] = version_marker
        if delimiter:
            out["Delimiter"] = enc(delimiter)
        if encoding:
            out["EncodingType"] = encoding
        if truncated:
            last = page[-1]
            if isinstance(last, str):
                out["NextKeyMarker"] = enc(last)
            else:
                out["NextKeyMarker"] = enc(last.key)
                out["NextVersionIdMarker"] = last.version_id
        return _drop_empty(out)


def _drop_empty(out: dict[str, Any]) -> dict[str, Any]:
    """Empty lists are absent elements in S3's XML."""
    return {k: v for k, v in out.items() if v != [] and v is not None}
