"""VpcSecurityGroupIds of DB instances: validated against EC2's security groups, shown in
Describe, and enforced on the instance's endpoint (strata.services.ec2.security_groups)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from strata.protocol.errors import ServiceError
from strata.services.rds import model as m

if TYPE_CHECKING:
    from strata.services.ec2.security_groups import SecurityGroups
    from strata.services.rds.core import RDSCore


def _groups(core: RDSCore) -> SecurityGroups | None:
    ec2 = core.runtime.peer("ec2")
    return getattr(ec2, "security_groups", None)


def vpc_groups(core: RDSCore, ids: list[str] | None) -> list[str]:
    """The instance's group ids (the region's default group when none are given)."""
    sgs = _groups(core)
    if sgs is None:
        if ids:
            raise m.fault("InvalidParameterValue", "VpcSecurityGroupIds need Strata's EC2 service")
        return []
    try:
        return sgs.check_attachable(core.account, core.region, list(ids or []))
    except ServiceError as e:
        raise m.fault("InvalidParameterValue", e.message) from None


def _key(core: RDSCore, doc: dict) -> str:
    return f"rds:instance:{core.store.engine_key(doc['id'])}"


def guard(core: RDSCore, doc: dict) -> None:
    """Enforce the instance's groups on its endpoint from now on (blocking)."""
    sgs = _groups(core)
    if sgs is not None and doc.get("vpc_groups"):
        sgs.guard(_key(core, doc), core.account, core.region, [("127.0.0.1", doc["port"])], doc["vpc_groups"])


def unguard(core: RDSCore, doc: dict) -> None:
    sgs = _groups(core)
    if sgs is not None:
        sgs.unguard(_key(core, doc))


def rendered(doc: dict) -> list[dict]:
    return [{"VpcSecurityGroupId": g, "Status": "active"} for g in doc.get("vpc_groups") or []]
