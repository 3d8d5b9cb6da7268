"""KMS's condition keys in key and IAM policies: the encryption context (kms:EncryptionContext:<key>
and kms:EncryptionContextKeys), the caller's account, the algorithm and the key's own attributes."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from tests.services.iam.conftest import ACCOUNT, ROOT
from tests.services.iam.test_iam import make_user


def _denied(call, **kwargs) -> None:
    with pytest.raises(ClientError) as e:
        call(**kwargs)
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"


def _user_policy(server, name: str, statement: dict) -> dict:
    creds = make_user(server, name)
    server.client("iam", **ROOT).put_user_policy(
        UserName=name,
        PolicyName="kms",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
    )
    return creds


def test_encryption_context_keys_decide_who_may_encrypt_and_decrypt(iam_server, unique) -> None:
    root = iam_server.client("kms", **ROOT)
    key = root.create_key()["KeyMetadata"]["KeyId"]  # the default policy delegates to IAM
    dave = iam_server.client(
        "kms",
        **_user_policy(
            iam_server,
            f"dave-{unique}",
            {
                "Effect": "Allow",
                "Action": ["kms:Encrypt", "kms:Decrypt"],
                "Resource": "*",
                "Condition": {"StringEquals": {"kms:EncryptionContext:Department": "Finance"}},
            },
        ),
    )
    finance = {"Department": "Finance"}
    blob = dave.encrypt(KeyId=key, Plaintext=b"ledger", EncryptionContext=finance)["CiphertextBlob"]
    assert dave.decrypt(CiphertextBlob=blob, EncryptionContext=finance)["Plaintext"] == b"ledger"
    # the key part of the condition key is matched without case, the value with it
    blob2 = dave.encrypt(KeyId=key, Plaintext=b"x", EncryptionContext={"department": "Finance"})[
        "CiphertextBlob"
    ]
    assert (
        dave.decrypt(CiphertextBlob=blob2, EncryptionContext={"department": "Finance"})["Plaintext"] == b"x"
    )
    _denied(dave.encrypt, KeyId=key, Plaintext=b"x", EncryptionContext={"Department": "finance"})
    _denied(dave.encrypt, KeyId=key, Plaintext=b"x", EncryptionContext={"Team": "Finance"})
    _denied(dave.encrypt, KeyId=key, Plaintext=b"x")  # no context at all
    # root still decrypts the context-free way; dave cannot without the context
    plain = root.encrypt(KeyId=key, Plaintext=b"plain")["CiphertextBlob"]
    _denied(dave.decrypt, CiphertextBlob=plain)


def test_encryption_context_keys_for_all_values(iam_server, unique) -> None:
    root = iam_server.client("kms", **ROOT)
    key = root.create_key()["KeyMetadata"]["KeyId"]
    erin = iam_server.client(
        "kms",
        **_user_policy(
            iam_server,
            f"erin-{unique}",
            {
                "Effect": "Allow",
                "Action": "kms:GenerateDataKey",
                "Resource": "*",
                "Condition": {
                    "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["Project", "Stage"]},
                    "Null": {"kms:EncryptionContextKeys": "false"},
                },
            },
        ),
    )
    erin.generate_data_key(KeyId=key, KeySpec="AES_256", EncryptionContext={"Project": "x"})
    erin.generate_data_key(KeyId=key, KeySpec="AES_256", EncryptionContext={"Project": "x", "Stage": "y"})
    _denied(erin.generate_data_key, KeyId=key, KeySpec="AES_256", EncryptionContext={"Owner": "z"})
    _denied(erin.generate_data_key, KeyId=key, KeySpec="AES_256")  # Null: false needs a context


def test_caller_account_algorithm_and_key_attributes_in_a_key_policy(iam_server, unique) -> None:
    root = iam_server.client("kms", **ROOT)
    name = f"fay-{unique}"
    fay = iam_server.client("kms", **make_user(iam_server, name))
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "admin",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                "Action": ["kms:DescribeKey", "kms:PutKeyPolicy", "kms:GetKeyPolicy"],
                "Resource": "*",
            },
            {
                "Sid": "fay",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/{name}"},
                "Action": ["kms:Encrypt", "kms:Decrypt"],
                "Resource": "*",
                "Condition": {
                    "StringEquals": {
                        "kms:CallerAccount": ACCOUNT,
                        "kms:KeySpec": "RSA_2048",
                        "kms:EncryptionAlgorithm": "RSAES_OAEP_SHA_256",
                    }
                },
            },
        ],
    }
    key = root.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT", Policy=json.dumps(policy))
    key_id = key["KeyMetadata"]["KeyId"]
    blob = fay.encrypt(KeyId=key_id, Plaintext=b"hi", EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    assert (
        fay.decrypt(
            KeyId=key_id, CiphertextBlob=blob["CiphertextBlob"], EncryptionAlgorithm="RSAES_OAEP_SHA_256"
        )["Plaintext"]
        == b"hi"
    )
    _denied(fay.encrypt, KeyId=key_id, Plaintext=b"hi", EncryptionAlgorithm="RSAES_OAEP_SHA_1")


def test_create_key_conditions_read_the_request(iam_server, unique) -> None:
    """kms:KeySpec on CreateKey is the spec asked for (SYMMETRIC_DEFAULT when none is)."""
    gus = iam_server.client(
        "kms",
        **_user_policy(
            iam_server,
            f"gus-{unique}",
            {
                "Effect": "Allow",
                "Action": "kms:CreateKey",
                "Resource": "*",
                "Condition": {"StringEquals": {"kms:KeySpec": "SYMMETRIC_DEFAULT"}},
            },
        ),
    )
    gus.create_key()
    _denied(gus.create_key, KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")


def test_request_alias_and_resource_aliases(iam_server, unique) -> None:
    root = iam_server.client("kms", **ROOT)
    key = root.create_key()["KeyMetadata"]["KeyId"]
    root.create_alias(AliasName=f"alias/app-{unique}", TargetKeyId=key)
    hal = iam_server.client(
        "kms",
        **_user_policy(
            iam_server,
            f"hal-{unique}",
            {
                "Effect": "Allow",
                "Action": "kms:Encrypt",
                "Resource": "*",
                "Condition": {"StringEquals": {"kms:RequestAlias": f"alias/app-{unique}"}},
            },
        ),
    )
    ivy = iam_server.client(
        "kms",
        **_user_policy(
            iam_server,
            f"ivy-{unique}",
            {
                "Effect": "Allow",
                "Action": "kms:Encrypt",
                "Resource": "*",
                "Condition": {"ForAnyValue:StringLike": {"kms:ResourceAliases": "alias/app-*"}},
            },
        ),
    )
    hal.encrypt(KeyId=f"alias/app-{unique}", Plaintext=b"x")
    _denied(hal.encrypt, KeyId=key, Plaintext=b"x")  # named by id, not through the alias
    ivy.encrypt(KeyId=key, Plaintext=b"x")  # the key has an alias that matches
    other = root.create_key()["KeyMetadata"]["KeyId"]
    _denied(ivy.encrypt, KeyId=other, Plaintext=b"x")
