"""The bill of a real workload over simulated time, against prices computed by hand from the
public price list (strata/sim/prices.json), through the admin API and `strata bill`."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import datetime, timedelta
from urllib.parse import quote
from xml.etree import ElementTree

import pytest
from botocore.exceptions import ClientError

from tests.services.elasticache.conftest import node_endpoints

GB = 2**30
MIB = 2**20


def _lines(doc: dict, service: str) -> dict[str, dict]:
    return {line["usage_type"]: line for line in doc["services"][service]["lines"]}


def test_a_month_of_s3_dynamodb_and_elasticache_is_priced_like_aws(strata_factory, unique, tmp_path):
    server = strata_factory()
    s3, ddb, ec = server.client("s3"), server.client("dynamodb"), server.client("elasticache")
    bucket, table, cache = f"bill-{unique}", f"bill-{unique}", f"bill-{unique}"
    start = server.admin("/_strata/clock")["now"]
    s3.create_bucket(Bucket=bucket)
    for i in range(3):
        s3.put_object(Bucket=bucket, Key=f"k{i}", Body=b"x" * MIB)
    for i in range(2):
        assert len(s3.get_object(Bucket=bucket, Key=f"k{i}")["Body"].read()) == MIB
    s3.delete_object(Bucket=bucket, Key="nothing")  # DELETE requests are free
    ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for i in range(10):
        ddb.put_item(TableName=table, Item={"pk": {"S": str(i)}})
    for i in range(4):
        ddb.get_item(TableName=table, Key={"pk": {"S": str(i)}})
    ec.create_cache_cluster(
        CacheClusterId=cache, Engine="redis", CacheNodeType="cache.t3.micro", NumCacheNodes=1
    )
    node_endpoints(ec, cache)  # waits until available
    server.advance_clock("30d")
    doc = server.admin("/_strata/bill?from=2000-01-01")

    s3_lines = _lines(doc, "s3")
    hours = 30 * 24
    storage = s3_lines["TimedStorage-ByteHrs"]
    # three 1 MiB objects for 30 days (less the seconds between the PUTs and the advance)
    assert storage["quantity"] == pytest.approx(3 * MIB / GB * hours / 730, rel=1e-3)
    assert storage["cost"] == pytest.approx(storage["quantity"] * 0.023, rel=1e-9)
    assert s3_lines["Requests-Tier1"]["quantity"] == 4  # CreateBucket and three PutObject
    assert s3_lines["Requests-Tier1"]["cost"] == pytest.approx(4 * 0.005 / 1000)
    assert s3_lines["Requests-Tier2"]["quantity"] == 2  # two GetObject
    assert s3_lines["Requests-Tier2"]["cost"] == pytest.approx(2 * 0.0004 / 1000)
    assert s3_lines["DataTransfer-Out-Bytes"]["cost"] == pytest.approx(2 * MIB / GB * 0.09)

    ddb_lines = _lines(doc, "dynamodb")
    assert ddb_lines["WriteRequestUnits"]["quantity"] == 10
    assert ddb_lines["WriteRequestUnits"]["cost"] == pytest.approx(10 * 1.25 / 1e6)
    assert ddb_lines["ReadRequestUnits"]["quantity"] == 4 * 0.5  # eventually consistent reads
    assert ddb_lines["ReadRequestUnits"]["cost"] == pytest.approx(2 * 0.25 / 1e6)

    node = _lines(doc, "elasticache")["NodeUsage"]
    assert node["quantity"] == pytest.approx(hours, rel=1e-3)
    assert node["cost"] == pytest.approx(hours * 0.017, rel=1e-3)  # cache.t3.micro, $0.017/hour

    services = ("s3", "dynamodb", "elasticache")
    assert doc["total"] == pytest.approx(sum(doc["services"][s]["total"] for s in doc["services"]))
    assert all(doc["services"][s]["total"] > 0 for s in services)
    assert doc["services"]["s3"]["name"] == "Amazon Simple Storage Service"

    # a period before the workload costs nothing; by resource names the bucket and the table
    assert server.admin("/_strata/bill?from=2000-01-01&to=2000-02-01")["total"] == 0
    by_resource = server.admin(f"/_strata/bill?from={quote(start)}&by=resource")
    assert {line["resource"] for line in by_resource["services"]["dynamodb"]["lines"]} == {table}
    assert by_resource["total"] == pytest.approx(doc["total"], rel=1e-6)

    # Cost Explorer answers the same figures, per day and per service
    ce = server.client("ce")
    today = datetime.fromisoformat(server.admin("/_strata/clock")["now"]).date()
    period = {
        "Start": (today - timedelta(days=40)).isoformat(),
        "End": (today + timedelta(days=1)).isoformat(),
    }
    daily = ce.get_cost_and_usage(
        TimePeriod=period, Granularity="DAILY", Metrics=["UnblendedCost", "UsageQuantity"]
    )
    days = daily["ResultsByTime"]
    assert len(days) == 41 and days[-1]["Estimated"] is True
    assert sum(float(d["Total"]["UnblendedCost"]["Amount"]) for d in days) == pytest.approx(
        doc["total"], rel=1e-6
    )
    assert days[-1]["Total"]["UnblendedCost"]["Unit"] == "USD"
    monthly = ce.get_cost_and_usage(
        TimePeriod=period,
        Granularity="MONTHLY",
        Metrics=["BlendedCost"],
        GroupBy=[{"Type": "DIMENSION", "Key": "SERVICE"}],
    )
    per_service: dict[str, float] = {}
    for month in monthly["ResultsByTime"]:
        for group in month["Groups"]:
            per_service[group["Keys"][0]] = per_service.get(group["Keys"][0], 0.0) + float(
                group["Metrics"]["BlendedCost"]["Amount"]
            )
    assert per_service["Amazon ElastiCache"] == pytest.approx(node["cost"], rel=1e-6)
    assert sum(per_service.values()) == pytest.approx(doc["total"], rel=1e-6)
    with pytest.raises(ClientError) as e:
        ce.get_cost_and_usage(TimePeriod=period, Granularity="HOURLY", Metrics=["UnblendedCost"])
    assert e.value.response["Error"]["Code"] == "ValidationException"

    # the same bill from the command line, and after a restart
    cli = [sys.executable, "-m", "strata.cli", "bill", "--endpoint", server.endpoint, "--from", "2000-01-01"]
    as_json = json.loads(subprocess.run([*cli, "--json"], capture_output=True, check=True, text=True).stdout)
    assert as_json["total"] == pytest.approx(doc["total"], rel=1e-9)
    rows = list(
        csv.DictReader(
            io.StringIO(subprocess.run([*cli, "--csv"], capture_output=True, check=True, text=True).stdout)
        )
    )
    assert float(rows[-1]["cost"]) == pytest.approx(doc["total"], rel=1e-6)
    chart = tmp_path / "cost.svg"
    text = subprocess.run([*cli, "--chart", str(chart)], capture_output=True, check=True, text=True).stdout
    svg = ElementTree.parse(chart).getroot()
    lines = svg.findall("{http://www.w3.org/2000/svg}polyline")
    assert len(lines) == 3  # S3, DynamoDB, ElastiCache
    assert "Amazon ElastiCache: $" in "".join(svg.itertext())
    assert "Amazon ElastiCache" in text and "Total" in text
    server.restart()
    again = server.admin("/_strata/bill?from=2000-01-01")
    assert again["total"] == pytest.approx(doc["total"], rel=1e-3)


def test_bad_bill_periods_are_refused(strata_server):
    from urllib.error import HTTPError

    for query in ("from=2026-02-01&to=2026-01-01", "by=colour", "from=yesterday"):
        with pytest.raises(HTTPError) as e:
            strata_server.admin(f"/_strata/bill?{query}")
        assert e.value.code == 400


def test_seed_gp3_against_gp2_at_one_tebibyte_for_a_month(strata_factory):
    """The seed's cost tip: gp3's 3,000 IOPS are free where gp2 needs 1 TB to reach them."""
    server = strata_factory()
    ec2 = server.client("ec2")
    start = server.admin("/_strata/clock")["now"]
    gp3 = ec2.create_volume(
        AvailabilityZone="us-east-1a", Size=1000, VolumeType="gp3", Iops=4000, Throughput=250
    )
    gp2 = ec2.create_volume(AvailabilityZone="us-east-1a", Size=1000, VolumeType="gp2")
    server.advance_clock("730h")
    doc = server.admin(f"/_strata/bill?from={quote(start)}&by=resource")
    costs = {line["resource"]: line["cost"] for line in doc["services"]["ec2"]["lines"]}
    # 1,000 GB x $0.08 + 1,000 IOPS above 3,000 x $0.005 + 125 MB/s above 125 x $0.04
    assert costs[gp3["VolumeId"]] == pytest.approx(80 + 5 + 5, rel=1e-3)
    assert costs[gp2["VolumeId"]] == pytest.approx(1000 * 0.10, rel=1e-3)
    ec2.delete_volume(VolumeId=gp2["VolumeId"])
    server.advance_clock("730h")
    later = server.admin(f"/_strata/bill?from={quote(start)}&by=resource")
    after = {line["resource"]: line["cost"] for line in later["services"]["ec2"]["lines"]}
    assert after[gp2["VolumeId"]] == pytest.approx(costs[gp2["VolumeId"]], rel=1e-6)  # deleted: no more
    assert after[gp3["VolumeId"]] == pytest.approx(2 * 90, rel=1e-3)


def _storage_per_gb_month(server, start: str, end: str, stored_gb: float) -> float:
    """What a GB of the bucket cost per 730-hour month between two instants (storage lines only)."""
    doc = server.admin(f"/_strata/bill?from={quote(start)}&to={quote(end)}")
    cost = sum(
        line["cost"]
        for line in doc["services"]["s3"]["lines"]
        if line["usage_type"].startswith("TimedStorage")
    )
    hours = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds() / 3600
    return cost / stored_gb / (hours / 730)


def test_seed_50_tb_of_logs_under_lifecycle_reproduced_by_a_workload(strata_factory, unique):
    """The seed's figures for 50 TB of logs (~$1,150 a month in STANDARD, ~$180 once 30-day-old
    logs move to Glacier, ~$50 with Deep Archive after a year) from real objects and lifecycle
    transitions on the simulated clock, scaled to 50,000 GB (the seed's arithmetic)."""
    server = strata_factory()
    s3 = server.client("s3")
    bucket = f"logs-{unique}"
    s3.create_bucket(Bucket=bucket)
    for i in range(4):
        s3.put_object(Bucket=bucket, Key=f"logs/{i}.gz", Body=bytes(16 * MIB))
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "archive",
                    "Status": "Enabled",
                    "Filter": {"Prefix": "logs/"},
                    "Transitions": [
                        {"Days": 30, "StorageClass": "GLACIER"},
                        {"Days": 365, "StorageClass": "DEEP_ARCHIVE"},
                    ],
                }
            ]
        },
    )
    stored_gb = 4 * 16 * MIB / GB

    def now() -> str:
        return server.admin("/_strata/clock")["now"]

    def month(expected_class: str) -> float:
        heads = {
            s3.head_object(Bucket=bucket, Key=f"logs/{i}.gz").get("StorageClass", "STANDARD")
            for i in range(4)
        }
        assert heads == {expected_class}
        start = now()
        server.advance_clock("30d")
        return _storage_per_gb_month(server, start, now(), stored_gb) * 50_000

    # measured: $1,150.00, $180.91 (Glacier's 40 KiB per object of index and metadata), $50.16
    assert month("STANDARD") == pytest.approx(1150, rel=0.02)
    server.advance_clock("2d")  # past the 30th day's midnight: now in GLACIER
    assert month("GLACIER") == pytest.approx(180, rel=0.02)
    server.advance_clock("310d")  # past the first year
    assert month("DEEP_ARCHIVE") == pytest.approx(50, rel=0.02)


def test_seed_dynamodb_on_demand_against_provisioned_from_real_requests(strata_factory, unique):
    """The seed's example (100 strongly consistent reads/s of 8 KB items = 200 RCU, 50 writes/s of
    3 KB = 150 WCU) priced from real requests and a real provisioned table on the bill: on-demand
    costs ~5-7x provisioned at that steady rate (the seed's "~5-7x cheaper"). The break-even the
    same prices give is 52,000 such reads or 26,000 such writes an hour; the seed's "~65,000 reads/hr
    or ~20,000 writes/hr" does not follow from its own prices ($0.25 / $1.25 per million,
    $0.00013 / $0.00065 per unit-hour) for any item size, so this test holds the arithmetic."""
    server = strata_factory()
    ddb = server.client("dynamodb")
    schema = {
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
    }
    on_demand, provisioned = f"od-{unique}", f"pv-{unique}"
    ddb.create_table(TableName=on_demand, BillingMode="PAY_PER_REQUEST", **schema)
    ddb.create_table(
        TableName=provisioned,
        ProvisionedThroughput={"ReadCapacityUnits": 200, "WriteCapacityUnits": 150},
        **schema,
    )
    for i in range(10):  # 3 KB items: 3 write units each
        ddb.put_item(TableName=on_demand, Item={"pk": {"S": f"w{i}"}, "v": {"S": "x" * (3 * 1024 - 10)}})
    writes_cost = _lines(server.admin("/_strata/bill?from=2000-01-01"), "dynamodb")["WriteRequestUnits"]
    assert writes_cost["quantity"] == 30
    per_write = writes_cost["cost"] / 10
    ddb.put_item(TableName=on_demand, Item={"pk": {"S": "big"}, "v": {"S": "x" * (8 * 1024 - 10)}})
    for _ in range(10):  # 8 KB, strongly consistent: 2 read units each
        ddb.get_item(TableName=on_demand, Key={"pk": {"S": "big"}}, ConsistentRead=True)
    start = server.admin("/_strata/clock")["now"]
    server.advance_clock("1h")
    hours = (
        datetime.fromisoformat(server.admin("/_strata/clock")["now"]) - datetime.fromisoformat(start)
    ).total_seconds() / 3600
    lines = _lines(server.admin("/_strata/bill?from=2000-01-01"), "dynamodb")
    assert lines["ReadRequestUnits"]["quantity"] == 20
    per_read = lines["ReadRequestUnits"]["cost"] / 10
    read_hour = lines["ReadCapacityUnit-Hrs"]["cost"] / lines["ReadCapacityUnit-Hrs"]["quantity"] * 200
    write_hour = lines["WriteCapacityUnit-Hrs"]["cost"] / lines["WriteCapacityUnit-Hrs"]["quantity"] * 150
    assert lines["ReadCapacityUnit-Hrs"]["quantity"] == pytest.approx(200 * hours, rel=0.02)
    assert (read_hour, write_hour) == (pytest.approx(0.026), pytest.approx(0.0975))

    on_demand_hour = 100 * 3600 * per_read + 50 * 3600 * per_write
    assert on_demand_hour == pytest.approx(0.18 + 0.675)
    assert 5 <= on_demand_hour / (read_hour + write_hour) <= 7
    assert read_hour / per_read == pytest.approx(52_000)  # break-even, reads an hour
    assert write_hour / per_write == pytest.approx(26_000)  # break-even, writes an hour
