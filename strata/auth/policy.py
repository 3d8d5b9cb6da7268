"""IAM policy documents: parsed, validated and compiled once, matched many times.

A policy document (identity policy, resource policy, trust policy, permissions boundary or session
policy: one grammar) becomes a `Policy` of `Statement`s whose Action/Resource/Principal patterns
are compiled to matchers when the document is loaded, so evaluating a request is set look-ups and
regex matches, never JSON walking. `compile_policy` is cached by document text.

Matching rules (AWS's): actions are `service:name` globs, case-insensitive; resources are ARN globs,
case-sensitive, where `*` and `?` stay within one of the five colon-separated ARN fields (the last,
the resource part, may contain colons itself); `${...}` policy variables in Resource and Condition
values are substituted from the request before matching (`${aws:username}`, `${*}`, `${?}`, `${$}`,
and `${key, 'default'}`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from strata.auth.conditions import Condition, PolicyError, compile_conditions
from strata.auth.patterns import arn_matcher, glob_matcher, has_variables, substitute

VERSIONS = ("2012-10-17", "2008-10-17")
_STATEMENT_KEYS = frozenset(
    [
        "Sid",
        "Effect",
        "Principal",
        "NotPrincipal",
        "Action",
        "NotAction",
        "Resource",
        "NotResource",
        "Condition",
    ]
)


class ActionMatcher:
    """Action globs of one statement: exact names in a set, the rest as regexes."""

    __slots__ = ("exact", "patterns", "any")

    def __init__(self, patterns: list[str]) -> None:
        self.any = "*" in patterns
        self.exact = frozenset(p.lower() for p in patterns if "*" not in p and "?" not in p)
        self.patterns = [glob_matcher(p, True) for p in patterns if ("*" in p or "?" in p) and p != "*"]

    def __call__(self, action_lower: str) -> bool:
        return self.any or action_lower in self.exact or any(m(action_lower) for m in self.patterns)


class ResourceMatcher:
    """Resource globs of one statement; patterns with policy variables resolve per request."""

    __slots__ = ("any", "static", "dynamic")

    def __init__(self, patterns: list[str], variables: bool = True) -> None:
        self.any = "*" in patterns
        self.static = [arn_matcher(p) for p in patterns if not (variables and has_variables(p))]
        self.dynamic = [p for p in patterns if variables and has_variables(p)]

    def __call__(self, resource: str, lookup: Callable[[str], Any]) -> bool:
        if self.any or any(m(resource) for m in self.static):
            return True
        for p in self.dynamic:
            resolved = substitute(p, lookup)
            if resolved is not None and arn_matcher(resolved)(resource):
                return True
        return False


@dataclass(frozen=True)
class PrincipalSpec:
    """A Principal/NotPrincipal element: `*`, or AWS ARNs/account ids, services, federated ids."""

    any: bool
    aws: frozenset[str]
    services: frozenset[str]
    federated: frozenset[str]
    canonical: frozenset[str]


@dataclass(frozen=True)
class Statement:
    sid: str
    allow: bool
    actions: ActionMatcher
    not_actions: bool
    resources: ResourceMatcher | None  # None: no Resource element (trust policies)
    not_resources: bool
    principal: PrincipalSpec | None
    not_principal: bool
    conditions: tuple[Condition, ...]

    def matches_action(self, action_lower: str) -> bool:
        hit = self.actions(action_lower)
        return not hit if self.not_actions else hit

    def matches_resource(self, resource: str, lookup: Callable[[str], Any]) -> bool:
        if self.resources is None:
            return True
        hit = self.resources(resource, lookup)
        return not hit if self.not_resources else hit

    def static_resource_match(self, resource: str) -> bool | None:
        """Whether the Resource element matches, when that does not depend on the request
        (None: it holds policy variables, decided per request)."""
        r = self.resources
        if r is None:
            return True
        if r.dynamic:
            return None
        hit = r.any or any(m(resource) for m in r.static)
        return not hit if self.not_resources else hit


# How many (action, resource) pairs a policy remembers its candidate statements for.
_CANDIDATES_LIMIT = 4096


@dataclass(frozen=True)
class Policy:
    statements: tuple[Statement, ...]
    text: str
    # (action, resource) -> the statements whose Action and static Resource match it, with
    # whether Resource must still be checked per request (policy variables): a policy of many
    # statements costs a request only the ones that can apply to it.
    _candidates: dict = field(default_factory=dict, compare=False, repr=False)
    # Decisions made under this policy (a resource policy) that depend on nothing but the
    # request's caller, resource and connection (strata.auth.enforce): living on the policy,
    # they go when a new text replaces it.
    _decisions: dict = field(default_factory=dict, compare=False, repr=False)

    def candidates(self, action_lower: str, resource: str) -> tuple[tuple[Statement, bool], ...]:
        key = (action_lower, resource)
        hit = self._candidates.get(key)
        if hit is not None:
            return hit
        out = []
        for s in self.statements:
            if not s.matches_action(action_lower):
                continue
            decided = s.static_resource_match(resource)
            if decided is None:
                out.append((s, True))
            elif decided:
                out.append((s, False))
        hit = tuple(out)
        if len(self._candidates) >= _CANDIDATES_LIMIT:
            self._candidates.clear()
        self._candidates[key] = hit
        return hit


def _as_list(value: Any, what: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    raise PolicyError(f"Syntax errors in policy. {what} must be a string or a non-empty list of strings.")


def _principal(value: Any) -> PrincipalSpec:
    if value == "*":
        return PrincipalSpec(True, frozenset(), frozenset(), frozenset(), frozenset())
    if not isinstance(value, dict) or not value:
        raise PolicyError("Invalid principal in policy")
    fields: dict[str, list[str]] = {}
    for key, v in value.items():
        if key not in ("AWS", "Service", "Federated", "CanonicalUser"):
            raise PolicyError(f'Invalid principal in policy: "{key}"')
        fields[key] = _as_list(v, "Principal")
    aws = fields.get("AWS", [])
    for entry in aws:
        if entry != "*" and not (entry.isdigit() and len(entry) == 12) and not entry.startswith("arn:"):
            raise PolicyError(f'Invalid principal in policy: "AWS":"{entry}"')
    return PrincipalSpec(
        "*" in aws,
        frozenset(aws),
        frozenset(fields.get("Service", [])),
        frozenset(fields.get("Federated", [])),
        frozenset(fields.get("CanonicalUser", [])),
    )


def _statement(raw: Any, resource_required: bool, variables: bool) -> Statement:
    if not isinstance(raw, dict):
        raise PolicyError("Syntax errors in policy.")
    unknown = set(raw) - _STATEMENT_KEYS
    if unknown:
        raise PolicyError(f"Syntax errors in policy. Unknown field {sorted(unknown)[0]}")
    effect = raw.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise PolicyError("Syntax errors in policy. Effect must be Allow or Deny.")
    if ("Action" in raw) == ("NotAction" in raw):
        raise PolicyError("Policy statement must contain actions.")
    if "Resource" in raw and "NotResource" in raw:
        raise PolicyError("Syntax errors in policy. Resource and NotResource are exclusive.")
    if "Principal" in raw and "NotPrincipal" in raw:
        raise PolicyError("Syntax errors in policy. Principal and NotPrincipal are exclusive.")
    if resource_required and "Resource" not in raw and "NotResource" not in raw:
        raise PolicyError("Policy statement must contain resources.")
    actions = _as_list(raw.get("Action", raw.get("NotAction")), "Action")
    for a in actions:
        if a != "*" and ":" not in a:
            raise PolicyError("Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.")
    resources = raw.get("Resource", raw.get("NotResource"))
    principal = raw.get("Principal", raw.get("NotPrincipal"))
    sid = raw.get("Sid", "")
    if not isinstance(sid, str):
        raise PolicyError("Syntax errors in policy. Sid must be a string.")
    return Statement(
        sid=sid,
        allow=effect == "Allow",
        actions=ActionMatcher(actions),
        not_actions="NotAction" in raw,
        resources=ResourceMatcher(_as_list(resources, "Resource"), variables)
        if resources is not None
        else None,
        not_resources="NotResource" in raw,
        principal=_principal(principal) if principal is not None else None,
        not_principal="NotPrincipal" in raw,
        conditions=compile_conditions(raw.get("Condition", {}), variables),
    )


@functools.lru_cache(maxsize=4096)
def compile_policy(text: str, kind: str = "identity") -> Policy:
    """Parse and compile a policy document. `kind` is identity (Resource required, no Principal),
    resource (Principal required), or trust (a role's trust policy: Principal, no Resource).
    Raises PolicyError with IAM's message for a malformed document."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        raise PolicyError("Syntax errors in policy.") from None
    if not isinstance(doc, dict):
        raise PolicyError("Syntax errors in policy.")
    version = doc.get("Version")
    if version is not None and version not in VERSIONS:
        raise PolicyError("The policy failed legacy parsing")
    raw = doc.get("Statement")
    if raw is None:
        raise PolicyError("Syntax errors in policy. Statement is required.")
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise PolicyError("Syntax errors in policy.")
    # Policy variables exist from version 2012-10-17; older (or no) Version reads ${...} literally.
    variables = version == "2012-10-17"
    statements = tuple(_statement(s, kind == "identity", variables) for s in raw)
    for s in statements:
        if kind == "identity" and s.principal is not None:
            raise PolicyError("Policy document should not specify a principal.")
        if kind in ("resource", "trust") and s.principal is None:
            raise PolicyError("Missing required field Principal")
    return Policy(statements, text)
