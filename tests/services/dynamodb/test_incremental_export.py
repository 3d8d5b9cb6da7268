"""Incremental exports (ExportType INCREMENTAL_EXPORT): the changes of a window of the table's
point-in-time history, one record a changed key compacted to its final state (Keys, NewImage,
OldImage as the view type says; a deletion has no NewImage; a key created and deleted inside the
window has no record), read back with the S3 API in DYNAMODB_JSON and ION; DynamoDB's checks of
the window and of the request's shape. Moves the clock: the package's `clock_server`."""

from __future__ import annotations

import gzip
import json
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from amazon.ion import simpleion
from botocore.exceptions import ClientError

from tests.strata_process import StrataProcess


def _now(server: StrataProcess, advance: str) -> datetime:
    return datetime.fromisoformat(server.advance_clock(advance)["now"])


def _put(ddb: Any, table: str, pk: str, v: str) -> None:
    ddb.put_item(TableName=table, Item={"pk": {"S": pk}, "v": {"S": v}})


def _export(ddb: Any, s3: Any, arn: str, bucket: str, **kw: Any) -> tuple[dict, list[str]]:
    desc = ddb.export_table_to_point_in_time(
        TableArn=arn, S3Bucket=bucket, ExportType="INCREMENTAL_EXPORT", **kw
    )
    export_arn = desc["ExportDescription"]["ExportArn"]
    deadline = time.monotonic() + 60
    while (done := ddb.describe_export(ExportArn=export_arn)["ExportDescription"])[
        "ExportStatus"
    ] == "IN_PROGRESS":
        assert time.monotonic() < deadline, "the export did not finish"
        time.sleep(0.1)
    assert done["ExportStatus"] == "COMPLETED", done
    summary = json.loads(s3.get_object(Bucket=bucket, Key=done["ExportManifest"])["Body"].read())
    assert summary["exportType"] == "INCREMENTAL_EXPORT" and summary["itemCount"] == done["ItemCount"]
    assert summary["outputView"] == done["IncrementalExportSpecification"]["ExportViewType"]
    files = s3.get_object(Bucket=bucket, Key=summary["manifestFilesS3Key"])["Body"].read().decode()
    lines: list[str] = []
    for entry in map(json.loads, files.splitlines()):
        body = s3.get_object(Bucket=bucket, Key=entry["dataFileS3Key"])["Body"].read()
        lines += gzip.decompress(body).decode().splitlines()
    return done, lines


def test_incremental_export_of_a_window(clock_server: StrataProcess, unique: str) -> None:
    ddb, s3 = clock_server.client("dynamodb"), clock_server.client("s3")
    table = f"inc-{unique}"
    ddb.create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.update_continuous_backups(
        TableName=table, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )
    arn = ddb.describe_table(TableName=table)["Table"]["TableArn"]
    for pk in ("a1", "a2", "a3"):
        _put(ddb, table, pk, "v0")
    start = _now(clock_server, "1h")
    _put(ddb, table, "a1", "v1")  # modified
    ddb.delete_item(TableName=table, Key={"pk": {"S": "a2"}})  # deleted
    _put(ddb, table, "b1", "v0")  # inserted, then modified: one record
    _put(ddb, table, "b1", "v1")
    _put(ddb, table, "b2", "v0")  # inserted and deleted: no record
    ddb.delete_item(TableName=table, Key={"pk": {"S": "b2"}})
    end = _now(clock_server, "30m")
    _put(ddb, table, "b1", "after")  # after the window: not in it
    ddb.delete_item(TableName=table, Key={"pk": {"S": "a1"}})
    _put(ddb, table, "a3", "after")
    _now(clock_server, "1m")
    bucket = f"inc-{unique}"
    s3.create_bucket(Bucket=bucket)

    spec = {"ExportFromTime": start, "ExportToTime": end}
    done, lines = _export(ddb, s3, arn, bucket, IncrementalExportSpecification=spec)
    assert done["IncrementalExportSpecification"]["ExportViewType"] == "NEW_AND_OLD_IMAGES"
    records = {r["Keys"]["pk"]["S"]: r for r in map(json.loads, lines)}
    assert sorted(records) == ["a1", "a2", "b1"] and done["ItemCount"] == 3, lines
    for r in records.values():
        micros = int(r["Metadata"]["WriteTimestampMicros"]["N"])
        assert start.timestamp() - 1 <= micros / 1e6 <= end.timestamp()
    item = lambda pk, v: {"pk": {"S": pk}, "v": {"S": v}}  # noqa: E731
    assert {k: v for k, v in records["a1"].items() if k != "Metadata"} == {
        "Keys": {"pk": {"S": "a1"}},
        "NewImage": item("a1", "v1"),
        "OldImage": item("a1", "v0"),
    }
    assert "NewImage" not in records["a2"] and records["a2"]["OldImage"] == item("a2", "v0")
    assert records["b1"]["NewImage"] == item("b1", "v1") and "OldImage" not in records["b1"]

    spec_new = {**spec, "ExportViewType": "NEW_IMAGE"}
    _, lines = _export(ddb, s3, arn, bucket, IncrementalExportSpecification=spec_new, S3Prefix="new")
    records = {r["Keys"]["pk"]["S"]: r for r in map(json.loads, lines)}
    assert set(records["a2"]) == {"Metadata", "Keys"}  # a deletion is its keys alone
    assert records["a1"]["NewImage"] == item("a1", "v1") and "OldImage" not in records["a1"]

    _, lines = _export(
        ddb, s3, arn, bucket, IncrementalExportSpecification=spec, ExportFormat="ION", S3Prefix="ion"
    )
    values = {str(v["Keys"]["pk"]): v for v in (simpleion.loads(line) for line in lines)}
    assert sorted(values) == ["a1", "a2", "b1"] and all(line.startswith("$ion_1_0 {") for line in lines)
    assert values["a1"]["NewImage"]["v"] == "v1" and values["a1"]["OldImage"]["v"] == "v0"
    assert "NewImage" not in values["a2"]


def test_incremental_export_errors(clock_server: StrataProcess, unique: str) -> None:
    ddb = clock_server.client("dynamodb")
    table = f"incerr-{unique}"
    ddb.create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.update_continuous_backups(
        TableName=table, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )
    arn = ddb.describe_table(TableName=table)["Table"]["TableArn"]
    now = _now(clock_server, "30h")

    def refused(code: str, fragment: str, **kw: Any) -> None:
        with pytest.raises(ClientError) as e:
            ddb.export_table_to_point_in_time(TableArn=arn, S3Bucket="any-bucket", **kw)
        err = e.value.response["Error"]
        assert err["Code"] == code and fragment in err["Message"], err

    spec = {"ExportFromTime": now - timedelta(hours=2), "ExportToTime": now - timedelta(hours=1)}
    refused(
        "ValidationException", "Incremental Export Specification expected", ExportType="INCREMENTAL_EXPORT"
    )
    refused(
        "ValidationException", "Export Type expected to be Incremental", IncrementalExportSpecification=spec
    )
    refused(
        "ValidationException",
        "Incremental Export Specification should not be provided",
        ExportType="FULL_EXPORT",
        IncrementalExportSpecification=spec,
    )
    inc = {"ExportType": "INCREMENTAL_EXPORT"}
    refused(
        "ValidationException",
        "ExportFromTime must be provided",
        IncrementalExportSpecification={"ExportViewType": "NEW_IMAGE"},
        **inc,
    )
    window = "InvalidExportTimeException"
    short = {"ExportFromTime": now - timedelta(minutes=20), "ExportToTime": now - timedelta(minutes=10)}
    refused(window, "less than 15 minutes", IncrementalExportSpecification=short, **inc)
    long = {"ExportFromTime": now - timedelta(hours=29), "ExportToTime": now - timedelta(hours=1)}
    refused(window, "more than 24 hours", IncrementalExportSpecification=long, **inc)
    early = {"ExportFromTime": now - timedelta(hours=31), "ExportToTime": now - timedelta(hours=29)}
    refused(window, "from time cannot be less than", IncrementalExportSpecification=early, **inc)
    future = {"ExportFromTime": now - timedelta(hours=1), "ExportToTime": now + timedelta(hours=1)}
    refused(
        window,
        "to time cannot be greater than the current time",
        IncrementalExportSpecification=future,
        **inc,
    )
    inverted = {"ExportFromTime": now - timedelta(hours=1), "ExportToTime": now - timedelta(hours=2)}
    refused(window, "from time cannot be less than", IncrementalExportSpecification=inverted, **inc)
