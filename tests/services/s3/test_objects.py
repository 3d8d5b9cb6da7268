"""Objects through boto3: metadata as stored, ranges, conditions, overrides, copy, delete, tags,
keys, integrity (Content-MD5, flexible checksums), storage classes, GetObjectAttributes."""

from __future__ import annotations

import base64
import hashlib
import zlib
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError


def code(e: pytest.ExceptionInfo) -> str:
    return e.value.response["Error"]["Code"]


def status(e: pytest.ExceptionInfo) -> int:
    return e.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_metadata_returned_exactly(s3, bucket: str) -> None:
    expires = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    s3.put_object(
        Bucket=bucket,
        Key="doc",
        Body=b"<h1>hi</h1>",
        ContentType="text/html; charset=utf-8",
        ContentEncoding="identity",
        ContentDisposition='attachment; filename="a b.html"',
        CacheControl="max-age=60",
        ContentLanguage="en",
        Expires=expires,
        Metadata={"color": "Blue Sky", "n": "1"},
    )
    for r in (s3.get_object(Bucket=bucket, Key="doc"), s3.head_object(Bucket=bucket, Key="doc")):
        assert r["ContentType"] == "text/html; charset=utf-8"
        assert r["ContentEncoding"] == "identity"
        assert r["ContentDisposition"] == 'attachment; filename="a b.html"'
        assert r["CacheControl"] == "max-age=60" and r["ContentLanguage"] == "en"
        assert r["Expires"] == expires
        assert r["Metadata"] == {"color": "Blue Sky", "n": "1"}
        assert r["ETag"] == f'"{hashlib.md5(b"<h1>hi</h1>").hexdigest()}"'
        assert r["ContentLength"] == 11
    assert s3.head_object(Bucket=bucket, Key="doc")["LastModified"] <= datetime.now(UTC)
    s3.put_object(Bucket=bucket, Key="plain", Body=b"")
    assert s3.head_object(Bucket=bucket, Key="plain")["ContentType"] == "binary/octet-stream"
    assert s3.get_object(Bucket=bucket, Key="plain")["Body"].read() == b""


def test_ranges(s3, bucket: str) -> None:
    data = bytes(range(256)) * 4
    s3.put_object(Bucket=bucket, Key="r", Body=data)
    cases = {
        "bytes=0-9": (0, 9),
        "bytes=1000-": (1000, 1023),
        "bytes=-24": (1000, 1023),
        "bytes=1020-5000": (1020, 1023),
    }
    for header, (a, b) in cases.items():
        r = s3.get_object(Bucket=bucket, Key="r", Range=header)
        assert r["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert r["ContentRange"] == f"bytes {a}-{b}/1024"
        assert r["Body"].read() == data[a : b + 1]
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="r", Range="bytes=2000-")
    assert code(e) == "InvalidRange" and status(e) == 416
    r = s3.get_object(Bucket=bucket, Key="r", Range="bytes=9-3")  # unsatisfiable syntax: whole object
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200 and r["Body"].read() == data


def test_conditional_get(s3, bucket: str) -> None:
    etag = s3.put_object(Bucket=bucket, Key="c", Body=b"cond")["ETag"]
    past, future = datetime.now(UTC) - timedelta(days=1), datetime.now(UTC) + timedelta(days=1)
    assert s3.get_object(Bucket=bucket, Key="c", IfMatch=etag)["Body"].read() == b"cond"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="c", IfMatch='"nope"')
    assert code(e) == "PreconditionFailed" and status(e) == 412
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="c", IfNoneMatch=etag)
    assert status(e) == 304
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=future)
    assert status(e) == 304
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="c", IfUnmodifiedSince=past)
    assert status(e) == 412
    # S3: If-Match true wins over a failing If-Unmodified-Since
    assert (
        s3.get_object(Bucket=bucket, Key="c", IfMatch=etag, IfUnmodifiedSince=past)["Body"].read() == b"cond"
    )
    assert s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=past)["Body"].read() == b"cond"


def test_conditional_put(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="once", Body=b"1", IfNoneMatch="*")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="once", Body=b"2", IfNoneMatch="*")
    assert code(e) == "PreconditionFailed"
    assert s3.get_object(Bucket=bucket, Key="once")["Body"].read() == b"1"


def test_response_overrides(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="o", Body=b"x", ContentType="text/plain")
    r = s3.get_object(
        Bucket=bucket,
        Key="o",
        ResponseContentType="application/json",
        ResponseContentDisposition="inline",
        ResponseCacheControl="no-cache",
        ResponseContentLanguage="fr",
        ResponseContentEncoding="gzip",
    )
    assert (
        r["ContentType"],
        r["ContentDisposition"],
        r["CacheControl"],
        r["ContentLanguage"],
        r["ContentEncoding"],
    ) == ("application/json", "inline", "no-cache", "fr", "gzip")


@pytest.mark.parametrize(
    "key",
    [
        "../../etc/passwd",
        "a%2Fb",
        "with space/and+plus",
        "ünï/cødé/✓",
        "x/" * 300 + "end",
        "trailing/",
        "?query#frag",
        "//double//slash",
    ],
)
def test_arbitrary_keys(s3, bucket: str, key: str) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode()
    assert key in [c["Key"] for c in s3.list_objects_v2(Bucket=bucket, Prefix=key[:3])["Contents"]]


def test_key_too_long(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="é" * 512, Body=b"ok")  # exactly 1024 bytes
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k" * 1025, Body=b"x")
    assert code(e) == "KeyTooLongError"


def test_content_md5(s3, bucket: str) -> None:
    good = base64.b64encode(hashlib.md5(b"data").digest()).decode()
    s3.put_object(Bucket=bucket, Key="m", Body=b"data", ContentMD5=good)
    with pytest.raises(ClientError) as e:
        s3.put_object(
            Bucket=bucket,
            Key="m2",
            Body=b"data",
            ContentMD5=base64.b64encode(hashlib.md5(b"other").digest()).decode(),
        )
    assert code(e) == "BadDigest"
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="m3", Body=b"data", ContentMD5="not-base64")
    assert code(e) == "InvalidDigest"
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="m2")


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"])
def test_flexible_checksums(s3, bucket: str, algorithm: str) -> None:
    r = s3.put_object(Bucket=bucket, Key="ck", Body=b"checksummed", ChecksumAlgorithm=algorithm)
    value = r[f"Checksum{algorithm}"]
    got = s3.get_object(Bucket=bucket, Key="ck", ChecksumMode="ENABLED")
    assert got[f"Checksum{algorithm}"] == value and got["Body"].read() == b"checksummed"
    assert s3.head_object(Bucket=bucket, Key="ck", ChecksumMode="ENABLED")[f"Checksum{algorithm}"] == value
    if algorithm == "CRC32":
        assert value == base64.b64encode(zlib.crc32(b"checksummed").to_bytes(4, "big")).decode()


def test_wrong_checksum_is_rejected(s3, bucket: str) -> None:
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="bad", Body=b"abc", ChecksumCRC32="AAAAAA==")
    assert code(e) in ("BadDigest", "InvalidRequest")
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="bad")


def test_copy_object(s3, bucket: str, unique: str) -> None:
    s3.put_object(
        Bucket=bucket,
        Key="src",
        Body=b"copy me",
        ContentType="text/plain",
        Metadata={"a": "1"},
        Tagging="t=1",
    )
    r = s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert r["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(b"copy me").hexdigest()}"'
    h = s3.head_object(Bucket=bucket, Key="dst")
    assert h["Metadata"] == {"a": "1"} and h["ContentType"] == "text/plain"
    assert s3.get_object_tagging(Bucket=bucket, Key="dst")["TagSet"] == [{"Key": "t", "Value": "1"}]
    s3.copy_object(
        Bucket=bucket,
        Key="dst2",
        CopySource=f"{bucket}/src",
        MetadataDirective="REPLACE",
        Metadata={"b": "2"},
        ContentType="application/x-new",
        TaggingDirective="REPLACE",
        Tagging="u=2",
    )
    h = s3.head_object(Bucket=bucket, Key="dst2")
    assert h["Metadata"] == {"b": "2"} and h["ContentType"] == "application/x-new"
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="src", CopySource=f"{bucket}/src")
    assert code(e) == "InvalidRequest"
    s3.copy_object(
        Bucket=bucket,
        Key="src",
        CopySource=f"{bucket}/src",
        MetadataDirective="REPLACE",
        Metadata={"changed": "yes"},
    )
    assert s3.head_object(Bucket=bucket, Key="src")["Metadata"] == {"changed": "yes"}
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="x", CopySource=f"{bucket}/src", CopySourceIfMatch='"nope"')
    assert code(e) == "PreconditionFailed"
    with pytest.raises(ClientError) as e:
        s3.copy_object(
            Bucket=bucket,
            Key="x",
            CopySource=f"{bucket}/src",
            CopySourceIfModifiedSince=datetime.now(UTC) + timedelta(days=1),
        )
    assert code(e) == "PreconditionFailed"
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="x", CopySource=f"{bucket}/missing")
    assert code(e) == "NoSuchKey"
    # the copy survives the source's deletion
    s3.delete_object(Bucket=bucket, Key="src")
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"copy me"


def test_delete_objects_quiet_and_verbose(s3, bucket: str) -> None:
    for i in range(4):
        s3.put_object(Bucket=bucket, Key=f"d{i}", Body=b"x")
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "d0"}, {"Key": "d1"}, {"Key": "never"}]})
    assert sorted(d["Key"] for d in r["Deleted"]) == ["d0", "d1", "never"]
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "d2"}, {"Key": "d3"}], "Quiet": True})
    assert "Deleted" not in r
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    s3.delete_object(Bucket=bucket, Key="never")  # deleting a missing key succeeds


def test_object_tagging(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="t", Body=b"x", Tagging="a=1&b=two%20words")
    assert s3.get_object(Bucket=bucket, Key="t")["TagCount"] == 2
    assert s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"] == [
        {"Key": "a", "Value": "1"},
        {"Key": "b", "Value": "two words"},
    ]
    s3.put_object_tagging(Bucket=bucket, Key="t", Tagging={"TagSet": [{"Key": "c", "Value": "3"}]})
    assert s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"] == [{"Key": "c", "Value": "3"}]
    s3.delete_object_tagging(Bucket=bucket, Key="t")
    assert s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"] == []
    with pytest.raises(ClientError) as e:
        s3.put_object_tagging(
            Bucket=bucket, Key="t", Tagging={"TagSet": [{"Key": f"k{i}", "Value": "v"} for i in range(11)]}
        )
    assert code(e) == "BadRequest"


@pytest.mark.parametrize(
    "storage_class",
    ["STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE"],
)
def test_storage_classes(s3, bucket: str, storage_class: str) -> None:
    s3.put_object(Bucket=bucket, Key="sc", Body=b"cold", StorageClass=storage_class)
    assert s3.head_object(Bucket=bucket, Key="sc").get("StorageClass", "STANDARD") == storage_class
    assert s3.list_objects_v2(Bucket=bucket)["Contents"][0]["StorageClass"] == storage_class
    if storage_class in ("GLACIER", "DEEP_ARCHIVE"):
        with pytest.raises(ClientError) as e:
            s3.get_object(Bucket=bucket, Key="sc")
        assert code(e) == "InvalidObjectState" and status(e) == 403
    else:
        assert s3.get_object(Bucket=bucket, Key="sc")["Body"].read() == b"cold"


def test_copy_is_standard_unless_a_class_is_named(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="ia", Body=b"cool", StorageClass="STANDARD_IA")
    src = {"Bucket": bucket, "Key": "ia"}
    s3.copy_object(Bucket=bucket, Key="copy", CopySource=src)
    assert s3.head_object(Bucket=bucket, Key="copy").get("StorageClass", "STANDARD") == "STANDARD"
    s3.copy_object(Bucket=bucket, Key="copy2", CopySource=src, StorageClass="ONEZONE_IA")
    assert s3.head_object(Bucket=bucket, Key="copy2")["StorageClass"] == "ONEZONE_IA"
    # copying onto itself with a new class is how S3 changes an object's storage class
    s3.copy_object(Bucket=bucket, Key="ia", CopySource=src, StorageClass="GLACIER_IR")
    assert s3.head_object(Bucket=bucket, Key="ia")["StorageClass"] == "GLACIER_IR"


def test_invalid_storage_class(s3, bucket: str) -> None:
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="sc", Body=b"x", StorageClass="FROZEN")
    assert code(e) == "InvalidStorageClass"


def test_get_object_attributes(s3, bucket: str) -> None:
    r = s3.put_object(Bucket=bucket, Key="attr", Body=b"attributes", ChecksumAlgorithm="SHA256")
    a = s3.get_object_attributes(
        Bucket=bucket,
        Key="attr",
        ObjectAttributes=["ETag", "Checksum", "ObjectSize", "StorageClass", "ObjectParts"],
    )
    assert a["ETag"] == r["ETag"].strip('"') and a["ObjectSize"] == 10 and a["StorageClass"] == "STANDARD"
    assert a["Checksum"]["ChecksumSHA256"] == r["ChecksumSHA256"]


def test_missing_things(s3, bucket: str) -> None:
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="missing")
    assert code(e) == "NoSuchKey" and status(e) == 404
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket + "-nope", Key="k", Body=b"x")
    assert code(e) == "NoSuchBucket"


def test_requests_and_bytes_are_metered(strata_server, s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="metered", Body=b"m" * 1234)
    s3.get_object(Bucket=bucket, Key="metered")["Body"].read()
    events = [
        e
        for e in strata_server.admin("/_strata/meter?service=s3")["events"]
        if e["dims"].get("bucket") == bucket
    ]
    names = [e["event"] for e in events]
    assert "CreateBucket" in names and "PutObject" in names and "GetObject" in names
    assert {e["event"]: e["quantity"] for e in events if e["unit"] == "byte"} == {
        "DataTransfer-In-Bytes": 1234,
        "DataTransfer-Out-Bytes": 1234,
    }
