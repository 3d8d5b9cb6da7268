"""Who signed a request: the identity SigV4 (or a presigned POST) verified, handed to providers.

It lives in strata.auth so that authentication and authorization need nothing from the services.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Principal:
    """Who signed the request.

    `kind` is "root" (an account's root key, or the loopback test key), "user" (an IAM user's
    key), "assumed-role" (an STS session; `role_arn` is the role) or "service" (an AWS service
    principal such as fis.amazonaws.com, named by `name`, assuming a role that trusts it).
    `unrestricted` principals (root, the test key) skip identity-policy evaluation: the fast
    path. `session` holds an STS session's facts (expiry, session policies, source) when the key
    is temporary.
    """

    access_key: str
    account_id: str
    arn: str
    user_id: str = ""
    kind: str = "root"
    name: str = ""
    role_arn: str = ""
    unrestricted: bool = True
    session: dict[str, Any] | None = None
    tags: dict[str, str] = field(default_factory=dict)  # aws:PrincipalTag/<key>
    # strata.auth.directory's HeldPolicies for this principal (IAM generation, compiled policy
    # set, decision cache), held here so an authorized request finds it without a lookup.
    policies: Any = field(default=None, compare=False, repr=False)


# The principal of an unsigned S3 request: no account, no identity policies (strata.auth.enforce
# allows it only what a resource policy grants everyone).
ANONYMOUS = Principal(access_key="", account_id="", arn="anonymous", kind="anonymous", unrestricted=False)
