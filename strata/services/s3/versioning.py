"""Bucket versioning state: unversioned ('') -> Enabled <-> Suspended (never back to unversioned).

The version rules themselves (new ids when Enabled, the `null` version otherwise, delete
markers) live where objects are written: `S3Core.new_version_id` and `ObjectOperations._delete_one`.
"""

from __future__ import annotations

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.s3.core import S3Core
from strata.services.s3.lock_rules import lock_enabled


class VersioningOperations(S3Core):
    async def put_bucket_versioning(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        config = req.get("VersioningConfiguration") or {}
        status = config.get("Status")
        if config.get("MFADelete") == "Enabled":
            # MFA Delete needs a root MFA device Strata does not have: refused, not recorded.
            raise ServiceError("NotImplemented", "MFADelete=Enabled is not implemented by Strata", 501)
        if status not in ("Enabled", "Suspended"):
            raise ServiceError(
                "MalformedXML",
                "The XML you provided was not well-formed or did not validate against our published schema",
                400,
            )

        def write() -> None:
            b = self._bucket_for_write(req["Bucket"])
            if status == "Suspended" and lock_enabled(b):
                raise ServiceError(
                    "InvalidBucketState",
                    "An Object Lock configuration is present on this bucket, so the versioning state cannot be changed.",
                    409,
                )
            self.store.set_bucket_field(req["Bucket"], "versioning", status)

        await self._write(write, bucket=req["Bucket"])
        return {}

    def get_bucket_versioning(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        b = self._require_bucket(req["Bucket"])
        return {"Status": b.versioning} if b.versioning else {}
