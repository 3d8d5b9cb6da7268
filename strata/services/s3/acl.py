"""Object Ownership and ACLs: the three ownership settings, Put/Get Bucket/Object ACL, ACLs given
with PutObject/CopyObject/CreateMultipartUpload/CreateBucket, and what ACLs add to authorization.

Object Ownership (bucket config `ownership`; absent means BucketOwnerEnforced, S3's default for
new buckets since April 2023):
- BucketOwnerEnforced: ACLs are disabled. The bucket owner owns every object, access is decided
  by policies only; an ACL that would change something is AccessControlListNotSupported (the
  `private` and `bucket-owner-full-control` canned ACLs, or the owner's FULL_CONTROL alone, are
  taken and change nothing). Get*Acl answer the owner's FULL_CONTROL.
- BucketOwnerPreferred: ACLs on; an object written with `bucket-owner-full-control` is owned by
  the bucket owner, any other by its writer's account.
- ObjectWriter: ACLs on; the writer's account owns what it writes. DeleteBucketOwnershipControls
  leaves a bucket so (stored as `none`: GetBucketOwnershipControls then answers
  OwnershipControlsNotFoundError).

With ACLs on, the bucket's ACL (config `acl`) and each object's (attrs `acl`: owner account and
grants) are evaluated with the bucket policy and IAM by the one policy engine (acl_rules.py turns
grants into resource-policy statements): as in AWS's authorization flow, an object owned by
another account than the bucket's is decided by its owner and its ACL, the bucket policy only
denying. Block Public Access (the bucket's, its account's, or the access point's a request comes
through): BlockPublicAcls refuses a request setting a public ACL (403), IgnorePublicAcls makes
public grants grant nothing.

An object written anonymously (a public-read-write bucket) is owned by the anonymous user, as on
S3: the bucket owner may delete it but reads it only if its ACL grants that
(`bucket-owner-full-control`, which under BucketOwnerPreferred makes the bucket owner its owner).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from strata.auth.directory import directory_for
from strata.auth.enforce import CALLER_OPERATION
from strata.auth.policy import Policy
from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.s3 import acl_rules
from strata.services.s3.access_point_authz import MEMBER
from strata.services.s3.core import S3Core, owner_id
from strata.services.s3.store import BucketRow, ObjectRow

ENFORCED = "BucketOwnerEnforced"
PREFERRED = "BucketOwnerPreferred"
OBJECT_WRITER = "ObjectWriter"
NO_CONTROLS = "none"  # ObjectWriter after DeleteBucketOwnershipControls
HARMLESS_CANNED = ("private", "bucket-owner-full-control")
# Operations on an object that its owner (and its ACL) decide, not the bucket's owner.
OBJECT_OWNER_OPERATIONS = frozenset(
    [
        "GetObject",
        "HeadObject",
        "GetObjectAcl",
        "PutObjectAcl",
        "GetObjectAttributes",
        "GetObjectTagging",
        "PutObjectTagging",
        "DeleteObjectTagging",
    ]
)
_MALFORMED_XML = (
    "MalformedXML",
    "The XML you provided was not well-formed or did not validate against our published schema",
    400,
)


# The object an authorization is deciding on: (request, operation, its row), see _acl_target.
_TARGET: ContextVar[tuple[dict, str, ObjectRow | None] | None] = ContextVar(
    "strata_s3_acl_target", default=None
)
_ACL_TEXTS_LIMIT = 4096


def _grants_key(grants: list[dict[str, Any]] | None) -> tuple | None:
    """A hashable form of a grant list (what the policy text of an ACL depends on)."""
    if grants is None:
        return None
    return tuple((g["Grantee"].get("ID") or g["Grantee"].get("URI"), g["Permission"]) for g in grants)


def authorized_object(req: dict) -> ObjectRow | None:
    """The object row the authorization of this very request read (a read on a bucket with ACLs
    on, whose object's owner and ACL decide it, or a policy's s3:ExistingObjectTag condition),
    so that the operation, which runs right after it with no wait between, need not read it
    again; None when it read none."""
    hit = _TARGET.get()
    if hit is not None and hit[0] is req and hit[1] == CALLER_OPERATION.get():
        return hit[2]
    return None


def decided_object(store: Any, bucket: str, req: dict) -> ObjectRow | None:
    """The object (version) `req` names, read once per request and operation however often the
    authorizer asks (its owner, its ACL, its tags); None when there is none or it is a delete
    marker (the operation then answers with S3's error)."""
    operation = CALLER_OPERATION.get()
    hit = _TARGET.get()
    if hit is not None and hit[0] is req and hit[1] == operation:
        return hit[2]
    version = req.get("VersionId")
    row = store.version(bucket, req["Key"], version) if version else store.current(bucket, req["Key"])
    target = None if row is None or row.dm else row
    _TARGET.set((req, operation, target))
    return target


def acls_not_supported() -> ServiceError:
    return ServiceError("AccessControlListNotSupported", "The bucket does not allow ACLs", 400)


def _access_denied() -> ServiceError:
    return ServiceError("AccessDenied", "Access Denied", 403)


def _acl_given(req: dict) -> bool:
    return bool(req.get("ACL")) or any(req.get(m) for m in acl_rules.GRANT_HEADERS)


class AclOperations(S3Core):
    # -- what the other modules ask --------------------------------------------------------------

    @staticmethod
    def _ownership(bucket: BucketRow) -> str:
        return bucket.config.get("ownership", ENFORCED)

    def _account_of(self, canonical_id: str) -> str | None:
        accounts = directory_for(self.settings).accounts
        cache = getattr(self, "_canonical_cache", None)
        if cache is None or cache[0] != len(accounts):
            cache = (len(accounts), {owner_id(a): a for a in accounts})
            self._canonical_cache = cache
        return cache[1].get(canonical_id)

    def _known(self, canonical_id: str) -> bool:
        return self._account_of(canonical_id) is not None

    def _requested_grants(
        self, req: dict, owner: str, bucket_owner: str, *, body: bool = False
    ) -> tuple[list[dict[str, Any]] | None, str | None]:
        """(grants, the document's Owner id) a request sets, None when it sets none. `owner`,
        `bucket_owner`: canonical ids the canned ACLs are relative to."""
        canned = req.get("ACL")
        headers = any(req.get(m) for m in acl_rules.GRANT_HEADERS)
        document = req.get("AccessControlPolicy") if body else None
        if canned and headers:
            raise ServiceError(
                "InvalidRequest", "Specifying both Canned ACLs and Header Grants is not allowed", 400
            )
        if document and (canned or headers):
            raise ServiceError("UnexpectedContent", "This request does not support content", 400)
        if canned:
            return acl_rules.canned_grants(canned, owner, bucket_owner), None
        if headers:
            return acl_rules.header_grants(req, self._known), None
        if document:
            doc_owner, grants = acl_rules.document_grants(document, self._known)
            return grants, doc_owner
        return None, None

    def _public_acl_setting(self, bucket: BucketRow, req: dict, name: str) -> bool:
        """BlockPublicAcls / IgnorePublicAcls in force for a request: the bucket's or its
        account's, or the access point's it comes through."""
        if self._setting(bucket, name):  # type: ignore[attr-defined]
            return True
        via = req.get(MEMBER)
        if not via:
            return False
        control = self.runtime.peer("s3control")
        doc = control._access_point(via["Account"], via["Name"]) if control is not None else None
        return doc is not None and bool(control._ap_setting(doc, name))  # type: ignore[union-attr]

    def _check_public_acl(self, bucket: BucketRow, req: dict, grants: list[dict[str, Any]]) -> None:
        if acl_rules.is_public(grants) and self._public_acl_setting(bucket, req, "BlockPublicAcls"):
            raise _access_denied()

    def _bucket_grants(self, bucket: BucketRow) -> list[dict[str, Any]]:
        stored = bucket.config.get("acl")
        owner = owner_id(bucket.config.get("owner", ""))
        return stored if stored is not None else [acl_rules.user(owner, "FULL_CONTROL")]

    def _object_acl(self, bucket: BucketRow, row: ObjectRow) -> tuple[str, list[dict[str, Any]]]:
        """(owner account, grants) of an object; the bucket owner's FULL_CONTROL when it has none
        or ACLs are disabled."""
        bucket_owner = bucket.config.get("owner", "")
        acl = row.attrs.get("acl") if self._ownership(bucket) != ENFORCED else None
        if not acl:
            return bucket_owner, [acl_rules.user(owner_id(bucket_owner), "FULL_CONTROL")]
        return acl["owner"], acl["grants"]

    def _new_object_acl(self, ctx: RequestContext, bucket: BucketRow, req: dict) -> dict[str, Any]:
        """The `acl` attribute of an object a request writes ({} while ACLs are disabled): its owner
        (Object Ownership) and the ACL the request gives (private when none)."""
        bucket_owner = bucket.config.get("owner", ctx.account_id)
        ownership = self._ownership(bucket)
        if ownership == ENFORCED:
            if _acl_given(req):
                canned = req.get("ACL")
                if canned and canned not in HARMLESS_CANNED:
                    raise acls_not_supported()
                if not canned:
                    try:
                        grants = acl_rules.header_grants(req, self._known)
                    except ServiceError:  # no ACL is taken: say so, not what is wrong with it
                        raise acls_not_supported() from None
                    if not acl_rules.only_owner_full_control(grants, owner_id(bucket_owner)):
                        raise acls_not_supported()
            return {}
        writer = ctx.principal.account_id if ctx.principal is not None else ctx.account_id
        if not writer:  # an unsigned request: the anonymous user owns what it writes
            writer = acl_rules.ANONYMOUS_OWNER
        owner = writer
        if ownership == PREFERRED and req.get("ACL") == "bucket-owner-full-control":
            owner = bucket_owner
        given, _ = self._requested_grants(req, owner_id(owner), owner_id(bucket_owner))
        grants = given if given is not None else [acl_rules.user(owner_id(owner), "FULL_CONTROL")]
        self._check_public_acl(bucket, req, grants)
        return {"acl": {"owner": owner, "grants": grants}}

    def _bucket_acl_at_creation(self, ctx: RequestContext, req: dict, bpa: dict) -> dict[str, Any]:
        """Config entries CreateBucket's ObjectOwnership and ACL members give a new bucket."""
        ownership = req.get("ObjectOwnership") or ENFORCED
        if ownership not in (ENFORCED, PREFERRED, OBJECT_WRITER):
            raise acl_rules.invalid_argument(
                "Invalid x-amz-object-ownership header", "x-amz-object-ownership", ownership
            )
        me = owner_id(ctx.account_id)
        grants, _ = self._requested_grants(req, me, me)
        if ownership == ENFORCED:
            if grants is not None and not acl_rules.only_owner_full_control(grants, me):
                raise ServiceError(
                    "InvalidBucketAclWithObjectOwnership",
                    "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting",
                    400,
                )
            return {}
        out: dict[str, Any] = {"ownership": ownership}
        if grants is not None:
            if acl_rules.is_public(grants) and bpa.get("BlockPublicAcls"):
                raise ServiceError(
                    "InvalidBucketAclWithBlockPublicAccessError",
                    "Bucket cannot have public ACLs set with BlockPublicAccess enabled",
                    400,
                )
            out["acl"] = grants
        return out

    # -- authorization (policy.py's resource_policy, the authorizer's resource_account) ----------

    def resource_account(self, req: dict) -> str | None:
        """The account owning the request's resource: the bucket's owner, or for an operation on
        an object another account owns (ACLs on), that account."""
        name = req.get("Bucket")
        row = self.store.bucket(name) if isinstance(name, str) else None
        if row is None:
            return None
        owner = row.config.get("owner")
        if "ownership" in row.config and isinstance(req.get("Key"), str):
            obj = self._acl_target(row, req)
            if obj is not None:
                return self._object_acl(row, obj)[0]
        return owner

    def _acl_target(self, bucket: BucketRow, req: dict) -> ObjectRow | None:
        """The object whose owner and ACL decide this request, None when its bucket's do (read
        once per request: the authorizer asks for its owner and for its policy)."""
        if CALLER_OPERATION.get() not in OBJECT_OWNER_OPERATIONS:
            return None
        return decided_object(self.store, bucket.name, req)

    def _with_acls(
        self, bucket: BucketRow, req: dict, base: Policy | None, denies: Policy | None
    ) -> Policy | None:
        """The resource policy of a request on a bucket with ACLs on: the bucket policy's part
        (`base`; only its Deny statements, `denies`, for an object another account owns) and the
        bucket's and object's ACLs."""
        if self._ownership(bucket) == ENFORCED:
            return base
        object_grants = None
        if isinstance(req.get("Key"), str):
            obj = self._acl_target(bucket, req)
            if obj is not None:
                obj_owner, object_grants = self._object_acl(bucket, obj)
                if obj_owner != bucket.config.get("owner"):
                    base = denies
        bucket_grants = self._bucket_grants(bucket)
        ignore = self._public_acl_setting(bucket, req, "IgnorePublicAcls")
        key = (bucket.name, _grants_key(bucket_grants), _grants_key(object_grants), ignore)
        # (bucket, bucket grants, object grants, ignore public) -> the ACLs' policy text
        texts: dict[tuple, str] = self.__dict__.setdefault("_acl_texts", {})
        text = texts.get(key)
        if text is None:
            if len(texts) >= _ACL_TEXTS_LIMIT:
                texts.clear()
            text = texts[key] = acl_rules.acl_statements(
                bucket.name, bucket_grants, object_grants, self._account_of, ignore
            )
        return acl_rules.combined_policy(text, base)

    # -- ownership controls ----------------------------------------------------------------------

    def get_bucket_ownership_controls(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        bucket = self._require_bucket(req["Bucket"])
        ownership = self._ownership(bucket)
        if ownership == NO_CONTROLS:
            raise ServiceError(
                "OwnershipControlsNotFoundError",
                "The bucket ownership controls were not found",
                404,
                fields={"BucketName": bucket.name},
            )
        return {"OwnershipControls": {"Rules": [{"ObjectOwnership": ownership}]}}

    async def put_bucket_ownership_controls(self, ctx: RequestContext, req: dict) -> dict:
        name = req["Bucket"]
        self._count(ctx, name)
        self._require_bucket(name)
        rules = (req.get("OwnershipControls") or {}).get("Rules") or []
        if len(rules) != 1 or not isinstance(rules[0], dict) or not rules[0].get("ObjectOwnership"):
            raise ServiceError(*_MALFORMED_XML)
        ownership = rules[0]["ObjectOwnership"]
        if ownership not in (ENFORCED, PREFERRED, OBJECT_WRITER):
            raise ServiceError(*_MALFORMED_XML)

        def write() -> None:
            b = self._bucket_for_write(name)
            config = {k: v for k, v in b.config.items() if k != "ownership"}
            if ownership == ENFORCED:
                owner = owner_id(b.config.get("owner", ""))
                if not acl_rules.only_owner_full_control(self._bucket_grants(b), owner):
                    raise ServiceError(
                        "InvalidBucketAclWithObjectOwnership",
                        "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting",
                        400,
                    )
                config.pop("acl", None)
            else:
                config["ownership"] = ownership
            self.store.set_bucket_field(name, "config", config)

        await self._write(write, bucket=name)
        return {}

    async def delete_bucket_ownership_controls(self, ctx: RequestContext, req: dict) -> dict:
        name = req["Bucket"]
        self._count(ctx, name)

        def write() -> None:
            b = self._bucket_for_write(name)
            self.store.set_bucket_field(name, "config", {**b.config, "ownership": NO_CONTROLS})

        await self._write(write, bucket=name)
        return {}

    # -- ACLs ------------------------------------------------------------------------------------

    @staticmethod
    def _acl_answer(owner_account: str, grants: list[dict[str, Any]]) -> dict[str, Any]:
        # (no DisplayName: S3 stopped returning it on November 21, 2025)
        return {"Owner": {"ID": owner_id(owner_account)}, "Grants": grants}

    def get_bucket_acl(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        bucket = self._require_bucket(req["Bucket"])
        grants = self._bucket_grants(bucket) if self._ownership(bucket) != ENFORCED else None
        owner = bucket.config.get("owner", ctx.account_id)
        return self._acl_answer(owner, grants or [acl_rules.user(owner_id(owner), "FULL_CONTROL")])

    def _grants_to_set(self, bucket: BucketRow, req: dict, owner: str) -> list[dict[str, Any]] | None:
        """What a Put*Acl sets (None: nothing changes, ACLs being disabled), or S3's error."""
        bucket_owner = owner_id(bucket.config.get("owner", ""))
        enforced = self._ownership(bucket) == ENFORCED
        try:
            grants, doc_owner = self._requested_grants(req, owner_id(owner), bucket_owner, body=True)
        except ServiceError as e:  # while ACLs are disabled, no ACL is taken: S3 says that first
            if enforced and e.code not in ("InvalidRequest", "UnexpectedContent"):
                raise acls_not_supported() from None
            raise
        if grants is None:
            raise ServiceError(
                "MissingSecurityHeader",
                "Your request was missing a required header",
                400,
                fields={"MissingHeaderName": "x-amz-acl"},
            )
        if enforced:
            harmless = req.get("ACL") in (None, *HARMLESS_CANNED)
            if not harmless or not acl_rules.only_owner_full_control(grants, bucket_owner):
                raise acls_not_supported()
            return None
        if doc_owner is not None and doc_owner != owner_id(owner):
            raise _access_denied()
        self._check_public_acl(bucket, req, grants)
        return grants

    async def put_bucket_acl(self, ctx: RequestContext, req: dict) -> dict:
        name = req["Bucket"]
        self._count(ctx, name)
        bucket = self._require_bucket(name)
        grants = self._grants_to_set(bucket, req, bucket.config.get("owner", ctx.account_id))
        if grants is None:
            return {}

        def write() -> None:
            b = self._bucket_for_write(name)
            self.store.set_bucket_field(name, "config", {**b.config, "acl": grants})

        await self._write(write, bucket=name)
        return {}

    async def get_object_acl(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        bucket = self._require_bucket(req["Bucket"])
        row = await self._object(bucket, req)  # type: ignore[attr-defined]
        out = self._acl_answer(*self._object_acl(bucket, row))
        if bucket.versioning:
            out["VersionId"] = row.version_id
        return out

    async def put_object_acl(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        bucket = self._require_bucket(req["Bucket"])
        row = await self._object(bucket, req)  # type: ignore[attr-defined]
        owner, _ = self._object_acl(bucket, row)
        grants = self._grants_to_set(bucket, req, owner)
        if grants is None:
            return {}

        def write() -> None:
            b = self._bucket_for_write(bucket.name)
            fresh = self._read_version(b.name, req["Key"], req.get("VersionId"))
            fresh.attrs["acl"] = {"owner": owner, "grants": grants}
            self.store.update_attrs(fresh)

        await self._write(write)
        return {}
