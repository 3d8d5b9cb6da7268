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


def _admin_statement(*actions: str) -> dict:
    return {
        "Sid": "root",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
        "Action": list(actions),
        "Resource": "*",
    }


def _policy(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def test_re_encrypt_needs_from_on_the_source_and_to_on_the_destination(iam_server, unique) -> None:
    root = iam_server.client("kms", **ROOT)
    name = f"re-{unique}"
    user = make_user(iam_server, name)
    user_arn = f"arn:aws:iam::{ACCOUNT}:user/{name}"
    iam_server.client("iam", **ROOT).put_user_policy(
        UserName=name,
        PolicyName="re",
        PolicyDocument=_policy({"Effect": "Allow", "Action": "kms:ReEncrypt*", "Resource": "*"}),
    )
    kms = iam_server.client("kms", **user)
    source = root.create_key()["KeyMetadata"]  # the default policy: IAM policies count
    # The destination's policy does not delegate to IAM: only its admin actions and Encrypt.
    admin = _admin_statement("kms:DescribeKey", "kms:PutKeyPolicy", "kms:CreateGrant", "kms:Encrypt")
    dest = root.create_key(Policy=_policy(admin))["KeyMetadata"]
    blob = root.encrypt(KeyId=source["KeyId"], Plaintext=b"secret")["CiphertextBlob"]
    with pytest.raises(ClientError) as e:
        kms.re_encrypt(CiphertextBlob=blob, DestinationKeyId=dest["KeyId"])
    assert _code(e) == "AccessDeniedException"
    message = e.value.response["Error"]["Message"]
    assert message.startswith(f"User: {user_arn} is not authorized to perform: kms:ReEncryptTo on resource: ")
    assert dest["Arn"] in message
    # Within one key it is both actions on that key: allowed by the identity policy.
    assert kms.re_encrypt(CiphertextBlob=blob, DestinationKeyId=source["KeyId"])["KeyId"] == source["Arn"]
    # A grant of ReEncryptTo on the destination key completes the pair.
    root.create_grant(KeyId=dest["KeyId"], GranteePrincipal=user_arn, Operations=["ReEncryptTo"])
    out = kms.re_encrypt(CiphertextBlob=blob, DestinationKeyId=dest["KeyId"])
    assert out["KeyId"] == dest["Arn"] and out["SourceKeyId"] == source["Arn"]
    # The other way round the destination is the source: ReEncryptFrom there is not granted.
    with pytest.raises(ClientError) as e:
        kms.re_encrypt(CiphertextBlob=out["CiphertextBlob"], DestinationKeyId=source["KeyId"])
    assert "kms:ReEncryptFrom" in e.value.response["Error"]["Message"]
    # An identity policy allowing only ReEncryptFrom does not reach ReEncryptTo.
    iam_server.client("iam", **ROOT).put_user_policy(
        UserName=name,
        PolicyName="re",
        PolicyDocument=_policy({"Effect": "Allow", "Action": "kms:ReEncryptFrom", "Resource": "*"}),
    )
    with pytest.raises(ClientError) as e:
        kms.re_encrypt(CiphertextBlob=blob, DestinationKeyId=source["KeyId"])
    assert "kms:ReEncryptTo" in e.value.response["Error"]["Message"]


LOCKOUT = "The new key policy will not allow you to update the key policy in the future."


def test_key_policy_lockout_safety_check(iam_server, unique) -> None:
    root = iam_server.client("kms", **ROOT)
    bob = f"arn:aws:iam::{ACCOUNT}:user/bob-{unique}"
    make_user(iam_server, f"bob-{unique}")
    only_bob = _policy({"Effect": "Allow", "Principal": {"AWS": bob}, "Action": "kms:*", "Resource": "*"})
    with pytest.raises(ClientError) as e:
        root.create_key(Policy=only_bob)
    assert _code(e) == "MalformedPolicyDocumentException"
    assert e.value.response["Error"]["Message"] == LOCKOUT
    key = root.create_key(Policy=only_bob, BypassPolicyLockoutSafetyCheck=True)["KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError) as e:  # the root really is locked out now
        root.put_key_policy(KeyId=key, PolicyName="default", Policy=only_bob)
    assert _code(e) == "AccessDeniedException"
    # PutKeyPolicy runs the same check.
    other = root.create_key()["KeyMetadata"]["KeyId"]
    no_admin = _policy(_admin_statement("kms:Encrypt", "kms:Decrypt"))
    with pytest.raises(ClientError) as e:
        root.put_key_policy(KeyId=other, PolicyName="default", Policy=no_admin)
    assert e.value.response["Error"]["Message"] == LOCKOUT
    root.put_key_policy(KeyId=other, PolicyName="default", Policy=_policy(_admin_statement("kms:*")))
    # A key policy delegating to the account keeps an IAM user able only where its IAM policies
    # allow kms:PutKeyPolicy.
    maker = f"maker-{unique}"
    creds = make_user(iam_server, maker)
    iam_server.client("iam", **ROOT).put_user_policy(
        UserName=maker,
        PolicyName="create",
        PolicyDocument=_policy({"Effect": "Allow", "Action": "kms:CreateKey", "Resource": "*"}),
    )
    delegating = _policy(_admin_statement("kms:*"))
    with pytest.raises(ClientError) as e:
        iam_server.client("kms", **creds).create_key(Policy=delegating)
    assert e.value.response["Error"]["Message"] == LOCKOUT
    iam_server.client("kms", **make_user(iam_server, f"kadm-{unique}", KMS_ALL)).create_key(Policy=delegating)


def test_grant_constraints_limit_a_grant_to_an_encryption_context(iam_server, unique) -> None:
    root = iam_server.client("kms", **ROOT)
    name = f"dana-{unique}"
    dana = iam_server.client("kms", **make_user(iam_server, name))
    dana_arn = f"arn:aws:iam::{ACCOUNT}:user/{name}"
    key = root.create_key()["KeyMetadata"]["KeyId"]
    grant = root.create_grant(
        KeyId=key,
        GranteePrincipal=dana_arn,
        Operations=["Encrypt", "Decrypt", "DescribeKey", "CreateGrant"],
        Constraints={"EncryptionContextSubset": {"Dept": "IT"}},
    )
    listed = root.list_grants(KeyId=key, GrantId=grant["GrantId"])["Grants"][0]
    assert listed["Constraints"] == {"EncryptionContextSubset": {"Dept": "IT"}}
    # The context must include the pair: the key is not case sensitive, the value is.
    blob = dana.encrypt(KeyId=key, Plaintext=b"x", EncryptionContext={"dept": "IT", "more": "ok"})
    assert (
        dana.decrypt(CiphertextBlob=blob["CiphertextBlob"], EncryptionContext={"dept": "IT", "more": "ok"})[
            "Plaintext"
        ]
        == b"x"
    )
    for context in ({}, {"Dept": "it"}, {"Other": "IT"}):
        with pytest.raises(ClientError) as e:
            dana.encrypt(KeyId=key, Plaintext=b"x", EncryptionContext=context)
        assert _code(e) == "AccessDeniedException"
    dana.describe_key(KeyId=key)  # the constraint does not apply to DescribeKey
    # Grants dana creates through the grant must be at least as strict.
    with pytest.raises(ClientError) as e:
        dana.create_grant(KeyId=key, GranteePrincipal=dana_arn, Operations=["Encrypt"])
    assert _code(e) == "AccessDeniedException"
    with pytest.raises(ClientError):
        dana.create_grant(
            KeyId=key,
            GranteePrincipal=dana_arn,
            Operations=["Encrypt"],
            Constraints={"EncryptionContextSubset": {"Team": "a"}},
        )
    dana.create_grant(
        KeyId=key,
        GranteePrincipal=dana_arn,
        Operations=["Encrypt"],
        Constraints={"EncryptionContextEquals": {"Dept": "IT", "Team": "a"}},
    )
    # EncryptionContextEquals: exactly these pairs, no more.
    eve_name = f"eve-{unique}"
    eve = iam_server.client("kms", **make_user(iam_server, eve_name))
    root.create_grant(
        KeyId=key,
        GranteePrincipal=f"arn:aws:iam::{ACCOUNT}:user/{eve_name}",
        Operations=["Encrypt"],
        Constraints={"EncryptionContextEquals": {"App": "web"}},
    )
    eve.encrypt(KeyId=key, Plaintext=b"x", EncryptionContext={"App": "web"})
    with pytest.raises(ClientError):
        eve.encrypt(KeyId=key, Plaintext=b"x", EncryptionContext={"App": "web", "Extra": "1"})
    # Constraints need a symmetric encryption key.
    signing = root.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError) as e:
        root.create_grant(
            KeyId=signing,
            GranteePrincipal=dana_arn,
            Operations=["Sign"],
            Constraints={"EncryptionContextSubset": {"Dept": "IT"}},
        )
    assert _code(e) == "ValidationException"
