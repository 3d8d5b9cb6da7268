"""S3 browser POST uploads (`generate_presigned_post`): the signed policy and its conditions.

The form carries a base64 JSON policy and a signature over that base64 text: SigV4 (with the
signing key of the credential scope in `x-amz-credential`) or, as boto3 produces by default,
SigV2 (`AWSAccessKeyId` + `signature`, HMAC-SHA1 with the secret). The policy says when it expires and
what the form may contain: exact matches (`{"acl": "private"}`, `["eq", "$key", "a.txt"]`),
prefixes (`["starts-with", "$key", "uploads/"]`) and a size range
(`["content-length-range", 1, 1048576]`). Every form field except the policy, the signature, the
file, the SigV2 `AWSAccessKeyId`/`signature` and `x-ignore-*` fields must be named by a condition.

The S3 provider calls `verify_post_policy` with the form fields as submitted (names are matched
case-insensitively, `${filename}` not yet substituted), the bucket and the file's size.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from strata.auth.canonical import ALGORITHM, signatures_match
from strata.auth.credentials import CredentialStore, hmac_hex
from strata.auth.principal import Principal
from strata.auth.sigv2 import policy_signature_v2
from strata.config import Settings
from strata.protocol.errors import ServiceError
from strata.sim.clock import Clock
from strata.sim.clock import clock as default_clock

# Fields never checked against conditions (AWS's list), besides x-ignore-* ones.
_EXEMPT = frozenset({"policy", "x-amz-signature", "file", "awsaccesskeyid", "signature"})
_stores: dict[int, CredentialStore] = {}


def _policy_error(message: str) -> ServiceError:
    return ServiceError("AccessDenied", f"Invalid according to Policy: {message}", 403)


def _invalid_policy(message: str) -> ServiceError:
    return ServiceError("InvalidPolicyDocument", f"Invalid Policy: {message}", 400)


def _store(settings: Settings) -> CredentialStore:
    """One credential store (and signing-key cache) per settings object."""
    store = _stores.get(id(settings))
    if store is None or store.settings is not settings:
        store = _stores[id(settings)] = CredentialStore(settings)
    return store


def _condition_text(condition: list[Any]) -> str:
    return "[" + ", ".join(json.dumps(part) for part in condition) + "]"


def verify_post_policy(
    fields: dict[str, str],
    bucket: str,
    content_length: int | None,
    settings: Settings,
    clock: Clock | None = None,
) -> Principal:
    """Check a POST upload's policy signature, expiry and conditions; the signer, or ServiceError.
    `content_length` None: before the file has arrived (its content-length-range is not checked)."""
    form = {k.lower(): v for k, v in fields.items()}
    store = _store(settings)
    policy_b64 = form.get("policy")
    if not policy_b64:
        raise ServiceError("AccessDenied", "Access Denied", 403)
    if "x-amz-signature" not in form and "signature" in form:
        principal = _verify_v2(form, store)
    else:
        principal = _verify_v4(form, store, policy_b64)
    policy = _decode_policy(policy_b64)
    _check_expiration(policy, (clock or default_clock).time())
    _check_conditions(policy["conditions"], form, bucket, content_length)
    return principal


def _mismatch(access_key: str, policy_b64: str, provided: str) -> ServiceError:
    return ServiceError(
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.",
        403,
        fields={"AWSAccessKeyId": access_key, "StringToSign": policy_b64, "SignatureProvided": provided},
    )


def _verify_v2(form: dict[str, str], store: CredentialStore) -> Principal:
    """SigV2 POST (boto3's default for generate_presigned_post): AWSAccessKeyId + signature."""
    access_key = form.get("awsaccesskeyid", "")
    if not access_key:
        raise ServiceError(
            "InvalidArgument",
            "Bucket POST must contain a field named 'AWSAccessKeyId'.  If it is specified, please check the order of the fields.",
            400,
            fields={"ArgumentName": "AWSAccessKeyId", "ArgumentValue": ""},
        )
    secret, principal = store.resolve_s3(access_key, form.get("x-amz-security-token"))
    if not signatures_match(policy_signature_v2(secret, form["policy"]), form["signature"]):
        raise _mismatch(access_key, form["policy"], form["signature"])
    return principal


def _verify_v4(form: dict[str, str], store: CredentialStore, policy_b64: str) -> Principal:
    for name in ("x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-signature"):
        if not form.get(name):
            raise ServiceError(
                "InvalidArgument",
                f"Bucket POST must contain a field named '{name}'.  If it is specified, please check the order of the fields.",
                400,
                fields={"ArgumentName": name, "ArgumentValue": ""},
            )
    if form["x-amz-algorithm"] != ALGORITHM:
        raise ServiceError(
            "InvalidArgument",
            'X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"',
            400,
            fields={"ArgumentName": "x-amz-algorithm", "ArgumentValue": form["x-amz-algorithm"]},
        )
    parts = form["x-amz-credential"].split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or parts[3] != "s3":
        raise ServiceError(
            "InvalidArgument",
            'Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".',
            400,
            fields={"ArgumentName": "x-amz-credential", "ArgumentValue": form["x-amz-credential"]},
        )
    access_key, date, region = parts[0], parts[1], parts[2]
    secret, principal = store.resolve_s3(access_key, form.get("x-amz-security-token"))
    expected = hmac_hex(store.signing_key(secret, date, region, "s3"), policy_b64)
    if not signatures_match(expected, form["x-amz-signature"]):
        raise _mismatch(access_key, policy_b64, form["x-amz-signature"])
    return principal


def _decode_policy(policy_b64: str) -> dict[str, Any]:
    try:
        policy = json.loads(base64.b64decode(policy_b64, validate=True))
    except (binascii.Error, ValueError):
        raise _invalid_policy("Invalid JSON.") from None
    if not isinstance(policy, dict):
        raise _invalid_policy("Invalid JSON.")
    if "expiration" not in policy:
        raise _invalid_policy("Policy missing expiration.")
    conditions = policy.get("conditions")
    if not isinstance(conditions, list):
        raise _invalid_policy("Policy missing conditions.")
    return policy


def _check_expiration(policy: dict[str, Any], now: float) -> None:
    try:
        expiration = datetime.fromisoformat(str(policy["expiration"]))
    except ValueError:
        raise _invalid_policy("Invalid 'expiration' value: '" + str(policy["expiration"]) + "'") from None
    if expiration.tzinfo is None:
        raise _invalid_policy("Invalid 'expiration' value: '" + str(policy["expiration"]) + "'")
    if now > expiration.timestamp():
        raise _policy_error("Policy expired.")


def _check_conditions(
    conditions: list[Any], form: dict[str, str], bucket: str, content_length: int | None
) -> None:
    values = dict(form)
    values["bucket"] = bucket
    covered: set[str] = {"bucket"}
    for condition in conditions:
        if isinstance(condition, dict):
            for name, expected in condition.items():
                name = name.lower()
                covered.add(name)
                if values.get(name, "") != str(expected):
                    raise _policy_error(
                        f"Policy Condition failed: {_condition_text(['eq', '$' + name, expected])}"
                    )
            continue
        if not isinstance(condition, list) or not condition:
            raise _invalid_policy("Invalid Condition: " + json.dumps(condition))
        op = str(condition[0]).lower()
        if op == "content-length-range":
            if content_length is not None:
                _check_length(condition, content_length)
            continue
        if len(condition) != 3 or not isinstance(condition[1], str) or not condition[1].startswith("$"):
            raise _invalid_policy("Invalid Condition: " + json.dumps(condition))
        name = condition[1][1:].lower()
        covered.add(name)
        actual, expected = values.get(name, ""), str(condition[2])
        if op == "eq":
            ok = actual == expected
        elif op == "starts-with":
            # Content-Type may list several types; each must carry the prefix.
            candidates = actual.split(",") if name == "content-type" else [actual]
            ok = all(c.strip().startswith(expected) for c in candidates)
        else:
            raise _invalid_policy("Invalid Condition: " + json.dumps(condition))
        if not ok:
            raise _policy_error(f"Policy Condition failed: {_condition_text(condition)}")
    extra = sorted(
        name
        for name in form
        if name not in covered and name not in _EXEMPT and not name.startswith("x-ignore-")
    )
    if extra:
        raise _policy_error("Extra input fields: " + ", ".join(extra))


def _check_length(condition: list[Any], content_length: int) -> None:
    try:
        low, high = int(condition[1]), int(condition[2])
    except (IndexError, TypeError, ValueError):
        raise _invalid_policy("Invalid content-length-range: " + json.dumps(condition)) from None
    if content_length < low:
        raise ServiceError(
            "EntityTooSmall",
            "Your proposed upload is smaller than the minimum allowed size",
            400,
            fields={"ProposedSize": str(content_length), "MinSizeAllowed": str(low)},
        )
    if content_length > high:
        raise ServiceError(
            "EntityTooLarge",
            "Your proposed upload exceeds the maximum allowed size",
            400,
            fields={"ProposedSize": str(content_length), "MaxSizeAllowed": str(high)},
        )
