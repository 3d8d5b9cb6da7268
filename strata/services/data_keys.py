"""KMS glue for encryption at rest in RDS and ElastiCache: the key a KmsKeyId names, and each
encrypted volume's data key (strata/storage/encrypted_volumes.py).

A volume's key is a 64-byte data key from Strata's KMS (GenerateDataKey under the resource's KMS
key, with an encryption context naming the volume), kept only sealed in the resource's record and
unsealed with Decrypt whenever the volume is opened. Each service raises its own error for a key
it cannot use (`refuse`).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.protocol.http import Headers, HttpRequest
from strata.services.kms.keys import Where
from strata.storage.encrypted_volumes import KEY_BYTES


def _ctx(operation: str, key_arn: str) -> RequestContext:
    """Strata itself calling KMS, in the account and region of the key (arn:aws:kms:<region>:<account>:...)."""
    _, _, _, region, account, _ = key_arn.split(":", 5)
    return RequestContext(
        "internal", "kms", operation, region, account, None, HttpRequest("GET", "/", "", Headers())
    )


class DataKeys:
    """Data keys for one service's volumes: `managed_alias` is its AWS managed key (alias/aws/rds),
    `context_key` the encryption context key naming a volume, `refuse(message)` its error."""

    def __init__(
        self,
        kms: Callable[[], Any],
        managed_alias: str,
        context_key: str,
        refuse: Callable[[str], ServiceError],
    ) -> None:
        self.kms = kms
        self.managed_alias = managed_alias
        self.context_key = context_key
        self.refuse = refuse

    def _kms(self) -> Any:
        kms = self.kms()
        if kms is None:
            raise self.refuse("Encryption at rest needs Strata's KMS, which is not running.")
        return kms

    def resolve(self, account: str, region: str, key_ref: str | None) -> str:
        """A KmsKeyId (key id, key ARN, alias name or alias ARN; the managed key when None) -> the
        key's ARN; `refuse` for a key that does not exist, is not enabled or cannot encrypt."""
        key_ref = key_ref or self.managed_alias
        try:
            key = self._kms().keys.resolve(Where(account, region), key_ref, create_managed=True)
        except ServiceError:
            raise self.refuse(f"The specified KMS key [{key_ref}] does not exist.") from None
        if key["state"] != "Enabled":
            raise self.refuse(f"The specified KMS key [{key_ref}] is {key['state'].lower()}, not enabled.")
        if key["spec"] != "SYMMETRIC_DEFAULT" or key["usage"] != "ENCRYPT_DECRYPT":
            raise self.refuse(f"The specified KMS key [{key_ref}] is not a symmetric encryption key.")
        return f"arn:aws:kms:{key['region']}:{key['account']}:key/{key['id']}"

    def new(self, key_arn: str, volume: str) -> tuple[str, bytes]:
        """(sealed volume key, base64; plaintext) for a new volume; `refuse` when KMS will not."""
        req = {"KeyId": key_arn, "NumberOfBytes": KEY_BYTES, "EncryptionContext": {self.context_key: volume}}
        try:
            out = self._kms().generate_data_key(_ctx("GenerateDataKey", key_arn), req)
        except ServiceError as e:
            raise self.refuse(f"The KMS key {key_arn} cannot be used: {e.message}") from None
        return base64.b64encode(out["CiphertextBlob"]).decode(), out["Plaintext"]

    def unseal(self, key_arn: str, sealed: str, volume: str) -> bytes:
        """The plaintext key of a volume (KMS Decrypt); raises ServiceError (a disabled key)."""
        req = {
            "CiphertextBlob": base64.b64decode(sealed),
            "KeyId": key_arn,
            "EncryptionContext": {self.context_key: volume},
        }
        return self._kms().decrypt(_ctx("Decrypt", key_arn), req)["Plaintext"]
