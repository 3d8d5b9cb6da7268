"""STS: who is calling, and temporary credentials.

AssumeRole checks the role's trust policy with the same evaluator as every request (the trust
policy is the role's resource policy: `resource_policy`/`resource_account` hooks, so a caller in
another account needs both its own identity policy and the trust policy), then mints an ASIA… key
whose session token carries the session (strata.auth.sessions). Sessions expire on the simulated
clock; session policies (Policy, PolicyArns) intersect with the role's own.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from strata.auth import sessions
from strata.auth.conditions import PolicyError
from strata.auth.directory import directory_for
from strata.auth.evaluator import Facts, PolicySet, evaluate
from strata.auth.policy import Policy, compile_policy
from strata.auth.principal import Principal
from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.base import ServiceRuntime
from strata.services.parameters import refusing
from strata.sim.clock import clock

_SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$")
_ROLE_ARN = re.compile(r"^arn:aws:iam::(\d{12}):role(/.*)?/([\w+=,.@-]+)$")
MAX_SESSION_POLICY = 2048
CHAINED_MAX = 3600


def _validation(message: str) -> ServiceError:
    return ServiceError("ValidationError", message, 400)


def _denied(principal: Principal, action: str, resource: str) -> ServiceError:
    return ServiceError(
        "AccessDenied",
        f"User: {principal.arn} is not authorized to perform: {action} on resource: {resource}",
        403,
    )


@refusing("sts")
class STSProvider:
    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        self.dir = directory_for(runtime.settings)

    # ---- authorization hooks: the trust policy is the role's resource policy

    def _role(self, arn: Any) -> dict | None:
        m = _ROLE_ARN.match(arn) if isinstance(arn, str) else None
        return self.dir.find("role", m.group(1), m.group(3)) if m else None

    def resource_account(self, req: dict) -> str | None:
        role = self._role(req.get("RoleArn"))
        return role["account"] if role else None

    def resource_policy(self, req: dict) -> Policy | None:
        role = self._role(req.get("RoleArn"))
        return compile_policy(role["trust"], "trust") if role else None

    # ---- operations

    def get_caller_identity(self, ctx: RequestContext, req: dict) -> dict:
        principal = self._caller(ctx)
        return {"UserId": principal.user_id, "Account": principal.account_id, "Arn": principal.arn}

    def get_access_key_info(self, ctx: RequestContext, req: dict) -> dict:
        key = req.get("AccessKeyId") or ""
        root = self.dir.roots.get(key)
        if root is not None:
            return {"Account": root[1]}
        self.dir.load()
        stored = self.dir.keys.get(key)
        if stored is not None:
            return {"Account": stored["account"]}
        issued = self.dir.session_accounts.get(key)
        return {"Account": issued or ctx.account_id}

    def assume_role(self, ctx: RequestContext, req: dict) -> dict:
        caller = self._caller(ctx)
        if caller.kind == "root" and not (
            caller.session is None and caller.access_key in self.dir.operator_keys
        ):
            # AWS: root credentials (and their GetSessionToken sessions) cannot assume roles. The
            # server's own keys (the loopback test key) keep the LocalStack-style convenience.
            raise ServiceError("AccessDenied", "Roles may not be assumed by root accounts.", 403)
        arn = req.get("RoleArn") or ""
        session_name = req.get("RoleSessionName") or ""
        if not _SESSION_NAME.match(session_name):
            raise _validation(
                f"1 validation error detected: Value '{session_name}' at 'roleSessionName' failed to satisfy constraint: "
                "Member must satisfy regular expression pattern: [\\w+=,.@-]*"
            )
        if not _ROLE_ARN.match(arn):
            raise _validation(f"{arn} is invalid")
        role = self._role(arn)
        if role is None:
            raise _denied(caller, "sts:AssumeRole", arn)
        # The gateway evaluated the caller's side (and, across accounts, both sides); the trust
        # policy must allow in every case.
        trust = compile_policy(role["trust"], "trust")
        facts = Facts(caller, ctx.region, ctx.http.client, ctx.http.secure, clock.time, _sts_keys(req))
        trust_only = evaluate(
            caller, "sts:AssumeRole", role["Arn"], facts, PolicySet(unrestricted=True), trust, "-"
        )
        if not trust_only.allowed:
            raise _denied(caller, "sts:AssumeRole", arn)
        _refuse_mfa(req)
        tags, transitive = self._session_tags(caller, role, req)
        if req.get("Tags"):
            # Passing session tags is its own permission in the trust policy.
            tag_facts = Facts(
                caller, ctx.region, ctx.http.client, ctx.http.secure, clock.time, _tag_keys(req)
            )
            tagging = evaluate(
                caller, "sts:TagSession", role["Arn"], tag_facts, PolicySet(unrestricted=True), trust, "-"
            )
            if not tagging.allowed:
                raise _denied(caller, "sts:TagSession", arn)
        duration = req.get("DurationSeconds") or 3600
        if duration < 900:
            raise _validation(
                f"1 validation error detected: Value '{duration}' at 'durationSeconds' failed to satisfy constraint: "
                "Member must have value greater than or equal to 900"
            )
        if caller.kind == "assumed-role" and duration > CHAINED_MAX:
            raise _validation(
                "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining."
            )
        if duration > role["MaxSessionDuration"]:
            raise _validation(
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
            )
        texts, arns = self._session_policies(req)
        role_name = role["RoleName"]
        facts_out = {
            "acct": role["account"],
            "arn": f"arn:aws:sts::{role['account']}:assumed-role/{role_name}/{session_name}",
            "uid": f"{role['RoleId']}:{session_name}",
            "kind": "assumed-role",
            "name": session_name,
            "role": role["Arn"],
            "pol": texts,
            "parns": arns,
            "src": caller.arn,
            "tags": tags,
            "ttk": transitive,
        }
        if req.get("SourceIdentity"):
            facts_out["source_identity"] = req["SourceIdentity"]
        creds = self._mint(facts_out, duration)
        out: dict[str, Any] = {
            "Credentials": creds,
            "AssumedRoleUser": {"AssumedRoleId": facts_out["uid"], "Arn": facts_out["arn"]},
        }
        if texts or arns:
            out["PackedPolicySize"] = min(
                100, (sum(len(t) for t in texts) + 100 * len(arns)) * 100 // MAX_SESSION_POLICY
            )
        if req.get("SourceIdentity"):
            out["SourceIdentity"] = req["SourceIdentity"]
        return out

    def get_session_token(self, ctx: RequestContext, req: dict) -> dict:
        caller = self._caller(ctx)
        if caller.session is not None:
            raise ServiceError("AccessDenied", "Cannot call GetSessionToken with session credentials", 403)
        limit = 3600 if caller.kind == "root" else 129600
        duration = req.get("DurationSeconds") or (3600 if caller.kind == "root" else 43200)
        if not 900 <= duration <= 129600:
            raise _validation(
                f"1 validation error detected: Value '{duration}' at 'durationSeconds' failed to satisfy constraint: "
                "Member must have value "
                + ("greater than or equal to 900" if duration < 900 else "less than or equal to 129600")
            )
        duration = min(duration, limit)
        _refuse_mfa(req)
        facts_out = {
            "acct": caller.account_id,
            "arn": caller.arn,
            "uid": caller.user_id,
            "kind": caller.kind,
            "name": caller.name,
            "gst": True,
            "tags": caller.tags,
        }
        return {"Credentials": self._mint(facts_out, duration)}

    # ---- helpers

    @staticmethod
    def _caller(ctx: RequestContext) -> Principal:
        if ctx.principal is None:
            raise ServiceError("MissingAuthenticationToken", "Request is missing Authentication Token", 403)
        return ctx.principal

    def _session_policies(self, req: dict) -> tuple[list[str], list[str]]:
        texts: list[str] = []
        policy = req.get("Policy")
        if policy is not None:
            if len(policy) > MAX_SESSION_POLICY:
                raise ServiceError(
                    "PackedPolicyTooLarge",
                    "Packed policy consumes more than 100% of the allotted space.",
                    400,
                )
            try:
                compile_policy(policy, "identity")
            except PolicyError as e:
                raise ServiceError("MalformedPolicyDocument", str(e), 400) from None
            texts.append(policy)
        arns = []
        for entry in req.get("PolicyArns") or []:
            arn = entry.get("arn") or ""
            if self.dir.managed_policy(arn) is None:
                raise _validation(f"The policy {arn} does not exist or is not attachable.")
            arns.append(arn)
        if len(arns) > 10:
            raise _validation(
                "1 validation error detected: Value at 'policyArns' failed to satisfy constraint: Member must have length less than or equal to 10"
            )
        return texts, arns

    @staticmethod
    def _session_tags(caller: Principal, role: dict, req: dict) -> tuple[dict[str, str], list[str]]:
        """The session's principal tags: the role's, then tags passed on transitively by a
        chaining session, then the request's (AWS's order); and the transitive keys."""
        given = req.get("Tags") or []
        if len(given) > 50:
            raise _validation(
                "1 validation error detected: Value at 'tags' failed to satisfy constraint: "
                "Member must have length less than or equal to 50"
            )
        tags = {t["Key"]: t["Value"] for t in role.get("Tags") or []}
        inherited = [k for k in (caller.session or {}).get("ttk") or [] if k in caller.tags]
        for k in inherited:
            tags[k] = caller.tags[k]
        lowered = {k.lower() for k in inherited}
        for t in given:
            key, value = t.get("Key"), t.get("Value")
            if (
                not isinstance(key, str)
                or not 1 <= len(key) <= 128
                or not isinstance(value, str)
                or len(value) > 256
            ):
                raise _validation("Tag keys must be 1 to 128 characters and values at most 256.")
            if key.lower() in lowered:
                raise ServiceError(
                    "InvalidParameterValue",
                    f"Tag key {key} is transitive and cannot be overridden in a chained session.",
                    400,
                )
            tags[key] = value
        transitive = list(inherited)
        names = {t.get("Key") for t in given}
        for key in req.get("TransitiveTagKeys") or []:
            if key not in names:
                raise _validation(f"The transitive tag key {key} is not among the session tags.")
            transitive.append(key)
        return tags, transitive

    def _mint(self, facts: dict[str, Any], duration: int) -> dict:
        now = clock.time()
        access_key = sessions.new_session_key_id()
        facts = {**facts, "ak": access_key, "issued": now, "exp": now + duration}
        token = sessions.mint_token(self.dir.server_key, facts)
        self.dir.session_accounts[access_key] = facts["acct"]
        return {
            "AccessKeyId": access_key,
            "SecretAccessKey": sessions.session_secret(self.dir.server_key, access_key),
            "SessionToken": token,
            "Expiration": datetime.fromtimestamp(now + duration, UTC),
        }


def _refuse_mfa(req: dict) -> None:
    """Strata has no MFA devices: a code cannot be checked, so it is refused as AWS refuses a bad one."""
    if req.get("SerialNumber") or req.get("TokenCode"):
        raise ServiceError(
            "AccessDenied", "MultiFactorAuthentication failed, unable to validate MFA code.", 403
        )


def _tag_keys(req: dict) -> dict[str, Any]:
    tags = {t["Key"]: t["Value"] for t in req.get("Tags") or [] if isinstance(t, dict) and "Key" in t}
    out: dict[str, Any] = {f"aws:requesttag/{k.lower()}": v for k, v in tags.items()}
    out["aws:tagkeys"] = list(tags)
    return {**out, **_sts_keys(req)}


def _sts_keys(req: dict) -> dict[str, Any]:
    keys = {
        "sts:rolesessionname": req.get("RoleSessionName"),
        "sts:externalid": req.get("ExternalId"),
        "sts:sourceidentity": req.get("SourceIdentity"),
    }
    return {k: v for k, v in keys.items() if v is not None}
