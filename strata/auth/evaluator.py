"""AWS's policy evaluation logic: one function for every request, simulation and AssumeRole.

    1. an explicit Deny in any applicable policy (identity, permissions boundary, session,
       resource) denies;
    2. within one account, an Allow from the identity policies — or from a resource policy that
       names the caller itself (not just its account) — is needed;
       across accounts, both the caller's identity policies and the resource's policy must allow;
    3. a permissions boundary, when set, must also allow; so must the session policies of an STS
       session, when it was given any.

The first failing step names the reason, which becomes the end of AWS's AccessDenied message
("... because no identity-based policy allows the s3:PutObject action").

`Facts` answers condition keys for one request lazily: most requests are decided without
reading any.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from strata.auth.policy import Policy, PrincipalSpec, Statement
from strata.auth.principal import Principal

_PRINCIPAL_TYPES = {
    "root": "Account",
    "user": "User",
    "assumed-role": "AssumedRole",
    "federated": "FederatedUser",
    "anonymous": "Anonymous",
}


@dataclass(frozen=True)
class PolicySet:
    """The identity side of one principal, compiled: what its policies, boundary and session say.

    `session` is None when the principal is not a session or its session was given no policies.
    `unrestricted` (an account root) allows everything on the identity side."""

    identity: tuple[Policy, ...] = ()
    boundary: Policy | None = None
    session: tuple[Policy, ...] | None = None
    unrestricted: bool = False


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""  # e.g. "because no identity-based policy allows the s3:GetObject action"
    matched: tuple[str, ...] = ()  # "<policy label>/<sid>" of deciding statements (simulation)

    def message(self, principal_arn: str, action: str, resource: str) -> str:
        """AWS's AccessDenied text."""
        on = f" on resource: {resource}" if resource and resource != "*" else ""
        return f"User: {principal_arn} is not authorized to perform: {action}{on} {self.reason}"


ALLOWED = Decision(True)


class Facts:
    """The request context: global condition keys, computed on first use, plus service keys
    (`extra`: anything with a `get(lowercase key)`, e.g. a dict or `actions.ParamKeys`)."""

    __slots__ = ("principal", "region", "source_ip", "secure", "now", "extra", "_cache")

    def __init__(
        self,
        principal: Principal,
        region: str,
        source_ip: str,
        secure: bool,
        now: Callable[[], float],
        extra: Any = None,
    ) -> None:
        self.principal = principal
        self.region = region
        self.source_ip = source_ip
        self.secure = secure
        self.now = now
        self.extra = extra or {}
        self._cache: dict[str, Any] = {}

    def __call__(self, key: str) -> Any:
        key = key.lower()
        try:
            return self._cache[key]
        except KeyError:
            pass
        value = self._compute(key)
        self._cache[key] = value
        return value

    def _compute(self, key: str) -> Any:
        p = self.principal
        value = self.extra.get(key)
        if value is not None:
            return value
        if key == "aws:currenttime":
            return datetime.fromtimestamp(self.now(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if key == "aws:epochtime":
            return int(self.now())
        if key == "aws:securetransport":
            return self.secure
        if key == "aws:sourceip":
            return self.source_ip or None
        if key == "aws:requestedregion":
            return self.region
        if key == "aws:principalaccount":
            return p.account_id
        if key == "aws:principalarn":
            return p.role_arn or p.arn
        if key == "aws:principaltype":
            return _PRINCIPAL_TYPES.get(p.kind, "User")
        if key == "aws:userid":
            return p.user_id
        if key == "aws:username":
            return p.name if p.kind == "user" else None
        if key == "aws:viaawsservice":
            return False
        if p.session is not None:
            if key == "aws:tokenissuetime":
                issued = p.session.get("issued")
                return datetime.fromtimestamp(issued, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if issued else None
            if key == "aws:multifactorauthpresent":
                return False
            if key == "sts:sourceidentity" or key == "aws:sourceidentity":
                return p.session.get("source_identity")
        if key.startswith("aws:principaltag/"):
            want = key.split("/", 1)[1]
            for k, v in p.tags.items():
                if k.lower() == want:
                    return v
        return None


def principal_match(spec: PrincipalSpec, caller: Principal) -> str | None:
    """How a Principal element names the caller: "direct" (its own ARN, a service principal it
    lists, or anyone), "role" (the role of a role session), "account" (its account, which
    delegates to the account's own policies), or None."""
    if spec.any:
        return "direct"
    if caller.kind == "service":  # an AWS service acting for the account (e.g. FIS assuming a role)
        return "direct" if caller.name in spec.services else None
    aws = spec.aws
    if not aws:
        return None
    if caller.arn in aws:
        return "direct"
    if caller.role_arn and caller.role_arn in aws:
        return "role"
    account = caller.account_id
    if account in aws or f"arn:aws:iam::{account}:root" in aws:
        return "direct" if caller.kind == "root" else "account"
    return None


def statement_applies(
    s: Statement, action_lower: str, resource: str, facts: Facts, caller: Principal | None
) -> str | None:
    """None if the statement does not apply; else "direct"/"account" (resource policies) or "id"."""
    if not s.matches_action(action_lower):
        return None
    if not s.matches_resource(resource, facts):
        return None
    return _principal_and_conditions(s, facts, caller)


def _principal_and_conditions(s: Statement, facts: Facts, caller: Principal | None) -> str | None:
    """statement_applies once Action and Resource are known to match."""
    how = "id"
    if s.principal is not None:
        if caller is None:
            return None
        how_named = principal_match(s.principal, caller)
        if s.not_principal:
            if how_named is not None:
                return None
            how = "direct"
        elif how_named is None:
            return None
        else:
            how = how_named
    for c in s.conditions:
        if not c.holds(facts):
            return None
    return how


def _scan(
    policies: tuple[Policy, ...],
    action_lower: str,
    resource: str,
    facts: Facts,
    caller: Principal | None = None,
) -> tuple[bool, str | None]:
    """(explicitly denied, strongest allow: "direct" > "role" > "account"/"id" > None)."""
    allow: str | None = None
    for policy in policies:
        for s, check_resource in policy.candidates(action_lower, resource):
            if check_resource and not s.matches_resource(resource, facts):
                continue
            how = _principal_and_conditions(s, facts, caller)
            if how is None:
                continue
            if not s.allow:
                return True, None
            if allow != "direct" and (allow != "role" or how == "direct"):
                allow = how
    return False, allow


def evaluate(
    caller: Principal,
    action: str,
    resource: str,
    facts: Facts,
    policies: PolicySet,
    resource_policy: Policy | None = None,
    resource_account: str | None = None,
    resource_required: bool = False,
) -> Decision:
    """Is `caller` allowed `action` on `resource`? AWS's logic, see the module docstring.

    `resource_account` is the account owning the resource (None: the caller's own).
    `resource_required`: the resource policy must allow even within the account, whoever the
    caller (KMS key policies: an identity policy counts only where the key policy names the
    account)."""
    a = action.lower()
    denied, id_allow = (
        (False, "id") if policies.unrestricted else _scan(policies.identity, a, resource, facts)
    )
    if denied:
        return Decision(False, "with an explicit deny in an identity-based policy")
    boundary_allow: str | None = "id"
    if policies.boundary is not None:
        denied, boundary_allow = _scan((policies.boundary,), a, resource, facts)
        if denied:
            return Decision(False, "with an explicit deny in a permissions boundary")
    session_allow: str | None = "id"
    if policies.session is not None:
        denied, session_allow = _scan(policies.session, a, resource, facts)
        if denied:
            return Decision(False, "with an explicit deny in a session policy")
    res_allow: str | None = None
    if resource_policy is not None:
        denied, res_allow = _scan((resource_policy,), a, resource, facts, caller)
        if denied:
            return Decision(False, "with an explicit deny in a resource-based policy")
    cross_account = resource_account is not None and resource_account != caller.account_id
    if resource_required and res_allow is None:
        return _implicit("resource-based policy", action)
    if cross_account:
        if id_allow is None:
            return _implicit("identity-based policy", action)
        if res_allow is None:
            return _implicit("resource-based policy", action)
    elif res_allow not in ("direct", "role") and id_allow is None:
        return _implicit("identity-based policy", action)
    # A same-account resource policy naming the caller itself (a user, a role session) grants on
    # its own; naming a session's role still leaves it to the boundary and session policies.
    if res_allow == "direct" and not cross_account:
        return ALLOWED
    if boundary_allow is None:
        return _implicit("permissions boundary", action)
    if session_allow is None:
        return _implicit("session policy", action)
    return ALLOWED


def _implicit(what: str, action: str) -> Decision:
    return Decision(False, f"because no {what} allows the {action} action")
