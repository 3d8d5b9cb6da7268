"""CloudWatch is regional: metrics and alarms live in one account and one region, the metrics
Strata publishes land in the region (and account) of the resource they measure, and a metric
store from before regions keeps its data in the default region."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

from tests.services.cloudwatch.helpers import metric_total
from tests.strata_process import StrataProcess

WEST = "us-west-2"

# the store's tables as they were before regions (keyed by account only)
_OLD_SCHEMA = """
CREATE TABLE metrics (id INTEGER PRIMARY KEY, account TEXT NOT NULL, namespace TEXT NOT NULL,
    name TEXT NOT NULL, dims TEXT NOT NULL, last_at REAL NOT NULL,
    UNIQUE (account, namespace, name, dims));
CREATE TABLE datapoints (metric INTEGER NOT NULL, width INTEGER NOT NULL, t INTEGER NOT NULL,
    unit TEXT NOT NULL, sum REAL NOT NULL, n REAL NOT NULL, lo REAL NOT NULL, hi REAL NOT NULL,
    vals TEXT, PRIMARY KEY (metric, t, width, unit)) WITHOUT ROWID;
CREATE TABLE alarms (account TEXT NOT NULL, name TEXT NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (account, name));
CREATE TABLE alarm_history (id INTEGER PRIMARY KEY, account TEXT NOT NULL, name TEXT NOT NULL,
    at REAL NOT NULL, kind TEXT NOT NULL, summary TEXT NOT NULL, data TEXT NOT NULL);
CREATE INDEX alarm_history_name ON alarm_history(account, name, at);
"""


def test_metrics_and_alarms_are_per_region(strata_factory, unique) -> None:  # noqa: ANN001
    server: StrataProcess = strata_factory()
    east = {s: server.client(s) for s in ("dynamodb", "cloudwatch")}
    west = {s: server.client(s, region=WEST) for s in ("dynamodb", "cloudwatch")}
    table = f"same-{unique}"  # one name, a table in each region
    for n, clients in ((3, east), (1, west)):
        clients["dynamodb"].create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        for i in range(n):
            clients["dynamodb"].put_item(TableName=table, Item={"pk": {"S": str(i)}})
        clients["dynamodb"].get_item(TableName=table, Key={"pk": {"S": "none"}})
    west["cloudwatch"].put_metric_data(Namespace="App", MetricData=[{"MetricName": "Orders", "Value": 5.0}])
    west["cloudwatch"].put_metric_alarm(
        AlarmName=f"orders-{unique}",
        Namespace="App",
        MetricName="Orders",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanThreshold",
        TreatMissingData="ignore",
    )
    server.advance_clock("2m")

    dims = {"TableName": table}
    assert metric_total(east["cloudwatch"], "AWS/DynamoDB", "ConsumedWriteCapacityUnits", dims) == 3
    assert metric_total(west["cloudwatch"], "AWS/DynamoDB", "ConsumedWriteCapacityUnits", dims) == 1
    latency = {"TableName": table, "Operation": "GetItem"}
    for clients in (east, west):  # the gateway's per-request figures, in each table's region
        got = metric_total(
            clients["cloudwatch"], "AWS/DynamoDB", "SuccessfulRequestLatency", latency, "SampleCount"
        )
        assert got == 1
    assert [m["MetricName"] for m in west["cloudwatch"].list_metrics(Namespace="App")["Metrics"]] == [
        "Orders"
    ]
    assert east["cloudwatch"].list_metrics(Namespace="App")["Metrics"] == []
    alarms = west["cloudwatch"].describe_alarms(AlarmNames=[f"orders-{unique}"])["MetricAlarms"]
    assert alarms[0]["StateValue"] == "ALARM"  # evaluated on the west's own metric
    assert east["cloudwatch"].describe_alarms(AlarmNames=[f"orders-{unique}"])["MetricAlarms"] == []


def test_a_store_from_before_regions_is_the_default_regions(tmp_path) -> None:  # noqa: ANN001
    data = tmp_path / "data"
    (data / "cloudwatch").mkdir(parents=True)
    db = sqlite3.connect(data / "cloudwatch" / "metrics.db")
    db.executescript(_OLD_SCHEMA)
    now = int(datetime.now(UTC).timestamp()) // 60 * 60
    db.execute(
        "INSERT INTO metrics(id, account, namespace, name, dims, last_at) VALUES (1,?,?,?,?,?)",
        ("000000000000", "Old", "Kept", "[]", now),
    )
    db.execute("INSERT INTO datapoints VALUES (1, 60, ?, 'Count', 7, 1, 7, 7, NULL)", (now,))
    db.commit()
    db.close()
    server = StrataProcess(data).start()
    try:
        east, west = server.client("cloudwatch"), server.client("cloudwatch", region=WEST)
        assert [m["MetricName"] for m in east.list_metrics(Namespace="Old")["Metrics"]] == ["Kept"]
        assert metric_total(east, "Old", "Kept", {}) == 7
        assert west.list_metrics(Namespace="Old")["Metrics"] == []
    finally:
        server.stop()
