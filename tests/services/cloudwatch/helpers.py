"""What tests ask CloudWatch the way a user would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def metric_points(  # noqa: PLR0913 - GetMetricStatistics' own parameters
    cw,  # noqa: ANN001 - a boto3 CloudWatch client
    namespace: str,
    name: str,
    dims: dict,
    stats: list[str],
    period: int = 3600,
    offset: float = 0.0,
) -> list[dict]:
    """The metric's datapoints in the half-days around now (`offset`: seconds the simulated clock
    is ahead of the machine's)."""
    now = datetime.now(UTC) + timedelta(seconds=offset)
    return cw.get_metric_statistics(
        Namespace=namespace,
        MetricName=name,
        Dimensions=[{"Name": k, "Value": v} for k, v in dims.items()],
        StartTime=now - timedelta(hours=12),
        EndTime=now + timedelta(hours=12),
        Period=period,
        Statistics=stats,
    )["Datapoints"]


def metric_total(cw, namespace: str, name: str, dims: dict, stat: str = "Sum", offset: float = 0.0) -> float:  # noqa: ANN001
    """`stat` of the metric's datapoints around now, summed."""
    return sum(p[stat] for p in metric_points(cw, namespace, name, dims, [stat], offset=offset))
