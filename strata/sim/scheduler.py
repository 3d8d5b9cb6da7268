"""The one scheduler of time-driven work: every rule that fires with simulated time runs here.

A rule is `async run(since, until) -> counts`: do everything due at or before simulated time
`until` (epoch seconds), knowing the last run reached `since`, and say how much it did
(`{"transitioned": 3, "expired": 1}`). Rules decide from the state they find and the instant
`until` only — an action is stamped with the instant it fell due, never with the moment the
scheduler happened to run — so catching up is idempotent (running again to the same `until`
does nothing) and a jump of a year ends where the same year in small steps would.

When rules run:
- when the clock is advanced (`strata clock advance`, the admin API): `catch_up()` runs every
  rule to the new time and returns what each did, which the admin API answers;
- in real time, when simulated time crosses a multiple of a rule's `every` (S3 lifecycle: each
  midnight UTC, as S3 runs lifecycle once a day);
- at start-up, from where each rule got to before the stop (or kill): a rule's progress is
  persisted (`scheduler.json` in the data dir) only once its run finished, so a run cut short
  is done again, and idempotence makes that harmless.

Several gateways on one PostgreSQL (`share`): a rule over shared state (registered `shared=True`:
its service's store is PostgreSQL) runs on one gateway only, the owner, which holds a PostgreSQL
session lock (strata.storage.coordination) and writes the rule's progress there; the others wait
for the lock and so take over as the owner dies, from where it got to (asking the coordinator
every tick costs no statement; a non-owner reads the owner's progress every FOLLOW seconds).
A rule over this gateway's own state (its SQLite files) runs on every gateway, as before.

Rules run one at a time in one task on the server's event loop; they do their work in chunks
that await the storage layer, so requests are served between chunks and never wait for a
catch-up. This module imports nothing of Strata's but the clock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from strata.sim.clock import Clock
from strata.sim.clock import clock as default_clock

log = logging.getLogger("strata.scheduler")

RunFn = Callable[[float, float], Awaitable[dict[str, int]]]
TICK = 1.0  # real seconds between checks for a crossed boundary
OWNER_WAIT = 120.0  # real seconds a non-owner's catch-up waits for the owner to run shared rules
FOLLOW = 10.0  # real seconds between a non-owner's reads of the owner's progress (for `status`)
RETRY_AFTER = 60.0  # real seconds before a failed rule is tried again (an advance retries at once)


class Coordinator(Protocol):
    """One owner of shared rules among gateways (strata.storage.coordination.SharedSim); blocking."""

    def own(self) -> bool: ...
    def progress(self) -> dict[str, float]: ...
    def save_progress(self, rule: str, done: float) -> None: ...


@dataclass
class _Rule:
    name: str
    run: RunFn
    every: float
    done: float  # simulated time this rule has caught up to
    shared: bool = False  # over state every gateway shares: run by the owner only
    failed_at: float | None = None  # monotonic time of the last failure
    error: str | None = None


@dataclass
class _Waiter:
    target: float
    future: asyncio.Future
    report: dict[str, dict[str, int]] = field(default_factory=dict)


class Scheduler:
    """Runs registered rules up to the simulated time; see the module docstring."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or default_clock
        self._rules: dict[str, _Rule] = {}
        self._state_file: Path | None = None
        self._saved: dict[str, float] = {}
        self._kept: list[tuple[frozenset[str], Path]] = []  # keep_progress's files
        self._waiters: list[_Waiter] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listening = False
        self._coordinator: Coordinator | None = None
        self._settle: Callable[[], None] = lambda: None
        self.owner = True  # runs the shared rules (always, without a coordinator)
        self._followed = -math.inf  # monotonic time a non-owner last read the owner's progress

    # -- set-up ----------------------------------------------------------------------------------

    def use_state_file(self, path: Path) -> None:
        """Where each rule's progress is kept (read now; a missing file means no progress yet)."""
        self._state_file = path
        self._saved = _read_progress(path)
        for rule in self._rules.values():
            rule.done = self._saved.get(rule.name, rule.done)

    def adopt_progress(self, path: Path) -> None:
        """Rules (registered now or later) whose progress `path` holds start from it: the engine
        host's rules, whose progress the last host kept in the shared `path` (keep_progress)."""
        progress = _read_progress(path)
        self._saved.update(progress)
        for rule in self._rules.values():
            rule.done = progress.get(rule.name, rule.done)

    def keep_progress(self, names: set[str], path: Path) -> None:
        """Write the progress of rules `names` to `path` too, whenever it is persisted."""
        self._kept.append((frozenset(names), path))
        self._persist()

    def rule_names(self) -> set[str]:
        return set(self._rules)

    def saved(self) -> dict[str, float]:
        """Each rule's progress as read from the state file (`use_state_file`)."""
        return dict(self._saved)

    def share(self, coordinator: Coordinator, settle: Callable[[], None] = lambda: None) -> None:
        """Run shared rules only while this gateway owns them (see the module docstring).
        `settle` (blocking) makes a run's effects durable before its progress is written: the
        meter's tally, which a kill -9 of the owner would lose with the run marked done."""
        self._coordinator = coordinator
        self._settle = settle
        self.owner = False

    def register(self, name: str, run: RunFn, *, every: float = 86400.0, shared: bool = False) -> None:
        """Add (or replace) a rule. A rule never run before starts from the current time (its
        first run, at start-up, covers the last second: what is due already is done then).
        `shared`: the rule's state is shared by several gateways (its store is PostgreSQL)."""
        done = self._saved.get(name, self.clock.time() - 1.0)
        self._rules[name] = _Rule(name, run, every, done, shared and self._coordinator is not None)
        if self._wake is not None:
            self._wake.set()

    def unregister(self, name: str) -> None:
        self._rules.pop(name, None)

    def status(self) -> dict[str, dict]:
        """Each rule's progress, for the admin API."""
        out = {}
        for rule in self._rules.values():
            caught_up = datetime.fromtimestamp(rule.done, UTC).isoformat()
            entry: dict = {"caught_up_to": caught_up, "every_seconds": rule.every}
            if rule.error:
                entry["error"] = rule.error
            out[rule.name] = entry
        return out

    # -- running ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the runner on the running loop; it first catches every rule up to now."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._wake.set()
        if not self._listening:
            self.clock.on_advance(self._on_advance)
            self._listening = True
        self._task = self._loop.create_task(self._runner())

    async def stop(self) -> None:
        """Cancel the runner; what a rule finished is durable, an unfinished run is redone later."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        for waiter in self._waiters:
            if not waiter.future.done():
                waiter.future.cancel()
        self._waiters = []
        self._loop = None

    async def catch_up(self) -> dict[str, dict[str, int]]:
        """Run every rule up to the current simulated time; what each did (rule -> counts).

        Without a running scheduler (nothing started it) the rules run here, in this task.
        """
        target = self.clock.time()
        if self._task is None or self._task.done():
            waiter = _Waiter(target, asyncio.get_running_loop().create_future())
            await self._run_all(target, [waiter])
            return waiter.report
        waiter = _Waiter(target, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        assert self._wake is not None
        self._wake.set()
        report = await asyncio.shield(waiter.future)
        if not self.owner:
            # The owner follows an advance within milliseconds, running the rules to its own
            # "now": past the advance, if not quite to this gateway's `target`.
            for name in await self._owner_caught_up(min(target, self.clock.advanced_to())):
                report[name] = {"waiting_for_owner": 1}
        return report

    async def _owner_caught_up(self, target: float) -> set[str]:
        """Wait until the owning gateway ran the shared rules up to `target` (a new owner takes
        over within seconds of the last one's death); the rules it has not run after OWNER_WAIT
        (no gateway reaches PostgreSQL, or a rule keeps failing on the owner)."""
        assert self._coordinator is not None
        names = {r.name for r in self._rules.values() if r.shared}
        deadline = self.clock.monotonic() + OWNER_WAIT
        while names and self.clock.monotonic() < deadline:
            try:
                done = await asyncio.to_thread(self._coordinator.progress)
            except Exception:  # noqa: BLE001 - the database is away: wait for it as for an owner
                log.exception("the scheduler cannot read the shared rules' progress")
                done = {}
            names = {n for n in names if done.get(n, 0.0) < target}
            if names:
                await asyncio.sleep(0.1)
        return names

    def _on_advance(self, _now: object) -> None:
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wake.set()
        else:
            loop.call_soon_threadsafe(wake.set)

    def _due(self, rule: _Rule, now: float) -> bool:
        """Whether real time carried simulated time across one of the rule's boundaries."""
        if rule.failed_at is not None and self.clock.monotonic() - rule.failed_at < RETRY_AFTER:
            return False
        return math.floor(now / rule.every) > math.floor(rule.done / rule.every)

    async def _runner(self) -> None:
        assert self._wake is not None
        if self._coordinator is not None:
            await self._check_owner()
        while True:
            only: set[str] | None = None  # a tick runs the rules it is due for; a wake-up all
            try:
                # Not asyncio.wait_for: on 3.11 it swallows a cancellation that arrives as the
                # event fires, and stop() then waited forever for a runner that kept running (a
                # Strata that could not bind its port hung instead of exiting).
                async with asyncio.timeout(TICK):
                    await self._wake.wait()
            except TimeoutError:
                if self._coordinator is not None and await self._check_owner():
                    self._wake.set()  # a new owner: every shared rule catches up at once
                    continue
                now = self.clock.time()
                only = {r.name for r in self._rules.values() if self._due(r, now)}
                if not only:
                    continue
            self._wake.clear()
            waiters, self._waiters = self._waiters, []
            target = max([self.clock.time(), *(w.target for w in waiters)])
            try:
                await self._run_all(target, waiters, only)
            except asyncio.CancelledError:
                self._waiters[:0] = waiters
                raise

    async def _check_owner(self) -> bool:
        """Take or keep the shared rules (True when this gateway just became their owner); a
        gateway that does not own them follows the owner's progress (for `status`)."""
        assert self._coordinator is not None
        was = self.owner
        try:
            self.owner = await asyncio.to_thread(self._coordinator.own)
            if self.owner and was:
                return False  # its own progress is the latest
            if not self.owner and self.clock.monotonic() - self._followed < FOLLOW:
                return False
            progress = await asyncio.to_thread(self._coordinator.progress)
            self._followed = self.clock.monotonic()
        except Exception:  # noqa: BLE001 - an unreachable database: own nothing, try again
            log.exception("the scheduler cannot reach the shared state")
            self.owner = False
            return False
        for rule in self._rules.values():
            if rule.shared and rule.name in progress:
                rule.done = progress[rule.name]
        return self.owner

    async def _run_all(self, target: float, waiters: list[_Waiter], only: set[str] | None = None) -> None:
        for rule in list(self._rules.values()):
            if rule.done >= target or (only is not None and rule.name not in only):
                continue
            if rule.shared and not self.owner:
                continue
            since = rule.done
            try:
                counts = await rule.run(since, target)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - one failing rule must not stop the others
                log.exception("scheduled rule %s failed", rule.name)
                rule.failed_at, rule.error = self.clock.monotonic(), f"{type(e).__name__}: {e}"
                for waiter in waiters:
                    waiter.report[rule.name] = {"error": 1}
                continue
            rule.done, rule.failed_at, rule.error = max(rule.done, target), None, None
            if rule.shared and self._coordinator is not None:
                try:
                    await asyncio.to_thread(self._settle)
                    await asyncio.to_thread(self._coordinator.save_progress, rule.name, rule.done)
                except Exception:  # noqa: BLE001 - not saved: the next owner redoes the run
                    log.exception("the progress of rule %s could not be written", rule.name)
            self._persist()
            for waiter in waiters:
                waiter.report[rule.name] = {k: v for k, v in counts.items() if v}
        for waiter in waiters:
            if not waiter.future.done():
                waiter.future.set_result(waiter.report)

    def _persist(self) -> None:
        if self._state_file is None:
            return
        self._saved.update({r.name: r.done for r in self._rules.values()})
        _write_progress(self._state_file, self._saved)
        for names, path in self._kept:
            _write_progress(path, {n: done for n, done in self._saved.items() if n in names})


def _read_progress(path: Path) -> dict[str, float]:
    if not path.exists():
        return {}
    try:
        doc = json.loads(path.read_text())
        return {str(k): float(v) for k, v in doc.get("caught_up", {}).items() if math.isfinite(float(v))}
    except (OSError, ValueError, TypeError, AttributeError) as e:
        # Progress is only an optimisation of `since`: rules decide from state, so starting over
        # from now loses nothing that a run would not redo.
        log.warning("scheduler state %s unreadable (%s): rules start from now", path, e)
        return {}


def _write_progress(path: Path, progress: dict[str, float]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        json.dump({"caught_up": progress}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


scheduler = Scheduler()
