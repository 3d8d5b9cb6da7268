"""KMS through boto3 and the AWS CLI: real cryptography, key states, aliases, grants, the clock."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import stat
import subprocess
import sys

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding


@pytest.fixture(scope="module")
def kms(strata_server):
    return strata_server.client("kms")


def code(e: pytest.ExceptionInfo) -> str:
    return e.value.response["Error"]["Code"]


def test_encrypt_decrypt_round_trip_with_context(kms) -> None:
    key = kms.create_key(Description="orders")["KeyMetadata"]
    assert key["KeySpec"] == "SYMMETRIC_DEFAULT" and key["KeyState"] == "Enabled"
    assert key["Arn"].endswith(":key/" + key["KeyId"])
    out = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"card 4111", EncryptionContext={"order": "42"})
    blob = out["CiphertextBlob"]
    assert b"card 4111" not in blob and out["KeyId"] == key["Arn"]
    # Decrypt needs no KeyId: the blob names its key.
    back = kms.decrypt(CiphertextBlob=blob, EncryptionContext={"order": "42"})
    assert back["Plaintext"] == b"card 4111" and back["KeyId"] == key["Arn"]
    for context in ({}, {"order": "43"}, {"order": "42", "x": "y"}):
        with pytest.raises(ClientError) as e:
            kms.decrypt(CiphertextBlob=blob, EncryptionContext=context)
        assert code(e) == "InvalidCiphertextException"


def test_tampered_ciphertext_refuses(kms) -> None:
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = bytearray(kms.encrypt(KeyId=key, Plaintext=b"secret")["CiphertextBlob"])
    for i in (0, 5, len(blob) // 2, len(blob) - 1):
        changed = bytearray(blob)
        changed[i] ^= 0x01
        with pytest.raises(ClientError) as e:
            kms.decrypt(CiphertextBlob=bytes(changed))
        assert code(e) in ("InvalidCiphertextException", "NotFoundException")
    with pytest.raises(ClientError) as e:
        kms.decrypt(CiphertextBlob=b"not a kms blob at all, not at all")
    assert code(e) == "InvalidCiphertextException"


def test_wrong_key_id_on_decrypt_is_incorrect_key(kms) -> None:
    a = kms.create_key()["KeyMetadata"]["KeyId"]
    b = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=a, Plaintext=b"x")["CiphertextBlob"]
    with pytest.raises(ClientError) as e:
        kms.decrypt(CiphertextBlob=blob, KeyId=b)
    assert code(e) == "IncorrectKeyException"


def test_disabled_key_refuses_and_enabled_again_works(kms) -> None:
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key, Plaintext=b"x")["CiphertextBlob"]
    kms.disable_key(KeyId=key)
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "Disabled"
    for call in (
        lambda: kms.encrypt(KeyId=key, Plaintext=b"x"),
        lambda: kms.decrypt(CiphertextBlob=blob),
        lambda: kms.generate_data_key(KeyId=key, KeySpec="AES_256"),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert code(e) == "DisabledException"
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    kms.enable_key(KeyId=key)
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"


def test_data_keys_work_for_envelope_encryption(kms) -> None:
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    dk = kms.generate_data_key(KeyId=key, KeySpec="AES_256", EncryptionContext={"f": "1"})
    assert len(dk["Plaintext"]) == 32
    sealed = AESGCM(dk["Plaintext"]).encrypt(b"\0" * 12, b"payload", None)
    plain_key = kms.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext={"f": "1"})["Plaintext"]
    assert AESGCM(plain_key).decrypt(b"\0" * 12, sealed, None) == b"payload"
    assert len(kms.generate_data_key(KeyId=key, NumberOfBytes=64)["Plaintext"]) == 64
    wp = kms.generate_data_key_without_plaintext(KeyId=key, KeySpec="AES_128")
    assert "Plaintext" not in wp and len(kms.decrypt(CiphertextBlob=wp["CiphertextBlob"])["Plaintext"]) == 16
    for bad in ({}, {"KeySpec": "AES_256", "NumberOfBytes": 32}):
        with pytest.raises(ClientError) as e:
            kms.generate_data_key(KeyId=key, **bad)
        assert code(e) == "ValidationException"
    pair = kms.generate_data_key_pair(KeyId=key, KeyPairSpec="ECC_NIST_P256")
    private = serialization.load_der_private_key(pair["PrivateKeyPlaintext"], None)
    public = serialization.load_der_public_key(pair["PublicKey"])
    assert isinstance(private, ec.EllipticCurvePrivateKey) and isinstance(public, ec.EllipticCurvePublicKey)
    assert (
        kms.decrypt(CiphertextBlob=pair["PrivateKeyCiphertextBlob"])["Plaintext"]
        == pair["PrivateKeyPlaintext"]
    )
    assert len(kms.generate_random(NumberOfBytes=100)["Plaintext"]) == 100


def test_re_encrypt_moves_a_ciphertext_to_another_key(kms) -> None:
    a = kms.create_key()["KeyMetadata"]
    b = kms.create_key()["KeyMetadata"]
    blob = kms.encrypt(KeyId=a["KeyId"], Plaintext=b"move me", EncryptionContext={"k": "v"})["CiphertextBlob"]
    out = kms.re_encrypt(CiphertextBlob=blob, SourceEncryptionContext={"k": "v"}, DestinationKeyId=b["KeyId"])
    assert out["SourceKeyId"] == a["Arn"] and out["KeyId"] == b["Arn"]
    assert kms.decrypt(CiphertextBlob=out["CiphertextBlob"])["Plaintext"] == b"move me"


@pytest.mark.parametrize(
    "spec,algorithm",
    [
        ("RSA_2048", "RSASSA_PSS_SHA_256"),
        ("RSA_3072", "RSASSA_PKCS1_V1_5_SHA_384"),
        ("ECC_NIST_P256", "ECDSA_SHA_256"),
        ("ECC_NIST_P384", "ECDSA_SHA_384"),
    ],
)
def test_sign_verify_with_the_public_key_outside_kms(kms, spec: str, algorithm: str) -> None:
    key = kms.create_key(KeySpec=spec, KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    assert algorithm in key["SigningAlgorithms"]
    sig = kms.sign(KeyId=key["KeyId"], Message=b"release v1", SigningAlgorithm=algorithm)["Signature"]
    assert kms.verify(KeyId=key["KeyId"], Message=b"release v1", Signature=sig, SigningAlgorithm=algorithm)[
        "SignatureValid"
    ]
    with pytest.raises(ClientError) as e:
        kms.verify(KeyId=key["KeyId"], Message=b"release v2", Signature=sig, SigningAlgorithm=algorithm)
    assert code(e) == "KMSInvalidSignatureException"
    # The signature checks out with the public key alone, as a verifier outside AWS would do it.
    public = serialization.load_der_public_key(kms.get_public_key(KeyId=key["KeyId"])["PublicKey"])
    digest = {"256": hashes.SHA256(), "384": hashes.SHA384()}[algorithm[-3:]]
    if spec.startswith("ECC"):
        public.verify(sig, b"release v1", ec.ECDSA(digest))
    elif "PSS" in algorithm:
        public.verify(
            sig, b"release v1", padding.PSS(padding.MGF1(digest), padding.PSS.DIGEST_LENGTH), digest
        )
    else:
        public.verify(sig, b"release v1", padding.PKCS1v15(), digest)
    # A signing key does not encrypt.
    with pytest.raises(ClientError) as e:
        kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x")
    assert code(e) == "InvalidKeyUsageException"


def test_sign_a_digest(kms) -> None:
    key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    digest = hashlib.sha256(b"big file").digest()
    sig = kms.sign(KeyId=key, Message=digest, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256")[
        "Signature"
    ]
    assert kms.verify(KeyId=key, Message=b"big file", Signature=sig, SigningAlgorithm="ECDSA_SHA_256")[
        "SignatureValid"
    ]
    with pytest.raises(ClientError) as e:
        kms.sign(KeyId=key, Message=b"short", MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256")
    assert code(e) == "ValidationException"


def test_rsa_encryption_keys(kms) -> None:
    key = kms.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["KeyId"]
    public = serialization.load_der_public_key(kms.get_public_key(KeyId=key)["PublicKey"])
    # Encrypted outside KMS with the public key, decrypted inside.
    blob = public.encrypt(b"hi", padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None))
    out = kms.decrypt(CiphertextBlob=blob, KeyId=key, EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    assert out["Plaintext"] == b"hi"
    blob = kms.encrypt(KeyId=key, Plaintext=b"yo", EncryptionAlgorithm="RSAES_OAEP_SHA_1")["CiphertextBlob"]
    assert (
        kms.decrypt(CiphertextBlob=blob, KeyId=key, EncryptionAlgorithm="RSAES_OAEP_SHA_1")["Plaintext"]
        == b"yo"
    )
    with pytest.raises(ClientError) as e:
        kms.encrypt(KeyId=key, Plaintext=b"x" * 191, EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    assert code(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        kms.generate_data_key(KeyId=key, KeySpec="AES_256")
    assert code(e) == "InvalidKeyUsageException"


def test_hmac_keys(kms) -> None:
    key = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]
    assert key["MacAlgorithms"] == ["HMAC_SHA_256"]
    mac = kms.generate_mac(KeyId=key["KeyId"], Message=b"m", MacAlgorithm="HMAC_SHA_256")["Mac"]
    assert kms.verify_mac(KeyId=key["KeyId"], Message=b"m", Mac=mac, MacAlgorithm="HMAC_SHA_256")["MacValid"]
    with pytest.raises(ClientError) as e:
        kms.verify_mac(KeyId=key["KeyId"], Message=b"n", Mac=mac, MacAlgorithm="HMAC_SHA_256")
    assert code(e) == "KMSInvalidMacException"
    with pytest.raises(ClientError) as e:
        kms.generate_mac(KeyId=key["KeyId"], Message=b"m", MacAlgorithm="HMAC_SHA_512")
    assert code(e) == "InvalidKeyUsageException"


@pytest.mark.parametrize(
    "kwargs,expected",
    [
        ({"KeySpec": "SM2", "KeyUsage": "SIGN_VERIFY"}, "UnsupportedOperationException"),
        ({"KeySpec": "ECC_NIST_P256"}, "ValidationException"),  # ECC keys do not encrypt
        ({"Origin": "EXTERNAL_KEY_STORE"}, "UnsupportedOperationException"),
        ({"MultiRegion": True}, "UnsupportedOperationException"),
        ({"CustomKeyStoreId": "cks-1234567890abcdef0"}, "CustomKeyStoreNotFoundException"),
        ({"Policy": "{not json"}, "MalformedPolicyDocumentException"),
        ({"Tags": [{"TagKey": "aws:x", "TagValue": "y"}]}, "TagException"),
        (
            {"KeySpec": "RSA_2048", "CustomerMasterKeySpec": "RSA_2048", "KeyUsage": "SIGN_VERIFY"},
            "ValidationException",
        ),
    ],
)
def test_create_key_refuses_what_strata_cannot_honour(kms, kwargs: dict, expected: str) -> None:
    with pytest.raises(ClientError) as e:
        kms.create_key(**kwargs)
    assert code(e) == expected


def test_aliases(kms, unique: str) -> None:
    a = kms.create_key()["KeyMetadata"]
    b = kms.create_key()["KeyMetadata"]
    name = f"alias/app-{unique}"
    kms.create_alias(AliasName=name, TargetKeyId=a["KeyId"])
    with pytest.raises(ClientError) as e:
        kms.create_alias(AliasName=name, TargetKeyId=b["KeyId"])
    assert code(e) == "AlreadyExistsException"
    blob = kms.encrypt(KeyId=name, Plaintext=b"x")["CiphertextBlob"]
    assert kms.describe_key(KeyId=name)["KeyMetadata"]["KeyId"] == a["KeyId"]
    alias_arn = a["Arn"].replace(f"key/{a['KeyId']}", name)
    assert kms.describe_key(KeyId=alias_arn)["KeyMetadata"]["KeyId"] == a["KeyId"]
    kms.update_alias(AliasName=name, TargetKeyId=b["KeyId"])
    assert kms.describe_key(KeyId=name)["KeyMetadata"]["KeyId"] == b["KeyId"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"  # the blob names the key, not the alias
    listed = kms.list_aliases(KeyId=b["KeyId"])["Aliases"]
    assert [x["AliasName"] for x in listed] == [name]
    for bad in ("app", "alias/aws/mine", "alias/has space"):
        with pytest.raises(ClientError) as e:
            kms.create_alias(AliasName=bad, TargetKeyId=a["KeyId"])
        assert code(e) in ("ValidationException", "InvalidAliasNameException")
    kms.delete_alias(AliasName=name)
    with pytest.raises(ClientError) as e:
        kms.describe_key(KeyId=name)
    assert code(e) == "NotFoundException"


def test_aws_managed_key_is_created_on_first_use(kms) -> None:
    meta = kms.describe_key(KeyId="alias/aws/s3")["KeyMetadata"]
    assert meta["KeyManager"] == "AWS"
    assert kms.describe_key(KeyId="alias/aws/s3")["KeyMetadata"]["KeyId"] == meta["KeyId"]
    # Its policy lets the account use it only through its service (kms:ViaService), so even the
    # root cannot encrypt with it directly, as on AWS.
    with pytest.raises(ClientError) as e:
        kms.encrypt(KeyId="alias/aws/s3", Plaintext=b"x")
    assert code(e) == "AccessDeniedException"
    with pytest.raises(ClientError) as e:  # its policy allows nobody to manage it
        kms.schedule_key_deletion(KeyId=meta["KeyId"])
    assert code(e) == "AccessDeniedException"


def test_grants(kms) -> None:
    key = kms.create_key()["KeyMetadata"]
    grantee = "arn:aws:iam::000000000000:role/app"
    g = kms.create_grant(
        KeyId=key["KeyId"], GranteePrincipal=grantee, Operations=["Encrypt", "Decrypt"], Name="g1"
    )
    again = kms.create_grant(
        KeyId=key["KeyId"], GranteePrincipal=grantee, Operations=["Encrypt", "Decrypt"], Name="g1"
    )
    assert again["GrantId"] == g["GrantId"]  # same name and parameters: the same grant
    grants = kms.list_grants(KeyId=key["KeyId"])["Grants"]
    assert [x["GrantId"] for x in grants] == [g["GrantId"]] and grants[0]["GranteePrincipal"] == grantee
    # A grant token is accepted where GrantTokens are; a made-up one is not.
    kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x", GrantTokens=[g["GrantToken"]])
    with pytest.raises(ClientError) as e:
        kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x", GrantTokens=["made-up"])
    assert code(e) == "InvalidGrantTokenException"
    with pytest.raises(ClientError) as e:
        kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=grantee, Operations=["Sign"])
    assert code(e) == "ValidationException"
    kms.retire_grant(GrantToken=g["GrantToken"])
    assert kms.list_grants(KeyId=key["KeyId"])["Grants"] == []
    g2 = kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=grantee, Operations=["Decrypt"])
    kms.revoke_grant(KeyId=key["KeyId"], GrantId=g2["GrantId"])
    with pytest.raises(ClientError) as e:
        kms.revoke_grant(KeyId=key["KeyId"], GrantId=g2["GrantId"])
    assert code(e) == "NotFoundException"


def test_tags_description_policy_and_listing(kms) -> None:
    key = kms.create_key(Tags=[{"TagKey": "team", "TagValue": "a"}])["KeyMetadata"]["KeyId"]
    kms.tag_resource(
        KeyId=key, Tags=[{"TagKey": "team", "TagValue": "b"}, {"TagKey": "env", "TagValue": "dev"}]
    )
    kms.untag_resource(KeyId=key, TagKeys=["env"])
    assert kms.list_resource_tags(KeyId=key)["Tags"] == [{"TagKey": "team", "TagValue": "b"}]
    kms.update_key_description(KeyId=key, Description="new")
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["Description"] == "new"
    policy = json.loads(kms.get_key_policy(KeyId=key, PolicyName="default")["Policy"])
    assert policy["Statement"][0]["Principal"]["AWS"].endswith(":root")
    with pytest.raises(ClientError) as e:
        kms.put_key_policy(KeyId=key, PolicyName="default", Policy='{"Statement": []}')
    assert code(e) == "MalformedPolicyDocumentException"
    seen = []
    for page in kms.get_paginator("list_keys").paginate(PaginationConfig={"PageSize": 2}):
        seen += [k["KeyId"] for k in page["Keys"]]
    assert key in seen and len(seen) == len(set(seen))
    with pytest.raises(ClientError) as e:
        kms.list_keys(Marker="garbage")
    assert code(e) == "InvalidMarkerException"


def test_unknown_keys_are_not_found(kms) -> None:
    for ref in (
        "11111111-2222-3333-4444-555555555555",
        "arn:aws:kms:us-east-1:000000000000:key/11111111-2222-3333-4444-555555555555",
        "alias/nothing-here",
        "not-a-key",
    ):
        with pytest.raises(ClientError) as e:
            kms.describe_key(KeyId=ref)
        assert code(e) == "NotFoundException"


def test_dry_run(kms) -> None:
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError) as e:
        kms.encrypt(KeyId=key, Plaintext=b"x", DryRun=True)
    assert code(e) == "DryRunOperationException"


def test_model_constraints_are_validation_errors(kms) -> None:
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    # boto3 checks minimums itself; a maximum is the server's to refuse.
    with pytest.raises(ClientError) as e:
        kms.encrypt(KeyId=key, Plaintext=b"x" * 4097)
    assert code(e) == "ValidationException"
    assert "failed to satisfy constraint: Member must have length less than or equal to 4096" in str(e.value)
    with pytest.raises(ClientError) as e:
        kms.generate_random(NumberOfBytes=1025)
    assert code(e) == "ValidationException"


def test_rotation_and_deletion_follow_the_simulated_clock(strata_factory) -> None:
    server = strata_factory()
    kms = server.client("kms")
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    old_blob = kms.encrypt(KeyId=key, Plaintext=b"before", EncryptionContext={"a": "1"})["CiphertextBlob"]
    kms.enable_key_rotation(KeyId=key, RotationPeriodInDays=90)
    status = kms.get_key_rotation_status(KeyId=key)
    assert status["KeyRotationEnabled"] and status["RotationPeriodInDays"] == 90
    unchecked = server.client("kms", config=Config(parameter_validation=False))
    with pytest.raises(ClientError) as e:
        unchecked.enable_key_rotation(KeyId=key, RotationPeriodInDays=30)
    assert code(e) == "ValidationException"
    server.advance_clock("200d")  # two rotations: day 90 and day 180
    rotations = kms.list_key_rotations(KeyId=key)["Rotations"]
    assert [r["RotationType"] for r in rotations] == ["AUTOMATIC", "AUTOMATIC"]
    new_blob = kms.encrypt(KeyId=key, Plaintext=b"after")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=old_blob, EncryptionContext={"a": "1"})["Plaintext"] == b"before"
    assert kms.decrypt(CiphertextBlob=new_blob)["Plaintext"] == b"after"
    kms.rotate_key_on_demand(KeyId=key)
    assert kms.list_key_rotations(KeyId=key)["Rotations"][-1]["RotationType"] == "ON_DEMAND"

    # Deletion: pending for the window, cancellable, then gone when the clock passes it.
    out = kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    assert out["KeyState"] == "PendingDeletion" and out["PendingWindowInDays"] == 7
    with pytest.raises(ClientError) as e:
        kms.decrypt(CiphertextBlob=new_blob)
    assert code(e) == "KMSInvalidStateException"
    kms.cancel_key_deletion(KeyId=key)
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "Disabled"
    kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    server.advance_clock("6d")
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    server.advance_clock("2d")
    with pytest.raises(ClientError) as e:
        kms.describe_key(KeyId=key)
    assert code(e) == "NotFoundException"
    with pytest.raises(ClientError) as e:
        kms.decrypt(CiphertextBlob=new_blob)
    assert code(e) == "InvalidCiphertextException"
    assert key not in [k["KeyId"] for k in kms.list_keys()["Keys"]]


def _wrap(public_der: bytes, secret: bytes, algorithm: str) -> bytes:
    """The key material as a user wraps it for ImportKeyMaterial (what `openssl pkeyutl` does)."""
    public = serialization.load_der_public_key(public_der)
    digest = hashes.SHA1() if algorithm.endswith("SHA_1") else hashes.SHA256()
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=digest), algorithm=digest, label=None)
    if algorithm.startswith("RSAES_OAEP"):
        return public.encrypt(secret, oaep)
    aes = os.urandom(32)
    return public.encrypt(aes, oaep) + aes_key_wrap_with_padding(aes, secret)


def test_imported_key_material_and_its_expiry_on_the_simulated_clock(strata_factory) -> None:
    """Bring your own key: a 256-bit key imported into an EXTERNAL key encrypts what a local AES-GCM
    would not tell apart from KMS's own; at ValidTo the material goes (PendingImport) and only the
    same material comes back, opening the old ciphertexts."""
    server = strata_factory()
    kms = server.client("kms")
    meta = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]
    key = meta["KeyId"]
    assert (meta["Origin"], meta["KeyState"], meta["Enabled"]) == ("EXTERNAL", "PendingImport", False)
    with pytest.raises(ClientError) as e:
        kms.encrypt(KeyId=key, Plaintext=b"x")
    assert code(e) == "KMSInvalidStateException"
    secret = os.urandom(32)
    params = kms.get_parameters_for_import(
        KeyId=key, WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048"
    )
    now = kms.describe_key(KeyId=key)["KeyMetadata"]["CreationDate"]
    valid_to = now + datetime.timedelta(days=30)
    out = kms.import_key_material(
        KeyId=key,
        ImportToken=params["ImportToken"],
        EncryptedKeyMaterial=_wrap(params["PublicKey"], secret, "RSAES_OAEP_SHA_256"),
        ValidTo=valid_to,
    )
    meta = kms.describe_key(KeyId=key)["KeyMetadata"]
    assert (meta["KeyState"], meta["ExpirationModel"], meta["ValidTo"]) == (
        "Enabled",
        "KEY_MATERIAL_EXPIRES",
        valid_to,
    )
    assert meta["CurrentKeyMaterialId"] == out["KeyMaterialId"]
    blob = kms.encrypt(KeyId=key, Plaintext=b"mine", EncryptionContext={"c": "1"})["CiphertextBlob"]
    with pytest.raises(ClientError) as e:  # a token is used once; and rotation is not for imported keys
        kms.import_key_material(
            KeyId=key,
            ImportToken=params["ImportToken"],
            EncryptedKeyMaterial=b"x" * 256,
            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
        )
    assert code(e) == "InvalidImportTokenException"
    with pytest.raises(ClientError) as e:
        kms.enable_key_rotation(KeyId=key)
    assert code(e) == "UnsupportedOperationException"

    server.advance_clock("31d")
    meta = kms.describe_key(KeyId=key)["KeyMetadata"]
    assert meta["KeyState"] == "PendingImport" and "CurrentKeyMaterialId" not in meta
    with pytest.raises(ClientError) as e:
        kms.decrypt(CiphertextBlob=blob, EncryptionContext={"c": "1"})
    assert code(e) == "KMSInvalidStateException"
    params = kms.get_parameters_for_import(
        KeyId=key, WrappingAlgorithm="RSA_AES_KEY_WRAP_SHA_256", WrappingKeySpec="RSA_3072"
    )
    with pytest.raises(ClientError) as e:  # other material: refused
        kms.import_key_material(
            KeyId=key,
            ImportToken=params["ImportToken"],
            EncryptedKeyMaterial=_wrap(params["PublicKey"], os.urandom(32), "RSA_AES_KEY_WRAP_SHA_256"),
            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
        )
    assert code(e) == "IncorrectKeyMaterialException"
    kms.import_key_material(
        KeyId=key,
        ImportToken=params["ImportToken"],
        EncryptedKeyMaterial=_wrap(params["PublicKey"], secret, "RSA_AES_KEY_WRAP_SHA_256"),
        ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
    )
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext={"c": "1"})["Plaintext"] == b"mine"
    kms.delete_imported_key_material(KeyId=key)
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "PendingImport"
    with pytest.raises(ClientError) as e:  # only EXTERNAL keys take imported material
        kms.get_parameters_for_import(
            KeyId=kms.create_key()["KeyMetadata"]["KeyId"],
            WrappingAlgorithm="RSAES_OAEP_SHA_256",
            WrappingKeySpec="RSA_2048",
        )
    assert code(e) == "UnsupportedOperationException"


def test_keys_survive_kill_and_material_is_sealed(strata_factory) -> None:
    server = strata_factory()
    kms = server.client("kms")
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key, Plaintext=b"durable")["CiphertextBlob"]
    signer = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    sig = kms.sign(KeyId=signer, Message=b"m", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    server.kill()
    server.start()
    kms = server.client("kms")
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"durable"
    assert kms.verify(KeyId=signer, Message=b"m", Signature=sig, SigningAlgorithm="ECDSA_SHA_256")[
        "SignatureValid"
    ]
    root = server.data_dir / "kms" / "root.key"
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o600
    # The database holds no key material in the clear: the data key a blob was made with is sealed.
    db = (server.data_dir / "kms" / "kms.db").read_bytes()
    for wal in (server.data_dir / "kms").glob("kms.db-wal"):
        db += wal.read_bytes()
    assert b'"sealed"' in db and b"BEGIN PRIVATE KEY" not in db


def test_aws_cli_round_trip(strata_server, tmp_path) -> None:
    env = strata_server.env()
    aws = [sys.executable, "-m", "awscli"]

    def cli(*args: str) -> dict:
        out = subprocess.run(
            [*aws, "kms", *args, "--output", "json"], env=env, capture_output=True, check=True
        )
        return json.loads(out.stdout) if out.stdout.strip() else {}

    key = cli("create-key", "--description", "cli")["KeyMetadata"]["KeyId"]
    (tmp_path / "plain.txt").write_bytes(b"from the cli")
    blob = cli("encrypt", "--key-id", key, "--plaintext", f"fileb://{tmp_path / 'plain.txt'}")[
        "CiphertextBlob"
    ]
    (tmp_path / "blob.bin").write_bytes(base64.b64decode(blob))
    plain = cli("decrypt", "--ciphertext-blob", f"fileb://{tmp_path / 'blob.bin'}")["Plaintext"]
    assert base64.b64decode(plain) == b"from the cli"
