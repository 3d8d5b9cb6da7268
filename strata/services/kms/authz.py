"""What the policy engine needs from KMS: the key a request names, and that key's policy.

A KMS key's policy is required on every request that names a key (actions.json marks KMS
`resource_policy_required`): an IAM policy counts only where the key policy delegates to the
account (its default statement names `arn:aws:iam::<account>:root`). Grants are permissions on
one key too, so each grant joins the key policy as an Allow statement for its grantee and
operations, when its constraints hold for the request (`grant_constraints`). The compiled policy
is cached by its text, which changes whenever the key policy or the grants that apply do.

ReEncrypt acts on two keys: kms:ReEncryptFrom on the source key (the key the request names first)
and kms:ReEncryptTo on the destination key (`further_resources`), each under its own key policy.

KMS's condition keys that are request members are data (actions.json); `condition_key` answers
the rest: the encryption context (kms:EncryptionContext:<key>, whose key part is matched without
case like every condition key name, and kms:EncryptionContextKeys, for the case-sensitive
check), the caller's account, the alias a request named, and the named key's own attributes
(kms:KeySpec, kms:KeyUsage, kms:KeyOrigin, kms:MultiRegion, kms:ResourceAliases) — from the
request on CreateKey, which has no key yet.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from strata.auth.enforce import CALLER_OPERATION, CALLER_SCOPE
from strata.auth.policy import Policy, PolicyError, compile_policy
from strata.protocol.errors import ServiceError
from strata.services.kms import material
from strata.services.kms.grant_constraints import grant_applies
from strata.services.kms.keys import Where, key_arn
from strata.services.kms.specs import VIA_SERVICE

if TYPE_CHECKING:
    from strata.services.kms.keys import KeyRing


# condition key -> the key record's field (or a computed attribute, see condition_key)
_KEY_ATTRIBUTES = {
    "kms:keyspec": "spec",
    "kms:keyusage": "usage",
    "kms:keyorigin": "origin",
    "kms:multiregion": "multi_region",
    "kms:resourcealiases": "aliases",
}
# On CreateKey these come from the request, with CreateKey's defaults when absent.
_CREATE_KEY_MEMBERS = {
    "kms:keyusage": ("KeyUsage", "ENCRYPT_DECRYPT"),
    "kms:keyorigin": ("Origin", "AWS_KMS"),
    "kms:multiregion": ("MultiRegion", False),
}


def _context_of(req: dict) -> dict | None:
    """The encryption context a request carries (ReEncrypt: its source's, which the key it
    names first is checked with)."""
    for member in ("EncryptionContext", "SourceEncryptionContext", "DestinationEncryptionContext"):
        context = req.get(member)
        if isinstance(context, dict) and context:
            return context
    return None


@lru_cache(maxsize=1024)
def _compiled(text: str) -> Policy | None:
    try:
        return compile_policy(text, "resource")
    except PolicyError:
        return None


class KeyPolicyHooks:
    """Mixed into KMSProvider, which supplies `keys` and `runtime`."""

    keys: KeyRing

    # The authorizer asks its hooks one after another for the same request (ARN, owner, policy):
    # the key is resolved once for all of them.
    _last_named: tuple[dict | None, dict | None] = (None, None)

    def _named_key(self, req: dict) -> dict | None:
        """The key a request acts on, as the provider will resolve it; None if there is none."""
        last_req, last_doc = self._last_named
        if last_req is req:
            return last_doc
        doc = self._resolve_named(req)
        self._last_named = (req, doc)
        return doc

    def _resolve_named(self, req: dict) -> dict | None:
        where = Where(*CALLER_SCOPE.get())
        ref = req.get("KeyId") or req.get("SourceKeyId") or req.get("TargetKeyId")
        try:
            if isinstance(ref, str):
                return self.keys.resolve(where, ref)
            blob = req.get("CiphertextBlob")
            if isinstance(blob, bytes):
                key_id, _ = material.blob_key(blob)
                return self.keys.get(key_id)
        except (ServiceError, material.CiphertextError):  # the operation answers NotFound itself
            return None
        return None

    def resource_arn(self, req: dict, arn: str) -> str | None:
        doc = self._named_key(req)
        return key_arn(doc["region"], doc["account"], doc["id"]) if doc else None

    def resource_account(self, req: dict) -> str | None:
        doc = self._named_key(req)
        return doc["account"] if doc else None

    def resource_policy(self, req: dict) -> Policy | None:
        doc = self._named_key(req)
        if doc is None:
            return None
        return self._key_policy(doc, CALLER_OPERATION.get(), req)

    def condition_key(self, req: dict, key: str) -> Any:
        """A KMS condition key the request members alone do not answer (None: absent)."""
        if key.startswith("kms:encryptioncontext"):
            context = _context_of(req)
            if key == "kms:encryptioncontextkeys":
                return list(context) if context else None
            if key.startswith("kms:encryptioncontext:"):
                want = key.removeprefix("kms:encryptioncontext:")
                for name, value in (context or {}).items():
                    if name.lower() == want:
                        return value
            return None
        if key == "kms:calleraccount":
            return CALLER_SCOPE.get()[0] or None
        if key == "kms:viaservice":  # set by a Strata service calling KMS for its caller (S3's SSE)
            return req.get(VIA_SERVICE)
        if key == "kms:requestalias":
            ref = req.get("KeyId")
            if isinstance(ref, str) and (ref.startswith("alias/") or ":alias/" in ref):
                return "alias/" + ref.split("alias/", 1)[1]
            return None
        if key == "kms:grantisforawsresource":
            return False  # no AWS service creates grants here
        attribute = _KEY_ATTRIBUTES.get(key)
        if attribute is None:
            return None
        if CALLER_OPERATION.get() == "CreateKey":
            if key == "kms:keyspec":
                return req.get("KeySpec") or req.get("CustomerMasterKeySpec") or "SYMMETRIC_DEFAULT"
            member, default = _CREATE_KEY_MEMBERS.get(key, ("", None))
            return req.get(member, default) if member else None
        doc = self._named_key(req)
        if doc is None:
            return None
        if key == "kms:resourcealiases":
            where = Where(doc["account"], doc["region"])
            return [a["name"] for a in self.keys.aliases(where) if a["target"] == doc["id"]] or None
        if key == "kms:multiregion":
            return bool(doc.get("multi_region", False))
        if key == "kms:keyorigin":
            return doc.get("origin", "AWS_KMS")
        return doc.get(attribute)

    def further_resources(self, req: dict) -> list[tuple[str, str, str, Policy | None]]:
        """ReEncrypt's destination key: kms:ReEncryptTo under that key's own policy."""
        if CALLER_OPERATION.get() != "ReEncrypt" or not isinstance(req.get("DestinationKeyId"), str):
            return []
        try:
            doc = self.keys.resolve(Where(*CALLER_SCOPE.get()), req["DestinationKeyId"])
        except ServiceError:  # the operation answers NotFound itself
            return []
        policy = self._key_policy(doc, "ReEncrypt", req, "DestinationEncryptionContext")
        return [
            ("kms:ReEncryptTo", key_arn(doc["region"], doc["account"], doc["id"]), doc["account"], policy)
        ]

    def _key_policy(
        self, doc: dict, operation: str, req: dict, context_member: str | None = None
    ) -> Policy | None:
        """The key's policy with the grants that apply to this request as Allow statements."""
        statements = json.loads(doc["policy"]).get("Statement", [])
        if isinstance(statements, dict):
            statements = [statements]
        for grant in self.keys.grants(doc["id"]):
            if not grant_applies(grant, operation, req, context_member):
                continue
            statements.append(
                {
                    "Sid": f"grant-{grant['id'][:16]}",
                    "Effect": "Allow",
                    "Principal": {"AWS": grant["grantee"]},
                    "Action": [f"kms:{op}" for op in grant["operations"]],
                    "Resource": "*",
                }
            )
        text = json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)
        return _compiled(text)
