"""Offline checks of a data dir that need no service knowledge: SQLite integrity and temp files.

`strata fsck` (strata/fsck.py) runs these plus each service's own checks (S3: metadata against
blobs) and collects every finding in one `Report`. Everything here only reads, except `repair`,
which removes what no metadata refers to (temp files of writes that never finished); it never
touches a file a database row names.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from strata.sim.clock import clock

# Strata's own databases and temp files sit at most this deep under the data dir; engine data
# dirs (PostgreSQL, MariaDB, Redis files under rds/instances/<id>/... ) are deeper and theirs.
MAX_DEPTH = 3
DB_SUFFIXES = (".db", ".sqlite3")


@dataclass
class Finding:
    """One problem: what kind, where, and a line a person can read."""

    kind: str
    path: str
    detail: str = ""
    repairable: bool = False
    repaired: bool = False
    ref: tuple = ()  # what a repair needs to find the thing again (e.g. upload id, part number)


@dataclass
class Report:
    data_dir: Path
    databases: dict[str, str] = field(default_factory=dict)  # path -> "ok" or integrity_check output
    findings: list[Finding] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)  # what was looked at: objects, blobs ...
    notes: list[str] = field(default_factory=list)  # what was not checked (or repaired), and why

    def add(
        self, kind: str, path: str | Path, detail: str = "", *, repairable: bool = False, ref: tuple = ()
    ) -> None:
        self.findings.append(Finding(kind, str(path), detail, repairable, ref=ref))

    def of(self, kind: str) -> list[Finding]:
        return [f for f in self.findings if f.kind == kind]

    @property
    def temp_files(self) -> list[Finding]:
        return self.of("temp_file")

    @property
    def orphan_blobs(self) -> list[Finding]:
        return self.of("orphan_blob")

    @property
    def ok(self) -> bool:
        return not [f for f in self.findings if not f.repaired]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.findings:
            out[f.kind] = out.get(f.kind, 0) + 1
        return out

    def problems(self) -> list[str]:
        return [
            f"{f.kind}: {f.path}{' (' + f.detail + ')' if f.detail else ''}"
            f"{' [repaired]' if f.repaired else ''}"
            for f in self.findings
        ]

    def to_dict(self) -> dict:
        return {
            "data_dir": str(self.data_dir),
            "ok": self.ok,
            "checked": self.checked,
            "databases": self.databases,
            "counts": self.counts(),
            "notes": self.notes,
            "findings": [{k: v for k, v in vars(f).items() if k != "ref"} for f in self.findings],
        }


def _shallow_files(root: Path, depth: int = MAX_DEPTH) -> list[Path]:
    out: list[Path] = []
    level = [root]
    for _ in range(depth):
        nxt: list[Path] = []
        for d in level:
            try:
                entries = list(d.iterdir())
            except OSError:
                continue
            for p in entries:
                if p.is_symlink():
                    continue
                if p.is_dir():
                    nxt.append(p)
                elif p.is_file():
                    out.append(p)
        level = nxt
    return out


def open_readonly(path: Path, *, live: bool) -> sqlite3.Connection:
    """A connection that does not write: read-only while a server may be using the database.

    Offline, a normal connection is used so SQLite replays a WAL left by a kill -9 (that is
    what the server would do at start; without it the last commits look missing).
    """
    if live:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    return sqlite3.connect(path, timeout=30)


def check_databases(report: Report, *, live: bool = False) -> None:
    """PRAGMA integrity_check of every Strata SQLite database in the data dir."""
    for p in sorted(_shallow_files(report.data_dir)):
        if not p.name.endswith(DB_SUFFIXES):
            continue
        try:
            conn = open_readonly(p, live=live)
            try:
                rows = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
            finally:
                conn.close()
        except sqlite3.Error as e:
            rows = [f"cannot check: {e}"]
        result = "ok" if rows == ["ok"] else "; ".join(rows[:20])
        report.databases[str(p)] = result
        if result != "ok":
            report.add("database_corrupt", p, result)
    report.checked["databases"] = len(report.databases)


def check_temp_files(report: Report, temp_dirs: list[Path]) -> None:
    """Temp files: every file in a service's temp dir or a directory in it (a blob store
    instance's: strata.storage.blobs), and `*.tmp` files of atomic rewrites."""
    seen: set[Path] = set()
    for d in temp_dirs:
        if d.is_dir():
            for p in sorted(d.iterdir()):
                for f in sorted(p.iterdir()) if p.is_dir() else [p]:
                    seen.add(f)
                    report.add("temp_file", f, f"{_size(f)} bytes", repairable=True)
    for p in sorted(_shallow_files(report.data_dir)):
        if p.suffix == ".tmp" and p not in seen:
            report.add("temp_file", p, f"{_size(p)} bytes", repairable=True)


def check_shared_temp_files(report: Report, tmp_root: Path, loose: list[Path], grace: float) -> None:
    """Temp files in a blob dir several gateways share: those of blob store instances that are
    gone (a running gateway's are its writes in flight: strata.storage.blobs), and `loose` temp
    files older than `grace` seconds (whose writer cannot be told)."""
    from strata.storage.blobs import instance_alive

    for p in sorted(tmp_root.iterdir()) if tmp_root.is_dir() else []:
        if p.is_dir() and instance_alive(tmp_root.parent, p.name):
            continue
        for f in sorted(p.iterdir()) if p.is_dir() else [p]:
            report.add("temp_file", f, f"{_size(f)} bytes", repairable=True)
    now = clock.real_time()
    for f in loose:
        try:
            old = now - f.stat().st_mtime >= grace
        except FileNotFoundError:
            continue
        if old:
            report.add("temp_file", f, f"{_size(f)} bytes", repairable=True)


def remove_temp_files(report: Report) -> None:
    for f in report.temp_files:
        p = Path(f.path)
        try:
            if p.is_dir():
                continue
            p.unlink(missing_ok=True)
            f.repaired = True
        except OSError as e:
            f.detail += f"; not removed: {e}"


def users_of(data_dir: Path) -> list[int]:
    """Processes with a file of `data_dir` open (a running server): repairs must wait for them.

    Reads /proc (Linux); elsewhere, or without the rights to look, the list is empty.
    """
    root = str(Path(data_dir).resolve()) + "/"
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            fds = list((proc / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith(root):
                pids.append(int(proc.name))
                break
    return sorted(pids)


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:
        return -1
