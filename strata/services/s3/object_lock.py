"""S3 Object Lock: write-once-read-many protection of object versions, on the simulated clock.

- A bucket gets Object Lock at creation (`ObjectLockEnabledForBucket`, which turns versioning
  on) or later through PutObjectLockConfiguration on a bucket whose versioning is Enabled; it
  cannot be turned off, and versioning of such a bucket cannot be suspended.
- Get/PutObjectLockConfiguration: the bucket's default retention (a mode and Days or Years),
  applied to every new version written without a retention of its own.
- Per version: a retention (GOVERNANCE or COMPLIANCE until a date) and a legal hold (ON/OFF),
  set by PutObject/CopyObject/CreateMultipartUpload headers or by Put/GetObjectRetention and
  Put/GetObjectLegalHold, reported by GET/HEAD. They live in the version's attrs (`retention`:
  {"Mode", "until"}, `legal_hold`: "ON"/"OFF"), so they are as durable as the version itself.
- A version under a legal hold or an unexpired retention cannot be deleted (AccessDenied). A
  GOVERNANCE retention gives way to a request with `x-amz-bypass-governance-retention: true`
  from a caller the policy engine allows s3:BypassGovernanceRetention (`_bypass_resources`, asked
  through the provider's `further_resources` hook, access_point_authz.py); a
  COMPLIANCE retention gives way to nobody, the account root included, until its date passes
  on the simulated clock: it can only be extended.
- Lifecycle never removes a locked version (lifecycle_run.py asks `locked_until`).
- GET and HEAD show the retention and legal hold only to callers allowed s3:GetObjectRetention /
  s3:GetObjectLegalHold. An upload that gets a retention or legal hold must carry Content-MD5 or
  a checksum header (PutObject; the SDKs send one).

Event holds (`ObjectLockEventHold*`, `DefaultEventHold`) are not implemented and are refused.
"""

from __future__ import annotations

from typing import Any

from strata.auth.directory import directory_for
from strata.auth.enforce import CALLER_OPERATION, Authorizer
from strata.auth.policy import Policy
from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.s3.core import S3Core, to_datetime
from strata.services.s3.lock_rules import (
    MODES,
    invalid,
    lock_enabled,
    malformed,
    missing_configuration,
    protected,
    rule_of,
    timestamp,
)
from strata.services.s3.store import BucketRow, ObjectRow

# What GET and HEAD report of a version's lock, by the permission needed to see it.
_LOCK_MEMBERS = (
    ("GetObjectRetention", ("ObjectLockMode", "ObjectLockRetainUntilDate")),
    ("GetObjectLegalHold", ("ObjectLockLegalHoldStatus",)),
)
# Operations that honour x-amz-bypass-governance-retention, and so need its permission.
_BYPASSING = frozenset(["DeleteObject", "DeleteObjects", "PutObjectRetention"])


class ObjectLockOperations(S3Core):
    # -- authorization hook ----------------------------------------------------------------------

    @staticmethod
    def _bypass_members(operation: str) -> tuple[str, ...]:
        """The member `_bypass_resources` reads, for the operations that honour it."""
        return ("BypassGovernanceRetention",) if operation in _BYPASSING else ()

    def _bypass_resources(self, req: dict) -> list[tuple[str, str, str | None, Policy | None]]:
        """A request asking to bypass governance retention needs s3:BypassGovernanceRetention on
        the object(s) too, under the bucket's policy (AWS: "To use this header, you must have
        the s3:BypassGovernanceRetention permission")."""
        if not req.get("BypassGovernanceRetention") or CALLER_OPERATION.get() not in _BYPASSING:
            return []
        bucket = req.get("Bucket")
        if not isinstance(bucket, str):
            return []
        if isinstance(req.get("Key"), str):
            keys = [req["Key"]]
        else:
            objects = (req.get("Delete") or {}).get("Objects") or []
            keys = [o["Key"] for o in objects if isinstance(o, dict) and isinstance(o.get("Key"), str)]
        owner = self.resource_account(req)  # type: ignore[attr-defined]
        policy = self.resource_policy(req)  # type: ignore[attr-defined]
        return [("s3:BypassGovernanceRetention", f"arn:aws:s3:::{bucket}/{k}", owner, policy) for k in keys]

    def _hide_unpermitted_lock_headers(self, ctx: RequestContext, req: dict, out: dict[str, Any]) -> None:
        """GET and HEAD show a version's retention only to callers allowed s3:GetObjectRetention,
        and its legal hold only to those allowed s3:GetObjectLegalHold; others get the object
        without them (AWS: "the request still succeeds, but it doesn't return information that
        you don't have permission to view")."""
        if ctx.principal is None:
            return
        params = {"Bucket": req["Bucket"], "Key": req["Key"]}
        for operation, members in _LOCK_MEMBERS:
            if not any(m in out for m in members):
                continue
            try:
                Authorizer(directory_for(self.settings)).check(
                    ctx.principal, "s3", operation, params, ctx.http, ctx.region, self
                )
            except ServiceError:
                for m in members:
                    out.pop(m, None)

    # -- bucket configuration --------------------------------------------------------------------

    async def put_object_lock_configuration(self, ctx: RequestContext, req: dict) -> dict:
        name = req["Bucket"]
        self._count(ctx, name)
        self._require_bucket(name)
        config = req.get("ObjectLockConfiguration")
        if not isinstance(config, dict):
            raise malformed()
        rule = rule_of(config)

        def write() -> None:
            b = self._bucket_for_write(name)
            if not lock_enabled(b) and b.versioning != "Enabled":
                raise ServiceError(
                    "InvalidBucketState",
                    "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration",
                    409,
                )
            lock: dict[str, Any] = {"enabled": True}
            if rule is not None:
                lock["rule"] = rule
            self.store.set_bucket_field(name, "config", {**b.config, "object_lock": lock})

        await self._write(write, bucket=name)
        return {}

    def get_object_lock_configuration(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        b = self._require_bucket(req["Bucket"])
        if not lock_enabled(b):
            raise ServiceError(
                "ObjectLockConfigurationNotFoundError",
                "Object Lock configuration does not exist for this bucket",
                404,
                fields={"BucketName": b.name},
            )
        config: dict[str, Any] = {"ObjectLockEnabled": "Enabled"}
        rule = b.config["object_lock"].get("rule")
        if rule:
            config["Rule"] = {"DefaultRetention": dict(rule)}
        return {"ObjectLockConfiguration": config}

    # -- per-version retention and legal hold ----------------------------------------------------

    async def _locked_version(self, req: dict) -> tuple[BucketRow, ObjectRow]:
        """The version a retention or legal hold request names, read off the event loop."""
        bucket = self._require_bucket(req["Bucket"])
        if not lock_enabled(bucket):
            raise missing_configuration()
        return bucket, await self._object(bucket, req)  # type: ignore[attr-defined]

    async def _update_attrs(self, bucket: str, row: ObjectRow, change: Any) -> None:
        """Apply `change(attrs, now)` to the version's stored attrs inside one write (so two
        concurrent changes cannot both pass the rules against the same old state)."""

        def write() -> None:
            fresh = self.store.version(bucket, row.key, row.version_id)
            if fresh is None or fresh.id != row.id:
                raise ServiceError(
                    "NoSuchVersion",
                    "The specified version does not exist.",
                    404,
                    fields={"Key": row.key, "VersionId": row.version_id},
                )
            change(fresh.attrs, self._now())
            self.store.update_attrs(fresh)

        await self._write(write)

    async def put_object_retention(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        bucket, row = await self._locked_version(req)
        wanted = req.get("Retention") or {}
        if wanted.get("EventHold") or wanted.get("EventHoldDuration"):
            raise ServiceError("NotImplemented", "Object Lock event holds are not implemented by Strata", 501)
        mode, until = wanted.get("Mode"), wanted.get("RetainUntilDate")
        if bool(mode) != bool(until):
            raise malformed()
        if mode and mode not in MODES:
            raise malformed()
        at = timestamp(until) if until else None
        bypass = bool(req.get("BypassGovernanceRetention"))

        def change(attrs: dict[str, Any], now: float) -> None:
            if at is not None and at <= now:
                raise invalid("The retain until date must be in the future!")
            old = attrs.get("retention")
            if old and old["until"] > now:
                extends = at is not None and at >= old["until"]
                if old["Mode"] == "COMPLIANCE":
                    # Only a longer COMPLIANCE retention: nobody can weaken it before its date.
                    if not (extends and mode == "COMPLIANCE"):
                        raise protected()
                elif not extends and not bypass:
                    raise protected()
            if at is None:
                attrs.pop("retention", None)
            else:
                attrs["retention"] = {"Mode": mode, "until": at}

        await self._update_attrs(bucket.name, row, change)
        return {}

    async def get_object_retention(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        _, row = await self._locked_version(req)
        retention = row.attrs.get("retention")
        if not retention:
            raise ServiceError(
                "NoSuchObjectLockConfiguration",
                "The specified object does not have a ObjectLock configuration",
                404,
            )
        return {"Retention": {"Mode": retention["Mode"], "RetainUntilDate": to_datetime(retention["until"])}}

    async def put_object_legal_hold(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        bucket, row = await self._locked_version(req)
        status = (req.get("LegalHold") or {}).get("Status")
        if status not in ("ON", "OFF"):
            raise malformed()

        def change(attrs: dict[str, Any], _now: float) -> None:
            attrs["legal_hold"] = status

        await self._update_attrs(bucket.name, row, change)
        return {}

    async def get_object_legal_hold(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        _, row = await self._locked_version(req)
        status = row.attrs.get("legal_hold")
        if not status:
            raise ServiceError(
                "NoSuchObjectLockConfiguration",
                "The specified object does not have a ObjectLock configuration",
                404,
            )
        return {"LegalHold": {"Status": status}}
