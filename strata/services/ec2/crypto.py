"""EBS encryption: data keys from Strata's KMS, encryption-by-default settings per region.

A volume or snapshot that is encrypted holds `kms_key` (the key's ARN) and `dek` (its data key as
KMS sealed it, base64). Its blocks are named and sealed by a `Sealer` over the plaintext data key,
which is asked of KMS (Decrypt) once per owner per server life. The AWS-managed `aws/ebs` key of
the region is the default, or the key ModifyEbsDefaultKmsKeyId set.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.ec2.blocks import Sealer
from strata.services.ec2.limits import invalid
from strata.services.kms.keys import Where
from strata.storage.metadata import MetadataStore

MANAGED_ALIAS = "alias/aws/ebs"


class Encryption:
    def __init__(self, store: MetadataStore, kms: Callable[[], Any]) -> None:
        self.store = store
        self.kms = kms
        self._plain: dict[str, bytes] = {}

    # -- per-region settings -----------------------------------------------------------------------

    def _settings(self, ctx: RequestContext) -> dict:
        return self.store.get_doc("ebs-default", f"{ctx.account_id}:{ctx.region}") or {
            "enabled": False,
            "key": None,
        }

    def _save(self, ctx: RequestContext, doc: dict) -> None:
        self.store.put_doc("ebs-default", f"{ctx.account_id}:{ctx.region}", doc)

    def by_default(self, ctx: RequestContext) -> bool:
        return bool(self._settings(ctx)["enabled"])

    def set_by_default(self, ctx: RequestContext, enabled: bool) -> None:
        doc = self._settings(ctx)
        doc["enabled"] = enabled
        self._save(ctx, doc)

    def default_key(self, ctx: RequestContext) -> str:
        """The ARN of the region's default EBS key (the managed aws/ebs key unless one was set)."""
        key = self._settings(ctx)["key"]
        return key or self.resolve(ctx, MANAGED_ALIAS)

    def set_default_key(self, ctx: RequestContext, key: str | None) -> str:
        doc = self._settings(ctx)
        doc["key"] = self.resolve(ctx, key) if key else None
        self._save(ctx, doc)
        return self.default_key(ctx)

    # -- keys --------------------------------------------------------------------------------------

    def _kms(self) -> Any:
        kms = self.kms()
        if kms is None:
            raise ServiceError(
                "UnsupportedOperation", "EBS encryption needs Strata's KMS, which is not running.", 400
            )
        return kms

    def resolve(self, ctx: RequestContext, key_ref: str) -> str:
        """A KmsKeyId (id, ARN, alias, alias ARN) -> the key's ARN, or AWS's error."""
        kms = self._kms()
        try:
            doc = kms.keys.resolve(Where(ctx.account_id, ctx.region), key_ref, create_managed=True)
        except ServiceError as e:
            raise invalid(f"The specified KMS key '{key_ref}' is not valid: {e.message}") from None
        if doc["state"] != "Enabled":
            raise ServiceError(
                "IncorrectState", f"The KMS key '{key_ref}' is {doc['state'].lower()}, not enabled.", 400
            )
        if doc["spec"] != "SYMMETRIC_DEFAULT" or doc["usage"] != "ENCRYPT_DECRYPT":
            raise invalid(f"The KMS key '{key_ref}' is not a symmetric encryption key.")
        return f"arn:aws:kms:{doc['region']}:{doc['account']}:key/{doc['id']}"

    def new_data_key(self, ctx: RequestContext, key_arn: str) -> tuple[str, bytes]:
        """(sealed data key, base64; plaintext) from KMS GenerateDataKey under `key_arn`."""
        kctx = replace(ctx, service="kms", operation="GenerateDataKey")
        out = self._kms().generate_data_key(kctx, {"KeyId": key_arn, "KeySpec": "AES_256"})
        return base64.b64encode(out["CiphertextBlob"]).decode(), out["Plaintext"]

    def sealer(self, ctx: RequestContext | None, doc: dict) -> Sealer:
        """The Sealer of a volume or snapshot record (plain for unencrypted ones)."""
        if not doc.get("dek"):
            return Sealer()
        plain = self._plain.get(doc["dek"])
        if plain is None:
            region = doc["kms_key"].split(":")[3]
            account = doc["kms_key"].split(":")[4]
            kctx = _internal(ctx, region, account)
            out = self._kms().decrypt(
                kctx, {"CiphertextBlob": base64.b64decode(doc["dek"]), "KeyId": doc["kms_key"]}
            )
            plain = self._plain[doc["dek"]] = out["Plaintext"]
        return Sealer(plain)

    def remember(self, dek: str, plain: bytes) -> Sealer:
        self._plain[dek] = plain
        return Sealer(plain)


def _internal(ctx: RequestContext | None, region: str, account: str) -> RequestContext:
    from strata.protocol.http import Headers, HttpRequest

    if ctx is None:
        http = HttpRequest("GET", "/", "", Headers())
        ctx = RequestContext("internal", "ec2", "", region, account, None, http)
    return replace(ctx, service="kms", operation="Decrypt", region=region, account_id=account)
