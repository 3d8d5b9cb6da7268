"""The only source of time in Strata.

Wall-clock time plus an offset that can be moved forward (never back), so lifecycle rules, TTLs,
backups and presigned-URL expiry all happen "90 days later" when a test advances the clock. The
offset is persisted in the data directory so a restart keeps the simulated date; with several
gateways on one PostgreSQL (`share`) it is kept there instead, so every gateway has the same date:
an advance on one is followed by the others within milliseconds (strata.storage.coordination).

Code reads `clock.now()` (aware UTC datetime) or `clock.time()` (epoch seconds); nothing calls
`time.time()` or `datetime.now()` directly. `clock.monotonic()` is for measuring durations only.
`clock.real_time()` is the machine's unshifted time, for what lives in real time outside Strata:
a client's own clock (SigV4 request-time skew: SDKs sign with the real time however far the cloud
was moved) and engines' timestamps (WAL/binlog), mapped with `to_real` / `to_simulated`.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time as _time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# The simulated clock stays before this instant: ~1,000 years of headroom below datetime's year
# 9999, so dates computed from `now` (retention periods, expiries, ISO-8601 timestamps with four-
# digit years) stay representable. An advance past it is refused, not clamped.
LATEST = datetime(9000, 1, 1, tzinfo=UTC).timestamp()
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")


class ClockStateError(Exception):
    """The persisted clock state cannot be used (unreadable, or a value out of range)."""


class SharedClockState(Protocol):
    """Where several gateways keep one offset (strata.storage.coordination.SharedSim)."""

    def read_clock(self) -> tuple[float, list[tuple[float, float]]] | None: ...
    def init_clock(self, offset: float, history: list[tuple[float, float]]) -> None: ...
    def add_to_clock(self, seconds: float, wall: float) -> tuple[float, list[tuple[float, float]]]: ...
    def watch_clock(self, changed: Callable[[float, list[tuple[float, float]]], None]) -> None: ...


class Clock:
    """Wall time shifted by a persisted, only-growing offset."""

    def __init__(self, state_file: Path | None = None, wall: Callable[[], float] = _time.time) -> None:
        self._wall = wall
        self._offset = 0.0
        # (real time the offset took effect, offset) in order: maps a simulated instant back to the
        # real instant engines stamped (WAL/binlog times), across every advance.
        self._history: list[tuple[float, float]] = [(0.0, 0.0)]
        self._lock = threading.Lock()
        self._state_file = state_file
        self._listeners: list = []
        self._shared: SharedClockState | None = None
        if state_file is not None:
            self._load(state_file)

    @property
    def offset(self) -> float:
        return self._offset

    @property
    def history(self) -> list[tuple[float, float]]:
        """(real time an offset took effect, offset), oldest first (what a shared state stores)."""
        return list(self._history)

    def time(self) -> float:
        return self._wall() + self._offset

    def real_time(self) -> float:
        """The machine's time without the simulated offset (client clocks, engine timestamps)."""
        return self._wall()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    @staticmethod
    def monotonic() -> float:
        return _time.monotonic()

    def advance(self, seconds: float) -> datetime:
        """Move simulated time forward; listeners (schedulers) run their due work afterwards.

        Raises ValueError (and changes nothing) for a negative, non-finite or too large step: the
        clock never goes back and never past `LATEST`.
        """
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise ValueError(f"not a number of seconds: {seconds!r}")
        try:
            seconds = float(seconds)
        except OverflowError:
            seconds = math.inf
        if not math.isfinite(seconds):
            raise ValueError("the clock moves by a finite number of seconds")
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        if self.time() + seconds >= LATEST:
            raise ValueError(
                f"the clock cannot go past {datetime.fromtimestamp(LATEST, UTC).isoformat()} "
                f"(at most {LATEST - self.time():.0f} seconds ahead of now)"
            )
        with self._lock:
            if self._shared is not None:
                self._offset, self._history = self._shared.add_to_clock(seconds, self._wall())
            else:
                self._offset += seconds
                self._history.append((self._wall(), self._offset))
                self._persist()
        for listener in list(self._listeners):
            listener(self.now())
        return self.now()

    def set(self, when: datetime) -> datetime:
        """Move forward to `when` (a naive datetime is UTC); an instant already past is refused."""
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        step = when.timestamp() - self.time()
        if step < 0:
            raise ValueError(f"{when.isoformat()} is already past: the clock only moves forward")
        return self.advance(step)

    def advanced_to(self) -> float:
        """The simulated instant the latest advance took the clock to (0 before any)."""
        since, offset = self._history[-1]
        return since + offset if since else 0.0

    def on_advance(self, listener) -> None:
        """Call `listener(now)` after every advance (used by lifecycle/TTL/backup schedulers)."""
        self._listeners.append(listener)

    def to_real(self, simulated: float) -> float:
        """The real instant that was (or will be) simulated time `simulated`.

        An instant inside a jump (skipped by an advance) maps to the moment of the jump.
        """
        for i in range(len(self._history) - 1, -1, -1):
            since, offset = self._history[i]
            real = simulated - offset
            if real >= since or i == 0:
                if i + 1 < len(self._history):
                    real = min(real, self._history[i + 1][0])
                return real
        return simulated  # unreachable: the history always has its first entry

    def to_simulated(self, real: float) -> float:
        """Simulated time at a real instant (e.g. an engine's commit timestamp)."""
        offset = self._history[0][1]
        for since, value in self._history:
            if since <= real:
                offset = value
            else:
                break
        return real + offset

    def share(self, state: SharedClockState, call_soon: Callable[[Callable[[], None]], object]) -> None:
        """Keep the offset in `state`, shared by every gateway (this gateway's own offset becomes
        the shared one if none was stored yet), and follow other gateways' advances: listeners run
        here too when another gateway moved the clock, through `call_soon` (the server loop's
        call_soon_threadsafe: where the advances of this gateway run them)."""
        state.init_clock(self._offset, self._history)
        stored = state.read_clock()
        with self._lock:
            self._shared = state
            if stored is not None:
                self._offset, self._history = stored
        self._call_soon = call_soon
        state.watch_clock(self._follow)

    def _follow(self, offset: float, history: list[tuple[float, float]]) -> None:
        """Another gateway's advance (or none: the offset as stored), from the watching thread."""
        with self._lock:
            if offset <= self._offset:
                return
            self._offset, self._history = offset, history
        self._call_soon(self._tell_listeners)

    def _tell_listeners(self) -> None:
        for listener in list(self._listeners):
            listener(self.now())

    def use_state_file(self, state_file: Path) -> None:
        self._state_file = state_file
        self._offset = 0.0
        self._history = [(0.0, 0.0)]
        self._load(state_file)

    def _load(self, state_file: Path) -> None:
        """Read the persisted offset; ClockStateError if the file is unusable.

        A bad file is refused rather than ignored: ignoring it would move simulated time back to
        the real date, and TTLs, lifecycle rules and backups would act on the wrong date.
        """
        if not state_file.exists():
            return
        try:
            state = json.loads(state_file.read_text(), parse_constant=_no_constant)
            offset = float(state.get("offset_seconds", 0.0))
            history = state.get("history")
            # A state file from before the history was kept: assume the offset always applied.
            pairs = [(float(a), float(b)) for a, b in history] if history else [(0.0, offset)]
        except (OSError, ValueError, TypeError, AttributeError, OverflowError) as e:
            raise ClockStateError(_bad_state(state_file, f"it cannot be read ({e})")) from e
        values = [offset, *(v for pair in pairs for v in pair)]
        if not all(math.isfinite(v) and v >= 0 for v in values):
            raise ClockStateError(_bad_state(state_file, "it holds a negative or non-finite number"))
        if self._wall() + offset >= LATEST:
            raise ClockStateError(
                _bad_state(state_file, f"its offset of {offset:.0f} seconds goes past the year 9000")
            )
        self._offset, self._history = offset, pairs

    def _persist(self) -> None:
        if self._state_file is None:
            return
        tmp = self._state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"offset_seconds": self._offset, "history": self._history}))
        os.replace(tmp, self._state_file)


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number of seconds")


def _bad_state(state_file: Path, why: str) -> str:
    return (
        f"the simulated clock's state file {state_file} is unusable: {why}. Strata does not start "
        "rather than move simulated time back. Fix offset_seconds in it, or delete it to return the "
        "clock to the real date."
    )


def parse_duration(text: str) -> float:
    """'30d', '12h', '90m', '45s' or a bare number of seconds."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30d, 12h, 90m, 45s)")
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


clock = Clock()
now = clock.now
time = clock.time
monotonic = clock.monotonic
