"""Metric alarms: PutMetricAlarm, DescribeAlarms(ForMetric), DeleteAlarms, SetAlarmState,
DescribeAlarmHistory, and their evaluation on the simulated clock.

An alarm is evaluated at each boundary of its period that simulated time crosses (a jump of a day
evaluates every period of it, up to `MAX_STEPS`, so an alarm that went OK -> ALARM -> OK inside
the jump says so in its history). At instant T it looks at the last `EvaluationPeriods` whole
periods before T: `DatapointsToAlarm` breaching ones make it ALARM; missing periods count as
`TreatMissingData` says (missing: all missing is INSUFFICIENT_DATA; ignore: keep the state;
breaching / notBreaching). State changes are stamped with T and kept in the history.
Alarm actions are refused (Strata has no SNS or Auto Scaling to act on).
"""

from __future__ import annotations

import base64
import json
import math
from datetime import UTC, datetime
from typing import Any

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.base import run_blocking
from strata.services.cloudwatch.statistics import check_constraints, check_period, invalid, is_statistic
from strata.services.cloudwatch.store import MetricStore, dims_key, scope_of
from strata.services.cloudwatch.tags import merged
from strata.sim.clock import clock

MAX_STEPS = 1440  # periods evaluated per alarm in one run; older ones of a longer jump are skipped
MAX_ALARMS_PER_PAGE = 100
_COMPARE = {
    "GreaterThanOrEqualToThreshold": (lambda v, t: v >= t, "greater than or equal to"),
    "GreaterThanThreshold": (lambda v, t: v > t, "greater than"),
    "LessThanThreshold": (lambda v, t: v < t, "less than"),
    "LessThanOrEqualToThreshold": (lambda v, t: v <= t, "less than or equal to"),
}
_MISSING = ("breaching", "notBreaching", "ignore", "missing")
_STATES = ("OK", "ALARM", "INSUFFICIENT_DATA")
# Members of PutMetricAlarm kept as given on the alarm (the rest are derived or validated below).
_KEPT = (
    "AlarmDescription",
    "MetricName",
    "Namespace",
    "Statistic",
    "ExtendedStatistic",
    "Dimensions",
    "Period",
    "Unit",
    "EvaluationPeriods",
    "DatapointsToAlarm",
    "Threshold",
    "ComparisonOperator",
    "TreatMissingData",
    "EvaluateLowSampleCountPercentile",
    "Metrics",
    "ThresholdMetricId",
)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def _when(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def not_found(message: str = "The named resource does not exist.") -> ServiceError:
    return ServiceError("ResourceNotFound", message, 404)


class AlarmOperations:
    """The alarm half of the CloudWatch API (the provider supplies `store`, `_metric_data`)."""

    store: MetricStore
    _metric_data: Any

    async def put_metric_alarm(self, ctx: RequestContext, req: dict) -> dict:
        check_constraints("PutMetricAlarm", req)
        doc = self._validated_alarm(ctx, req)
        count = len(await run_blocking(self.store.alarms, scope_of(ctx.account_id, ctx.region)))
        now = clock.time()

        def change(old: dict | None) -> tuple[dict, list]:
            if old is None and count >= 5000:
                raise ServiceError(
                    "LimitExceeded", "The maximum number of alarms (5000) has been reached.", 400
                )
            if old is not None:
                kept = (
                    "StateValue",
                    "StateReason",
                    "StateReasonData",
                    "StateUpdatedTimestamp",
                    "StateTransitionedTimestamp",
                    "_evaluated_to",
                    "_tags",
                )
                doc.update({k: old[k] for k in kept if k in old})
                verb = "updated"
            else:
                doc["_tags"] = merged([], req.get("Tags") or [])
                doc.update(
                    {
                        "StateValue": "INSUFFICIENT_DATA",
                        "StateReason": "Unchecked: Initial alarm creation",
                        "StateUpdatedTimestamp": _iso(now),
                        "StateTransitionedTimestamp": _iso(now),
                        "_evaluated_to": now,
                    }
                )
                verb = "created"
            doc["AlarmConfigurationUpdatedTimestamp"] = _iso(now)
            summary = f'Alarm "{req["AlarmName"]}" {verb}'
            return doc, [(now, "ConfigurationUpdate", summary, json.dumps({"type": verb}))]

        await run_blocking(
            self.store.update_alarm, scope_of(ctx.account_id, ctx.region), req["AlarmName"], change
        )
        return {}

    def _validated_alarm(self, ctx: RequestContext, req: dict) -> dict:
        check_period(req.get("Period") or 60, "The parameter Period")
        n = req["EvaluationPeriods"]
        m = req.get("DatapointsToAlarm") or n
        if n < 1 or not 1 <= m <= n:
            raise invalid("DatapointsToAlarm must be between 1 and EvaluationPeriods.")
        if req["ComparisonOperator"] not in _COMPARE:
            raise invalid(
                f"The value {req['ComparisonOperator']} for parameter ComparisonOperator is not supported "
                "(anomaly detection bands are not supported by Strata)."
            )
        if req.get("Threshold") is None:
            raise ServiceError("ValidationError", "Threshold is required for a static threshold alarm.", 400)
        if req.get("TreatMissingData", "missing") not in _MISSING:
            raise invalid(f"The value {req['TreatMissingData']} for parameter TreatMissingData is invalid.")
        if req.get("Metrics"):
            if any(
                req.get(k)
                for k in ("MetricName", "Namespace", "Statistic", "ExtendedStatistic", "Dimensions")
            ):
                raise ServiceError(
                    "ValidationError",
                    "Metrics list cannot be specified together with MetricName, Namespace, Statistic, "
                    "ExtendedStatistic or Dimensions.",
                    400,
                )
            returned = [q for q in req["Metrics"] if q.get("ReturnData", True)]
            if len(returned) != 1:
                raise ServiceError(
                    "ValidationError", "Exactly one element of the metrics list should return data.", 400
                )
        else:
            if not req.get("MetricName") or not req.get("Namespace"):
                raise ServiceError("ValidationError", "MetricName and Namespace are required.", 400)
            stats = [s for s in (req.get("Statistic"), req.get("ExtendedStatistic")) if s]
            if len(stats) != 1 or not is_statistic(stats[0]):
                raise ServiceError(
                    "ValidationError",
                    "Exactly one of Statistic and ExtendedStatistic must be specified.",
                    400,
                )
            if req.get("Period") is None:
                raise ServiceError("ValidationError", "Period must be specified.", 400)
        doc = {k: req[k] for k in _KEPT if req.get(k) is not None}
        doc["AlarmName"] = req["AlarmName"]
        doc["AlarmArn"] = f"arn:aws:cloudwatch:{ctx.region}:{ctx.account_id}:alarm:{req['AlarmName']}"
        doc["ActionsEnabled"] = req.get("ActionsEnabled", True)
        doc["OKActions"] = doc["AlarmActions"] = doc["InsufficientDataActions"] = []
        doc.setdefault("DatapointsToAlarm", m)
        return doc

    async def describe_alarms(self, ctx: RequestContext, req: dict) -> dict:
        check_constraints("DescribeAlarms", req)
        names, prefix = req.get("AlarmNames"), req.get("AlarmNamePrefix")
        if names and prefix:
            raise invalid("AlarmNames and AlarmNamePrefix cannot be specified together.")
        types = req.get("AlarmTypes") or ["MetricAlarm"]
        alarms = await run_blocking(self.store.alarms, scope_of(ctx.account_id, ctx.region))
        picked = [
            a
            for a in alarms
            if (not names or a["AlarmName"] in names)
            and (not prefix or a["AlarmName"].startswith(prefix))
            and (not req.get("StateValue") or a["StateValue"] == req["StateValue"])
            and not req.get("ActionPrefix")  # no alarm has actions
        ]
        if "MetricAlarm" not in types or req.get("ChildrenOfAlarmName") or req.get("ParentsOfAlarmName"):
            picked = []  # no composite alarms exist
        page, token = _page(picked, req.get("NextToken"), req.get("MaxRecords") or MAX_ALARMS_PER_PAGE)
        out: dict = {"MetricAlarms": [_public(a) for a in page], "CompositeAlarms": []}
        if token:
            out["NextToken"] = token
        return out

    async def describe_alarms_for_metric(self, ctx: RequestContext, req: dict) -> dict:
        check_constraints("DescribeAlarmsForMetric", req)
        alarms = await run_blocking(self.store.alarms, scope_of(ctx.account_id, ctx.region))
        key = dims_key(req.get("Dimensions"))
        picked = [
            a
            for a in alarms
            if a.get("Namespace") == req["Namespace"]
            and a.get("MetricName") == req["MetricName"]
            and dims_key(a.get("Dimensions")) == key
            and all(
                req.get(k) in (None, a.get(k)) for k in ("Statistic", "ExtendedStatistic", "Period", "Unit")
            )
        ]
        return {"MetricAlarms": [_public(a) for a in picked]}

    async def enable_alarm_actions(self, ctx: RequestContext, req: dict) -> dict:
        check_constraints("EnableAlarmActions", req)
        await self._set_actions_enabled(ctx, req["AlarmNames"], True)
        return {}

    async def disable_alarm_actions(self, ctx: RequestContext, req: dict) -> dict:
        check_constraints("DisableAlarmActions", req)
        await self._set_actions_enabled(ctx, req["AlarmNames"], False)
        return {}

    async def _set_actions_enabled(self, ctx: RequestContext, names: list[str], enabled: bool) -> None:
        """ActionsEnabled of each named alarm that exists (CloudWatch skips unknown names)."""

        def change(doc: dict | None) -> tuple[dict, list]:
            if doc is None:
                raise _Gone
            doc["ActionsEnabled"] = enabled
            return doc, []

        for name in names:
            try:
                await run_blocking(
                    self.store.update_alarm, scope_of(ctx.account_id, ctx.region), name, change
                )
            except _Gone:
                continue

    async def delete_alarms(self, ctx: RequestContext, req: dict) -> dict:
        check_constraints("DeleteAlarms", req)
        names = req["AlarmNames"]
        have = {
            a["AlarmName"]
            for a in await run_blocking(self.store.alarms, scope_of(ctx.account_id, ctx.region))
        }
        if any(n not in have for n in names):
            raise not_found()
        await run_blocking(self.store.delete_alarms, scope_of(ctx.account_id, ctx.region), names)
        return {}

    async def set_alarm_state(self, ctx: RequestContext, req: dict) -> dict:
        check_constraints("SetAlarmState", req)
        if req["StateValue"] not in _STATES:
            raise invalid(f"The value {req['StateValue']} for parameter StateValue is invalid.")
        data = req.get("StateReasonData")
        if data is not None:
            try:
                json.loads(data)
            except ValueError:
                raise ServiceError("InvalidFormat", "StateReasonData is not valid JSON.", 400) from None
        now = clock.time()

        def change(doc: dict | None) -> tuple[dict, list]:
            if doc is None:
                raise not_found()
            return doc, _transition(doc, req["StateValue"], req["StateReason"], data, now)

        await run_blocking(
            self.store.update_alarm, scope_of(ctx.account_id, ctx.region), req["AlarmName"], change
        )
        return {}

    async def describe_alarm_history(self, ctx: RequestContext, req: dict) -> dict:
        check_constraints("DescribeAlarmHistory", req)
        start = req["StartDate"].timestamp() if req.get("StartDate") else 0.0
        end = req["EndDate"].timestamp() if req.get("EndDate") else math.inf
        rows = await run_blocking(
            self.store.history, scope_of(ctx.account_id, ctx.region), req.get("AlarmName"), start, end
        )
        kind = req.get("HistoryItemType")
        types = req.get("AlarmTypes") or ["MetricAlarm"]
        items = [
            {
                "AlarmName": name,
                "AlarmType": "MetricAlarm",
                "Timestamp": _when(at),
                "HistoryItemType": k,
                "HistorySummary": summary,
                "HistoryData": data,
            }
            for name, at, k, summary, data in rows
            if (kind is None or k == kind) and "MetricAlarm" in types
        ]
        items.sort(
            key=lambda i: i["Timestamp"],
            reverse=(req.get("ScanBy") or "TimestampDescending") == "TimestampDescending",
        )
        page, token = _page(items, req.get("NextToken"), req.get("MaxRecords") or 100)
        out: dict = {"AlarmHistoryItems": page}
        if token:
            out["NextToken"] = token
        return out

    # -- evaluation ------------------------------------------------------------------------------

    async def _evaluate_alarms(self, since: float, until: float) -> dict[str, int]:
        return await run_blocking(self._evaluate_all, until)

    def _evaluate_all(self, until: float) -> dict[str, int]:
        made: list[int] = []
        for account, alarm in self.store.all_alarms():

            def change(doc: dict | None, account: str = account) -> tuple[dict, list]:
                if doc is None:  # deleted meanwhile: nothing to store
                    raise _Gone
                period = doc.get("Period") or _math_period(doc)
                done = doc.get("_evaluated_to", until)
                first = max(math.floor(done / period) + 1, math.floor(until / period) - MAX_STEPS + 1)
                items: list[tuple] = []
                for k in range(first, math.floor(until / period) + 1):
                    items += self._evaluate_at(account, doc, k * period, period)
                doc["_evaluated_to"] = max(done, until)
                made.append(len(items))
                return doc, items

            try:
                self.store.update_alarm(account, alarm["AlarmName"], change)
            except _Gone:
                continue
        return {"transitions": sum(made)}

    def _evaluate_at(self, account: str, doc: dict, at: float, period: int) -> list[tuple]:
        n, m = doc["EvaluationPeriods"], doc["DatapointsToAlarm"]
        start = at - n * period
        series = self._alarm_series(account, doc, start, at, period)
        test, words = _COMPARE[doc["ComparisonOperator"]]
        threshold = doc["Threshold"]
        present = {t: v for t, v in series.items() if start <= t < at and v is not None}
        breaching = sorted((t, v) for t, v in present.items() if test(v, threshold))
        missing = n - len(present)
        treat = doc.get("TreatMissingData", "missing")
        bad = len(breaching) + (missing if treat == "breaching" else 0)
        if bad >= m:
            state = "ALARM"
        elif not present and treat == "missing":
            state = "INSUFFICIENT_DATA"
        elif not present and treat == "ignore":
            return []
        else:
            state = "OK"
        if state == doc["StateValue"]:
            return []
        shown = breaching if state == "ALARM" else sorted(present.items())
        points = ", ".join(f"{v} ({_when(t).strftime('%d/%m/%y %H:%M:%S')})" for t, v in shown[:5])
        if state == "INSUFFICIENT_DATA":
            reason = f"Insufficient Data: {n} datapoint{'s were' if n > 1 else ' was'} unknown."
        else:
            count = len(shown)
            verb = "was" if state == "ALARM" else "was not"
            reason = (
                f"Threshold Crossed: {count} out of the last {n} datapoints [{points}] {verb} {words} "
                f"the threshold ({threshold}) (minimum {m} datapoint{'s' if m > 1 else ''} for "
                f"{'OK -> ALARM' if state == 'ALARM' else 'ALARM -> OK'} transition)."
            )
        data = json.dumps(
            {
                "version": "1.0",
                "queryDate": _iso(at),
                "startDate": _iso(start),
                "period": period,
                "recentDatapoints": [v for _, v in sorted(present.items())],
                "threshold": threshold,
            }
        )
        return _transition(doc, state, reason, data, at)

    def _alarm_series(
        self, account: str, doc: dict, start: float, end: float, period: int
    ) -> dict[int, float]:
        if doc.get("Metrics"):
            queries = doc["Metrics"]
        else:
            queries = [
                {
                    "Id": "m",
                    "MetricStat": {
                        "Metric": {k: doc[k] for k in ("Namespace", "MetricName", "Dimensions") if k in doc},
                        "Period": period,
                        "Stat": doc.get("Statistic") or doc["ExtendedStatistic"],
                        **({"Unit": doc["Unit"]} if doc.get("Unit") else {}),
                    },
                }
            ]
        env = self._metric_data(account, queries, start, end)
        wanted = next(q["Id"] for q in queries if q.get("ReturnData", True))
        result = env[wanted]
        if isinstance(result, list):  # an alarm watches one series: several (a SEARCH) count as missing
            return result[0] if len(result) == 1 else {}
        return result if isinstance(result, dict) else {int(start): result}


class _Gone(Exception):
    """The alarm was deleted while the evaluation was reading it."""


def _math_period(doc: dict) -> int:
    for q in doc.get("Metrics", []):
        if q.get("MetricStat"):
            return q["MetricStat"]["Period"]
        if q.get("Period"):
            return q["Period"]
    return 60


def _transition(doc: dict, state: str, reason: str, data: str | None, at: float) -> list[tuple]:
    """Move an alarm to `state` at `at`; the history item of the change."""
    old = doc["StateValue"]
    doc["StateValue"], doc["StateReason"] = state, reason
    if data is not None:
        doc["StateReasonData"] = data
    else:
        doc.pop("StateReasonData", None)
    doc["StateUpdatedTimestamp"] = _iso(at)
    if old != state:
        doc["StateTransitionedTimestamp"] = _iso(at)
    history = {
        "version": "1.0",
        "oldState": {"stateValue": old},
        "newState": {"stateValue": state, "stateReason": reason},
    }
    return [(at, "StateUpdate", f"Alarm updated from {old} to {state}", json.dumps(history))]


def _public(doc: dict) -> dict:
    """An alarm as DescribeAlarms shows it (timestamps as datetimes, private keys dropped)."""
    out = {k: v for k, v in doc.items() if not k.startswith("_")}
    for key in ("AlarmConfigurationUpdatedTimestamp", "StateUpdatedTimestamp", "StateTransitionedTimestamp"):
        if key in out:
            out[key] = datetime.strptime(out[key], "%Y-%m-%dT%H:%M:%S.000+0000").replace(tzinfo=UTC)
    return out


def _page(items: list, token: str | None, size: int) -> tuple[list, str | None]:
    offset = 0
    if token:
        try:
            offset = int(base64.urlsafe_b64decode(token.encode()).decode())
        except ValueError:
            offset = -1
        if not 0 < offset <= len(items):
            raise ServiceError(
                "InvalidNextToken",
                "The service couldn't process your request: the NextToken is invalid.",
                400,
            )
    nxt = offset + size
    return items[offset:nxt], (
        base64.urlsafe_b64encode(str(nxt).encode()).decode() if nxt < len(items) else None
    )
