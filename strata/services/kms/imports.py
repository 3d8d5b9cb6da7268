"""Imported key material (bring your own key): GetParametersForImport, ImportKeyMaterial,
DeleteImportedKeyMaterial, for keys created with Origin EXTERNAL.

A key made with Origin EXTERNAL has no material and waits in PendingImport. GetParametersForImport
makes a fresh RSA wrapping key pair and an import token valid for 24 hours of the simulated clock;
its private half is kept sealed by KMS's root key beside the token. ImportKeyMaterial unwraps the
material with it (RSAES_OAEP_SHA_1/SHA_256 directly, RSA_AES_KEY_WRAP_SHA_1/SHA_256 as an RSA-wrapped
AES key plus RFC 5649 key wrap), checks it fits the key spec, and installs it. The material's id is
derived from the key id and the bytes, as AWS derives it, so only the same material can be imported
again after a deletion or an expiry, and ciphertexts made before open again. Material with ValidTo
is deleted when the simulated clock passes it (keys.KeyRing), leaving the key in PendingImport.

Not done, refused with AWS's errors: the deprecated RSAES_PKCS1_V1_5 and China's SM2 wrapping,
new material for on-demand rotation of an imported key (ImportType NEW_KEY_MATERIAL once a
material exists), rotation of imported keys.
"""

from __future__ import annotations

import hashlib
import os
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap_with_padding

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.base import run_blocking
from strata.services.kms import specs
from strata.services.kms.keys import DAY, KeyRing, iso, key_arn
from strata.services.kms.material import _CURVES
from strata.sim.clock import clock

TOKEN_LIFETIME = DAY
MAX_VALID_DAYS = 365
_WRAPPING_BITS = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}
# HMAC keys accept imported material of these lengths in bytes (AWS's table).
_HMAC_BYTES = {"HMAC_224": (28, 64), "HMAC_256": (32, 64), "HMAC_384": (48, 128), "HMAC_512": (64, 128)}


def _error(code: str, message: str) -> ServiceError:
    return ServiceError(code, message, 400)


def _arn(doc: dict) -> str:
    return key_arn(doc["region"], doc["account"], doc["id"])


def material_id(key_id: str, secret: bytes) -> str:
    """The id of imported material: from the key id and the bytes, so the same material has the
    same id on every import into the key (64 hex digits, as AWS's key material ids)."""
    return hashlib.sha256(b"strata-kms-imported\0" + key_id.encode() + b"\0" + secret).hexdigest()


def _new_wrapping_key(bits: int) -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _oaep(algorithm: str) -> padding.OAEP:
    digest = hashes.SHA1() if algorithm.endswith("_SHA_1") else hashes.SHA256()
    return padding.OAEP(mgf=padding.MGF1(algorithm=digest), algorithm=digest, label=None)


def unwrap(private_der: bytes, algorithm: str, wrapped: bytes) -> bytes:
    """The key material under the wrapping algorithm; InvalidCiphertextException if it does not open."""
    private = serialization.load_der_private_key(private_der, password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    try:
        if algorithm.startswith("RSAES_OAEP_"):
            return private.decrypt(wrapped, _oaep(algorithm))
        head = private.key_size // 8  # RSA_AES_KEY_WRAP_*: the RSA-wrapped AES key, then RFC 5649
        aes_key = private.decrypt(wrapped[:head], _oaep(algorithm))
        return aes_key_unwrap_with_padding(aes_key, wrapped[head:])
    except (ValueError, InvalidUnwrap):
        raise _error(
            "InvalidCiphertextException",
            "The encrypted key material could not be decrypted with the wrapping key and algorithm of the import token.",
        ) from None


def check_material(spec: str, secret: bytes) -> None:
    """The material fits the key spec, or IncorrectKeyMaterialException."""
    family = specs.SPECS[spec].family
    wrong = _error("IncorrectKeyMaterialException", f"The key material does not fit a {spec} key.")
    if family == "symmetric":
        if len(secret) != 32:
            raise wrong
        return
    if family == "hmac":
        lo, hi = _HMAC_BYTES[spec]
        if not lo <= len(secret) <= hi:
            raise wrong
        return
    try:
        private = serialization.load_der_private_key(secret, password=None)
    except (ValueError, TypeError):
        raise wrong from None
    if family == "rsa":
        if not isinstance(private, rsa.RSAPrivateKey) or private.key_size != specs.SPECS[spec].bits:
            raise wrong
    elif not isinstance(private, ec.EllipticCurvePrivateKey) or not isinstance(private.curve, _CURVES[spec]):
        raise wrong


class ImportOperations:
    """Mixed into KMSProvider, which supplies `keys`, `_check`, `_dry_run`, `_meter_request`."""

    keys: KeyRing

    def _external_key(self, ctx: RequestContext, req: dict) -> dict:
        doc = self.keys.resolve(self._check(ctx, req), req["KeyId"], aliases=False)  # type: ignore[attr-defined]
        if doc.get("origin") != "EXTERNAL":
            raise _error(
                "UnsupportedOperationException",
                f"{_arn(doc)} has Origin AWS_KMS: key material can be imported only into a key whose Origin is EXTERNAL.",
            )
        return doc

    async def get_parameters_for_import(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._external_key(ctx, req)
        algorithm, key_spec = req["WrappingAlgorithm"], req["WrappingKeySpec"]
        if algorithm == "RSAES_PKCS1_V1_5":
            raise _error(
                "ValidationException", "The RSAES_PKCS1_V1_5 wrapping algorithm is no longer supported."
            )
        if algorithm == "SM2PKE" or key_spec == "SM2":
            raise _error("ValidationException", "SM2 wrapping keys are available only in China Regions.")
        if doc["state"] == "PendingDeletion":
            raise _error("KMSInvalidStateException", f"{_arn(doc)} is pending deletion.")
        private = await run_blocking(_new_wrapping_key, _WRAPPING_BITS[key_spec])
        public = serialization.load_der_private_key(private, password=None).public_key()
        token = os.urandom(32)
        now = clock.time()
        self._drop_expired_tokens(doc["id"], now)
        self.keys.store.put_doc(
            "import_token",
            f"{doc['id']}:{token.hex()}",
            {
                "token": token.hex(),
                "algorithm": algorithm,
                "private": self.keys.root.seal(doc["id"], private),
                "valid_to": now + TOKEN_LIFETIME,
            },
        )
        self._meter_request(ctx, doc)  # type: ignore[attr-defined]
        return {
            "KeyId": _arn(doc),
            "ImportToken": token,
            "PublicKey": public.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            "ParametersValidTo": iso(now + TOKEN_LIFETIME),
        }

    def _drop_expired_tokens(self, key_id: str, now: float) -> None:
        for token in self.keys.store.list_docs("import_token", prefix=f"{key_id}:"):
            if token["valid_to"] <= now:
                self.keys.store.delete_doc("import_token", f"{key_id}:{token['token']}")

    async def import_key_material(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._external_key(ctx, req)
        now = clock.time()
        imported = self._expiry(req, now)
        token = self.keys.store.get_doc("import_token", f"{doc['id']}:{bytes(req['ImportToken']).hex()}")
        if token is None:
            raise _error(
                "InvalidImportTokenException",
                "The import token is invalid or is associated with a different KMS key.",
            )
        if token["valid_to"] <= now:
            raise _error("ExpiredImportTokenException", "The import token has expired.")
        if doc["state"] == "PendingDeletion":
            raise _error("KMSInvalidStateException", f"{_arn(doc)} is pending deletion.")
        private = self.keys.root.unseal(doc["id"], token["private"])
        secret = await run_blocking(unwrap, private, token["algorithm"], bytes(req["EncryptedKeyMaterial"]))
        check_material(doc["spec"], secret)
        new_id = material_id(doc["id"], secret)
        known = doc["materials"][0]["id"] if doc["materials"] else None
        import_type = req.get("ImportType") or ("EXISTING_KEY_MATERIAL" if known else "NEW_KEY_MATERIAL")
        if import_type == "NEW_KEY_MATERIAL" and known:
            raise _error(
                "UnsupportedOperationException",
                "Strata does not import new key material into a key that has some (on-demand rotation of imported keys).",
            )
        if import_type == "EXISTING_KEY_MATERIAL" and not known:
            raise _error(
                "IncorrectKeyMaterialException", "No key material was ever imported into this KMS key."
            )
        if (known and new_id != known) or (req.get("KeyMaterialId") and req["KeyMaterialId"] != new_id):
            raise _error(
                "IncorrectKeyMaterialException",
                "The key material is not the same key material that was previously imported into this KMS key.",
            )
        if req.get("KeyMaterialDescription"):
            imported["description"] = req["KeyMaterialDescription"]
        self._dry_run(req)  # type: ignore[attr-defined]
        self.keys.install_imported(doc, new_id, secret, imported)
        self.keys.store.delete_doc("import_token", f"{doc['id']}:{bytes(req['ImportToken']).hex()}")
        self._meter_request(ctx, doc)  # type: ignore[attr-defined]
        return {"KeyId": _arn(doc), "KeyMaterialId": new_id}

    @staticmethod
    def _expiry(req: dict, now: float) -> dict[str, Any]:
        model = req.get("ExpirationModel") or "KEY_MATERIAL_EXPIRES"
        valid_to = req.get("ValidTo")
        if model == "KEY_MATERIAL_DOES_NOT_EXPIRE":
            if valid_to is not None:
                raise _error(
                    "ValidationException",
                    "ValidTo is not valid when ExpirationModel is KEY_MATERIAL_DOES_NOT_EXPIRE.",
                )
            return {"model": model, "valid_to": None}
        if valid_to is None:
            raise _error(
                "ValidationException", "ValidTo is required when ExpirationModel is KEY_MATERIAL_EXPIRES."
            )
        at = valid_to.timestamp() if isinstance(valid_to, datetime) else float(valid_to)
        if at <= now or at > now + MAX_VALID_DAYS * DAY:
            raise _error(
                "ValidationException",
                "ValidTo must be a future date and time no more than 365 days from the request date.",
            )
        return {"model": model, "valid_to": at}

    def delete_imported_key_material(self, ctx: RequestContext, req: dict) -> dict:
        doc = self._external_key(ctx, req)
        if not doc["materials"]:
            raise _error("KMSInvalidStateException", f"{_arn(doc)} has no imported key material.")
        current = doc["materials"][-1]["id"]
        if req.get("KeyMaterialId") and req["KeyMaterialId"] != current:
            raise _error(
                "NotFoundException",
                f"Key material {req['KeyMaterialId']} is not associated with {_arn(doc)}.",
            )
        self.keys.forget_imported(doc)
        return {"KeyId": _arn(doc), "KeyMaterialId": current}
