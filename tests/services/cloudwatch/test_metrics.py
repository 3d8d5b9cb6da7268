"""Custom metrics through boto3: PutMetricData, then statistics, metric math and listings.

Every expected number is computed by hand from the values sent.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError


@pytest.fixture
def cw(strata_server):
    return strata_server.client("cloudwatch")


def _window(minutes: int = 10) -> dict:
    now = datetime.now(UTC)
    return {"StartTime": now - timedelta(minutes=minutes), "EndTime": now + timedelta(minutes=minutes)}


def _dims(unique: str) -> list[dict]:
    return [{"Name": "Service", "Value": f"svc-{unique}"}]


def test_statistics_of_values_counts_and_statistic_sets(cw, unique):
    ns, dims = f"Test/{unique}", _dims(unique)
    cw.put_metric_data(
        Namespace=ns,
        MetricData=[
            {
                "MetricName": "Latency",
                "Dimensions": dims,
                "Values": [1, 2, 3],
                "Counts": [1, 1, 2],
                "Unit": "Milliseconds",
            },
            {"MetricName": "Latency", "Dimensions": dims, "Value": 10, "Unit": "Milliseconds"},
            {
                "MetricName": "Latency",
                "Dimensions": dims,
                "StatisticValues": {"SampleCount": 4, "Sum": 8, "Minimum": 0.5, "Maximum": 4},
                "Unit": "Milliseconds",
            },
        ],
    )
    (point,) = cw.get_metric_statistics(
        Namespace=ns,
        MetricName="Latency",
        Dimensions=dims,
        Period=3600,
        Statistics=["SampleCount", "Sum", "Average", "Minimum", "Maximum"],
        **_window(),
    )["Datapoints"]
    # values 1, 2, 3, 3, 10 and a set of 4 samples summing to 8
    assert point["SampleCount"] == 9
    assert point["Sum"] == 1 + 2 + 3 * 2 + 10 + 8
    assert point["Average"] == pytest.approx(27 / 9)
    assert point["Minimum"] == 0.5 and point["Maximum"] == 10
    assert point["Unit"] == "Milliseconds"


def test_percentiles_of_raw_values(cw, unique):
    ns, dims = f"Test/{unique}", _dims(unique)
    cw.put_metric_data(
        Namespace=ns, MetricData=[{"MetricName": "Size", "Dimensions": dims, "Values": list(range(1, 101))}]
    )
    (point,) = cw.get_metric_statistics(
        Namespace=ns,
        MetricName="Size",
        Dimensions=dims,
        Period=3600,
        ExtendedStatistics=["p50", "p90", "p99.9"],
        **_window(),
    )["Datapoints"]
    assert point["ExtendedStatistics"] == {"p50": 50.0, "p90": 90.0, "p99.9": 100.0}


def test_dimensions_name_different_metrics_and_are_listed(cw, unique):
    ns = f"Test/{unique}"
    for value, n in (("a", 1.0), ("b", 5.0)):
        cw.put_metric_data(
            Namespace=ns,
            MetricData=[{"MetricName": "Hits", "Dimensions": [{"Name": "Host", "Value": value}], "Value": n}],
        )
    cw.put_metric_data(Namespace=ns, MetricData=[{"MetricName": "Other", "Value": 1}])
    stats = cw.get_metric_statistics(
        Namespace=ns,
        MetricName="Hits",
        Dimensions=[{"Name": "Host", "Value": "b"}],
        Period=3600,
        Statistics=["Sum"],
        **_window(),
    )
    assert [p["Sum"] for p in stats["Datapoints"]] == [5.0]
    listed = cw.list_metrics(Namespace=ns)["Metrics"]
    assert sorted((m["MetricName"], tuple(d["Value"] for d in m["Dimensions"])) for m in listed) == [
        ("Hits", ("a",)),
        ("Hits", ("b",)),
        ("Other", ()),
    ]
    only_b = cw.list_metrics(Namespace=ns, Dimensions=[{"Name": "Host", "Value": "b"}])["Metrics"]
    assert [m["Dimensions"] for m in only_b] == [[{"Name": "Host", "Value": "b"}]]
    with_host = cw.list_metrics(Namespace=ns, Dimensions=[{"Name": "Host"}])["Metrics"]
    assert len(with_host) == 2
    # the paginator (NextToken) walks the same listing
    pages = cw.get_paginator("list_metrics").paginate(Namespace=ns, MetricName="Hits")
    assert sum(len(p["Metrics"]) for p in pages) == 2


def test_metric_math_over_two_metrics(cw, unique):
    ns = f"Test/{unique}"
    cw.put_metric_data(
        Namespace=ns,
        MetricData=[{"MetricName": "Hits", "Values": [1, 1, 1]}, {"MetricName": "Misses", "Value": 1}],
    )

    def stat(qid: str, name: str) -> dict:
        metric = {"Namespace": ns, "MetricName": name}
        return {
            "Id": qid,
            "MetricStat": {"Metric": metric, "Period": 3600, "Stat": "Sum"},
            "ReturnData": False,
        }

    result = cw.get_metric_data(
        MetricDataQueries=[
            stat("h", "Hits"),
            stat("m", "Misses"),
            {"Id": "rate", "Expression": "100 * h / (h + m)", "Label": "HitRate"},
            {"Id": "total", "Expression": "SUM([h, m])"},
        ],
        **_window(),
    )["MetricDataResults"]
    by_id = {r["Id"]: r for r in result}
    assert set(by_id) == {"rate", "total"}
    assert by_id["rate"]["Values"] == [75.0] and by_id["rate"]["Label"] == "HitRate"
    assert by_id["total"]["Values"] == [4.0]
    assert by_id["rate"]["StatusCode"] == "Complete"


def test_search_expressions_find_metrics_by_schema_and_terms(cw, unique):
    ns = f"Search/{unique}"
    data = [
        {"MetricName": "Hits", "Dimensions": [{"Name": "Host", "Value": "web-a"}], "Value": 1},
        {"MetricName": "Hits", "Dimensions": [{"Name": "Host", "Value": "web-b"}], "Value": 2},
        {
            "MetricName": "Hits",
            "Dimensions": [{"Name": "Host", "Value": "db-c"}, {"Name": "Az", "Value": "a"}],
            "Value": 4,
        },
        {"MetricName": "Misses", "Dimensions": [{"Name": "Host", "Value": "web-a"}], "Value": 8},
    ]
    cw.put_metric_data(Namespace=ns, MetricData=data)

    def run(expression: str) -> dict[str, list[float]]:
        results = cw.get_metric_data(MetricDataQueries=[{"Id": "s", "Expression": expression}], **_window())
        return {r["Label"]: r["Values"] for r in results["MetricDataResults"]}

    schema = f"{{{ns},Host}}"
    assert run(f"SEARCH('{schema} MetricName=\"Hits\"', 'Sum', 3600)") == {
        "web-a Hits": [1.0],
        "web-b Hits": [2.0],
    }
    assert run(f"SEARCH('{schema} web-b', 'Sum', 3600)") == {"web-b Hits": [2.0]}
    assert run(f"SEARCH('{ns} Hits', 'Sum', 3600)") == {
        "web-a Hits": [1.0],
        "web-b Hits": [2.0],
        "a db-c Hits": [4.0],
    }
    assert run(f"SUM(SEARCH('{schema} MetricName=\"Hits\"', 'Sum', 3600))") == {"s": [3.0]}
    with pytest.raises(ClientError) as e:
        run(f"SEARCH('{schema} web-a OR web-b', 'Sum', 3600)")
    assert e.value.response["Error"]["Code"] == "ValidationError"


def test_get_metric_data_pages_by_max_datapoints(cw, unique):
    ns = f"Test/{unique}"
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    cw.put_metric_data(
        Namespace=ns,
        MetricData=[
            {"MetricName": "P", "Value": float(i), "Timestamp": now - timedelta(minutes=i)} for i in range(3)
        ],
    )
    query = {
        "Id": "p",
        "MetricStat": {"Metric": {"Namespace": ns, "MetricName": "P"}, "Period": 60, "Stat": "Sum"},
    }
    window = {"StartTime": now - timedelta(minutes=10), "EndTime": now + timedelta(minutes=1)}
    first = cw.get_metric_data(
        MetricDataQueries=[query], MaxDatapoints=2, ScanBy="TimestampAscending", **window
    )
    (result,) = first["MetricDataResults"]
    assert result["Values"] == [2.0, 1.0] and result["StatusCode"] == "PartialData" and first["NextToken"]
    second = cw.get_metric_data(
        MetricDataQueries=[query],
        MaxDatapoints=2,
        ScanBy="TimestampAscending",
        NextToken=first["NextToken"],
        **window,
    )
    assert second["MetricDataResults"][0]["Values"] == [0.0] and "NextToken" not in second
    pages = cw.get_paginator("get_metric_data").paginate(MetricDataQueries=[query], MaxDatapoints=1, **window)
    assert [v for page in pages for v in page["MetricDataResults"][0]["Values"]] == [0.0, 1.0, 2.0]


def test_high_resolution_data_answers_one_second_periods(cw, unique):
    ns = f"Test/{unique}"
    at = datetime.now(UTC).replace(microsecond=0)
    cw.put_metric_data(
        Namespace=ns,
        MetricData=[
            {"MetricName": "Q", "Value": 1, "Timestamp": at, "StorageResolution": 1},
            {"MetricName": "Q", "Value": 2, "Timestamp": at + timedelta(seconds=1), "StorageResolution": 1},
        ],
    )
    points = cw.get_metric_statistics(
        Namespace=ns,
        MetricName="Q",
        Period=1,
        Statistics=["Sum"],
        StartTime=at - timedelta(seconds=5),
        EndTime=at + timedelta(seconds=5),
    )["Datapoints"]
    assert sorted((p["Timestamp"].timestamp() - at.timestamp(), p["Sum"]) for p in points) == [
        (0, 1.0),
        (1, 2.0),
    ]


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (
            lambda cw: cw.put_metric_data(Namespace="AWS/EC2", MetricData=[{"MetricName": "m", "Value": 1}]),
            "InvalidParameterValue",
        ),
        (
            lambda cw: cw.put_metric_data(
                Namespace="T",
                MetricData=[
                    {
                        "MetricName": "m",
                        "Value": 1,
                        "StatisticValues": {"SampleCount": 1, "Sum": 1, "Minimum": 1, "Maximum": 1},
                    }
                ],
            ),
            "InvalidParameterCombination",
        ),
        (
            lambda cw: cw.put_metric_data(
                Namespace="T",
                MetricData=[
                    {"MetricName": "m", "Value": 1, "Timestamp": datetime.now(UTC) - timedelta(days=15)}
                ],
            ),
            "InvalidParameterValue",
        ),
        (
            lambda cw: cw.get_metric_statistics(
                Namespace="T", MetricName="m", Period=61, Statistics=["Sum"], **_window()
            ),
            "InvalidParameterValue",
        ),
        (
            lambda cw: cw.get_metric_statistics(
                Namespace="T",
                MetricName="m",
                Period=60,
                Statistics=["Sum"],
                ExtendedStatistics=["p50"],
                **_window(),
            ),
            "InvalidParameterCombination",
        ),
        (
            lambda cw: cw.get_metric_statistics(
                Namespace="T",
                MetricName="m",
                Period=60,
                Statistics=["Sum"],
                StartTime=datetime.now(UTC) - timedelta(days=2),
                EndTime=datetime.now(UTC),
            ),
            "InvalidParameterCombination",  # 2,880 datapoints > 1,440
        ),
        (
            lambda cw: cw.get_metric_data(
                MetricDataQueries=[{"Id": "e", "Expression": "nothere * 2"}], **_window()
            ),
            "ValidationError",
        ),
        (
            lambda cw: cw.get_metric_data(
                MetricDataQueries=[{"Id": "Upper", "Expression": "1"}], **_window()
            ),
            "ValidationError",
        ),
        (
            lambda cw: cw.put_metric_data(Namespace="T", MetricData=[{"MetricName": "m" * 300, "Value": 1}]),
            "ValidationError",  # longer than the model's 255
        ),
    ],
)
def test_bad_requests_get_cloudwatch_errors(cw, call, code):
    with pytest.raises(ClientError) as e:
        call(cw)
    assert e.value.response["Error"]["Code"] == code
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_acknowledged_metric_data_survives_kill(strata_factory, unique):
    server = strata_factory()
    cw = server.client("cloudwatch")
    window = _window(30)
    cw.put_metric_data(Namespace="Durable", MetricData=[{"MetricName": "m", "Values": [2, 4]}])
    server.kill()
    server.start()
    cw = server.client("cloudwatch")
    (point,) = cw.get_metric_statistics(
        Namespace="Durable", MetricName="m", Period=3600, Statistics=["Sum", "SampleCount"], **window
    )["Datapoints"]
    assert (point["Sum"], point["SampleCount"]) == (6.0, 2.0)
