"""Block Public Access at the bucket level: Put/Get/DeletePublicAccessBlock; with the account's
settings (S3 Control, strata.services.s3control) on top.

The four settings, as AWS defines them (public.py says what a public policy is):

A setting is in force for a bucket when the bucket's or its account's configuration turns it on.

- BlockPublicPolicy: PutBucketPolicy with a public policy is refused (403 AccessDenied); a
  policy stored before is left alone.
- RestrictPublicBuckets: while the bucket's policy is public, only callers of the bucket owner's
  account get its grants; anonymous and cross-account callers are denied (its Deny statements
  still bind them).
- BlockPublicAcls: a request that sets a public ACL (a grant to AllUsers or AuthenticatedUsers)
  is refused (403); ACLs set before stay. IgnorePublicAcls: public grants grant nothing (acl.py).
  Both matter only where ACLs are on (Object Ownership other than BucketOwnerEnforced).

A new bucket gets all four on (S3's default since April 2023); DeletePublicAccessBlock removes the
configuration, after which GetPublicAccessBlock answers NoSuchPublicAccessBlockConfiguration.
"""

from __future__ import annotations

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.s3.core import S3Core
from strata.services.s3.store import BucketRow

SETTINGS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
DEFAULT_BLOCK = dict.fromkeys(SETTINGS, True)


def _no_configuration(bucket: str) -> ServiceError:
    return ServiceError(
        "NoSuchPublicAccessBlockConfiguration",
        "The public access block configuration was not found",
        404,
        fields={"BucketName": bucket},
    )


class PublicAccessBlockOperations(S3Core):
    async def put_public_access_block(self, ctx: RequestContext, req: dict) -> dict:
        name = req["Bucket"]
        self._count(ctx, name)
        given = req.get("PublicAccessBlockConfiguration") or {}
        block = {k: bool(given.get(k, False)) for k in SETTINGS}

        def write() -> None:
            b = self._bucket_for_write(name)
            self.store.set_bucket_field(name, "config", {**b.config, "bpa": block})

        await self._write(write, bucket=name)
        return {}

    def get_public_access_block(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        b = self._require_bucket(req["Bucket"])
        block = b.config.get("bpa")
        if block is None:
            raise _no_configuration(b.name)
        return {"PublicAccessBlockConfiguration": dict(block)}

    async def delete_public_access_block(self, ctx: RequestContext, req: dict) -> dict:
        name = req["Bucket"]
        self._count(ctx, name)

        def write() -> None:
            b = self._bucket_for_write(name)
            if "bpa" in b.config:
                self.store.set_bucket_field(name, "config", {k: v for k, v in b.config.items() if k != "bpa"})

        await self._write(write, bucket=name)
        return {}

    # -- what the policy layer asks -------------------------------------------------------------

    def _setting(self, bucket: BucketRow, name: str) -> bool:
        """A setting in force for the bucket: its own configuration or its account's."""
        block = bucket.config.get("bpa")
        if block is not None and block.get(name):
            return True
        account = self._account_public_access_block(bucket.config.get("owner", ""))
        return bool(account and account.get(name))

    def _blocks_public_policy(self, bucket: BucketRow) -> bool:
        return self._setting(bucket, "BlockPublicPolicy")

    def _restricts_public_buckets(self, bucket: BucketRow) -> bool:
        return self._setting(bucket, "RestrictPublicBuckets")

    def _account_public_access_block(self, account: str) -> dict | None:
        """The account-level configuration (S3 Control), None when the account has none."""
        control = self.runtime.peer("s3control")
        return control._public_access_block_of(account) if control is not None else None
