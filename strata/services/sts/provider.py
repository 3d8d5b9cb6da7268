"""STS: who is calling. GetCallerIdentity answers from the principal the SigV4 layer verified."""

from __future__ import annotations

from strata.protocol.errors import ServiceError
from strata.services.base import RequestContext, ServiceRuntime
from strata.services.parameters import refusing


@refusing("sts")
class STSProvider:
    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime

    def get_caller_identity(self, ctx: RequestContext, req: dict) -> dict:
        principal = ctx.principal
        if principal is None:
            raise ServiceError("MissingAuthenticationToken", "Request is missing Authentication Token", 403)
        return {"UserId": principal.user_id, "Account": principal.account_id, "Arn": principal.arn}

    def get_access_key_info(self, ctx: RequestContext, req: dict) -> dict:
        # Every key Strata accepts belongs to the one configured account.
        return {"Account": self.runtime.settings.account_id}
