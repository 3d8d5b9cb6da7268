"""KMS: keys with real cryptography, aliases, grants, key policies, rotation and deletion on the clock.

Contents:
- this module: the provider, input checks shared by every operation, and key management
  (CreateKey, DescribeKey, ListKeys, Enable/DisableKey, key deletion, rotation, policies, tags,
  descriptions);
- `crypto_ops`: Encrypt, Decrypt, ReEncrypt, data keys and pairs, Sign/Verify, MACs, random;
- `aliases_grants`: aliases and grants;
- `keys`: the records, key-id resolution, deletion and rotation as the clock moves;
- `material`: the cryptography; `specs`: key specs, algorithms and limits as data;
- `imports`: imported key material (Origin EXTERNAL): wrapping keys, import, expiry, deletion.

Custom key stores, Multi-Region keys, key agreement and Nitro Enclave recipients are refused with
AWS's errors; their operations answer 501.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import botocore.session

from strata.auth.directory import directory_for
from strata.auth.evaluator import Facts, evaluate
from strata.auth.policy import PolicyError, compile_policy
from strata.context import RequestContext
from strata.protocol.constraints import validation_errors, validation_message
from strata.protocol.errors import ServiceError
from strata.services.base import ServiceRuntime, run_blocking
from strata.services.kms import material, specs, usage
from strata.services.kms.aliases_grants import AliasesGrantsOperations
from strata.services.kms.authz import KeyPolicyHooks
from strata.services.kms.crypto_ops import CryptoOperations
from strata.services.kms.imports import ImportOperations
from strata.services.kms.keys import DAY, KeyRing, Where, iso, key_arn, parse_grant_token
from strata.services.kms.material import RootKey
from strata.services.parameters import refusing
from strata.sim.clock import clock
from strata.sim.meter import meter
from strata.sim.scheduler import scheduler
from strata.storage.shared import is_shared, open_store

log = logging.getLogger("strata.kms")


def error(code: str, message: str) -> ServiceError:
    return ServiceError(code, message, 400)


def validation(message: str) -> ServiceError:
    return error("ValidationException", message)


def arn_of(doc: dict) -> str:
    return key_arn(doc["region"], doc["account"], doc["id"])


@refusing("kms")
class KMSProvider(CryptoOperations, AliasesGrantsOperations, ImportOperations, KeyPolicyHooks):
    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        data = runtime.data_dir
        settings = runtime.settings
        self.store = open_store(data / "kms.db", "kms", url=settings.metadata, fsync=settings.fsync)
        # With several gateways (--metadata) every one unseals the same keys: the root key lives
        # with the shared bytes (--blob-dir), unless STRATA_KMS_ROOT_KEY gives it.
        shared_dir = settings.blob_dir or settings.data_dir if settings.metadata else None
        self.keys = KeyRing(
            self.store, RootKey.load(shared_dir / "kms" / "root.key" if shared_dir else data / "root.key")
        )
        self._model = botocore.session.get_session().get_service_model("kms")
        self.directory = directory_for(runtime.settings)

    def health(self) -> dict:
        return {"state": "running"}

    async def start(self) -> None:
        scheduler.register("kms.keys", usage.rule(self.keys), every=3600.0, shared=is_shared(self.store))

    async def stop(self) -> None:
        scheduler.unregister("kms.keys")

    # -- shared by every operation -------------------------------------------------------------------

    def _check(self, ctx: RequestContext, req: dict) -> Where:
        """Model constraints, grant tokens and DryRun: what AWS checks before an operation runs."""
        errors = validation_errors(self._model.operation_model(ctx.operation).input_shape, req)
        if errors:
            raise validation(validation_message(errors))
        for token in req.get("GrantTokens") or ():
            if parse_grant_token(token) is None:
                raise error("InvalidGrantTokenException", "Grant token is not valid")
        if req.get("Recipient") is not None:
            raise error(
                "UnsupportedOperationException",
                "Recipient (attested Nitro Enclaves requests) is not supported by Strata",
            )
        return Where(ctx.account_id, ctx.region)

    @staticmethod
    def _dry_run(req: dict) -> None:
        """Called once every check passed: a DryRun request stops here, as AWS's does."""
        if req.get("DryRun"):
            raise error(
                "DryRunOperationException", "The request would have succeeded, but the DryRun option is set."
            )

    @staticmethod
    def _usable(doc: dict) -> None:
        """A key must be Enabled to be used in a cryptographic operation."""
        state = doc["state"]
        if state == "Disabled":
            raise error("DisabledException", f"{arn_of(doc)} is disabled.")
        if state == "PendingDeletion":
            raise error("KMSInvalidStateException", f"{arn_of(doc)} is pending deletion.")
        if state != "Enabled":
            raise error("KMSInvalidStateException", f"{arn_of(doc)} is {state}.")

    @staticmethod
    def _meter_request(ctx: RequestContext, doc: dict | None) -> None:
        meter.record(
            "kms", "Requests", 1, "request", operation=ctx.operation, spec=doc["spec"] if doc else ""
        )

    def _metadata(self, doc: dict) -> dict:
        spec = specs.SPECS[doc["spec"]]
        algorithms = spec.usages[doc["usage"]]
        out: dict[str, Any] = {
            "AWSAccountId": doc["account"],
            "KeyId": doc["id"],
            "Arn": arn_of(doc),
            "CreationDate": iso(doc["created"]),
            "Enabled": doc["state"] == "Enabled",
            "Description": doc["description"],
            "KeyUsage": doc["usage"],
            "KeyState": doc["state"],
            "Origin": doc.get("origin", "AWS_KMS"),
            "KeyManager": doc["manager"],
            "CustomerMasterKeySpec": doc["spec"],
            "KeySpec": doc["spec"],
            "MultiRegion": False,
        }
        if doc["materials"] and doc["materials"][-1]["sealed"] is not None:
            out["CurrentKeyMaterialId"] = doc["materials"][-1]["id"]
        imported = doc.get("imported")
        if imported:
            out["ExpirationModel"] = imported["model"]
            if imported.get("valid_to") is not None:
                out["ValidTo"] = iso(imported["valid_to"])
        if doc["usage"] == specs.ENCRYPT:
            out["EncryptionAlgorithms"] = list(algorithms)
        elif doc["usage"] == specs.SIGN:
            out["SigningAlgorithms"] = list(algorithms)
        else:
            out["MacAlgorithms"] = list(algorithms)
        if doc["state"] == "PendingDeletion":
            out["DeletionDate"] = iso(doc["deletion_date"])
            out["PendingDeletionWindowInDays"] = doc["pending_days"]
        return out

    def _customer_key(self, where: Where, key_ref: str, action: str) -> dict:
        """A key that the caller manages: AWS managed keys refuse changes."""
        doc = self.keys.resolve(where, key_ref, aliases=False)
        if doc["manager"] == "AWS":
            raise error(
                "UnsupportedOperationException",
                f"{arn_of(doc)} is an AWS managed key: {action} is not supported on it.",
            )
        return doc

    # -- keys ----------------------------------------------------------------------------------------

    async def create_key(self, ctx: RequestContext, req: dict) -> dict:
        where = self._check(ctx, req)
        if req.get("KeySpec") and req.get("CustomerMasterKeySpec"):
            raise validation(
                "You cannot specify KeySpec and CustomerMasterKeySpec in the same request. "
                "CustomerMasterKeySpec is deprecated."
            )
        spec_name = req.get("KeySpec") or req.get("CustomerMasterKeySpec") or specs.SYMMETRIC
        usage = req.get("KeyUsage") or specs.ENCRYPT
        spec = specs.SPECS.get(spec_name)
        if spec is None:
            raise error("UnsupportedOperationException", f"KeySpec {spec_name} is not supported by Strata.")
        if usage not in spec.usages:
            if usage in ("KEY_AGREEMENT", "ENCAPSULATE_DECAPSULATE"):
                raise error("UnsupportedOperationException", f"KeyUsage {usage} is not supported by Strata.")
            raise validation(f"KeyUsage {usage} is not compatible with KeySpec {spec_name}.")
        origin = req.get("Origin") or "AWS_KMS"
        if origin not in ("AWS_KMS", "EXTERNAL"):
            raise error(
                "UnsupportedOperationException",
                f"Origin {origin} is not supported by Strata: only AWS_KMS and EXTERNAL (imported) key material are.",
            )
        if req.get("CustomKeyStoreId"):
            raise error(
                "CustomKeyStoreNotFoundException",
                f"Custom key store '{req['CustomKeyStoreId']}' does not exist in this account and Region.",
            )
        if req.get("XksKeyId"):
            raise validation("XksKeyId can be specified only when Origin is EXTERNAL_KEY_STORE.")
        if req.get("MultiRegion"):
            raise error("UnsupportedOperationException", "Multi-Region keys are not supported by Strata.")
        policy = req.get("Policy")
        key_id = str(uuid.uuid4())
        if policy is not None:
            self._check_policy(policy)
            if not req.get("BypassPolicyLockoutSafetyCheck"):
                self._lockout_check(ctx, policy, key_arn(where.region, where.account, key_id), where.account)
        tags = self._check_tags(req.get("Tags") or [], [])
        self._dry_run(req)
        external = origin == "EXTERNAL"
        # An RSA-4096 pair takes seconds; an EXTERNAL key waits for ImportKeyMaterial (imports.py).
        secret = None if external else await run_blocking(material.generate, spec_name)
        doc = self.keys.create(
            where,
            spec_name,
            usage,
            description=req.get("Description") or "",
            policy=policy,
            tags=tags,
            secret=secret,
            key_id=key_id,
            external=external,
        )
        meter.record("kms", "KeyCreated", 1, "key", key=doc["id"], spec=spec_name)
        return {"KeyMetadata": self._metadata(doc)}

    def describe_key(self, ctx: RequestContext, req: dict) -> dict:
        where = self._check(ctx, req)
        doc = self.keys.resolve(where, req["KeyId"], create_managed=True)
        return {"KeyMetadata": self._metadata(doc)}

    def list_keys(self, ctx: RequestContext, req: dict) -> dict:
        where = self._check(ctx, req)
        docs = self.keys.all(where)
        page, marker = self._page(docs, req, lambda d: d["id"], 100)
        out: dict[str, Any] = {
            "Keys": [{"KeyId": d["id"], "KeyArn": arn_of(d)} for d in page],
            "Truncated": marker is not None,
        }
        if marker is not None:
            out["NextMarker"] = marker
        return out

    @staticmethod
    def _page(items: list, req: dict, key_of, default_limit: int) -> tuple[list, str | None]:
        """One page of `items` (sorted by key_of) after req's Marker; the next marker or None."""
        marker = req.get("Marker")
        if marker is not None:
            keys = [key_of(i) for i in items]
            if marker not in keys:
                raise error("InvalidMarkerException", "Marker is not valid")
            items = items[keys.index(marker) + 1 :]
        limit = req.get("Limit") or default_limit
        page = items[:limit]
        return page, (key_of(page[-1]) if len(items) > limit else None)

    def enable_key(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._customer_key(self._check(ctx, req), req["KeyId"], "EnableKey")
        if doc["state"] == "PendingDeletion":
            raise error("KMSInvalidStateException", f"{arn_of(doc)} is pending deletion.")
        if doc["state"] == "PendingImport":
            raise error("KMSInvalidStateException", f"{arn_of(doc)} is pending import.")
        doc["state"] = "Enabled"
        self.keys.save(doc)
        return {}

    def disable_key(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._customer_key(self._check(ctx, req), req["KeyId"], "DisableKey")
        if doc["state"] == "PendingDeletion":
            raise error("KMSInvalidStateException", f"{arn_of(doc)} is pending deletion.")
        if doc["state"] == "PendingImport":
            raise error("KMSInvalidStateException", f"{arn_of(doc)} is pending import.")
        doc["state"] = "Disabled"
        self.keys.save(doc)
        return {}

    def update_key_description(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._customer_key(self._check(ctx, req), req["KeyId"], "UpdateKeyDescription")
        doc["description"] = req["Description"]
        self.keys.save(doc)
        return {}

    # -- deletion --------------------------------------------------------------------------------------

    def schedule_key_deletion(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._customer_key(self._check(ctx, req), req["KeyId"], "ScheduleKeyDeletion")
        days = req.get("PendingWindowInDays", specs.DEFAULT_PENDING_WINDOW_DAYS)
        lo, hi = specs.PENDING_WINDOW_DAYS
        if not lo <= days <= hi:
            raise validation(
                f"1 validation error detected: Value '{days}' at 'pendingWindowInDays' failed to satisfy "
                f"constraint: Member must have value {'greater' if days < lo else 'less'} than or equal "
                f"to {lo if days < lo else hi}"
            )
        if doc["state"] == "PendingDeletion":
            raise error("KMSInvalidStateException", f"{arn_of(doc)} is pending deletion.")
        doc["state"] = "PendingDeletion"
        doc["pending_days"] = days
        doc["deletion_date"] = clock.time() + days * DAY
        self.keys.save(doc)
        meter.record("kms", "KeyDeletionScheduled", 1, "key", key=doc["id"])
        return {
            "KeyId": arn_of(doc),
            "DeletionDate": iso(doc["deletion_date"]),
            "KeyState": "PendingDeletion",
            "PendingWindowInDays": days,
        }

    def cancel_key_deletion(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._customer_key(self._check(ctx, req), req["KeyId"], "CancelKeyDeletion")
        if doc["state"] != "PendingDeletion":
            raise error("KMSInvalidStateException", f"{arn_of(doc)} is not pending deletion.")
        # A key without material (imported material deleted or expired) waits for it again.
        live = any(m["sealed"] is not None for m in doc["materials"])
        doc.update(state="Disabled" if live else "PendingImport", deletion_date=None, pending_days=None)
        self.keys.save(doc)
        return {"KeyId": arn_of(doc)}

    # -- rotation ------------------------------------------------------------------------------------

    def _rotatable(self, ctx: RequestContext, req: dict, action: str) -> dict:
        doc = self._customer_key(self._check(ctx, req), req["KeyId"], action)
        if doc["spec"] != specs.SYMMETRIC:
            raise error(
                "UnsupportedOperationException",
                f"{arn_of(doc)} is not a symmetric encryption key: only those can be rotated.",
            )
        if doc.get("origin") == "EXTERNAL" and action != "DisableKeyRotation":
            raise error(
                "UnsupportedOperationException",
                f"{arn_of(doc)} has imported key material: Strata does not rotate imported key material.",
            )
        self._usable(doc)
        return doc

    def enable_key_rotation(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._rotatable(ctx, req, "EnableKeyRotation")
        days = req.get("RotationPeriodInDays") or specs.DEFAULT_ROTATION_DAYS
        doc["rotation"] = {"days": days, "next": clock.time() + days * DAY}
        self.keys.save(doc)
        return {}

    def disable_key_rotation(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._rotatable(ctx, req, "DisableKeyRotation")
        doc["rotation"] = None
        self.keys.save(doc)
        return {}

    def get_key_rotation_status(self, ctx: RequestContext, req: dict) -> dict:
        where = self._check(ctx, req)
        doc = self.keys.resolve(where, req["KeyId"], aliases=False)
        if doc["spec"] != specs.SYMMETRIC:
            raise error(
                "UnsupportedOperationException",
                f"{arn_of(doc)} is not a symmetric encryption key: only those can be rotated.",
            )
        rotation = doc.get("rotation")
        out: dict[str, Any] = {"KeyRotationEnabled": rotation is not None, "KeyId": arn_of(doc)}
        if rotation:
            out["RotationPeriodInDays"] = rotation["days"]
            out["NextRotationDate"] = iso(rotation["next"])
        on_demand = [m["at"] for m in doc["materials"] if m["type"] == "ON_DEMAND"]
        if on_demand:
            out["OnDemandRotationStartDate"] = iso(on_demand[-1])
        return out

    def rotate_key_on_demand(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._rotatable(ctx, req, "RotateKeyOnDemand")
        if sum(1 for m in doc["materials"] if m["type"] == "ON_DEMAND") >= 25:
            raise error(
                "LimitExceededException",
                f"{arn_of(doc)} has reached the maximum number of on-demand rotations.",
            )
        self.keys.add_material(doc, clock.time(), "ON_DEMAND")
        meter.record("kms", "KeyRotated", 1, "key", key=doc["id"])
        return {"KeyId": arn_of(doc)}

    def list_key_rotations(self, ctx: RequestContext, req: dict) -> dict:
        where = self._check(ctx, req)
        doc = self.keys.resolve(where, req["KeyId"], aliases=False)
        if doc["spec"] != specs.SYMMETRIC:
            raise error("UnsupportedOperationException", f"{arn_of(doc)} is not a symmetric encryption key.")
        rotations = [
            {
                "KeyId": arn_of(doc),
                "KeyMaterialId": m["id"],
                "RotationDate": iso(m["at"]),
                "RotationType": m["type"],
            }
            for m in doc["materials"]
            if m["type"] != "INITIAL"
        ]
        page, marker = self._page(rotations, req, lambda r: r["KeyMaterialId"], 100)
        out: dict[str, Any] = {"Rotations": page, "Truncated": marker is not None}
        if marker:
            out["NextMarker"] = marker
        return out

    # -- key policies ----------------------------------------------------------------------------------

    @staticmethod
    def _check_policy(policy: str) -> None:
        if len(policy.encode()) > specs.MAX_POLICY_BYTES:
            raise error("LimitExceededException", "The key policy exceeds the maximum size of 32 KB.")
        try:
            parsed = json.loads(policy)
        except ValueError as e:
            raise error("MalformedPolicyDocumentException", "The policy is not valid JSON.") from e
        statements = parsed.get("Statement") if isinstance(parsed, dict) else None
        if isinstance(statements, dict):
            statements = [statements]
        if not isinstance(statements, list) or not statements:
            raise error("MalformedPolicyDocumentException", "The policy must contain a Statement.")
        for st in statements:
            if not isinstance(st, dict) or st.get("Effect") not in ("Allow", "Deny"):
                raise error(
                    "MalformedPolicyDocumentException", "Each statement needs an Effect of Allow or Deny."
                )
            if "Principal" not in st and "NotPrincipal" not in st:
                raise error(
                    "MalformedPolicyDocumentException", "A key policy statement must name a Principal."
                )
            if "Action" not in st and "NotAction" not in st:
                raise error("MalformedPolicyDocumentException", "Each statement must name an Action.")
        try:  # what the policy engine will evaluate must compile
            compile_policy(policy, "resource")
        except PolicyError as e:
            raise error("MalformedPolicyDocumentException", str(e)) from None

    def _lockout_check(self, ctx: RequestContext, policy: str, arn: str, account: str) -> None:
        """AWS's key policy lockout safety check: the new policy must let the caller make a
        later PutKeyPolicy request on the key (the same evaluation a request gets: key policy,
        and the caller's IAM policies where the key policy delegates to its account)."""
        caller = ctx.principal
        if caller is None:
            return
        policies, _ = self.directory.policy_set(caller)
        facts = Facts(caller, ctx.region, ctx.http.client, ctx.http.secure, clock.time)
        decision = evaluate(
            caller,
            "kms:PutKeyPolicy",
            arn,
            facts,
            policies,
            compile_policy(policy, "resource"),
            account,
            True,
        )
        if not decision.allowed:
            raise error(
                "MalformedPolicyDocumentException",
                "The new key policy will not allow you to update the key policy in the future.",
            )

    def get_key_policy(self, ctx: RequestContext, req: dict) -> dict:
        doc = self.keys.resolve(self._check(ctx, req), req["KeyId"], aliases=False)
        name = req.get("PolicyName") or "default"
        if name != "default":
            raise error("NotFoundException", f"No such policy exists: {name}")
        return {"Policy": doc["policy"], "PolicyName": "default"}

    def put_key_policy(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._customer_key(self._check(ctx, req), req["KeyId"], "PutKeyPolicy")
        if (req.get("PolicyName") or "default") != "default":
            raise error("NotFoundException", f"No such policy exists: {req['PolicyName']}")
        self._check_policy(req["Policy"])
        if not req.get("BypassPolicyLockoutSafetyCheck"):
            self._lockout_check(ctx, req["Policy"], arn_of(doc), doc["account"])
        doc["policy"] = req["Policy"]
        self.keys.save(doc)
        return {}

    def list_key_policies(self, ctx: RequestContext, req: dict) -> dict:
        self.keys.resolve(self._check(ctx, req), req["KeyId"], aliases=False)
        return {"PolicyNames": ["default"], "Truncated": False}

    # -- tags ----------------------------------------------------------------------------------------

    @staticmethod
    def _check_tags(new: list[dict], old: list[dict]) -> list[dict]:
        merged = {t["TagKey"]: t.get("TagValue", "") for t in old}
        for tag in new:
            if tag["TagKey"].startswith("aws:"):
                raise error("TagException", "Tags beginning with aws: are reserved for AWS use.")
            merged[tag["TagKey"]] = tag.get("TagValue", "")
        if len(merged) > specs.MAX_TAGS:
            raise error("TagException", f"A KMS key can have at most {specs.MAX_TAGS} tags.")
        return [{"TagKey": k, "TagValue": v} for k, v in merged.items()]

    def tag_resource(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._customer_key(self._check(ctx, req), req["KeyId"], "TagResource")
        doc["tags"] = self._check_tags(req["Tags"], doc["tags"])
        self.keys.save(doc)
        return {}

    def untag_resource(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._customer_key(self._check(ctx, req), req["KeyId"], "UntagResource")
        drop = set(req["TagKeys"])
        doc["tags"] = [t for t in doc["tags"] if t["TagKey"] not in drop]
        self.keys.save(doc)
        return {}

    def list_resource_tags(self, ctx: RequestContext, req: dict) -> dict:
        doc = self.keys.resolve(self._check(ctx, req), req["KeyId"], aliases=False)
        tags = sorted(doc["tags"], key=lambda t: t["TagKey"])
        page, marker = self._page(tags, req, lambda t: t["TagKey"], 50)
        out: dict[str, Any] = {"Tags": page, "Truncated": marker is not None}
        if marker:
            out["NextMarker"] = marker
        return out
