"""Resolving an experiment's targets: the resources named by ARN or found by tags through the
owning service's provider, then narrowed by the selection mode (ALL, COUNT(n), PERCENT(n))."""

from __future__ import annotations

import inspect
import math
import random
from collections.abc import Callable
from typing import Any

from strata.context import RequestContext


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


async def _call(provider: Any, name: str, ctx: RequestContext, req: dict) -> dict:
    result = getattr(provider, name)(ctx, req)
    return await result if inspect.isawaitable(result) else result


async def _tagged(peer: Callable[[str], Any], rtype: str, ctx: RequestContext) -> list[tuple[str, dict]]:
    """Every resource of a type in the account, as (ARN, tags)."""
    if rtype == "aws:iam:role":
        iam = peer("iam")
        roles = (await _call(iam, "list_roles", ctx, {"MaxItems": 1000}))["Roles"]
        out = []
        for role in roles:
            tags = (
                await _call(iam, "list_role_tags", ctx, {"RoleName": role["RoleName"], "MaxItems": 1000})
            )["Tags"]
            out.append((role["Arn"], {t["Key"]: t["Value"] for t in tags}))
        return out
    rds = peer("rds")
    if rtype == "aws:rds:db":
        items = (await _call(rds, "describe_db_instances", ctx, {}))["DBInstances"]
        arn_key = "DBInstanceArn"
    else:
        items = (await _call(rds, "describe_db_clusters", ctx, {}))["DBClusters"]
        arn_key = "DBClusterArn"
    return [(i[arn_key], {t["Key"]: t["Value"] for t in i.get("TagList", [])}) for i in items]


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
    """The ARNs a target names, after its selection mode."""
    if target.get("resourceArns"):
        found = list(target["resourceArns"])
    else:
        wanted = target.get("resourceTags") or {}
        found = [
            arn
            for arn, tags in await _tagged(peer, target["resourceType"], ctx)
            if all(tags.get(k) == v for k, v in wanted.items())
        ]
    return select(found, target["selectionMode"])
