"""S3 access control lists as data: canned ACLs, x-amz-grant-* headers and AccessControlPolicy
documents turned into one list of grants, what a grant allows, and the resource-policy statements
the one policy engine evaluates for an ACL.

A grant is stored as S3 shows it: `{"Grantee": {"Type": ..., "ID"|"URI": ...}, "Permission": ...}`.
Grantees are canonical user ids (one per account, `core.owner_id`) or the three groups; grants by
email address are refused as S3 refuses them outside its legacy regions (UnsupportedArgument).

What a permission allows (AWS's "Mapping of ACL permissions and access policy permissions"):

    on a bucket   READ: list the bucket (objects, versions, uploads)   WRITE: create, overwrite and
                  delete objects (and abort uploads)   READ_ACP / WRITE_ACP: Get/PutBucketAcl
    on an object  READ: GetObject (any version)   READ_ACP / WRITE_ACP: Get/PutObjectAcl
    FULL_CONTROL: all of them.

For authorization an ACL becomes Allow statements of a resource policy: a canonical user is its
account (`arn:aws:iam::<account>:root`: its users still need their own IAM permission, as on AWS),
AllUsers is `*`, AuthenticatedUsers is `*` for any signed caller, the anonymous user (the owner
of what an unsigned request wrote) is `*` for unsigned callers; LogDelivery (S3's own log
writer) and service accounts (aws-exec-read's EC2) grant nothing a Strata caller can use.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from strata.auth.policy import Policy, compile_policy
from strata.protocol.errors import ServiceError

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTHENTICATED_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
LOG_DELIVERY = "http://acs.amazonaws.com/groups/s3/LogDelivery"
GROUPS = (ALL_USERS, AUTHENTICATED_USERS, LOG_DELIVERY)
PUBLIC_GROUPS = (ALL_USERS, AUTHENTICATED_USERS)
# The canonical user aws-exec-read grants READ to (Amazon EC2, reading AMI bundles).
EC2_CANONICAL_ID = "6aa5a366c34c1cbe25dc49211496e913e0351eb0e8c37aa3477e40942ec6b97c"
# The owner of an object written anonymously (through a public-read-write bucket), as S3 shows it.
ANONYMOUS_CANONICAL_ID = "65a011a29cdf8ec533ec3d1ccaae921c"
ANONYMOUS_OWNER = "anonymous"  # its stand-in for an account in stored ACLs
SERVICE_IDS = frozenset([EC2_CANONICAL_ID, ANONYMOUS_CANONICAL_ID])
PERMISSIONS = ("FULL_CONTROL", "WRITE", "WRITE_ACP", "READ", "READ_ACP")
CANNED = (
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "aws-exec-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
    "log-delivery-write",
)
# Request member -> the permission its x-amz-grant-* header gives.
GRANT_HEADERS = {
    "GrantFullControl": "FULL_CONTROL",
    "GrantRead": "READ",
    "GrantReadACP": "READ_ACP",
    "GrantWrite": "WRITE",
    "GrantWriteACP": "WRITE_ACP",
}
MAX_GRANTS = 100

_BUCKET_ACTIONS = {
    "READ": ("s3:ListBucket", "s3:ListBucketVersions", "s3:ListBucketMultipartUploads"),
    "WRITE": ("s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"),
    "READ_ACP": ("s3:GetBucketAcl",),
    "WRITE_ACP": ("s3:PutBucketAcl",),
}
_OBJECT_ACTIONS = {
    "READ": ("s3:GetObject", "s3:GetObjectVersion"),
    "READ_ACP": ("s3:GetObjectAcl", "s3:GetObjectVersionAcl"),
    "WRITE_ACP": ("s3:PutObjectAcl", "s3:PutObjectVersionAcl"),
}
_HEADER_GRANTEE = re.compile(r'\s*(id|uri|emailAddress)\s*=\s*"?([^",]*)"?\s*(?:,|$)', re.IGNORECASE)


def user(canonical_id: str, permission: str) -> dict[str, Any]:
    return {"Grantee": {"Type": "CanonicalUser", "ID": canonical_id}, "Permission": permission}


def group(uri: str, permission: str) -> dict[str, Any]:
    return {"Grantee": {"Type": "Group", "URI": uri}, "Permission": permission}


def invalid_argument(message: str, name: str, value: str) -> ServiceError:
    return ServiceError(
        "InvalidArgument", message, 400, fields={"ArgumentName": name, "ArgumentValue": value}
    )


def malformed_acl() -> ServiceError:
    return ServiceError(
        "MalformedACLError",
        "The XML you provided was not well-formed or did not validate against our published schema",
        400,
    )


def _email_refused() -> ServiceError:
    return ServiceError("UnsupportedArgument", "The request contained an unsupported argument.", 400)


def canned_grants(canned: str, owner: str, bucket_owner: str) -> list[dict[str, Any]]:
    """The grants a canned ACL stands for (owner, bucket_owner: canonical ids)."""
    grants = [user(owner, "FULL_CONTROL")]
    if canned == "public-read":
        grants.append(group(ALL_USERS, "READ"))
    elif canned == "public-read-write":
        grants += [group(ALL_USERS, "READ"), group(ALL_USERS, "WRITE")]
    elif canned == "authenticated-read":
        grants.append(group(AUTHENTICATED_USERS, "READ"))
    elif canned == "aws-exec-read":
        grants.append(user(EC2_CANONICAL_ID, "READ"))
    elif canned == "log-delivery-write":
        grants += [group(LOG_DELIVERY, "WRITE"), group(LOG_DELIVERY, "READ_ACP")]
    elif canned in ("bucket-owner-read", "bucket-owner-full-control") and bucket_owner != owner:
        grants.append(user(bucket_owner, "READ" if canned == "bucket-owner-read" else "FULL_CONTROL"))
    elif canned not in CANNED:
        raise invalid_argument("", "x-amz-acl", canned)
    return grants


def header_grants(req: dict, known: Callable[[str], bool]) -> list[dict[str, Any]]:
    """The grants of a request's x-amz-grant-* headers (`id="..."`, `uri="..."`, comma-separated)."""
    grants: list[dict[str, Any]] = []
    for member, permission in GRANT_HEADERS.items():
        value = req.get(member)
        if not value:
            continue
        pos = 0
        while pos < len(value):
            m = _HEADER_GRANTEE.match(value, pos)
            if m is None or m.end() == pos:
                raise invalid_argument("", f"x-amz-grant-{permission.lower().replace('_', '-')}", value)
            pos = m.end()
            kind, who = m.group(1).lower(), m.group(2).strip()
            if kind == "emailaddress":
                raise _email_refused()
            grantee = {"Type": "CanonicalUser", "ID": who} if kind == "id" else {"Type": "Group", "URI": who}
            grants.append(_checked({"Grantee": grantee, "Permission": permission}, known))
    if len(grants) > MAX_GRANTS:
        raise malformed_acl()
    return grants


def document_grants(policy: dict, known: Callable[[str], bool]) -> tuple[str, list[dict[str, Any]]]:
    """(owner canonical id, grants) of an AccessControlPolicy body, or S3's error for one it refuses."""
    owner = (policy.get("Owner") or {}).get("ID")
    if not owner:
        raise malformed_acl()
    given = policy.get("Grants") or []
    if len(given) > MAX_GRANTS:  # S3: "An ACL can have up to 100 grants"
        raise malformed_acl()
    return owner, [_checked(g, known) for g in given]


def _checked(grant: dict, known: Callable[[str], bool]) -> dict[str, Any]:
    grantee = grant.get("Grantee") or {}
    permission = grant.get("Permission")
    kind = grantee.get("Type")
    if kind == "AmazonCustomerByEmail" or grantee.get("EmailAddress"):
        raise _email_refused()
    if permission not in PERMISSIONS:
        raise malformed_acl()
    if kind == "CanonicalUser":
        cid = grantee.get("ID") or ""
        if not known(cid) and cid not in SERVICE_IDS:
            raise invalid_argument("Invalid id", "CanonicalUser/ID", cid)
        return user(cid, permission)
    if kind == "Group":
        uri = grantee.get("URI") or ""
        if uri not in GROUPS:
            raise invalid_argument("Invalid group uri", "Group/URI", uri)
        return group(uri, permission)
    raise malformed_acl()


def is_public(grants: list[dict[str, Any]]) -> bool:
    """AWS's public ACL: one granting anything to AllUsers or AuthenticatedUsers."""
    return any(g["Grantee"].get("URI") in PUBLIC_GROUPS for g in grants)


def only_owner_full_control(grants: list[dict[str, Any]], owner: str) -> bool:
    """An ACL that changes nothing on a BucketOwnerEnforced bucket."""
    return all(g["Permission"] == "FULL_CONTROL" and g["Grantee"].get("ID") == owner for g in grants)


def _statements(
    grants: list[dict[str, Any]],
    actions: Mapping[str, tuple[str, ...]],
    resource: str,
    account_of: Callable[[str], str | None],
    ignore_public: bool,
) -> list[dict[str, Any]]:
    out = []
    for g in grants:
        permission = g["Permission"]
        granted = (
            sorted({a for group_actions in actions.values() for a in group_actions})
            if permission == "FULL_CONTROL"
            else list(actions.get(permission, ()))
        )
        if not granted:
            continue
        grantee = g["Grantee"]
        statement: dict[str, Any] = {"Effect": "Allow", "Action": granted, "Resource": resource}
        uri = grantee.get("URI")
        if uri in PUBLIC_GROUPS:
            if ignore_public:
                continue
            statement["Principal"] = "*"
            if uri == AUTHENTICATED_USERS:
                statement["Condition"] = {"StringNotEquals": {"aws:PrincipalType": "Anonymous"}}
        elif grantee.get("ID") == ANONYMOUS_CANONICAL_ID:
            statement["Principal"] = "*"
            statement["Condition"] = {"StringEquals": {"aws:PrincipalType": "Anonymous"}}
        elif grantee.get("ID"):
            account = account_of(grantee["ID"])
            if account is None:
                continue
            statement["Principal"] = {"AWS": f"arn:aws:iam::{account}:root"}
        else:
            continue
        out.append(statement)
    return out


def acl_statements(
    bucket: str,
    bucket_grants: list[dict[str, Any]],
    object_grants: list[dict[str, Any]] | None,
    account_of: Callable[[str], str | None],
    ignore_public: bool,
) -> str:
    """The ACLs of a bucket (and of the object a request names) as a policy document's text."""
    statements = _statements(
        bucket_grants, _BUCKET_ACTIONS, f"arn:aws:s3:::{bucket}", account_of, ignore_public
    )
    for s in statements:  # WRITE's object actions act on the bucket's objects
        s["Resource"] = [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]
    if object_grants:
        # Built for the one object the request names: its object ARN pattern is the bucket's.
        statements += _statements(
            object_grants, _OBJECT_ACTIONS, f"arn:aws:s3:::{bucket}/*", account_of, ignore_public
        )
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)


_COMBINED: dict[tuple[str, int], tuple[Policy | None, Policy | None]] = {}
_COMBINED_LIMIT = 1024


def combined_policy(acl_text: str, base: Policy | None) -> Policy | None:
    """One resource policy: the bucket policy's statements that apply (`base`) and the ACL's
    (cached per ACL text and base policy object: both are themselves cached compilations)."""
    key = (acl_text, id(base))
    hit = _COMBINED.get(key)
    if hit is not None and hit[0] is base:
        return hit[1]
    acl = _compiled(acl_text)
    if base is None:
        out = acl if acl.statements else None
    elif not acl.statements:
        out = base
    else:
        out = Policy(base.statements + acl.statements, base.text + "\n" + acl_text)
    if len(_COMBINED) >= _COMBINED_LIMIT:
        _COMBINED.clear()
    _COMBINED[key] = (base, out)
    return out


@lru_cache(maxsize=1024)
def _compiled(text: str) -> Policy:
    return compile_policy(text, "resource")
