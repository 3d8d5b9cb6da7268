"""Dashboards: PutDashboard, GetDashboard, ListDashboards, DeleteDashboards.

A dashboard is its name and JSON body, kept as given. The body must be a JSON object whose
`widgets`, when present, is a list (CloudWatch's console renders the widgets; Strata stores them).
Dashboards are global to the account: their ARN has no region.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.base import run_blocking
from strata.services.cloudwatch.statistics import check_constraints
from strata.services.cloudwatch.store import MetricStore
from strata.sim.clock import clock

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
PAGE = 1000


def _arn(account: str, name: str) -> str:
    return f"arn:aws:cloudwatch::{account}:dashboard/{name}"


def _bad_input(message: str, path: str = "") -> ServiceError:
    return ServiceError(
        "InvalidParameterInput",
        message,
        400,
        fields={"dashboardValidationMessages": [{"DataPath": path, "Message": message}]},
    )


def _not_found(name: str) -> ServiceError:
    return ServiceError("ResourceNotFound", f"Dashboard {name} does not exist", 404)


class DashboardOperations:
    """The provider supplies `store`."""

    store: MetricStore

    async def put_dashboard(self, ctx: RequestContext, req: dict) -> dict:
        check_constraints("PutDashboard", req)
        name = req["DashboardName"]
        if not _NAME.match(name):
            raise _bad_input(
                "The value for field DashboardName contains invalid characters. It can only contain "
                "alphanumerics, dash (-) and underscore (_).",
                "DashboardName",
            )
        try:
            body = json.loads(req["DashboardBody"])
        except ValueError:
            raise _bad_input("The field DashboardBody must be a valid JSON object") from None
        if not isinstance(body, dict):
            raise _bad_input("The field DashboardBody must be a valid JSON object")
        if "widgets" in body and not isinstance(body["widgets"], list):
            raise _bad_input("Should be array", "/widgets")
        await run_blocking(self.store.put_dashboard, ctx.account_id, name, req["DashboardBody"], clock.time())
        return {"DashboardValidationMessages": []}

    async def get_dashboard(self, ctx: RequestContext, req: dict) -> dict:
        check_constraints("GetDashboard", req)
        name = req.get("DashboardName") or ""
        for have, body, _at in await run_blocking(self.store.dashboards, ctx.account_id):
            if have == name:
                return {
                    "DashboardArn": _arn(ctx.account_id, name),
                    "DashboardBody": body,
                    "DashboardName": name,
                }
        raise _not_found(name)

    async def list_dashboards(self, ctx: RequestContext, req: dict) -> dict:
        check_constraints("ListDashboards", req)
        prefix = req.get("DashboardNamePrefix") or ""
        rows = [
            r for r in await run_blocking(self.store.dashboards, ctx.account_id) if r[0].startswith(prefix)
        ]
        offset = 0
        if req.get("NextToken"):
            try:
                offset = int(base64.urlsafe_b64decode(req["NextToken"].encode()).decode())
            except ValueError:
                offset = -1
            if not 0 < offset <= len(rows):
                raise ServiceError("InvalidParameterValue", "The NextToken is invalid.", 400)
        entries = [
            {
                "DashboardName": name,
                "DashboardArn": _arn(ctx.account_id, name),
                "LastModified": datetime.fromtimestamp(at, UTC),
                "Size": len(body.encode()),
            }
            for name, body, at in rows[offset : offset + PAGE]
        ]
        out: dict = {"DashboardEntries": entries}
        if offset + PAGE < len(rows):
            out["NextToken"] = base64.urlsafe_b64encode(str(offset + PAGE).encode()).decode()
        return out

    async def delete_dashboards(self, ctx: RequestContext, req: dict) -> dict:
        check_constraints("DeleteDashboards", req)
        have = {r[0] for r in await run_blocking(self.store.dashboards, ctx.account_id)}
        for name in req["DashboardNames"]:
            if name not in have:
                raise _not_found(name)
        await run_blocking(self.store.delete_dashboards, ctx.account_id, req["DashboardNames"])
        return {}
