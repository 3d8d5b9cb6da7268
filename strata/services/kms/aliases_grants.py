"""KMS aliases (friendly names for keys) and grants (delegated permissions on one key)."""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.kms import specs
from strata.services.kms.grant_constraints import normalized
from strata.services.kms.keys import alias_arn, grant_token, iso, key_arn, parse_grant_token
from strata.sim.clock import clock

if TYPE_CHECKING:
    from strata.services.kms.keys import KeyRing

_ALIAS = re.compile(r"^alias/[a-zA-Z0-9/_-]+$")
MAX_GRANTS_PER_KEY = 50000


def _error(code: str, message: str = "") -> ServiceError:
    return ServiceError(code, message, 400)


def _arn(doc: dict) -> str:
    return key_arn(doc["region"], doc["account"], doc["id"])


class AliasesGrantsOperations:
    """Mixed into KMSProvider, which supplies `keys`, `_check`, `_dry_run`, `_page`."""

    keys: KeyRing

    # -- aliases -------------------------------------------------------------------------------------

    def _alias_name(self, name: str) -> str:
        if not _ALIAS.match(name):
            raise _error(
                "ValidationException",
                f"Alias must start with the prefix \"alias/\" and contain only alphanumerics, '/', '_' or '-': {name}",
            )
        if name.startswith("alias/aws/"):
            raise _error(
                "InvalidAliasNameException",
                "Alias names that begin with alias/aws/ are reserved for AWS managed keys.",
            )
        return name

    def _alias_target(self, ctx: RequestContext, req: dict) -> dict:
        where = self._check(ctx, req)  # type: ignore[attr-defined]
        doc = self.keys.resolve(where, req["TargetKeyId"], aliases=False)
        if doc["manager"] == "AWS":
            raise _error(
                "UnsupportedOperationException", f"{_arn(doc)} is an AWS managed key: it cannot get an alias."
            )
        if doc["state"] == "PendingDeletion":
            raise _error("KMSInvalidStateException", f"{_arn(doc)} is pending deletion.")
        return doc

    def create_alias(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._alias_target(ctx, req)
        name = self._alias_name(req["AliasName"])
        where = self._check(ctx, req)  # type: ignore[attr-defined]
        if self.keys.get_alias(where, name) is not None:
            raise _error(
                "AlreadyExistsException",
                f"An alias with the name {alias_arn(where.region, where.account, name)} already exists",
            )
        self.keys.put_alias(where, name, doc["id"])
        return {}

    def update_alias(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._alias_target(ctx, req)
        name = self._alias_name(req["AliasName"])
        where = self._check(ctx, req)  # type: ignore[attr-defined]
        alias = self.keys.get_alias(where, name)
        if alias is None:
            raise _error(
                "NotFoundException", f"Alias {alias_arn(where.region, where.account, name)} is not found."
            )
        old = self.keys.get(alias["target"])
        if old is not None and (
            old["usage"] != doc["usage"]
            or (old["spec"] == specs.SYMMETRIC) != (doc["spec"] == specs.SYMMETRIC)
        ):
            raise _error(
                "ValidationException",
                "An alias can be updated only to a key of the same key type and key usage as its current key.",
            )
        self.keys.put_alias(where, name, doc["id"], alias["created"])
        return {}

    def delete_alias(self, ctx: RequestContext, req: dict) -> dict:
        where = self._check(ctx, req)  # type: ignore[attr-defined]
        name = self._alias_name(req["AliasName"])
        if not self.keys.delete_alias(where, name):
            raise _error(
                "NotFoundException", f"Alias {alias_arn(where.region, where.account, name)} is not found."
            )
        return {}

    def list_aliases(self, ctx: RequestContext, req: dict) -> dict:
        where = self._check(ctx, req)  # type: ignore[attr-defined]
        only = self.keys.resolve(where, req["KeyId"], aliases=False)["id"] if req.get("KeyId") else None
        entries: dict[str, dict] = {}
        if only is None:
            for managed in specs.ALIASES_AWS_MANAGED:  # AWS lists its predefined aliases before first use
                name = "alias/" + managed
                entries[name] = {"AliasName": name, "AliasArn": alias_arn(where.region, where.account, name)}
        for alias in self.keys.aliases(where):
            if only is not None and alias["target"] != only:
                continue
            if self.keys.get(alias["target"]) is None:
                continue
            entries[alias["name"]] = {
                "AliasName": alias["name"],
                "AliasArn": alias_arn(where.region, where.account, alias["name"]),
                "TargetKeyId": alias["target"],
                "CreationDate": iso(alias["created"]),
                "LastUpdatedDate": iso(alias["updated"]),
            }
        items = [entries[k] for k in sorted(entries)]
        page, marker = self._page(items, req, lambda a: a["AliasName"], 50)  # type: ignore[attr-defined]
        out: dict[str, Any] = {"Aliases": page, "Truncated": marker is not None}
        if marker:
            out["NextMarker"] = marker
        return out

    # -- grants --------------------------------------------------------------------------------------

    def create_grant(self, ctx: RequestContext, req: dict) -> dict:
        where = self._check(ctx, req)  # type: ignore[attr-defined]
        doc = self.keys.resolve(where, req["KeyId"], aliases=False)
        if doc["state"] == "PendingDeletion":
            raise _error("KMSInvalidStateException", f"{_arn(doc)} is pending deletion.")
        grantee = req.get("GranteePrincipal") or req.get("GranteeServicePrincipal")
        if not grantee:
            raise _error("ValidationException", "GranteePrincipal or GranteeServicePrincipal is required.")
        allowed = specs.grant_operations(doc["spec"], doc["usage"])
        bad = [op for op in req["Operations"] if op not in allowed]
        if bad or not req["Operations"]:
            raise _error("ValidationException", f"Grant operations {bad} are not valid for {_arn(doc)}.")
        constraints = normalized(req.get("Constraints"))
        if constraints and doc["spec"] != specs.SYMMETRIC:
            raise _error(
                "ValidationException", "Encryption context constraints need a symmetric encryption key."
            )
        existing = self.keys.grants(doc["id"])
        name = req.get("Name")
        record = {
            "name": name,
            "grantee": grantee,
            "retiring": req.get("RetiringPrincipal") or req.get("RetiringServicePrincipal"),
            "operations": sorted(req["Operations"]),
            "constraints": constraints,
        }
        for grant in existing:
            if name and grant["name"] == name and all(grant[k] == v for k, v in record.items()):
                return {"GrantToken": grant_token(doc["id"], grant["id"]), "GrantId": grant["id"]}
        if len(existing) >= MAX_GRANTS_PER_KEY:
            raise _error(
                "LimitExceededException", f"{_arn(doc)} has reached the limit of {MAX_GRANTS_PER_KEY} grants."
            )
        self._dry_run(req)  # type: ignore[attr-defined]
        grant_id = uuid.uuid4().hex + uuid.uuid4().hex
        record.update(id=grant_id, created=clock.time(), issuing=where.account, key=doc["id"])
        self.keys.put_grant(doc["id"], record)
        return {"GrantToken": grant_token(doc["id"], grant_id), "GrantId": grant_id}

    @staticmethod
    def _grant_entry(doc: dict, grant: dict) -> dict:
        out: dict[str, Any] = {
            "KeyId": _arn(doc),
            "GrantId": grant["id"],
            "CreationDate": iso(grant["created"]),
            "GranteePrincipal": grant["grantee"],
            "IssuingAccount": f"arn:aws:iam::{grant['issuing']}:root",
            "Operations": grant["operations"],
        }
        if grant.get("name"):
            out["Name"] = grant["name"]
        if grant.get("retiring"):
            out["RetiringPrincipal"] = grant["retiring"]
        if grant.get("constraints"):
            out["Constraints"] = grant["constraints"]
        return out

    def list_grants(self, ctx: RequestContext, req: dict) -> dict:
        where = self._check(ctx, req)  # type: ignore[attr-defined]
        doc = self.keys.resolve(where, req["KeyId"], aliases=False)
        grants = sorted(self.keys.grants(doc["id"]), key=lambda g: g["id"])
        if req.get("GrantId"):
            grants = [g for g in grants if g["id"] == req["GrantId"]]
        grantee = req.get("GranteePrincipal") or req.get("GranteeServicePrincipal")
        if grantee:
            grants = [g for g in grants if g["grantee"] == grantee]
        page, marker = self._page(grants, req, lambda g: g["id"], 50)  # type: ignore[attr-defined]
        out: dict[str, Any] = {
            "Grants": [self._grant_entry(doc, g) for g in page],
            "Truncated": marker is not None,
        }
        if marker:
            out["NextMarker"] = marker
        return out

    def list_retirable_grants(self, ctx: RequestContext, req: dict) -> dict:
        where = self._check(ctx, req)  # type: ignore[attr-defined]
        retiring = req.get("RetiringPrincipal") or req.get("RetiringServicePrincipal")
        if not retiring:
            raise _error("ValidationException", "RetiringPrincipal is required.")
        found = []
        for grant in sorted(self.keys.all_grants(), key=lambda g: g["id"]):
            doc = self.keys.get(grant["key"])
            if doc is not None and doc["account"] == where.account and grant.get("retiring") == retiring:
                found.append((doc, grant))
        page, marker = self._page(found, req, lambda p: p[1]["id"], 50)  # type: ignore[attr-defined]
        out: dict[str, Any] = {
            "Grants": [self._grant_entry(d, g) for d, g in page],
            "Truncated": marker is not None,
        }
        if marker:
            out["NextMarker"] = marker
        return out

    def retire_grant(self, ctx: RequestContext, req: dict) -> dict:
        where = self._check(ctx, req)  # type: ignore[attr-defined]
        if req.get("GrantToken"):
            parsed = parse_grant_token(req["GrantToken"])
            if parsed is None:
                raise _error("InvalidGrantTokenException", "Grant token is not valid")
            key_id, grant_id = parsed
        elif req.get("KeyId") and req.get("GrantId"):
            key_id = self.keys.resolve(where, req["KeyId"], aliases=False)["id"]
            grant_id = req["GrantId"]
        else:
            raise _error(
                "ValidationException", "Either GrantToken, or both KeyId and GrantId, must be given."
            )
        self._dry_run(req)  # type: ignore[attr-defined]
        if not self.keys.delete_grant(key_id, grant_id):
            raise _error("NotFoundException", f"Grant ID {grant_id} not found")
        return {}

    def revoke_grant(self, ctx: RequestContext, req: dict) -> dict:
        where = self._check(ctx, req)  # type: ignore[attr-defined]
        doc = self.keys.resolve(where, req["KeyId"], aliases=False)
        self._dry_run(req)  # type: ignore[attr-defined]
        if not self.keys.delete_grant(doc["id"], req["GrantId"]):
            raise _error("NotFoundException", f"Grant ID {req['GrantId']} not found")
        return {}
