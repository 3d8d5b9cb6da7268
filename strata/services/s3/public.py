"""AWS's definition of a public bucket policy (Block Public Access, GetBucketPolicyStatus).

S3 considers a policy public when one of its Allow statements grants to a wildcard principal
(`"*"`, `{"AWS": "*"}`, an ARN with a wildcard, or NotPrincipal) and is not limited by a
condition that pins the caller to a fixed set: `aws:SourceIp` within given CIDRs (not
0.0.0.0/0 or ::/0), or a fixed value (no wildcard) of aws:SourceArn, aws:SourceVpc,
aws:SourceVpce, aws:SourceOwner, aws:SourceAccount, aws:PrincipalAccount, aws:PrincipalArn,
aws:PrincipalOrgID, aws:userid, s3:DataAccessPointArn, s3:DataAccessPointAccount or
s3:x-amz-server-side-encryption-aws-kms-key-id.
Deny statements never make a policy public.
"""

from __future__ import annotations

from strata.auth.conditions import Condition
from strata.auth.policy import Policy, Statement

_FIXED_KEYS = frozenset(
    [
        "aws:sourcearn",
        "aws:sourcevpc",
        "aws:sourcevpce",
        "aws:sourceowner",
        "aws:sourceaccount",
        "aws:principalaccount",
        "aws:principalarn",
        "aws:principalorgid",
        "aws:userid",
        "s3:x-amz-server-side-encryption-aws-kms-key-id",
        "s3:dataaccesspointarn",
        "s3:dataaccesspointaccount",
    ]
)
_FIXING_OPERATORS = frozenset(
    ["StringEquals", "StringEqualsIgnoreCase", "StringLike", "ArnEquals", "ArnLike"]
)


def _wildcard(value: object) -> bool:
    return isinstance(value, str) and ("*" in value or "?" in value)


def _restricts(c: Condition) -> bool:
    """Whether one condition pins the statement to a fixed, non-public set of callers."""
    if c.negated or c.if_exists or c.qualifier or c.null:
        return False
    name = c.operator.rpartition(":")[2]
    if c.key == "aws:sourceip":
        return name == "IpAddress" and all(n is not None and n.prefixlen > 0 for n in c.values)
    if c.key in _FIXED_KEYS and name in _FIXING_OPERATORS:
        return all(isinstance(v, str) and not _wildcard(v) for v in c.values)
    return False


def _public_principal(s: Statement) -> bool:
    spec = s.principal
    if spec is None:
        return False
    if s.not_principal or spec.any:
        return True
    return any(_wildcard(a) for a in spec.aws)


def is_public_statement(s: Statement) -> bool:
    return s.allow and _public_principal(s) and not any(_restricts(c) for c in s.conditions)


def is_public_policy(policy: Policy) -> bool:
    return any(is_public_statement(s) for s in policy.statements)
