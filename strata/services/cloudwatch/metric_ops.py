"""PutMetricData, GetMetricStatistics, GetMetricData and ListMetrics over the metric store."""

from __future__ import annotations

import base64
import math
from datetime import UTC, datetime
from typing import Any

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.base import run_blocking
from strata.services.cloudwatch import expressions
from strata.services.cloudwatch.search import MAX_RESULTS as MAX_SEARCH_RESULTS
from strata.services.cloudwatch.search import parse as search_query
from strata.services.cloudwatch.statistics import (
    by_period,
    check_constraints,
    check_period,
    invalid,
    is_statistic,
    percentile_of,
    value,
)
from strata.services.cloudwatch.store import Bucket, MetricStore, Point, dims_key, dims_list, scope_of
from strata.sim.clock import clock

MAX_DATAPOINTS = 1440  # GetMetricStatistics' limit per call
MAX_QUERIES = 500
MAX_DATA_POINTS = 100_800  # GetMetricData's default page (MaxDatapoints)
LIST_PAGE = 500
PAST_LIMIT = 14 * 86400  # PutMetricData takes data up to two weeks old ...
FUTURE_LIMIT = 2 * 3600  # ... and up to two hours ahead
_RECENT = {"PT3H": 3 * 3600}
LISTED_FOR = 14 * 86400  # ListMetrics shows metrics with data in the last two weeks


def combination(message: str) -> ServiceError:
    return ServiceError("InvalidParameterCombination", message, 400)


def _epoch(value: Any) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value)


def _stamp(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _finite(x: float, where: str) -> float:
    if not math.isfinite(x):
        raise invalid(f"The value {x} for parameter {where} is invalid.")
    if x != 0 and not (2**-260 <= abs(x) <= 2**360):
        raise invalid(f"The value {x} for parameter {where} is out of range (2^-260 to 2^360).")
    return float(x)


class MetricOperations:
    """The metric half of the CloudWatch API (the provider supplies `store`)."""

    store: MetricStore

    # -- PutMetricData ---------------------------------------------------------------------------

    async def put_metric_data(self, ctx: RequestContext, req: dict) -> dict:
        check_constraints("PutMetricData", req)
        namespace = req["Namespace"]
        if namespace.startswith("AWS/"):
            raise invalid(f"The value {namespace} for parameter Namespace is invalid.")
        data = req.get("MetricData") or []
        if not data:
            raise ServiceError("MissingParameter", "The parameter MetricData is required.", 400)
        if len(data) > 1000:
            raise invalid("The collection MetricData must not have a size greater than 1000.")
        now = clock.time()
        points = [
            self._point(scope_of(ctx.account_id, ctx.region), namespace, d, i, now)
            for i, d in enumerate(data, 1)
        ]
        await run_blocking(self.store.add, points)
        return {}

    def _point(self, account: str, namespace: str, d: dict, i: int, now: float) -> Point:
        where = f"MetricData.member.{i}"
        at = _epoch(d["Timestamp"]) if d.get("Timestamp") is not None else now
        if at < now - PAST_LIMIT or at > now + FUTURE_LIMIT:
            raise invalid(
                f"The parameter {where}.Timestamp must specify a time no more than two weeks in the "
                "past and no more than two hours in the future."
            )
        dims = d.get("Dimensions") or []
        if len(dims) > 30:
            raise invalid(f"The collection {where}.Dimensions must not have a size greater than 30.")
        names = [x["Name"] for x in dims]
        if len(set(names)) != len(names):
            raise invalid(f"No metric may have duplicate dimension names ({where}.Dimensions).")
        given = [k for k in ("Value", "StatisticValues", "Values") if d.get(k) is not None]
        if len(given) > 1:
            raise combination(
                f"The parameters {where}.{given[0]} and {where}.{given[1]} are mutually exclusive "
                "and you have specified both."
            )
        resolution = d.get("StorageResolution") or 60
        if resolution not in (1, 60):
            raise invalid(f"The value {resolution} for parameter {where}.StorageResolution is invalid.")
        return Point(
            account,
            namespace,
            d["MetricName"],
            dims_key(dims),
            at,
            d.get("Unit") or "None",
            self._bucket(d, where),
            resolution,
        )

    @staticmethod
    def _bucket(d: dict, where: str) -> Bucket:
        if d.get("StatisticValues") is not None:
            sv = d["StatisticValues"]
            n, s = _finite(sv["SampleCount"], f"{where}.StatisticValues.SampleCount"), sv["Sum"]
            lo, hi = sv["Minimum"], sv["Maximum"]
            for name in ("Sum", "Minimum", "Maximum"):
                _finite(sv[name], f"{where}.StatisticValues.{name}")
            if n <= 0 or lo > hi:
                raise invalid(f"The parameter {where}.StatisticValues is not a valid statistic set.")
            return Bucket(s, n, lo, hi, None)
        if d.get("Values") is not None:
            values = [_finite(v, f"{where}.Values") for v in d["Values"]]
            counts = d.get("Counts")
            if counts is None:
                counts = [1.0] * len(values)
            elif len(counts) != len(values):
                raise combination(
                    f"The parameters {where}.Values and {where}.Counts must be of the same size."
                )
            if not values:
                raise ServiceError("MissingParameter", f"The parameter {where}.Values is required.", 400)
            weighted = [(v, float(c)) for v, c in zip(values, counts, strict=True) if c > 0]
            if not weighted:
                raise invalid(f"The parameter {where}.Counts holds no positive count.")
            expanded: list[float] | None = [v for v, c in weighted for _ in range(int(c))]
            if any(c != int(c) for _, c in weighted) or len(expanded or ()) > 500:
                expanded = None
            return Bucket(
                sum(v * c for v, c in weighted),
                sum(c for _, c in weighted),
                min(v for v, _ in weighted),
                max(v for v, _ in weighted),
                expanded,
            )
        if d.get("Value") is None:
            raise ServiceError("MissingParameter", f"The parameter {where}.Value is required.", 400)
        v = _finite(d["Value"], f"{where}.Value")
        return Bucket(v, 1.0, v, v, [v])

    # -- GetMetricStatistics ---------------------------------------------------------------------

    async def get_metric_statistics(self, ctx: RequestContext, req: dict) -> dict:
        check_constraints("GetMetricStatistics", req)
        start, end, period = _epoch(req["StartTime"]), _epoch(req["EndTime"]), req["Period"]
        check_period(period)
        if start >= end:
            raise invalid("The parameter StartTime must be less than the parameter EndTime.")
        stats, extended = req.get("Statistics") or [], req.get("ExtendedStatistics") or []
        if bool(stats) == bool(extended):
            raise combination("Must specify either Statistics or ExtendedStatistics, but not both.")
        for e in extended:
            if percentile_of(e) is None:
                raise invalid(f"The value {e} for parameter ExtendedStatistics is not a valid percentile.")
        wanted = math.ceil((end - start) / period)
        if wanted > MAX_DATAPOINTS:
            raise combination(
                f"You have requested up to {wanted:,} datapoints, which exceeds the limit of 1,440. "
                "You may reduce the datapoints requested by increasing Period, or decreasing the time range."
            )
        name = req["MetricName"]
        periods = await run_blocking(
            self._periods,
            scope_of(ctx.account_id, ctx.region),
            req["Namespace"],
            name,
            dims_key(req.get("Dimensions")),
            start,
            end,
            period,
            req.get("Unit"),
        )
        points = []
        for (t, unit), bucket in sorted(periods.items()):
            point: dict = {"Timestamp": _stamp(t), "Unit": unit}
            for s in stats:
                point[s] = value(bucket, s)
            if extended:
                values = {e: value(bucket, e) for e in extended}
                point["ExtendedStatistics"] = {k: v for k, v in values.items() if v is not None}
            points.append(point)
        return {"Label": name, "Datapoints": points}

    def _periods(
        self,
        account: str,
        namespace: str,
        name: str,
        dims: str,
        start: float,
        end: float,
        period: int,
        unit: str | None,
    ) -> dict[tuple[int, str], Bucket]:
        mid = self.store.metric(account, namespace, name, dims)
        if mid is None:
            return {}
        rows = (r for r in self.store.buckets(mid, start - period, end) if unit is None or r[2] == unit)
        return by_period(rows, start, end, period)

    # -- GetMetricData ---------------------------------------------------------------------------

    async def get_metric_data(self, ctx: RequestContext, req: dict) -> dict:
        check_constraints("GetMetricData", req)
        start, end = _epoch(req["StartTime"]), _epoch(req["EndTime"])
        if start >= end:
            raise invalid("The parameter StartTime must be less than the parameter EndTime.")
        queries = req["MetricDataQueries"]
        if len(queries) > MAX_QUERIES:
            raise invalid("The collection MetricDataQueries must not have a size greater than 500.")
        page_size = req.get("MaxDatapoints") or MAX_DATA_POINTS
        if page_size < 1:
            raise invalid("The parameter MaxDatapoints must be greater than 0.")
        results = await run_blocking(
            self._metric_data, scope_of(ctx.account_id, ctx.region), queries, start, end
        )
        descending = (req.get("ScanBy") or "TimestampDescending") == "TimestampDescending"
        returned = []
        for q in queries:
            if q.get("ReturnData") is False:
                continue
            value_of = results[q["Id"]]
            if isinstance(value_of, list):  # SEARCH or METRICS(): one result per series
                for series in value_of:
                    label = getattr(series, "label", "") or q.get("Label") or q["Id"]
                    returned.append(({**q, "Label": label}, sorted(series.items(), reverse=descending)))
                continue
            if not isinstance(value_of, dict):  # a scalar: one point at the start of the range
                value_of = {int(start): value_of}
            returned.append((q, sorted(value_of.items(), reverse=descending)))
        # A page holds at most MaxDatapoints points, taken query after query; NextToken is where
        # the next page starts in that order (the same request must be sent again with it).
        total = sum(len(points) for _, points in returned)
        skip = _offset(req.get("NextToken"), total)
        room = page_size
        out = []
        for q, points in returned:
            taken = points[skip : skip + room] if room > 0 else []
            skip = max(0, skip - len(points))
            room -= len(taken)
            out.append(
                {
                    "Id": q["Id"],
                    "Label": q.get("Label") or _default_label(q),
                    "Timestamps": [_stamp(t) for t, _ in taken],
                    "Values": [v for _, v in taken],
                    "StatusCode": "Complete",
                }
            )
        done = _offset(req.get("NextToken"), total) + page_size
        answer: dict = {"MetricDataResults": out, "Messages": []}
        if done < total:
            answer["NextToken"] = base64.urlsafe_b64encode(str(done).encode()).decode()
            for result in out:
                result["StatusCode"] = "PartialData"
        return answer

    def _metric_data(self, account: str, queries: list[dict], start: float, end: float) -> dict[str, Any]:
        """Each query's series (timestamp -> value), or a scalar for an expression giving one."""
        ids: dict[str, dict] = {}
        for q in queries:
            qid = q["Id"]
            if not qid[:1].islower() or not all(c.isalnum() or c == "_" for c in qid):
                raise expressions.invalid(
                    f"The value {qid} for parameter MetricDataQueries.member.Id is invalid: it must "
                    "start with a lowercase letter and contain only letters, numbers and underscores."
                )
            if qid in ids:
                raise expressions.invalid(
                    f"The value {qid} for parameter MetricDataQueries.member.Id is not unique."
                )
            if q.get("AccountId") not in (None, "", account.split(":", 1)[0]):
                raise expressions.invalid(
                    "Cross-account metric queries (AccountId) are not supported by Strata."
                )
            if (q.get("MetricStat") is None) == (q.get("Expression") is None):
                raise expressions.invalid(
                    f"Exactly one of MetricStat and Expression must be set in query {qid}."
                )
            ids[qid] = q
        env: dict[str, Any] = {}
        labels: dict[str, str] = {}

        def search(text: str, stat: str, period: int) -> list:
            return self._search(account, text, stat, period, start, end)

        for qid, q in ids.items():
            stat = q.get("MetricStat")
            if stat is None:
                continue
            if not is_statistic(stat["Stat"]):
                raise invalid(
                    f"The value {stat['Stat']} for parameter MetricDataQueries.member.MetricStat.Stat is invalid."
                )
            check_period(stat["Period"], "The parameter MetricDataQueries.member.MetricStat.Period")
            m = stat["Metric"]
            if not m.get("Namespace") or not m.get("MetricName"):
                raise ServiceError(
                    "MissingParameter",
                    "The parameter MetricStat.Metric.Namespace and MetricName are required.",
                    400,
                )
            periods = self._periods(
                account,
                m["Namespace"],
                m["MetricName"],
                dims_key(m.get("Dimensions")),
                start,
                end,
                stat["Period"],
                stat.get("Unit"),
            )
            series: dict[int, float] = {}
            for (t, _unit), bucket in sorted(periods.items()):
                v = value(bucket, stat["Stat"])
                if v is not None:
                    series[t] = v
            env[qid] = series
            labels[qid] = q.get("Label") or m["MetricName"]
        pending = {qid: q["Expression"] for qid, q in ids.items() if q.get("Expression") is not None}
        while pending:
            ready = [
                qid
                for qid, text in pending.items()
                if (expressions.references(text) & set(ids)) - {qid} <= set(env)
            ]
            if not ready:
                raise expressions.invalid("Circular dependency between metric math expressions.")
            for qid in ready:
                text = pending.pop(qid)
                if qid in expressions.references(text):
                    raise expressions.invalid(f"Error in expression '{text}': it refers to itself.")
                env[qid] = expressions.evaluate(text, env, labels, search)
        return env

    def _search(self, account: str, text: str, stat: str, period: int, start: float, end: float) -> list:
        """The series of every metric a SEARCH text names, labelled by dimension values and name."""
        if not is_statistic(stat):
            raise expressions.invalid(f"Error in SEARCH: {stat} is not a statistic")
        check_period(period, "The period of SEARCH")
        wanted = search_query(text)
        found = []
        for namespace, name, key in self.store.list_metrics(
            account, wanted.namespace, None, start - LISTED_FOR
        ):
            dims = {d["Name"]: d["Value"] for d in dims_list(key)}
            if not wanted.matches(namespace, name, dims):
                continue
            series = expressions.Labeled()
            for (t, _unit), bucket in sorted(
                self._periods(account, namespace, name, key, start, end, period, None).items()
            ):
                v = value(bucket, stat)
                if v is not None:
                    series[t] = v
            series.label = " ".join([*dims.values(), name])
            found.append(series)
            if len(found) >= MAX_SEARCH_RESULTS:
                break
        return found

    # -- ListMetrics -----------------------------------------------------------------------------

    async def list_metrics(self, ctx: RequestContext, req: dict) -> dict:
        check_constraints("ListMetrics", req)
        recent = req.get("RecentlyActive")
        if recent is not None and recent not in _RECENT:
            raise invalid(f"The value {recent} for parameter RecentlyActive is invalid.")
        since = clock.time() - (_RECENT[recent] if recent else LISTED_FOR)
        rows = await run_blocking(
            self.store.list_metrics,
            scope_of(ctx.account_id, ctx.region),
            req.get("Namespace"),
            req.get("MetricName"),
            since,
        )
        filters = req.get("Dimensions") or []
        if len(filters) > 10:
            raise invalid("The collection Dimensions must not have a size greater than 10.")
        found = []
        for namespace, name, key in rows:
            dims = dims_list(key)
            have = {d["Name"]: d["Value"] for d in dims}
            if all(f["Name"] in have and f.get("Value") in (None, have[f["Name"]]) for f in filters):
                found.append({"Namespace": namespace, "MetricName": name, "Dimensions": dims})
        offset = _offset(req.get("NextToken"), len(found))
        page = found[offset : offset + LIST_PAGE]
        out: dict = {"Metrics": page}
        if offset + LIST_PAGE < len(found):
            out["NextToken"] = base64.urlsafe_b64encode(str(offset + LIST_PAGE).encode()).decode()
        return out


def _offset(token: str | None, size: int) -> int:
    if not token:
        return 0
    try:
        offset = int(base64.urlsafe_b64decode(token.encode()).decode())
    except (ValueError, UnicodeDecodeError):
        offset = -1
    if not 0 < offset <= size:
        raise ServiceError(
            "InvalidNextToken", "The service couldn't process your request: the NextToken is invalid.", 400
        )
    return offset


def _default_label(q: dict) -> str:
    stat = q.get("MetricStat")
    return stat["Metric"]["MetricName"] if stat else q["Id"]
