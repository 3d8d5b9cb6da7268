"""Bucket operations: create (global names, LocationConstraint), head, delete, list, location,
tagging. Bucket names are global across regions, as in AWS.
"""

from __future__ import annotations

import base64
from typing import Any

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.s3.bpa import DEFAULT_BLOCK
from strata.services.s3.core import S3Core, owner_id, to_datetime
from strata.services.s3.names import KNOWN_REGIONS, check_bucket_name
from strata.sim.bucket_requests import bucket_requests
from strata.sim.server_access_logs import server_access_logs

MAX_BUCKET_TAGS = 50


class BucketOperations(S3Core):
    async def create_bucket(self, ctx: RequestContext, req: dict) -> dict:
        name = req["Bucket"]
        self._count(ctx, name)
        check_bucket_name(name)
        config = req.get("CreateBucketConfiguration") or {}
        for unsupported in ("Location", "Bucket", "Tags"):  # directory buckets; tags at creation
            if config.get(unsupported):
                raise ServiceError(
                    "NotImplemented",
                    f"CreateBucketConfiguration.{unsupported} is not implemented by Strata",
                    501,
                )
        constraint = config.get("LocationConstraint") or ""
        region = ctx.region or self.settings.region
        if constraint:
            if constraint not in KNOWN_REGIONS or constraint == "us-east-1":
                raise ServiceError(
                    "InvalidLocationConstraint",
                    "The specified location-constraint is not valid",
                    400,
                    fields={"LocationConstraint": constraint},
                )
            if constraint != region and region != "us-east-1":
                raise ServiceError(
                    "IllegalLocationConstraintException",
                    f"The {constraint} location constraint is incompatible for the region specific endpoint this request was sent to.",
                    400,
                )
            bucket_region = "eu-west-1" if constraint == "EU" else constraint
        else:
            if region != "us-east-1":
                raise ServiceError(
                    "IllegalLocationConstraintException",
                    "The unspecified location constraint is incompatible for the region specific endpoint this request was sent to.",
                    400,
                )
            bucket_region = "us-east-1"
        acl_config = self._bucket_acl_at_creation(ctx, req, DEFAULT_BLOCK)  # type: ignore[attr-defined]

        def write() -> dict:
            existing = self.store.bucket(name, cached=False)
            if existing is not None:
                if existing.config.get("owner", ctx.account_id) != ctx.account_id:
                    raise ServiceError(
                        "BucketAlreadyExists",
                        "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again.",
                        409,
                        fields={"BucketName": name},
                    )
                # AWS keeps a legacy 200 for re-creating your own bucket in us-east-1.
                if existing.region == "us-east-1" and bucket_region == "us-east-1":
                    return {"Location": f"/{name}"}
                raise ServiceError(
                    "BucketAlreadyOwnedByYou",
                    "Your previous request to create the named bucket succeeded and you already own it.",
                    409,
                    fields={"BucketName": name},
                )
            self.store.insert_bucket(name, bucket_region, self._now())
            # Block Public Access all on: S3's default for new buckets (bpa.py).
            # SSE-C writes blocked, as S3 does for new buckets since April 2026 (BlockedEncryptionTypes).
            config = {"owner": ctx.account_id, "bpa": dict(DEFAULT_BLOCK), "blocked_encryption": ["SSE-C"]}
            config.update(acl_config)  # Object Ownership and the bucket's ACL (acl.py)
            if req.get("ObjectLockEnabledForBucket"):  # Object Lock needs versioning, for good
                config["object_lock"] = {"enabled": True}
                self.store.set_bucket_field(name, "versioning", "Enabled")
            self.store.set_bucket_field(name, "config", config)
            return {"Location": f"/{name}"}

        return await self._write(write, bucket=name)

    def head_bucket(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        b = self._require_bucket(req["Bucket"])
        return {"BucketRegion": b.region}

    async def delete_bucket(self, ctx: RequestContext, req: dict) -> dict:
        name = req["Bucket"]
        self._count(ctx, name)

        def write() -> None:
            b = self._bucket_for_write(name)
            if not self.store.bucket_is_empty(name):
                msg = "The bucket you tried to delete is not empty"
                if b.versioning:
                    msg += ". You must delete all versions in the bucket."
                raise ServiceError("BucketNotEmpty", msg, 409, fields={"BucketName": name})
            self.store.delete_bucket(name)

        await self._write(write, bucket=name)
        bucket_requests.watch(name, "", [])  # its metrics configurations went with it
        server_access_logs.watch(name, None)  # and its logging configuration
        return {}

    def list_buckets(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx)
        limit = req.get("MaxBuckets")
        if limit is not None and not 1 <= limit <= 10_000:
            raise ServiceError(
                "InvalidArgument",
                "Argument max-buckets must be an integer between 1 and 10000",
                400,
                fields={"ArgumentName": "max-buckets", "ArgumentValue": str(limit)},
            )
        after = ""
        token = req.get("ContinuationToken")
        if token:
            try:
                after = base64.urlsafe_b64decode(token.encode()).decode()
            except ValueError:
                raise ServiceError(
                    "InvalidArgument",
                    "The continuation token provided is incorrect",
                    400,
                    fields={"ArgumentName": "continuation-token"},
                ) from None
        prefix = req.get("Prefix") or ""
        page = limit or 10_000
        rows = self._own_buckets(ctx.account_id, after, prefix, page + 1)
        region_filter = req.get("BucketRegion")
        if region_filter:
            rows = [r for r in rows if r.region == region_filter]
        out: dict[str, Any] = {
            "Buckets": [
                {"Name": r.name, "CreationDate": to_datetime(r.created), "BucketRegion": r.region}
                for r in rows[:page]
            ],
            "Owner": {"ID": owner_id(ctx.account_id)},  # (no DisplayName since November 2025)
        }
        if prefix:
            out["Prefix"] = prefix
        if limit is not None and len(rows) > page:
            out["ContinuationToken"] = base64.urlsafe_b64encode(rows[page - 1].name.encode()).decode()
        return out

    def _own_buckets(self, account: str, after: str, prefix: str, limit: int) -> list:
        """Up to `limit` buckets of one account after `after` (bucket names are global, a listing
        shows the caller's own)."""
        out: list = []
        while len(out) < limit:
            rows = self.store.list_buckets(after, prefix, limit)
            out += [r for r in rows if r.config.get("owner", account) == account]
            if len(rows) < limit:
                break
            after = rows[-1].name
        return out[:limit]

    def get_bucket_location(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        b = self._require_bucket(req["Bucket"])
        return {} if b.region == "us-east-1" else {"LocationConstraint": b.region}

    # -- tagging ---------------------------------------------------------------------------------

    async def put_bucket_tagging(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        tag_set = (req.get("Tagging") or {}).get("TagSet") or []
        if len(tag_set) > MAX_BUCKET_TAGS:
            raise ServiceError("InvalidTag", "Bucket tag count cannot be greater than 50", 400)
        tags: dict[str, str] = {}
        for t in tag_set:
            k = t.get("Key", "")
            if k in tags:
                raise ServiceError("InvalidTag", "Cannot provide multiple Tags with the same key", 400)
            if not k or len(k) > 128 or len(t.get("Value", "")) > 256:
                raise ServiceError("InvalidTag", "The TagKey you have provided is invalid", 400)
            if k.startswith("aws:"):
                raise ServiceError("InvalidTag", "System tags cannot be added/updated by requester", 400)
            tags[k] = t.get("Value", "")

        def write() -> None:
            self._bucket_for_write(req["Bucket"])
            self.store.set_bucket_field(req["Bucket"], "tags", tags)

        await self._write(write, bucket=req["Bucket"])
        return {}

    def get_bucket_tagging(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        b = self._require_bucket(req["Bucket"])
        if not b.tags:
            raise ServiceError(
                "NoSuchTagSet", "The TagSet does not exist", 404, fields={"BucketName": b.name}
            )
        return {"TagSet": [{"Key": k, "Value": v} for k, v in b.tags.items()]}

    async def delete_bucket_tagging(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])

        def write() -> None:
            self._bucket_for_write(req["Bucket"])
            self.store.set_bucket_field(req["Bucket"], "tags", None)

        await self._write(write, bucket=req["Bucket"])
        return {}

    # -- transfer acceleration (the accelerate host form is an alias of the same endpoint) -------

    async def put_bucket_accelerate_configuration(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        status = (req.get("AccelerateConfiguration") or {}).get("Status")
        if status not in ("Enabled", "Suspended"):
            raise ServiceError(
                "MalformedXML",
                "The XML you provided was not well-formed or did not validate against our published schema",
                400,
            )
        if "." in req["Bucket"]:
            raise ServiceError(
                "InvalidRequest",
                "S3 Transfer Acceleration is not supported for buckets with periods (.) in their names",
                400,
            )

        def write() -> None:
            b = self._bucket_for_write(req["Bucket"])
            self.store.set_bucket_field(b.name, "config", {**b.config, "accelerate": status})

        await self._write(write, bucket=req["Bucket"])
        return {}

    def get_bucket_accelerate_configuration(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        status = self._require_bucket(req["Bucket"]).config.get("accelerate")
        return {"Status": status} if status else {}
