"""Customer managed policies and their versions (at most five; one is the default), and the
AWS-managed policies under arn:aws:iam::aws:policy/ (read-only, from strata/auth data)."""

from __future__ import annotations

from strata.auth.directory import AWS_POLICIES, new_id
from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.iam.core import (
    MAX_DOC,
    IAMBase,
    check_document,
    check_name,
    check_path,
    encoded,
    page,
    when,
)
from strata.sim.clock import clock

MAX_VERSIONS = 5


class PolicyOperations(IAMBase):
    def create_policy(self, ctx: RequestContext, req: dict) -> dict:
        name = check_name(req.get("PolicyName"), "PolicyName", 128)
        path = check_path(req.get("Path"))
        text = check_document(req.get("PolicyDocument"), "identity", MAX_DOC["managed"])
        arn = f"arn:aws:iam::{ctx.account_id}:policy{path}{name}"
        if any(
            p["account"] == ctx.account_id and p["PolicyName"].lower() == name.lower()
            for p in self.dir.policies.values()
        ):
            raise ServiceError(
                "EntityAlreadyExists",
                f"A policy called {name} already exists. Duplicate names are not allowed.",
                409,
            )
        now = clock.time()
        doc = {
            "account": ctx.account_id,
            "PolicyName": name,
            "PolicyId": new_id("ANPA"),
            "Arn": arn,
            "Path": path,
            "Description": req.get("Description") or "",
            "default": "v1",
            "next": 2,
            "versions": {"v1": {"doc": text, "created": now}},
            "CreateDate": now,
            "UpdateDate": now,
            "Tags": req.get("Tags") or [],
        }
        with self.dir.change():
            self.dir.save("policy", doc)
        return {"Policy": self._render_policy(doc, ctx.account_id)}

    def get_policy(self, ctx: RequestContext, req: dict) -> dict:
        return {"Policy": self._render_policy(self._policy(ctx, req.get("PolicyArn")), ctx.account_id)}

    def list_policies(self, ctx: RequestContext, req: dict) -> dict:
        scope = req.get("Scope") or "All"
        prefix = req.get("PathPrefix") or "/"
        docs = []
        if scope in ("All", "AWS"):
            docs += sorted(AWS_POLICIES.values(), key=lambda p: p["PolicyName"])
        if scope in ("All", "Local"):
            self.dir.load()
            docs += sorted(
                (p for p in self.dir.policies.values() if p["account"] == ctx.account_id),
                key=lambda p: p["PolicyName"],
            )
        rendered = [self._render_policy(d, ctx.account_id) for d in docs if d["Path"].startswith(prefix)]
        usage = req.get("PolicyUsageFilter")
        if req.get("OnlyAttached"):
            if usage == "PermissionsBoundary":
                rendered = [r for r in rendered if r["PermissionsBoundaryUsageCount"] > 0]
            elif usage == "PermissionsPolicy":
                rendered = [r for r in rendered if r["AttachmentCount"] > 0]
            else:
                rendered = [
                    r for r in rendered if r["AttachmentCount"] + r["PermissionsBoundaryUsageCount"] > 0
                ]
        return page(rendered, req, "Policies")

    def delete_policy(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._own_policy(ctx, req.get("PolicyArn"))
        if self._attachments(doc["Arn"], ctx.account_id):
            raise ServiceError("DeleteConflict", "Cannot delete a policy attached to entities.", 409)
        if len(doc["versions"]) > 1:
            raise ServiceError(
                "DeleteConflict",
                "This policy has more than one version. Before you delete a policy, you must delete the policy's versions. The default version is deleted with the policy.",
                409,
            )
        with self.dir.change():
            self.dir.drop("policy", doc)
        return {}

    def create_policy_version(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._own_policy(ctx, req.get("PolicyArn"))
        text = check_document(req.get("PolicyDocument"), "identity", MAX_DOC["managed"])
        if len(doc["versions"]) >= MAX_VERSIONS:
            raise ServiceError(
                "LimitExceeded",
                f"A managed policy can have up to {MAX_VERSIONS} versions. Before you create a new version, you must delete an existing version.",
                409,
            )
        vid = f"v{doc['next']}"
        doc["next"] += 1
        now = clock.time()
        doc["versions"][vid] = {"doc": text, "created": now}
        if req.get("SetAsDefault"):
            doc["default"] = vid
        doc["UpdateDate"] = now
        with self.dir.change():
            self.dir.save("policy", doc)
        return {"PolicyVersion": self._version(doc, vid, False)}

    def get_policy_version(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._policy(ctx, req.get("PolicyArn"))
        vid = req.get("VersionId")
        if vid not in doc["versions"]:
            raise ServiceError(
                "NoSuchEntity", f"Policy {doc['Arn']} version {vid} does not exist or is not attachable.", 404
            )
        return {"PolicyVersion": self._version(doc, vid, True)}

    def list_policy_versions(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._policy(ctx, req.get("PolicyArn"))
        versions = sorted(doc["versions"], key=lambda v: -int(v[1:]))
        return page([self._version(doc, v, False) for v in versions], req, "Versions")

    def set_default_policy_version(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._own_policy(ctx, req.get("PolicyArn"))
        vid = req.get("VersionId")
        if vid not in doc["versions"]:
            raise ServiceError(
                "NoSuchEntity", f"Policy {doc['Arn']} version {vid} does not exist or is not attachable.", 404
            )
        doc["default"] = vid
        with self.dir.change():
            self.dir.save("policy", doc)
        return {}

    def delete_policy_version(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._own_policy(ctx, req.get("PolicyArn"))
        vid = req.get("VersionId")
        if vid not in doc["versions"]:
            raise ServiceError(
                "NoSuchEntity", f"Policy {doc['Arn']} version {vid} does not exist or is not attachable.", 404
            )
        if vid == doc["default"]:
            raise ServiceError("DeleteConflict", "Cannot delete the default version of a policy.", 409)
        del doc["versions"][vid]
        with self.dir.change():
            self.dir.save("policy", doc)
        return {}

    def list_entities_for_policy(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._policy(ctx, req.get("PolicyArn"))
        wanted = req.get("EntityFilter")
        prefix = req.get("PathPrefix") or "/"
        usage = req.get("PolicyUsageFilter")
        pairs: list[tuple[str, dict]] = []
        if usage != "PermissionsBoundary":
            pairs += self._attachments(doc["Arn"], ctx.account_id)
        if usage != "PermissionsPolicy":
            pairs += [
                (kind, d)
                for kind in ("user", "role")
                for d in self.dir.listing(kind, ctx.account_id)
                if d.get("boundary") == doc["Arn"] and (kind, d) not in pairs
            ]
        out: dict = {"PolicyGroups": [], "PolicyUsers": [], "PolicyRoles": [], "IsTruncated": False}
        for kind, entity in pairs:
            label = kind.capitalize()
            if (wanted and wanted != label) or not entity["Path"].startswith(prefix):
                continue
            out[f"Policy{label}s"].append(
                {f"{label}Name": entity[f"{label}Name"], f"{label}Id": entity[f"{label}Id"]}
            )
        return out

    def _own_policy(self, ctx: RequestContext, arn: object) -> dict:
        doc = self._policy(ctx, arn)
        if doc.get("aws"):
            raise ServiceError("AccessDenied", "Cannot modify an AWS managed policy.", 403)
        return doc

    @staticmethod
    def _version(doc: dict, vid: str, with_document: bool) -> dict:
        v = doc["versions"][vid]
        out = {"VersionId": vid, "IsDefaultVersion": vid == doc["default"], "CreateDate": when(v["created"])}
        if with_document:
            out["Document"] = encoded(v["doc"])
        return out
