"""UpdateTable capacity rules (provisioning.py): decreases per UTC day, switches to on-demand per
24 hours, UPDATING on the simulated clock. The server is the package's `clock_server`: the
tests move its clock.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.services.dynamodb.conftest import key_schema
from tests.strata_process import StrataProcess


@pytest.fixture(scope="module")
def server(clock_server: StrataProcess) -> StrataProcess:
    return clock_server


@pytest.fixture(scope="module")
def ddb(server: StrataProcess) -> Any:
    return server.client("dynamodb")


def table(ddb: Any, name: str, units: int = 10) -> dict:
    return ddb.create_table(
        TableName=name,
        **key_schema(("id", "S")),
        BillingMode="PROVISIONED",
        ProvisionedThroughput={"ReadCapacityUnits": units, "WriteCapacityUnits": units},
    )["TableDescription"]


def set_units(ddb: Any, name: str, r: int, w: int) -> dict:
    return ddb.update_table(
        TableName=name, ProvisionedThroughput={"ReadCapacityUnits": r, "WriteCapacityUnits": w}
    )["TableDescription"]


def to_next_utc_day(server: StrataProcess, created: Any) -> None:
    """Move the clock to one minute past the next UTC midnight (the table's creation time is the
    server's simulated now, give or take the test's few seconds)."""
    seconds_into_day = created.timestamp() % 86400
    server.advance_clock(f"{int(86400 - seconds_into_day) + 60}s")


def test_decreases_are_limited_per_utc_day(server: StrataProcess, ddb: Any, unique: str) -> None:
    name = f"dec-{unique}"
    created = table(ddb, name, 100)["CreationDateTime"]
    to_next_utc_day(server, created)
    desc = set_units(ddb, name, 90, 90)
    assert desc["TableStatus"] == "UPDATING"
    assert desc["ProvisionedThroughput"]["NumberOfDecreasesToday"] == 1
    assert "LastDecreaseDateTime" in desc["ProvisionedThroughput"]
    with pytest.raises(ClientError) as e:  # still UPDATING
        set_units(ddb, name, 80, 80)
    assert e.value.response["Error"]["Code"] == "ResourceInUseException"
    assert e.value.response["Error"]["Message"] == (
        "Attempt to change a resource which is still in use: Table IOPS are currently being updated. "
        f"Table: {name}"
    )
    for units in (80, 70, 60):
        server.advance_clock("15s")
        set_units(ddb, name, units, units)
    server.advance_clock("15s")
    assert ddb.describe_table(TableName=name)["Table"]["TableStatus"] == "ACTIVE"
    with pytest.raises(ClientError) as e:
        set_units(ddb, name, 50, 50)
    assert e.value.response["Error"]["Code"] == "LimitExceededException"
    assert "Number of decreases today: 4" in e.value.response["Error"]["Message"]
    desc = set_units(ddb, name, 200, 60)  # an increase is always allowed
    assert "LastIncreaseDateTime" in desc["ProvisionedThroughput"]
    server.advance_clock("1h")  # a quiet hour allows one more decrease, then another hour
    set_units(ddb, name, 150, 60)
    server.advance_clock("15s")
    with pytest.raises(ClientError) as e:
        set_units(ddb, name, 140, 60)
    assert "Number of decreases today: 5" in e.value.response["Error"]["Message"]
    desc = ddb.describe_table(TableName=name)["Table"]
    assert desc["ProvisionedThroughput"]["ReadCapacityUnits"] == 150
    assert desc["ProvisionedThroughput"]["NumberOfDecreasesToday"] == 5


def test_unchanged_throughput_is_refused(ddb: Any, unique: str) -> None:
    name = f"same-{unique}"
    table(ddb, name, 5)
    with pytest.raises(ClientError) as e:
        set_units(ddb, name, 5, 5)
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert e.value.response["Error"]["Message"].startswith(
        "The provisioned throughput for the table will not change. The requested value equals the current value. "
        "Current ReadCapacityUnits provisioned for the table: 5. Requested ReadCapacityUnits: 5."
    )


def test_switches_to_on_demand_are_limited_per_24_hours(server: StrataProcess, ddb: Any, unique: str) -> None:
    name = f"mode-{unique}"
    table(ddb, name, 5)
    for _ in range(4):
        desc = ddb.update_table(TableName=name, BillingMode="PAY_PER_REQUEST")["TableDescription"]
        assert desc["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        server.advance_clock("15s")
        ddb.update_table(
            TableName=name,
            BillingMode="PROVISIONED",
            ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
        )
        server.advance_clock("15s")
    with pytest.raises(ClientError) as e:
        ddb.update_table(TableName=name, BillingMode="PAY_PER_REQUEST")
    assert e.value.response["Error"]["Code"] == "LimitExceededException"
    assert re.fullmatch(
        r"Subscriber limit exceeded: Update to PayPerRequest mode are limited to 4 times in 1 day\(s\)\. "
        r"Last update at \w{3} \w{3} \d\d \d\d:\d\d:\d\d UTC \d{4}\. "
        r"Next update can be made at \w{3} \w{3} \d\d \d\d:\d\d:\d\d UTC \d{4}",
        e.value.response["Error"]["Message"],
    )
    server.advance_clock("24h")
    ddb.update_table(TableName=name, BillingMode="PAY_PER_REQUEST")


def test_a_table_being_updated_cannot_be_deleted(server: StrataProcess, ddb: Any, unique: str) -> None:
    """DeleteTable during the UPDATING of a capacity change: ResourceInUseException, as on AWS."""
    name = f"busy-{unique}"
    table(ddb, name, 5)
    assert set_units(ddb, name, 6, 6)["TableStatus"] == "UPDATING"
    with pytest.raises(ClientError) as e:
        ddb.delete_table(TableName=name)
    assert e.value.response["Error"]["Code"] == "ResourceInUseException"
    assert e.value.response["Error"]["Message"] == (
        f"Attempt to change a resource which is still in use: Table: {name} is in the process of being updated."
    )
    assert ddb.describe_table(TableName=name)["Table"]["TableName"] == name
    server.advance_clock("15s")
    ddb.delete_table(TableName=name)


def test_capacity_history_survives_restart(server: StrataProcess, unique: str) -> None:
    ddb = server.client("dynamodb")
    name = f"keep-{unique}"
    table(ddb, name, 20)
    set_units(ddb, name, 10, 10)
    server.restart()
    ddb = server.client("dynamodb")
    desc = ddb.describe_table(TableName=name)["Table"]
    assert desc["ProvisionedThroughput"]["ReadCapacityUnits"] == 10
    assert "LastDecreaseDateTime" in desc["ProvisionedThroughput"]


def test_provisioned_capacity_hours_are_metered(server: StrataProcess, ddb: Any, unique: str) -> None:
    """Provisioned capacity is billed by the hour it is in force, across capacity changes."""
    name = f"hours-{unique}"
    ddb.create_table(
        TableName=name,
        **key_schema(("id", "S")),
        BillingMode="PROVISIONED",
        ProvisionedThroughput={"ReadCapacityUnits": 10, "WriteCapacityUnits": 5},
    )
    server.advance_clock("2h")
    set_units(ddb, name, 20, 5)
    server.advance_clock("1h")

    def total(event: str) -> float:
        events = server.admin("/_strata/meter?service=dynamodb")["events"]
        return sum(e["quantity"] for e in events if e["event"] == event and e["dims"].get("table") == name)

    assert 40 <= total("ProvisionedReadCapacityUnit-Hrs") <= 40.5  # 10 x 2 h + 20 x 1 h (+ seconds)
    assert 15 <= total("ProvisionedWriteCapacityUnit-Hrs") <= 15.2
