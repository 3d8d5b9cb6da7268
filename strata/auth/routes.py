"""What authorizing one operation of one provider needs, worked out once (strata.auth.enforce):
its plan, which short cuts apply (a root allowed at once, a remembered decision looked up before
any hook is asked), and how a principal's policies let decisions be remembered.
"""

from __future__ import annotations

import functools
from typing import Any

from strata.auth import conditions
from strata.auth.actions import plan
from strata.auth.evaluator import PolicySet
from strata.auth.policy import Policy

# Condition tests that read only the connection (its address, whether it is TLS) with operators
# that take no policy variables: a decision under them is cached with the connection's facts.
CONNECTION_TESTS = {
    ("aws:sourceip", conditions.OPERATORS["IpAddress"][0]),
    ("aws:sourceip", conditions.OPERATORS["Bool"][0]),
    ("aws:securetransport", conditions.OPERATORS["Bool"][0]),
}


# How a principal's allowed decisions are remembered (the last field of `static_kind`'s answer).
UNCACHED, BY_ACTION, BY_MEMBERS, BY_CONNECTION = 0, 1, 2, 3


def static_kind(policies: PolicySet) -> tuple[bool, bool, bool, int]:
    """(decisions depend only on (action, resource): no conditions, no variables;
    they depend on the action alone: every statement is for any resource;
    they depend on (action, resource) and the connection: conditions only on aws:SourceIp and
    aws:SecureTransport; and which of BY_ACTION, BY_MEMBERS, BY_CONNECTION, UNCACHED follows)."""
    every = list(policies.identity) + ([policies.boundary] if policies.boundary else [])
    every += list(policies.session or ())
    static = any_resource = by_connection = True
    for p in every:
        for s in p.statements:
            if s.resources is not None and s.resources.dynamic:
                static = by_connection = False
            elif s.conditions:
                static = False
                if any((c.key, c.match) not in CONNECTION_TESTS for c in s.conditions):
                    by_connection = False
            if s.resources is not None and (s.not_resources or not s.resources.any):
                any_resource = False
    action_only = static and any_resource
    by_connection = by_connection and not static
    if action_only:
        mode = BY_ACTION
    elif static:
        mode = BY_MEMBERS
    else:
        mode = BY_CONNECTION if by_connection else UNCACHED
    return static, action_only, by_connection, mode


class Route:
    """What the check needs to know about one operation of one provider, worked out once: its
    plan, and whether (and how) a remembered decision can be looked up before any hook is asked."""

    __slots__ = (
        "plan",
        "fast",
        "always",
        "versioned",
        "action",
        "versioned_action",
        "members",
        "root_free",
        "binds",
        "plain",
        "rows",
        "owner_hook",
        "further_member",
        "further_rest",
        "by_members",
    )

    def __init__(self, service: str, operation: str, provider: Any) -> None:
        p = self.plan = plan(service, operation)
        hook = functools.partial(getattr, provider)
        targets_for = hook("request_target_operations", None)
        own_targets = hook("request_targets", None) is not None and (
            targets_for is None or operation in targets_for
        )
        further = hook("further_resources", None) is not None
        # `further_resources_members(operation)`: the members without which the provider's
        # `further_resources` names nothing for this operation (an S3 access point's, the
        # governance bypass header): the first in `further_member` ("": none; None: undeclared,
        # asked every time), the others in `further_rest`.
        declared = hook("further_resources_members", None)
        members = sorted(declared(operation)) if further and declared is not None else None
        self.further_member: str | None = (members[0] if members else "") if members is not None else None
        self.further_rest: frozenset[str] | None = frozenset(members[1:]) if members and members[1:] else None
        if not further:
            self.further_member = ""
        # No remembered decision for: several pairs (each, also), a resource policy every caller
        # needs (KMS), IAM/STS (GetSessionToken credentials' limits), own targets (PartiQL), a
        # further resource its provider cannot tell absent from the request's members.
        self.fast = (
            provider is not None
            and p.each is None
            and not p.also
            and not p.resource_required
            and service not in ("iam", "sts")
            and not own_targets
            and self.further_member is not None
        )
        self.always = p.always_allowed
        self.versioned = p.versioned_action != p.action
        self.action = p.action
        self.versioned_action = p.versioned_action
        self.members = tuple(member for member, _ in p.rules)
        # the resource's owner is asked for (with several accounts) ...
        self.owner_hook = hook("resource_account", None) is not None and not p.creates
        # ... and its policy binds the owner's root too (S3)
        binds = self.binds = bool(hook("resource_policy_binds_owner", False)) and not p.always_allowed
        policy_hook = hook("resource_policy", None) is not None
        # `resource_rows`: the provider's rows by `resource_member` (an S3 bucket by name), each
        # with `authz_open`: None until the provider found that no resource policy, ACL or further
        # resource can enter a request naming it (then a 1-tuple of its owner). A row is replaced
        # whenever its resource changes, so a remembered `authz_open` is never stale.
        self.rows: str | None = (
            hook("resource_member", None) if hook("resource_rows", None) is not None else None
        )
        # roots: nothing to ask (no hook binds them, no owner to find)
        self.root_free = p.always_allowed or (not binds and not self.owner_hook)
        # users: no hook can add a policy, a resource or an exact ARN (else the rows must say so)
        self.plain = not policy_hook and not further and hook("resource_arn", None) is None
        # the members-keyed decision is usable (an exact-ARN hook would change the resource)
        self.by_members = hook("resource_arn", None) is None


ROUTES: dict[tuple[str, str, type], Route] = {}


def further_resources(provider: Any, params: dict, route: Route) -> list:
    """The provider's further resources for this request (none without its hook, nor without the
    members the provider says it needs for this operation)."""
    hook = getattr(provider, "further_resources", None)
    if hook is None:
        return []
    if route.further_member is not None and (
        route.further_member not in params
        and (route.further_rest is None or params.keys().isdisjoint(route.further_rest))
    ):
        return []
    return hook(params)  # type: ignore[no-any-return]


def connection_bound(policy: Policy, action_lower: str, resource: str) -> bool:
    """Whether a resource policy's say on this (action, resource) depends on nothing but who asks
    and the connection: the statements that can apply have static resources and conditions on
    aws:SourceIp/aws:SecureTransport at most."""
    for s, check_resource in policy.candidates(action_lower, resource):
        if check_resource or any((c.key, c.match) not in CONNECTION_TESTS for c in s.conditions):
            return False
    return True


def route_for(service: str, operation: str, provider: Any) -> Route:
    """The route of this operation of this provider (made on first use)."""
    key = (service, operation, provider.__class__)
    route = ROUTES.get(key)
    if route is None:
        route = ROUTES[key] = Route(service, operation, provider)
    return route
