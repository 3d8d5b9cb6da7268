"""Authorization of S3 requests that come through an access point, and the provider's one
`further_resources` hook (strata.auth.enforce) that also carries Object Lock's bypass permission.

A request through an access point (the gateway adds `_DataAccessPoint`, strata.gateway.access_points)
is decided twice by the one policy engine: as usual against the bucket (its policy and the
caller's identity policies, the bucket policy seeing `s3:DataAccessPointArn`/`Account`), and
against the access point: the same action on `<access point ARN>/object/<key>` (or the access
point ARN for a listing) under the access point's policy and owner. Only object operations and
listings go through access points, as on AWS.
"""

from __future__ import annotations

from typing import Any

from strata.auth.actions import plan
from strata.auth.enforce import CALLER, CALLER_OPERATION
from strata.auth.policy import Policy
from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.s3.core import S3Core

MEMBER = "_DataAccessPoint"
# Bucket-level operations an access point serves; any operation on an object key does too.
_BUCKET_OPERATIONS = frozenset(
    [
        "ListObjects",
        "ListObjectsV2",
        "ListObjectVersions",
        "ListMultipartUploads",
        "HeadBucket",
        "GetBucketLocation",
        "DeleteObjects",
    ]
)


def check_access_point_operation(ctx: RequestContext, req: dict) -> None:
    """InvalidRequest for a bucket configuration operation sent through an access point."""
    if MEMBER in req and "Key" not in req and ctx.operation not in _BUCKET_OPERATIONS:
        raise ServiceError(
            "InvalidRequest", "The specified operation is not supported through access points", 400
        )


class AccessPointAuthz(S3Core):
    def _source_bucket(self, name: str) -> tuple[str, dict[str, str] | None]:
        """The bucket a copy source names, and the access point it goes through when it names one
        by ARN (`<access point ARN>/object/<key>`); NoSuchAccessPoint for one that does not exist."""
        if not name.startswith("arn:"):
            return name, None
        parts = name.split(":", 5)  # arn:aws:s3:<region>:<account>:accesspoint/<name>
        account, ap_name = parts[4], parts[5].partition("/")[2]
        control = self.runtime.peer("s3control")
        doc = control._access_point(account, ap_name) if control is not None else None
        if doc is None:
            raise ServiceError("NoSuchAccessPoint", "The specified accesspoint does not exist", 404)
        return doc["bucket"], {
            "Arn": doc["arn"],
            "Account": account,
            "Name": ap_name,
            "NetworkOrigin": "Internet",
        }

    def further_resources_members(self, operation: str) -> tuple[str, ...]:
        """The members without which `further_resources` names nothing for this operation (asked
        once per operation by strata.auth.enforce): the access point a request came through (set
        by the gateway), and the governance bypass header where it is honoured."""
        return (MEMBER, *self._bypass_members(operation))  # type: ignore[attr-defined]

    def further_resources(self, req: dict) -> list[tuple[str, str, str | None, Policy | None]]:
        """Each (action, resource, owner, policy) a request needs beyond its bucket's: the access
        point it came through, and s3:BypassGovernanceRetention (object_lock.py)."""
        out = self._bypass_resources(req)  # type: ignore[attr-defined]
        via = req.get(MEMBER)
        if via:
            out += self._access_point_resources(req, via)
        return out

    def _access_point_resources(
        self, req: dict, via: dict[str, str]
    ) -> list[tuple[str, str, str | None, Policy | None]]:
        control = self.runtime.peer("s3control")
        doc = control._access_point(via["Account"], via["Name"]) if control is not None else None
        if doc is None:  # deleted meanwhile: nothing allows a request through it
            raise ServiceError("NoSuchAccessPoint", "The specified accesspoint does not exist", 404)
        operation = CALLER_OPERATION.get()
        p = plan("s3", operation)
        action = p.versioned_action if req.get("VersionId") else p.action
        caller = CALLER.get()[0]
        same = caller is not None and caller.account_id == via["Account"]
        policy = control._access_point_policy(doc, same)
        if isinstance(req.get("Key"), str):
            keys: list[Any] = [req["Key"]]
        elif operation == "DeleteObjects":
            objects = (req.get("Delete") or {}).get("Objects") or []
            keys = [o["Key"] for o in objects if isinstance(o, dict) and isinstance(o.get("Key"), str)]
        else:
            return [(action, via["Arn"], via["Account"], policy)]
        return [(action, f"{via['Arn']}/object/{k}", via["Account"], policy) for k in keys]
