"""Authorization of every request: the operation's (action, resource) pairs against the caller's
policies, after the request is parsed and before the provider runs.

Fast path: an account root (and the loopback test key) acting in its own account is allowed
without evaluation. Others get their compiled policy set from the directory (cached per principal
until the next IAM change); when none of its policies has a condition or a policy variable, the
decision for an (action, resource) pair is cached with it.

Resources owned by another account (an S3 bucket another account created) need that account's
resource policy; a provider names a resource's owner through its optional `resource_account(req)`
hook, `resource_arn(req, arn)` when the table's ARN lacks what only the provider knows (an IAM
user's path), and `resource_policy(req)` when it has resource policies (S3 bucket policies, KMS key
policies use the same evaluator; `resource_policy_required` in actions.json makes a resource policy
mandatory for every caller, root included, as KMS key policies are).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from strata.auth import errors
from strata.auth.actions import ParamKeys, plan, targets
from strata.auth.directory import Directory
from strata.auth.evaluator import Decision, Facts, PolicySet, evaluate
from strata.auth.policy import Policy
from strata.protocol.http import HttpRequest
from strata.services.base import Principal
from strata.sim.clock import clock

_DECISION_CACHE_LIMIT = 2048

# (account, region) of the request being authorized, for provider hooks that resolve names
# relative to the caller (KMS aliases and key ids live in the caller's account and region).
CALLER_SCOPE: ContextVar[tuple[str, str]] = ContextVar("strata_caller_scope", default=("", ""))


def _static(policies: PolicySet) -> tuple[bool, bool]:
    """(decisions depend only on (action, resource): no conditions, no variables;
    they depend on the action alone: every statement is for any resource)."""
    every = list(policies.identity) + ([policies.boundary] if policies.boundary else [])
    every += list(policies.session or ())
    static = any_resource = True
    for p in every:
        for s in p.statements:
            if s.conditions or (s.resources is not None and s.resources.dynamic):
                static = False
            if s.resources is not None and (s.not_resources or not s.resources.any):
                any_resource = False
    return static, static and any_resource


class Authorizer:
    def __init__(self, directory: Directory) -> None:
        self.directory = directory

    def check(
        self,
        principal: Principal,
        service: str,
        operation: str,
        params: dict,
        request: HttpRequest,
        region: str,
        provider: Any = None,
    ) -> None:
        """Raise the service's AccessDenied unless every (action, resource) pair is allowed."""
        owner: str | None = None
        p = plan(service, operation)
        CALLER_SCOPE.set((principal.account_id, region))
        if len(self.directory.accounts) > 1 and not p.creates:
            owner_hook = getattr(provider, "resource_account", None)
            if owner_hook is not None:
                owner = owner_hook(params)
        if (
            principal.unrestricted
            and principal.session is None
            and (owner is None or owner == principal.account_id)
            and not p.resource_required
        ):
            return
        if p.always_allowed:
            return
        if principal.session is not None and principal.session.get("gst") and service in ("iam", "sts"):
            # GetSessionToken credentials cannot call IAM, nor STS beyond AssumeRole/GetCallerIdentity.
            if service == "iam" or operation not in ("AssumeRole", "GetCallerIdentity"):
                raise errors.access_denied(
                    service,
                    f"Cannot call {operation} with session credentials",
                )
        policies, cache = self.directory.policy_set(principal)
        kind = cache.get("static")
        if kind is None:
            kind = cache["static"] = _static(policies)
        static, action_only = kind
        resource_policy: Policy | None = None
        policy_hook = getattr(provider, "resource_policy", None)
        if policy_hook is not None:
            resource_policy = policy_hook(params)
        # A missing resource has no policy to require: the operation answers NotFound itself.
        required = p.resource_required and resource_policy is not None
        # Policies that say Resource "*" throughout (most managed ones) decide by the action
        # alone: an allowed request need not have its resource ARN built.
        by_action = action_only and resource_policy is None and p.each is None and not p.also
        if by_action:
            action_key = (p.versioned_action if params.get("VersionId") else p.action, owner)
            known = cache.get(action_key)
            if known is not None and known.allowed:
                return
        facts = None
        pairs = targets(p, params, region, principal.account_id, principal.arn)
        arn_hook = getattr(provider, "resource_arn", None)
        if arn_hook is not None:
            exact = arn_hook(params, pairs[0][1])
            if exact is not None:
                pairs[0] = (pairs[0][0], exact)
        for action, resource in pairs:
            decision: Decision | None = None
            key = (action, resource, owner)
            if static and resource_policy is None:
                decision = cache.get(key)
            if decision is None:
                if facts is None:
                    facts = Facts(
                        principal,
                        region,
                        request.client,
                        request.secure,
                        clock.time,
                        ParamKeys(params, p.keys),  # type: ignore[arg-type]
                    )
                decision = evaluate(
                    principal, action, resource, facts, policies, resource_policy, owner, required
                )
                if static and resource_policy is None:
                    if len(cache) > _DECISION_CACHE_LIMIT:
                        cache.clear()
                        cache["static"] = kind
                    cache[key] = decision
                    if by_action:
                        cache[(action, owner)] = decision
            if not decision.allowed:
                raise errors.access_denied(service, decision.message(principal.arn, action, resource))
