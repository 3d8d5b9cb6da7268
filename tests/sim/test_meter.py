"""The meter tallies alike events into one row per second, and keeps every quantity exact."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from strata.sim import meter as meter_module
from strata.sim.clock import Clock
from strata.sim.meter import Meter


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The meter's clock reads this settable wall time."""
    now = [1_800_000_000.25]
    monkeypatch.setattr(meter_module, "clock", Clock(wall=lambda: now[0]))
    return now


def test_alike_events_in_one_second_are_one_row(tmp_path: Path, wall: list[float]) -> None:
    m = Meter(tmp_path / "meter.db")
    for _ in range(1000):
        m.record("dynamodb", "ReadCapacityUnits", 0.5, "RCU", table="orders", billing_mode="PAY_PER_REQUEST")
    m.record("dynamodb", "ReadCapacityUnits", 1, "RCU", table="users", billing_mode="PAY_PER_REQUEST")
    wall[0] += 1
    m.record("dynamodb", "ReadCapacityUnits", 0.5, "RCU", table="orders", billing_mode="PAY_PER_REQUEST")
    events = m.events("dynamodb")
    assert [(e.dims["table"], e.quantity, e.count) for e in events] == [
        ("orders", 500.0, 1000),
        ("users", 1.0, 1),
        ("orders", 0.5, 1),
    ]
    assert events[0].at == 1_800_000_000.25 and events[2].at == 1_800_000_001.25
    m.close()


def test_tally_is_written_when_it_grows_and_survives_reopening(tmp_path: Path, wall: list[float]) -> None:
    m = Meter(tmp_path / "meter.db", flush_every=8)
    for i in range(20):  # 20 distinct rows: written in the background every 8
        m.record("s3", "PutObject", 1, "request", bucket=f"b{i}")
    m.record("s3", "GetObject", 1, "request", tags=["unhashable"])
    m.record("s3", "GetObject", 1, "request", tags=["unhashable"])
    m.close()
    again = Meter(tmp_path / "meter.db")
    events = again.events("s3")
    assert sorted(e.dims["bucket"] for e in events if e.event == "PutObject") == sorted(
        f"b{i}" for i in range(20)
    )
    assert [(e.quantity, e.count) for e in events if e.event == "GetObject"] == [(1.0, 1), (1.0, 1)]
    again.close()


def test_a_meter_database_from_before_tallies_opens(tmp_path: Path, wall: list[float]) -> None:
    db = sqlite3.connect(tmp_path / "meter.db")
    db.execute(
        "CREATE TABLE meter_events (id INTEGER PRIMARY KEY, at REAL NOT NULL, service TEXT NOT NULL, "
        "event TEXT NOT NULL, quantity REAL NOT NULL, unit TEXT NOT NULL, dims TEXT NOT NULL)"
    )
    db.execute(
        "INSERT INTO meter_events(at, service, event, quantity, unit, dims) VALUES (1, 'rds', 'InstanceHours', 2, 'hour', '{}')"
    )
    db.commit()
    db.close()
    m = Meter(tmp_path / "meter.db")
    m.record("rds", "InstanceHours", 3, "hour")
    assert [(e.quantity, e.count) for e in m.events("rds")] == [(2.0, 1), (3.0, 1)]
    m.close()
