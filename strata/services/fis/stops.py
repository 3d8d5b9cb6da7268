"""Stop conditions on CloudWatch alarms: the alarms must exist when a template names them, and an
experiment stops (rolling its faults back) as soon as one of them is in the ALARM state.

The watcher polls; an alarm that went into ALARM and out again between two polls is not missed,
because each poll reads the alarm's state history since the previous one as well as its state."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
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


async def alarms_fired(
    peer: Callable[[str], Any], arns: list[str], region: str, account: str, since: float
) -> list[str]:
    """The alarms in the ALARM state now, or that entered it at or after `since` (clock time)."""
    states = await alarm_states(peer, arns, region, account)
    fired = [arn for arn in arns if states.get(arn) == "ALARM"]
    cloudwatch = peer("cloudwatch")
    ctx = internal_context("cloudwatch", "DescribeAlarmHistory", region, account, "stop-conditions")
    for arn in arns:
        if arn in fired or arn not in states:
            continue
        history = await cloudwatch.describe_alarm_history(
            ctx,
            {
                "AlarmName": arn.split(":alarm:", 1)[1],
                "HistoryItemType": "StateUpdate",
                "StartDate": datetime.fromtimestamp(since, UTC),
                "MaxRecords": 100,
            },
        )
        if any(
            json.loads(item["HistoryData"]).get("newState", {}).get("stateValue") == "ALARM"
            for item in history["AlarmHistoryItems"]
        ):
            fired.append(arn)
    return fired


async def check_alarms_exist(
    peer: Callable[[str], Any], conditions: list[dict], region: str, account: str
) -> None:
    arns = alarm_arns(conditions)
    states = await alarm_states(peer, arns, region, account)
    for arn in arns:
        if arn not in states:
            raise ServiceError("ValidationException", f"The CloudWatch alarm {arn} does not exist", 400)
