"""KMS key policies and grants through the one policy engine: the key policy decides, an IAM
policy counts only where the key policy delegates to the account, a grant allows its grantee."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from tests.services.iam.conftest import ACCOUNT, ROOT
from tests.services.iam.test_iam import make_user

KMS_ALL = "arn:aws:iam::aws:policy/AdministratorAccess"


def _code(e: pytest.ExceptionInfo) -> str:
    return e.value.response["Error"]["Code"]


def test_default_key_policy_delegates_to_iam(iam_server, unique) -> None:
    root = iam_server.client("kms", **ROOT)
    key = root.create_key()["KeyMetadata"]["KeyId"]
    admin = iam_server.client("kms", **make_user(iam_server, f"adm-{unique}", KMS_ALL))
    nobody = iam_server.client("kms", **make_user(iam_server, f"none-{unique}"))
    assert admin.encrypt(KeyId=key, Plaintext=b"x")["KeyId"].endswith(key)
    with pytest.raises(ClientError) as e:
        nobody.encrypt(KeyId=key, Plaintext=b"x")
    assert _code(e) == "AccessDeniedException"
    assert "kms:Encrypt" in e.value.response["Error"]["Message"]


def test_a_key_policy_that_names_one_user_decides_alone(iam_server, unique) -> None:
    root = iam_server.client("kms", **ROOT)
    admin_name, bob_name = f"adm2-{unique}", f"bob-{unique}"
    admin = iam_server.client("kms", **make_user(iam_server, admin_name, KMS_ALL))
    bob = iam_server.client("kms", **make_user(iam_server, bob_name))
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "root",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                "Action": [
                    "kms:DescribeKey",
                    "kms:PutKeyPolicy",
                    "kms:GetKeyPolicy",
                    "kms:ScheduleKeyDeletion",
                ],
                "Resource": "*",
            },
            {
                "Sid": "bob",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/{bob_name}"},
                "Action": ["kms:Encrypt", "kms:Decrypt"],
                "Resource": "*",
            },
        ],
    }
    key = root.create_key(Policy=json.dumps(policy))["KeyMetadata"]["KeyId"]
    blob = bob.encrypt(KeyId=key, Plaintext=b"only bob")["CiphertextBlob"]  # the key policy alone allows bob
    assert bob.decrypt(CiphertextBlob=blob)["Plaintext"] == b"only bob"
    # AdministratorAccess does not reach a key whose policy does not delegate Encrypt to the account.
    with pytest.raises(ClientError) as e:
        admin.encrypt(KeyId=key, Plaintext=b"x")
    assert _code(e) == "AccessDeniedException"
    with pytest.raises(ClientError) as e:
        admin.decrypt(CiphertextBlob=blob)
    assert _code(e) == "AccessDeniedException"


def test_a_grant_allows_its_grantee(iam_server, unique) -> None:
    root = iam_server.client("kms", **ROOT)
    name = f"carol-{unique}"
    carol = iam_server.client("kms", **make_user(iam_server, name))
    key = root.create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError):
        carol.encrypt(KeyId=key, Plaintext=b"x")
    grant = root.create_grant(
        KeyId=key, GranteePrincipal=f"arn:aws:iam::{ACCOUNT}:user/{name}", Operations=["Encrypt"]
    )
    carol.encrypt(KeyId=key, Plaintext=b"x")
    with pytest.raises(ClientError):  # the grant gives Encrypt only
        carol.decrypt(CiphertextBlob=root.encrypt(KeyId=key, Plaintext=b"y")["CiphertextBlob"])
    root.revoke_grant(KeyId=key, GrantId=grant["GrantId"])
    with pytest.raises(ClientError):
        carol.encrypt(KeyId=key, Plaintext=b"x")
