"""The daily windows backups and snapshots fall due in (strata.sim.windows)."""

from __future__ import annotations

from datetime import UTC, datetime

from strata.sim.windows import latest_window_start


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_the_latest_opening_at_or_before_an_instant() -> None:
    assert latest_window_start("03:00-03:30", at("2026-01-05T02:59:59")) == at("2026-01-04T03:00:00")
    assert latest_window_start("03:00-03:30", at("2026-01-05T03:00:00")) == at("2026-01-05T03:00:00")
    assert latest_window_start("23:45-00:15", at("2026-01-05T00:10:00")) == at("2026-01-04T23:45:00")
    # a jump of a year lands on the same opening as the same year in small steps
    assert latest_window_start("05:00-06:00", at("2027-01-05T12:00:00")) == at("2027-01-05T05:00:00")
