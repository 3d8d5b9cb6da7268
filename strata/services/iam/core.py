"""Shared parts of the IAM provider: the directory, lookups with IAM's errors, rendering, paging.

IAM is global: no region in its ARNs, one namespace per account. Names are unique
case-insensitively. Policy documents travel URL-encoded in responses (botocore decodes them).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from strata.auth.conditions import PolicyError
from strata.auth.directory import Directory, directory_for
from strata.auth.policy import compile_policy
from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.base import ServiceRuntime

_NAME = re.compile(r"^[\w+=,.@-]+$")
_PATH = re.compile(r"^/([\x21-\x7e]*/)?$")
MAX_DOC = {"user": 2048, "role": 10240, "group": 5120, "managed": 6144}
_LABEL = {"user": "user", "group": "group", "role": "role"}


def no_such(kind: str, name: str) -> ServiceError:
    return ServiceError("NoSuchEntity", f"The {kind} with name {name} cannot be found.", 404)


def exists(kind: str, name: str) -> ServiceError:
    return ServiceError("EntityAlreadyExists", f"{kind.capitalize()} with name {name} already exists.", 409)


def invalid(message: str) -> ServiceError:
    return ServiceError("InvalidInput", message, 400)


def validation(message: str) -> ServiceError:
    return ServiceError("ValidationError", message, 400)


def when(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def encoded(doc: str) -> str:
    return quote(doc, safe="")


def check_name(value: Any, member: str, max_len: int = 64) -> str:
    if not isinstance(value, str) or not value:
        raise validation(
            f"1 validation error detected: Value at '{member[0].lower() + member[1:]}' failed to satisfy constraint: Member must not be null"
        )
    if len(value) > max_len:
        raise validation(
            f"1 validation error detected: Value '{value}' at '{member[0].lower() + member[1:]}' failed to satisfy "
            f"constraint: Member must have length less than or equal to {max_len}"
        )
    if not _NAME.match(value):
        raise validation(
            f"1 validation error detected: Value '{value}' at '{member[0].lower() + member[1:]}' failed to satisfy "
            "constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+"
        )
    return value


def check_path(value: Any) -> str:
    if value is None:
        return "/"
    if not isinstance(value, str) or len(value) > 512 or not _PATH.match(value):
        raise validation(
            f"1 validation error detected: Value '{value}' at 'path' failed to satisfy constraint: Member must "
            "satisfy regular expression pattern: (\\u002F)|(\\u002F[\\u0021-\\u007E]+\\u002F)"
        )
    return value


def check_document(text: Any, kind: str, limit: int) -> str:
    """A policy document IAM accepts (MalformedPolicyDocument otherwise)."""
    if not isinstance(text, str) or not text.strip():
        raise ServiceError("MalformedPolicyDocument", "Syntax errors in policy.", 400)
    if len("".join(text.split())) > limit:
        raise ServiceError("LimitExceeded", f"Cannot exceed quota for PolicySize: {limit}", 409)
    try:
        compile_policy(text, kind)
    except PolicyError as e:
        raise ServiceError("MalformedPolicyDocument", str(e), 400) from None
    return text


def page(items: list, req: dict, key: str) -> dict:
    """IAM's Marker/MaxItems paging over an already ordered list."""
    start = 0
    marker = req.get("Marker")
    if marker:
        if not marker.isdigit():
            raise invalid("Invalid Marker.")
        start = int(marker)
    limit = req.get("MaxItems") or 100
    if not 1 <= limit <= 1000:
        raise validation(
            f"1 validation error detected: Value '{limit}' at 'maxItems' failed to satisfy constraint: "
            "Member must have value less than or equal to 1000"
        )
    chunk = items[start : start + limit]
    out: dict[str, Any] = {key: chunk, "IsTruncated": start + limit < len(items)}
    if out["IsTruncated"]:
        out["Marker"] = str(start + limit)
    return out


class IAMBase:
    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        self.dir: Directory = directory_for(runtime.settings)

    # ---- authorization hook

    def resource_arn(self, req: dict, arn: str) -> str | None:
        """The real ARN (with its path) of the user, role or group a request names."""
        account = arn.split(":")[4] if arn.count(":") >= 5 else ""
        for kind, member in (("user", "UserName"), ("role", "RoleName"), ("group", "GroupName")):
            name = req.get(member)
            if isinstance(name, str):
                doc = self.dir.find(kind, account, name)
                if doc is not None:
                    return doc["Arn"]
                if kind == "user" and isinstance(req.get("Path"), str):
                    return f"arn:aws:iam::{account}:user{req['Path']}{name}"
                return None
        return None

    # ---- lookups

    def _entity(self, kind: str, ctx: RequestContext, name: Any) -> dict:
        check_name(name, {"user": "UserName", "group": "GroupName", "role": "RoleName"}[kind])
        doc = self.dir.find(kind, ctx.account_id, name)
        if doc is None:
            raise no_such(_LABEL[kind], name)
        return doc

    def _user(self, ctx: RequestContext, req: dict) -> dict:
        """The named user, or the caller itself when UserName is omitted (as IAM does)."""
        name = req.get("UserName")
        if name is None:
            p = ctx.principal
            if p is None or p.kind != "user":
                if p is not None and p.kind == "root" and ctx.operation == "GetUser":
                    return {}
                raise validation("Must specify userName when calling with non-User credentials")
            name = p.name
        return self._entity("user", ctx, name)

    def _policy(self, ctx: RequestContext, arn: Any) -> dict:
        if not isinstance(arn, str) or not arn.startswith("arn:"):
            raise invalid(f"ARN {arn} is not valid.")
        doc = self.dir.managed_policy(arn)
        if doc is None or (not doc.get("aws") and doc["account"] != ctx.account_id):
            raise ServiceError("NoSuchEntity", f"Policy {arn} does not exist or is not attachable.", 404)
        return doc

    def _attachments(self, arn: str, account: str) -> list[tuple[str, dict]]:
        """(kind, entity) of every attachment of a managed policy within an account."""
        out = []
        for kind in ("user", "group", "role"):
            for doc in self.dir.listing(kind, account):
                if arn in doc.get("attached", []):
                    out.append((kind, doc))
        return out

    def _boundary_uses(self, arn: str, account: str) -> int:
        return sum(
            1
            for kind in ("user", "role")
            for doc in self.dir.listing(kind, account)
            if doc.get("boundary") == arn
        )

    # ---- rendering

    @staticmethod
    def _boundary(doc: dict) -> dict:
        b = doc.get("boundary")
        return (
            {"PermissionsBoundary": {"PermissionsBoundaryType": "Policy", "PermissionsBoundaryArn": b}}
            if b
            else {}
        )

    def _render_user(self, doc: dict, full: bool = False) -> dict:
        out = {k: doc[k] for k in ("Path", "UserName", "UserId", "Arn")}
        out["CreateDate"] = when(doc["CreateDate"])
        if full:
            out.update(self._boundary(doc))
            if doc.get("Tags"):
                out["Tags"] = doc["Tags"]
        return out

    def _render_group(self, doc: dict) -> dict:
        out = {k: doc[k] for k in ("Path", "GroupName", "GroupId", "Arn")}
        out["CreateDate"] = when(doc["CreateDate"])
        return out

    def _render_role(self, doc: dict, full: bool = True) -> dict:
        out = {k: doc[k] for k in ("Path", "RoleName", "RoleId", "Arn")}
        out["CreateDate"] = when(doc["CreateDate"])
        out["AssumeRolePolicyDocument"] = encoded(doc["trust"])
        out["MaxSessionDuration"] = doc["MaxSessionDuration"]
        if doc.get("Description"):
            out["Description"] = doc["Description"]
        if full:
            out.update(self._boundary(doc))
            if doc.get("Tags"):
                out["Tags"] = doc["Tags"]
            out["RoleLastUsed"] = {}
        return out

    def _render_policy(self, doc: dict, account: str) -> dict:
        out = {k: doc[k] for k in ("PolicyName", "PolicyId", "Arn", "Path")}
        out["DefaultVersionId"] = doc["default"]
        out["AttachmentCount"] = len(self._attachments(doc["Arn"], account))
        out["PermissionsBoundaryUsageCount"] = self._boundary_uses(doc["Arn"], account)
        out["IsAttachable"] = True
        out["CreateDate"] = when(doc["CreateDate"])
        out["UpdateDate"] = when(doc["UpdateDate"])
        if doc.get("Description"):
            out["Description"] = doc["Description"]
        if doc.get("Tags"):
            out["Tags"] = doc["Tags"]
        return out
