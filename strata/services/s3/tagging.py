"""Object tagging: Put/Get/DeleteObjectTagging (tags set on PUT come with `x-amz-tagging`)."""

from __future__ import annotations

from typing import Any

from strata.context import RequestContext
from strata.services.s3.core import S3Core
from strata.services.s3.names import check_tags
from strata.services.s3.store import BucketRow, ObjectRow


class TaggingOperations(S3Core):
    # -- tagging ---------------------------------------------------------------------------------

    def _tag_target(self, req: dict) -> tuple[BucketRow, ObjectRow]:
        """The bucket and version a tagging write changes, read inside the write."""
        bucket = self._bucket_for_write(req["Bucket"])
        return bucket, self._read_version(bucket.name, req["Key"], req.get("VersionId"))

    async def put_object_tagging(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        tags = check_tags((req.get("Tagging") or {}).get("TagSet") or [])

        def write() -> dict:
            bucket, row = self._tag_target(req)
            row.attrs["tags"] = tags
            self.store.update_attrs(row)
            return {"VersionId": row.version_id} if bucket.versioning else {}

        return await self._write(write)

    async def get_object_tagging(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        bucket = self._require_bucket(req["Bucket"])
        row = await self._object(bucket, req)  # type: ignore[attr-defined]
        out: dict[str, Any] = {
            "TagSet": [{"Key": k, "Value": v} for k, v in (row.attrs.get("tags") or {}).items()]
        }
        if bucket.versioning:
            out["VersionId"] = row.version_id
        return out

    async def delete_object_tagging(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])

        def write() -> dict:
            bucket, row = self._tag_target(req)
            row.attrs.pop("tags", None)
            self.store.update_attrs(row)
            return {"VersionId": row.version_id} if bucket.versioning else {}

        return await self._write(write)
