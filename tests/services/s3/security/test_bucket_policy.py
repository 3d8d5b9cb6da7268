"""Bucket policies evaluated with identity policies by the one engine: the seed's EnforceTLS Deny
over http and https, aws:SourceIp, s3:x-amz-server-side-encryption, prefixes, cross-account
grants, and the anonymous principal of unsigned requests (boto3 with UNSIGNED)."""

from __future__ import annotations

import http.client
import json
import urllib.parse

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.services.iam.conftest import ACCOUNT, ALT_ACCOUNT
from tests.services.s3.security.conftest import code_of, put_policy


def test_seed_enforce_tls_policy_over_http_and_https(server, owner, bucket):
    # The seed's "S3 Security Best Practices" bucket policy, unchanged but for the bucket name.
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "EnforceTLS",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [f"arn:aws:s3:::{bucket}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }
    owner.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    assert json.loads(owner.get_bucket_policy(Bucket=bucket)["Policy"]) == policy
    assert owner.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is False
    # Over http the Deny binds everyone, the bucket owner's root included.
    assert code_of(owner.get_object, Bucket=bucket, Key="shared/a.txt") == "AccessDenied"
    assert code_of(owner.put_object, Bucket=bucket, Key="x", Body=b"x") == "AccessDenied"
    # The policy names objects only: the bucket itself is still listable over http.
    assert owner.list_objects_v2(Bucket=bucket)["KeyCount"] == 2
    tls = boto3.client(
        "s3",
        endpoint_url=server.https_endpoint,
        region_name="us-east-1",
        verify=str(server.ca_path),
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    assert tls.get_object(Bucket=bucket, Key="shared/a.txt")["Body"].read() == b"shared/a.txt"
    tls.put_object(Bucket=bucket, Key="x", Body=b"over tls")
    owner.delete_bucket_policy(Bucket=bucket)
    assert owner.get_object(Bucket=bucket, Key="x")["Body"].read() == b"over tls"


def test_policy_crud_and_malformed_policies(owner, bucket):
    assert code_of(owner.get_bucket_policy, Bucket=bucket) == "NoSuchBucketPolicy"
    assert code_of(owner.get_bucket_policy_status, Bucket=bucket) == "NoSuchBucketPolicy"
    owner.delete_bucket_policy(Bucket=bucket)  # deleting no policy succeeds, as in S3
    good = {"Effect": "Allow", "Principal": {"AWS": ALT_ACCOUNT}, "Action": "s3:GetObject"}
    cases = {
        "not json": "Policies must be valid JSON and the first byte must be '{'",
        '{"Statement": [': "This policy contains invalid Json",
        json.dumps(
            {"Statement": [{**good, "Principal": None, "Resource": f"arn:aws:s3:::{bucket}/*"}]}
        ): None,
        json.dumps(
            {
                "Statement": [
                    {k: v for k, v in good.items() if k != "Principal"}
                    | {"Resource": f"arn:aws:s3:::{bucket}/*"}
                ]
            }
        ): "Missing required field Principal",
        json.dumps(
            {"Statement": [{**good, "Resource": "arn:aws:s3:::another-bucket/*"}]}
        ): "Policy has invalid resource",
        json.dumps({"Statement": [{**good, "Resource": "*"}]}): "Policy has invalid resource",
        json.dumps(
            {"Statement": [{**good, "Action": "ec2:RunInstances", "Resource": f"arn:aws:s3:::{bucket}/*"}]}
        ): "Policy has invalid action",
        json.dumps(
            {"Statement": [{**good, "Action": "s3:NoSuchThing", "Resource": f"arn:aws:s3:::{bucket}/*"}]}
        ): "Policy has invalid action",
        json.dumps(
            {
                "Statement": [
                    {**good, "Principal": {"AWS": "not-an-account"}, "Resource": f"arn:aws:s3:::{bucket}/*"}
                ]
            }
        ): "Invalid principal in policy",
        json.dumps(
            {
                "Statement": [
                    {
                        **good,
                        "Resource": f"arn:aws:s3:::{bucket}/*",
                        "Condition": {"StringEquals": {"foo:bar": "x"}},
                    }
                ]
            }
        ): "Policy has an invalid condition key",
        json.dumps(
            {"Statement": [{**good, "Resource": f"arn:aws:s3:::{bucket}/*", "Sid": "x" * 21000}]}
        ): "Policy exceeds the maximum allowed document size.",
    }
    for text, message in cases.items():
        with pytest.raises(ClientError) as e:
            owner.put_bucket_policy(Bucket=bucket, Policy=text)
        assert e.value.response["Error"]["Code"] == "MalformedPolicy", text
        if message:
            assert e.value.response["Error"]["Message"] == message, text
    assert code_of(owner.get_bucket_policy, Bucket=bucket) == "NoSuchBucketPolicy"
    put_policy(
        owner, bucket, {**good, "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/shared/*"]}
    )
    assert owner.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is False
    assert code_of(owner.put_bucket_policy, Bucket="no-such-bucket-pol", Policy="{}") == "NoSuchBucket"


def test_cross_account_grant_on_a_prefix(owner, other, bucket):
    # Without a grant, another account reaches nothing.
    assert code_of(other.get_object, Bucket=bucket, Key="shared/a.txt") == "AccessDenied"
    assert code_of(other.get_bucket_policy, Bucket=bucket) == "AccessDenied"
    put_policy(
        owner,
        bucket,
        {
            "Sid": "ShareThePrefix",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ALT_ACCOUNT}:root"},
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": f"arn:aws:s3:::{bucket}/shared/*",
        },
    )
    assert other.get_object(Bucket=bucket, Key="shared/a.txt")["Body"].read() == b"shared/a.txt"
    other.put_object(Bucket=bucket, Key="shared/from-other", Body=b"hi")
    assert owner.get_object(Bucket=bucket, Key="shared/from-other")["Body"].read() == b"hi"
    # Outside the prefix, and actions not granted, stay denied.
    assert code_of(other.get_object, Bucket=bucket, Key="private/b.txt") == "AccessDenied"
    assert code_of(other.put_object, Bucket=bucket, Key="private/x", Body=b"x") == "AccessDenied"
    assert code_of(other.delete_object, Bucket=bucket, Key="shared/a.txt") == "AccessDenied"
    assert code_of(other.list_objects_v2, Bucket=bucket) == "AccessDenied"
    assert code_of(other.put_bucket_policy, Bucket=bucket, Policy="{}") == "AccessDenied"


def test_policy_grants_and_denies_users_of_the_owner_account(owner, alice, bucket):
    user = f"arn:aws:iam::{ACCOUNT}:user/alice"
    # alice may read (AmazonS3ReadOnlyAccess) but not write.
    assert code_of(alice.put_object, Bucket=bucket, Key="alice/x", Body=b"x") == "AccessDenied"
    put_policy(
        owner,
        bucket,
        {
            "Effect": "Allow",
            "Principal": {"AWS": user},
            "Action": "s3:PutObject",
            "Resource": f"arn:aws:s3:::{bucket}/alice/*",
        },
        {
            "Effect": "Deny",
            "Principal": {"AWS": user},
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/private/*",
        },
    )
    alice.put_object(Bucket=bucket, Key="alice/x", Body=b"x")  # the bucket policy names her: enough
    assert code_of(alice.put_object, Bucket=bucket, Key="shared/x", Body=b"x") == "AccessDenied"
    assert alice.get_object(Bucket=bucket, Key="shared/a.txt")["Body"].read() == b"shared/a.txt"
    assert code_of(alice.get_object, Bucket=bucket, Key="private/b.txt") == "AccessDenied"  # explicit deny


def test_source_ip_condition(owner, other, bucket):
    put_policy(
        owner,
        bucket,
        {
            "Effect": "Allow",
            "Principal": {"AWS": ALT_ACCOUNT},
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/*",
            "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}},
        },
        {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/private/*",
            "Condition": {"NotIpAddress": {"aws:SourceIp": "10.1.0.0/16"}},
        },
    )
    assert other.get_object(Bucket=bucket, Key="shared/a.txt")["Body"].read() == b"shared/a.txt"
    assert code_of(other.get_object, Bucket=bucket, Key="private/b.txt") == "AccessDenied"
    assert code_of(owner.get_object, Bucket=bucket, Key="private/b.txt") == "AccessDenied"
    put_policy(
        owner,
        bucket,
        {
            "Effect": "Allow",
            "Principal": {"AWS": ALT_ACCOUNT},
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/*",
            "Condition": {"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.168.0.0/16"]}},
        },
    )
    assert code_of(other.get_object, Bucket=bucket, Key="shared/a.txt") == "AccessDenied"
    assert owner.get_object(Bucket=bucket, Key="private/b.txt")["Body"].read() == b"private/b.txt"


def test_server_side_encryption_condition(owner, other, bucket):
    # AWS's documented "deny unencrypted object uploads" policy.
    put_policy(
        owner,
        bucket,
        {
            "Sid": "DenyIncorrectEncryptionHeader",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": f"arn:aws:s3:::{bucket}/*",
            "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption": "AES256"}},
        },
        {
            "Effect": "Allow",
            "Principal": {"AWS": ALT_ACCOUNT},
            "Action": "s3:PutObject",
            "Resource": f"arn:aws:s3:::{bucket}/*",
        },
    )
    assert code_of(owner.put_object, Bucket=bucket, Key="plain", Body=b"x") == "AccessDenied"
    assert code_of(other.put_object, Bucket=bucket, Key="plain", Body=b"x") == "AccessDenied"
    owner.put_object(Bucket=bucket, Key="enc", Body=b"x", ServerSideEncryption="AES256")
    other.put_object(Bucket=bucket, Key="enc2", Body=b"x", ServerSideEncryption="AES256")


def test_anonymous_access_only_where_a_policy_makes_it_public(owner, anonymous, bucket):
    assert code_of(anonymous.get_object, Bucket=bucket, Key="shared/a.txt") == "AccessDenied"
    assert code_of(anonymous.list_objects_v2, Bucket=bucket) == "AccessDenied"
    assert code_of(anonymous.list_buckets) == "AccessDenied"
    assert code_of(anonymous.create_bucket, Bucket=f"{bucket}-anon") == "AccessDenied"
    public_read = {
        "Sid": "PublicRead",
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/shared/*",
    }
    # Block Public Access is on for a new bucket: a public policy is refused.
    assert code_of(put_policy, owner, bucket, public_read) == "AccessDenied"
    owner.delete_public_access_block(Bucket=bucket)
    put_policy(owner, bucket, public_read)
    assert owner.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is True
    assert anonymous.get_object(Bucket=bucket, Key="shared/a.txt")["Body"].read() == b"shared/a.txt"
    assert anonymous.head_object(Bucket=bucket, Key="shared/a.txt")["ContentLength"] == len("shared/a.txt")
    assert code_of(anonymous.get_object, Bucket=bucket, Key="private/b.txt") == "AccessDenied"
    assert code_of(anonymous.put_object, Bucket=bucket, Key="shared/new", Body=b"x") == "AccessDenied"
    assert code_of(anonymous.delete_object, Bucket=bucket, Key="shared/a.txt") == "AccessDenied"
    assert code_of(anonymous.get_bucket_policy, Bucket=bucket) == "AccessDenied"


def test_owner_root_can_always_manage_a_policy_that_denies_it(owner, bucket):
    put_policy(
        owner,
        bucket,
        {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
        },
    )
    assert code_of(owner.get_object, Bucket=bucket, Key="shared/a.txt") == "AccessDenied"
    assert code_of(owner.list_objects_v2, Bucket=bucket) == "AccessDenied"
    assert "Deny" in owner.get_bucket_policy(Bucket=bucket)["Policy"]
    owner.delete_bucket_policy(Bucket=bucket)
    assert owner.get_object(Bucket=bucket, Key="shared/a.txt")["Body"].read() == b"shared/a.txt"


def test_copy_source_is_authorized_against_its_own_bucket(owner, other, unique, bucket):
    # Another account copying out of this account's bucket into its own needs this bucket's grant.
    theirs = f"dst-{unique}"
    other.create_bucket(Bucket=theirs)
    source = {"Bucket": bucket, "Key": "private/b.txt"}
    assert code_of(other.copy_object, Bucket=theirs, Key="stolen", CopySource=source) == "AccessDenied"
    upload = other.create_multipart_upload(Bucket=theirs, Key="stolen-mpu")["UploadId"]
    assert (
        code_of(
            other.upload_part_copy,
            Bucket=theirs,
            Key="stolen-mpu",
            UploadId=upload,
            PartNumber=1,
            CopySource=source,
        )
        == "AccessDenied"
    )
    put_policy(
        owner,
        bucket,
        {
            "Effect": "Allow",
            "Principal": {"AWS": ALT_ACCOUNT},
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/shared/*",
        },
    )
    other.copy_object(Bucket=theirs, Key="copied", CopySource={"Bucket": bucket, "Key": "shared/a.txt"})
    assert other.get_object(Bucket=theirs, Key="copied")["Body"].read() == b"shared/a.txt"
    assert code_of(other.copy_object, Bucket=theirs, Key="stolen", CopySource=source) == "AccessDenied"
    # A Deny on the source binds its own account's root too.
    put_policy(
        owner,
        bucket,
        {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/private/*",
        },
    )
    assert code_of(owner.copy_object, Bucket=bucket, Key="copy", CopySource=source) == "AccessDenied"
    owner.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "shared/a.txt"})


def test_anonymous_principal_type_condition(owner, anonymous, other, bucket):
    # Public, but not for the anonymous principal: aws:PrincipalType is "Anonymous" for it.
    owner.delete_public_access_block(Bucket=bucket)
    put_policy(
        owner,
        bucket,
        {
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/shared/*",
            "Condition": {"StringNotEquals": {"aws:PrincipalType": "Anonymous"}},
        },
    )
    assert code_of(anonymous.get_object, Bucket=bucket, Key="shared/a.txt") == "AccessDenied"
    assert other.get_object(Bucket=bucket, Key="shared/a.txt")["Body"].read() == b"shared/a.txt"


def test_presigned_urls_and_forms_stop_working_when_their_signer_loses_the_permission(server, bucket, unique):
    """A presigned URL or POST form is its signer's request: decided by the signer's policies when
    it is used, not when it was made."""
    import requests

    from tests.services.s3.test_presigned import multipart_form

    iam = server.client("iam")
    user = f"carol-{unique}"
    iam.create_user(UserName=user)
    statement = {
        "Effect": "Allow",
        "Action": ["s3:GetObject", "s3:PutObject"],
        "Resource": f"arn:aws:s3:::{bucket}/*",
    }
    iam.put_user_policy(
        UserName=user,
        PolicyName="rw",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
    )
    key = iam.create_access_key(UserName=user)["AccessKey"]
    carol = server.client("s3", access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"])
    url = carol.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "shared/a.txt"})
    post = carol.generate_presigned_post(Bucket=bucket, Key="posted.txt")
    body, ctype = multipart_form(post["fields"], "posted.txt", b"form")

    def form() -> int:
        return requests.post(post["url"], data=body, headers={"Content-Type": ctype}, timeout=60).status_code

    assert requests.get(url, timeout=60).content == b"shared/a.txt"
    assert form() == 204
    iam.delete_user_policy(UserName=user, PolicyName="rw")
    assert requests.get(url, timeout=60).status_code == 403
    assert form() == 403


def test_encrypted_objects_for_anonymous_and_another_account(server, owner, other, anonymous, bucket, unique):
    """Encryption layer, allowed and denied: a public SSE-S3 object reads anonymously, an SSE-KMS
    one does not; another account granted by the bucket policy reads SSE-KMS objects only under a
    key whose policy lets it in (not the account's AWS managed aws/s3 key)."""
    kms = server.client("kms")
    shared = kms.create_key(
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                        "Action": "kms:*",
                        "Resource": "*",
                    },
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": f"arn:aws:iam::{ALT_ACCOUNT}:root"},
                        "Action": "kms:Decrypt",
                        "Resource": "*",
                    },
                ],
            }
        )
    )["KeyMetadata"]["Arn"]
    owner.put_object(Bucket=bucket, Key="shared/s3.txt", Body=b"sse-s3")
    owner.put_object(Bucket=bucket, Key="shared/managed.txt", Body=b"aws/s3", ServerSideEncryption="aws:kms")
    owner.put_object(
        Bucket=bucket, Key="shared/cmk.txt", Body=b"cmk", ServerSideEncryption="aws:kms", SSEKMSKeyId=shared
    )
    owner.delete_public_access_block(Bucket=bucket)
    put_policy(
        owner,
        bucket,
        {
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/shared/*",
        },
    )
    assert anonymous.get_object(Bucket=bucket, Key="shared/s3.txt")["Body"].read() == b"sse-s3"
    assert code_of(anonymous.get_object, Bucket=bucket, Key="shared/cmk.txt") in (
        "AccessDenied",
        "InvalidArgument",
    )
    assert other.get_object(Bucket=bucket, Key="shared/cmk.txt")["Body"].read() == b"cmk"
    assert code_of(other.get_object, Bucket=bucket, Key="shared/managed.txt") == "AccessDenied"


def _status_from(url: str, source: str) -> int:
    """GET a presigned URL from the loopback address `source` (the policy's aws:SourceIp)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30, source_address=(source, 0))
    try:
        conn.request("GET", f"{parts.path}?{parts.query}")
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def test_decisions_under_a_policy_follow_the_address_and_the_callers_policies(server, owner, bucket, unique):
    """Allowed decisions under a bucket policy are remembered (a bucket with a policy is not
    evaluated in full per request): per source address, and not past a change to the caller's
    own policies."""
    iam = server.client("iam")
    user = f"pol-{unique}"
    iam.create_user(UserName=user)
    made = iam.create_access_key(UserName=user)["AccessKey"]
    user_s3 = server.client("s3", access_key=made["AccessKeyId"], secret_key=made["SecretAccessKey"])
    put_policy(
        owner,
        bucket,
        {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/*",
            "Condition": {"NotIpAddress": {"aws:SourceIp": "127.0.0.1/32"}},
        },
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/{user}"},
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/shared/*",
        },
    )
    params = {"Bucket": bucket, "Key": "shared/a.txt"}
    urls = [c.generate_presigned_url("get_object", Params=params) for c in (owner, user_s3)]
    statuses = [_status_from(url, source) for url in urls for source in ["127.0.0.1", "127.0.0.2"] * 2]
    assert statuses == [200, 403, 200, 403] * 2
    deny = {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "*"}
    iam.put_user_policy(
        UserName=user,
        PolicyName="deny",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [deny]}),
    )
    assert _status_from(urls[1], "127.0.0.1") == 403
    assert _status_from(urls[0], "127.0.0.1") == 200


def test_decisions_remembered_on_a_bucket_end_when_it_changes(owner, alice, other, bucket):
    """Requests on a bucket are decided from what the authorizer remembered on the bucket (no
    policy or ACL; a policy's allowed decisions) until the bucket changes: a policy, a changed
    policy, an ownership setting apply to the next request of the owner's root, a user of the
    account and another account."""
    key = {"Bucket": bucket, "Key": "shared/a.txt"}
    for _ in range(2):  # the second request is decided from what the first remembered
        assert owner.get_object(**key)["Body"].read() == b"shared/a.txt"
        assert alice.get_object(**key)["Body"].read() == b"shared/a.txt"
        assert code_of(other.get_object, **key) == "AccessDenied"  # another account: no grant
    grant = {
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{ALT_ACCOUNT}:root"},
        "Action": "s3:ListBucket",
        "Resource": f"arn:aws:s3:::{bucket}",
    }
    put_policy(owner, bucket, grant)
    for _ in range(2):
        assert owner.get_object(**key)["Body"].read() == b"shared/a.txt"
        assert alice.get_object(**key)["Body"].read() == b"shared/a.txt"
        assert len(other.list_objects_v2(Bucket=bucket)["Contents"]) == 2
    deny = {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/*",
    }
    put_policy(owner, bucket, grant, deny)
    assert code_of(owner.get_object, **key) == "AccessDenied"
    assert code_of(alice.get_object, **key) == "AccessDenied"
    owner.delete_bucket_policy(Bucket=bucket)
    assert owner.get_object(**key)["Body"].read() == b"shared/a.txt"
    assert code_of(other.list_objects_v2, Bucket=bucket) == "AccessDenied"
    # ACLs on (ObjectWriter): a grant in the bucket's ACL lets the other account list it
    owner.put_bucket_ownership_controls(
        Bucket=bucket, OwnershipControls={"Rules": [{"ObjectOwnership": "ObjectWriter"}]}
    )
    owner.put_bucket_acl(
        Bucket=bucket,
        AccessControlPolicy={
            "Owner": {"ID": owner.get_bucket_acl(Bucket=bucket)["Owner"]["ID"]},
            "Grants": [
                {
                    "Grantee": {"Type": "CanonicalUser", "ID": other.list_buckets()["Owner"]["ID"]},
                    "Permission": "READ",
                }
            ],
        },
    )
    assert len(other.list_objects_v2(Bucket=bucket)["Contents"]) == 2
