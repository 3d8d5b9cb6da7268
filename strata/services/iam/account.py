"""IAM's account-wide records and smaller entities: the account password policy, instance profiles
(a role container EC2 instances are launched with), tags on customer managed policies, and
ListPoliciesGrantingServiceAccess (which of an identity's policies allow some action of a service).

The password policy governs IAM users' console passwords; it is kept and returned as AWS does
(Update replaces the whole policy, unnamed settings take their documented defaults).
"""

from __future__ import annotations

import json
import re
from fnmatch import fnmatchcase
from typing import Any

from strata.auth.directory import new_id
from strata.context import RequestContext
from strata.protocol.constraints import validation_errors, validation_message
from strata.protocol.errors import ServiceError
from strata.protocol.spec import service_model
from strata.services.iam.core import IAMBase, check_name, check_path, invalid, no_such, page, validation, when
from strata.sim.clock import clock

MAX_TAGS = 50
_ALIAS = re.compile(r"^[a-z0-9]([a-z0-9]|-(?!-)){1,61}[a-z0-9]$")
MAX_ROLES_PER_PROFILE = 1
# UpdateAccountPasswordPolicy: each setting's value when the request leaves it out.
PASSWORD_DEFAULTS: dict[str, Any] = {
    "MinimumPasswordLength": 6,
    "RequireSymbols": False,
    "RequireNumbers": False,
    "RequireUppercaseCharacters": False,
    "RequireLowercaseCharacters": False,
    "AllowUsersToChangePassword": False,
    "MaxPasswordAge": 0,
    "PasswordReusePrevention": 0,
    "HardExpiry": False,
}


def _check_model(operation: str, req: dict) -> None:
    """The model's constraints (ranges, lengths) with AWS's ValidationError text."""
    shape = service_model("iam").operation_model(operation).input_shape
    errors = validation_errors(shape, req)
    if errors:
        raise validation(validation_message(errors))


_IDENTITY_ARN = re.compile(r"^arn:aws:iam::(\d{12}):(user|group|role)(/[\x21-\x7e]*)?/([\w+=,.@-]+)$")
_NAME_KEY = {"user": "UserName", "group": "GroupName", "role": "RoleName"}


def _actions(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [a for a in value or [] if isinstance(a, str)]


def _names_service(pattern: str, namespace: str, whole: bool = False) -> bool:
    """Does an Action pattern cover some action of `namespace` (every action, with `whole`)?"""
    pattern = pattern.lower()
    if pattern == "*":
        return True
    prefix, _, action = pattern.partition(":")
    return fnmatchcase(namespace, prefix) and (not whole or action == "*")


def grants_service(text: str, namespace: str) -> bool:
    """Does a policy document have an Allow statement for some action of `namespace`?"""
    try:
        statements = json.loads(text).get("Statement", [])
    except (ValueError, AttributeError):
        return False
    if isinstance(statements, dict):
        statements = [statements]
    namespace = namespace.lower()
    for st in statements:
        if not isinstance(st, dict) or st.get("Effect") != "Allow":
            continue
        if "Action" in st and any(_names_service(a, namespace) for a in _actions(st["Action"])):
            return True
        if "NotAction" in st and not any(
            _names_service(a, namespace, True) for a in _actions(st["NotAction"])
        ):
            return True
    return False


def _merge_tags(old: list[dict], new: list[dict]) -> list[dict]:
    tags = {t["Key"]: t["Value"] for t in old}
    tags.update({t["Key"]: t.get("Value", "") for t in new})
    if len(tags) > MAX_TAGS:
        raise ServiceError("LimitExceeded", f"Cannot exceed quota for TagsPerEntity: {MAX_TAGS}", 409)
    return [{"Key": k, "Value": v} for k, v in tags.items()]


class AccountOperations(IAMBase):
    # ---- the password policy

    def _password_key(self, ctx: RequestContext) -> str:
        return ctx.account_id

    def get_account_password_policy(self, ctx: RequestContext, req: dict) -> dict:
        self.dir.load()
        doc = self.dir.db.get_doc("password_policy", self._password_key(ctx))
        if doc is None:
            raise ServiceError(
                "NoSuchEntity",
                f"The Password Policy with domain name {ctx.account_id} cannot be found.",
                404,
            )
        out = dict(doc)
        out["ExpirePasswords"] = bool(doc.get("MaxPasswordAge"))
        if not doc.get("MaxPasswordAge"):
            out.pop("MaxPasswordAge", None)
        if not doc.get("PasswordReusePrevention"):
            out.pop("PasswordReusePrevention", None)
        return {"PasswordPolicy": out}

    def update_account_password_policy(self, ctx: RequestContext, req: dict) -> dict:
        _check_model("UpdateAccountPasswordPolicy", req)
        doc = {k: req[k] if req.get(k) is not None else default for k, default in PASSWORD_DEFAULTS.items()}
        with self.dir.change():
            self.dir.db.put_doc("password_policy", self._password_key(ctx), doc)
        return {}

    def delete_account_password_policy(self, ctx: RequestContext, req: dict) -> dict:
        self.get_account_password_policy(ctx, req)  # NoSuchEntity when there is none
        with self.dir.change():
            self.dir.db.delete_doc("password_policy", self._password_key(ctx))
        return {}

    # ---- tags on customer managed policies

    def _customer_policy(self, ctx: RequestContext, arn: Any) -> dict:
        doc = self._policy(ctx, arn)
        if doc.get("aws"):
            raise ServiceError("InvalidInput", f"AWS managed policy {arn} cannot be tagged.", 400)
        return doc

    def tag_policy(self, ctx: RequestContext, req: dict) -> dict:
        _check_model("TagPolicy", req)
        doc = self._customer_policy(ctx, req.get("PolicyArn"))
        doc["Tags"] = _merge_tags(doc.get("Tags") or [], req["Tags"])
        with self.dir.change():
            self.dir.save("policy", doc)
        return {}

    def untag_policy(self, ctx: RequestContext, req: dict) -> dict:
        _check_model("UntagPolicy", req)
        doc = self._customer_policy(ctx, req.get("PolicyArn"))
        drop = set(req["TagKeys"])
        doc["Tags"] = [t for t in doc.get("Tags") or [] if t["Key"] not in drop]
        with self.dir.change():
            self.dir.save("policy", doc)
        return {}

    def list_policy_tags(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._policy(ctx, req.get("PolicyArn"))
        return page(list(doc.get("Tags") or []), req, "Tags")

    # ---- instance profiles

    def _profile(self, ctx: RequestContext, name: Any) -> dict:
        check_name(name, "InstanceProfileName", 128)
        doc = self.dir.find("instance_profile", ctx.account_id, name)
        if doc is None:
            raise ServiceError("NoSuchEntity", f"Instance Profile {name} cannot be found.", 404)
        return doc

    def _render_profile(self, doc: dict) -> dict:
        roles = []
        for role_name in doc["roles"]:
            role = self.dir.find("role", doc["account"], role_name)
            if role is not None:
                roles.append(self._render_role(role, False))
        out = {k: doc[k] for k in ("Path", "InstanceProfileName", "InstanceProfileId", "Arn")}
        out["CreateDate"] = when(doc["CreateDate"])
        out["Roles"] = roles
        if doc.get("Tags"):
            out["Tags"] = doc["Tags"]
        return out

    def create_instance_profile(self, ctx: RequestContext, req: dict) -> dict:
        _check_model("CreateInstanceProfile", req)
        name = check_name(req.get("InstanceProfileName"), "InstanceProfileName", 128)
        path = check_path(req.get("Path"))
        if self.dir.find("instance_profile", ctx.account_id, name) is not None:
            raise ServiceError("EntityAlreadyExists", f"Instance Profile {name} already exists.", 409)
        doc = {
            "account": ctx.account_id,
            "InstanceProfileName": name,
            "InstanceProfileId": new_id("AIPA"),
            "Path": path,
            "Arn": f"arn:aws:iam::{ctx.account_id}:instance-profile{path}{name}",
            "CreateDate": clock.time(),
            "roles": [],
            "Tags": _merge_tags([], req.get("Tags") or []),
        }
        with self.dir.change():
            self.dir.save("instance_profile", doc)
        return {"InstanceProfile": self._render_profile(doc)}

    def get_instance_profile(self, ctx: RequestContext, req: dict) -> dict:
        return {"InstanceProfile": self._render_profile(self._profile(ctx, req.get("InstanceProfileName")))}

    def delete_instance_profile(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._profile(ctx, req.get("InstanceProfileName"))
        if doc["roles"]:
            raise ServiceError(
                "DeleteConflict", "Cannot delete entity, must remove roles from instance profile first.", 409
            )
        with self.dir.change():
            self.dir.drop("instance_profile", doc)
        return {}

    def tag_instance_profile(self, ctx: RequestContext, req: dict) -> dict:
        _check_model("TagInstanceProfile", req)
        doc = self._profile(ctx, req.get("InstanceProfileName"))
        doc["Tags"] = _merge_tags(doc.get("Tags") or [], req["Tags"])
        with self.dir.change():
            self.dir.save("instance_profile", doc)
        return {}

    def untag_instance_profile(self, ctx: RequestContext, req: dict) -> dict:
        _check_model("UntagInstanceProfile", req)
        doc = self._profile(ctx, req.get("InstanceProfileName"))
        drop = set(req["TagKeys"])
        doc["Tags"] = [t for t in doc.get("Tags") or [] if t["Key"] not in drop]
        with self.dir.change():
            self.dir.save("instance_profile", doc)
        return {}

    def list_instance_profile_tags(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._profile(ctx, req.get("InstanceProfileName"))
        return page(list(doc.get("Tags") or []), req, "Tags")

    # ---- the account alias (one per account, unique across accounts, as on AWS)

    def create_account_alias(self, ctx: RequestContext, req: dict) -> dict:
        _check_model("CreateAccountAlias", req)
        alias = req["AccountAlias"]
        if not _ALIAS.match(alias):
            raise ServiceError(
                "ValidationError",
                f"1 validation error detected: Value '{alias}' at 'accountAlias' failed to satisfy "
                "constraint: Member must satisfy regular expression pattern: ^[a-z0-9]([a-z0-9]|-(?!-)){1,61}[a-z0-9]$",
                400,
            )
        with self.dir.change():
            for doc in self.dir.db.list_docs("account_alias"):
                if doc.get("alias") == alias and doc.get("account") != ctx.account_id:
                    raise ServiceError(
                        "EntityAlreadyExists", f"The account alias {alias} already exists.", 409
                    )
            self.dir.db.put_doc("account_alias", ctx.account_id, {"alias": alias, "account": ctx.account_id})
        return {}

    def delete_account_alias(self, ctx: RequestContext, req: dict) -> dict:
        _check_model("DeleteAccountAlias", req)
        doc = self.dir.db.get_doc("account_alias", ctx.account_id)
        if doc is None or doc.get("alias") != req["AccountAlias"]:
            raise ServiceError(
                "NoSuchEntity", f"The account alias {req['AccountAlias']} cannot be found.", 404
            )
        with self.dir.change():
            self.dir.db.delete_doc("account_alias", ctx.account_id)
        return {}

    def list_account_aliases(self, ctx: RequestContext, req: dict) -> dict:
        doc = self.dir.db.get_doc("account_alias", ctx.account_id)
        return page([doc["alias"]] if doc else [], req, "AccountAliases")

    def list_instance_profiles(self, ctx: RequestContext, req: dict) -> dict:
        prefix = req.get("PathPrefix") or "/"
        profiles = [
            self._render_profile(d)
            for d in self.dir.listing("instance_profile", ctx.account_id)
            if d["Path"].startswith(prefix)
        ]
        return page(profiles, req, "InstanceProfiles")

    def list_instance_profiles_for_role(self, ctx: RequestContext, req: dict) -> dict:
        role = self._entity("role", ctx, req.get("RoleName"))
        profiles = [
            self._render_profile(d)
            for d in self.dir.listing("instance_profile", ctx.account_id)
            if role["RoleName"].lower() in (r.lower() for r in d["roles"])
        ]
        return page(profiles, req, "InstanceProfiles")

    def add_role_to_instance_profile(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._profile(ctx, req.get("InstanceProfileName"))
        role = self._entity("role", ctx, req.get("RoleName"))
        if len(doc["roles"]) >= MAX_ROLES_PER_PROFILE:
            raise ServiceError(
                "LimitExceeded",
                f"Cannot exceed quota for InstanceSessionsPerInstanceProfile: {MAX_ROLES_PER_PROFILE}",
                409,
            )
        doc["roles"].append(role["RoleName"])
        with self.dir.change():
            self.dir.save("instance_profile", doc)
        return {}

    def remove_role_from_instance_profile(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._profile(ctx, req.get("InstanceProfileName"))
        role = self._entity("role", ctx, req.get("RoleName"))
        kept = [r for r in doc["roles"] if r.lower() != role["RoleName"].lower()]
        if len(kept) == len(doc["roles"]):
            raise ServiceError(
                "NoSuchEntity",
                f"The role with name {role['RoleName']} cannot be found in instance profile "
                f"{doc['InstanceProfileName']}.",
                404,
            )
        doc["roles"] = kept
        with self.dir.change():
            self.dir.save("instance_profile", doc)
        return {}

    def _role_in_profiles(self, account: str, role_name: str) -> bool:
        """Is the role in an instance profile (DeleteRole refuses then, as AWS does)?"""
        return any(
            role_name.lower() in (r.lower() for r in d["roles"])
            for d in self.dir.listing("instance_profile", account)
        )

    # ---- which policies grant access to a service

    def list_policies_granting_service_access(self, ctx: RequestContext, req: dict) -> dict:
        _check_model("ListPoliciesGrantingServiceAccess", req)
        arn = req["Arn"]
        m = _IDENTITY_ARN.match(arn)
        if m is None:
            raise invalid(f"ARN {arn} is not valid.")
        account, kind, _, name = m.groups()
        doc = self.dir.find(kind, account, name) if account == ctx.account_id else None
        if doc is None:
            raise no_such(kind, name)
        # A user's own policies, then its groups' (the policies of a group's users do not count).
        owners = [(kind, doc)]
        if kind == "user":
            owners += [
                ("group", g)
                for g in (self.dir.find("group", account, n) for n in doc.get("groups", []))
                if g is not None
            ]
        out = []
        for namespace in req["ServiceNamespaces"]:
            policies: list[dict] = []
            seen: set[str] = set()
            for owner_kind, owner in owners:
                for policy_name, text in sorted(owner.get("inline", {}).items()):
                    if grants_service(text, namespace):
                        policies.append(
                            {
                                "PolicyName": policy_name,
                                "PolicyType": "INLINE",
                                "EntityType": owner_kind.upper(),
                                "EntityName": owner[_NAME_KEY[owner_kind]],
                            }
                        )
                for policy_arn in owner.get("attached", []):
                    text = self.dir.policy_text(policy_arn)
                    if policy_arn not in seen and text and grants_service(text, namespace):
                        seen.add(policy_arn)
                        policies.append(
                            {
                                "PolicyName": policy_arn.rsplit("/", 1)[-1],
                                "PolicyType": "MANAGED",
                                "PolicyArn": policy_arn,
                            }
                        )
            out.append({"ServiceNamespace": namespace, "Policies": policies})
        return {"PoliciesGrantingServiceAccess": out, "IsTruncated": False}
