"""ExportTableToPointInTime into a Strata bucket: DynamoDB's layout (manifests, gzipped DynamoDB
JSON data files) read back with the S3 API, the table as it was at ExportTime, the failures
DynamoDB reports synchronously and asynchronously, Describe/ListExports."""

from __future__ import annotations

import base64
import gzip
import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError


@pytest.fixture(scope="module")
def s3(strata_server: Any) -> Any:
    return strata_server.client("s3")


def _pitr_table(ddb: Any, make_table: Any) -> tuple[str, str]:
    t = make_table(("pk", "S"), ("n", "N"))
    ddb.update_continuous_backups(
        TableName=t, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )
    return t, ddb.describe_table(TableName=t)["Table"]["TableArn"]


def _finished(ddb: Any, arn: str) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        desc = ddb.describe_export(ExportArn=arn)["ExportDescription"]
        if desc["ExportStatus"] != "IN_PROGRESS":
            return desc
        time.sleep(0.1)
    raise AssertionError("the export did not finish")


def _exported_items(s3: Any, bucket: str, desc: dict) -> list[dict]:
    summary = json.loads(s3.get_object(Bucket=bucket, Key=desc["ExportManifest"])["Body"].read())
    assert summary["exportArn"] == desc["ExportArn"] and summary["itemCount"] == desc["ItemCount"]
    files = s3.get_object(Bucket=bucket, Key=summary["manifestFilesS3Key"])["Body"].read().decode()
    items = []
    for line in files.splitlines():
        entry = json.loads(line)
        body = s3.get_object(Bucket=bucket, Key=entry["dataFileS3Key"])["Body"].read()
        rows = gzip.decompress(body).decode().splitlines()
        assert len(rows) == entry["itemCount"]
        items += [json.loads(r)["Item"] for r in rows]
    return items


def test_export_writes_the_table_in_dynamodb_json(ddb: Any, s3: Any, make_table: Any, unique: str) -> None:
    t, arn = _pitr_table(ddb, make_table)
    bucket = f"exp-{unique}"
    s3.create_bucket(Bucket=bucket)
    items = [
        {
            "pk": {"S": f"p{i % 3}"},
            "n": {"N": str(i)},
            "blob": {"B": bytes([i, 0, 255])},
            "tags": {"SS": ["a", "b"]},
        }
        for i in range(30)
    ]
    for item in items:
        ddb.put_item(TableName=t, Item=item)
    desc = ddb.export_table_to_point_in_time(TableArn=arn, S3Bucket=bucket, S3Prefix="backups/ddb")[
        "ExportDescription"
    ]
    assert desc["ExportStatus"] == "IN_PROGRESS" and desc["ExportArn"].startswith(arn + "/export/")
    done = _finished(ddb, desc["ExportArn"])
    assert done["ExportStatus"] == "COMPLETED", done
    assert done["ItemCount"] == 30 and done["ExportFormat"] == "DYNAMODB_JSON"
    assert done["ExportManifest"].startswith("backups/ddb/AWSDynamoDB/")
    got = _exported_items(s3, bucket, done)
    want = [{**x, "blob": {"B": base64.b64encode(x["blob"]["B"]).decode()}} for x in items]
    key = lambda x: (x["pk"]["S"], int(x["n"]["N"]))  # noqa: E731
    assert sorted(got, key=key) == sorted(want, key=key)
    listed = ddb.list_exports(TableArn=arn)["ExportSummaries"]
    assert listed == [
        {"ExportArn": done["ExportArn"], "ExportStatus": "COMPLETED", "ExportType": "FULL_EXPORT"}
    ]


def test_export_time_gives_the_table_as_it_was(ddb: Any, s3: Any, make_table: Any, unique: str) -> None:
    t, arn = _pitr_table(ddb, make_table)
    bucket = f"expt-{unique}"
    s3.create_bucket(Bucket=bucket)
    for i in range(5):
        ddb.put_item(TableName=t, Item={"pk": {"S": "p"}, "n": {"N": str(i)}, "v": {"S": "old"}})
    time.sleep(1.5)
    then = datetime.now(UTC)
    time.sleep(1.5)
    ddb.put_item(TableName=t, Item={"pk": {"S": "p"}, "n": {"N": "0"}, "v": {"S": "new"}})
    ddb.delete_item(TableName=t, Key={"pk": {"S": "p"}, "n": {"N": "1"}})
    ddb.put_item(TableName=t, Item={"pk": {"S": "p"}, "n": {"N": "9"}, "v": {"S": "new"}})
    desc = ddb.export_table_to_point_in_time(TableArn=arn, S3Bucket=bucket, ExportTime=then)[
        "ExportDescription"
    ]
    done = _finished(ddb, desc["ExportArn"])
    assert done["ExportStatus"] == "COMPLETED", done
    got = sorted((x["n"]["N"], x["v"]["S"]) for x in _exported_items(s3, bucket, done))
    assert got == [(str(i), "old") for i in range(5)]


def test_export_errors(ddb: Any, make_table: Any, unique: str) -> None:
    t = make_table(("pk", "S"))
    arn = ddb.describe_table(TableName=t)["Table"]["TableArn"]
    with pytest.raises(ClientError) as e:
        ddb.export_table_to_point_in_time(TableArn=arn, S3Bucket="any-bucket")
    assert e.value.response["Error"]["Code"] == "PointInTimeRecoveryUnavailableException"
    with pytest.raises(ClientError) as e:
        ddb.export_table_to_point_in_time(TableArn=arn + "-gone", S3Bucket="any-bucket")
    assert e.value.response["Error"]["Code"] == "TableNotFoundException"
    t2, arn2 = _pitr_table(ddb, make_table)
    with pytest.raises(ClientError) as e:
        ddb.export_table_to_point_in_time(
            TableArn=arn2, S3Bucket="any-bucket", ExportType="INCREMENTAL_EXPORT"
        )
    assert e.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as e:
        ddb.describe_export(ExportArn=arn2 + "/export/01234567890123-abcdef01")
    assert e.value.response["Error"]["Code"] == "ExportNotFoundException"
    # A missing bucket fails the export afterwards, as in DynamoDB.
    desc = ddb.export_table_to_point_in_time(TableArn=arn2, S3Bucket=f"no-such-{unique}", ClientToken="tok-1")
    done = _finished(ddb, desc["ExportDescription"]["ExportArn"])
    assert (done["ExportStatus"], done["FailureCode"]) == ("FAILED", "S3NoSuchBucket")
    again = ddb.export_table_to_point_in_time(
        TableArn=arn2, S3Bucket=f"no-such-{unique}", ClientToken="tok-1"
    )
    assert again["ExportDescription"]["ExportArn"] == done["ExportArn"]  # the token names that export
    with pytest.raises(ClientError) as e:
        ddb.export_table_to_point_in_time(TableArn=arn2, S3Bucket=f"other-{unique}", ClientToken="tok-1")
    assert e.value.response["Error"]["Code"] == "ExportConflictException"
