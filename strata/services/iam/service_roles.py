"""Service-linked roles: the roles AWS services create in an account to act on its behalf.

CreateServiceLinkedRole makes the service's role under /aws-service-role/<service>/ with a trust
policy for the service principal, named as AWS names it (`service_linked_roles.json`), with the
service's AWS-managed policy (arn:aws:iam::aws:policy/aws-service-role/...) attached as AWS attaches
it; only AWS may change it afterwards (DeleteRole, AttachRolePolicy, DetachRolePolicy refuse it:
identities.py). DeleteServiceLinkedRole starts a
deletion task, which Strata completes at once (no service holds resources in the role);
GetServiceLinkedRoleDeletionStatus reports it.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from strata.auth.directory import AWS_POLICIES, AWS_POLICY_PREFIX, Directory, directory_for
from strata.config import Settings
from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.iam.core import IAMBase, check_name, invalid, validation
from strata.services.iam.identities import SERVICE_ROLE_PATH, new_role_doc

SERVICES: dict[str, dict[str, Any]] = {
    k: v
    for k, v in json.loads(Path(__file__).with_name("service_linked_roles.json").read_text()).items()
    if not k.startswith("_")
}


def service_policy_arn(service: str) -> str | None:
    """The AWS-managed policy AWS attaches to `service`'s service-linked role, when Strata has it."""
    name = SERVICES.get(service, {}).get("policy")
    arn = f"{AWS_POLICY_PREFIX}{SERVICE_ROLE_PATH[1:]}{name}" if name else None
    return arn if arn in AWS_POLICIES else None


def _new_service_role(d: Directory, account: str, service: str, name: str, description: str) -> dict:
    """Record `service`'s service-linked role `name` in `account`, its policy attached (inside
    `d.change()`)."""
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": [service]}, "Action": ["sts:AssumeRole"]}
            ],
        }
    )
    doc = new_role_doc(account, name, f"{SERVICE_ROLE_PATH}{service}/", trust, description)
    policy = service_policy_arn(service)
    if policy:
        doc["attached"].append(policy)
    d.save("role", doc)
    return doc


def ensure_service_linked_role(settings: Settings, account: str, service: str) -> None:
    """Create `service`'s service-linked role in `account` unless it is there: what AWS does on a
    service's first use (the first CreateDBInstance creates AWSServiceRoleForRDS)."""
    if not account or service not in SERVICES:
        return
    d = directory_for(settings)
    name = SERVICES[service]["name"]
    if d.find("role", account, name) is not None:
        return
    with d.change():
        if d.find("role", account, name) is None:  # a concurrent first use made it meanwhile
            _new_service_role(d, account, service, name, "")


class ServiceRoleOperations(IAMBase):
    def create_service_linked_role(self, ctx: RequestContext, req: dict) -> dict:
        service = req.get("AWSServiceName")
        if not isinstance(service, str) or not service:
            raise validation(
                "1 validation error detected: Value at 'aWSServiceName' failed to satisfy constraint: "
                "Member must not be null"
            )
        known = SERVICES.get(service)
        if known is None:
            raise invalid(f"Service name {service} is not a service Strata has a service-linked role for.")
        name = known["name"]
        suffix = req.get("CustomSuffix")
        if suffix:
            if not known["suffix"]:
                raise invalid(f"Custom suffix is not allowed for {service}")
            name = check_name(f"{name}_{suffix}", "CustomSuffix")
        if self.dir.find("role", ctx.account_id, name) is not None:
            raise invalid(
                f"Service role name {name} has been taken in this account, please try a different suffix."
            )
        with self.dir.change():
            doc = _new_service_role(self.dir, ctx.account_id, service, name, req.get("Description") or "")
        return {"Role": self._render_role(doc)}

    def delete_service_linked_role(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._entity("role", ctx, req.get("RoleName"))
        if not doc["Path"].startswith(SERVICE_ROLE_PATH):
            raise invalid(f"Role {doc['RoleName']} is not a service-linked role.")
        service = doc["Path"][len(SERVICE_ROLE_PATH) :].strip("/")
        task = f"task{SERVICE_ROLE_PATH}{service}/{doc['RoleName']}/{uuid.uuid4()}"
        with self.dir.change():
            self.dir.drop("role", doc)
            self.dir.db.put_doc("slr_deletion", task, {"account": ctx.account_id, "Status": "SUCCEEDED"})
        return {"DeletionTaskId": task}

    def get_service_linked_role_deletion_status(self, ctx: RequestContext, req: dict) -> dict:
        task = req.get("DeletionTaskId")
        self.dir.load()
        record = self.dir.db.get_doc("slr_deletion", task) if isinstance(task, str) else None
        if record is None or record["account"] != ctx.account_id:
            raise ServiceError("NoSuchEntity", f"Deletion task {task} cannot be found.", 404)
        return {"Status": record["Status"]}
