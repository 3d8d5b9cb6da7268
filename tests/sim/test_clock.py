from __future__ import annotations

from pathlib import Path

import pytest

from strata.sim.clock import Clock, ClockStateError, parse_duration


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


def test_simulated_instants_map_back_to_real_ones_across_advances(tmp_path: Path) -> None:
    wall = [1_000_000.0]
    clock = Clock(tmp_path / "clock.json", wall=lambda: wall[0])
    before = clock.time()  # real 1,000,000
    wall[0] += 100
    clock.advance(86400)  # at real 1,000,100 the cloud jumps a day ahead
    wall[0] += 50
    after = clock.time()  # real 1,000,150
    assert clock.to_real(before) == 1_000_000
    assert clock.to_real(after) == 1_000_150
    assert clock.to_real(before + 100 + 3600) == 1_000_100  # skipped by the jump: the jump's moment
    assert clock.to_simulated(1_000_050) == 1_000_050
    assert clock.to_simulated(1_000_150) == after
    restored = Clock(tmp_path / "clock.json", wall=lambda: wall[0])
    assert restored.to_real(before) == 1_000_000 and restored.to_real(after) == 1_000_150


@pytest.mark.parametrize("step", [float("nan"), float("inf"), -1.0, 1e308, 10**400, True, "5"])
def test_bad_steps_are_refused_and_change_nothing(tmp_path: Path, step) -> None:
    state = tmp_path / "clock.json"
    clock = Clock(state)
    clock.advance(60)
    with pytest.raises(ValueError):
        clock.advance(step)
    assert clock.offset == 60
    assert Clock(state).offset == 60


@pytest.mark.parametrize(
    "content",
    [
        '{"offset_seconds": NaN}',
        '{"offset_seconds": Infinity}',
        '{"offset_seconds": -5}',
        '{"offset_seconds": 1e300}',
        '{"offset_seconds": 60, "history": [[0, NaN]]}',
        '{"offset_seconds": "x"}',
        "[]",
        "not json",
    ],
)
def test_an_unusable_state_file_is_refused_with_its_name(tmp_path: Path, content: str) -> None:
    state = tmp_path / "clock.json"
    state.write_text(content)
    with pytest.raises(ClockStateError, match="clock.json"):
        Clock(state)
