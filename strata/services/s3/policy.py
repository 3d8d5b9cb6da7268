"""Bucket policies: Put/Get/DeleteBucketPolicy, GetBucketPolicyStatus, and the policy the
authorizer evaluates for a request naming a bucket.

A bucket policy is a resource policy in the one policy grammar (strata.auth.policy), evaluated by
the one engine together with the caller's identity policies (strata.auth.enforce): within the
bucket owner's account an Allow on either side suffices, across accounts (and for the anonymous
principal of an unsigned request) the bucket policy must allow too, and an explicit Deny in it
binds everyone, the owner's root included (`resource_policy_binds_owner`) — except that the
owner's root can always read, replace and delete the policy, so it cannot lock itself out (AWS's
rule).

PutBucketPolicy validates as S3 does (MalformedPolicy): JSON that starts with `{`, at most 20 KB,
a Principal in every statement, S3 actions only, resources inside this bucket, condition keys
from the aws: or s3: namespaces. Block Public Access (bpa.py) refuses a public policy and strips
the grants of a public one for callers outside the owner's account.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from strata.auth.enforce import CALLER_REQUEST
from strata.auth.patterns import glob_matcher
from strata.auth.policy import Policy, PolicyError, compile_policy
from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.protocol.spec import service_model
from strata.services.s3.access_point_authz import MEMBER
from strata.services.s3.core import S3Core
from strata.services.s3.objects import parse_copy_source
from strata.services.s3.public import is_public_policy

MAX_POLICY_BYTES = 20 * 1024
# The owner's root may always manage the policy, whatever it says (so it cannot lock itself out).
_OWNER_ROOT_ALWAYS = frozenset(["GetBucketPolicy", "PutBucketPolicy", "DeleteBucketPolicy"])
_CONDITION_NAMESPACES = ("aws:", "s3:")


def malformed(message: str) -> ServiceError:
    return ServiceError("MalformedPolicy", message, 400)


def no_such_policy(bucket: str) -> ServiceError:
    return ServiceError(
        "NoSuchBucketPolicy", "The bucket policy does not exist", 404, fields={"BucketName": bucket}
    )


@lru_cache(maxsize=1)
def s3_actions() -> frozenset[str]:
    """Every s3: action name (lowercase) a bucket policy may name: the operations, the names
    actions.json maps them to, and the permissions that are no operation of their own."""
    from strata.auth.actions import _TABLE

    entry = _TABLE["s3"]
    names = set(service_model("s3").operation_names)
    names |= set(entry.get("actions", {}).values()) | set(entry.get("versioned", {}).values())
    names |= {
        "ListBucket",
        "ListBucketVersions",
        "ListBucketMultipartUploads",
        "ListMultipartUploadParts",
        "ListAllMyBuckets",
        "GetObjectVersion",
        "DeleteObjectVersion",
        "BypassGovernanceRetention",
        "GetBucketPolicyStatus",
        "GetBucketObjectLockConfiguration",
        "PutBucketObjectLockConfiguration",
        "GetObjectVersionForReplication",
        "ReplicateObject",
        "ReplicateDelete",
        "ReplicateTags",
        "GetAccessPoint",
        "ListAccessPoints",
        "GetAccountPublicAccessBlock",
        "PutAccountPublicAccessBlock",
    }
    return frozenset(n.lower() for n in names)


def _valid_action(action: str) -> bool:
    if action == "*":
        return True
    prefix, _, name = action.partition(":")
    if prefix.lower() != "s3" or not name:
        return False
    name = name.lower()
    if "*" in name or "?" in name:
        match = glob_matcher(name, True)
        return any(match(a) for a in s3_actions())
    return name in s3_actions()


def _valid_resource(resource: str, bucket: str) -> bool:
    """A resource inside this bucket: the bucket's ARN, or an object ARN (pattern) under it."""
    arn = f"arn:aws:s3:::{bucket}"
    if resource == arn or resource.startswith(arn + "/"):
        return True
    if "*" in resource or "?" in resource:
        match = glob_matcher(resource)
        return resource.startswith("arn:aws:s3:::") and (match(arn) or match(arn + "/x"))
    return False


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def validate_bucket_policy(text: str, bucket: str) -> Policy:
    """The compiled policy, or S3's MalformedPolicy for a document S3 would refuse."""
    if len(text.encode()) > MAX_POLICY_BYTES:
        raise malformed("Policy exceeds the maximum allowed document size.")
    if not text.lstrip().startswith("{"):
        raise malformed("Policies must be valid JSON and the first byte must be '{'")
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        raise malformed("This policy contains invalid Json") from None
    raw = doc.get("Statement") if isinstance(doc, dict) else None
    for s in _as_list(raw) if raw is not None else []:
        if not isinstance(s, dict):
            continue
        if "Principal" not in s and "NotPrincipal" not in s:
            raise malformed("Missing required field Principal")
        if "Resource" not in s and "NotResource" not in s:
            raise malformed("Missing required field Resource")
        for action in _as_list(s.get("Action", s.get("NotAction", []))):
            if not isinstance(action, str) or not _valid_action(action):
                raise malformed("Policy has invalid action")
        for resource in _as_list(s.get("Resource", s.get("NotResource", []))):
            if not isinstance(resource, str) or not _valid_resource(resource, bucket):
                raise malformed("Policy has invalid resource")
        condition = s.get("Condition", {})
        if isinstance(condition, dict):
            for tests in condition.values():
                for key in tests if isinstance(tests, dict) else ():
                    if not key.lower().startswith(_CONDITION_NAMESPACES):
                        raise malformed("Policy has an invalid condition key")
    try:
        return compile_policy(text, "resource")
    except PolicyError as e:
        message = str(e)
        if "principal" in message.lower():
            raise malformed("Invalid principal in policy") from None
        if "Missing required field Principal" in message:
            raise malformed(message) from None
        raise malformed(message) from None


class CompiledBucketPolicy:
    """A stored policy, compiled once: the policy, whether it is public, and its Deny statements
    alone (what a caller outside the account is subject to under RestrictPublicBuckets)."""

    __slots__ = ("policy", "public", "denies")

    def __init__(self, text: str) -> None:
        self.policy = compile_policy(text, "resource")
        self.public = is_public_policy(self.policy)
        denies = tuple(s for s in self.policy.statements if not s.allow)
        self.denies = Policy(denies, text) if denies else None


@lru_cache(maxsize=1024)
def compiled_policy(text: str) -> CompiledBucketPolicy:
    return CompiledBucketPolicy(text)


class BucketPolicyOperations(S3Core):
    resource_policy_binds_owner = True
    # strata.auth.enforce's short cut: buckets by name (`resource_rows`, S3Core: the store's cache
    # of rows; a bucket's `authz_open` says no policy or ACL can apply to it)
    resource_member = "Bucket"

    def resource_policy(self, req: dict) -> Policy | None:
        """The bucket policy that governs this request for this caller (None: no policy applies)."""
        name = req.get("Bucket")
        if type(name) is not str:
            return None
        row = self.store.bucket(name)
        if row is None:
            return None
        config = row.config
        text = config.get("policy")
        if text is None:
            if "ownership" in config:  # ACLs may be on (acl.py)
                return self._with_acls(row, req, None, None)  # type: ignore[attr-defined]
            # Nothing guards this bucket for anyone: the authorizer may skip asking until the
            # bucket changes (a new row). Kept only on the cached row the authorizer reads.
            row.authz_open = (config.get("owner"),)
            return None
        caller, operation, _, _ = CALLER_REQUEST.get()
        owner = config.get("owner")
        compiled = compiled_policy(text)
        if "ownership" not in config:
            # What every caller of the owner's account is under (the authorizer looks up the
            # decisions remembered on it without asking, until the bucket changes: a new row).
            row.authz_policy = (owner, compiled.policy)
        base: Policy | None
        if caller is not None and caller.account_id == owner:
            if operation in _OWNER_ROOT_ALWAYS and caller.kind == "root":
                return None
            base = compiled.policy
        elif compiled.public and self._restricts_public_buckets(row):
            base = compiled.denies
        else:
            base = compiled.policy
        if "ownership" in config:
            return self._with_acls(row, req, base, compiled.denies)  # type: ignore[attr-defined]
        return base

    def related_requests(self, operation: str, req: dict) -> list[tuple[str, dict]]:
        """A copy reads its source: authorized as a GetObject of the source (its bucket's owner
        and policy decide; with a versionId, s3:GetObjectVersion). A malformed source is left to
        the operation's own error."""
        source = req.get("CopySource")
        if not isinstance(source, str):
            return []
        try:
            bucket, key, version = parse_copy_source(source)
            bucket, via = self._source_bucket(bucket)  # type: ignore[attr-defined]
        except ServiceError:
            return []
        read: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if via is not None:  # read through an access point: its policy decides too
            read[MEMBER] = via
        if version:
            read["VersionId"] = version
        return [("GetObject", read)]

    async def put_bucket_policy(self, ctx: RequestContext, req: dict) -> dict:
        name = req["Bucket"]
        self._count(ctx, name)
        self._require_bucket(name)  # NoSuchBucket before the document is judged
        text = req.get("Policy")
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        if not text:
            raise malformed("Policies must be valid JSON and the first byte must be '{'")
        policy = validate_bucket_policy(text, name)
        public = is_public_policy(policy)

        def write() -> None:
            b = self._bucket_for_write(name)
            if public and self._blocks_public_policy(b):
                raise ServiceError("AccessDenied", "Access Denied", 403)
            self.store.set_bucket_field(name, "config", {**b.config, "policy": text})

        await self._write(write, bucket=name)
        return {}

    def get_bucket_policy(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        b = self._require_bucket(req["Bucket"])
        text = b.config.get("policy")
        if text is None:
            raise no_such_policy(b.name)
        return {"Policy": text}

    async def delete_bucket_policy(self, ctx: RequestContext, req: dict) -> dict:
        name = req["Bucket"]
        self._count(ctx, name)

        def write() -> None:
            b = self._bucket_for_write(name)
            if "policy" in b.config:
                self.store.set_bucket_field(
                    name, "config", {k: v for k, v in b.config.items() if k != "policy"}
                )

        await self._write(write, bucket=name)
        return {}

    def get_bucket_policy_status(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        b = self._require_bucket(req["Bucket"])
        text = b.config.get("policy")
        if text is None:
            raise no_such_policy(b.name)
        return {"PolicyStatus": {"IsPublic": compiled_policy(text).public}}
