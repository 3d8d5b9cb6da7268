from __future__ import annotations

from pathlib import Path

import pytest

from strata.sim.clock import Clock, parse_duration


def test_parse_duration_units() -> None:
    assert parse_duration("30d") == 30 * 86400
    assert parse_duration("12h") == 12 * 3600
    assert parse_duration("90m") == 5400
    assert parse_duration("45") == 45
    with pytest.raises(ValueError):
        parse_duration("soon")


def test_clock_advances_persists_and_notifies(tmp_path: Path) -> None:
    state = tmp_path / "clock.json"
    clock = Clock(state)
    seen = []
    clock.on_advance(seen.append)
    t0 = clock.time()
    clock.advance(90 * 86400)
    assert clock.time() - t0 >= 90 * 86400
    assert len(seen) == 1
    assert Clock(state).offset == 90 * 86400
    with pytest.raises(ValueError):
        clock.advance(-1)
