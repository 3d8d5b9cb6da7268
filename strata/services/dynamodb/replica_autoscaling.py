"""DescribeTableReplicaAutoScaling / UpdateTableReplicaAutoScaling: the auto scaling settings of
every replica of a table, kept where Application Auto Scaling keeps them.

UpdateTableReplicaAutoScaling is a shorthand DynamoDB offers for global tables: one call
registers (or, with AutoScalingDisabled, deregisters) the scalable targets and target-tracking
policies of write capacity in every replica's region and of read capacity per replica, for the
table and its GSIs. Here it makes the same RegisterScalableTarget / PutScalingPolicy /
DeregisterScalableTarget calls Application Auto Scaling answers directly (the `autoscaling`
service, whose rule does the scaling), so either API shows the other's settings.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.dynamodb.core import DynamoDBCore
from strata.services.dynamodb.errors import validation
from strata.services.dynamodb.replication import region_of
from strata.services.dynamodb.tables import TableMeta

_METRICS = {
    "ReadCapacityUnits": "DynamoDBReadCapacityUtilization",
    "WriteCapacityUnits": "DynamoDBWriteCapacityUtilization",
}


def _resource(meta: TableMeta, index: str | None) -> tuple[str, str]:
    """(ResourceId, the dimension's kind) of a table or one of its GSIs."""
    return (f"table/{meta.name}/index/{index}", "index") if index else (f"table/{meta.name}", "table")


class ReplicaAutoScalingOperations(DynamoDBCore):
    def _autoscaling(self) -> Any:
        aas = self.runtime.peer("application-autoscaling")
        if aas is None or not hasattr(aas, "records"):
            raise ServiceError("InternalServerError", "Application Auto Scaling is not running", 500)
        return aas

    def _members(self, meta: TableMeta) -> list[TableMeta]:
        """The table and its replicas (ACTIVE or CREATING)."""
        return [meta, *self.replicator.others(meta)]

    def _settings(self, aas: Any, meta: TableMeta, index: str | None, units: str) -> dict | None:
        """AutoScalingSettingsDescription of one scalable dimension (None: not auto scaled)."""
        resource, kind = _resource(meta, index)
        target = aas.records.target(f"{meta.scope}|dynamodb|{resource}|dynamodb:{kind}:{units}")
        if target is None:
            return None
        policies = []
        for policy in aas.records.policies(target):
            config = policy.get("TargetTrackingScalingPolicyConfiguration") or {}
            policies.append(
                {
                    "PolicyName": policy["PolicyName"],
                    "TargetTrackingScalingPolicyConfiguration": {
                        k: config[k]
                        for k in ("DisableScaleIn", "ScaleInCooldown", "ScaleOutCooldown", "TargetValue")
                        if k in config
                    },
                }
            )
        return {
            "MinimumUnits": target["MinCapacity"],
            "MaximumUnits": target["MaxCapacity"],
            "AutoScalingDisabled": False,
            "AutoScalingRoleArn": target.get("RoleARN", ""),
            "ScalingPolicies": policies,
        }

    def _replica_autoscaling(self, aas: Any, meta: TableMeta) -> dict:
        out: dict = {
            "RegionName": region_of(meta),
            "ReplicaStatus": meta.status,
            "GlobalSecondaryIndexes": [],
        }
        for units, member in (
            ("ReadCapacityUnits", "ReplicaProvisionedReadCapacityAutoScalingSettings"),
            ("WriteCapacityUnits", "ReplicaProvisionedWriteCapacityAutoScalingSettings"),
        ):
            found = self._settings(aas, meta, None, units)
            if found is not None:
                out[member] = found
        for ix in meta.indexes:
            if not ix.is_global:
                continue
            desc: dict = {"IndexName": ix.name, "IndexStatus": "CREATING" if ix.backfilling else "ACTIVE"}
            for units, member in (
                ("ReadCapacityUnits", "ProvisionedReadCapacityAutoScalingSettings"),
                ("WriteCapacityUnits", "ProvisionedWriteCapacityAutoScalingSettings"),
            ):
                found = self._settings(aas, meta, ix.name, units)
                if found is not None:
                    desc[member] = found
            out["GlobalSecondaryIndexes"].append(desc)
        return out

    def _autoscaling_description(self, meta: TableMeta) -> dict:
        aas = self._autoscaling()
        return {
            "TableName": meta.name,
            "TableStatus": self._describe(meta)["TableStatus"],
            "Replicas": [self._replica_autoscaling(aas, m) for m in self._members(meta)],
        }

    def describe_table_replica_auto_scaling(self, ctx: RequestContext, req: dict) -> dict:
        meta = self.state.table(ctx, req.get("TableName"), describe=True)
        return {"TableAutoScalingDescription": self._autoscaling_description(meta)}

    async def update_table_replica_auto_scaling(self, ctx: RequestContext, req: dict) -> dict:
        meta = self.state.table(ctx, req.get("TableName"), describe=True)
        if meta.billing_mode != "PROVISIONED":
            raise validation(
                "One or more parameter values were invalid: Auto scaling can only be set on a table whose "
                f"BillingMode is PROVISIONED: {meta.name}"
            )
        aas = self._autoscaling()
        members = {region_of(m): m for m in self._members(meta)}
        work: list[tuple[TableMeta, str | None, str, dict]] = []
        write = req.get("ProvisionedWriteCapacityAutoScalingUpdate")
        if write:
            work += [(m, None, "WriteCapacityUnits", write) for m in members.values()]
        for update in req.get("GlobalSecondaryIndexUpdates") or []:
            meta.index(update.get("IndexName") or "")  # ValidationException for an unknown index
            if update.get("ProvisionedWriteCapacityAutoScalingUpdate"):
                settings = update["ProvisionedWriteCapacityAutoScalingUpdate"]
                work += [(m, update["IndexName"], "WriteCapacityUnits", settings) for m in members.values()]
        for update in req.get("ReplicaUpdates") or []:
            replica = members.get(update.get("RegionName"))
            if replica is None:
                raise validation(
                    f"One or more parameter values were invalid: Replica in region {update.get('RegionName')} "
                    f"does not exist for table: {meta.name}"
                )
            if update.get("ReplicaProvisionedReadCapacityAutoScalingUpdate"):
                work.append(
                    (
                        replica,
                        None,
                        "ReadCapacityUnits",
                        update["ReplicaProvisionedReadCapacityAutoScalingUpdate"],
                    )
                )
            for ix_update in update.get("ReplicaGlobalSecondaryIndexUpdates") or []:
                replica.index(ix_update.get("IndexName") or "")
                if ix_update.get("ProvisionedReadCapacityAutoScalingUpdate"):
                    settings = ix_update["ProvisionedReadCapacityAutoScalingUpdate"]
                    work.append((replica, ix_update["IndexName"], "ReadCapacityUnits", settings))
        for member, index, units, settings in work:
            await self._apply_autoscaling(aas, ctx, member, index, units, settings)
        return {"TableAutoScalingDescription": self._autoscaling_description(meta)}

    async def _apply_autoscaling(
        self, aas: Any, ctx: RequestContext, meta: TableMeta, index: str | None, units: str, settings: dict
    ) -> None:
        """One AutoScalingSettingsUpdate, as the Application Auto Scaling calls it stands for."""
        resource, kind = _resource(meta, index)
        actx = replace(ctx, region=region_of(meta), service="application-autoscaling")
        target = {
            "ServiceNamespace": "dynamodb",
            "ResourceId": resource,
            "ScalableDimension": f"dynamodb:{kind}:{units}",
        }
        if settings.get("AutoScalingDisabled"):
            if aas.records.target(f"{meta.scope}|dynamodb|{resource}|dynamodb:{kind}:{units}") is not None:
                aas.deregister_scalable_target(actx, target)
            return
        register = dict(target)
        for member, into in (("MinimumUnits", "MinCapacity"), ("MaximumUnits", "MaxCapacity")):
            if settings.get(member) is not None:
                register[into] = settings[member]
        if settings.get("AutoScalingRoleArn"):
            register["RoleARN"] = settings["AutoScalingRoleArn"]
        await aas.register_scalable_target(actx, register)
        policy = settings.get("ScalingPolicyUpdate")
        if policy:
            config = dict(policy.get("TargetTrackingScalingPolicyConfiguration") or {})
            config["PredefinedMetricSpecification"] = {"PredefinedMetricType": _METRICS[units]}
            aas.put_scaling_policy(
                actx,
                {
                    **target,
                    "PolicyName": policy.get("PolicyName") or f"DynamoDB{units}Policy",
                    "PolicyType": "TargetTrackingScaling",
                    "TargetTrackingScalingPolicyConfiguration": config,
                },
            )
