"""Multipart uploads through boto3: the seed's TransferConfig, every completion check, part copy,
listing parts and uploads, part-number GETs and checksums (composite and full-object)."""

from __future__ import annotations

import base64
import hashlib
import os
import zlib
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

MiB = 1024 * 1024


def code(e: pytest.ExceptionInfo) -> str:
    return e.value.response["Error"]["Code"]


def test_seed_transfer_config_upload_and_download(s3, bucket: str, tmp_path: Path) -> None:
    config = boto3.s3.transfer.TransferConfig(
        multipart_threshold=8 * MiB, max_concurrency=10, multipart_chunksize=8 * MiB, use_threads=True
    )
    src = tmp_path / "big.bin"
    data = os.urandom(8 * MiB * 3 + 12345)
    src.write_bytes(data)
    s3.upload_file(str(src), bucket, "big.bin", Config=config)
    head = s3.head_object(Bucket=bucket, Key="big.bin")
    assert head["ContentLength"] == len(data)
    md5s = b"".join(hashlib.md5(data[i : i + 8 * MiB]).digest() for i in range(0, len(data), 8 * MiB))
    assert head["ETag"] == f'"{hashlib.md5(md5s).hexdigest()}-4"'
    dst = tmp_path / "back.bin"
    s3.download_file(bucket, "big.bin", str(dst), Config=config)
    assert dst.read_bytes() == data
    part = s3.get_object(Bucket=bucket, Key="big.bin", PartNumber=2)
    assert part["PartsCount"] == 4 and part["ContentLength"] == 8 * MiB
    assert part["Body"].read() == data[8 * MiB : 16 * MiB]


def _upload(s3, bucket: str, key: str, parts: list[bytes], **kw) -> tuple[str, list[dict]]:
    uid = s3.create_multipart_upload(Bucket=bucket, Key=key, **kw)["UploadId"]
    done = []
    for n, data in enumerate(parts, 1):
        r = s3.upload_part(
            Bucket=bucket,
            Key=key,
            UploadId=uid,
            PartNumber=n,
            Body=data,
            **({"ChecksumAlgorithm": kw["ChecksumAlgorithm"]} if "ChecksumAlgorithm" in kw else {}),
        )
        entry = {"PartNumber": n, "ETag": r["ETag"]}
        for k, v in r.items():
            if k.startswith("Checksum") and k != "ChecksumType":
                entry[k] = v
        done.append(entry)
    return uid, done


def test_completion_checks(s3, bucket: str) -> None:
    uid, parts = _upload(s3, bucket, "k", [b"a" * 5 * MiB, b"b" * 100, b"c" * 10])
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="k", UploadId=uid, MultipartUpload={"Parts": parts[::-1]}
        )
    assert code(e) == "InvalidPartOrder"
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=uid, MultipartUpload={"Parts": parts})
    assert code(e) == "EntityTooSmall"
    bad = [dict(parts[0], ETag='"00000000000000000000000000000000"')]
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=uid, MultipartUpload={"Parts": bad})
    assert code(e) == "InvalidPart"
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=bucket, Key="k", UploadId=uid, PartNumber=10001, Body=b"x")
    assert code(e) == "InvalidArgument"
    listed = s3.list_parts(Bucket=bucket, Key="k", UploadId=uid)
    assert [p["PartNumber"] for p in listed["Parts"]] == [1, 2, 3] and listed["Parts"][1]["Size"] == 100
    page = s3.list_parts(Bucket=bucket, Key="k", UploadId=uid, MaxParts=2)
    assert page["IsTruncated"] and page["NextPartNumberMarker"] == 2
    r = s3.complete_multipart_upload(
        Bucket=bucket, Key="k", UploadId=uid, MultipartUpload={"Parts": [parts[0], parts[2]]}
    )
    assert r["ETag"].endswith('-2"')
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"a" * 5 * MiB + b"c" * 10
    with pytest.raises(ClientError) as e:
        s3.list_parts(Bucket=bucket, Key="k", UploadId=uid)
    assert code(e) == "NoSuchUpload"


def test_abort_and_list_uploads(s3, bucket: str) -> None:
    ids = [s3.create_multipart_upload(Bucket=bucket, Key=k)["UploadId"] for k in ("x/1", "x/2", "y")]
    r = s3.list_multipart_uploads(Bucket=bucket)
    assert [u["Key"] for u in r["Uploads"]] == ["x/1", "x/2", "y"]
    r = s3.list_multipart_uploads(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["x/"] and [u["Key"] for u in r["Uploads"]] == ["y"]
    r = s3.list_multipart_uploads(Bucket=bucket, MaxUploads=1)
    assert r["IsTruncated"] and r["NextKeyMarker"] == "x/1"
    for key, uid in zip(("x/1", "x/2", "y"), ids, strict=True):
        s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=uid)
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        s3.abort_multipart_upload(Bucket=bucket, Key="y", UploadId=ids[2])
    assert code(e) == "NoSuchUpload"


def test_upload_part_copy_ranges(s3, bucket: str) -> None:
    src = os.urandom(6 * MiB)
    s3.put_object(Bucket=bucket, Key="src", Body=src)
    uid = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    p1 = s3.upload_part_copy(
        Bucket=bucket,
        Key="dst",
        UploadId=uid,
        PartNumber=1,
        CopySource={"Bucket": bucket, "Key": "src"},
        CopySourceRange=f"bytes=0-{5 * MiB - 1}",
    )
    p2 = s3.upload_part_copy(
        Bucket=bucket,
        Key="dst",
        UploadId=uid,
        PartNumber=2,
        CopySource={"Bucket": bucket, "Key": "src"},
        CopySourceRange="bytes=100-199",
    )
    with pytest.raises(ClientError) as e:
        s3.upload_part_copy(
            Bucket=bucket,
            Key="dst",
            UploadId=uid,
            PartNumber=3,
            CopySource={"Bucket": bucket, "Key": "src"},
            CopySourceRange=f"bytes=0-{7 * MiB}",
        )
    assert code(e) == "InvalidRange"
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="dst",
        UploadId=uid,
        MultipartUpload={
            "Parts": [
                {"PartNumber": 1, "ETag": p1["CopyPartResult"]["ETag"]},
                {"PartNumber": 2, "ETag": p2["CopyPartResult"]["ETag"]},
            ]
        },
    )
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == src[: 5 * MiB] + src[100:200]


def test_composite_checksum(s3, bucket: str) -> None:
    parts_data = [b"p" * 5 * MiB, b"q" * 1000]
    uid, parts = _upload(s3, bucket, "ck", parts_data, ChecksumAlgorithm="SHA256")
    r = s3.complete_multipart_upload(Bucket=bucket, Key="ck", UploadId=uid, MultipartUpload={"Parts": parts})
    raw = b"".join(hashlib.sha256(p).digest() for p in parts_data)
    assert r["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(raw).digest()).decode() + "-2"
    assert r["ChecksumType"] == "COMPOSITE"
    h = s3.head_object(Bucket=bucket, Key="ck", ChecksumMode="ENABLED")
    assert h["ChecksumSHA256"] == r["ChecksumSHA256"]
    attrs = s3.get_object_attributes(Bucket=bucket, Key="ck", ObjectAttributes=["ObjectParts", "Checksum"])
    assert attrs["ObjectParts"]["TotalPartsCount"] == 2
    assert (
        attrs["ObjectParts"]["Parts"][1]["ChecksumSHA256"]
        == base64.b64encode(hashlib.sha256(parts_data[1]).digest()).decode()
    )


def test_full_object_crc(s3, bucket: str) -> None:
    parts_data = [b"x" * 5 * MiB, b"y" * 77]
    uid, parts = _upload(s3, bucket, "crc", parts_data, ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT")
    whole = base64.b64encode(zlib.crc32(b"".join(parts_data)).to_bytes(4, "big")).decode()
    r = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="crc",
        UploadId=uid,
        MultipartUpload={"Parts": parts},
        ChecksumCRC32=whole,
        ChecksumType="FULL_OBJECT",
    )
    assert r["ChecksumCRC32"] == whole and r["ChecksumType"] == "FULL_OBJECT"


def test_versioned_multipart(s3, bucket: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    uid, parts = _upload(s3, bucket, "v", [b"only part"])
    r = s3.complete_multipart_upload(Bucket=bucket, Key="v", UploadId=uid, MultipartUpload={"Parts": parts})
    assert r["VersionId"] and r["VersionId"] != "null"
    assert s3.get_object(Bucket=bucket, Key="v", VersionId=r["VersionId"])["Body"].read() == b"only part"


def test_list_uploads_pages_through_one_key(s3, bucket: str) -> None:
    ids = [s3.create_multipart_upload(Bucket=bucket, Key="same")["UploadId"] for _ in range(3)]
    s3.create_multipart_upload(Bucket=bucket, Key="zeta")
    pages = list(
        s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, PaginationConfig={"PageSize": 2})
    )
    got = [(u["Key"], u["UploadId"]) for p in pages for u in p.get("Uploads", [])]
    assert [k for k, _ in got] == ["same", "same", "same", "zeta"]
    assert sorted(u for k, u in got if k == "same") == sorted(ids)
    r = s3.list_multipart_uploads(Bucket=bucket, KeyMarker="same")
    assert [u["Key"] for u in r["Uploads"]] == ["zeta"]


def test_upload_part_copy_from_small_object(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="tiny", Body=b"0123456789")
    uid = s3.create_multipart_upload(Bucket=bucket, Key="from-tiny")["UploadId"]
    p = s3.upload_part_copy(
        Bucket=bucket,
        Key="from-tiny",
        UploadId=uid,
        PartNumber=1,
        CopySource=f"{bucket}/tiny",
        CopySourceRange="bytes=2-5",
    )
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="from-tiny",
        UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p["CopyPartResult"]["ETag"]}]},
    )
    assert s3.get_object(Bucket=bucket, Key="from-tiny")["Body"].read() == b"2345"
