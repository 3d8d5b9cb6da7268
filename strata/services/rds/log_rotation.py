"""Hourly log files as RDS shows them, cut from the engine's one log on the simulated clock.

RDS rotates a DB instance's engine logs every hour: PostgreSQL's as `error/postgresql.log.
YYYY-MM-DD-HH` (UTC), kept `rds.log_retention_period` minutes (3 days by default); MariaDB's
current hour as `error/mysql-error.log` and the hours before as `error/mysql-error-running.log.H`
(the slow query and general logs alike: `slowquery/mysql-slowquery.log[.H]`,
`general/mysql-general.log[.H]`), kept 24 hours.

The engine writes one file (its stderr, opened for append, which cannot be swapped under a running
process without losing lines). So the hourly files are cut from it by offset instead: at each
simulated hour (the scheduler's `rds.logs` rule, and before every listing) the file's size, at a
line end, is recorded in `<log>.hours` beside it as where the new hour starts. A file is the byte
range between two such marks; the last one runs to the end. Past the retention period an hour is no
longer listed or served. Simplification: the bytes of hours past retention stay on disk (the
engine's file is never cut short under it).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

HOUR = 3600
PG_RETENTION_MINUTES = 4320  # rds.log_retention_period's default
MARIADB_RETENTION_MINUTES = 1440  # the hourly MariaDB error logs of the last 24 hours
TAIL_SCAN = 64 * 1024  # how far back from the end a line end is looked for


@dataclass(frozen=True)
class LogSegment:
    name: str  # RDS's LogFileName
    path: Path
    start: int
    end: int | None  # None: up to the end of the file (the hour being written)
    hour: float  # simulated epoch second the hour starts
    ended: float | None = None  # simulated epoch second the next file started


def _index_path(log: Path) -> Path:
    return log.with_name(log.name + ".hours")


def _load(log: Path) -> list[list[float]]:
    try:
        return json.loads(_index_path(log).read_text())
    except (FileNotFoundError, ValueError):
        return []


def _save(log: Path, marks: list[list[float]]) -> None:
    tmp = _index_path(log).with_suffix(".tmp")
    tmp.write_text(json.dumps(marks))
    os.replace(tmp, _index_path(log))


def _line_end(log: Path) -> int:
    """The file's size, less a line the engine is in the middle of writing."""
    with open(log, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        start = max(0, size - TAIL_SCAN)
        f.seek(start)
        tail = f.read(size - start)
    cut = tail.rfind(b"\n")
    return start + cut + 1 if cut >= 0 else start


def rotate(log: Path, now: float, retention_minutes: int) -> None:
    """Start the hour of `now` (simulated) at the file's current end, if it is not started yet;
    forget the hours past retention. Idempotent: called again in the same hour it does nothing."""
    hour = now // HOUR * HOUR
    marks = _load(log)
    if marks and marks[-1][1] > log.stat().st_size:
        marks = []  # the engine's file was made anew (the instance was rebuilt): so is the index
    elif marks and marks[-1][0] >= hour:
        return
    marks.append([hour, _line_end(log) if marks else 0])  # an hour nothing was written in: no file
    horizon = now - retention_minutes * 60
    while len(marks) > 1 and marks[1][0] <= horizon:  # the oldest hour ended before the horizon
        marks.pop(0)
    _save(log, marks)


@dataclass(frozen=True)
class LogNames:
    """How RDS names one log's hourly files: the hour being written (None: like the past ones)
    and a past hour (a format of its start, a UTC datetime)."""

    current: str | None
    past: str


POSTGRES_ERROR = LogNames(None, "error/postgresql.log.{:%Y-%m-%d-%H}")
MARIADB_ERROR = LogNames("error/mysql-error.log", "error/mysql-error-running.log.{0.hour}")
MARIADB_SLOW = LogNames("slowquery/mysql-slowquery.log", "slowquery/mysql-slowquery.log.{0.hour}")
MARIADB_GENERAL = LogNames("general/mysql-general.log", "general/mysql-general.log.{0.hour}")


def segments(log: Path, names: LogNames, now: float, retention_minutes: int) -> list[LogSegment]:
    """The hourly files of one engine log, oldest first, as RDS names them."""
    rotate(log, now, retention_minutes)
    marks = _load(log)
    out = []
    for i, (hour, start) in enumerate(marks):
        end = int(marks[i + 1][1]) if i + 1 < len(marks) else None
        if end == start:
            continue
        when = datetime.fromtimestamp(hour, UTC)
        name = names.current if end is None and names.current else names.past.format(when)
        ended = marks[i + 1][0] if i + 1 < len(marks) else None
        out.append(LogSegment(name, log, int(start), end, hour, ended))
    return out
