"""S3 access points (S3 Control): named entrances to a bucket, each with its own policy and Block
Public Access settings.

Create/Get/Delete/ListAccessPoints and Put/Get/DeleteAccessPointPolicy, GetAccessPointPolicyStatus.
An access point belongs to the account that created it, is named per account, and is reached
four ways, all of which end at its bucket (strata.gateway.access_points routes them):
- its ARN as the Bucket of an SDK call: the SDKs send it to `<name>-<account>.<endpoint host>`
  (for AWS, `.s3-accesspoint.<region>.amazonaws.com`), which the gateway maps back;
- its alias (`<name>-<random>-s3alias`) wherever a bucket name goes, path-style;
- its ARN as the first part of the path (clients without the SDKs' endpoint rules).

A request through an access point must be allowed by the access point's policy (with the caller's
identity policies, against the access point's ARN) and by the bucket's policy as usual; the bucket
policy sees `s3:DataAccessPointArn` / `s3:DataAccessPointAccount`, so it can delegate to access
points. New access points block all public access, as on AWS.
"""

from __future__ import annotations

import json
import re
import secrets
import string
from functools import lru_cache
from typing import Any

from strata.auth.policy import Policy, PolicyError, compile_policy
from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.s3.bpa import SETTINGS
from strata.services.s3.public import is_public_policy
from strata.sim.clock import clock

SCHEMA = """
CREATE TABLE IF NOT EXISTS access_points (
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    alias TEXT NOT NULL UNIQUE,
    doc TEXT NOT NULL,
    PRIMARY KEY (account, name)
) WITHOUT ROWID;
"""

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,48}[a-z0-9]$")
_ALIAS_CHARS = string.ascii_lowercase + string.digits
MAX_POLICY_BYTES = 20 * 1024
MAX_RESULTS = 1000


def access_point_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:s3:{region}:{account}:accesspoint/{name}"


def _no_such_access_point() -> ServiceError:
    return ServiceError("NoSuchAccessPoint", "The specified accesspoint does not exist", 404)


def _malformed(message: str) -> ServiceError:
    return ServiceError("MalformedPolicy", message, 400)


class CompiledAccessPointPolicy:
    """A stored access point policy, compiled once (as CompiledBucketPolicy is for buckets)."""

    __slots__ = ("policy", "public", "denies")

    def __init__(self, text: str) -> None:
        self.policy = compile_policy(text, "resource")
        self.public = is_public_policy(self.policy)
        denies = tuple(s for s in self.policy.statements if not s.allow)
        self.denies = Policy(denies, text) if denies else None


@lru_cache(maxsize=256)
def compiled(text: str) -> CompiledAccessPointPolicy:
    return CompiledAccessPointPolicy(text)


def _validate_policy(text: str, arn: str) -> None:
    """MalformedPolicy for a document S3 Control would refuse: too long, not JSON, a statement
    without a principal, or a resource outside this access point."""
    if len(text.encode()) > MAX_POLICY_BYTES:
        raise _malformed("Policy exceeds the maximum allowed document size.")
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        raise _malformed("This policy contains invalid Json") from None
    statements = doc.get("Statement") if isinstance(doc, dict) else None
    for s in statements if isinstance(statements, list) else [statements] if statements else []:
        if not isinstance(s, dict):
            raise _malformed("This policy contains invalid Json")
        if "Principal" not in s and "NotPrincipal" not in s:
            raise _malformed("Missing required field Principal")
        resources = s.get("Resource", s.get("NotResource", []))
        for r in resources if isinstance(resources, list) else [resources]:
            if not isinstance(r, str) or not (r == arn or r.startswith(arn + "/")):
                raise _malformed("Policy has invalid resource")
    try:
        compile_policy(text, "resource")
    except PolicyError as e:
        raise _malformed(str(e)) from None


class AccessPointOperations:
    """Mixin of S3ControlProvider: `self.store` (its MetadataStore), `self.runtime`, `_account`."""

    store: Any
    runtime: Any
    _account: Any
    _public_access_block_of: Any
    _current: Any
    _changes: Any

    def _load_access_points(self) -> None:
        self._access_points: dict[tuple[str, str], dict[str, Any]] = {}
        self._aliases: dict[str, tuple[str, str]] = {}
        for account, name, alias, doc in self.store.query(
            "SELECT account, name, alias, doc FROM access_points"
        ):
            self._remember(account, name, {**json.loads(doc), "alias": alias})

    def _remember(self, account: str, name: str, doc: dict[str, Any]) -> None:
        self._access_points[(account, name)] = doc
        self._aliases[doc["alias"]] = (account, name)

    # -- asked by the gateway and the S3 provider ------------------------------------------------

    def _has_access_points(self) -> bool:
        """Whether a request may name an access point (the gateway asks for every S3 request)."""
        if self._changes.shared:
            # Another gateway may have made one: True, and the look-ups, made only for requests
            # shaped like an access point's (host, ARN, alias), read again what changed. A check
            # here cost every S3 request a round trip (GetObject 1.45x the CPU, measured).
            return True
        return bool(self._access_points)

    def _access_point(self, account: str, name: str) -> dict[str, Any] | None:
        """The stored access point (name, account, bucket, alias, arn, bpa, policy) or None."""
        self._current()
        return self._access_points.get((account, name))

    def _access_point_by_alias(self, alias: str) -> dict[str, Any] | None:
        self._current()
        key = self._aliases.get(alias)
        return self._access_points.get(key) if key else None

    def _access_point_policy(self, doc: dict[str, Any], same_account: bool) -> Policy | None:
        """The access point policy that governs a request through it (None: no policy). A public
        policy under RestrictPublicBuckets (the access point's or its account's) keeps only its
        Deny statements for callers outside the access point's account."""
        text = doc.get("policy")
        if not text:
            return None
        c = compiled(text)
        if c.public and not same_account and self._ap_setting(doc, "RestrictPublicBuckets"):
            return c.denies
        return c.policy

    def _ap_setting(self, doc: dict[str, Any], name: str) -> bool:
        if doc.get("bpa", {}).get(name):
            return True
        account = self._public_access_block_of(doc["account"])
        return bool(account and account.get(name))

    # -- operations ------------------------------------------------------------------------------

    def _named(self, ctx: RequestContext, req: dict) -> tuple[str, dict[str, Any]]:
        account = self._account(ctx, req)
        self._current()
        doc = self._access_points.get((account, req.get("Name") or ""))
        if doc is None:
            raise _no_such_access_point()
        return account, doc

    async def create_access_point(self, ctx: RequestContext, req: dict) -> dict:
        account = self._account(ctx, req)
        name = req.get("Name") or ""
        if not _NAME.match(name) or name.endswith("-s3alias") or "--" in name:
            raise ServiceError("InvalidURI", "Couldn't parse the specified URI.", 400)
        s3 = self.runtime.peer("s3")
        bucket = s3.store.bucket(req["Bucket"]) if s3 is not None else None
        if bucket is None:
            raise ServiceError(
                "NoSuchBucket",
                "The specified bucket does not exist",
                404,
                fields={"BucketName": req["Bucket"]},
            )
        bucket_account = bucket.config.get("owner", account)
        if req.get("BucketAccountId") and req["BucketAccountId"] != bucket_account:
            raise ServiceError("AccessDenied", "Access Denied", 403)
        given = req.get("PublicAccessBlockConfiguration")
        bpa = (
            {k: bool(given.get(k, False)) for k in SETTINGS}
            if given is not None
            else dict.fromkeys(SETTINGS, True)
        )
        token = "".join(secrets.choice(_ALIAS_CHARS) for _ in range(20))
        alias = f"{name[: 63 - len(token) - 9]}-{token}-s3alias"
        arn = access_point_arn(ctx.region, account, name)
        doc = {
            "name": name,
            "account": account,
            "bucket": bucket.name,
            "bucket_account": bucket_account,
            "arn": arn,
            "bpa": bpa,
            "created": clock.time(),
        }

        def write() -> None:
            if self.store.query_one(
                "SELECT 1 FROM access_points WHERE account = ? AND name = ?", (account, name)
            ):
                raise ServiceError(
                    "AccessPointAlreadyOwnedByYou",
                    "Your previous request to create the named accesspoint succeeded and you already own it.",
                    409,
                )
            self.store.execute(
                "INSERT INTO access_points(account, name, alias, doc) VALUES (?, ?, ?, ?)",
                (account, name, alias, json.dumps(doc)),
            )
            self._changes.bump()

        await self.store.write(write)
        self._remember(account, name, {**doc, "alias": alias})
        return {"AccessPointArn": arn, "Alias": alias}

    def get_access_point(self, ctx: RequestContext, req: dict) -> dict:
        from datetime import UTC, datetime

        _, doc = self._named(ctx, req)
        return {
            "Name": doc["name"],
            "Bucket": doc["bucket"],
            "NetworkOrigin": "Internet",
            "PublicAccessBlockConfiguration": dict(doc["bpa"]),
            "CreationDate": datetime.fromtimestamp(int(doc["created"]), UTC),
            "Alias": doc["alias"],
            "AccessPointArn": doc["arn"],
            "BucketAccountId": doc["bucket_account"],
        }

    async def delete_access_point(self, ctx: RequestContext, req: dict) -> dict:
        account, doc = self._named(ctx, req)

        def write() -> None:
            self.store.execute(
                "DELETE FROM access_points WHERE account = ? AND name = ?", (account, doc["name"])
            )
            self._changes.bump()

        await self.store.write(write)
        self._access_points.pop((account, doc["name"]), None)
        self._aliases.pop(doc["alias"], None)
        return {}

    def list_access_points(self, ctx: RequestContext, req: dict) -> dict:
        account = self._account(ctx, req)
        limit = req.get("MaxResults") or MAX_RESULTS
        if not 1 <= limit <= MAX_RESULTS:
            raise ServiceError("InvalidRequest", f"MaxResults must be between 1 and {MAX_RESULTS}", 400)
        after = req.get("NextToken") or ""
        self._current()
        names = sorted(
            n
            for (a, n), d in self._access_points.items()
            if a == account and n > after and (not req.get("Bucket") or d["bucket"] == req["Bucket"])
        )
        page = names[:limit]
        out: dict[str, Any] = {
            "AccessPointList": [
                {
                    "Name": d["name"],
                    "NetworkOrigin": "Internet",
                    "Bucket": d["bucket"],
                    "AccessPointArn": d["arn"],
                    "Alias": d["alias"],
                    "BucketAccountId": d["bucket_account"],
                }
                for d in (self._access_points[(account, n)] for n in page)
            ]
        }
        if len(names) > limit:
            out["NextToken"] = page[-1]
        return out

    async def _set_doc(self, account: str, doc: dict[str, Any]) -> None:
        stored = {k: v for k, v in doc.items() if k != "alias"}

        def write() -> None:
            self.store.execute(
                "UPDATE access_points SET doc = ? WHERE account = ? AND name = ?",
                (json.dumps(stored), account, doc["name"]),
            )
            self._changes.bump()

        await self.store.write(write)
        self._remember(account, doc["name"], doc)

    async def put_access_point_policy(self, ctx: RequestContext, req: dict) -> dict:
        account, doc = self._named(ctx, req)
        text = req.get("Policy") or ""
        _validate_policy(text, doc["arn"])
        if compiled(text).public and self._ap_setting(doc, "BlockPublicPolicy"):
            raise ServiceError("AccessDenied", "Access Denied", 403)
        await self._set_doc(account, {**doc, "policy": text})
        return {}

    def get_access_point_policy(self, ctx: RequestContext, req: dict) -> dict:
        _, doc = self._named(ctx, req)
        if not doc.get("policy"):
            raise ServiceError(
                "NoSuchAccessPointPolicy", "The specified accesspoint policy does not exist", 404
            )
        return {"Policy": doc["policy"]}

    async def delete_access_point_policy(self, ctx: RequestContext, req: dict) -> dict:
        account, doc = self._named(ctx, req)
        if doc.get("policy"):
            await self._set_doc(account, {k: v for k, v in doc.items() if k != "policy"})
        return {}

    def get_access_point_policy_status(self, ctx: RequestContext, req: dict) -> dict:
        _, doc = self._named(ctx, req)
        if not doc.get("policy"):
            raise ServiceError(
                "NoSuchAccessPointPolicy", "The specified accesspoint policy does not exist", 404
            )
        return {"PolicyStatus": {"IsPublic": compiled(doc["policy"]).public}}
