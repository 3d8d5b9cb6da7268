"""What a provider knows about one request: who sent it, to which service, region and account.

The gateway builds a RequestContext for every request after authentication and passes it to the
provider method with the parsed request dict.
"""

from __future__ import annotations

from dataclasses import dataclass

from strata.auth.principal import Principal
from strata.protocol.http import HttpRequest


@dataclass(slots=True)  # built for every request: slots make that (and each attribute read) cheaper
class RequestContext:
    request_id: str
    service: str
    operation: str
    region: str
    account_id: str
    principal: Principal | None
    # Raw HTTP, for the few operations whose semantics live outside the model (S3 browser POST
    # uploads, virtual-host bucket names). Prefer the parsed request dict.
    http: HttpRequest
