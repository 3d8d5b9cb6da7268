"""On-demand GSIs have a capacity of their own (warm.py, throttle.py): GSI-level WarmThroughput
and OnDemandThroughput are honoured, a read of a GSI draws on the GSI, and a GSI short of write
capacity throttles its table's writes under the index's name (GSI back-pressure). And the
account-level quota of provisioned capacity (all tables and GSIs of an account in a region).

The server's quota and initial throughput are small (STRATA_LIMIT_*), so a batch of ten 400 KB
items (~4,000 units on the table and as many on an ALL-projected GSI) leaves a debt of tens of
seconds or more; moving the simulated clock then pays back the faster of the two only.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.strata_process import StrataProcess

ARN = "arn:aws:dynamodb:us-east-1:000000000000:table/"
BIG = "x" * (399 * 1024)  # 400 write units


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    env = {
        "STRATA_LIMIT_DYNAMODB_TABLE_MAX_UNITS": "150",
        "STRATA_LIMIT_DYNAMODB_ON_DEMAND_READ_UNITS": "100",
        "STRATA_LIMIT_DYNAMODB_ON_DEMAND_WRITE_UNITS": "50",
        "STRATA_LIMIT_DYNAMODB_ACCOUNT_MAX_UNITS": "400",
        "STRATA_LIMIT_DYNAMODB_UPDATE_SECONDS": "600",  # UPDATING outlasts any slow request
    }
    s = StrataProcess(Path(tmp_path_factory.mktemp("gsicap")) / "data", extra_env=env).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def ddb(server: StrataProcess) -> Any:
    return server.client("dynamodb", config=Config(retries={"total_max_attempts": 1}))


def gsi(name: str = "byg", **kw: Any) -> dict:
    return {
        "IndexName": name,
        "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
        "Projection": {"ProjectionType": "ALL"},
        **kw,
    }


def table(ddb: Any, name: str, index: dict, **kw: Any) -> str:
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "id", "AttributeType": "S"},
            {"AttributeName": "g", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
        GlobalSecondaryIndexes=[index],
        **kw,
    )
    return name


def error(call: Any, **kw: Any) -> tuple[str, str, list]:
    with pytest.raises(ClientError) as e:
        call(**kw)
    r = e.value.response
    return r["Error"]["Code"], r["Error"]["Message"], r.get("ThrottlingReasons") or r.get("throttlingReasons")


def big_batch(ddb: Any, name: str, tag: str) -> None:
    puts = [
        {"PutRequest": {"Item": {"id": {"S": f"{tag}{i}"}, "g": {"S": "k"}, "v": {"S": BIG}}}}
        for i in range(10)
    ]
    assert ddb.batch_write_item(RequestItems={name: puts})["UnprocessedItems"] == {}


def index_desc(ddb: Any, name: str) -> dict:
    return ddb.describe_table(TableName=name)["Table"]["GlobalSecondaryIndexes"][0]


def test_gsi_warm_and_maximum_throughput_are_kept_and_validated(
    server: StrataProcess, ddb: Any, unique: str
) -> None:
    t = table(
        ddb,
        f"gw-{unique}",
        gsi(WarmThroughput={"ReadUnitsPerSecond": 120}, OnDemandThroughput={"MaxWriteRequestUnits": 9}),
    )
    desc = index_desc(ddb, t)
    assert desc["WarmThroughput"] == {
        "ReadUnitsPerSecond": 120,
        "WriteUnitsPerSecond": 50,
        "Status": "ACTIVE",
    }
    assert desc["OnDemandThroughput"] == {"MaxReadRequestUnits": -1, "MaxWriteRequestUnits": 9}

    ddb.update_table(
        TableName=t,
        GlobalSecondaryIndexUpdates=[
            {"Update": {"IndexName": "byg", "WarmThroughput": {"WriteUnitsPerSecond": 140}}},
        ],
    )
    table_desc = ddb.describe_table(TableName=t)["Table"]  # pre-warming takes a while, as on AWS
    assert table_desc["TableStatus"] == "UPDATING"
    assert table_desc["WarmThroughput"]["Status"] == "ACTIVE"  # the table's own was not raised
    desc = table_desc["GlobalSecondaryIndexes"][0]
    assert (desc["IndexStatus"], desc["WarmThroughput"]["Status"]) == ("UPDATING", "UPDATING")
    server.advance_clock("11m")
    desc = index_desc(ddb, t)
    assert (desc["IndexStatus"], desc["WarmThroughput"]["Status"]) == ("ACTIVE", "ACTIVE")
    ddb.update_table(
        TableName=t,
        GlobalSecondaryIndexUpdates=[
            {"Update": {"IndexName": "byg", "OnDemandThroughput": {"MaxWriteRequestUnits": -1}}},
        ],
    )
    desc = index_desc(ddb, t)
    assert desc["WarmThroughput"]["WriteUnitsPerSecond"] == 140
    assert "OnDemandThroughput" not in desc
    assert ddb.describe_table(TableName=t)["Table"]["WarmThroughput"]["WriteUnitsPerSecond"] == 50

    code, message, _ = error(
        ddb.update_table,
        TableName=t,
        GlobalSecondaryIndexUpdates=[
            {"Update": {"IndexName": "byg", "WarmThroughput": {"WriteUnitsPerSecond": 60}}}
        ],
    )
    assert (code, message) == (
        "ValidationException",
        "One or more parameter values were invalid: Requested WriteUnitsPerSecond for WarmThroughput for index "
        "byg is lower than current WarmThroughput, decreasing WarmThroughput is not supported",
    )
    code, message, _ = error(
        ddb.update_table,
        TableName=t,
        GlobalSecondaryIndexUpdates=[
            {"Update": {"IndexName": "byg", "WarmThroughput": {"ReadUnitsPerSecond": 151}}}
        ],
    )
    assert code == "LimitExceededException"
    assert (
        "Requested ReadUnitsPerSecond for WarmThroughput for index byg exceeds TableMaxReadCapacityUnits"
        in message
    )
    code, message, _ = error(
        ddb.create_table,
        TableName=f"gp-{unique}",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "id", "AttributeType": "S"},
            {"AttributeName": "g", "AttributeType": "S"},
        ],
        BillingMode="PROVISIONED",
        ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
        GlobalSecondaryIndexes=[
            gsi(
                ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
                OnDemandThroughput={"MaxReadRequestUnits": 5},
            )
        ],
    )
    assert code == "ValidationException"
    assert "MaxReadRequestUnits for OnDemandThroughput for index byg cannot be specified" in message

    ddb.update_table(TableName=t, WarmThroughput={"ReadUnitsPerSecond": 130})  # the table's own
    table_desc = ddb.describe_table(TableName=t)["Table"]
    assert (table_desc["TableStatus"], table_desc["WarmThroughput"]) == (
        "UPDATING",
        {"ReadUnitsPerSecond": 130, "WriteUnitsPerSecond": 50, "Status": "UPDATING"},
    )
    assert table_desc["GlobalSecondaryIndexes"][0]["IndexStatus"] == "ACTIVE"
    assert error(ddb.delete_table, TableName=t)[0] == "ResourceInUseException"
    server.advance_clock("11m")
    assert ddb.describe_table(TableName=t)["Table"]["WarmThroughput"]["Status"] == "ACTIVE"


def test_a_gsi_short_of_write_capacity_throttles_its_tables_writes(
    server: StrataProcess, ddb: Any, unique: str
) -> None:
    # The table is pre-warmed to the quota (150/s), its GSI has the initial 50/s: after the
    # batch's debt, 30 s pay the table back and not the GSI.
    t = table(ddb, f"gbp-{unique}", gsi(), WarmThroughput={"WriteUnitsPerSecond": 150})
    big_batch(ddb, t, "a")
    server.advance_clock("30s")
    code, _, reasons = error(ddb.put_item, TableName=t, Item={"id": {"S": "small"}})
    assert code == "ThrottlingException"
    assert reasons == [{"reason": "IndexWriteKeyRangeThroughputExceeded", "resource": f"{ARN}{t}/index/byg"}]
    assert "Item" not in ddb.get_item(TableName=t, Key={"id": {"S": "small"}})
    ddb.get_item(TableName=t, Key={"id": {"S": "a0"}})  # reads are not held back

    # A GSI's maximum throttles the same way, under its own reason.
    m = table(
        ddb,
        f"gmx-{unique}",
        gsi(OnDemandThroughput={"MaxWriteRequestUnits": 5}),
        WarmThroughput={"WriteUnitsPerSecond": 150},
    )
    big_batch(ddb, m, "a")
    server.advance_clock("60s")
    code, message, reasons = error(ddb.put_item, TableName=m, Item={"id": {"S": "small"}})
    assert (code, message) == ("ThrottlingException", "Rate of requests exceeds the allowed throughput.")
    assert reasons == [
        {"reason": "IndexWriteMaxOnDemandThroughputExceeded", "resource": f"{ARN}{m}/index/byg"}
    ]


def test_a_read_of_a_gsi_draws_on_the_gsis_read_capacity(
    server: StrataProcess, ddb: Any, unique: str
) -> None:
    t = table(ddb, f"grd-{unique}", gsi(OnDemandThroughput={"MaxReadRequestUnits": 1}))
    big_batch(ddb, t, "a")
    server.advance_clock("3m")  # the writes' debt is paid back
    query = {"TableName": t, "IndexName": "byg", "KeyConditionExpression": "g = :g"}
    values = {":g": {"S": "k"}}
    # A page of 1 MB read eventually consistently: over 100 units against a maximum of 1/s.
    assert ddb.query(**query, ExpressionAttributeValues=values)["Count"] >= 1
    code, _, reasons = error(ddb.query, **query, ExpressionAttributeValues=values)
    assert code == "ThrottlingException"
    assert reasons == [
        {"reason": "IndexReadMaxOnDemandThroughputExceeded", "resource": f"{ARN}{t}/index/byg"}
    ]
    item = ddb.get_item(TableName=t, Key={"id": {"S": "a1"}})["Item"]  # the table's own capacity
    assert item["g"] == {"S": "k"}


def test_the_account_quota_bounds_the_provisioned_capacity_of_all_tables_and_gsis(
    server: StrataProcess, ddb: Any, unique: str
) -> None:
    assert ddb.describe_limits()["AccountMaxReadCapacityUnits"] == 400
    # The per-table quota (150 here) bounds a new table with its GSIs together...
    code, message, _ = error(ddb.create_table, **_spec(f"a0-{unique}", 100, index_read=51))
    assert (code, message) == (
        "LimitExceededException",
        "The requested ReadCapacityUnits, 151, is above the per table maximum for the account in us-east-1. "
        "Per table maximum: 150.",
    )
    one = f"a1-{unique}"
    ddb.create_table(**_spec(one, 100, index_read=50))
    # ... and only a new one: an existing table is bounded by the account quota alone.
    ddb.update_table(
        TableName=one,
        GlobalSecondaryIndexUpdates=[
            {
                "Update": {
                    "IndexName": "byg",
                    "ProvisionedThroughput": {"ReadCapacityUnits": 100, "WriteCapacityUnits": 1},
                }
            }
        ],
    )
    two = f"a2-{unique}"
    ddb.create_table(**_spec(two, 150))  # 350 of 400
    code, message, _ = error(ddb.create_table, **_spec(f"a3-{unique}", 51))
    assert (code, message) == (
        "LimitExceededException",
        "The requested ReadCapacityUnits, 51, would bring the account's provisioned ReadCapacityUnits to 401, "
        "above the per account maximum for the account in us-east-1. Per account maximum: 400.",
    )
    assert f"a3-{unique}" not in ddb.list_tables()["TableNames"]
    ddb.update_table(TableName=two, ProvisionedThroughput={"ReadCapacityUnits": 140, "WriteCapacityUnits": 1})
    three = f"a3-{unique}"
    ddb.create_table(**_spec(three, 60))  # 400 again
    code, _, _ = error(
        ddb.update_table,
        TableName=three,
        ProvisionedThroughput={"ReadCapacityUnits": 61, "WriteCapacityUnits": 1},
    )
    assert code == "LimitExceededException"
    server.advance_clock("11m")  # the updates are done
    ddb.update_table(TableName=one, BillingMode="PAY_PER_REQUEST")  # on-demand capacity does not count
    ddb.update_table(
        TableName=three, ProvisionedThroughput={"ReadCapacityUnits": 140, "WriteCapacityUnits": 1}
    )


def _spec(name: str, read: int, index_read: int | None = None) -> dict:
    spec: dict = {
        "TableName": name,
        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
        "BillingMode": "PROVISIONED",
        "ProvisionedThroughput": {"ReadCapacityUnits": read, "WriteCapacityUnits": 1},
    }
    if index_read is not None:
        spec["AttributeDefinitions"].append({"AttributeName": "g", "AttributeType": "S"})
        spec["GlobalSecondaryIndexes"] = [
            gsi(ProvisionedThroughput={"ReadCapacityUnits": index_read, "WriteCapacityUnits": 1})
        ]
    return spec


def test_a_restore_takes_an_on_demand_maximum_override(ddb: Any, unique: str) -> None:
    src = table(ddb, f"rs-{unique}", gsi(), OnDemandThroughput={"MaxWriteRequestUnits": 9})
    arn = ddb.create_backup(TableName=src, BackupName="bak")["BackupDetails"]["BackupArn"]
    deadline = time.monotonic() + 60
    while (
        ddb.describe_backup(BackupArn=arn)["BackupDescription"]["BackupDetails"]["BackupStatus"]
        != "AVAILABLE"
    ):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    kept = ddb.restore_table_from_backup(TargetTableName=f"rk-{unique}", BackupArn=arn)
    assert kept["TableDescription"]["OnDemandThroughput"] == {
        "MaxReadRequestUnits": -1,
        "MaxWriteRequestUnits": 9,
    }
    out = ddb.restore_table_from_backup(
        TargetTableName=f"rd-{unique}", BackupArn=arn, OnDemandThroughputOverride={"MaxReadRequestUnits": 7}
    )
    assert out["TableDescription"]["OnDemandThroughput"] == {
        "MaxReadRequestUnits": 7,
        "MaxWriteRequestUnits": -1,
    }
    code, message, _ = error(
        ddb.restore_table_from_backup,
        TargetTableName=f"re-{unique}",
        BackupArn=arn,
        BillingModeOverride="PROVISIONED",
        ProvisionedThroughputOverride={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
        OnDemandThroughputOverride={"MaxReadRequestUnits": 7},
    )
    assert (code, message) == (
        "ValidationException",
        "One or more parameter values were invalid: MaxReadRequestUnits for OnDemandThroughput cannot be "
        "specified when table BillingMode is PROVISIONED.",
    )
    provisioned = ddb.restore_table_from_backup(
        TargetTableName=f"rp-{unique}",
        BackupArn=arn,
        BillingModeOverride="PROVISIONED",
        ProvisionedThroughputOverride={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
    )
    assert "OnDemandThroughput" not in provisioned["TableDescription"]  # means nothing when provisioned
