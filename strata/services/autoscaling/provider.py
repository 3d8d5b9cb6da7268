"""Application Auto Scaling, for DynamoDB: scalable targets, target tracking policies, activities.

    RegisterScalableTarget / DescribeScalableTargets / DeregisterScalableTarget
    PutScalingPolicy / DescribeScalingPolicies / DeleteScalingPolicy   (TargetTrackingScaling on
        DynamoDBReadCapacityUtilization / DynamoDBWriteCapacityUtilization)
    DescribeScalingActivities

Records live in records.py; the scaling itself is the `autoscaling.dynamodb` scheduler rule
(tracking.py), on the simulated clock. Only the `dynamodb` namespace is served; other namespaces,
step scaling, predictive scaling and customized metrics are refused with a ValidationException.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.autoscaling import tracking
from strata.services.autoscaling.records import Records, target_key
from strata.services.base import ServiceRuntime
from strata.services.iam.service_roles import ensure_service_linked_role
from strata.services.parameters import refusing
from strata.sim.clock import clock
from strata.sim.scheduler import scheduler

DIMENSIONS = {
    "dynamodb:table:ReadCapacityUnits": ("table", "DynamoDBReadCapacityUtilization"),
    "dynamodb:table:WriteCapacityUnits": ("table", "DynamoDBWriteCapacityUtilization"),
    "dynamodb:index:ReadCapacityUnits": ("index", "DynamoDBReadCapacityUtilization"),
    "dynamodb:index:WriteCapacityUnits": ("index", "DynamoDBWriteCapacityUtilization"),
}
MIN_TARGET, MAX_TARGET = 20.0, 90.0  # DynamoDB's target utilization range, percent
MAX_RESULTS = 50


def _validation(message: str) -> ServiceError:
    return ServiceError("ValidationException", message, 400)


def _not_found(message: str) -> ServiceError:
    return ServiceError("ObjectNotFoundException", message, 400)


def _ts(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _scope(ctx: RequestContext) -> str:
    return f"{ctx.account_id}:{ctx.region}"


def _page(items: list[dict], req: dict) -> tuple[list[dict], str | None]:
    size = req.get("MaxResults") or MAX_RESULTS
    if not 1 <= size <= MAX_RESULTS:
        raise _validation(
            f"1 validation error detected: Value '{size}' at 'maxResults' failed to satisfy constraint: "
            f"Member must have value less than or equal to {MAX_RESULTS}"
        )
    token = req.get("NextToken")
    start = 0
    if token:
        if not token.isdigit() or int(token) > len(items):
            raise _validation("Invalid NextToken")
        start = int(token)
    end = start + size
    return items[start:end], (str(end) if end < len(items) else None)


@refusing("application-autoscaling")
class ApplicationAutoScalingProvider:
    """Constructed once per server; see the module docstring."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        self.records = Records(runtime.data_dir / "autoscaling.sqlite3", runtime.settings.fsync)

    async def start(self) -> None:
        scheduler.register("autoscaling.dynamodb", tracking.rule(self), every=60.0)

    async def stop(self) -> None:
        scheduler.unregister("autoscaling.dynamodb")
        self.records.close()

    def health(self) -> str:
        return "running"

    # -- checks ------------------------------------------------------------------------------------

    def _check(self, ctx: RequestContext, req: dict) -> tuple[str, str, str, str]:
        """(scope, namespace, resource id, dimension), each as DynamoDB targets allow."""
        namespace, resource, dimension = (
            req.get("ServiceNamespace"),
            req.get("ResourceId"),
            req.get("ScalableDimension"),
        )
        if namespace != "dynamodb":
            raise _validation(f"ServiceNamespace {namespace} is not supported by Strata")
        # AWS answers one text for a dimension, a resource ID or a pair of them it does not know.
        unsupported = "Unsupported service namespace, resource type or scalable dimension"
        if dimension not in DIMENSIONS:
            raise _validation(unsupported)
        try:
            _, index = tracking.parse_resource(resource or "")
        except ValueError:
            raise _validation(unsupported) from None
        if (index is None) != (DIMENSIONS[dimension][0] == "table"):
            raise _validation(unsupported)
        return _scope(ctx), namespace, resource, dimension  # type: ignore[return-value]

    def _target(self, ctx: RequestContext, req: dict) -> dict:
        scope, namespace, resource, dimension = self._check(ctx, req)
        target = self.records.target(target_key(scope, namespace, resource, dimension))
        if target is None:
            raise _not_found(
                f"No scalable target registered for service namespace: {namespace}, resource ID: {resource}, "
                f"scalable dimension: {dimension}"
            )
        return target

    # -- scalable targets --------------------------------------------------------------------------

    async def register_scalable_target(self, ctx: RequestContext, req: dict) -> dict:
        scope, namespace, resource, dimension = self._check(ctx, req)
        ddb = self.runtime.peer("dynamodb")
        found = tracking.locate(ddb, scope, resource) if ddb is not None else None
        if found is None:
            raise _validation(f"Requested resource not found: {resource} does not exist")
        key = target_key(scope, namespace, resource, dimension)
        target = self.records.target(key)
        if target is None:
            if req.get("MinCapacity") is None or req.get("MaxCapacity") is None:
                raise _validation(
                    "MinCapacity and MaxCapacity are required when registering a new scalable target"
                )
            region, account = ctx.region, ctx.account_id
            target = {
                "key": key,
                "scope": scope,
                "ServiceNamespace": namespace,
                "ResourceId": resource,
                "ScalableDimension": dimension,
                "CreationTime": clock.time(),
                "ScalableTargetARN": (
                    f"arn:aws:application-autoscaling:{region}:{account}:scalable-target/"
                    f"{uuid.uuid4().hex[:20]}"
                ),
                "RoleARN": (
                    f"arn:aws:iam::{account}:role/aws-service-role/dynamodb.application-autoscaling."
                    "amazonaws.com/AWSServiceRoleForApplicationAutoScaling_DynamoDBTable"
                ),
                "Tags": {},
            }
        for member in ("MinCapacity", "MaxCapacity", "RoleARN"):
            if req.get(member) is not None:
                target[member] = req[member]
        if req.get("SuspendedState") is not None:
            target["SuspendedState"] = {**target.get("SuspendedState", {}), **req["SuspendedState"]}
        if req.get("Tags"):
            target["Tags"] = {**target.get("Tags", {}), **req["Tags"]}
        if target["MinCapacity"] < 1:
            raise _validation("MinCapacity must be at least 1 for DynamoDB")
        if target["MinCapacity"] > target["MaxCapacity"]:
            raise _validation("Minimum capacity cannot be greater than maximum capacity")
        self.records.put_target(target)
        # As on AWS, registering a DynamoDB target creates the namespace's service-linked role.
        ensure_service_linked_role(
            self.runtime.settings, ctx.account_id, "dynamodb.application-autoscaling.amazonaws.com"
        )
        await self._into_range(ddb, target, found)
        return {"ScalableTargetARN": target["ScalableTargetARN"]}

    async def _into_range(self, ddb: Any, target: dict, found: tuple) -> None:
        """A provisioned capacity outside MinCapacity..MaxCapacity is moved into it at once."""
        meta, ix = found
        if meta.billing_mode != "PROVISIONED":
            return
        read = target["ScalableDimension"].endswith("ReadCapacityUnits")
        current = tracking.current_capacity(meta, ix, read)
        wanted = min(max(current, target["MinCapacity"]), target["MaxCapacity"])
        if wanted == current:
            return
        now = clock.time()
        try:
            await tracking.set_capacity(ddb, target["scope"], meta, ix, read, wanted)
        except ServiceError as e:
            self.records.activity(
                target, wanted, read, "scalable target registered", now, "Failed", e.message
            )
            return
        self.records.activity(target, wanted, read, "scalable target registered", now, "Successful")

    def describe_scalable_targets(self, ctx: RequestContext, req: dict) -> dict:
        if req.get("ServiceNamespace") != "dynamodb":
            raise _validation(f"ServiceNamespace {req.get('ServiceNamespace')} is not supported by Strata")
        ids = set(req.get("ResourceIds") or [])
        dimension = req.get("ScalableDimension")
        chosen = [
            t
            for t in self.records.targets(_scope(ctx))
            if (not ids or t["ResourceId"] in ids) and (not dimension or t["ScalableDimension"] == dimension)
        ]
        page, token = _page(chosen, req)
        out: dict = {"ScalableTargets": [_target_out(t) for t in page]}
        if token:
            out["NextToken"] = token
        return out

    def deregister_scalable_target(self, ctx: RequestContext, req: dict) -> dict:
        self.records.delete_target(self._target(ctx, req))
        return {}

    # -- scaling policies --------------------------------------------------------------------------

    def put_scaling_policy(self, ctx: RequestContext, req: dict) -> dict:
        target = self._target(ctx, req)
        name = req.get("PolicyName") or ""
        kind = req.get("PolicyType") or "StepScaling"
        if kind != "TargetTrackingScaling":
            raise _validation(f"Unsupported policy type {kind} for service namespace dynamodb")
        config = dict(req.get("TargetTrackingScalingPolicyConfiguration") or {})
        if not config:
            raise _validation(
                "TargetTrackingScalingPolicyConfiguration is required for a TargetTrackingScaling policy"
            )
        if config.get("CustomizedMetricSpecification") is not None:
            raise _validation("CustomizedMetricSpecification is not supported by Strata")
        metric = (config.get("PredefinedMetricSpecification") or {}).get("PredefinedMetricType")
        wanted_metric = DIMENSIONS[target["ScalableDimension"]][1]
        if metric != wanted_metric:
            raise _validation(
                f"PredefinedMetricType {metric} is not valid for scalable dimension "
                f"{target['ScalableDimension']}: use {wanted_metric}"
            )
        value = float(config.get("TargetValue", 0))
        if not MIN_TARGET <= value <= MAX_TARGET:
            raise _validation(
                f"TargetValue {value} is out of range for DynamoDB: it must be between {MIN_TARGET} and {MAX_TARGET}"
            )
        key = f"{target['key']}|{name}"
        existing = self.records.db.get_doc("policy", key)
        now = clock.time()
        region, account = ctx.region, ctx.account_id
        label = target["ResourceId"]
        policy = existing or {
            "key": key,
            "PolicyName": name,
            "CreationTime": now,
            "PolicyARN": (
                f"arn:aws:autoscaling:{region}:{account}:scalingPolicy:{uuid.uuid4()}:resource/dynamodb/"
                f"{label}:policyName/{name}"
            ),
            "alarm_names": {
                alarm: f"TargetTracking-{label}-{alarm}-{uuid.uuid4()}"
                for alarm in ("AlarmHigh", "AlarmLow", "ProvisionedCapacityHigh", "ProvisionedCapacityLow")
            },
        }
        policy.update(
            ServiceNamespace=target["ServiceNamespace"],
            ResourceId=target["ResourceId"],
            ScalableDimension=target["ScalableDimension"],
            PolicyType=kind,
            TargetTrackingScalingPolicyConfiguration=config,
        )
        self.records.put_policy(policy)
        return {"PolicyARN": policy["PolicyARN"], "Alarms": _alarms(policy, region, account)}

    def describe_scaling_policies(self, ctx: RequestContext, req: dict) -> dict:
        if req.get("ServiceNamespace") != "dynamodb":
            raise _validation(f"ServiceNamespace {req.get('ServiceNamespace')} is not supported by Strata")
        names = set(req.get("PolicyNames") or [])
        chosen = [
            p
            for p in self.records.all_policies(_scope(ctx))
            if (not names or p["PolicyName"] in names)
            and (not req.get("ResourceId") or p["ResourceId"] == req["ResourceId"])
            and (not req.get("ScalableDimension") or p["ScalableDimension"] == req["ScalableDimension"])
        ]
        page, token = _page(chosen, req)
        out: dict = {"ScalingPolicies": [_policy_out(p, ctx) for p in page]}
        if token:
            out["NextToken"] = token
        return out

    def delete_scaling_policy(self, ctx: RequestContext, req: dict) -> dict:
        scope, namespace, resource, dimension = self._check(ctx, req)
        key = f"{target_key(scope, namespace, resource, dimension)}|{req.get('PolicyName')}"
        policy = self.records.db.get_doc("policy", key)
        if policy is None:
            raise _not_found(
                f"No scaling policy found for service namespace: {namespace}, resource ID: {resource}, "
                f"scalable dimension: {dimension}, policy name: {req.get('PolicyName')}"
            )
        self.records.delete_policy(policy)
        return {}

    # -- activities --------------------------------------------------------------------------------

    def describe_scaling_activities(self, ctx: RequestContext, req: dict) -> dict:
        if req.get("ServiceNamespace") != "dynamodb":
            raise _validation(f"ServiceNamespace {req.get('ServiceNamespace')} is not supported by Strata")
        scope = _scope(ctx)
        chosen = [
            a
            for a in self.records.activities(f"{scope}|")
            if (not req.get("ResourceId") or a["ResourceId"] == req["ResourceId"])
            and (not req.get("ScalableDimension") or a["ScalableDimension"] == req["ScalableDimension"])
        ]
        chosen.sort(key=lambda a: a["StartTime"], reverse=True)
        page, token = _page(chosen, req)
        out: dict = {
            "ScalingActivities": [
                {**a, "StartTime": _ts(a["StartTime"]), "EndTime": _ts(a["EndTime"])} for a in page
            ]
        }
        if token:
            out["NextToken"] = token
        return out


def _target_out(t: dict) -> dict:
    out = {
        "ServiceNamespace": t["ServiceNamespace"],
        "ResourceId": t["ResourceId"],
        "ScalableDimension": t["ScalableDimension"],
        "MinCapacity": t["MinCapacity"],
        "MaxCapacity": t["MaxCapacity"],
        "RoleARN": t["RoleARN"],
        "CreationTime": _ts(t["CreationTime"]),
        "ScalableTargetARN": t["ScalableTargetARN"],
        "SuspendedState": {
            "DynamicScalingInSuspended": False,
            "DynamicScalingOutSuspended": False,
            "ScheduledScalingSuspended": False,
            **t.get("SuspendedState", {}),
        },
    }
    return out


def _alarms(policy: dict, region: str, account: str) -> list[dict]:
    return [
        {"AlarmName": name, "AlarmARN": f"arn:aws:cloudwatch:{region}:{account}:alarm:{name}"}
        for name in policy["alarm_names"].values()
    ]


def _policy_out(p: dict, ctx: RequestContext) -> dict:
    return {
        "PolicyARN": p["PolicyARN"],
        "PolicyName": p["PolicyName"],
        "ServiceNamespace": p["ServiceNamespace"],
        "ResourceId": p["ResourceId"],
        "ScalableDimension": p["ScalableDimension"],
        "PolicyType": p["PolicyType"],
        "TargetTrackingScalingPolicyConfiguration": p["TargetTrackingScalingPolicyConfiguration"],
        "Alarms": _alarms(p, ctx.region, ctx.account_id),
        "CreationTime": _ts(p["CreationTime"]),
    }
