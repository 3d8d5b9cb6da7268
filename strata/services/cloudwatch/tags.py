"""Tags on alarms: PutMetricAlarm's Tags (at creation only, as CloudWatch ignores them on an
update), TagResource, UntagResource and ListTagsForResource by alarm ARN
(`arn:aws:cloudwatch:<region>:<account>:alarm:<name>`). Alarms are the only taggable resource
Strata has; any other ARN is a ResourceNotFoundException."""

from __future__ import annotations

import re
from typing import Any

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.base import run_blocking
from strata.services.cloudwatch.statistics import check_constraints, invalid
from strata.services.cloudwatch.store import MetricStore, scope_of

MAX_TAGS = 50
_ALARM_ARN = re.compile(r"^arn:aws[\w-]*:cloudwatch:([\w-]+):(\d{12}):alarm:(.+)$")


def _not_found(arn: str) -> ServiceError:
    kind = arn.split(":")[5] if arn.count(":") >= 5 else "resource"
    return ServiceError(
        "ResourceNotFoundException",
        f"{kind} {arn} not found",
        404,
        fields={"ResourceType": kind, "ResourceId": arn},
    )


def merged(tags: list[dict], new: list[dict]) -> list[dict]:
    """Tags with `new` ones added or replacing those of the same key; InvalidParameterValue past 50."""
    by_key = {t["Key"]: t["Value"] for t in tags}
    by_key.update({t["Key"]: t.get("Value", "") for t in new})
    if len(by_key) > MAX_TAGS:
        raise invalid(f"A resource may have at most {MAX_TAGS} tags.")
    return [{"Key": k, "Value": v} for k, v in by_key.items()]


class TagOperations:
    """The provider supplies `store`."""

    store: MetricStore

    def _alarm_name(self, ctx: RequestContext, arn: str) -> str:
        m = _ALARM_ARN.match(arn or "")
        if m is None or m.group(2) != ctx.account_id or m.group(1) != ctx.region:
            raise _not_found(arn)
        return m.group(3)

    async def _change_tags(self, ctx: RequestContext, arn: str, change: Any) -> None:
        name = self._alarm_name(ctx, arn)

        def update(doc: dict | None) -> tuple[dict, list]:
            if doc is None:
                raise _not_found(arn)
            doc["_tags"] = change(doc.get("_tags", []))
            return doc, []

        await run_blocking(self.store.update_alarm, scope_of(ctx.account_id, ctx.region), name, update)

    async def tag_resource(self, ctx: RequestContext, req: dict) -> dict:
        check_constraints("TagResource", req)
        await self._change_tags(ctx, req["ResourceARN"], lambda tags: merged(tags, req["Tags"]))
        return {}

    async def untag_resource(self, ctx: RequestContext, req: dict) -> dict:
        check_constraints("UntagResource", req)
        gone = set(req["TagKeys"])
        await self._change_tags(
            ctx, req["ResourceARN"], lambda tags: [t for t in tags if t["Key"] not in gone]
        )
        return {}

    async def list_tags_for_resource(self, ctx: RequestContext, req: dict) -> dict:
        check_constraints("ListTagsForResource", req)
        name = self._alarm_name(ctx, req["ResourceARN"])
        alarms = {
            a["AlarmName"]: a
            for a in await run_blocking(self.store.alarms, scope_of(ctx.account_id, ctx.region))
        }
        if name not in alarms:
            raise _not_found(req["ResourceARN"])
        return {"Tags": alarms[name].get("_tags", [])}
