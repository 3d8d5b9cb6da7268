"""The caller's S3 permissions for what DynamoDB does in S3 on its behalf: ImportTable reads the
source objects, ExportTableToPointInTime writes the export's files. AWS decides these as requests
of the caller to S3 (s3:ListBucket, s3:GetObject, s3:PutObject), so identity policies, the bucket's
policy and its owner apply; here the same authorizer decides them, with the S3 provider's hooks.
A refusal fails the import or export (FailureCode S3AccessDenied), as a refused S3 call does on AWS.
"""

from __future__ import annotations

from strata.auth.enforce import check_for_caller
from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.base import ServiceRuntime


def authorize_s3(runtime: ServiceRuntime, ctx: RequestContext, operation: str, params: dict) -> None:
    """Raise S3's AccessDenied unless the caller may do the S3 `operation` with these params."""
    principal = ctx.principal
    if principal is None or ctx.http is None:  # an internal caller (no request of a principal)
        return
    try:
        check_for_caller(
            runtime.settings, principal, "s3", operation, params, ctx.http, ctx.region, runtime.peer("s3")
        )
    except ServiceError:
        raise ServiceError("AccessDenied", "Access Denied", 403) from None
