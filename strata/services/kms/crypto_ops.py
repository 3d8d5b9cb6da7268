"""KMS's cryptographic operations: encrypt and decrypt, data keys, signatures, MACs, randomness.

Every one resolves its key, checks the key's state and usage the way AWS does (a disabled key is
DisabledException, a signing key asked to encrypt is InvalidKeyUsageException), counts one request
on the meter, and only then touches key material.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.base import run_blocking
from strata.services.kms import material, specs
from strata.services.kms.keys import Where, key_arn

if TYPE_CHECKING:
    from strata.services.kms.keys import KeyRing


def _error(code: str, message: str = "") -> ServiceError:
    return ServiceError(code, message, 400)


def _arn(doc: dict) -> str:
    return key_arn(doc["region"], doc["account"], doc["id"])


def _usage(doc: dict, usage: str, operation: str) -> None:
    if doc["usage"] != usage:
        raise _error(
            "InvalidKeyUsageException",
            f"{_arn(doc)} key usage is {doc['usage']} which is not valid for {operation}.",
        )


class CryptoOperations:
    """Mixed into KMSProvider, which supplies `keys`, `_check`, `_dry_run`, `_usable`, `_meter_request`."""

    keys: KeyRing

    def _key(self, ctx: RequestContext, req: dict, member: str = "KeyId") -> dict:
        where = self._check(ctx, req)
        doc = self.keys.resolve(where, req[member], create_managed=True)
        self._usable(doc)
        return doc

    # -- encrypt / decrypt ---------------------------------------------------------------------------

    def _encrypt(
        self, doc: dict, plaintext: bytes, context: dict | None, algorithm: str | None
    ) -> tuple[bytes, str]:
        _usage(doc, specs.ENCRYPT, "Encrypt")
        offered = specs.SPECS[doc["spec"]].usages[specs.ENCRYPT]
        algorithm = algorithm or specs.SYMMETRIC
        if algorithm not in offered:
            raise _error(
                "InvalidKeyUsageException",
                f"The encryption algorithm {algorithm} is not supported by {_arn(doc)}.",
            )
        if doc["spec"] == specs.SYMMETRIC:
            index = len(doc["materials"]) - 1
            secret = self.keys.materials(doc)[index]
            return material.seal_symmetric(doc["id"], index, secret, plaintext, context), algorithm
        if context:
            raise _error(
                "ValidationException", "EncryptionContext is not supported with asymmetric KMS keys."
            )
        limit = specs.RSA_MAX_PLAINTEXT[(doc["spec"], algorithm)]
        if len(plaintext) > limit:
            raise _error(
                "ValidationException",
                f"Plaintext of {len(plaintext)} bytes is longer than {limit}, the most {algorithm} "
                f"takes with {doc['spec']}.",
            )
        return material.rsa_encrypt(self.keys.materials(doc)[0], algorithm, plaintext), algorithm

    def _decrypt(
        self, where: Where, blob: bytes, key_ref: str | None, context: dict | None, algorithm: str | None
    ) -> tuple[dict, bytes, str, int]:
        """(key, plaintext, algorithm, material index) of a ciphertext blob."""
        algorithm = algorithm or specs.SYMMETRIC
        named = self.keys.resolve(where, key_ref, create_managed=True) if key_ref else None
        if algorithm == specs.SYMMETRIC:
            try:
                key_id, index = material.blob_key(blob)
            except material.CiphertextError:
                raise _error("InvalidCiphertextException") from None
            if named is not None and named["id"] != key_id:
                raise _error(
                    "IncorrectKeyException",
                    "The key ID in the request does not identify a CMK that can perform this operation.",
                )
            doc = named or self.keys.get(key_id)
            if doc is None or doc["account"] != where.account or doc["region"] != where.region:
                raise _error("InvalidCiphertextException")
            self._usable(doc)
            if doc["spec"] != specs.SYMMETRIC or index >= len(doc["materials"]):
                raise _error("InvalidCiphertextException")
            try:
                plain = material.open_symmetric(self.keys.materials(doc)[index], blob, context)
            except material.CiphertextError:
                raise _error("InvalidCiphertextException") from None
            return doc, plain, algorithm, index
        if named is None:
            raise _error("ValidationException", "KeyId is required to decrypt with an asymmetric algorithm.")
        self._usable(named)
        _usage(named, specs.ENCRYPT, "Decrypt")
        if algorithm not in specs.SPECS[named["spec"]].usages[specs.ENCRYPT]:
            raise _error(
                "InvalidKeyUsageException",
                f"The encryption algorithm {algorithm} is not supported by {_arn(named)}.",
            )
        try:
            plain = material.rsa_decrypt(self.keys.materials(named)[0], algorithm, blob)
        except material.CiphertextError:
            raise _error("InvalidCiphertextException") from None
        return named, plain, algorithm, 0

    def encrypt(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._key(ctx, req)
        self._dry_run(req)
        blob, algorithm = self._encrypt(
            doc, req["Plaintext"], req.get("EncryptionContext"), req.get("EncryptionAlgorithm")
        )
        self._meter_request(ctx, doc)
        return {"CiphertextBlob": blob, "KeyId": _arn(doc), "EncryptionAlgorithm": algorithm}

    def decrypt(self, ctx: RequestContext, req: dict) -> dict:
        where = self._check(ctx, req)
        doc, plain, algorithm, index = self._decrypt(
            where,
            req["CiphertextBlob"],
            req.get("KeyId"),
            req.get("EncryptionContext"),
            req.get("EncryptionAlgorithm"),
        )
        self._dry_run(req)
        self._meter_request(ctx, doc)
        out: dict[str, Any] = {"KeyId": _arn(doc), "Plaintext": plain, "EncryptionAlgorithm": algorithm}
        if doc["spec"] == specs.SYMMETRIC:
            out["KeyMaterialId"] = doc["materials"][index]["id"]
        return out

    def re_encrypt(self, ctx: RequestContext, req: dict) -> dict:
        where = self._check(ctx, req)
        source, plain, source_alg, _ = self._decrypt(
            where,
            req["CiphertextBlob"],
            req.get("SourceKeyId"),
            req.get("SourceEncryptionContext"),
            req.get("SourceEncryptionAlgorithm"),
        )
        dest = self.keys.resolve(where, req["DestinationKeyId"], create_managed=True)
        self._usable(dest)
        self._dry_run(req)
        blob, dest_alg = self._encrypt(
            dest, plain, req.get("DestinationEncryptionContext"), req.get("DestinationEncryptionAlgorithm")
        )
        self._meter_request(ctx, dest)
        return {
            "CiphertextBlob": blob,
            "SourceKeyId": _arn(source),
            "KeyId": _arn(dest),
            "SourceEncryptionAlgorithm": source_alg,
            "DestinationEncryptionAlgorithm": dest_alg,
        }

    # -- data keys -----------------------------------------------------------------------------------

    def _data_key(self, ctx: RequestContext, req: dict) -> tuple[dict, bytes, bytes]:
        doc = self._key(ctx, req)
        if doc["spec"] != specs.SYMMETRIC:
            raise _error(
                "InvalidKeyUsageException",
                f"{_arn(doc)} is not a symmetric encryption key: data keys need one.",
            )
        n, spec = req.get("NumberOfBytes"), req.get("KeySpec")
        if (n is None) == (spec is None):
            raise _error("ValidationException", "Please specify either number of bytes or key spec.")
        size = n if n is not None else {"AES_256": 32, "AES_128": 16}[spec]
        self._dry_run(req)
        plain = os.urandom(size)
        blob, _ = self._encrypt(doc, plain, req.get("EncryptionContext"), None)
        self._meter_request(ctx, doc)
        return doc, plain, blob

    def generate_data_key(self, ctx: RequestContext, req: dict) -> dict:
        doc, plain, blob = self._data_key(ctx, req)
        return {
            "CiphertextBlob": blob,
            "Plaintext": plain,
            "KeyId": _arn(doc),
            "KeyMaterialId": doc["materials"][-1]["id"],
        }

    def generate_data_key_without_plaintext(self, ctx: RequestContext, req: dict) -> dict:
        doc, _, blob = self._data_key(ctx, req)
        return {"CiphertextBlob": blob, "KeyId": _arn(doc), "KeyMaterialId": doc["materials"][-1]["id"]}

    async def _data_key_pair(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._key(ctx, req)
        if doc["spec"] != specs.SYMMETRIC:
            raise _error(
                "InvalidKeyUsageException",
                f"{_arn(doc)} is not a symmetric encryption key: data key pairs need one.",
            )
        pair_spec = req["KeyPairSpec"]
        if pair_spec not in specs.DATA_KEY_PAIR_SPECS:
            raise _error(
                "UnsupportedOperationException", f"KeyPairSpec {pair_spec} is not supported by Strata."
            )
        self._dry_run(req)
        private = await run_blocking(material.generate, pair_spec)
        blob, _ = self._encrypt(doc, private, req.get("EncryptionContext"), None)
        self._meter_request(ctx, doc)
        return {
            "PrivateKeyCiphertextBlob": blob,
            "PrivateKeyPlaintext": private,
            "PublicKey": material.public_key_der(private),
            "KeyId": _arn(doc),
            "KeyPairSpec": pair_spec,
            "KeyMaterialId": doc["materials"][-1]["id"],
        }

    async def generate_data_key_pair(self, ctx: RequestContext, req: dict) -> dict:
        return await self._data_key_pair(ctx, req)

    async def generate_data_key_pair_without_plaintext(self, ctx: RequestContext, req: dict) -> dict:
        out = await self._data_key_pair(ctx, req)
        del out["PrivateKeyPlaintext"]
        return out

    def generate_random(self, ctx: RequestContext, req: dict) -> dict:
        self._check(ctx, req)
        if req.get("CustomKeyStoreId"):
            raise _error(
                "CustomKeyStoreNotFoundException",
                f"Custom key store '{req['CustomKeyStoreId']}' does not exist in this account and Region.",
            )
        if req.get("NumberOfBytes") is None:
            raise _error("ValidationException", "Please specify number of bytes.")
        self._meter_request(ctx, None)
        return {"Plaintext": os.urandom(req["NumberOfBytes"])}

    # -- signatures ----------------------------------------------------------------------------------

    def _signing_key(self, ctx: RequestContext, req: dict, operation: str) -> tuple[dict, bool]:
        doc = self._key(ctx, req)
        _usage(doc, specs.SIGN, operation)
        algorithm = req["SigningAlgorithm"]
        if algorithm not in specs.SPECS[doc["spec"]].usages[specs.SIGN]:
            raise _error(
                "InvalidKeyUsageException",
                f"The signing algorithm {algorithm} is not supported by {_arn(doc)}.",
            )
        digest = (req.get("MessageType") or "RAW") == "DIGEST"
        if digest and len(req["Message"]) != specs.DIGEST_BYTES[algorithm]:
            raise _error("ValidationException", f"Digest is invalid length for algorithm {algorithm}.")
        self._dry_run(req)
        self._meter_request(ctx, doc)
        return doc, digest

    def sign(self, ctx: RequestContext, req: dict) -> dict:
        doc, digest = self._signing_key(ctx, req, "Sign")
        signature = material.sign(
            self.keys.materials(doc)[0], req["SigningAlgorithm"], req["Message"], digest
        )
        return {"KeyId": _arn(doc), "Signature": signature, "SigningAlgorithm": req["SigningAlgorithm"]}

    def verify(self, ctx: RequestContext, req: dict) -> dict:
        doc, digest = self._signing_key(ctx, req, "Verify")
        ok = material.verify(
            self.keys.materials(doc)[0], req["SigningAlgorithm"], req["Message"], req["Signature"], digest
        )
        if not ok:
            raise _error("KMSInvalidSignatureException")
        return {"KeyId": _arn(doc), "SignatureValid": True, "SigningAlgorithm": req["SigningAlgorithm"]}

    def get_public_key(self, ctx: RequestContext, req: dict) -> dict:
        where = self._check(ctx, req)
        doc = self.keys.resolve(where, req["KeyId"], create_managed=True)
        if doc["state"] in ("PendingDeletion", "PendingImport"):
            self._usable(doc)
        family = specs.SPECS[doc["spec"]].family
        if family not in ("rsa", "ec"):
            raise _error(
                "UnsupportedOperationException",
                f"{_arn(doc)} is not an asymmetric key: it has no public key.",
            )
        self._meter_request(ctx, doc)
        algorithms = list(specs.SPECS[doc["spec"]].usages[doc["usage"]])
        out: dict[str, Any] = {
            "KeyId": _arn(doc),
            "PublicKey": material.public_key_der(self.keys.materials(doc)[0]),
            "CustomerMasterKeySpec": doc["spec"],
            "KeySpec": doc["spec"],
            "KeyUsage": doc["usage"],
        }
        out["EncryptionAlgorithms" if doc["usage"] == specs.ENCRYPT else "SigningAlgorithms"] = algorithms
        return out

    # -- MACs ----------------------------------------------------------------------------------------

    def _mac_key(self, ctx: RequestContext, req: dict, operation: str) -> dict:
        doc = self._key(ctx, req)
        _usage(doc, specs.MAC, operation)
        if req["MacAlgorithm"] not in specs.SPECS[doc["spec"]].usages[specs.MAC]:
            raise _error(
                "InvalidKeyUsageException",
                f"The MAC algorithm {req['MacAlgorithm']} is not supported by {_arn(doc)}.",
            )
        self._dry_run(req)
        self._meter_request(ctx, doc)
        return doc

    def generate_mac(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._mac_key(ctx, req, "GenerateMac")
        tag = material.mac(self.keys.materials(doc)[0], req["MacAlgorithm"], req["Message"])
        return {"Mac": tag, "MacAlgorithm": req["MacAlgorithm"], "KeyId": _arn(doc)}

    def verify_mac(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._mac_key(ctx, req, "VerifyMac")
        expected = material.mac(self.keys.materials(doc)[0], req["MacAlgorithm"], req["Message"])
        if not material.mac_equal(expected, req["Mac"]):
            raise _error("KMSInvalidMacException")
        return {"KeyId": _arn(doc), "MacValid": True, "MacAlgorithm": req["MacAlgorithm"]}
