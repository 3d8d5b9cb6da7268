"""CloudWatch: metrics (custom and the ones Strata's services publish) and metric alarms.

Contents:
- `metric_ops`: PutMetricData, GetMetricStatistics, GetMetricData (metric math in `expressions`),
  ListMetrics; statistics and periods in `statistics`;
- `alarms`: PutMetricAlarm, DescribeAlarms(ForMetric), DeleteAlarms, SetAlarmState,
  DescribeAlarmHistory, and alarm evaluation as simulated time passes; `tags`: tags on alarms;
- `dashboards`: Put/Get/List/DeleteDashboards (bodies kept as given);
- `publish`: the AWS/* metrics gathered from the other services (their meter events, their state
  and their real engines), once a simulated minute;
- `store`: the durable metric store (statistic sets per bucket, rolled up as CloudWatch's
  retention says).

botocore 1.44's model lists smithy-rpc-v2-cbor, json and query; SDKs pick json (the first they
support), which is what Strata serves (`protocol/patches/cloudwatch.json`), with the query error
codes in `x-amzn-query-error` (`awsQueryCompatible`). Requests without `X-Amz-Target` (form-encoded
`Action=` calls of SDKs from before the move to JSON) are served by the query codec.

Scheduler rules: `cloudwatch.publish` every 60 s (gather and store the AWS/* metrics),
`cloudwatch.alarms` every 60 s (evaluate alarms, after publishing), `cloudwatch.rollup` hourly.
"""

from __future__ import annotations

from strata.services.base import ServiceRuntime, run_blocking
from strata.services.cloudwatch.alarms import AlarmOperations
from strata.services.cloudwatch.dashboards import DashboardOperations
from strata.services.cloudwatch.metric_ops import MetricOperations
from strata.services.cloudwatch.publish import Publisher
from strata.services.cloudwatch.store import MetricStore
from strata.services.cloudwatch.tags import TagOperations
from strata.services.parameters import refusing
from strata.sim.scheduler import scheduler

RULES = ("cloudwatch.publish", "cloudwatch.alarms", "cloudwatch.rollup")


@refusing("cloudwatch")
class CloudWatchProvider(MetricOperations, AlarmOperations, TagOperations, DashboardOperations):
    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        self.store = MetricStore(runtime.data_dir / "metrics.db", runtime.settings.region)
        self.publisher = Publisher(self.store, runtime)

    async def start(self) -> None:
        # Registered in this order, so each run publishes before the alarms look at the data.
        scheduler.register("cloudwatch.publish", self.publisher.run, every=60.0)
        scheduler.register("cloudwatch.alarms", self._evaluate_alarms, every=60.0)
        scheduler.register("cloudwatch.rollup", self._roll_up, every=3600.0)

    async def stop(self) -> None:
        for name in RULES:
            scheduler.unregister(name)
        await self.publisher.close()
        self.store.close()

    async def _roll_up(self, since: float, until: float) -> dict[str, int]:
        return {"rolled_up": await run_blocking(self.store.roll_up, until)}
