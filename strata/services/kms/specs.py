"""KMS key specs as data: which usages each spec allows, and the algorithms of each pair.

Strata serves the specs `cryptography` implements with AWS's algorithms; the rest of the model's
enum (SM2, ML-DSA, ML-KEM, Ed25519's pre-hash variant, key agreement) is refused with
UnsupportedOperationException rather than accepted as a key that could not do its job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

SYMMETRIC = "SYMMETRIC_DEFAULT"
ENCRYPT = "ENCRYPT_DECRYPT"
SIGN = "SIGN_VERIFY"
MAC = "GENERATE_VERIFY_MAC"

_RSA_SIGNING = (
    "RSASSA_PSS_SHA_256",
    "RSASSA_PSS_SHA_384",
    "RSASSA_PSS_SHA_512",
    "RSASSA_PKCS1_V1_5_SHA_256",
    "RSASSA_PKCS1_V1_5_SHA_384",
    "RSASSA_PKCS1_V1_5_SHA_512",
)
_RSA_ENCRYPTION = ("RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256")


@dataclass(frozen=True)
class KeySpec:
    name: str
    family: str  # "symmetric", "rsa", "ec", "hmac"
    usages: dict[str, tuple[str, ...]]  # usage -> the algorithms the key offers for it
    bits: int = 0  # RSA modulus or HMAC key size in bits


SPECS: dict[str, KeySpec] = {
    s.name: s
    for s in [
        KeySpec(SYMMETRIC, "symmetric", {ENCRYPT: (SYMMETRIC,)}, 256),
        KeySpec("RSA_2048", "rsa", {ENCRYPT: _RSA_ENCRYPTION, SIGN: _RSA_SIGNING}, 2048),
        KeySpec("RSA_3072", "rsa", {ENCRYPT: _RSA_ENCRYPTION, SIGN: _RSA_SIGNING}, 3072),
        KeySpec("RSA_4096", "rsa", {ENCRYPT: _RSA_ENCRYPTION, SIGN: _RSA_SIGNING}, 4096),
        KeySpec("ECC_NIST_P256", "ec", {SIGN: ("ECDSA_SHA_256",)}, 256),
        KeySpec("ECC_NIST_P384", "ec", {SIGN: ("ECDSA_SHA_384",)}, 384),
        KeySpec("ECC_NIST_P521", "ec", {SIGN: ("ECDSA_SHA_512",)}, 521),
        KeySpec("ECC_SECG_P256K1", "ec", {SIGN: ("ECDSA_SHA_256",)}, 256),
        KeySpec("HMAC_224", "hmac", {MAC: ("HMAC_SHA_224",)}, 224),
        KeySpec("HMAC_256", "hmac", {MAC: ("HMAC_SHA_256",)}, 256),
        KeySpec("HMAC_384", "hmac", {MAC: ("HMAC_SHA_384",)}, 384),
        KeySpec("HMAC_512", "hmac", {MAC: ("HMAC_SHA_512",)}, 512),
    ]
}

# Data key pairs (GenerateDataKeyPair) Strata can make: the asymmetric specs above.
DATA_KEY_PAIR_SPECS = frozenset(name for name, s in SPECS.items() if s.family in ("rsa", "ec"))

# The largest plaintext RSAES_OAEP takes per key size and hash (AWS's documented table).
RSA_MAX_PLAINTEXT = {
    ("RSA_2048", "RSAES_OAEP_SHA_1"): 214,
    ("RSA_2048", "RSAES_OAEP_SHA_256"): 190,
    ("RSA_3072", "RSAES_OAEP_SHA_1"): 342,
    ("RSA_3072", "RSAES_OAEP_SHA_256"): 318,
    ("RSA_4096", "RSAES_OAEP_SHA_1"): 470,
    ("RSA_4096", "RSAES_OAEP_SHA_256"): 446,
}

# Digest length each signing algorithm expects for MessageType=DIGEST.
DIGEST_BYTES = {
    "RSASSA_PSS_SHA_256": 32,
    "RSASSA_PSS_SHA_384": 48,
    "RSASSA_PSS_SHA_512": 64,
    "RSASSA_PKCS1_V1_5_SHA_256": 32,
    "RSASSA_PKCS1_V1_5_SHA_384": 48,
    "RSASSA_PKCS1_V1_5_SHA_512": 64,
    "ECDSA_SHA_256": 32,
    "ECDSA_SHA_384": 48,
    "ECDSA_SHA_512": 64,
}

# The KMS operations a grant can allow (GrantOperation), by kind of key.
_GRANT_ANY = frozenset({"CreateGrant", "RetireGrant", "DescribeKey"})
_GRANT_SYMMETRIC = frozenset(
    {
        "Decrypt",
        "Encrypt",
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
        "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext",
        "ReEncryptFrom",
        "ReEncryptTo",
    }
)
_GRANT_ASYMMETRIC_ENCRYPT = frozenset({"Decrypt", "Encrypt", "ReEncryptFrom", "ReEncryptTo", "GetPublicKey"})
_GRANT_SIGN = frozenset({"Sign", "Verify", "GetPublicKey"})
_GRANT_MAC = frozenset({"GenerateMac", "VerifyMac"})


def grant_operations(spec: str, usage: str) -> frozenset[str]:
    """The GrantOperation values a grant on a key of this spec and usage may allow."""
    if spec == SYMMETRIC:
        return _GRANT_ANY | _GRANT_SYMMETRIC
    if usage == ENCRYPT:
        return _GRANT_ANY | _GRANT_ASYMMETRIC_ENCRYPT
    return _GRANT_ANY | (_GRANT_SIGN if usage == SIGN else _GRANT_MAC)


# Limits AWS documents (Quotas: "Resource quotas" and the API reference).
MAX_TAGS = 50
ROTATION_PERIOD_DAYS = (90, 2560)
DEFAULT_ROTATION_DAYS = 365
PENDING_WINDOW_DAYS = (7, 30)
DEFAULT_PENDING_WINDOW_DAYS = 30
MAX_POLICY_BYTES = 32768
ALIASES_AWS_MANAGED = ("aws/s3", "aws/ebs", "aws/rds", "aws/dynamodb", "aws/elasticfilesystem")


# Where an AWS service calls KMS from (kms:ViaService), by the managed key alias of the service.
VIA_SERVICE_HOSTS = {
    "aws/s3": "s3",
    "aws/ebs": "ec2",
    "aws/rds": "rds",
    "aws/dynamodb": "dynamodb",
    "aws/elasticfilesystem": "elasticfilesystem",
}
VIA_SERVICE = "x-strata-via-service"  # the request member a calling service sets (kms:ViaService)


def via_service(alias: str, region: str) -> str:
    """kms:ViaService of calls a service makes for its callers, e.g. `s3.us-east-1.amazonaws.com`."""
    service = VIA_SERVICE_HOSTS.get(alias) or alias.removeprefix("aws/")  # (aws/elasticache ...)
    return f"{service}.{region}.amazonaws.com"


def managed_key_policy(account: str, region: str, alias: str) -> str:
    """The policy of an AWS managed key (`aws/s3` ...), as AWS writes it: every principal of the
    account may use the key through that service only; direct calls may only read its metadata."""
    service = alias.removeprefix("aws/")
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Id": f"auto-{service}-2",
            "Statement": [
                {
                    "Sid": f"Allow access through {service} for all principals in the account that are authorized to use {service}",
                    "Effect": "Allow",
                    "Principal": {"AWS": "*"},
                    "Action": [
                        "kms:Encrypt",
                        "kms:Decrypt",
                        "kms:ReEncrypt*",
                        "kms:GenerateDataKey*",
                        "kms:CreateGrant",
                        "kms:DescribeKey",
                    ],
                    "Resource": "*",
                    "Condition": {
                        "StringEquals": {
                            "kms:CallerAccount": account,
                            "kms:ViaService": via_service(alias, region),
                        }
                    },
                },
                {
                    "Sid": "Allow direct access to key metadata to the account",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                    "Action": ["kms:Describe*", "kms:Get*", "kms:List*"],
                    "Resource": "*",
                },
            ],
        },
        indent=2,
    )


def default_key_policy(account: str) -> str:
    """The policy AWS gives a key created without one: the account's IAM policies decide."""
    return (
        '{\n  "Version" : "2012-10-17",\n  "Id" : "key-default-1",\n  "Statement" : [ {\n'
        '    "Sid" : "Enable IAM User Permissions",\n    "Effect" : "Allow",\n'
        f'    "Principal" : {{\n      "AWS" : "arn:aws:iam::{account}:root"\n    }},\n'
        '    "Action" : "kms:*",\n    "Resource" : "*"\n  } ]\n}'
    )
