"""Provisioned throughput enforced (throttle.py): buckets per table and GSI with 300 s of burst,
ProvisionedThroughputExceededException when empty, and the SDK's retries then succeed.

The server is the package's `clock_server`: the tests move its simulated clock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.services.dynamodb.conftest import key_schema
from tests.strata_process import StrataProcess

ARN = "arn:aws:dynamodb:us-east-1:000000000000:table/"
BIG = "x" * (399 * 1024)  # about 400 write units, more than 300 s of burst at 1 WCU


@pytest.fixture(scope="module")
def server(clock_server: StrataProcess) -> StrataProcess:
    return clock_server


@pytest.fixture(scope="module")
def ddb(server: StrataProcess) -> Any:
    return server.client("dynamodb")


def provisioned(ddb: Any, name: str, rcu: int = 1, wcu: int = 1, **kw: Any) -> str:
    ddb.create_table(
        TableName=name,
        **key_schema(("id", "S")),
        BillingMode="PROVISIONED",
        ProvisionedThroughput={"ReadCapacityUnits": rcu, "WriteCapacityUnits": wcu},
        **kw,
    )
    return name


def code(e: pytest.ExceptionInfo) -> str:
    return e.value.response["Error"]["Code"]


def test_write_beyond_burst_is_throttled_with_aws_error(ddb: Any, unique: str) -> None:
    t = provisioned(ddb, f"w-{unique}")
    ddb.put_item(TableName=t, Item={"id": {"S": "big"}, "v": {"S": BIG}})  # admitted, 100 units of debt
    with pytest.raises(ClientError) as e:
        ddb.put_item(TableName=t, Item={"id": {"S": "small"}})
    assert code(e) == "ProvisionedThroughputExceededException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert e.value.response["Error"]["Message"] == (
        "The level of configured provisioned throughput for the table was exceeded. "
        "Consider increasing your provisioning level with the UpdateTable API."
    )
    assert e.value.response["ThrottlingReasons"] == [
        {"reason": "TableWriteProvisionedThroughputExceeded", "resource": f"{ARN}{t}"}
    ]
    assert "Item" not in ddb.get_item(TableName=t, Key={"id": {"S": "small"}})  # nothing written


def test_sdk_retries_succeed_once_capacity_is_back(server: StrataProcess, unique: str) -> None:
    """boto3's default retry handler retries the throttled write; while it backs off, time passes
    (here: the simulated clock is moved when the throttle is seen) and the retry goes through."""
    ddb = server.client("dynamodb", config=Config(retries={"max_attempts": 10, "mode": "legacy"}))
    t = provisioned(ddb, f"r-{unique}")
    ddb.put_item(TableName=t, Item={"id": {"S": "big"}, "v": {"S": BIG}})
    throttles = []

    def on_retry(response: Any = None, **_: Any) -> None:
        if response and response[1].get("Error", {}).get("Code") == "ProvisionedThroughputExceededException":
            throttles.append(1)
            server.advance_clock("200s")

    ddb.meta.events.register("needs-retry.dynamodb.PutItem", on_retry)
    out = ddb.put_item(TableName=t, Item={"id": {"S": "after"}})
    assert throttles and out["ResponseMetadata"]["RetryAttempts"] >= 1
    assert ddb.get_item(TableName=t, Key={"id": {"S": "after"}}, ConsistentRead=True)["Item"]


def test_reads_draw_on_read_capacity_in_4kb_units(ddb: Any, unique: str) -> None:
    t = provisioned(ddb, f"rd-{unique}", rcu=1, wcu=400)
    ddb.put_item(TableName=t, Item={"id": {"S": "big"}, "v": {"S": BIG}})
    ok = 0
    with pytest.raises(ClientError) as e:
        for _ in range(10):  # 100 units each: 300 s of burst admits three, a fourth at most
            ddb.get_item(TableName=t, Key={"id": {"S": "big"}}, ConsistentRead=True)
            ok += 1
    assert code(e) == "ProvisionedThroughputExceededException"
    assert ok in (3, 4)
    # Writes have their own bucket: still admitted.
    ddb.put_item(TableName=t, Item={"id": {"S": "w"}})


def test_under_provisioned_gsi_throttles_table_writes(ddb: Any, unique: str) -> None:
    spec = key_schema(("id", "S"))
    spec["AttributeDefinitions"].append({"AttributeName": "g", "AttributeType": "S"})
    t = f"g-{unique}"
    ddb.create_table(
        TableName=t,
        **spec,
        BillingMode="PROVISIONED",
        ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 1000},
        GlobalSecondaryIndexes=[
            {
                "IndexName": "byg",
                "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
                "ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1},
            }
        ],
    )
    ddb.put_item(TableName=t, Item={"id": {"S": "a"}, "g": {"S": "x"}, "v": {"S": BIG}})
    with pytest.raises(ClientError) as e:
        ddb.put_item(TableName=t, Item={"id": {"S": "b"}})  # not even in the index
    assert code(e) == "ProvisionedThroughputExceededException"
    assert "global secondary indexes" in e.value.response["Error"]["Message"]
    assert e.value.response["ThrottlingReasons"] == [
        {"reason": "IndexWriteProvisionedThroughputExceeded", "resource": f"{ARN}{t}/index/byg"}
    ]


def test_batch_write_leaves_throttled_tables_items_unprocessed(ddb: Any, unique: str) -> None:
    full = provisioned(ddb, f"bf-{unique}")
    free = provisioned(ddb, f"bo-{unique}", wcu=100)
    ddb.put_item(TableName=full, Item={"id": {"S": "big"}, "v": {"S": BIG}})
    put = {"PutRequest": {"Item": {"id": {"S": "k"}}}}
    out = ddb.batch_write_item(RequestItems={full: [put], free: [put]})
    assert out["UnprocessedItems"] == {full: [put]}
    with pytest.raises(ClientError) as e:
        ddb.batch_write_item(RequestItems={full: [put]})
    assert code(e) == "ProvisionedThroughputExceededException"


def test_transaction_on_throttled_table_is_cancelled(ddb: Any, unique: str) -> None:
    t = provisioned(ddb, f"tx-{unique}")
    ddb.put_item(TableName=t, Item={"id": {"S": "big"}, "v": {"S": BIG}})
    with pytest.raises(ClientError) as e:
        ddb.transact_write_items(TransactItems=[{"Put": {"TableName": t, "Item": {"id": {"S": "k"}}}}])
    assert code(e) == "TransactionCanceledException"
    assert e.value.response["CancellationReasons"][0]["Code"] == "ThrottlingError"


def test_on_demand_tables_within_their_warm_throughput_are_not_throttled(ddb: Any, unique: str) -> None:
    t = f"od-{unique}"
    ddb.create_table(TableName=t, **key_schema(("id", "S")), BillingMode="PAY_PER_REQUEST")
    for i in range(3):
        ddb.put_item(TableName=t, Item={"id": {"S": str(i)}, "v": {"S": BIG}})


def test_enforcement_can_be_turned_off(tmp_path: Path, unique: str) -> None:
    s = StrataProcess(tmp_path / "data", extra_env={"STRATA_DYNAMODB_THROTTLING": "off"}).start()
    try:
        ddb = s.client("dynamodb")
        t = provisioned(ddb, f"off-{unique}")
        for i in range(3):
            ddb.put_item(TableName=t, Item={"id": {"S": str(i)}, "v": {"S": BIG}})
    finally:
        s.stop()


def test_on_demand_maximum_throughput(server: StrataProcess, ddb: Any, unique: str) -> None:
    t = f"max-{unique}"
    desc = ddb.create_table(
        TableName=t,
        **key_schema(("id", "S")),
        BillingMode="PAY_PER_REQUEST",
        OnDemandThroughput={"MaxWriteRequestUnits": 5},
    )["TableDescription"]
    assert desc["OnDemandThroughput"] == {"MaxReadRequestUnits": -1, "MaxWriteRequestUnits": 5}
    item = {"id": {"S": "a"}, "v": {"S": "x" * 50 * 1024}}  # 50 write request units
    ddb.put_item(TableName=t, Item=item)  # admitted: one second of the maximum was there
    with pytest.raises(ClientError) as e:
        ddb.put_item(TableName=t, Item={"id": {"S": "b"}})
    assert code(e) == "ThrottlingException"
    assert e.value.response["Error"]["Message"] == "Rate of requests exceeds the allowed throughput."
    assert e.value.response["throttlingReasons"] == [
        {"reason": "TableWriteMaxOnDemandThroughputExceeded", "resource": f"{ARN}{t}"}
    ]
    ddb.get_item(TableName=t, Key={"id": {"S": "a"}})  # reads have no maximum
    server.advance_clock("20s")
    ddb.put_item(TableName=t, Item={"id": {"S": "b"}})
    ddb.put_item(TableName=t, Item=item)
    ddb.update_table(TableName=t, OnDemandThroughput={"MaxWriteRequestUnits": -1})
    for _ in range(3):  # no maximum any more
        ddb.put_item(TableName=t, Item=item)
    assert "OnDemandThroughput" not in ddb.describe_table(TableName=t)["Table"]
    with pytest.raises(ClientError) as e:
        ddb.create_table(
            TableName=f"bad-{t}",
            **key_schema(("id", "S")),
            BillingMode="PROVISIONED",
            ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1},
            OnDemandThroughput={"MaxReadRequestUnits": 5},
        )
    assert code(e) == "ValidationException"
    assert e.value.response["Error"]["Message"] == (  # as AWS answers (measured)
        "One or more parameter values were invalid: MaxReadRequestUnits for OnDemandThroughput cannot be "
        "specified when table BillingMode is PROVISIONED."
    )
    for value in (-1, 0):  # at creation AWS refuses -1 too (it removes a maximum in UpdateTable)
        with pytest.raises(ClientError) as e:
            ddb.create_table(
                TableName=f"bad-{t}",
                **key_schema(("id", "S")),
                BillingMode="PAY_PER_REQUEST",
                OnDemandThroughput={"MaxReadRequestUnits": value},
            )
        assert e.value.response["Error"]["Message"] == (
            "One or more parameter values were invalid: Requested MaxReadRequestUnits for OnDemandThroughput "
            "for table is outside of valid range"
        )


def test_a_restart_does_not_refill_the_buckets(server: StrataProcess, unique: str) -> None:
    """The write bucket is 100 units in debt (100 s at 1 WCU): still so after a restart."""
    ddb = server.client("dynamodb", config=Config(retries={"total_max_attempts": 1}))
    t = provisioned(ddb, f"rs-{unique}")
    ddb.put_item(TableName=t, Item={"id": {"S": "big"}, "v": {"S": BIG}})
    server.restart()
    ddb = server.client("dynamodb", config=Config(retries={"total_max_attempts": 1}))
    with pytest.raises(ClientError) as e:
        ddb.put_item(TableName=t, Item={"id": {"S": "small"}})
    assert code(e) == "ProvisionedThroughputExceededException"
