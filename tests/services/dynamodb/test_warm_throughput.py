"""Warm throughput, the per-table quota and on-demand capacity (warm.py, throttle.py).

The first tests use AWS's numbers (12,000/4,000 initial, 40,000 quota) on the package's
clock server; the capacity tests run a server whose quota and initial throughput are small
(STRATA_LIMIT_*), so a few 400 KB writes reach them. Each throttle is provoked by a batch of
~4,000 write units, a debt of tens of seconds at these rates: the next request meets it however
slow the machine.
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
BIG = "x" * (399 * 1024)  # 400 write units


@pytest.fixture(scope="module")
def server(clock_server: StrataProcess) -> StrataProcess:
    return clock_server


@pytest.fixture(scope="module")
def ddb(server: StrataProcess) -> Any:
    return server.client("dynamodb")


def error(call: Any, **kw: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as e:
        call(**kw)
    return e.value.response["Error"]["Code"], e.value.response["Error"]["Message"]


def warm(ddb: Any, name: str) -> dict:
    return ddb.describe_table(TableName=name)["Table"]["WarmThroughput"]


def test_warm_throughput_follows_capacity_and_never_decreases(
    server: StrataProcess, ddb: Any, unique: str
) -> None:
    od = f"wod-{unique}"
    created = ddb.create_table(TableName=od, **key_schema(("id", "S")), BillingMode="PAY_PER_REQUEST")
    assert "WarmThroughput" not in created["TableDescription"]  # only when asked for, as AWS answers
    assert warm(ddb, od) == {"ReadUnitsPerSecond": 12000, "WriteUnitsPerSecond": 4000, "Status": "ACTIVE"}
    assert error(ddb.update_table, TableName=od, WarmThroughput={"WriteUnitsPerSecond": 3000}) == (
        "ValidationException",
        "One or more parameter values were invalid: Requested WriteUnitsPerSecond for WarmThroughput for "
        "table is lower than current WarmThroughput, decreasing WarmThroughput is not supported",
    )
    ddb.update_table(TableName=od, WarmThroughput={"ReadUnitsPerSecond": 15000})
    assert warm(ddb, od)["ReadUnitsPerSecond"] == 15000

    pt = f"wpt-{unique}"
    ddb.create_table(
        TableName=pt,
        **key_schema(("id", "S")),
        BillingMode="PROVISIONED",
        ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
    )
    assert warm(ddb, pt)["ReadUnitsPerSecond"] == 5
    ddb.update_table(TableName=pt, ProvisionedThroughput={"ReadCapacityUnits": 10, "WriteCapacityUnits": 8})
    server.advance_clock("15s")
    ddb.update_table(TableName=pt, ProvisionedThroughput={"ReadCapacityUnits": 3, "WriteCapacityUnits": 3})
    assert warm(ddb, pt) == {"ReadUnitsPerSecond": 10, "WriteUnitsPerSecond": 8, "Status": "ACTIVE"}
    server.advance_clock("15s")
    ddb.update_table(TableName=pt, BillingMode="PAY_PER_REQUEST")
    assert warm(ddb, pt)["WriteUnitsPerSecond"] == 4000

    code, message = error(
        ddb.create_table,
        TableName=f"wlow-{unique}",
        **key_schema(("id", "S")),
        BillingMode="PAY_PER_REQUEST",
        WarmThroughput={"ReadUnitsPerSecond": 100},
    )
    assert code == "ValidationException"
    assert (
        "ReadUnitsPerSecond for WarmThroughput for table is lower than initial throughput for OnDemand"
        in message
    )


def test_the_per_table_quota_is_refused_with_aws_texts(ddb: Any, unique: str) -> None:
    assert ddb.describe_limits()["TableMaxWriteCapacityUnits"] == 40000
    assert error(
        ddb.create_table,
        TableName=f"q1-{unique}",
        **key_schema(("id", "S")),
        BillingMode="PROVISIONED",
        ProvisionedThroughput={"ReadCapacityUnits": 50000, "WriteCapacityUnits": 5},
    ) == (
        "LimitExceededException",
        "The requested ReadCapacityUnits, 50000, is above the per table maximum for the account in "
        "us-east-1. Per table maximum: 40000.",
    )
    assert error(
        ddb.create_table,
        TableName=f"q2-{unique}",
        **key_schema(("id", "S")),
        BillingMode="PAY_PER_REQUEST",
        OnDemandThroughput={"MaxWriteRequestUnits": 40001},
    ) == (
        "LimitExceededException",
        "Subscriber limit exceeded: Requested MaxWriteRequestUnits for OnDemandThroughput for table exceeds "
        "TableMaxWriteCapacityUnits of the account in region us-east-1",
    )
    name = f"q3-{unique}"
    ddb.create_table(TableName=name, **key_schema(("id", "S")), BillingMode="PAY_PER_REQUEST")
    assert error(ddb.update_table, TableName=name, WarmThroughput={"ReadUnitsPerSecond": 40001}) == (
        "LimitExceededException",
        "Subscriber limit exceeded: Requested ReadUnitsPerSecond for WarmThroughput for table exceeds "
        "TableMaxReadCapacityUnits of the account in region us-east-1",
    )
    assert ddb.describe_table(TableName=name)["Table"]["WarmThroughput"]["ReadUnitsPerSecond"] == 12000


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Any:
    env = {
        "STRATA_LIMIT_DYNAMODB_TABLE_MAX_UNITS": "150",
        "STRATA_LIMIT_DYNAMODB_ON_DEMAND_READ_UNITS": "100",
        "STRATA_LIMIT_DYNAMODB_ON_DEMAND_WRITE_UNITS": "50",
    }
    s = StrataProcess(Path(tmp_path_factory.mktemp("warm")) / "data", extra_env=env).start()
    yield s
    s.stop()


def big_batch(ddb: Any, table: str, tag: str) -> None:
    """About 4,000 write units in one request (admitted while the bucket is above zero)."""
    puts = [{"PutRequest": {"Item": {"id": {"S": f"{tag}{i}"}, "v": {"S": BIG}}}} for i in range(10)]
    assert ddb.batch_write_item(RequestItems={table: puts})["UnprocessedItems"] == {}


def throttle(ddb: Any, table: str) -> tuple[str, list]:
    with pytest.raises(ClientError) as e:
        ddb.put_item(TableName=table, Item={"id": {"S": "small"}})
    response = e.value.response
    return response["Error"]["Code"], response.get("ThrottlingReasons") or response.get("throttlingReasons")


def test_on_demand_capacity_doubles_the_settled_peak_up_to_the_quota(
    small: StrataProcess, unique: str
) -> None:
    ddb = small.client("dynamodb", config=Config(retries={"total_max_attempts": 1}))
    t = f"od-{unique}"
    ddb.create_table(TableName=t, **key_schema(("id", "S")), BillingMode="PAY_PER_REQUEST")
    assert warm(ddb, t) == {"ReadUnitsPerSecond": 100, "WriteUnitsPerSecond": 50, "Status": "ACTIVE"}
    big_batch(ddb, t, "a")
    assert throttle(ddb, t) == (
        "ThrottlingException",
        [{"reason": "TableWriteKeyRangeThroughputExceeded", "resource": f"{ARN}{t}"}],
    )
    small.advance_clock("31m")  # the peak (50 units served in that second) has settled: 100 now
    big_batch(ddb, t, "b")
    assert throttle(ddb, t)[0] == "ThrottlingException"
    small.advance_clock("31m")  # 100 served: double is 200, above the quota of 150
    big_batch(ddb, t, "c")
    code, reasons = throttle(ddb, t)
    assert (code, reasons) == (
        "RequestLimitExceeded",
        [{"reason": "TableWriteAccountLimitExceeded", "resource": f"{ARN}{t}"}],
    )
    small.advance_clock("10s")
    ddb.get_item(TableName=t, Key={"id": {"S": "a0"}})  # a later second: the last one is counted
    assert warm(ddb, t)["WriteUnitsPerSecond"] == 150  # what the table has served in a second
    small.advance_clock("1h")  # the hourly rule saves it
    small.restart()
    ddb = small.client("dynamodb", config=Config(retries={"total_max_attempts": 1}))
    assert warm(ddb, t)["WriteUnitsPerSecond"] == 150


def test_a_pre_warmed_table_serves_its_warm_throughput_at_once(small: StrataProcess, unique: str) -> None:
    ddb = small.client("dynamodb", config=Config(retries={"total_max_attempts": 1}))
    t = f"pre-{unique}"
    ddb.create_table(
        TableName=t,
        **key_schema(("id", "S")),
        BillingMode="PAY_PER_REQUEST",
        WarmThroughput={"WriteUnitsPerSecond": 150},
    )
    big_batch(ddb, t, "a")
    assert throttle(ddb, t)[0] == "RequestLimitExceeded"  # at the quota already, not scaling
    ddb.get_item(TableName=t, Key={"id": {"S": "a0"}})  # reads have their own capacity
