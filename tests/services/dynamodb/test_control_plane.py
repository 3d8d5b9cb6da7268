"""DynamoDB's control-plane limits (control.py): the tables an account may have, the tables it may
have CREATING/UPDATING/DELETING at once, and the request rates of the rate-limited calls.

The server's quotas are small (STRATA_LIMIT_*) and a capacity change leaves a table UPDATING for
an hour of simulated time, so the tests do not race the clock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.services.dynamodb.conftest import key_schema
from tests.strata_process import StrataProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    env = {
        "STRATA_LIMIT_DYNAMODB_TABLES": "4",
        "STRATA_LIMIT_DYNAMODB_SIMULTANEOUS_TABLE_OPERATIONS": "2",
        "STRATA_LIMIT_DYNAMODB_UPDATE_SECONDS": "3600",
    }
    s = StrataProcess(Path(tmp_path_factory.mktemp("control")) / "data", extra_env=env).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def ddb(server: StrataProcess) -> Any:
    return server.client("dynamodb", config=Config(retries={"total_max_attempts": 1}))


def error(call: Any, **kw: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as e:
        call(**kw)
    return e.value.response["Error"]["Code"], e.value.response["Error"]["Message"]


def create(ddb: Any, name: str) -> Any:
    return ddb.create_table(
        TableName=name,
        **key_schema(("id", "S")),
        BillingMode="PROVISIONED",
        ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
    )


def test_describe_limits_is_throttled_past_once_a_minute(server: StrataProcess, ddb: Any) -> None:
    ddb.describe_limits()
    assert error(ddb.describe_limits) == ("ThrottlingException", "Rate exceeded")
    server.advance_clock("61s")
    assert ddb.describe_limits()["TableMaxReadCapacityUnits"] == 40000


def test_describe_contributor_insights_is_throttled_past_five_a_second(ddb: Any, unique: str) -> None:
    name = f"ci-{unique}"
    ddb.create_table(TableName=name, **key_schema(("id", "S")), BillingMode="PAY_PER_REQUEST")
    codes = []
    for _ in range(200):  # 5 a second: far fewer than 200 can come back in the time these take
        try:
            ddb.describe_contributor_insights(TableName=name)
        except ClientError as e:
            codes.append(e.response["Error"]["Code"])
            break
    assert codes == ["ThrottlingException"]
    ddb.delete_table(TableName=name)


def test_tables_per_account_and_simultaneous_table_operations(
    server: StrataProcess, ddb: Any, unique: str
) -> None:
    server.advance_clock("1m")
    for t in ddb.list_tables()["TableNames"]:  # the module's earlier tables: a clean count
        ddb.delete_table(TableName=t)
    one, two = f"a-{unique}", f"b-{unique}"
    create(ddb, one)
    create(ddb, two)
    for name in (one, two):  # each UPDATING for an hour
        ddb.update_table(
            TableName=name, ProvisionedThroughput={"ReadCapacityUnits": 6, "WriteCapacityUnits": 5}
        )
    busy = (
        "LimitExceededException",
        "Subscriber limit exceeded: Only 2 tables can be created, updated, or deleted simultaneously",
    )
    assert error(create, ddb=ddb, name=f"c-{unique}") == busy
    assert (
        error(
            ddb.update_time_to_live,
            TableName=one,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"},
        )
        == busy
    )
    assert ddb.describe_table(TableName=one)["Table"]["TableStatus"] == "UPDATING"

    server.advance_clock("61m")  # both updates done
    create(ddb, f"c-{unique}")
    create(ddb, f"d-{unique}")
    assert error(create, ddb=ddb, name=f"e-{unique}") == (
        "LimitExceededException",
        "Subscriber limit exceeded: There is a limit of 4 tables per subscriber",
    )
    ddb.delete_table(TableName=f"d-{unique}")
    create(ddb, f"e-{unique}")
