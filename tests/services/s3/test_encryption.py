"""Encryption at rest: every mode round-trips through boto3, and the data dir holds only ciphertext.

One server with two identities: the account root (test/test) and bob, an IAM user of the same
account with S3 rights and no KMS rights, who is denied on KMS keys whose policy does not let
him in, until a grant does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from botocore.exceptions import ClientError

from tests.strata_process import StrataProcess

PART = 150_000  # not a multiple of the 64 KiB chunk: parts end mid-chunk


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrataProcess]:
    srv = StrataProcess(
        tmp_path_factory.mktemp("sse") / "data", extra_env={"STRATA_LIMIT_S3_MIN_PART_SIZE": str(PART)}
    ).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def s3(server):
    return server.client("s3")


@pytest.fixture(scope="module")
def s3s(server):
    return server.client("s3", https=True)


@pytest.fixture(scope="module")
def cmk(server) -> str:
    return server.client("kms").create_key(Description="sse tests")["KeyMetadata"]["Arn"]


@pytest.fixture(scope="module")
def bob(server):
    iam = server.client("iam")
    iam.create_user(UserName="bob")
    iam.put_user_policy(
        UserName="bob",
        PolicyName="s3",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        ),
    )
    key = iam.create_access_key(UserName="bob")["AccessKey"]
    return server.client("s3", access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"])


@pytest.fixture
def bucket(s3, unique: str) -> str:
    s3.create_bucket(Bucket=f"sse-{unique}")
    return f"sse-{unique}"


def code(call, **kw) -> tuple[str, int]:
    with pytest.raises(ClientError) as e:
        call(**kw)
    r = e.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"]


def stored_anywhere(data_dir: Path, needle: bytes) -> list[Path]:
    """Files under the data dir whose bytes contain `needle` (blobs, temp files, SQLite + WAL)."""
    return [p for p in data_dir.rglob("*") if p.is_file() and needle in p.read_bytes()]


MODES = [
    pytest.param({}, "AES256", id="default"),
    pytest.param({"ServerSideEncryption": "AES256"}, "AES256", id="sse-s3"),
    pytest.param({"ServerSideEncryption": "aws:kms"}, "aws:kms", id="kms-aws-s3"),
    pytest.param({"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "CMK"}, "aws:kms", id="kms-cmk"),
    pytest.param(
        {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "CMK", "BucketKeyEnabled": True},
        "aws:kms",
        id="kms-bucket-key",
    ),
    pytest.param({"ServerSideEncryption": "aws:kms:dsse", "SSEKMSKeyId": "CMK"}, "aws:kms:dsse", id="dsse"),
]


@pytest.mark.parametrize(("extra", "mode"), MODES)
def test_each_mode_round_trips_and_stores_only_ciphertext(server, s3, bucket, cmk, extra, mode) -> None:
    extra = {k: (cmk if v == "CMK" else v) for k, v in extra.items()}
    small, big = os.urandom(3000), os.urandom(5 * 65536 + 123)
    for key, body in (("small", small), ("big", big)):
        out = s3.put_object(Bucket=bucket, Key=key, Body=body, **extra)
        assert out["ServerSideEncryption"] == mode
        if "SSEKMSKeyId" in extra:
            assert out["SSEKMSKeyId"] == cmk
        assert out.get("BucketKeyEnabled", False) == bool(extra.get("BucketKeyEnabled"))
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["ServerSideEncryption"] == mode and head["ContentLength"] == len(body)
        md5 = f'"{hashlib.md5(body).hexdigest()}"'
        # As on S3: the MD5 of the data for SSE-S3; for SSE-KMS (and DSSE) something else.
        assert (head["ETag"] == md5) == (mode == "AES256")
        assert out["ETag"] == head["ETag"] and re.fullmatch(r'"[0-9a-f]{32}"', head["ETag"])
    # Range GETs across chunk boundaries, from the start, to the end.
    for first, last in ((65530, 131080), (0, 0), (len(big) - 5, len(big) - 1), (70000, 70010)):
        got = s3.get_object(Bucket=bucket, Key="big", Range=f"bytes={first}-{last}")["Body"].read()
        assert got == big[first : last + 1]
    assert s3.get_object(Bucket=bucket, Key="big", Range="bytes=-7")["Body"].read() == big[-7:]
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "big"})
    assert requests.get(url, timeout=60).content == big
    for body in (small, big):
        assert stored_anywhere(server.data_dir, body[1000:1064]) == []


def test_plaintext_search_finds_an_unencrypted_object(tmp_path) -> None:
    """The check above can fail: with the default turned off, the same search finds the bytes."""
    srv = StrataProcess(tmp_path / "data", extra_env={"STRATA_S3_DEFAULT_ENCRYPTION": "off"}).start()
    try:
        s3 = srv.client("s3")
        s3.create_bucket(Bucket="plain-bucket")
        body = os.urandom(200_000)
        out = s3.put_object(Bucket="plain-bucket", Key="p", Body=body)
        assert "ServerSideEncryption" not in out
        assert stored_anywhere(srv.data_dir, body[1000:1064]) != []
        s3.put_object(Bucket="plain-bucket", Key="e", Body=body[::-1], ServerSideEncryption="AES256")
        assert code(s3.get_bucket_encryption, Bucket="plain-bucket") == (
            "ServerSideEncryptionConfigurationNotFoundError",
            404,
        )
        srv.stop()
        # Old plaintext objects still read once the default is on (the mode is per object), and
        # encrypted ones survive the restart (the root key is in the data dir).
        srv.extra_env = {}
        srv.start()
        assert "ServerSideEncryption" not in s3.head_object(Bucket="plain-bucket", Key="p")
        assert s3.get_object(Bucket="plain-bucket", Key="p")["Body"].read() == body
        assert s3.get_object(Bucket="plain-bucket", Key="e")["Body"].read() == body[::-1]
        assert s3.put_object(Bucket="plain-bucket", Key="n", Body=b"new")["ServerSideEncryption"] == "AES256"
        key_file = srv.data_dir / "s3" / "sse-root.key"
        assert key_file.stat().st_mode & 0o777 == 0o600
    finally:
        srv.stop()


def test_multipart_and_copies_in_each_mode(s3, bucket, cmk) -> None:
    body = os.urandom(2 * PART + 777)
    parts = [body[:PART], body[PART : 2 * PART], body[2 * PART :]]
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp", ServerSideEncryption="aws:kms", SSEKMSKeyId=cmk)
    assert (up["ServerSideEncryption"], up["SSEKMSKeyId"]) == ("aws:kms", cmk)
    etags = []
    for n, data in enumerate(parts, 1):
        out = s3.upload_part(Bucket=bucket, Key="mp", UploadId=up["UploadId"], PartNumber=n, Body=data)
        assert out["ServerSideEncryption"] == "aws:kms"
        etags.append({"PartNumber": n, "ETag": out["ETag"]})
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=up["UploadId"], MultipartUpload={"Parts": etags}
    )
    assert done["ServerSideEncryption"] == "aws:kms"
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == body
    first, last = PART - 10, 2 * PART + 10  # across both part boundaries
    got = s3.get_object(Bucket=bucket, Key="mp", Range=f"bytes={first}-{last}")["Body"].read()
    assert got == body[first : last + 1]
    assert s3.get_object(Bucket=bucket, Key="mp", PartNumber=2)["Body"].read() == parts[1]
    # A copy re-encrypts for its destination: a KMS multipart source to SSE-S3, and back.
    out = s3.copy_object(Bucket=bucket, Key="c1", CopySource=f"{bucket}/mp", ServerSideEncryption="AES256")
    assert out["ServerSideEncryption"] == "AES256"
    assert s3.get_object(Bucket=bucket, Key="c1")["Body"].read() == body
    s3.copy_object(
        Bucket=bucket,
        Key="c2",
        CopySource=f"{bucket}/c1",
        ServerSideEncryption="aws:kms:dsse",
        SSEKMSKeyId=cmk,
    )
    head = s3.head_object(Bucket=bucket, Key="c2")
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms:dsse", cmk)
    assert s3.get_object(Bucket=bucket, Key="c2")["Body"].read() == body
    # In place, changing only the encryption (allowed, as on S3).
    s3.copy_object(Bucket=bucket, Key="c2", CopySource=f"{bucket}/c2", ServerSideEncryption="AES256")
    assert s3.head_object(Bucket=bucket, Key="c2")["ServerSideEncryption"] == "AES256"
    # UploadPartCopy: a range of an encrypted source into an SSE-S3 upload.
    up2 = s3.create_multipart_upload(Bucket=bucket, Key="mp2")["UploadId"]
    out = s3.upload_part_copy(
        Bucket=bucket,
        Key="mp2",
        UploadId=up2,
        PartNumber=1,
        CopySource=f"{bucket}/mp",
        CopySourceRange=f"bytes=100-{PART + 99}",
    )
    etag = out["CopyPartResult"]["ETag"]
    s3.complete_multipart_upload(
        Bucket=bucket, Key="mp2", UploadId=up2, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]}
    )
    assert s3.get_object(Bucket=bucket, Key="mp2")["Body"].read() == body[100 : PART + 100]


def test_bucket_default_encryption(s3, bucket, cmk) -> None:
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    blocked = {"BlockedEncryptionTypes": {"EncryptionType": ["SSE-C"]}}
    assert rules == [
        {
            "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
            "BucketKeyEnabled": False,
            **blocked,
        }
    ]
    # BucketKeyEnabled with SSE-S3: kept and reported, as S3 does; objects say nothing of a
    # bucket key (S3 Bucket Keys are for SSE-KMS only).
    sse_s3 = {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [sse_s3]})
    assert s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"] == [
        {**sse_s3, **blocked}
    ]
    out = s3.put_object(Bucket=bucket, Key="s3-bucket-key", Body=b"x")
    assert out["ServerSideEncryption"] == "AES256" and "BucketKeyEnabled" not in out
    config = {
        "Rules": [
            {
                "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": cmk},
                "BucketKeyEnabled": True,
            }
        ]
    }
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=config)
    got = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
    assert got == {"Rules": [{**config["Rules"][0], **blocked}]}
    out = s3.put_object(Bucket=bucket, Key="k", Body=b"by default")
    assert (out["ServerSideEncryption"], out["SSEKMSKeyId"], out["BucketKeyEnabled"]) == (
        "aws:kms",
        cmk,
        True,
    )
    up = s3.create_multipart_upload(Bucket=bucket, Key="m")
    assert up["ServerSideEncryption"] == "aws:kms"
    s3.abort_multipart_upload(Bucket=bucket, Key="m", UploadId=up["UploadId"])
    s3.copy_object(Bucket=bucket, Key="k2", CopySource=f"{bucket}/k")
    assert s3.head_object(Bucket=bucket, Key="k2")["SSEKMSKeyId"] == cmk
    # A request's own header wins over the default.
    out = s3.put_object(Bucket=bucket, Key="own", Body=b"x", ServerSideEncryption="AES256")
    assert out["ServerSideEncryption"] == "AES256"
    s3.delete_bucket_encryption(Bucket=bucket)
    assert s3.put_object(Bucket=bucket, Key="k3", Body=b"x")["ServerSideEncryption"] == "AES256"
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"by default"
    bad = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES512"}}]}
    assert code(s3.put_bucket_encryption, Bucket=bucket, ServerSideEncryptionConfiguration=bad) == (
        "MalformedXML",
        400,
    )
    bad = {
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256", "KMSMasterKeyID": cmk}}]
    }
    assert code(s3.put_bucket_encryption, Bucket=bucket, ServerSideEncryptionConfiguration=bad) == (
        "InvalidArgument",
        400,
    )


def test_bad_encryption_headers(s3, bucket, cmk) -> None:
    assert code(s3.put_object, Bucket=bucket, Key="k", Body=b"x", ServerSideEncryption="AES512") == (
        "InvalidArgument",
        400,
    )
    assert code(s3.put_object, Bucket=bucket, Key="k", Body=b"x", SSEKMSKeyId=cmk) == ("InvalidArgument", 400)
    missing = "arn:aws:kms:us-east-1:000000000000:key/00000000-0000-0000-0000-000000000000"
    assert code(
        s3.put_object, Bucket=bucket, Key="k", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=missing
    ) == ("KMS.NotFoundException", 400)
    assert code(s3.head_object, Bucket=bucket, Key="k")[1] == 404  # nothing stored


def test_kms_requests_made_by_s3_are_metered_and_context_is_honoured(server, s3, bucket, cmk) -> None:
    before = len([e for e in server.admin("/_strata/meter?service=kms")["events"]])
    context = base64.b64encode(json.dumps({"team": "blue"}).encode()).decode()
    out = s3.put_object(
        Bucket=bucket,
        Key="ctx",
        Body=b"with context",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=cmk,
        SSEKMSEncryptionContext=context,
    )
    assert json.loads(base64.b64decode(out["SSEKMSEncryptionContext"])) == {"team": "blue"}
    assert s3.get_object(Bucket=bucket, Key="ctx")["Body"].read() == b"with context"
    events = server.admin("/_strata/meter?service=kms")["events"][before:]
    operations = sorted(e.get("dims", e).get("operation", "") for e in events)
    assert "GenerateDataKey" in str(events) and "Decrypt" in str(events), operations


def test_kms_denied_for_an_identity_without_key_permissions(server, s3, bob, bucket, cmk) -> None:
    s3.put_object(
        Bucket=bucket, Key="owner-kms", Body=b"secret", ServerSideEncryption="aws:kms", SSEKMSKeyId=cmk
    )
    assert code(bob.get_object, Bucket=bucket, Key="owner-kms") == ("AccessDenied", 403)
    assert code(
        bob.put_object,
        Bucket=bucket,
        Key="bob-kms",
        Body=b"x",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=cmk,
    ) == ("AccessDenied", 403)
    assert code(bob.head_object, Bucket=bucket, Key="bob-kms")[1] == 404
    # SSE-S3 and the AWS managed aws/s3 key need no KMS permission of the caller.
    bob.put_object(Bucket=bucket, Key="bob-s3", Body=b"fine")
    bob.put_object(Bucket=bucket, Key="bob-managed", Body=b"fine too", ServerSideEncryption="aws:kms")
    assert bob.get_object(Bucket=bucket, Key="bob-managed")["Body"].read() == b"fine too"
    # A grant lets bob in.
    kms = server.client("kms")
    grant = kms.create_grant(
        KeyId=cmk,
        GranteePrincipal="arn:aws:iam::000000000000:user/bob",
        Operations=["GenerateDataKey", "Decrypt"],
    )
    bob.put_object(
        Bucket=bucket, Key="bob-kms", Body=b"granted", ServerSideEncryption="aws:kms", SSEKMSKeyId=cmk
    )
    assert bob.get_object(Bucket=bucket, Key="owner-kms")["Body"].read() == b"secret"
    kms.revoke_grant(KeyId=cmk, GrantId=grant["GrantId"])
    assert code(bob.get_object, Bucket=bucket, Key="bob-kms") == ("AccessDenied", 403)


def _sse_c(key: bytes, prefix: str = "SSECustomer") -> dict[str, str]:
    return {f"{prefix}Algorithm": "AES256", f"{prefix}Key": key}  # type: ignore[dict-item]


def _allow_sse_c(s3, bucket: str, blocked: str = "NONE") -> None:  # noqa: ANN001
    """New buckets block SSE-C writes (as S3's since April 2026): `NONE` allows them."""
    rule = {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{**rule, "BlockedEncryptionTypes": {"EncryptionType": [blocked]}}]
        },
    )


def test_sse_c(server, s3s, bucket) -> None:
    _allow_sse_c(s3s, bucket)
    key, wrong = os.urandom(32), os.urandom(32)
    body = os.urandom(600_000)  # above the size opened in one piece: streamed through TLS
    out = s3s.put_object(Bucket=bucket, Key="c", Body=body, **_sse_c(key))
    md5 = base64.b64encode(hashlib.md5(key).digest()).decode()
    assert (out["SSECustomerAlgorithm"], out["SSECustomerKeyMD5"]) == ("AES256", md5)
    assert "ServerSideEncryption" not in out
    assert stored_anywhere(server.data_dir, body[5000:5064]) == []
    assert stored_anywhere(server.data_dir, key) == []
    got = s3s.get_object(Bucket=bucket, Key="c", Range="bytes=70000-70100", **_sse_c(key))
    assert got["Body"].read() == body[70000:70101] and got["SSECustomerKeyMD5"] == md5
    assert s3s.head_object(Bucket=bucket, Key="c", **_sse_c(key))["SSECustomerAlgorithm"] == "AES256"
    assert code(s3s.get_object, Bucket=bucket, Key="c") == ("InvalidRequest", 400)
    assert code(s3s.head_object, Bucket=bucket, Key="c")[1] == 400
    assert code(s3s.get_object, Bucket=bucket, Key="c", **_sse_c(wrong)) == ("AccessDenied", 403)
    assert code(s3s.copy_object, Bucket=bucket, Key="c2", CopySource=f"{bucket}/c") == ("InvalidRequest", 400)
    assert s3s.get_object(Bucket=bucket, Key="c", **_sse_c(key))["Body"].read() == body
    s3s.copy_object(Bucket=bucket, Key="c2", CopySource=f"{bucket}/c", **_sse_c(key, "CopySourceSSECustomer"))
    assert s3s.get_object(Bucket=bucket, Key="c2")["Body"].read() == body  # now SSE-S3
    s3s.put_object(Bucket=bucket, Key="plain", Body=b"p")
    assert code(s3s.get_object, Bucket=bucket, Key="plain", **_sse_c(key)) == ("InvalidRequest", 400)
    bad = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": os.urandom(16)}
    assert code(s3s.put_object, Bucket=bucket, Key="short", Body=b"x", **bad) == ("InvalidArgument", 400)
    # Multipart: every part carries the key.
    up = s3s.create_multipart_upload(Bucket=bucket, Key="mpc", **_sse_c(key))["UploadId"]
    assert code(s3s.upload_part, Bucket=bucket, Key="mpc", UploadId=up, PartNumber=1, Body=b"x") == (
        "InvalidRequest",
        400,
    )
    etag = s3s.upload_part(Bucket=bucket, Key="mpc", UploadId=up, PartNumber=1, Body=b"part", **_sse_c(key))[
        "ETag"
    ]
    s3s.complete_multipart_upload(
        Bucket=bucket, Key="mpc", UploadId=up, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]}
    )
    assert s3s.get_object(Bucket=bucket, Key="mpc", **_sse_c(key))["Body"].read() == b"part"


def test_etags_of_kms_and_customer_key_objects_are_not_the_md5_of_their_data(s3, s3s, bucket, cmk) -> None:
    _allow_sse_c(s3, bucket)
    body = os.urandom(70_000)
    md5 = f'"{hashlib.md5(body).hexdigest()}"'
    kms = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": cmk}
    etags = {
        "kms": s3.put_object(Bucket=bucket, Key="kms", Body=body, **kms)["ETag"],
        "kms-again": s3.put_object(Bucket=bucket, Key="kms2", Body=body, **kms)["ETag"],
        "sse-c": s3s.put_object(Bucket=bucket, Key="ssec", Body=body, **_sse_c(os.urandom(32)))["ETag"],
        "copy-to-kms": s3.copy_object(Bucket=bucket, Key="k3", CopySource=f"{bucket}/kms", **kms)[
            "CopyObjectResult"
        ]["ETag"],
    }
    for name, etag in etags.items():
        assert re.fullmatch(r'"[0-9a-f]{32}"', etag) and etag != md5, name
    assert len(set(etags.values())) == len(etags)  # each write its own
    assert s3.head_object(Bucket=bucket, Key="kms")["ETag"] == etags["kms"]
    listed = {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert listed["kms"] == etags["kms"]
    assert s3.get_object(Bucket=bucket, Key="kms", IfMatch=etags["kms"])["Body"].read() == body
    # Copied out of KMS into SSE-S3 or plaintext, the ETag is the data's MD5 again.
    out = s3.copy_object(Bucket=bucket, Key="back", CopySource=f"{bucket}/kms", ServerSideEncryption="AES256")
    assert out["CopyObjectResult"]["ETag"] == md5
    # Parts of a KMS upload too; Content-MD5 is still checked against the data.
    up = s3.create_multipart_upload(Bucket=bucket, Key="mpk", **kms)["UploadId"]
    part = s3.upload_part(
        Bucket=bucket,
        Key="mpk",
        UploadId=up,
        PartNumber=1,
        Body=body,
        ContentMD5=base64.b64encode(hashlib.md5(body).digest()).decode(),
    )["ETag"]
    assert part != md5
    bad = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    assert code(
        s3.upload_part, Bucket=bucket, Key="mpk", UploadId=up, PartNumber=2, Body=body, ContentMD5=bad
    ) == ("BadDigest", 400)
    s3.complete_multipart_upload(
        Bucket=bucket, Key="mpk", UploadId=up, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part}]}
    )
    assert s3.get_object(Bucket=bucket, Key="mpk")["Body"].read() == body


def test_sse_c_needs_https(server, bucket) -> None:
    s3 = server.client("s3")
    assert code(s3.put_object, Bucket=bucket, Key="over-http", Body=b"x", **_sse_c(os.urandom(32))) == (
        "InvalidRequest",
        400,
    )
    assert code(s3.head_object, Bucket=bucket, Key="over-http")[1] == 404


def test_encrypted_objects_survive_kill_9(strata_factory) -> None:
    server = strata_factory(extra_env={"STRATA_LIMIT_S3_MIN_PART_SIZE": str(PART)})
    s3 = server.client("s3")
    s3.create_bucket(Bucket="crash-sse")
    cmk = server.client("kms").create_key()["KeyMetadata"]["Arn"]
    bodies = {"s3": os.urandom(300_000), "kms": os.urandom(70_000), "bk": os.urandom(1000)}
    s3.put_object(Bucket="crash-sse", Key="s3", Body=bodies["s3"])
    s3.put_object(
        Bucket="crash-sse", Key="kms", Body=bodies["kms"], ServerSideEncryption="aws:kms", SSEKMSKeyId=cmk
    )
    s3.put_object(
        Bucket="crash-sse",
        Key="bk",
        Body=bodies["bk"],
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=cmk,
        BucketKeyEnabled=True,
    )
    server.kill()
    server.start()
    for key, body in bodies.items():
        assert s3.get_object(Bucket="crash-sse", Key=key)["Body"].read() == body


def test_a_client_leaving_mid_body_does_not_hurt_the_server(server, s3, bucket) -> None:
    body = os.urandom(6 << 20)
    s3.put_object(Bucket=bucket, Key="big", Body=body)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "big"})
    for _ in range(3):
        with requests.get(url, stream=True, timeout=60) as r:
            assert r.raw.read(100_000) == body[:100_000]
    assert (
        s3.get_object(Bucket=bucket, Key="big", Range="bytes=5000000-5000009")["Body"].read()
        == (body[5000000:5000010])
    )
    assert server.health()


def test_a_disabled_key_opens_nothing_even_through_a_bucket_key(server, s3, bucket) -> None:
    kms = server.client("kms")
    key = kms.create_key()["KeyMetadata"]["Arn"]
    for name, bucket_key in (("plain-kms", False), ("bucket-key", True)):
        s3.put_object(
            Bucket=bucket,
            Key=name,
            Body=b"guarded",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=key,
            BucketKeyEnabled=bucket_key,
        )
        assert s3.get_object(Bucket=bucket, Key=name)["Body"].read() == b"guarded"
    kms.disable_key(KeyId=key)
    for name in ("plain-kms", "bucket-key"):
        assert code(s3.get_object, Bucket=bucket, Key=name) == ("KMS.DisabledException", 400)
    assert code(
        s3.put_object, Bucket=bucket, Key="new", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=key
    ) == ("KMS.DisabledException", 400)
    kms.enable_key(KeyId=key)
    assert s3.get_object(Bucket=bucket, Key="bucket-key")["Body"].read() == b"guarded"


def test_kms_via_service_lets_s3_use_a_key_its_caller_cannot_use_directly(server, s3, bucket) -> None:
    """kms:ViaService is set on the calls S3 makes for its caller: the AWS managed aws/s3 key's
    policy rests on it, and a customer key's policy can allow a user through S3 only."""
    iam = server.client("iam")
    iam.create_user(UserName="carol")
    allow_s3 = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}
    iam.put_user_policy(
        UserName="carol",
        PolicyName="s3",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [allow_s3]}),
    )
    creds = iam.create_access_key(UserName="carol")["AccessKey"]
    carol = {"access_key": creds["AccessKeyId"], "secret_key": creds["SecretAccessKey"]}
    carol_s3, carol_kms = server.client("s3", **carol), server.client("kms", **carol)
    kms = server.client("kms")
    account = "000000000000"
    s3.put_object(Bucket=bucket, Key="managed", Body=b"m", ServerSideEncryption="aws:kms")  # makes aws/s3
    managed_id = kms.describe_key(KeyId="alias/aws/s3")["KeyMetadata"]["KeyId"]
    managed = json.loads(kms.get_key_policy(KeyId=managed_id, PolicyName="default")["Policy"])
    use = managed["Statement"][0]
    assert use["Principal"] == {"AWS": "*"}
    assert use["Condition"]["StringEquals"] == {
        "kms:CallerAccount": account,
        "kms:ViaService": "s3.us-east-1.amazonaws.com",
    }
    carol_s3.put_object(Bucket=bucket, Key="carol-managed", Body=b"ok", ServerSideEncryption="aws:kms")
    assert carol_s3.get_object(Bucket=bucket, Key="carol-managed")["Body"].read() == b"ok"
    assert code(carol_kms.generate_data_key, KeyId="alias/aws/s3", KeySpec="AES_256") == (
        "AccessDeniedException",
        400,
    )

    # A customer key open to carol only through S3.
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account}:user/carol"},
                "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
                "Resource": "*",
                "Condition": {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}},
            },
        ],
    }
    key = kms.create_key(Policy=json.dumps(policy))["KeyMetadata"]["Arn"]
    carol_s3.put_object(
        Bucket=bucket, Key="carol-cmk", Body=b"via s3", ServerSideEncryption="aws:kms", SSEKMSKeyId=key
    )
    assert carol_s3.get_object(Bucket=bucket, Key="carol-cmk")["Body"].read() == b"via s3"
    assert code(carol_kms.generate_data_key, KeyId=key, KeySpec="AES_256") == ("AccessDeniedException", 400)

    # An explicit deny in carol's own policy wins over the key policy, through S3 too.
    iam.put_user_policy(
        UserName="carol",
        PolicyName="no-kms",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "kms:*", "Resource": "*"}]}
        ),
    )
    assert code(carol_s3.get_object, Bucket=bucket, Key="carol-cmk") == ("AccessDenied", 403)
    assert code(carol_s3.get_object, Bucket=bucket, Key="carol-managed") == ("AccessDenied", 403)


def test_new_buckets_block_sse_c_writes_until_allowed(s3, s3s, bucket, cmk) -> None:
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["BlockedEncryptionTypes"] == {"EncryptionType": ["SSE-C"]}
    key = os.urandom(32)
    s3s.put_object(Bucket=bucket, Key="plain", Body=b"p")
    refused = [
        (s3s.put_object, {"Key": "c", "Body": b"x"}),
        (s3s.copy_object, {"Key": "c", "CopySource": f"{bucket}/plain"}),
        (s3s.create_multipart_upload, {"Key": "c"}),
    ]
    for call, kw in refused:
        assert code(call, Bucket=bucket, **kw, **_sse_c(key)) == ("AccessDenied", 403), call
    _allow_sse_c(s3, bucket)
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["BlockedEncryptionTypes"] == {"EncryptionType": ["NONE"]}
    s3s.put_object(Bucket=bucket, Key="c", Body=b"secret", **_sse_c(key))
    # Blocked again (and kept through a new default encryption that does not name it): no new
    # SSE-C writes, while the object already there still reads with its key.
    _allow_sse_c(s3, bucket, "SSE-C")
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": cmk}}
            ]
        },
    )
    assert code(s3s.put_object, Bucket=bucket, Key="c2", Body=b"x", **_sse_c(key)) == ("AccessDenied", 403)
    assert s3s.get_object(Bucket=bucket, Key="c", **_sse_c(key))["Body"].read() == b"secret"
    bad = {
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
        "BlockedEncryptionTypes": {"EncryptionType": ["SSE-KMS"]},
    }
    assert code(
        s3.put_bucket_encryption, Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [bad]}
    ) == ("MalformedXML", 400)


def test_sse_c_in_browser_post_forms(server, s3, s3s, bucket) -> None:
    from tests.services.s3.test_presigned import multipart_form

    key = os.urandom(32)
    prefix = "x-amz-server-side-encryption-customer-"
    fields = {
        prefix + "algorithm": "AES256",
        prefix + "key": base64.b64encode(key).decode(),
        prefix + "key-MD5": base64.b64encode(hashlib.md5(key).digest()).decode(),
    }

    def post(client, name: str) -> requests.Response:  # noqa: ANN001
        form = client.generate_presigned_post(
            Bucket=bucket, Key=name, Fields=fields, Conditions=[{k: v} for k, v in fields.items()]
        )
        body, ctype = multipart_form(form["fields"], name, b"posted secret")
        return requests.post(
            form["url"], data=body, headers={"Content-Type": ctype}, verify=str(server.ca_path), timeout=60
        )

    assert post(s3s, "blocked.bin").status_code == 403  # a new bucket blocks SSE-C
    _allow_sse_c(s3, bucket)
    r = post(s3s, "form.bin")
    assert r.status_code == 204, r.text
    assert r.headers["x-amz-server-side-encryption-customer-algorithm"] == "AES256"
    assert r.headers["x-amz-server-side-encryption-customer-key-MD5"] == fields[prefix + "key-MD5"]
    assert code(s3s.get_object, Bucket=bucket, Key="form.bin") == ("InvalidRequest", 400)
    got = s3s.get_object(Bucket=bucket, Key="form.bin", **_sse_c(key))
    assert got["Body"].read() == b"posted secret" and got["SSECustomerAlgorithm"] == "AES256"
    assert stored_anywhere(server.data_dir, b"posted secret") == []
    r = post(s3, "over-http.bin")  # the key in the clear: refused as on S3
    assert r.status_code == 400 and b"InvalidRequest" in r.content


def test_update_object_encryption_rewraps_the_data_key_in_place(server, s3, bob, bucket, cmk) -> None:
    """SSE-S3 → SSE-KMS and one KMS key → another (with a bucket key): same bytes, ETag and date;
    the object then opens only with the new key (disabling it shuts the object)."""
    kms = server.client("kms")
    other = kms.create_key(Description="rotation target")["KeyMetadata"]["Arn"]
    body = os.urandom(200_000)
    s3.put_object(Bucket=bucket, Key="k", Body=body)
    before = s3.head_object(Bucket=bucket, Key="k")
    assert before["ServerSideEncryption"] == "AES256"
    s3.update_object_encryption(Bucket=bucket, Key="k", ObjectEncryption={"SSEKMS": {"KMSKeyArn": cmk}})
    after = s3.head_object(Bucket=bucket, Key="k")
    assert (after["ServerSideEncryption"], after["SSEKMSKeyId"]) == ("aws:kms", cmk)
    assert (after["ETag"], after["LastModified"]) == (before["ETag"], before["LastModified"])
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == body
    s3.update_object_encryption(
        Bucket=bucket, Key="k", ObjectEncryption={"SSEKMS": {"KMSKeyArn": other, "BucketKeyEnabled": True}}
    )
    got = s3.get_object(Bucket=bucket, Key="k")
    assert (got["SSEKMSKeyId"], got["BucketKeyEnabled"], got["Body"].read()) == (other, True, body)
    kms.disable_key(KeyId=other)
    assert code(s3.get_object, Bucket=bucket, Key="k")[0] == "KMS.DisabledException"
    kms.enable_key(KeyId=other)
    # bob may use S3 but not the customer key: AccessDenied, and the object is unchanged.
    assert code(
        bob.update_object_encryption, Bucket=bucket, Key="k", ObjectEncryption={"SSEKMS": {"KMSKeyArn": cmk}}
    ) == ("AccessDenied", 403)
    assert s3.head_object(Bucket=bucket, Key="k")["SSEKMSKeyId"] == other
    # AWS's refusals: not a key ARN, another account's key; DSSE-KMS is no source.
    bad = [
        (
            {"SSEKMS": {"KMSKeyArn": "arn:aws:kms:us-east-1:000000000000:alias/aws/s3"}},
            ("InvalidRequest", 400),
        ),
        ({"SSEKMS": {"KMSKeyArn": cmk.replace(":000000000000:", ":111122223333:")}}, ("AccessDenied", 403)),
    ]
    for encryption, expected in bad:
        assert (
            code(s3.update_object_encryption, Bucket=bucket, Key="k", ObjectEncryption=encryption) == expected
        )
    s3.put_object(Bucket=bucket, Key="d", Body=b"x", ServerSideEncryption="aws:kms:dsse", SSEKMSKeyId=cmk)
    assert code(
        s3.update_object_encryption, Bucket=bucket, Key="d", ObjectEncryption={"SSEKMS": {"KMSKeyArn": other}}
    ) == ("InvalidRequest", 400)
    assert code(
        s3.update_object_encryption,
        Bucket=bucket,
        Key="none",
        ObjectEncryption={"SSEKMS": {"KMSKeyArn": other}},
    ) == ("NoSuchKey", 404)
    # A version under a legal hold cannot change (nor under an unexpired retention).
    s3.create_bucket(Bucket=f"{bucket}-lock", ObjectLockEnabledForBucket=True)
    s3.put_object(Bucket=f"{bucket}-lock", Key="held", Body=b"x", ObjectLockLegalHoldStatus="ON")
    held = {"Bucket": f"{bucket}-lock", "Key": "held", "ObjectEncryption": {"SSEKMS": {"KMSKeyArn": other}}}
    assert code(s3.update_object_encryption, **held) == ("AccessDenied", 403)
    s3.put_object_legal_hold(Bucket=f"{bucket}-lock", Key="held", LegalHold={"Status": "OFF"})
    s3.update_object_encryption(**held)
    assert s3.head_object(Bucket=f"{bucket}-lock", Key="held")["SSEKMSKeyId"] == other
