"""KMS grant constraints: when a grant limited to an encryption context applies to a request.

AWS (GrantConstraints): EncryptionContextEquals allows the grant's operations only when the
request's encryption context is exactly the constraint's; EncryptionContextSubset when it
includes the constraint's pairs (others may be added). In a constraint the context key is not
case sensitive, the value is. Constraints apply to the operations that carry an encryption
context (the cryptographic operations of symmetric keys); not to DescribeKey or RetireGrant. A
constrained grant that allows CreateGrant lets its grantee create only grants at least as strict.
"""

from __future__ import annotations

from typing import Any

# The request member holding the encryption context a constraint is checked against, per
# operation (ReEncrypt: the source side; its destination side is checked with
# DestinationEncryptionContext).
CONTEXT_MEMBER = {
    "Encrypt": "EncryptionContext",
    "Decrypt": "EncryptionContext",
    "GenerateDataKey": "EncryptionContext",
    "GenerateDataKeyWithoutPlaintext": "EncryptionContext",
    "GenerateDataKeyPair": "EncryptionContext",
    "GenerateDataKeyPairWithoutPlaintext": "EncryptionContext",
    "ReEncrypt": "SourceEncryptionContext",
}
EQUALS = "EncryptionContextEquals"
SUBSET = "EncryptionContextSubset"


def normalized(constraints: dict | None) -> dict | None:
    """The constraints as stored: empty maps mean unspecified (None when nothing is left)."""
    out = {k: dict(v) for k, v in (constraints or {}).items() if k in (EQUALS, SUBSET) and v}
    return out or None


def _folded(pairs: Any) -> dict[str, str]:
    return {str(k).lower(): v for k, v in pairs.items()} if isinstance(pairs, dict) else {}


def _includes(context: dict[str, str], pairs: dict[str, str]) -> bool:
    return all(context.get(k) == v for k, v in pairs.items())


def context_matches(constraints: dict | None, context: Any) -> bool:
    """Does a request's encryption context satisfy a grant's constraints?"""
    if not constraints:
        return True
    have = _folded(context)
    equals = constraints.get(EQUALS)
    if equals is not None:
        want = _folded(equals)
        if len(have) != len(want) or not _includes(have, want):
            return False
    subset = constraints.get(SUBSET)
    return subset is None or _includes(have, _folded(subset))


def at_least_as_strict(requested: dict | None, constraints: dict | None) -> bool:
    """May a grant with `constraints` (and CreateGrant) create a grant with `requested` ones?"""
    if not constraints:
        return True
    if not requested:
        return False
    equals = constraints.get(EQUALS)
    asked_equals = requested.get(EQUALS)
    if equals is not None:
        if asked_equals is None:
            return False
        if _folded(asked_equals) != _folded(equals):
            return False
    subset = constraints.get(SUBSET)
    if subset is not None:
        want = _folded(subset)
        if asked_equals is not None and _includes(_folded(asked_equals), want):
            return True
        asked_subset = requested.get(SUBSET)
        return asked_subset is not None and _includes(_folded(asked_subset), want)
    return True


def grant_applies(grant: dict, operation: str, req: dict, context_member: str | None = None) -> bool:
    """Does `grant` count for this request (its constraints hold, or do not apply)?"""
    constraints = grant.get("constraints")
    if not constraints:
        return True
    if operation == "CreateGrant":
        return at_least_as_strict(normalized(req.get("Constraints")), constraints)
    member = context_member or CONTEXT_MEMBER.get(operation)
    if member is None:
        return True  # DescribeKey, RetireGrant...: the constraint does not apply
    return context_matches(constraints, req.get(member))
