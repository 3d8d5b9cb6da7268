"""KMS glue for encrypted file systems: the key a KmsKeyId names, and each volume's data key.

A file system's volume key is a 64-byte data key from Strata's KMS (GenerateDataKey under the file
system's KMS key, with the encryption context AWS uses for EFS), kept only sealed in the file
system's record and unsealed with Decrypt whenever the volume is mounted.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.protocol.http import Headers, HttpRequest
from strata.services.efs import limits as lim
from strata.services.kms.keys import Where
from strata.storage.encrypted_volumes import KEY_BYTES

MANAGED_ALIAS = "alias/aws/elasticfilesystem"


def _context(fs_id: str) -> dict[str, str]:
    return {"aws:elasticfilesystem:filesystem:id": fs_id}


class VolumeKeys:
    def __init__(self, kms: Callable[[], Any]) -> None:
        self.kms = kms

    def _kms(self) -> Any:
        kms = self.kms()
        if kms is None:
            raise lim.bad_request("Encryption needs Strata's KMS, which is not running.")
        return kms

    def resolve(self, ctx: RequestContext, key_ref: str | None) -> str:
        """A KmsKeyId (id, ARN, alias, alias ARN; the managed aws/elasticfilesystem key when None)
        -> the key's ARN, or BadRequest."""
        key_ref = key_ref or MANAGED_ALIAS
        try:
            key = self._kms().keys.resolve(Where(ctx.account_id, ctx.region), key_ref, create_managed=True)
        except ServiceError:
            raise lim.bad_request(f"Invalid KMS key: {key_ref}") from None
        if key["state"] != "Enabled":
            raise lim.bad_request(f"KMS key {key_ref} is {key['state'].lower()}, not enabled.")
        if key["spec"] != "SYMMETRIC_DEFAULT" or key["usage"] != "ENCRYPT_DECRYPT":
            raise lim.bad_request(f"KMS key {key_ref} is not a symmetric encryption key.")
        return f"arn:aws:kms:{key['region']}:{key['account']}:key/{key['id']}"

    def new(self, ctx: RequestContext, key_arn: str, fs_id: str) -> tuple[str, bytes]:
        """(sealed volume key, base64; plaintext) for a new file system."""
        kctx = replace(ctx, service="kms", operation="GenerateDataKey")
        req = {"KeyId": key_arn, "NumberOfBytes": KEY_BYTES, "EncryptionContext": _context(fs_id)}
        out = self._kms().generate_data_key(kctx, req)
        return base64.b64encode(out["CiphertextBlob"]).decode(), out["Plaintext"]

    def unseal(self, doc: dict) -> bytes:
        """The plaintext volume key of a file system record (KMS Decrypt); raises ServiceError."""
        http = HttpRequest("GET", "/", "", Headers())
        kctx = RequestContext("internal", "kms", "Decrypt", doc["region"], doc["account"], None, http)
        req = {
            "CiphertextBlob": base64.b64decode(doc["dek"]),
            "KeyId": doc["kms_key"],
            "EncryptionContext": _context(doc["id"]),
        }
        return self._kms().decrypt(kctx, req)["Plaintext"]
