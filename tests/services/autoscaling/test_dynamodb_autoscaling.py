"""Application Auto Scaling for DynamoDB through boto3: targets, target tracking policies, and the
table scaled from its consumed capacity as the simulated clock moves (tracking.py)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.services.dynamodb.conftest import key_schema
from tests.strata_process import StrataProcess

ITEM = "x" * (10 * 1024 - 100)  # ten write units per put


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrataProcess]:
    s = StrataProcess(tmp_path_factory.mktemp("autoscaling") / "data").start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def ddb(server: StrataProcess) -> Any:
    return server.client("dynamodb")


@pytest.fixture(scope="module")
def aas(server: StrataProcess) -> Any:
    return server.client("application-autoscaling")


def provisioned(ddb: Any, name: str, units: int = 5) -> str:
    ddb.create_table(
        TableName=name,
        **key_schema(("id", "S")),
        BillingMode="PROVISIONED",
        ProvisionedThroughput={"ReadCapacityUnits": units, "WriteCapacityUnits": units},
    )
    return name


def register(aas: Any, table: str, low: int = 5, high: int = 100, what: str = "Write") -> dict:
    target = {
        "ServiceNamespace": "dynamodb",
        "ResourceId": f"table/{table}",
        "ScalableDimension": f"dynamodb:table:{what}CapacityUnits",
    }
    aas.register_scalable_target(**target, MinCapacity=low, MaxCapacity=high)
    return target


def policy(aas: Any, target: dict, value: float = 50.0, what: str = "Write", **extra: Any) -> dict:
    return aas.put_scaling_policy(
        PolicyName=f"{what.lower()}-tracking",
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": value,
            "PredefinedMetricSpecification": {"PredefinedMetricType": f"DynamoDB{what}CapacityUtilization"},
            **extra,
        },
        **target,
    )


def start_of_next_minute(server: StrataProcess) -> None:
    now = datetime.fromisoformat(server.admin("/_strata/clock")["now"]).timestamp()
    server.advance_clock(f"{60 - now % 60 + 1:.3f}s")


def write_units(ddb: Any, table: str, puts: int) -> None:
    for i in range(puts):
        ddb.put_item(TableName=table, Item={"id": {"S": str(i)}, "v": {"S": ITEM}})


def wcu(ddb: Any, table: str) -> int:
    return ddb.describe_table(TableName=table)["Table"]["ProvisionedThroughput"]["WriteCapacityUnits"]


def test_target_tracking_scales_out_then_in_on_the_clock(
    server: StrataProcess, ddb: Any, aas: Any, unique: str
) -> None:
    table = provisioned(ddb, f"as-{unique}")
    target = register(aas, table)
    out = policy(aas, target)
    assert out["PolicyARN"].startswith("arn:aws:autoscaling:us-east-1:000000000000:scalingPolicy:")
    assert any("AlarmHigh" in a["AlarmName"] for a in out["Alarms"])
    start_of_next_minute(server)
    write_units(ddb, table, 30)  # 300 units in a minute: 1 unit/s at 5 WCU is 100% (target 50%)
    server.advance_clock("60s")
    assert wcu(ddb, table) == 5  # one minute above target is not yet sustained
    write_units(ddb, table, 30)
    server.advance_clock("60s")
    expected = math.ceil(300 / 60 / 0.5)
    assert wcu(ddb, table) == expected
    activities = aas.describe_scaling_activities(ServiceNamespace="dynamodb", ResourceId=f"table/{table}")
    latest = activities["ScalingActivities"][0]
    assert latest["StatusCode"] == "Successful"
    assert latest["Description"] == f"Setting write capacity units to {expected}."
    assert "AlarmHigh" in latest["Cause"]
    # Quiet for a quarter of an hour (and more): back to the minimum, more slowly.
    server.advance_clock("10m")
    assert wcu(ddb, table) == expected
    server.advance_clock("10m")
    assert wcu(ddb, table) == 5
    assert (
        "AlarmLow"
        in aas.describe_scaling_activities(ServiceNamespace="dynamodb")["ScalingActivities"][0]["Cause"]
    )


def test_register_moves_capacity_into_range_and_describe(ddb: Any, aas: Any, unique: str) -> None:
    table = provisioned(ddb, f"rg-{unique}", units=2)
    target = register(aas, table, low=4, high=20, what="Read")
    assert ddb.describe_table(TableName=table)["Table"]["ProvisionedThroughput"]["ReadCapacityUnits"] == 4
    found = aas.describe_scalable_targets(ServiceNamespace="dynamodb", ResourceIds=[f"table/{table}"])
    assert [(t["MinCapacity"], t["MaxCapacity"]) for t in found["ScalableTargets"]] == [(4, 20)]
    policy(aas, target, 70.0, what="Read")
    got = aas.describe_scaling_policies(ServiceNamespace="dynamodb", ResourceId=f"table/{table}")
    assert [p["PolicyName"] for p in got["ScalingPolicies"]] == ["read-tracking"]
    aas.delete_scaling_policy(PolicyName="read-tracking", **target)
    with pytest.raises(ClientError) as e:
        aas.delete_scaling_policy(PolicyName="read-tracking", **target)
    assert e.value.response["Error"]["Code"] == "ObjectNotFoundException"
    aas.deregister_scalable_target(**target)
    assert (
        aas.describe_scalable_targets(ServiceNamespace="dynamodb", ResourceIds=[f"table/{table}"])[
            "ScalableTargets"
        ]
        == []
    )


def test_policy_errors(ddb: Any, aas: Any, unique: str) -> None:
    table = provisioned(ddb, f"er-{unique}")
    target = {
        "ServiceNamespace": "dynamodb",
        "ResourceId": f"table/{table}",
        "ScalableDimension": "dynamodb:table:WriteCapacityUnits",
    }
    with pytest.raises(ClientError) as e:  # not registered
        policy(aas, target)
    assert e.value.response["Error"]["Code"] == "ObjectNotFoundException"
    register(aas, table)
    with pytest.raises(ClientError) as e:  # the read metric on a write dimension
        policy(aas, target, what="Read")
    assert e.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as e:
        aas.register_scalable_target(**target, MinCapacity=10, MaxCapacity=5)
    assert e.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as e:
        aas.register_scalable_target(
            ServiceNamespace="dynamodb",
            ResourceId=f"table/missing-{unique}",
            ScalableDimension="dynamodb:table:WriteCapacityUnits",
            MinCapacity=1,
            MaxCapacity=5,
        )
    assert e.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as e:
        aas.put_scaling_policy(PolicyName="step", PolicyType="StepScaling", **target)
    assert e.value.response["Error"]["Code"] == "ValidationException"
    for resource in (f"dynamo/{table}", f"table/{table}/index/g"):  # AWS's one text for all of them
        with pytest.raises(ClientError) as e:
            aas.register_scalable_target(**{**target, "ResourceId": resource}, MinCapacity=1, MaxCapacity=5)
        assert e.value.response["Error"] == {
            "Code": "ValidationException",
            "Message": "Unsupported service namespace, resource type or scalable dimension",
        }


def test_targets_and_policies_survive_restart(server: StrataProcess, unique: str) -> None:
    ddb, aas = server.client("dynamodb"), server.client("application-autoscaling")
    table = provisioned(ddb, f"rs-{unique}")
    target = register(aas, table)
    policy(aas, target)
    server.restart()
    aas = server.client("application-autoscaling")
    got = aas.describe_scaling_policies(ServiceNamespace="dynamodb", ResourceId=f"table/{table}")
    assert [p["PolicyName"] for p in got["ScalingPolicies"]] == ["write-tracking"]
