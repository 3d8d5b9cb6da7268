"""The newer flexible checksums: SHA512, MD5, XXHASH64, XXHASH3, XXHASH128.

boto3 computes SHA512 and the xxhashes itself (ChecksumAlgorithm=...); it has no MD5 checksum
implementation, so MD5 values are sent as raw x-amz-checksum-md5 headers. Expected values are
computed here independently (hashlib, the xxhash package).
"""

from __future__ import annotations

import base64
import hashlib

import pytest
import xxhash
from botocore.exceptions import ClientError

MiB = 1024 * 1024

RAW = {
    "SHA512": lambda b: hashlib.sha512(b).digest(),
    "MD5": lambda b: hashlib.md5(b).digest(),
    "XXHASH64": lambda b: xxhash.xxh64(b).digest(),
    "XXHASH3": lambda b: xxhash.xxh3_64(b).digest(),
    "XXHASH128": lambda b: xxhash.xxh3_128(b).digest(),
}


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def code(e: pytest.ExceptionInfo) -> str:
    return e.value.response["Error"]["Code"]


@pytest.mark.parametrize("algorithm", ["SHA512", "XXHASH64", "XXHASH3", "XXHASH128"])
def test_sdk_computed_checksum_is_verified_stored_and_returned(s3, bucket: str, algorithm: str) -> None:
    data = b"newer checksum algorithms"
    want = b64(RAW[algorithm](data))
    r = s3.put_object(Bucket=bucket, Key="k", Body=data, ChecksumAlgorithm=algorithm)
    assert r[f"Checksum{algorithm}"] == want
    got = s3.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert got[f"Checksum{algorithm}"] == want and got["Body"].read() == data
    head = s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert head[f"Checksum{algorithm}"] == want and head["ChecksumType"] == "FULL_OBJECT"


@pytest.mark.parametrize("algorithm", sorted(RAW))
def test_sent_value_is_checked(s3, bucket: str, algorithm: str) -> None:
    data = b"x" * 70_000  # above the inline limit: a streamed blob
    good = b64(RAW[algorithm](data))
    r = s3.put_object(Bucket=bucket, Key="ok", Body=data, **{f"Checksum{algorithm}": good})
    assert r[f"Checksum{algorithm}"] == good
    attrs = s3.get_object_attributes(Bucket=bucket, Key="ok", ObjectAttributes=["Checksum"])
    assert attrs["Checksum"][f"Checksum{algorithm}"] == good
    bad = b64(RAW[algorithm](data + b"!"))
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="bad", Body=data, **{f"Checksum{algorithm}": bad})
    assert code(e) == "BadDigest"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="bad")


@pytest.mark.parametrize("algorithm", ["MD5", "XXHASH3", "SHA512"])
def test_multipart_composite(s3, bucket: str, algorithm: str) -> None:
    parts_data = [b"a" * 5 * MiB, b"b" * 1234]
    uid = s3.create_multipart_upload(Bucket=bucket, Key="mp", ChecksumAlgorithm=algorithm)["UploadId"]
    parts = []
    for n, data in enumerate(parts_data, 1):
        value = b64(RAW[algorithm](data))
        r = s3.upload_part(
            Bucket=bucket, Key="mp", UploadId=uid, PartNumber=n, Body=data, **{f"Checksum{algorithm}": value}
        )
        assert r[f"Checksum{algorithm}"] == value
        parts.append({"PartNumber": n, "ETag": r["ETag"], f"Checksum{algorithm}": value})
    r = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=uid, MultipartUpload={"Parts": parts})
    composite = b64(RAW[algorithm](b"".join(RAW[algorithm](p) for p in parts_data))) + "-2"
    assert r[f"Checksum{algorithm}"] == composite and r["ChecksumType"] == "COMPOSITE"
    head = s3.head_object(Bucket=bucket, Key="mp", ChecksumMode="ENABLED")
    assert head[f"Checksum{algorithm}"] == composite


def test_full_object_type_needs_a_crc(s3, bucket: str) -> None:
    with pytest.raises(ClientError) as e:
        s3.create_multipart_upload(
            Bucket=bucket, Key="f", ChecksumAlgorithm="XXHASH64", ChecksumType="FULL_OBJECT"
        )
    assert code(e) == "InvalidRequest"


def test_copy_can_add_a_newer_checksum(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"copy source")
    r = s3.copy_object(
        Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"}, ChecksumAlgorithm="XXHASH128"
    )
    assert r["CopyObjectResult"]["ChecksumXXHASH128"] == b64(RAW["XXHASH128"](b"copy source"))
