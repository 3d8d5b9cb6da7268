"""Target tracking for DynamoDB: the scheduler rule that scales provisioned capacity from the
consumed capacity, as Application Auto Scaling does with its CloudWatch alarms.

For a policy on a table's (or GSI's) read or write capacity with target utilization T percent,
utilization of a minute = units consumed in it / 60 / provisioned units per second. As the
alarms AWS creates for a DynamoDB target tracking policy:

- scale out when the last 2 complete minutes were both above T (AlarmHigh: 2 of 2 one-minute
  datapoints), to the capacity that would have run the busier of them at T;
- scale in when the last 15 complete minutes were all below T - 20 percentage points (AlarmLow:
  15 datapoints; so a policy at the lowest target, 20, never scales in), to the capacity that
  would have run their average at T, unless DisableScaleIn;
- always within the target's MinCapacity..MaxCapacity, honouring ScaleOut/ScaleInCooldown (0 by
  default for DynamoDB) and a SuspendedState; a scale-in that DynamoDB refuses (its decreases per
  day) is a Failed activity, retried at the next evaluation.

Scaling is an UpdateTable through the DynamoDB provider, so every capacity rule applies. The
rule (`autoscaling.dynamodb`) runs every simulated minute and after each clock advance, and
evaluates the minutes before `until`: a jump of days scales in once, as the quiet days would.
Consumption per minute comes from strata.services.dynamodb.throttle (kept in memory for an
hour: a restart forgets the last hour's consumption, so decisions wait for new minutes).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from strata.context import RequestContext
from strata.protocol.errors import ServiceError

HIGH_MINUTES = 2
LOW_MINUTES = 15
LOW_POINTS = 20.0  # AlarmLow's threshold is this many percentage points under the target


def _ctx(scope: str) -> RequestContext:
    account, region = scope.split(":", 1)
    return RequestContext(
        request_id=str(uuid.uuid4()),
        service="dynamodb",
        operation="UpdateTable",
        region=region,
        account_id=account,
        principal=None,
        http=None,  # type: ignore[arg-type]
    )


def parse_resource(resource_id: str) -> tuple[str, str | None]:
    """`table/T` or `table/T/index/I` -> (T, I or None)."""
    parts = resource_id.split("/")
    if len(parts) == 2 and parts[0] == "table":
        return parts[1], None
    if len(parts) == 4 and parts[0] == "table" and parts[2] == "index":
        return parts[1], parts[3]
    raise ValueError(resource_id)


def locate(ddb: Any, scope: str, resource_id: str) -> tuple[Any, Any | None] | None:
    """(table meta, GSI meta or None) of a target's resource, None when it is not there."""
    try:
        table, index = parse_resource(resource_id)
    except ValueError:
        return None
    meta = ddb.state.tables.get((scope, table))
    if meta is None:
        return None
    if index is None:
        return meta, None
    ix = next((i for i in meta.indexes if i.name == index and i.is_global), None)
    return (meta, ix) if ix is not None else None


def current_capacity(meta: Any, ix: Any | None, read: bool) -> int:
    tp = (ix.throughput if ix is not None else meta.throughput) or {}
    return int(tp.get("ReadCapacityUnits" if read else "WriteCapacityUnits", 0))


async def set_capacity(ddb: Any, scope: str, meta: Any, ix: Any | None, read: bool, units: int) -> None:
    """UpdateTable through the DynamoDB provider (its rules apply: ServiceError when refused)."""
    key = "ReadCapacityUnits" if read else "WriteCapacityUnits"
    if ix is None:
        tp = {**meta.throughput, key: units}
        await ddb.update_table(_ctx(scope), {"TableName": meta.name, "ProvisionedThroughput": tp})
    else:
        tp = {**(ix.throughput or {}), key: units}
        update = {"Update": {"IndexName": ix.name, "ProvisionedThroughput": tp}}
        await ddb.update_table(_ctx(scope), {"TableName": meta.name, "GlobalSecondaryIndexUpdates": [update]})


def decide(
    policy: dict, target: dict, history: Any, read: bool, current: int, until: float
) -> tuple[int, str] | None:
    """The capacity the policy asks for at `until` and the alarm that asked, or None."""
    config = policy["TargetTrackingScalingPolicyConfiguration"]
    goal = float(config["TargetValue"]) / 100.0
    floor = max(0.0, float(config["TargetValue"]) - LOW_POINTS) / 100.0
    last = int(until // 60) - 1  # the last complete minute
    if history is None or current <= 0:
        per_minute: dict[int, float] = {}
    else:
        per_minute = {m: u for m, u in (history.read if read else history.write)}
    start = policy["CreationTime"]

    def used(first: int, count: int) -> list[float] | None:
        minutes = range(first, first + count)
        if minutes[0] * 60 < start:  # before the policy existed: no datapoints yet
            return None
        return [per_minute.get(m, 0.0) / 60.0 for m in minutes]

    suspended = target.get("SuspendedState") or {}
    high = used(last - HIGH_MINUTES + 1, HIGH_MINUTES)
    if high is not None and all(u > goal * current for u in high):
        if suspended.get("DynamicScalingOutSuspended"):
            return None
        wanted = min(target["MaxCapacity"], max(target["MinCapacity"], math.ceil(max(high) / goal)))
        return (wanted, "AlarmHigh") if wanted > current else None
    low = used(last - LOW_MINUTES + 1, LOW_MINUTES)
    if low is not None and all(u < floor * current for u in low):
        if config.get("DisableScaleIn") or suspended.get("DynamicScalingInSuspended"):
            return None
        average = sum(low) / len(low)
        wanted = max(target["MinCapacity"], min(target["MaxCapacity"], math.ceil(average / goal)))
        return (wanted, "AlarmLow") if wanted < current else None
    return None


def rule(provider: Any) -> Callable[[float, float], Awaitable[dict[str, int]]]:
    """The scheduler's `autoscaling.dynamodb` rule over the provider's targets and policies."""

    async def run(since: float, until: float) -> dict[str, int]:
        ddb = provider.runtime.peer("dynamodb")
        counts = {"scaled": 0, "failed": 0}
        if ddb is None:
            return counts
        for target in provider.records.targets():
            policies = provider.records.policies(target)
            if not policies:
                continue
            found = locate(ddb, target["scope"], target["ResourceId"])
            if found is None or found[0].billing_mode != "PROVISIONED":
                continue
            meta, ix = found
            read = target["ScalableDimension"].endswith("ReadCapacityUnits")
            throttle = ddb.state.throttle
            history = (throttle.index_minutes if ix is not None else throttle.minutes).get(
                ix.iid if ix is not None else meta.tid
            )
            current = current_capacity(meta, ix, read)
            for policy in policies:
                decision = decide(policy, target, history, read, current, until)
                if decision is None:
                    continue
                wanted, alarm = decision
                config = policy["TargetTrackingScalingPolicyConfiguration"]
                cooldown = float(
                    config.get("ScaleOutCooldown" if alarm == "AlarmHigh" else "ScaleInCooldown", 0)
                )
                last = target.get("last_scaled", {}).get(alarm, -math.inf)
                if until - last < cooldown:
                    continue
                cause = (
                    f"monitor alarm {policy['alarm_names'][alarm]} in state ALARM triggered policy "
                    f"{policy['PolicyName']}"
                )
                try:
                    await set_capacity(ddb, target["scope"], meta, ix, read, wanted)
                except ServiceError as e:
                    if e.code == "ResourceInUseException":
                        break  # the table is UPDATING: the next evaluation tries again
                    provider.records.activity(target, wanted, read, cause, until, "Failed", e.message)
                    counts["failed"] += 1
                    break
                provider.records.activity(target, wanted, read, cause, until, "Successful")
                provider.records.scaled(target, alarm, until)
                counts["scaled"] += 1
                break
        return counts

    return run
