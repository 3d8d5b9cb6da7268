"""Versioning through boto3: version ids, the null version, delete markers, ListObjectVersions."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError


def test_versioning_status(s3, bucket: str) -> None:
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"


def test_versions_and_delete_markers(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"v0")  # the null version, from before versioning
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"v1")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="k", Body=b"v2")["VersionId"]
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == b"v2" and got["VersionId"] == v2
    assert s3.get_object(Bucket=bucket, Key="k", VersionId=v1)["Body"].read() == b"v1"
    assert s3.get_object(Bucket=bucket, Key="k", VersionId="null")["Body"].read() == b"v0"
    d = s3.delete_object(Bucket=bucket, Key="k")
    assert d["DeleteMarker"] is True
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="k")
    assert e.value.response["Error"]["Code"] == "NoSuchKey"
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="k", VersionId=d["VersionId"])
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 405
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    lv = s3.list_object_versions(Bucket=bucket)
    assert [v["VersionId"] for v in lv["Versions"]] == [v2, v1, "null"]
    assert [(m["VersionId"], m["IsLatest"]) for m in lv["DeleteMarkers"]] == [(d["VersionId"], True)]
    # removing the marker brings the object back
    s3.delete_object(Bucket=bucket, Key="k", VersionId=d["VersionId"])
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v2"
    s3.delete_object(Bucket=bucket, Key="k", VersionId=v2)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v1"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="k", VersionId=v2)
    assert e.value.response["Error"]["Code"] == "NoSuchVersion"


def test_suspended_writes_null_version(s3, bucket: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"v1")["VersionId"]
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    assert s3.put_object(Bucket=bucket, Key="k", Body=b"n1").get("VersionId") == "null"
    s3.put_object(Bucket=bucket, Key="k", Body=b"n2")
    versions = s3.list_object_versions(Bucket=bucket)["Versions"]
    assert [v["VersionId"] for v in versions] == ["null", v1]
    assert s3.get_object(Bucket=bucket, Key="k", VersionId="null")["Body"].read() == b"n2"
    d = s3.delete_object(Bucket=bucket, Key="k")
    assert d["VersionId"] == "null" and d["DeleteMarker"]
    lv = s3.list_object_versions(Bucket=bucket)
    assert [v["VersionId"] for v in lv["Versions"]] == [v1] and lv["DeleteMarkers"][0]["VersionId"] == "null"


def test_list_object_versions_pagination(s3, bucket: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    expected = []
    for key in ("a", "b/1", "b/2", "c"):
        ids = [s3.put_object(Bucket=bucket, Key=key, Body=b"x")["VersionId"] for _ in range(2)]
        expected += [(key, i) for i in reversed(ids)]
    pages = list(
        s3.get_paginator("list_object_versions").paginate(Bucket=bucket, PaginationConfig={"PageSize": 3})
    )
    got = [(v["Key"], v["VersionId"]) for p in pages for v in p.get("Versions", [])]
    assert got == expected
    r = s3.list_object_versions(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["b/"]
    assert {v["Key"] for v in r["Versions"]} == {"a", "c"}
    r = s3.list_object_versions(Bucket=bucket, Prefix="b/")
    assert {v["Key"] for v in r["Versions"]} == {"b/1", "b/2"}


def test_delete_objects_with_versions(s3, bucket: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v = s3.put_object(Bucket=bucket, Key="k", Body=b"x")["VersionId"]
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k"}]})
    assert r["Deleted"][0]["DeleteMarker"] is True
    marker = r["Deleted"][0]["DeleteMarkerVersionId"]
    r = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": "k", "VersionId": v}, {"Key": "k", "VersionId": marker}]}
    )
    assert len(r["Deleted"]) == 2
    assert "Versions" not in s3.list_object_versions(Bucket=bucket)
    with pytest.raises(ClientError):
        s3.delete_bucket(Bucket=bucket + "x")
    s3.delete_bucket(Bucket=bucket)


def test_concurrent_writes_to_one_key(s3, bucket: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    with ThreadPoolExecutor(8) as pool:
        ids = list(
            pool.map(
                lambda i: s3.put_object(Bucket=bucket, Key="hot", Body=f"v{i}".encode())["VersionId"],
                range(24),
            )
        )
    versions = s3.list_object_versions(Bucket=bucket)["Versions"]
    assert sorted(v["VersionId"] for v in versions) == sorted(ids)
    latest = [v for v in versions if v["IsLatest"]]
    assert len(latest) == 1 and latest[0]["VersionId"] == versions[0]["VersionId"]
    current = s3.get_object(Bucket=bucket, Key="hot")
    assert current["VersionId"] == latest[0]["VersionId"]
    assert (
        current["Body"].read()
        == s3.get_object(Bucket=bucket, Key="hot", VersionId=latest[0]["VersionId"])["Body"].read()
    )
