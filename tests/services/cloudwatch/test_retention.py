"""Retention and resolution as CloudWatch documents them, on the simulated clock: high-resolution
data is answered per second for 3 hours, then as 1-minute data (15 days), 5-minute data (63 days),
1-hour data (455 days), and is gone after that."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def _points(cw, ns: str, start: datetime, seconds: int, period: int) -> list[tuple[float, float, float]]:  # noqa: ANN001
    points = cw.get_metric_statistics(
        Namespace=ns,
        MetricName="Q",
        Period=period,
        Statistics=["Sum", "SampleCount"],
        StartTime=start,
        EndTime=start + timedelta(seconds=seconds),
    )["Datapoints"]
    return sorted(
        (p["Timestamp"].timestamp() - start.timestamp(), p["Sum"], p["SampleCount"]) for p in points
    )


def test_data_is_rolled_up_as_it_ages_and_dropped_after_455_days(strata_factory, unique) -> None:  # noqa: ANN001
    server = strata_factory()
    cw = server.client("cloudwatch")
    ns = f"Test/{unique}"
    now = datetime.fromisoformat(server.admin("/_strata/clock")["now"])
    hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    at = hour + timedelta(minutes=7, seconds=5)  # at most 53 minutes ago, at most 7 minutes ahead
    minute = at.replace(second=0)
    cw.put_metric_data(
        Namespace=ns,
        MetricData=[
            {"MetricName": "Q", "Value": v, "Timestamp": at + timedelta(seconds=i), "StorageResolution": 1}
            for i, v in enumerate((1.0, 2.0, 3.0))
        ],
    )
    assert _points(cw, ns, minute, 60, 1) == [(5, 1, 1), (6, 2, 1), (7, 3, 1)]

    server.advance_clock("4h")  # past 3 hours: one 1-minute datapoint
    assert _points(cw, ns, minute, 60, 1) == [(0, 6, 3)]

    server.advance_clock("16d")  # past 15 days: one 5-minute datapoint
    five = minute.replace(minute=minute.minute // 5 * 5)
    assert _points(cw, ns, five, 300, 60) == [(0, 6, 3)]

    server.advance_clock("64d")  # past 63 days: one 1-hour datapoint
    assert _points(cw, ns, hour, 3600, 60) == [(0, 6, 3)]

    server.advance_clock("376d")  # past 455 days: gone
    assert _points(cw, ns, hour, 3600, 3600) == []
