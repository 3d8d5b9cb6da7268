"""ION exports and imports: an export with ExportFormat ION writes Amazon Ion text in DynamoDB's
layout (`$ion_1_0 {Item:{...}}` a line, numbers as decimals, blobs, sets as `$dynamodb_SS::[...]`
annotated lists), read back with the S3 API and the `amazon.ion` parser, then imported with
InputFormat ION into a new table equal to the source; hand-written Ion with a bad value counts it
as an error."""

from __future__ import annotations

import gzip
import json
import time
from decimal import Decimal
from typing import Any

import pytest
from amazon.ion import simpleion

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


def _poll(read: Any, status: str) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        desc = read()
        if desc[status] != "IN_PROGRESS":
            return desc
        time.sleep(0.1)
    raise AssertionError("the job did not finish")


def _all(ddb: Any, table: str) -> list[dict]:
    items = ddb.scan(TableName=table)["Items"]
    return sorted(items, key=lambda x: (x["pk"]["S"], int(x["n"]["N"])))


def test_ion_export_round_trips_through_import(ddb: Any, s3: Any, make_table: Any, unique: str) -> None:
    source = make_table(("pk", "S"), ("n", "N"))
    ddb.update_continuous_backups(
        TableName=source, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )
    for i in range(12):
        ddb.put_item(
            TableName=source,
            Item={
                "pk": {"S": f"p{i % 3}"},
                "n": {"N": str(i)},
                "price": {"N": "12.50"},
                "b": {"B": bytes([i, 0, 255])},
                "tags": {"SS": ["a", "b"]},
                "nums": {"NS": ["1", "2.5"]},
                "bins": {"BS": [b"\x01", b"\x02"]},
                "m": {"M": {"l": {"L": [{"NULL": True}, {"BOOL": i % 2 == 0}, {"S": "x"}]}}},
            },
        )
    bucket = f"ion-{unique}"
    s3.create_bucket(Bucket=bucket)
    arn = ddb.describe_table(TableName=source)["Table"]["TableArn"]
    started = ddb.export_table_to_point_in_time(
        TableArn=arn, S3Bucket=bucket, S3Prefix="i", ExportFormat="ION"
    )
    export_arn = started["ExportDescription"]["ExportArn"]
    done = _poll(lambda: ddb.describe_export(ExportArn=export_arn)["ExportDescription"], "ExportStatus")
    assert (done["ExportStatus"], done["ExportFormat"], done["ItemCount"]) == ("COMPLETED", "ION", 12), done
    summary = json.loads(s3.get_object(Bucket=bucket, Key=done["ExportManifest"])["Body"].read())
    assert summary["outputFormat"] == "ION"
    files = s3.get_object(Bucket=bucket, Key=summary["manifestFilesS3Key"])["Body"].read().decode()
    keys = [json.loads(line)["dataFileS3Key"] for line in files.splitlines()]
    assert keys and all(k.endswith(".ion.gz") for k in keys)
    text = b"".join(
        gzip.decompress(s3.get_object(Bucket=bucket, Key=k)["Body"].read()) for k in keys
    ).decode()
    lines = text.splitlines()
    assert len(lines) == 12 and all(line.startswith("$ion_1_0 {Item:{") for line in lines)
    first = simpleion.loads(lines[0])["Item"]
    assert first["price"] == Decimal("12.50") and isinstance(first["b"], bytes)
    assert [a.text for a in first["tags"].ion_annotations] == ["$dynamodb_SS"]
    assert [a.text for a in first["nums"].ion_annotations] == ["$dynamodb_NS"]
    assert [a.text for a in first["bins"].ion_annotations] == ["$dynamodb_BS"]
    assert list(first["nums"]) == [Decimal("1"), Decimal("2.5")]

    export_id = export_arn.rsplit("/", 1)[1]
    target = f"ion-in-{unique}"
    imp = ddb.import_table(
        S3BucketSource={"S3Bucket": bucket, "S3KeyPrefix": f"i/AWSDynamoDB/{export_id}/data/"},
        InputFormat="ION",
        InputCompressionType="GZIP",
        TableCreationParameters={"TableName": target, **KEYS},
    )["ImportTableDescription"]
    got = _poll(
        lambda: ddb.describe_import(ImportArn=imp["ImportArn"])["ImportTableDescription"], "ImportStatus"
    )
    try:
        assert got["ImportStatus"] == "COMPLETED", got
        assert (got["InputFormat"], got["ImportedItemCount"], got["ErrorCount"]) == ("ION", 12, 0)
        assert _all(ddb, target) == _all(ddb, source)
    finally:
        ddb.delete_table(TableName=target)


def test_hand_written_ion_with_a_bad_value(ddb: Any, s3: Any, unique: str) -> None:
    bucket = f"ionh-{unique}"
    s3.create_bucket(Bucket=bucket)
    body = (
        '$ion_1_0 {Item:{pk:"a",n:1,s:$dynamodb_SS::["x"],f:2.5e0,y:sym}}\n'
        '$ion_1_0 {Item:{pk:"a",n:2.}}\n'
        '{Item:{pk:"b",n:$dynamodb_NS::["not a number"]}}\n'  # a key of the wrong type
        '{Item:{pk:"c",n:3,bad:$dynamodb_NS::["x"]}}\n'  # a number set of strings
        "{NotAnItem:1}\n"
        '$ion_1_0 {Item:{pk:"c",n:6d2,t:2020-01-01T}}\n'  # a timestamp is no DynamoDB type
        '$ion_1_0 {Item:{pk:"c",n:6d2}}\n'  # the exponent form of AWS's documented example
    )
    s3.put_object(Bucket=bucket, Key="in/part.ion", Body=body.encode())
    target = f"ionh-{unique}"
    imp = ddb.import_table(
        S3BucketSource={"S3Bucket": bucket, "S3KeyPrefix": "in/"},
        InputFormat="ION",
        TableCreationParameters={"TableName": target, **KEYS},
    )["ImportTableDescription"]
    got = _poll(
        lambda: ddb.describe_import(ImportArn=imp["ImportArn"])["ImportTableDescription"], "ImportStatus"
    )
    try:
        assert got["ImportStatus"] == "COMPLETED", got
        assert (got["ProcessedItemCount"], got["ImportedItemCount"], got["ErrorCount"]) == (7, 3, 4)
        assert _all(ddb, target) == [
            {"pk": {"S": "a"}, "n": {"N": "1"}, "s": {"SS": ["x"]}, "f": {"N": "2.5"}, "y": {"S": "sym"}},
            {"pk": {"S": "a"}, "n": {"N": "2"}},
            {"pk": {"S": "c"}, "n": {"N": "600"}},
        ]
    finally:
        ddb.delete_table(TableName=target)
