"""Object Ownership and ACLs as S3's default has them: BucketOwnerEnforced, ACLs disabled.

Every Strata bucket is BucketOwnerEnforced (S3's default for new buckets since April 2023): the
bucket owner owns every object, access is decided by policies only, and ACLs are disabled.

- GetBucketOwnershipControls answers BucketOwnerEnforced; PutBucketOwnershipControls accepts
  only BucketOwnerEnforced, and DeleteBucketOwnershipControls (which would turn ACLs back on,
  ObjectWriter) is refused: BucketOwnerPreferred/ObjectWriter are not implemented.
- GetBucketAcl/GetObjectAcl answer the one grant there is: the bucket owner's FULL_CONTROL.
- PutBucketAcl/PutObjectAcl succeed only with what changes nothing, as S3 allows on such a bucket
  (the `private` or `bucket-owner-full-control` canned ACL, or a policy granting the owner
  FULL_CONTROL alone); any other ACL is AccessControlListNotSupported (the x-amz-grant-* headers
  are refused by the parameter table with that same error).
"""

from __future__ import annotations

from typing import Any

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.s3.core import S3Core, owner_id
from strata.services.s3.store import BucketRow

ENFORCED = "BucketOwnerEnforced"
HARMLESS_CANNED = ("private", "bucket-owner-full-control")


def acls_not_supported() -> ServiceError:
    return ServiceError("AccessControlListNotSupported", "The bucket does not allow ACLs", 400)


def _not_implemented(what: str) -> ServiceError:
    return ServiceError(
        "NotImplemented", f"{what} is not implemented by Strata (buckets are {ENFORCED})", 501
    )


class AclOperations(S3Core):
    def _acl_owner(self, bucket: BucketRow, ctx: RequestContext) -> dict[str, str]:
        return {"ID": owner_id(bucket.config.get("owner", ctx.account_id)), "DisplayName": "strata"}

    def _owner_acl(self, bucket: BucketRow, ctx: RequestContext) -> dict[str, Any]:
        owner = self._acl_owner(bucket, ctx)
        grantee = {"Type": "CanonicalUser", **owner}
        return {"Owner": owner, "Grants": [{"Grantee": grantee, "Permission": "FULL_CONTROL"}]}

    def _check_harmless(self, bucket: BucketRow, ctx: RequestContext, req: dict) -> None:
        canned = req.get("ACL")
        if canned is not None and canned not in HARMLESS_CANNED:
            raise acls_not_supported()
        policy = req.get("AccessControlPolicy")
        if policy is not None:
            owner_canonical = self._acl_owner(bucket, ctx)["ID"]
            grants = policy.get("Grants") or []
            only_owner = all(
                g.get("Permission") == "FULL_CONTROL"
                and (g.get("Grantee") or {}).get("Type") == "CanonicalUser"
                and (g.get("Grantee") or {}).get("ID") == owner_canonical
                for g in grants
            )
            if not only_owner:
                raise acls_not_supported()

    # -- ownership controls ----------------------------------------------------------------------

    def get_bucket_ownership_controls(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        self._require_bucket(req["Bucket"])
        return {"OwnershipControls": {"Rules": [{"ObjectOwnership": ENFORCED}]}}

    def put_bucket_ownership_controls(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        self._require_bucket(req["Bucket"])
        rules = (req.get("OwnershipControls") or {}).get("Rules") or []
        if len(rules) != 1 or not isinstance(rules[0], dict) or not rules[0].get("ObjectOwnership"):
            raise ServiceError(
                "MalformedXML",
                "The XML you provided was not well-formed or did not validate against our published schema",
                400,
            )
        if rules[0]["ObjectOwnership"] != ENFORCED:
            raise _not_implemented(f"ObjectOwnership {rules[0]['ObjectOwnership']}")
        return {}

    def delete_bucket_ownership_controls(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        self._require_bucket(req["Bucket"])
        raise _not_implemented("DeleteBucketOwnershipControls (ACLs enabled, ObjectWriter)")

    # -- ACLs ------------------------------------------------------------------------------------

    def get_bucket_acl(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        return self._owner_acl(self._require_bucket(req["Bucket"]), ctx)

    def put_bucket_acl(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        bucket = self._require_bucket(req["Bucket"])
        self._check_harmless(bucket, ctx, req)
        return {}

    def get_object_acl(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        bucket = self._require_bucket(req["Bucket"])
        self._read_version(bucket.name, req["Key"], req.get("VersionId"))
        return self._owner_acl(bucket, ctx)

    def put_object_acl(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        bucket = self._require_bucket(req["Bucket"])
        self._read_version(bucket.name, req["Key"], req.get("VersionId"))
        self._check_harmless(bucket, ctx, req)
        return {}
