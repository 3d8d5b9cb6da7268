"""Stop conditions on CloudWatch alarms: the alarms must exist when a template names them, and an
experiment stops (rolling its faults back) as soon as one of them is in the ALARM state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from strata.protocol.errors import ServiceError
from strata.services.fis.targets import internal_context

POLL_SECONDS = 1.0  # how often a running experiment reads its alarms' states


def alarm_arns(conditions: list[dict]) -> list[str]:
    return [c["value"] for c in conditions if c["source"] == "aws:cloudwatch:alarm"]


async def alarm_states(
    peer: Callable[[str], Any], arns: list[str], region: str, account: str
) -> dict[str, str]:
    """The state of each named alarm that exists (ARN -> OK | ALARM | INSUFFICIENT_DATA)."""
    cloudwatch = peer("cloudwatch")
    if cloudwatch is None or not arns:
        return {}
    names = {arn.split(":alarm:", 1)[1]: arn for arn in arns if arn.split(":")[4] == account}
    ctx = internal_context("cloudwatch", "DescribeAlarms", region, account, "stop-conditions")
    found = await cloudwatch.describe_alarms(ctx, {"AlarmNames": list(names), "MaxRecords": 100})
    return {
        names[a["AlarmName"]]: a["StateValue"]
        for a in found["MetricAlarms"]
        if a["AlarmName"] in names and a["AlarmArn"] == names[a["AlarmName"]]
    }


async def check_alarms_exist(
    peer: Callable[[str], Any], conditions: list[dict], region: str, account: str
) -> None:
    arns = alarm_arns(conditions)
    states = await alarm_states(peer, arns, region, account)
    for arn in arns:
        if arn not in states:
            raise ServiceError("ValidationException", f"The CloudWatch alarm {arn} does not exist", 400)
