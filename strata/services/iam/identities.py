"""IAM users, groups and roles: create/get/list/update/delete, group membership, tags, inline
policies, managed-policy attachments and permissions boundaries (one implementation per verb,
parameterised by the kind of identity)."""

from __future__ import annotations

from typing import Any

from strata.auth.directory import new_group_doc, new_id, new_user_doc
from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.iam.core import (
    MAX_DOC,
    IAMBase,
    check_document,
    check_name,
    check_path,
    encoded,
    exists,
    page,
    validation,
    when,
)
from strata.sim.clock import clock

_KINDS = {"User": "user", "Group": "group", "Role": "role"}
SERVICE_ROLE_PATH = "/aws-service-role/"  # service-linked roles live under it
SERVICE_POLICY_PREFIX = f"arn:aws:iam::aws:policy{SERVICE_ROLE_PATH}"  # and their policies


def new_role_doc(account: str, name: str, path: str, trust: str, description: str) -> dict:
    """A role record with no policies (CreateRole and CreateServiceLinkedRole fill in the rest)."""
    return {
        "account": account,
        "RoleName": name,
        "RoleId": new_id("AROA"),
        "Path": path,
        "Arn": f"arn:aws:iam::{account}:role{path}{name}",
        "CreateDate": clock.time(),
        "trust": trust,
        "inline": {},
        "attached": [],
        "boundary": None,
        "MaxSessionDuration": 3600,
        "Description": description,
        "Tags": [],
    }


MAX_INLINE_NAME = 128


def _modifiable(role: dict) -> dict:
    """The role, unless it is a service-linked role (only its service may change it)."""
    if role["Path"].startswith(SERVICE_ROLE_PATH):
        raise ServiceError(
            "UnmodifiableEntity",
            f"Cannot perform the operation on the protected role '{role['RoleName']}' - "
            "this role is only modifiable by AWS",
            400,
        )
    return role


class IdentityOperations(IAMBase):
    # ---- users

    def create_user(self, ctx: RequestContext, req: dict) -> dict:
        name = check_name(req.get("UserName"), "UserName")
        path = check_path(req.get("Path"))
        if self.dir.find("user", ctx.account_id, name) is not None:
            raise exists("user", name)
        doc = new_user_doc(ctx.account_id, name, path, clock.time())
        if req.get("PermissionsBoundary"):
            doc["boundary"] = self._policy(ctx, req["PermissionsBoundary"])["Arn"]
        doc["Tags"] = req.get("Tags") or []
        with self.dir.change():
            self.dir.save("user", doc)
        return {"User": self._render_user(doc, True)}

    def get_user(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._user(ctx, req)
        if not doc:  # the account root asking about itself
            p = ctx.principal
            assert p is not None
            return {
                "User": {
                    "Path": "/",
                    "UserName": "",
                    "UserId": p.account_id,
                    "Arn": p.arn,
                    "CreateDate": when(0),
                }
            }
        return {"User": self._render_user(doc, True)}

    def list_users(self, ctx: RequestContext, req: dict) -> dict:
        prefix = req.get("PathPrefix") or "/"
        users = [
            self._render_user(d)
            for d in self.dir.listing("user", ctx.account_id)
            if d["Path"].startswith(prefix)
        ]
        return page(users, req, "Users")

    def update_user(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._user(ctx, req)
        new_name = req.get("NewUserName")
        with self.dir.change():
            if new_name and new_name != doc["UserName"]:
                check_name(new_name, "NewUserName")
                if self.dir.find("user", ctx.account_id, new_name) is not None:
                    raise exists("user", new_name)
                self.dir.drop("user", doc)
                for key in [
                    k
                    for k in self.dir.keys.values()
                    if k["account"] == ctx.account_id and k["user"] == doc["UserName"]
                ]:
                    key["user"] = new_name
                    self.dir.save("key", key)
                doc["UserName"] = new_name
            if req.get("NewPath"):
                doc["Path"] = check_path(req["NewPath"])
            doc["Arn"] = f"arn:aws:iam::{ctx.account_id}:user{doc['Path']}{doc['UserName']}"
            self.dir.save("user", doc)
        return {}

    def delete_user(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._entity("user", ctx, req.get("UserName"))
        keys = [
            k
            for k in self.dir.keys.values()
            if k["account"] == ctx.account_id and k["user"] == doc["UserName"]
        ]
        if keys:
            raise _conflict("must delete access keys first")
        if doc["inline"]:
            raise _conflict("must delete policies first")
        if doc["attached"]:
            raise _conflict("must detach all policies first")
        if doc["groups"]:
            raise _conflict("must remove user from all groups first")
        with self.dir.change():
            self.dir.drop("user", doc)
        return {}

    # ---- groups

    def create_group(self, ctx: RequestContext, req: dict) -> dict:
        name = check_name(req.get("GroupName"), "GroupName", 128)
        if self.dir.find("group", ctx.account_id, name) is not None:
            raise exists("group", name)
        doc = new_group_doc(ctx.account_id, name, check_path(req.get("Path")), clock.time())
        with self.dir.change():
            self.dir.save("group", doc)
        return {"Group": self._render_group(doc)}

    def get_group(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._entity("group", ctx, req.get("GroupName"))
        members = [
            self._render_user(u)
            for u in self.dir.listing("user", ctx.account_id)
            if doc["GroupName"] in u.get("groups", [])
        ]
        out = page(members, req, "Users")
        out["Group"] = self._render_group(doc)
        return out

    def list_groups(self, ctx: RequestContext, req: dict) -> dict:
        prefix = req.get("PathPrefix") or "/"
        groups = [
            self._render_group(d)
            for d in self.dir.listing("group", ctx.account_id)
            if d["Path"].startswith(prefix)
        ]
        return page(groups, req, "Groups")

    def delete_group(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._entity("group", ctx, req.get("GroupName"))
        if any(doc["GroupName"] in u.get("groups", []) for u in self.dir.listing("user", ctx.account_id)):
            raise ServiceError(
                "DeleteConflict", "Cannot delete entity, must remove users from group first.", 409
            )
        if doc["inline"]:
            raise _conflict("must delete policies first")
        if doc["attached"]:
            raise _conflict("must detach all policies first")
        with self.dir.change():
            self.dir.drop("group", doc)
        return {}

    def add_user_to_group(self, ctx: RequestContext, req: dict) -> dict:
        group = self._entity("group", ctx, req.get("GroupName"))
        user = self._entity("user", ctx, req.get("UserName"))
        if group["GroupName"] not in user["groups"]:
            user["groups"].append(group["GroupName"])
            with self.dir.change():
                self.dir.save("user", user)
        return {}

    def remove_user_from_group(self, ctx: RequestContext, req: dict) -> dict:
        group = self._entity("group", ctx, req.get("GroupName"))
        user = self._entity("user", ctx, req.get("UserName"))
        if group["GroupName"] not in user["groups"]:
            raise ServiceError(
                "NoSuchEntity", f"User {user['UserName']} is not in group {group['GroupName']}.", 404
            )
        user["groups"].remove(group["GroupName"])
        with self.dir.change():
            self.dir.save("user", user)
        return {}

    def list_groups_for_user(self, ctx: RequestContext, req: dict) -> dict:
        user = self._entity("user", ctx, req.get("UserName"))
        groups = [
            self._render_group(g)
            for g in self.dir.listing("group", ctx.account_id)
            if g["GroupName"] in user["groups"]
        ]
        return page(groups, req, "Groups")

    # ---- roles

    def create_role(self, ctx: RequestContext, req: dict) -> dict:
        name = check_name(req.get("RoleName"), "RoleName")
        path = check_path(req.get("Path"))
        trust = check_document(req.get("AssumeRolePolicyDocument"), "trust", 2048)
        if self.dir.find("role", ctx.account_id, name) is not None:
            raise exists("role", name)
        doc = new_role_doc(ctx.account_id, name, path, trust, req.get("Description") or "")
        doc["MaxSessionDuration"] = _max_session(req.get("MaxSessionDuration"))
        if req.get("PermissionsBoundary"):
            doc["boundary"] = self._policy(ctx, req["PermissionsBoundary"])["Arn"]
        doc["Tags"] = req.get("Tags") or []
        with self.dir.change():
            self.dir.save("role", doc)
        return {"Role": self._render_role(doc)}

    def get_role(self, ctx: RequestContext, req: dict) -> dict:
        return {"Role": self._render_role(self._entity("role", ctx, req.get("RoleName")))}

    def list_roles(self, ctx: RequestContext, req: dict) -> dict:
        prefix = req.get("PathPrefix") or "/"
        roles = [
            self._render_role(d, False)
            for d in self.dir.listing("role", ctx.account_id)
            if d["Path"].startswith(prefix)
        ]
        return page(roles, req, "Roles")

    def update_role(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._entity("role", ctx, req.get("RoleName"))
        if req.get("MaxSessionDuration") is not None:
            doc["MaxSessionDuration"] = _max_session(req["MaxSessionDuration"])
        if req.get("Description") is not None:
            doc["Description"] = req["Description"]
        with self.dir.change():
            self.dir.save("role", doc)
        return {}

    def update_role_description(self, ctx: RequestContext, req: dict) -> dict:
        doc = _modifiable(self._entity("role", ctx, req.get("RoleName")))
        doc["Description"] = req.get("Description") or ""
        with self.dir.change():
            self.dir.save("role", doc)
        return {"Role": self._render_role(doc, True)}

    def update_assume_role_policy(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._entity("role", ctx, req.get("RoleName"))
        doc["trust"] = check_document(req.get("PolicyDocument"), "trust", 2048)
        with self.dir.change():
            self.dir.save("role", doc)
        return {}

    def delete_role(self, ctx: RequestContext, req: dict) -> dict:
        doc = _modifiable(self._entity("role", ctx, req.get("RoleName")))
        if doc["inline"]:
            raise _conflict("must delete policies first")
        if doc["attached"]:
            raise _conflict("must detach all policies first")
        if self._role_in_profiles(ctx.account_id, doc["RoleName"]):  # type: ignore[attr-defined]
            raise _conflict("must remove roles from instance profile first")
        with self.dir.change():
            self.dir.drop("role", doc)
        return {}

    # ---- tags (users and roles)

    def tag_user(self, ctx: RequestContext, req: dict) -> dict:
        return self._tag("user", ctx, req)

    def untag_user(self, ctx: RequestContext, req: dict) -> dict:
        return self._untag("user", ctx, req)

    def list_user_tags(self, ctx: RequestContext, req: dict) -> dict:
        return page(self._entity("user", ctx, req.get("UserName")).get("Tags", []), req, "Tags")

    def tag_role(self, ctx: RequestContext, req: dict) -> dict:
        return self._tag("role", ctx, req)

    def untag_role(self, ctx: RequestContext, req: dict) -> dict:
        return self._untag("role", ctx, req)

    def list_role_tags(self, ctx: RequestContext, req: dict) -> dict:
        return page(self._entity("role", ctx, req.get("RoleName")).get("Tags", []), req, "Tags")

    def _tag(self, kind: str, ctx: RequestContext, req: dict) -> dict:
        doc = self._entity(kind, ctx, req.get(f"{kind.capitalize()}Name"))
        tags = {t["Key"]: t["Value"] for t in doc.get("Tags", [])}
        tags.update({t["Key"]: t.get("Value", "") for t in req.get("Tags") or []})
        if len(tags) > 50:
            raise ServiceError("LimitExceeded", "Cannot exceed quota for TagsPerEntity: 50", 409)
        doc["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
        with self.dir.change():
            self.dir.save(kind, doc)
        return {}

    def _untag(self, kind: str, ctx: RequestContext, req: dict) -> dict:
        doc = self._entity(kind, ctx, req.get(f"{kind.capitalize()}Name"))
        drop = set(req.get("TagKeys") or [])
        doc["Tags"] = [t for t in doc.get("Tags", []) if t["Key"] not in drop]
        with self.dir.change():
            self.dir.save(kind, doc)
        return {}

    # ---- inline policies

    def put_user_policy(self, ctx: RequestContext, req: dict) -> dict:
        return self._put_inline("User", ctx, req)

    def put_group_policy(self, ctx: RequestContext, req: dict) -> dict:
        return self._put_inline("Group", ctx, req)

    def put_role_policy(self, ctx: RequestContext, req: dict) -> dict:
        return self._put_inline("Role", ctx, req)

    def get_user_policy(self, ctx: RequestContext, req: dict) -> dict:
        return self._get_inline("User", ctx, req)

    def get_group_policy(self, ctx: RequestContext, req: dict) -> dict:
        return self._get_inline("Group", ctx, req)

    def get_role_policy(self, ctx: RequestContext, req: dict) -> dict:
        return self._get_inline("Role", ctx, req)

    def delete_user_policy(self, ctx: RequestContext, req: dict) -> dict:
        return self._delete_inline("User", ctx, req)

    def delete_group_policy(self, ctx: RequestContext, req: dict) -> dict:
        return self._delete_inline("Group", ctx, req)

    def delete_role_policy(self, ctx: RequestContext, req: dict) -> dict:
        return self._delete_inline("Role", ctx, req)

    def list_user_policies(self, ctx: RequestContext, req: dict) -> dict:
        return page(sorted(self._entity("user", ctx, req.get("UserName"))["inline"]), req, "PolicyNames")

    def list_group_policies(self, ctx: RequestContext, req: dict) -> dict:
        return page(sorted(self._entity("group", ctx, req.get("GroupName"))["inline"]), req, "PolicyNames")

    def list_role_policies(self, ctx: RequestContext, req: dict) -> dict:
        return page(sorted(self._entity("role", ctx, req.get("RoleName"))["inline"]), req, "PolicyNames")

    def _put_inline(self, kind: str, ctx: RequestContext, req: dict) -> dict:
        doc = self._entity(_KINDS[kind], ctx, req.get(f"{kind}Name"))
        name = check_name(req.get("PolicyName"), "PolicyName", MAX_INLINE_NAME)
        text = check_document(req.get("PolicyDocument"), "identity", MAX_DOC[_KINDS[kind]])
        doc["inline"][name] = text
        with self.dir.change():
            self.dir.save(_KINDS[kind], doc)
        return {}

    def _get_inline(self, kind: str, ctx: RequestContext, req: dict) -> dict:
        doc = self._entity(_KINDS[kind], ctx, req.get(f"{kind}Name"))
        name = req.get("PolicyName")
        if name not in doc["inline"]:
            raise ServiceError(
                "NoSuchEntity", f"The {_KINDS[kind]} policy with name {name} cannot be found.", 404
            )
        return {
            f"{kind}Name": doc[f"{kind}Name"],
            "PolicyName": name,
            "PolicyDocument": encoded(doc["inline"][name]),
        }

    def _delete_inline(self, kind: str, ctx: RequestContext, req: dict) -> dict:
        doc = self._entity(_KINDS[kind], ctx, req.get(f"{kind}Name"))
        name = req.get("PolicyName")
        if name not in doc["inline"]:
            raise ServiceError(
                "NoSuchEntity", f"The {_KINDS[kind]} policy with name {name} cannot be found.", 404
            )
        del doc["inline"][name]
        with self.dir.change():
            self.dir.save(_KINDS[kind], doc)
        return {}

    # ---- managed policy attachments

    def attach_user_policy(self, ctx: RequestContext, req: dict) -> dict:
        return self._attach("User", ctx, req)

    def attach_group_policy(self, ctx: RequestContext, req: dict) -> dict:
        return self._attach("Group", ctx, req)

    def attach_role_policy(self, ctx: RequestContext, req: dict) -> dict:
        return self._attach("Role", ctx, req)

    def detach_user_policy(self, ctx: RequestContext, req: dict) -> dict:
        return self._detach("User", ctx, req)

    def detach_group_policy(self, ctx: RequestContext, req: dict) -> dict:
        return self._detach("Group", ctx, req)

    def detach_role_policy(self, ctx: RequestContext, req: dict) -> dict:
        return self._detach("Role", ctx, req)

    def list_attached_user_policies(self, ctx: RequestContext, req: dict) -> dict:
        return self._attached("User", ctx, req)

    def list_attached_group_policies(self, ctx: RequestContext, req: dict) -> dict:
        return self._attached("Group", ctx, req)

    def list_attached_role_policies(self, ctx: RequestContext, req: dict) -> dict:
        return self._attached("Role", ctx, req)

    def _attach(self, kind: str, ctx: RequestContext, req: dict) -> dict:
        doc = self._entity(_KINDS[kind], ctx, req.get(f"{kind}Name"))
        if kind == "Role":
            _modifiable(doc)
        arn = self._policy(ctx, req.get("PolicyArn"))["Arn"]
        if arn.startswith(SERVICE_POLICY_PREFIX):
            # A service-linked role's policy is AWS's to attach, to that role only.
            raise ServiceError(
                "PolicyNotAttachable", f"Cannot attach a Service Role Policy to a Customer {kind}.", 400
            )
        if arn not in doc["attached"]:
            if len(doc["attached"]) >= 10:
                raise ServiceError("LimitExceeded", f"Cannot exceed quota for PoliciesPer{kind}: 10", 409)
            doc["attached"].append(arn)
            with self.dir.change():
                self.dir.save(_KINDS[kind], doc)
        return {}

    def _detach(self, kind: str, ctx: RequestContext, req: dict) -> dict:
        doc = self._entity(_KINDS[kind], ctx, req.get(f"{kind}Name"))
        if kind == "Role":
            _modifiable(doc)
        arn = req.get("PolicyArn")
        if arn not in doc["attached"]:
            raise ServiceError("NoSuchEntity", f"Policy {arn} was not found.", 404)
        doc["attached"].remove(arn)
        with self.dir.change():
            self.dir.save(_KINDS[kind], doc)
        return {}

    def _attached(self, kind: str, ctx: RequestContext, req: dict) -> dict:
        doc = self._entity(_KINDS[kind], ctx, req.get(f"{kind}Name"))
        prefix = req.get("PathPrefix") or "/"
        items = []
        for arn in doc["attached"]:
            p = self.dir.managed_policy(arn)
            if p is not None and p["Path"].startswith(prefix):
                items.append({"PolicyName": p["PolicyName"], "PolicyArn": arn})
        return page(items, req, "AttachedPolicies")

    # ---- permissions boundaries

    def put_user_permissions_boundary(self, ctx: RequestContext, req: dict) -> dict:
        return self._set_boundary("user", ctx, req.get("UserName"), req.get("PermissionsBoundary"))

    def put_role_permissions_boundary(self, ctx: RequestContext, req: dict) -> dict:
        return self._set_boundary("role", ctx, req.get("RoleName"), req.get("PermissionsBoundary"))

    def delete_user_permissions_boundary(self, ctx: RequestContext, req: dict) -> dict:
        return self._set_boundary("user", ctx, req.get("UserName"), None)

    def delete_role_permissions_boundary(self, ctx: RequestContext, req: dict) -> dict:
        return self._set_boundary("role", ctx, req.get("RoleName"), None)

    def _set_boundary(self, kind: str, ctx: RequestContext, name: Any, arn: Any) -> dict:
        doc = self._entity(kind, ctx, name)
        if arn is not None:
            arn = self._policy(ctx, arn)["Arn"]
        elif not doc.get("boundary"):
            raise ServiceError(
                "NoSuchEntity",
                f"The {kind} {doc[kind.capitalize() + 'Name']} has no permissions boundary.",
                404,
            )
        doc["boundary"] = arn
        with self.dir.change():
            self.dir.save(kind, doc)
        return {}


def _conflict(what: str) -> ServiceError:
    return ServiceError("DeleteConflict", f"Cannot delete entity, {what}.", 409)


def _max_session(value: Any) -> int:
    if value is None:
        return 3600
    if not isinstance(value, int) or not 3600 <= value <= 43200:
        raise validation(
            f"1 validation error detected: Value '{value}' at 'maxSessionDuration' failed to satisfy constraint: "
            "Member must have value greater than or equal to 3600 and less than or equal to 43200"
        )
    return value


def inline_list(doc: dict) -> list[dict]:
    return [{"PolicyName": n, "PolicyDocument": encoded(t)} for n, t in sorted(doc.get("inline", {}).items())]
