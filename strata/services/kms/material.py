"""Key material and what it does: AES-256-GCM, RSA, ECDSA and HMAC through `cryptography`.

A symmetric ciphertext blob names its key and the version of that key's material, so Decrypt
needs no KeyId and a rotated key still decrypts what its older material encrypted:

    0x01 | key id (16 bytes, the UUID) | material index (4 bytes, big-endian) | nonce (12) | AES-GCM

The encryption context is authenticated data, so a blob decrypts only with the same context, and
any flipped bit fails the GCM tag. Key material at rest is sealed under the root key
(`RootKey`), itself a 0600 file in the data dir or given by STRATA_KMS_ROOT_KEY.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import struct
import uuid
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from strata.services.kms.specs import SPECS

_VERSION = 1
_HEADER = struct.Struct(">B16sI")
_NONCE = 12

_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "SHA_1": hashes.SHA1,
    "SHA_256": hashes.SHA256,
    "SHA_384": hashes.SHA384,
    "SHA_512": hashes.SHA512,
}
_HMAC_DIGESTS = {
    "HMAC_SHA_224": hashlib.sha224,
    "HMAC_SHA_256": hashlib.sha256,
    "HMAC_SHA_384": hashlib.sha384,
    "HMAC_SHA_512": hashlib.sha512,
}
_CURVES: dict[str, Callable[[], ec.EllipticCurve]] = {
    "ECC_NIST_P256": ec.SECP256R1,
    "ECC_NIST_P384": ec.SECP384R1,
    "ECC_NIST_P521": ec.SECP521R1,
    "ECC_SECG_P256K1": ec.SECP256K1,
}


class CiphertextError(Exception):
    """The blob is not one of ours, was changed, or its context does not match."""


class RootKey:
    """The key that seals every KMS key's material at rest; never logged or returned."""

    ENV = "STRATA_KMS_ROOT_KEY"

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the KMS root key must be 32 bytes")
        self._aead = AESGCM(key)

    @classmethod
    def load(cls, path: Path) -> RootKey:
        """From STRATA_KMS_ROOT_KEY (base64 of 32 bytes) or `path`, made 0600 on first use."""
        env = os.environ.get(cls.ENV)
        if env:
            return cls(base64.b64decode(env, validate=True))
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            return cls(path.read_bytes())
        except FileNotFoundError:
            pass
        key = AESGCM.generate_key(bit_length=256)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, key)
            os.fsync(fd)
        finally:
            os.close(fd)
        # Published with link(), which never replaces: gateways sharing the directory (--blob-dir)
        # that start together all end up with the one key that was published first.
        try:
            os.link(tmp, path)
        except FileExistsError:
            key = path.read_bytes()
        finally:
            os.unlink(tmp)
        return cls(key)

    def seal(self, key_id: str, material: bytes) -> str:
        nonce = os.urandom(_NONCE)
        return base64.b64encode(nonce + self._aead.encrypt(nonce, material, key_id.encode())).decode()

    def unseal(self, key_id: str, sealed: str) -> bytes:
        raw = base64.b64decode(sealed)
        return self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], key_id.encode())


def generate(spec: str) -> bytes:
    """New key material for `spec`: raw bytes for symmetric and HMAC keys, PKCS#8 DER otherwise."""
    family = SPECS[spec].family
    if family == "symmetric":
        return AESGCM.generate_key(bit_length=256)
    if family == "hmac":
        return os.urandom(SPECS[spec].bits // 8)
    if family == "rsa":
        private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = rsa.generate_private_key(
            public_exponent=65537, key_size=SPECS[spec].bits
        )
    else:
        private = ec.generate_private_key(_CURVES[spec]())
    return private.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@lru_cache(maxsize=256)
def _private(private_der: bytes) -> Any:
    # Parsing (and for RSA, checking) a private key costs milliseconds; a key signs many times.
    # Our own keys, sealed at rest: the costly RSA consistency check adds nothing.
    return serialization.load_der_private_key(private_der, password=None, unsafe_skip_rsa_key_validation=True)


def public_key_der(private_der: bytes) -> bytes:
    """The SubjectPublicKeyInfo DER of a private key, as GetPublicKey returns it."""
    key = _private(private_der)
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# -- symmetric -------------------------------------------------------------------------------------


def _context_aad(header: bytes, context: dict[str, str] | None) -> bytes:
    return header + json.dumps(sorted((context or {}).items()), separators=(",", ":")).encode()


def seal_symmetric(
    key_id: str, index: int, material: bytes, plaintext: bytes, context: dict[str, str] | None
) -> bytes:
    header = _HEADER.pack(_VERSION, uuid.UUID(key_id).bytes, index)
    nonce = os.urandom(_NONCE)
    return header + nonce + AESGCM(material).encrypt(nonce, plaintext, _context_aad(header, context))


def blob_key(blob: bytes) -> tuple[str, int]:
    """The key id and material index a symmetric blob names; CiphertextError if it is not ours."""
    if len(blob) < _HEADER.size + _NONCE + 16 or blob[0] != _VERSION:
        raise CiphertextError
    _, raw_id, index = _HEADER.unpack_from(blob)
    return str(uuid.UUID(bytes=raw_id)), index


def open_symmetric(material: bytes, blob: bytes, context: dict[str, str] | None) -> bytes:
    header = blob[: _HEADER.size]
    nonce = blob[_HEADER.size : _HEADER.size + _NONCE]
    try:
        return AESGCM(material).decrypt(nonce, blob[_HEADER.size + _NONCE :], _context_aad(header, context))
    except InvalidTag as e:
        raise CiphertextError from e


# -- asymmetric ------------------------------------------------------------------------------------


def _oaep(algorithm: str) -> padding.OAEP:
    digest = _HASHES[algorithm.removeprefix("RSAES_OAEP_")]
    return padding.OAEP(mgf=padding.MGF1(digest()), algorithm=digest(), label=None)


def rsa_encrypt(private_der: bytes, algorithm: str, plaintext: bytes) -> bytes:
    key = _private(private_der)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key.public_key().encrypt(plaintext, _oaep(algorithm))


def rsa_decrypt(private_der: bytes, algorithm: str, ciphertext: bytes) -> bytes:
    key = _private(private_der)
    assert isinstance(key, rsa.RSAPrivateKey)
    try:
        return key.decrypt(ciphertext, _oaep(algorithm))
    except ValueError as e:
        raise CiphertextError from e


def _signing(algorithm: str, digest_given: bool):
    scheme, _, hash_name = algorithm.rpartition("_SHA_")
    digest = _HASHES["SHA_" + hash_name]()
    prehashed = utils.Prehashed(digest) if digest_given else digest
    return scheme, digest, prehashed


def sign(private_der: bytes, algorithm: str, message: bytes, digest_given: bool) -> bytes:
    key = _private(private_der)
    scheme, digest, chosen = _signing(algorithm, digest_given)
    if isinstance(key, rsa.RSAPrivateKey):
        pad = (
            padding.PSS(mgf=padding.MGF1(digest), salt_length=padding.PSS.DIGEST_LENGTH)
            if scheme == "RSASSA_PSS"
            else padding.PKCS1v15()
        )
        return key.sign(message, pad, chosen)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key.sign(message, ec.ECDSA(chosen))


def verify(private_der: bytes, algorithm: str, message: bytes, signature: bytes, digest_given: bool) -> bool:
    public = _private(private_der).public_key()
    scheme, digest, chosen = _signing(algorithm, digest_given)
    try:
        if isinstance(public, rsa.RSAPublicKey):
            pad = (
                padding.PSS(mgf=padding.MGF1(digest), salt_length=padding.PSS.DIGEST_LENGTH)
                if scheme == "RSASSA_PSS"
                else padding.PKCS1v15()
            )
            public.verify(signature, message, pad, chosen)
        else:
            assert isinstance(public, ec.EllipticCurvePublicKey)
            public.verify(signature, message, ec.ECDSA(chosen))
    except (InvalidSignature, ValueError):
        return False
    return True


# -- HMAC ------------------------------------------------------------------------------------------


def mac(material: bytes, algorithm: str, message: bytes) -> bytes:
    return hmac.new(material, message, _HMAC_DIGESTS[algorithm]).digest()


def mac_equal(expected: bytes, given: bytes) -> bool:
    return hmac.compare_digest(expected, given)
