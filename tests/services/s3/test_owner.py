"""ExpectedBucketOwner / ExpectedSourceBucketOwner: 403 AccessDenied when not the bucket's owner."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from strata.config import DEFAULT_ACCOUNT

OTHER = "111122223333"


def _denied(call, *args, **kw) -> None:
    with pytest.raises(ClientError) as e:
        call(*args, **kw)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    if call.__name__ not in ("head_bucket", "head_object"):
        assert e.value.response["Error"]["Code"] == "AccessDenied"


def test_the_owner_passes_and_anyone_else_is_denied(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"v", ExpectedBucketOwner=DEFAULT_ACCOUNT)
    assert s3.get_object(Bucket=bucket, Key="k", ExpectedBucketOwner=DEFAULT_ACCOUNT)["Body"].read() == b"v"
    s3.head_bucket(Bucket=bucket, ExpectedBucketOwner=DEFAULT_ACCOUNT)

    _denied(s3.put_object, Bucket=bucket, Key="k2", Body=b"x" * 100_000, ExpectedBucketOwner=OTHER)
    _denied(s3.get_object, Bucket=bucket, Key="k", ExpectedBucketOwner=OTHER)
    _denied(s3.head_object, Bucket=bucket, Key="k", ExpectedBucketOwner=OTHER)
    _denied(s3.head_bucket, Bucket=bucket, ExpectedBucketOwner=OTHER)
    _denied(s3.list_objects_v2, Bucket=bucket, ExpectedBucketOwner=OTHER)
    _denied(s3.delete_object, Bucket=bucket, Key="k", ExpectedBucketOwner=OTHER)
    _denied(s3.get_bucket_versioning, Bucket=bucket, ExpectedBucketOwner=OTHER)
    _denied(s3.create_multipart_upload, Bucket=bucket, Key="m", ExpectedBucketOwner=OTHER)
    _denied(s3.delete_bucket, Bucket=bucket, ExpectedBucketOwner=OTHER)
    # Nothing a denied call asked for happened.
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_copy_checks_the_source_bucket_owner(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"data")
    src = {"Bucket": bucket, "Key": "src"}
    s3.copy_object(Bucket=bucket, Key="ok", CopySource=src, ExpectedSourceBucketOwner=DEFAULT_ACCOUNT)
    _denied(s3.copy_object, Bucket=bucket, Key="no", CopySource=src, ExpectedSourceBucketOwner=OTHER)
    _denied(s3.copy_object, Bucket=bucket, Key="no", CopySource=src, ExpectedBucketOwner=OTHER)
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    _denied(
        s3.upload_part_copy,
        Bucket=bucket,
        Key="mp",
        UploadId=up,
        PartNumber=1,
        CopySource=src,
        ExpectedSourceBucketOwner=OTHER,
    )
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["ok", "src"]


def test_a_missing_bucket_is_still_no_such_bucket(s3) -> None:
    with pytest.raises(ClientError) as e:
        s3.list_objects_v2(Bucket="no-such-bucket-owner-test", ExpectedBucketOwner=OTHER)
    assert e.value.response["Error"]["Code"] == "NoSuchBucket"
