"""The price table against the course seed's worked figures, and against every event the meter
records. Quantities are what the meter records for the usage (byte-hours, request units); the
seed counts a TB as 1,000 GB (50 TB x $0.023 = $1,150)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from strata.services.s3.names import ARCHIVE_OVERHEAD, MIN_BILLABLE_SIZE
from strata.sim import pricing
from strata.sim.meter import MeterEvent

GB = 2**30
TB = 1000 * GB
MONTH = 730  # hours


def _cost(service: str, event: str, quantity: float, unit: str, **dims: object) -> float:
    item = pricing.price_event(MeterEvent(0.0, service, event, quantity, unit, dims))
    assert item is not None and not item.usage_type.startswith("unpriced"), item
    return item.cost


def _s3_month(storage_class: str, size: float) -> float:
    return _cost("s3", f"TimedStorage-{storage_class}", size * MONTH, "byte-hour", bucket="logs")


@pytest.mark.parametrize(
    ("storage_class", "seed_figure"),
    [("STANDARD", 1150.0), ("GLACIER", 180.0), ("DEEP_ARCHIVE", 50.0)],
)
def test_seed_50_tb_of_logs_for_a_month(storage_class: str, seed_figure: float) -> None:
    assert _s3_month(storage_class, 50 * TB) == pytest.approx(seed_figure, rel=0.02)


def test_seed_100_tb_all_standard() -> None:
    assert _s3_month("STANDARD", 100 * TB) == pytest.approx(2300.0, rel=0.02)


def test_seed_per_gb_prices_of_every_s3_class() -> None:
    seed = {
        "STANDARD": 0.023,
        "STANDARD_IA": 0.0125,
        "ONEZONE_IA": 0.01,
        "GLACIER_IR": 0.004,
        "GLACIER": 0.0036,
        "DEEP_ARCHIVE": 0.00099,
    }
    for storage_class, per_gb in seed.items():
        assert _s3_month(storage_class, GB) == pytest.approx(per_gb), storage_class


def test_seed_dynamodb_on_demand_per_million_requests() -> None:
    on_demand = {"billing_mode": "PAY_PER_REQUEST", "table": "t"}
    assert _cost("dynamodb", "ReadCapacityUnits", 1e6, "RCU", **on_demand) == pytest.approx(0.25)
    assert _cost("dynamodb", "WriteCapacityUnits", 1e6, "WCU", **on_demand) == pytest.approx(1.25)
    # provisioned tables pay for capacity-hours, not for what they consume
    event = MeterEvent(0.0, "dynamodb", "ReadCapacityUnits", 1e6, "RCU", {"billing_mode": "PROVISIONED"})
    assert pricing.price_event(event) is None


def test_seed_efs_standard_against_infrequent_access() -> None:
    standard = _cost("efs", "TimedStorage-ByteHrs", 100 * GB * MONTH, "byte-hours", storage_class="Standard")
    ia = _cost("efs", "TimedStorage-ByteHrs", 100 * GB * MONTH, "byte-hours", storage_class="IA")
    access = _cost("efs", "IADataAccess-Bytes", 100 * GB, "bytes")
    assert (standard, ia, access) == (pytest.approx(30.0), pytest.approx(1.6), pytest.approx(1.0))


def test_seed_aurora_and_instance_hours() -> None:
    hours = {"instance": "db", "engine": "postgres", "instance_class": "db.t3.micro"}
    assert _cost("rds", "InstanceHours", MONTH, "hour", **hours) == pytest.approx(0.018 * MONTH)
    valkey = _cost("elasticache", "NodeHours", 1, "hour", node_type="cache.t3.micro", engine="valkey")
    assert valkey == pytest.approx(0.017 * 0.8)  # Valkey nodes are 20% below Redis OSS


def test_s3_minimum_sizes_are_the_meters_and_the_requests_tiers() -> None:
    # the meter applies the minimums; the table must price every class they name
    for storage_class in {*MIN_BILLABLE_SIZE, *ARCHIVE_OVERHEAD}:
        assert _s3_month(storage_class, GB) > 0
    assert _cost("s3", "PutObject", 1000, "request", bucket="b") == pytest.approx(0.005)
    assert _cost("s3", "GetObject", 1000, "request", bucket="b") == pytest.approx(0.0004)
    assert _cost("s3", "HeadObject", 1000, "request", bucket="b") == pytest.approx(0.0004)
    assert pricing.price_event(MeterEvent(0.0, "s3", "DeleteObject", 1000, "request", {})) is None


# dimensions a price depends on, as the services record them
TYPICAL_DIMS = {
    "billing_mode": "PAY_PER_REQUEST",
    "engine": "postgres",
    "instance_class": "db.t3.micro",
    "storage_type": "gp2",
    "node_type": "cache.t3.micro",
    "storage_class": "Standard",
    "table_class": "STANDARD",
}
_RECORD = re.compile(r'meter\.record\(\s*"(\w+)",\s*"([\w-]+)",\s*[^,]+,\s*"([\w-]+)"', re.S)


def test_every_literal_event_the_meter_records_is_priced_or_known_free() -> None:
    root = Path(pricing.__file__).parents[1]
    found = set()
    for path in root.rglob("*.py"):
        for service, event, unit in _RECORD.findall(path.read_text()):
            found.add((service, event, unit))
    assert len(found) > 10
    for service, event, unit in sorted(found):
        e = MeterEvent(0.0, service, event, 1.0, unit, TYPICAL_DIMS)
        item = pricing.price_event(e)
        assert item is None or not item.usage_type.startswith("unpriced"), (service, event, unit)


def test_serverless_cache_usage_is_priced_per_engine() -> None:
    """ElastiCache Serverless (us-east-1): $0.125/GB-hour and $0.0034 per million ECPUs for Redis
    OSS and Memcached; Valkey $0.084 and $0.0023."""
    assert _cost("elasticache", "ServerlessStorageGBHours", 10, "GB-hour", engine="redis") == pytest.approx(
        1.25
    )
    assert _cost("elasticache", "ServerlessStorageGBHours", 10, "GB-hour", engine="valkey") == pytest.approx(
        0.84, abs=0.001
    )
    assert _cost("elasticache", "ServerlessECPUs", 1e6, "ECPU", engine="memcached") == pytest.approx(0.0034)
    assert _cost("elasticache", "ServerlessECPUs", 1e6, "ECPU", engine="valkey") == pytest.approx(
        0.0023, abs=1e-6
    )
