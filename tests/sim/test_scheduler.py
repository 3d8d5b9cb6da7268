"""The scheduler of time-driven rules, in process with a clock of its own (a settable wall)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from strata.sim.clock import Clock
from strata.sim.scheduler import Scheduler

DAY = 86400.0


def make(tmp_path: Path, wall: list[float]) -> tuple[Clock, Scheduler]:
    clock = Clock(tmp_path / "clock.json", wall=lambda: wall[0])
    scheduler = Scheduler(clock)
    scheduler.use_state_file(tmp_path / "scheduler.json")
    return clock, scheduler


def test_rules_catch_up_to_the_clock_once_and_resume_from_their_progress(tmp_path: Path) -> None:
    wall = [1_000_000 * DAY + 3600]
    clock, scheduler = make(tmp_path, wall)
    runs: list[tuple[float, float]] = []

    async def rule(since: float, until: float) -> dict[str, int]:
        runs.append((since, until))
        return {"done": 1, "nothing": 0}

    async def go() -> None:
        scheduler.register("r", rule)
        assert await scheduler.catch_up() == {"r": {"done": 1}}  # a new rule's first second
        runs.clear()
        clock.advance(30 * DAY)
        assert await scheduler.catch_up() == {"r": {"done": 1}}  # counts of zero are left out
        assert await scheduler.catch_up() == {}  # caught up already: not run again

    asyncio.run(go())
    assert runs == [(wall[0], wall[0] + 30 * DAY)]
    # A new process (same state file) starts the rule where it got to.
    clock2, again = make(tmp_path, wall)
    again.register("r", rule)
    clock2.advance(DAY)
    asyncio.run(again.catch_up())
    assert runs[-1] == (wall[0] + 30 * DAY, wall[0] + 31 * DAY)


def test_a_failing_rule_is_reported_and_retried_while_the_others_run(tmp_path: Path) -> None:
    wall = [1_000_000 * DAY]
    clock, scheduler = make(tmp_path, wall)
    fail = [True]
    seen: list[str] = []

    async def flaky(since: float, until: float) -> dict[str, int]:
        if fail[0]:
            raise RuntimeError("disk on fire")
        seen.append("flaky")
        return {"ok": 1}

    async def steady(since: float, until: float) -> dict[str, int]:
        seen.append("steady")
        return {"ok": 1}

    async def go() -> None:
        scheduler.register("flaky", flaky)
        scheduler.register("steady", steady)
        clock.advance(60)
        assert await scheduler.catch_up() == {"flaky": {"error": 1}, "steady": {"ok": 1}}
        assert "RuntimeError: disk on fire" in scheduler.status()["flaky"]["error"]
        fail[0] = False
        assert await scheduler.catch_up() == {"flaky": {"ok": 1}}  # its span again, at once

    asyncio.run(go())
    assert seen == ["steady", "flaky"]


def test_real_time_crossing_a_boundary_runs_only_the_rules_due(tmp_path: Path) -> None:
    wall = [1_000_000 * DAY - 5]  # five seconds before a midnight UTC
    clock, scheduler = make(tmp_path, wall)
    runs: list[str] = []

    async def daily(since: float, until: float) -> dict[str, int]:
        runs.append("daily")
        return {}

    async def weekly(since: float, until: float) -> dict[str, int]:
        runs.append("weekly")
        return {}

    async def go() -> None:
        scheduler.register("daily", daily, every=DAY)
        scheduler.register("weekly", weekly, every=7 * DAY)
        scheduler.start()
        for _ in range(200):  # the start-up run: each rule's first covers the last second
            if len(runs) == 2:
                break
            await asyncio.sleep(0.05)
        assert sorted(runs) == ["daily", "weekly"]
        for _ in range(40):  # and nothing more while real time stays before midnight
            await asyncio.sleep(0.05)
        runs.clear()
        wall[0] += 10  # real time passes midnight
        for _ in range(200):
            if runs:
                break
            await asyncio.sleep(0.05)
        await scheduler.stop()

    asyncio.run(go())
    assert runs == ["daily"]
    assert clock.offset == 0


def test_rules_kept_in_a_shared_file_go_on_from_there_in_another_process(tmp_path: Path) -> None:
    """The engine host's rules (strata.gateway.services.host_engines): a new host, with a state
    file of its own, starts them where the last host got to, not from the takeover's time."""
    wall = [1_000_000 * DAY]
    shared = tmp_path / "shared.json"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    clock, first = make(tmp_path / "a", wall)
    runs: list[tuple[float, float]] = []

    async def rule(since: float, until: float) -> dict[str, int]:
        runs.append((since, until))
        return {"done": 1}

    async def own(since: float, until: float) -> dict[str, int]:
        return {}

    async def go(scheduler: Scheduler) -> None:
        await scheduler.catch_up()

    first.adopt_progress(shared)  # nothing there yet
    first.register("engine", rule)
    first.register("own", own)
    first.keep_progress({"engine"}, shared)
    clock.advance(DAY)
    asyncio.run(go(first))
    assert runs[-1][1] == wall[0] + DAY
    assert set(json.loads(shared.read_text())["caught_up"]) == {"engine"}

    clock2, second = make(tmp_path / "b", wall)  # another gateway, its clock moved on meanwhile
    clock2.advance(3 * DAY)
    second.adopt_progress(shared)
    second.register("engine", rule)
    asyncio.run(go(second))
    assert runs[-1] == (wall[0] + DAY, wall[0] + 3 * DAY)
