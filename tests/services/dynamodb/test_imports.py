"""ImportTable from a Strata bucket: an export read back into a new table (DYNAMODB_JSON, GZIP),
CSV with its header and key types, lines that are not items counted as errors, the failures,
idempotency tokens, Describe/ListImports."""

from __future__ import annotations

import gzip
import json
import time
from typing import Any

import pytest
import zstandard
from botocore.exceptions import ClientError

KEYS = {
    "AttributeDefinitions": [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "n", "AttributeType": "N"},
    ],
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "n", "KeyType": "RANGE"}],
    "BillingMode": "PAY_PER_REQUEST",
}


@pytest.fixture(scope="module")
def s3(strata_server: Any) -> Any:
    return strata_server.client("s3")


def _finished(ddb: Any, arn: str) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        desc = ddb.describe_import(ImportArn=arn)["ImportTableDescription"]
        if desc["ImportStatus"] != "IN_PROGRESS":
            return desc
        time.sleep(0.1)
    raise AssertionError("the import did not finish")


def _all(ddb: Any, table: str) -> list[dict]:
    items = ddb.scan(TableName=table)["Items"]
    return sorted(items, key=lambda x: (x["pk"]["S"], int(x["n"]["N"])))


def test_an_export_imports_into_a_new_table(ddb: Any, s3: Any, make_table: Any, unique: str) -> None:
    source = make_table(("pk", "S"), ("n", "N"))
    ddb.update_continuous_backups(
        TableName=source, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )
    for i in range(40):
        item = {
            "pk": {"S": f"p{i % 4}"},
            "n": {"N": str(i)},
            "b": {"B": bytes([i, 0])},
            "m": {"M": {"x": {"L": [{"N": "1"}]}}},
        }
        ddb.put_item(TableName=source, Item=item)
    bucket = f"imp-{unique}"
    s3.create_bucket(Bucket=bucket)
    arn = ddb.describe_table(TableName=source)["Table"]["TableArn"]
    export = ddb.export_table_to_point_in_time(TableArn=arn, S3Bucket=bucket, S3Prefix="x")[
        "ExportDescription"
    ]
    deadline = time.monotonic() + 60
    while (
        ddb.describe_export(ExportArn=export["ExportArn"])["ExportDescription"]["ExportStatus"]
        == "IN_PROGRESS"
    ):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    export_id = export["ExportArn"].rsplit("/", 1)[1]
    target = f"imported-{unique}"
    started = ddb.import_table(
        S3BucketSource={"S3Bucket": bucket, "S3KeyPrefix": f"x/AWSDynamoDB/{export_id}/data/"},
        InputFormat="DYNAMODB_JSON",
        InputCompressionType="GZIP",
        TableCreationParameters={"TableName": target, **KEYS},
    )["ImportTableDescription"]
    assert started["ImportStatus"] == "IN_PROGRESS"
    done = _finished(ddb, started["ImportArn"])
    try:
        assert done["ImportStatus"] == "COMPLETED", done
        assert (done["ImportedItemCount"], done["ErrorCount"]) == (40, 0)
        assert ddb.describe_table(TableName=target)["Table"]["TableStatus"] == "ACTIVE"
        assert _all(ddb, target) == _all(ddb, source)
        listed = ddb.list_imports(TableArn=done["TableArn"])["ImportSummaryList"]
        assert [x["ImportArn"] for x in listed] == [done["ImportArn"]]
    finally:
        ddb.delete_table(TableName=target)


def test_csv_with_header_and_bad_lines(ddb: Any, s3: Any, unique: str) -> None:
    bucket = f"csv-{unique}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="in/a.csv", Body=b"pk,n,color,size\nx,1,red,10\nx,2,,20\ny,3,blue,\n")
    s3.put_object(Bucket=bucket, Key="in/b.csv", Body=b"pk,n,color\nz,notanumber,green\n,4,none\nx,1,again\n")
    target = f"csv-{unique}"
    started = ddb.import_table(
        S3BucketSource={"S3Bucket": bucket, "S3KeyPrefix": "in/"},
        InputFormat="CSV",
        TableCreationParameters={"TableName": target, **KEYS},
    )["ImportTableDescription"]
    done = _finished(ddb, started["ImportArn"])
    try:
        assert done["ImportStatus"] == "COMPLETED", done
        assert (done["ProcessedItemCount"], done["ErrorCount"], done["ImportedItemCount"]) == (6, 2, 3)
        assert _all(ddb, target) == [
            {"pk": {"S": "x"}, "n": {"N": "1"}, "color": {"S": "again"}},  # the last line of a key wins
            {"pk": {"S": "x"}, "n": {"N": "2"}, "size": {"S": "20"}},
            {"pk": {"S": "y"}, "n": {"N": "3"}, "color": {"S": "blue"}},
        ]
    finally:
        ddb.delete_table(TableName=target)


def test_import_failures_and_tokens(ddb: Any, s3: Any, make_table: Any, unique: str) -> None:
    existing = make_table(("pk", "S"))
    source = {"S3Bucket": f"none-{unique}"}
    with pytest.raises(ClientError) as e:
        ddb.import_table(
            S3BucketSource=source, InputFormat="CSV", TableCreationParameters={"TableName": existing, **KEYS}
        )
    assert e.value.response["Error"]["Code"] == "ResourceInUseException"
    with pytest.raises(ClientError) as e:
        ddb.import_table(
            S3BucketSource=source,
            InputFormat="DYNAMODB_JSON",
            InputFormatOptions={"Csv": {"Delimiter": ";"}},
            TableCreationParameters={"TableName": f"n-{unique}", **KEYS},
        )
    assert e.value.response["Error"] == {
        "Code": "ValidationException",
        "Message": "Unsupported InputFormatOptions for the given input format",
    }
    for fmt, compression in (("CSV", "BZIP2"),):  # not one of GZIP | ZSTD | NONE
        with pytest.raises(ClientError) as e:
            ddb.import_table(
                S3BucketSource=source,
                InputFormat=fmt,
                InputCompressionType=compression,
                TableCreationParameters={"TableName": f"n-{unique}", **KEYS},
            )
        assert e.value.response["Error"]["Code"] == "ValidationException"
    target = f"never-{unique}"
    kw = {
        "S3BucketSource": source,
        "InputFormat": "CSV",
        "TableCreationParameters": {"TableName": target, **KEYS},
    }
    failed = ddb.import_table(ClientToken="imp-1", **kw)["ImportTableDescription"]
    done = _finished(ddb, failed["ImportArn"])
    assert (done["ImportStatus"], done["FailureCode"]) == ("FAILED", "S3NoSuchBucket")
    with pytest.raises(ClientError) as e:
        ddb.describe_table(TableName=target)
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    again = ddb.import_table(ClientToken="imp-1", **kw)["ImportTableDescription"]
    assert again["ImportArn"] == done["ImportArn"]
    with pytest.raises(ClientError) as e:
        ddb.import_table(ClientToken="imp-1", **{**kw, "InputFormat": "DYNAMODB_JSON"})
    assert e.value.response["Error"]["Code"] == "ImportConflictException"
    with pytest.raises(ClientError) as e:
        ddb.describe_import(ImportArn=done["ImportArn"] + "0")
    assert e.value.response["Error"]["Code"] == "ImportNotFoundException"


def test_gzip_dynamodb_json_lines_written_by_hand(ddb: Any, s3: Any, unique: str) -> None:
    bucket = f"djson-{unique}"
    s3.create_bucket(Bucket=bucket)
    lines = [
        json.dumps({"Item": {"pk": {"S": "a"}, "n": {"N": str(i)}, "s": {"NS": ["1", "2"]}}})
        for i in range(3)
    ]
    lines.append("{not json")
    s3.put_object(Bucket=bucket, Key="d/part.json.gz", Body=gzip.compress("\n".join(lines).encode()))
    target = f"djson-{unique}"
    started = ddb.import_table(
        S3BucketSource={"S3Bucket": bucket, "S3KeyPrefix": "d/"},
        InputFormat="DYNAMODB_JSON",
        InputCompressionType="GZIP",
        TableCreationParameters={"TableName": target, **KEYS},
    )["ImportTableDescription"]
    done = _finished(ddb, started["ImportArn"])
    try:
        assert (done["ImportStatus"], done["ImportedItemCount"], done["ErrorCount"]) == ("COMPLETED", 3, 1)
        assert len(_all(ddb, target)) == 3
    finally:
        ddb.delete_table(TableName=target)


def test_zstd_lines_and_data_that_is_not_what_it_says(ddb: Any, s3: Any, unique: str) -> None:
    """ZSTD sources import as GZIP ones do (a streamed frame, without a content size, too); an
    object that is not the compression the import names fails the import, not the request."""
    bucket = f"zstd-{unique}"
    s3.create_bucket(Bucket=bucket)
    lines = "\n".join(json.dumps({"Item": {"pk": {"S": f"k{i}"}, "n": {"N": str(i)}}}) for i in range(5))
    streamed = zstandard.ZstdCompressor().compressobj()
    s3.put_object(
        Bucket=bucket, Key="z/a.json.zst", Body=streamed.compress(lines.encode()) + streamed.flush()
    )
    s3.put_object(Bucket=bucket, Key="bad/a.json.zst", Body=gzip.compress(lines.encode()))
    target = f"zstd-{unique}"
    started = ddb.import_table(
        S3BucketSource={"S3Bucket": bucket, "S3KeyPrefix": "z/"},
        InputFormat="DYNAMODB_JSON",
        InputCompressionType="ZSTD",
        TableCreationParameters={"TableName": target, **KEYS},
    )["ImportTableDescription"]
    done = _finished(ddb, started["ImportArn"])
    try:
        assert (done["ImportStatus"], done["ImportedItemCount"], done["ErrorCount"]) == ("COMPLETED", 5, 0)
        assert sorted(int(i["n"]["N"]) for i in _all(ddb, target)) == [0, 1, 2, 3, 4]
    finally:
        ddb.delete_table(TableName=target)
    for compression, prefix in (("ZSTD", "bad/"), ("GZIP", "z/")):
        failed = ddb.import_table(
            S3BucketSource={"S3Bucket": bucket, "S3KeyPrefix": prefix},
            InputFormat="DYNAMODB_JSON",
            InputCompressionType=compression,
            TableCreationParameters={"TableName": f"never-{compression}-{unique}", **KEYS},
        )["ImportTableDescription"]
        done = _finished(ddb, failed["ImportArn"])
        assert done["ImportStatus"] == "FAILED" and compression in done["FailureMessage"]
