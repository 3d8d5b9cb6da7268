"""SimulatePrincipalPolicy / SimulateCustomPolicy (the same evaluator real requests go through),
and GetAccountAuthorizationDetails / GetAccountSummary."""

from __future__ import annotations

from typing import Any

from strata.auth.conditions import PolicyError
from strata.auth.directory import user_principal
from strata.auth.evaluator import Facts, PolicySet, evaluate, statement_applies
from strata.auth.policy import Policy, compile_policy
from strata.auth.principal import Principal
from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.iam.core import IAMBase, encoded, page, when
from strata.services.iam.identities import inline_list
from strata.sim.clock import clock

_LIST_TYPES = ("stringList", "numericList", "booleanList", "dateList", "ipList", "binaryList")


def _compile_inputs(texts: Any, kind: str = "identity") -> tuple[Policy, ...]:
    out = []
    for text in texts or []:
        try:
            out.append(compile_policy(text, kind))
        except PolicyError as e:
            raise ServiceError("MalformedPolicyDocument", str(e), 400) from None
    return tuple(out)


def _context(entries: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for e in entries or []:
        values = e.get("ContextKeyValues") or []
        if e.get("ContextKeyType") in _LIST_TYPES:
            out[e["ContextKeyName"].lower()] = values
        elif values:
            out[e["ContextKeyName"].lower()] = values[0]
    return out


def _without(owner: dict, entries: list) -> dict:
    """An identity as if the PolicyExclusionList's policies were not on it."""
    arns = {e.get("PolicyArn") for e in entries if isinstance(e, dict) and e.get("PolicyArn")}
    label = next((owner[k] for k in ("UserName", "GroupName", "RoleName") if k in owner), "")
    inline = {
        (e.get("InlinePolicyIdentifier") or {}).get("PolicyName")
        for e in entries
        if isinstance(e, dict)
        and (e.get("InlinePolicyIdentifier") or {}).get("AttachmentName", label) == label
    }
    boundary_dropped = any(
        isinstance(e, dict) and e.get("PolicyType") == "permission-boundary" for e in entries
    )
    return {
        **owner,
        "attached": [a for a in owner.get("attached", []) if a not in arns],
        "inline": {n: t for n, t in owner.get("inline", {}).items() if n not in inline},
        "boundary": None if boundary_dropped or owner.get("boundary") in arns else owner.get("boundary"),
    }


def _input_labels(policies: tuple[Policy, ...]) -> list[tuple[str, str, Policy]]:
    return [(f"PolicyInputList.{n}", "none", p) for n, p in enumerate(policies, 1)]


def _matched(
    labels: list[tuple[str, str, Policy]],
    decision: str,
    action: str,
    resource: str,
    facts: Facts,
    principal: Principal,
) -> list[dict]:
    """The statements that decided: the applying Deny statements of an explicit deny, the applying
    Allow statements of an allow, none for an implicit deny."""
    if decision == "implicitDeny":
        return []
    want_allow = decision == "allowed"
    out = []
    for source, kind, policy in labels:
        for s in policy.statements:
            caller = principal if kind == "resource" else None
            if s.allow == want_allow and statement_applies(s, action.lower(), resource, facts, caller):
                out.append({"SourcePolicyId": source, "SourcePolicyType": kind})
    return out


class SimulationOperations(IAMBase):
    def simulate_principal_policy(self, ctx: RequestContext, req: dict) -> dict:
        source = req.get("PolicySourceArn") or ""
        parts = source.split(":", 5)
        if len(parts) < 6 or parts[2] != "iam":
            raise ServiceError("InvalidInput", f"Invalid ARN: {source}", 400)
        resource = parts[5]
        name = resource.rsplit("/", 1)[-1]
        account = parts[4]
        if resource.startswith("user/"):
            doc = self.dir.find("user", account, name)
            if doc is None:
                raise ServiceError("NoSuchEntity", f"The user with name {name} cannot be found.", 404)
            principal = user_principal(doc, "")
        elif resource.startswith("role/"):
            doc = self.dir.find("role", account, name)
            if doc is None:
                raise ServiceError("NoSuchEntity", f"The role with name {name} cannot be found.", 404)
            principal = Principal(
                "", account, doc["Arn"], doc["RoleId"], "assumed-role", name, doc["Arn"], False
            )
        elif resource.startswith("group/"):
            doc = self.dir.find("group", account, name)
            if doc is None:
                raise ServiceError("NoSuchEntity", f"The group with name {name} cannot be found.", 404)
            principal = Principal("", account, doc["Arn"], doc["GroupId"], "group", name, "", False)
        else:
            raise ServiceError("InvalidInput", f"Invalid ARN: {source}", 400)
        entries = req.get("PolicyExclusionList") or []
        if entries:
            doc = _without(doc, entries)
        if principal.kind == "group" or entries:
            texts = self.dir.identity_texts(doc)
            if principal.kind == "user":
                for g in doc.get("groups", []):
                    group = self.dir.find("group", account, g)
                    if group is not None:
                        texts += self.dir.identity_texts(_without(group, entries))
            boundary = self.dir.policy_text(doc["boundary"]) if doc.get("boundary") else None
            base = PolicySet(
                identity=tuple(compile_policy(t) for t in texts),
                boundary=compile_policy(boundary) if boundary else None,
            )
        else:
            base, _ = self.dir.policy_set(principal)
        extra = _compile_inputs(req.get("PolicyInputList"))
        boundary_inputs = _compile_inputs(req.get("PermissionsBoundaryPolicyInputList"))
        policies = PolicySet(
            identity=base.identity + extra,
            boundary=boundary_inputs[0] if boundary_inputs else base.boundary,
        )
        labels = self._labels(doc, principal.kind, account, entries) + _input_labels(extra)
        return self._simulate(ctx, req, principal, policies, labels)

    def _labels(
        self, owner: dict, kind: str, account: str, entries: list | None = None
    ) -> list[tuple[str, str, Policy]]:
        """(SourcePolicyId, SourcePolicyType, policy) of each identity policy, for MatchedStatements."""
        own = {"user": "user", "assumed-role": "role", "group": "group"}[kind]
        owner = _without(owner, entries or [])
        out = [(name, own, compile_policy(text)) for name, text in owner.get("inline", {}).items()]
        for arn in owner.get("attached", []):
            text = self.dir.policy_text(arn)
            if text:
                managed = "aws-managed" if arn.startswith("arn:aws:iam::aws:") else "user-managed"
                out.append((arn.rsplit("/", 1)[-1], managed, compile_policy(text)))
        if kind == "user":
            for g in owner.get("groups", []):
                group = self.dir.find("group", account, g)
                if group is not None:
                    out += self._labels(group, "group", account, entries)
        return out

    def simulate_custom_policy(self, ctx: RequestContext, req: dict) -> dict:
        identity = _compile_inputs(req.get("PolicyInputList"))
        boundary = _compile_inputs(req.get("PermissionsBoundaryPolicyInputList"))
        caller = req.get("CallerArn") or f"arn:aws:iam::{ctx.account_id}:user/SimulatedUser"
        account = caller.split(":")[4] if caller.count(":") >= 5 else ctx.account_id
        principal = Principal("", account, caller, "", "user", caller.rsplit("/", 1)[-1], "", False)
        policies = PolicySet(identity=identity, boundary=boundary[0] if boundary else None)
        return self._simulate(ctx, req, principal, policies, _input_labels(identity))

    def _simulate(
        self,
        ctx: RequestContext,
        req: dict,
        principal: Principal,
        policies: PolicySet,
        labels: list[tuple[str, str, Policy]],
    ) -> dict:
        actions = req.get("ActionNames") or []
        resources = req.get("ResourceArns") or ["*"]
        resource_policy = None
        if req.get("ResourcePolicy"):
            resource_policy = _compile_inputs([req["ResourcePolicy"]], "resource")[0]
            labels = labels + [("ResourcePolicy", "resource", resource_policy)]
        owner = req.get("ResourceOwner")
        owner_account = owner.split(":")[4] if owner and owner.count(":") >= 4 else None
        extra = _context(req.get("ContextEntries"))
        results = []
        for action in actions:
            for resource in resources:
                facts = Facts(principal, ctx.region, "", False, clock.time, extra)
                d = evaluate(principal, action, resource, facts, policies, resource_policy, owner_account)
                decision = (
                    "allowed"
                    if d.allowed
                    else "explicitDeny"
                    if "explicit deny" in d.reason
                    else "implicitDeny"
                )
                results.append(
                    {
                        "EvalActionName": action,
                        "EvalResourceName": resource,
                        "EvalDecision": decision,
                        "MatchedStatements": _matched(labels, decision, action, resource, facts, principal),
                        "MissingContextValues": [],
                    }
                )
        return page(results, req, "EvaluationResults")

    def get_account_authorization_details(self, ctx: RequestContext, req: dict) -> dict:
        wanted = set(req.get("Filter") or ["User", "Role", "Group", "LocalManagedPolicy", "AWSManagedPolicy"])
        acct = ctx.account_id
        out: dict[str, Any] = {"IsTruncated": False}
        attached: set[str] = set()

        def managed(doc: dict) -> list[dict]:
            attached.update(doc.get("attached", []))
            items = []
            for arn in doc.get("attached", []):
                p = self.dir.managed_policy(arn)
                if p is not None:
                    items.append({"PolicyName": p["PolicyName"], "PolicyArn": arn})
            return items

        users, groups, roles = (self.dir.listing(k, acct) for k in ("user", "group", "role"))
        if "User" in wanted:
            out["UserDetailList"] = [
                {
                    **self._render_user(u, True),
                    "UserPolicyList": inline_list(u),
                    "GroupList": list(u.get("groups", [])),
                    "AttachedManagedPolicies": managed(u),
                }
                for u in users
            ]
        if "Group" in wanted:
            out["GroupDetailList"] = [
                {
                    **self._render_group(g),
                    "GroupPolicyList": inline_list(g),
                    "AttachedManagedPolicies": managed(g),
                }
                for g in groups
            ]
        if "Role" in wanted:
            out["RoleDetailList"] = [
                {
                    **self._render_role(r),
                    "InstanceProfileList": [
                        self._render_profile(ip)  # type: ignore[attr-defined]
                        for ip in self.dir.listing("instance_profile", acct)
                        if r["RoleName"].lower() in (n.lower() for n in ip["roles"])
                    ],
                    "RolePolicyList": inline_list(r),
                    "AttachedManagedPolicies": managed(r),
                }
                for r in roles
            ]
        policies = []
        if "LocalManagedPolicy" in wanted:
            self.dir.load()
            policies += [p for p in self.dir.policies.values() if p["account"] == acct]
        if "AWSManagedPolicy" in wanted:
            for kind_docs in (users, groups, roles):
                for d in kind_docs:
                    attached.update(d.get("attached", []))
            policies += [
                self.dir.managed_policy(a) for a in sorted(attached) if a.startswith("arn:aws:iam::aws:")
            ]
        if policies or wanted & {"LocalManagedPolicy", "AWSManagedPolicy"}:
            out["Policies"] = [
                {
                    **self._render_policy(p, acct),
                    "PolicyVersionList": [
                        {
                            "Document": encoded(v["doc"]),
                            "VersionId": vid,
                            "IsDefaultVersion": vid == p["default"],
                            "CreateDate": when(v["created"]),
                        }
                        for vid, v in p["versions"].items()
                    ],
                }
                for p in policies
                if p is not None
            ]
        return out

    def get_account_summary(self, ctx: RequestContext, req: dict) -> dict:
        acct = ctx.account_id
        self.dir.load()
        return {
            "SummaryMap": {
                "Users": len(self.dir.listing("user", acct)),
                "Groups": len(self.dir.listing("group", acct)),
                "Roles": len(self.dir.listing("role", acct)),
                "Policies": sum(1 for p in self.dir.policies.values() if p["account"] == acct),
                "InstanceProfiles": len(self.dir.listing("instance_profile", acct)),
                "InstanceProfilesQuota": 1000,
                "UsersQuota": 5000,
                "GroupsQuota": 300,
                "RolesQuota": 1000,
                "PoliciesQuota": 1500,
                "AccessKeysPerUserQuota": 2,
                "PolicyVersionsInUseQuota": 10000,
                "AttachedPoliciesPerUserQuota": 10,
                "AttachedPoliciesPerGroupQuota": 10,
                "AttachedPoliciesPerRoleQuota": 10,
                "GroupsPerUserQuota": 10,
            }
        }
