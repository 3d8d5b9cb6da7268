"""Resolving an experiment's targets: the resources named by ARN or found by tags through the
owning service's provider, then narrowed by the selection mode (ALL, COUNT(n), PERCENT(n))."""

from __future__ import annotations

import inspect
import math
import random
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.ec2.network import default_subnets


def internal_context(service: str, operation: str, region: str, account: str, ref: str) -> RequestContext:
    """The context of a call FIS makes to another service on an experiment's behalf."""
    return RequestContext(
        request_id=f"fis-{ref}",
        service=service,
        operation=operation,
        region=region,
        account_id=account,
        principal=None,
        http=None,  # type: ignore[arg-type]  # no HTTP request behind these calls
    )


async def call(provider: Any, name: str, ctx: RequestContext, req: dict) -> dict:
    """Call another service's operation, whether its method is a coroutine or not."""
    result = getattr(provider, name)(ctx, req)
    return await result if inspect.isawaitable(result) else result


async def _pages(provider: Any, name: str, ctx: RequestContext, req: dict, items: str, token: str) -> list:
    """Every item of a paginated Describe call (`token`: Marker or NextToken)."""
    out: list = []
    while True:
        page = await call(provider, name, ctx, req)
        out += page.get(items) or []
        if not page.get(token):
            return out
        req = {**req, token: page[token]}  # the request member has the response member's name


def _tag_map(tags: list[dict] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tags or []}


async def _tagged(peer: Callable[[str], Any], rtype: str, ctx: RequestContext) -> list[tuple[str, dict, str]]:
    """Every resource of a type in the account, as (ARN, tags, Availability Zone or "")."""
    if rtype == "aws:iam:role":
        iam = peer("iam")
        roles = (await call(iam, "list_roles", ctx, {"MaxItems": 1000}))["Roles"]
        out = []
        for role in roles:
            tags = (await call(iam, "list_role_tags", ctx, {"RoleName": role["RoleName"], "MaxItems": 1000}))[
                "Tags"
            ]
            out.append((role["Arn"], _tag_map(tags), ""))
        return out
    if rtype == "aws:elasticache:replicationgroup":
        ec = peer("elasticache")
        groups = await _pages(ec, "describe_replication_groups", ctx, {}, "ReplicationGroups", "Marker")
        out = []
        for g in groups:
            tags = (await call(ec, "list_tags_for_resource", ctx, {"ResourceName": g["ARN"]}))["TagList"]
            out.append((g["ARN"], _tag_map(tags), ""))
        return out
    if rtype == "aws:ec2:ebs-volume":
        volumes = await _pages(peer("ec2"), "describe_volumes", ctx, {}, "Volumes", "NextToken")
        return [
            (
                f"arn:aws:ec2:{ctx.region}:{ctx.account_id}:volume/{v['VolumeId']}",
                _tag_map(v.get("Tags")),
                v["AvailabilityZone"],
            )
            for v in volumes
        ]
    if rtype == "aws:ec2:subnet":
        subnets = await _pages(peer("ec2"), "describe_subnets", ctx, {}, "Subnets", "NextToken")
        return [(s["SubnetArn"], _tag_map(s.get("Tags")), s["AvailabilityZone"]) for s in subnets]
    if rtype == "aws:elasticfilesystem:file-system":
        systems: list[dict] = []
        req: dict = {}
        efs_ctx = replace(ctx, service="efs", operation="DescribeFileSystems")  # EFS checks its model
        while True:  # EFS pages with Marker in and NextMarker out
            page = await call(peer("efs"), "describe_file_systems", efs_ctx, req)
            systems += page["FileSystems"]
            if not page.get("NextMarker"):
                return [(f["FileSystemArn"], _tag_map(f.get("Tags")), "") for f in systems]
            req = {"Marker": page["NextMarker"]}
    if rtype == "aws:dynamodb:global-table":
        return await _global_tables(peer("dynamodb"), ctx)
    rds = peer("rds")
    if rtype == "aws:rds:db":
        items = (await call(rds, "describe_db_instances", ctx, {}))["DBInstances"]
        arn_key = "DBInstanceArn"
    else:
        items = (await call(rds, "describe_db_clusters", ctx, {}))["DBClusters"]
        arn_key = "DBClusterArn"
    return [(i[arn_key], _tag_map(i.get("TagList")), "") for i in items]


async def _global_tables(ddb: Any, ctx: RequestContext) -> list[tuple[str, dict, str]]:
    """The region's tables that are replicas of global tables (those DescribeTable shows Replicas of)."""
    names: list[str] = []
    req: dict = {}
    while True:
        page = await call(ddb, "list_tables", ctx, req)
        names += page["TableNames"]
        if not page.get("LastEvaluatedTableName"):
            break
        req = {"ExclusiveStartTableName": page["LastEvaluatedTableName"]}
    out = []
    for name in names:
        table = (await call(ddb, "describe_table", ctx, {"TableName": name}))["Table"]
        if table.get("Replicas"):
            tags = (await call(ddb, "list_tags_of_resource", ctx, {"ResourceArn": table["TableArn"]}))["Tags"]
            out.append((table["TableArn"], _tag_map(tags), ""))
    return out


def zone_name(account: str, region: str, identifier: str) -> str | None:
    """The Availability Zone an availabilityZoneIdentifier names: a zone (us-east-1a) or a zone ID
    as DescribeAvailabilityZones and DescribeSubnets give it; None if neither."""
    for subnet in default_subnets(account, region):
        if identifier in (subnet["az"], subnet["az_id"]):
            return subnet["az"]
    return None


def select(arns: list[str], mode: str) -> list[str]:
    """The resources an action acts on, chosen at random as COUNT(n) or PERCENT(n) say."""
    if mode.startswith("COUNT("):
        n = int(mode[6:-1])
    elif mode.startswith("PERCENT("):
        n = math.ceil(len(arns) * int(mode[8:-1]) / 100)
    else:
        return list(arns)
    return sorted(random.sample(arns, min(n, len(arns))))


async def resolve(peer: Callable[[str], Any], target: dict, ctx: RequestContext) -> list[str]:
    """The ARNs a target names, after its selection mode. An EBS volume target's
    availabilityZoneIdentifier keeps only the volumes in that zone."""
    zone = None
    if target["resourceType"] == "aws:ec2:ebs-volume":
        zone = (target.get("parameters") or {}).get("availabilityZoneIdentifier")
    if target.get("resourceArns") and zone is None:
        found = list(target["resourceArns"])
    else:
        wanted = target.get("resourceTags") or {}
        named = set(target.get("resourceArns") or [])
        in_zone = zone_name(ctx.account_id, ctx.region, zone) if zone else None
        if zone and in_zone is None:
            raise ServiceError("ValidationException", f"Invalid availabilityZoneIdentifier: {zone}", 400)
        found = [
            arn
            for arn, tags, az in await _tagged(peer, target["resourceType"], ctx)
            if (arn in named if named else all(tags.get(k) == v for k, v in wanted.items()))
            and (in_zone is None or az == in_zone)
        ]
    return select(found, target["selectionMode"])
