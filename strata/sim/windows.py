"""Daily windows ("hh24:mi-hh24:mi", UTC) in which AWS runs time-driven work: RDS automated
backups (PreferredBackupWindow) and ElastiCache automatic snapshots (SnapshotWindow).

A scheduled rule asks for the start of the latest window at or before the time it catches up to;
work stamped with that instant is idempotent (the same instant twice is the same backup) and a
jump over many days lands on the same latest window as the same span in small steps.
"""

from __future__ import annotations

import math

DAY = 86400.0


def window_start_seconds(window: str) -> int:
    """Seconds after midnight UTC at which a daily "hh24:mi-hh24:mi" window opens."""
    start = window.split("-", 1)[0]
    hours, minutes = start.split(":")
    return int(hours) * 3600 + int(minutes) * 60


def latest_window_start(window: str, until: float) -> float:
    """The latest instant (epoch seconds) at or before `until` at which the daily window opened."""
    offset = window_start_seconds(window)
    day = math.floor((until - offset) / DAY)
    return day * DAY + offset


WEEK = 7 * DAY
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_MONDAY = 4 * DAY  # 1970-01-05, the first Monday of the epoch


def weekly_window_start_seconds(window: str) -> int:
    """Seconds after Monday 00:00 UTC at which a weekly "ddd:hh24:mi-ddd:hh24:mi" window opens."""
    day, hours, minutes = window.split("-", 1)[0].lower().split(":")
    return _DAYS.index(day) * int(DAY) + int(hours) * 3600 + int(minutes) * 60


def latest_weekly_window_start(window: str, until: float) -> float:
    """The latest instant (epoch seconds) at or before `until` at which the weekly window opened
    (RDS and ElastiCache maintenance windows)."""
    offset = _MONDAY + weekly_window_start_seconds(window)
    return math.floor((until - offset) / WEEK) * WEEK + offset
