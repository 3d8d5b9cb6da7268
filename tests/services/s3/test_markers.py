"""Listing markers are positions, not references: emptying a bucket page by page works.

The usual loop deletes every version (or upload, or object) on a page and then asks for the next
page after the one it just deleted; S3 resumes after that position.
"""

from __future__ import annotations

import pytest


def _versioned(s3, bucket: str, keys: list[str], copies: int) -> int:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for key in keys:
        for _ in range(copies):
            s3.put_object(Bucket=bucket, Key=key, Body=b"x")
        s3.delete_object(Bucket=bucket, Key=key)  # a delete marker too
    return len(keys) * (copies + 1)


def test_manual_loop_empties_versioned_bucket(s3, bucket: str) -> None:
    total = _versioned(s3, bucket, ["a", "b/1", "b/2", "c"], 3)
    kwargs: dict = {"Bucket": bucket, "MaxKeys": 3}
    deleted = 0
    while True:
        page = s3.list_object_versions(**kwargs)
        batch = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        if batch:
            r = s3.delete_objects(Bucket=bucket, Delete={"Objects": batch})
            assert not r.get("Errors")
            deleted += len(batch)
        if not page["IsTruncated"]:
            break
        kwargs.update(KeyMarker=page["NextKeyMarker"], VersionIdMarker=page["NextVersionIdMarker"])
    assert deleted == total
    assert not s3.list_object_versions(Bucket=bucket).get("Versions")
    s3.delete_bucket(Bucket=bucket)


def test_paginator_with_deletes_between_pages(s3, bucket: str) -> None:
    total = _versioned(s3, bucket, [f"k{i}" for i in range(5)], 2)
    seen = []
    pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket, PaginationConfig={"PageSize": 4})
    for page in pages:
        batch = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        seen += [(o["Key"], o["VersionId"]) for o in batch]
        if batch:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": batch})
    assert len(seen) == total and len(set(seen)) == total
    s3.delete_bucket(Bucket=bucket)


def test_version_marker_deleted_by_someone_else_keeps_its_place(s3, bucket: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    ids = [s3.put_object(Bucket=bucket, Key="k", Body=b"x")["VersionId"] for _ in range(5)]
    newest_first = list(reversed(ids))
    page = s3.list_object_versions(Bucket=bucket, MaxKeys=2)
    assert [v["VersionId"] for v in page["Versions"]] == newest_first[:2]
    s3.delete_object(Bucket=bucket, Key="k", VersionId=page["NextVersionIdMarker"])
    rest = s3.list_object_versions(Bucket=bucket, KeyMarker="k", VersionIdMarker=page["NextVersionIdMarker"])
    # Neither repeated nor skipped: the three older versions.
    assert [v["VersionId"] for v in rest["Versions"]] == newest_first[2:]


def test_garbage_version_marker_is_invalid_argument(s3, bucket: str) -> None:
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as e:
        s3.list_object_versions(Bucket=bucket, KeyMarker="k", VersionIdMarker="not-a-version")
    assert e.value.response["Error"]["Code"] == "InvalidArgument"


def test_list_objects_markers_survive_deletes(s3, bucket: str) -> None:
    keys = [f"k{i:02}" for i in range(9)]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    seen = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, PaginationConfig={"PageSize": 2}):
        batch = [o["Key"] for o in page.get("Contents", [])]
        seen += batch
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch]})
    assert seen == keys
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    seen = []
    for page in s3.get_paginator("list_objects").paginate(Bucket=bucket, PaginationConfig={"PageSize": 2}):
        batch = [o["Key"] for o in page.get("Contents", [])]
        seen += batch
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch]})
    assert seen == keys


def test_upload_markers_survive_aborts(s3, bucket: str) -> None:
    uploads = []
    for key in ("a", "same", "same", "same", "z"):
        uploads.append((key, s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]))
    seen = []
    kwargs: dict = {"Bucket": bucket, "MaxUploads": 2}
    while True:
        page = s3.list_multipart_uploads(**kwargs)
        for u in page.get("Uploads", []):
            seen.append((u["Key"], u["UploadId"]))
            s3.abort_multipart_upload(Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"])
        if not page["IsTruncated"]:
            break
        kwargs.update(KeyMarker=page["NextKeyMarker"], UploadIdMarker=page["NextUploadIdMarker"])
    assert sorted(seen) == sorted(uploads) and len(seen) == len(uploads)
