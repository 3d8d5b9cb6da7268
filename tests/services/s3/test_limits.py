"""Size and count limits, made small through STRATA_LIMIT_S3_* on a private server."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError


@pytest.fixture(scope="module")
def small_limits(tmp_path_factory):
    from tests.strata_process import StrataProcess

    server = StrataProcess(
        tmp_path_factory.mktemp("limits") / "data",
        extra_env={
            "STRATA_LIMIT_S3_MAX_PUT_SIZE": "1000",
            "STRATA_LIMIT_S3_MAX_PART_SIZE": "3000",
            "STRATA_LIMIT_S3_MIN_PART_SIZE": "100",
            "STRATA_LIMIT_S3_MAX_PARTS": "3",
            "STRATA_LIMIT_S3_MAX_OBJECT_SIZE": "5000",
        },
    ).start()
    yield server
    server.stop()


def code(e: pytest.ExceptionInfo) -> str:
    return e.value.response["Error"]["Code"]


def test_single_put_limit(small_limits) -> None:
    s3 = small_limits.client("s3")
    s3.create_bucket(Bucket="lim")
    s3.put_object(Bucket="lim", Key="ok", Body=b"x" * 1000)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="lim", Key="big", Body=b"x" * 1001)
    assert code(e) == "EntityTooLarge"


def test_part_limits(small_limits) -> None:
    s3 = small_limits.client("s3")
    s3.create_bucket(Bucket="limparts")
    uid = s3.create_multipart_upload(Bucket="limparts", Key="k")["UploadId"]
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket="limparts", Key="k", UploadId=uid, PartNumber=4, Body=b"x" * 100)
    assert code(e) == "InvalidArgument"
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket="limparts", Key="k", UploadId=uid, PartNumber=1, Body=b"x" * 3001)
    assert code(e) == "EntityTooLarge"
    parts = []
    for n, size in ((1, 100), (2, 99), (3, 5)):
        etag = s3.upload_part(Bucket="limparts", Key="k", UploadId=uid, PartNumber=n, Body=b"y" * size)[
            "ETag"
        ]
        parts.append({"PartNumber": n, "ETag": etag})
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(
            Bucket="limparts", Key="k", UploadId=uid, MultipartUpload={"Parts": parts}
        )
    assert code(e) == "EntityTooSmall"
    assert e.value.response["Error"]["MinSizeAllowed"] == "100"
    s3.complete_multipart_upload(
        Bucket="limparts", Key="k", UploadId=uid, MultipartUpload={"Parts": [parts[0], parts[2]]}
    )
    assert s3.get_object(Bucket="limparts", Key="k")["Body"].read() == b"y" * 105
