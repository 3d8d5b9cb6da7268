"""Authorization of every request: the operation's (action, resource) pairs against the caller's
policies, after the request is parsed and before the provider runs.

Fast path: an account root (and the loopback test key) acting in its own account is allowed
without evaluation. Others get their compiled policy set from the directory (cached per principal
until the next IAM change); when none of its policies has a condition or a policy variable, the
decision for an (action, resource) pair is cached with it, and for a request naming one resource,
also under the request members its ARN is built from (then an allowed request is decided without
building the ARN). Conditions on the connection alone (aws:SourceIp, aws:SecureTransport) keep
decisions cacheable, with the connection's address and transport in the key.

The short cuts are taken before any provider hook is asked: each (service, operation, provider
class) has a `Route`, worked out once (the gateway keeps it with the operation's method), saying
which apply. A root allowed by nothing but its own account returns at once; a remembered allowed
decision is looked up when no hook can enter it: the provider has none for the operation, or its
row for the named resource says so (`resource_rows` by `resource_member`: an S3 bucket with no
policy and no ACLs is `authz_open`; one whose policy applies to every caller of its account holds
it as `authz_policy`, and the decisions remembered on that policy are looked up; a changed bucket
is a new row), and the members without which `further_resources` names nothing
(`further_resources_members(operation)`) are absent. What the request is (caller, operation,
account, region) is one ContextVar, set once per request.

Resources owned by another account (an S3 bucket another account created) need that account's
resource policy; a provider names a resource's owner through its optional `resource_account(req)`
hook, `resource_arn(req, arn)` when the table's ARN lacks what only the provider knows (an IAM
user's path), and `resource_policy(req)` when it has resource policies (S3 bucket policies, KMS key
policies use the same evaluator; `resource_policy_required` in actions.json makes a resource policy
mandatory for every caller, root included, as KMS key policies are). An operation acting on a
second resource with its own policy (KMS ReEncrypt: kms:ReEncryptFrom on the source key,
kms:ReEncryptTo on the destination key) names it through `further_resources(req)`: each
(action, ARN, owning account, resource policy) it returns is decided like the first. A request
that also reads another resource (CopyObject's source) is checked for it as the provider's
`related_requests(operation, req)` says: [(operation, req naming the other resource)], each
authorized like a request of its own, against that resource's owner and policy. A request whose
actions depend on what it says rather than on its operation (DynamoDB PartiQL: a SELECT is
dynamodb:PartiQLSelect on the table it names) gets its pairs from the provider's
`request_targets(operation, req, region, account)` when that returns a list. A provider whose
resource policies bind the resource owner's root too (an S3 bucket policy's Deny applies to everyone) says
so with `resource_policy_binds_owner = True`; its hooks (`resource_policy`, `further_resources`:
an S3 access point's policy, s3:BypassGovernanceRetention under the bucket policy) are then asked
on the fast path as well.

An unsigned request (S3 only) is the anonymous principal (`ANONYMOUS`): it has no identity
policies and belongs to no account, so like a caller from another account it needs a resource
policy that allows it (`"Principal": "*"`): nothing is served unsigned unless a policy makes it
public.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
from typing import Any

from strata.auth import errors
from strata.auth.actions import ParamKeys, Plan, plan, targets

# the request's facts for provider hooks, imported by providers from here too
from strata.auth.caller import CALLER as CALLER
from strata.auth.caller import CALLER_OPERATION as CALLER_OPERATION
from strata.auth.caller import CALLER_REQUEST
from strata.auth.caller import CALLER_SCOPE as CALLER_SCOPE
from strata.auth.directory import Directory, directory_for
from strata.auth.evaluator import Decision, Facts, PolicySet, evaluate
from strata.auth.policy import Policy
from strata.auth.principal import ANONYMOUS, Principal
from strata.auth.routes import (
    BY_ACTION,
    BY_MEMBERS,
    UNCACHED,
    Route,
    connection_bound,
    further_resources,
    route_for,
    static_kind,
)
from strata.config import Settings
from strata.protocol.http import HttpRequest
from strata.sim.clock import clock

_DECISION_CACHE_LIMIT = 2048

_ANONYMOUS_SET = PolicySet(unrestricted=True)  # the identity side is vacuous; the resource decides
_ROOT_SET = _ANONYMOUS_SET  # an account's root: unrestricted on the identity side


@functools.cache
def _without_also(service: str, operation: str) -> Plan:
    return dataclasses.replace(plan(service, operation), also=())


def _allowed_before(decisions: dict, key: tuple) -> bool | None:
    """Whether an allowed decision is remembered under `key` (None: the key cannot be one, a
    member that is not a string: the request is decided in full)."""
    try:
        known = decisions.get(key)
    except TypeError:
        return None
    return known is not None and known.allowed


def _remember(policy: Policy, key: tuple, decision: Decision) -> None:
    decisions = policy._decisions
    if len(decisions) >= _DECISION_CACHE_LIMIT:
        decisions.clear()
    decisions[key] = decision


def _facts(
    principal: Principal, region: str, request: HttpRequest, params: dict, p: Plan, provider: Any
) -> Facts:
    """What conditions may ask about this request (built only when a policy is evaluated)."""
    return Facts(
        principal,
        region,
        request.client,
        request.secure,
        clock.time,
        ParamKeys(params, p.keys, getattr(provider, "condition_key", None)),  # type: ignore[arg-type]
    )


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
        route: Route | None = None,
    ) -> None:
        """Raise the service's AccessDenied unless every (action, resource) pair is allowed.

        First, without asking any hook when the route allows it: a root with nothing that could
        bind it, or a caller whose allowed decision is remembered (see `Route`); else in full."""
        if route is None:
            route = self.route(service, operation, provider)
        if route.fast:
            CALLER_REQUEST.set((principal, operation, principal.account_id, region))
            try:
                if principal.unrestricted and principal.session is None:  # a root
                    if route.root_free:
                        return
                    if route.rows is None:
                        if not route.binds and not self.directory.several_accounts:
                            return  # only an owner to find, and one account owns everything
                    else:
                        row = provider.resource_rows.get(params.get(route.rows))
                        opened = row.authz_open if row is not None else None
                        if (
                            opened is not None
                            and route.further_member not in params
                            and (route.further_rest is None or params.keys().isdisjoint(route.further_rest))
                        ):
                            # no policy can bind it; its owner matters with several accounts
                            if (
                                not self.directory.several_accounts
                                or not route.owner_hook
                                or opened[0] is None
                                or opened[0] == principal.account_id
                            ):
                                return
                        elif row is not None and row.authz_policy is not None:
                            if self._remembered_under(
                                row.authz_policy, principal, operation, route, params, region, request
                            ):
                                return
                elif principal is not ANONYMOUS:
                    held = principal.policies
                    if held is not None and held.generation == self.directory.generation:
                        mode = held.mode
                        owner: str | None = None
                        if not mode:
                            pass
                        elif route.plain:
                            if self.directory.several_accounts and route.owner_hook:
                                owner = provider.resource_account(params)
                        elif route.rows is not None:
                            row = provider.resource_rows.get(params.get(route.rows))
                            opened = row.authz_open if row is not None else None
                            if (
                                opened is None
                                or route.further_member in params
                                or not (
                                    route.further_rest is None or params.keys().isdisjoint(route.further_rest)
                                )
                            ):
                                mode = UNCACHED
                                if row is not None and row.authz_policy is not None:
                                    if self._remembered_under(
                                        row.authz_policy, principal, operation, route, params, region, request
                                    ):
                                        return
                            elif self.directory.several_accounts and route.owner_hook:
                                owner = opened[0]
                        else:
                            mode = UNCACHED
                        if mode:
                            action = (
                                route.versioned_action
                                if route.versioned and "VersionId" in params and params["VersionId"]
                                else route.action
                            )
                            if mode == BY_ACTION:
                                known = held.decisions.get((action, owner))
                            elif not route.by_members:
                                known = None
                            elif mode == BY_MEMBERS:
                                known = held.decisions.get(
                                    ("members", action, owner, region, *map(params.get, route.members))
                                )
                            else:  # BY_CONNECTION
                                known = held.decisions.get(
                                    (
                                        "members",
                                        action,
                                        owner,
                                        region,
                                        request.client,
                                        request.secure,
                                        *map(params.get, route.members),
                                    )
                                )
                            if known is not None and known.allowed:
                                return
            except TypeError:  # a member that cannot be a key: decided in full
                pass
        self._check(principal, service, operation, params, request, region, provider, route)

    @staticmethod
    def route(service: str, operation: str, provider: Any) -> Route:
        """What checking this operation of this provider needs (the gateway keeps it with the
        operation's method; `check` looks it up when not given)."""
        return route_for(service, operation, provider)

    def _check(
        self,
        principal: Principal,
        service: str,
        operation: str,
        params: dict,
        request: HttpRequest,
        region: str,
        provider: Any,
        route: Route,
    ) -> None:
        """The check in full: every hook asked, decisions evaluated (and remembered) as needed."""
        owner: str | None = None
        p = route.plan
        if p.also:
            related_hook = getattr(provider, "related_requests", None)
            if related_hook is not None:
                # Another resource the request reads (a copy's source) is checked as a request of
                # its own: its owner and its resource policy, not the destination's, decide.
                for related_operation, related_params in related_hook(operation, params):
                    self.check(
                        principal, service, related_operation, related_params, request, region, provider
                    )
                p = _without_also(service, operation)
        if not route.fast:  # (a fast route's check set them already)
            CALLER_REQUEST.set((principal, operation, principal.account_id, region))
        if principal is ANONYMOUS:
            self._check_anonymous(p, service, params, request, region, provider, route)
            return
        if self.directory.several_accounts and not p.creates:
            owner_hook = getattr(provider, "resource_account", None)
            if owner_hook is not None:
                owner = owner_hook(params)
        if (
            principal.unrestricted
            and principal.session is None
            and (owner is None or owner == principal.account_id)
            and not p.resource_required
        ):
            if getattr(provider, "resource_policy_binds_owner", False) and not p.always_allowed:
                policy = provider.resource_policy(params)
                if policy is not None:
                    self._under_owner_policy(
                        principal,
                        service,
                        operation,
                        p,
                        params,
                        request,
                        region,
                        policy,
                        owner,
                        provider,
                        route,
                    )
                # The further resources' policies (an S3 access point's) bind the root too.
                for action, resource, res_owner, res_policy in further_resources(provider, params, route):
                    if res_policy is None and res_owner == principal.account_id:
                        continue
                    verdict = evaluate(
                        principal,
                        action,
                        resource,
                        _facts(principal, region, request, params, p, provider),
                        PolicySet(unrestricted=True),
                        res_policy,
                        res_owner,
                    )
                    if not verdict.allowed:
                        raise errors.access_denied(service, verdict.message(principal.arn, action, resource))
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
            kind = cache["static"] = static_kind(policies)
        principal.policies.mode = kind[3]  # what `check` looks up first next time
        static, action_only, by_connection, _ = kind
        # decisions under conditions on the connection alone are cached with its facts
        connection = (request.client, request.secure) if by_connection else ()
        cacheable = static or by_connection
        resource_policy: Policy | None = None
        policy_hook = getattr(provider, "resource_policy", None)
        if policy_hook is not None:
            resource_policy = policy_hook(params)
        # A missing resource has no policy to require: the operation answers NotFound itself.
        required = p.resource_required and resource_policy is not None
        further = further_resources(provider, params, route)
        targets_hook = getattr(provider, "request_targets", None)
        own_pairs = (
            targets_hook(operation, params, region, principal.account_id)
            if targets_hook is not None
            and operation in getattr(provider, "request_target_operations", (operation,))
            else None
        )
        # Policies that say Resource "*" throughout (most managed ones) decide by the action
        # alone: an allowed request need not have its resource ARN built.
        by_action = (
            action_only
            and resource_policy is None
            and p.each is None
            and not p.also
            and not further
            and own_pairs is None
        )
        if by_action:
            action_key = (p.versioned_action if params.get("VersionId") else p.action, owner)
            known = cache.get(action_key)
            if known is not None and known.allowed:
                return
        # A single resource named by the request's members: its decision is cached under the
        # members' values (what its ARN is built from), so an allowed request is decided without
        # building the ARN.
        by_members: tuple | None = None
        if (
            cacheable
            and resource_policy is None
            and p.each is None
            and not p.also
            and not further
            and own_pairs is None
            and getattr(provider, "resource_arn", None) is None
        ):
            by_members = (
                "members",
                p.versioned_action if params.get("VersionId") else p.action,
                owner,
                region,
                *connection,
                *[params.get(member) for member, _ in p.rules],
            )
            hit = _allowed_before(cache, by_members)
            if hit:
                return
            if hit is None:
                by_members = None
        # Under a resource policy, a single resource's decision is kept on the policy itself,
        # under the caller (and its identity's generation), the members and the connection.
        by_policy: tuple | None = None
        if (
            resource_policy is not None
            and cacheable
            and p.each is None
            and not p.also
            and not further
            and own_pairs is None
            and getattr(provider, "resource_arn", None) is None
        ):
            by_policy = self._policy_key(principal, operation, route, params, owner, region, request)
            hit = _allowed_before(resource_policy._decisions, by_policy)
            if hit:
                return
            if hit is None:
                by_policy = None
        facts = None
        pairs = (
            own_pairs
            if own_pairs is not None
            else targets(p, params, region, principal.account_id, principal.arn)
        )
        arn_hook = getattr(provider, "resource_arn", None)
        if arn_hook is not None and pairs:
            exact = arn_hook(params, pairs[0][1])
            if exact is not None:
                pairs[0] = (pairs[0][0], exact)
        for action, resource in pairs:
            decision: Decision | None = None
            key = (action, resource, owner, region, *connection)
            if cacheable and resource_policy is None:
                decision = cache.get(key)
            if decision is None:
                if facts is None:
                    facts = _facts(principal, region, request, params, p, provider)
                decision = evaluate(
                    principal, action, resource, facts, policies, resource_policy, owner, required
                )
                if cacheable and resource_policy is None:
                    if len(cache) > _DECISION_CACHE_LIMIT:
                        cache.clear()
                        cache["static"] = kind
                    cache[key] = decision
                    if by_action:
                        cache[(action, owner)] = decision
                    if by_members is not None:
                        cache[by_members] = decision
                elif (
                    by_policy is not None
                    and len(pairs) == 1
                    and connection_bound(resource_policy, action.lower(), resource)  # type: ignore[arg-type]
                ):
                    _remember(resource_policy, by_policy, decision)  # type: ignore[arg-type]
            if not decision.allowed:
                raise errors.access_denied(service, decision.message(principal.arn, action, resource))
        if further:
            for action, resource, res_owner, res_policy in further:
                if facts is None:
                    facts = _facts(principal, region, request, params, p, provider)
                required = p.resource_required and res_policy is not None
                decision = evaluate(
                    principal, action, resource, facts, policies, res_policy, res_owner, required
                )
                if not decision.allowed:
                    raise errors.access_denied(service, decision.message(principal.arn, action, resource))

    def _remembered_under(
        self,
        held: tuple[str | None, Policy],
        principal: Principal,
        operation: str,
        route: Route,
        params: dict,
        region: str,
        request: HttpRequest,
    ) -> bool:
        """Whether an allowed decision is remembered under the resource policy a provider's row
        holds as `authz_policy` (owner, the policy that applies to every caller of the owner's
        account, a row with nothing else that could guard it), for a caller of that account."""
        owner, policy = held
        if owner != principal.account_id or route.further_member in params:
            return False
        if route.further_rest is not None and not params.keys().isdisjoint(route.further_rest):
            return False
        key = self._policy_key(
            principal,
            operation,
            route,
            params,
            owner if self.directory.several_accounts and route.owner_hook else None,
            region,
            request,
        )
        known = policy._decisions.get(key)
        return known is not None and known.allowed  # type: ignore[no-any-return]

    def _policy_key(
        self,
        principal: Principal,
        operation: str,
        route: Route,
        params: dict,
        owner: str | None,
        region: str,
        request: HttpRequest,
    ) -> tuple:
        """What a decision under a resource policy depends on besides the policy: the caller and
        its identity policies (their generation), the request's resource members, the connection."""
        session = principal.session
        return (
            operation,
            principal.arn,
            session["ak"] if session else "",
            self.directory.generation,
            owner,
            region,
            request.client,
            request.secure,
            route.versioned_action if route.versioned and params.get("VersionId") else route.action,
            *map(params.get, route.members),
        )

    def _under_owner_policy(
        self,
        principal: Principal,
        service: str,
        operation: str,
        p: Plan,
        params: dict,
        request: HttpRequest,
        region: str,
        policy: Policy,
        owner: str | None,
        provider: Any,
        route: Route,
    ) -> None:
        """The owner's root under a resource policy that binds it (an S3 bucket policy's Deny):
        a single resource's allowed decision is remembered on the policy when nothing but the
        connection can change it, so a bucket with a policy is not evaluated in full per request."""
        key: tuple | None = None
        if p.each is None and not p.also:
            key = self._policy_key(principal, operation, route, params, owner, region, request)
            hit = _allowed_before(policy._decisions, key)
            if hit:
                return
            if hit is None:
                key = None
        facts = _facts(principal, region, request, params, p, provider)
        pairs = targets(p, params, region, principal.account_id, principal.arn)
        for action, resource in pairs:
            decision = evaluate(principal, action, resource, facts, _ROOT_SET, policy, owner)
            if not decision.allowed:
                raise errors.access_denied(service, decision.message(principal.arn, action, resource))
            if key is not None and len(pairs) == 1 and connection_bound(policy, action.lower(), resource):
                _remember(policy, key, decision)

    def _check_anonymous(
        self,
        p: Any,
        service: str,
        params: dict,
        request: HttpRequest,
        region: str,
        provider: Any,
        route: Route,
    ) -> None:
        """An unsigned request: allowed only where the resource's policy allows everyone."""
        policy_hook = getattr(provider, "resource_policy", None)
        owner_hook = getattr(provider, "resource_account", None)
        policy = policy_hook(params) if policy_hook is not None and not p.creates else None
        owner = owner_hook(params) if owner_hook is not None and policy is not None else None
        if policy is None or owner is None:
            raise errors.access_denied(service, "Access Denied")
        self._evaluate_pairs(
            ANONYMOUS, service, p, params, request, region, _ANONYMOUS_SET, policy, owner, provider
        )
        facts = _facts(ANONYMOUS, region, request, params, p, provider)
        for action, resource, res_owner, res_policy in further_resources(provider, params, route):
            if res_policy is None or res_owner is None:
                raise errors.access_denied(service, "Access Denied")
            decision = evaluate(ANONYMOUS, action, resource, facts, _ANONYMOUS_SET, res_policy, res_owner)
            if not decision.allowed:
                raise errors.access_denied(service, "Access Denied")

    @staticmethod
    def _evaluate_pairs(
        principal: Principal,
        service: str,
        p: Any,
        params: dict,
        request: HttpRequest,
        region: str,
        policies: PolicySet,
        resource_policy: Policy,
        owner: str | None,
        provider: Any,
    ) -> None:
        """Evaluate every (action, resource) pair of the request, without decision caching."""
        facts = _facts(principal, region, request, params, p, provider)
        for action, resource in targets(p, params, region, principal.account_id, principal.arn):
            decision = evaluate(principal, action, resource, facts, policies, resource_policy, owner)
            if not decision.allowed:
                if principal is ANONYMOUS:
                    raise errors.access_denied(service, "Access Denied")
                raise errors.access_denied(service, decision.message(principal.arn, action, resource))


def check_for_caller(
    settings: Settings,
    principal: Principal,
    service: str,
    operation: str,
    params: dict,
    request: HttpRequest,
    region: str,
    provider: Any,
) -> None:
    """A request one service makes for its caller (S3 asking KMS for a data key, DynamoDB reading
    an import's objects from S3), decided as the caller's own request to that service would be.
    Runs in a context of its own: the check notes what it decides in this module's ContextVars,
    which the calling request's own check set."""
    authorizer = Authorizer(directory_for(settings))
    contextvars.copy_context().run(
        authorizer.check, principal, service, operation, params, request, region, provider
    )
