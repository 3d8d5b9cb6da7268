"""The engine services' state, from an embedded data dir into the engine host's `<blob dir>/engines`.

With --metadata the engine services (storage.shared.ON_ENGINE_HOST) run on the engine host from
`<blob dir>/engines`, a tree laid out like a data dir (strata.gateway.services.host_engines builds
them with settings whose data_dir is that tree). So a data dir's engine state moves by copying
what those providers read under their data dir to the same relative place there: each service's
directory (SQLite files, engine data dirs, run state, EBS blocks, EFS volumes), `engines/` (the
ports table), `tls/` (the authority clients of TLS caches trust), the engine rules' progress and
the record of the pool addresses given to engine endpoints (`engine-addresses.json`: with
--metadata it is kept there, Settings.engine_addresses_record, so endpoints keep the addresses
clients know).

What makes a copy safe:
- Owners, modes, hard links, ACLs and sparse files are kept (`rsync -aHAXS --numeric-ids`, or
  `cp -a`): engines run as their own uids, and a file they cannot open is an engine that fails.
- Absolute paths: the services' SQLite records name some files by absolute path (RDS snapshots'
  `path`); in the copy, every text value naming a file under the data dir is rewritten to name the
  same file under the new tree, and so is every path in the engines' configuration files Strata
  writes or MariaDB keeps (`_REWRITTEN`). Engine logs are moved as they are (read by people, not
  engines), and so are InnoDB's records of the last binlog position (`_AS_THEY_ARE`). Any other
  file (or symlink) that holds the data dir's path, e.g. a MariaDB replica's relay log state, is a
  reason not to move the engines at all: the migration says which and leaves them behind.
- All or nothing: the tree is built beside its final name and renamed into place, so an engine
  host never starts from half a copy; a target that has engine state already is never touched.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from strata.config import ENGINE_ADDRESSES_RECORD
from strata.storage.blobs import fsync_path
from strata.storage.shared import ON_ENGINE_HOST

# Rule-name prefixes (strata.sim.scheduler) of the engine services' time-driven rules.
_RULE_PREFIXES = {*ON_ENGINE_HOST, "autoscaling"}
_SQLITE_MAGIC = b"SQLite format 3\x00"
_CHUNK = 1 << 20
# Engine files that name files by absolute path and are rewritten in the copy like the records:
# Strata's PostgreSQL settings (the WAL archive's directory), a MariaDB node's my.cnf (its data
# dir, binlog and logs), the options PostgreSQL keeps of its last start, and MariaDB's binlog
# indexes (`*.index`: one binlog's path a line). Most starts write the first two again, but not
# all (a paused serverless instance resumes from them as they are).
_REWRITTEN = frozenset({"strata.conf", "my.cnf", "postmaster.opts"})
_REWRITTEN_SUFFIXES = (".index",)
# Moved as they are: read by people, never by an engine (logs; the command line mariabackup
# records in a backup); and InnoDB's record of the last committed binlog position (the binlog's
# path as the server named it, in the rollback segment headers of ibdata1 and undo tablespaces,
# logged in ib_logfile0, and mariabackup's copy of it): MariaDB prints it at start and backup tools
# and Galera read it, while the server's own binlog recovery reads the binlog index (rewritten
# above), and the next commit writes the new path over it. Strata takes a backup's position from
# mariadb_backup_binlog_info, by the binlog's name only (engines/mariadb.py).
_AS_THEY_ARE = frozenset({"xtrabackup_info", "ibdata1", "ib_logfile0", "xtrabackup_binlog_pos_innodb"})
_AS_THEY_ARE_SUFFIXES = (".log",)


def _as_it_is(name: str) -> bool:
    return (
        name in _AS_THEY_ARE
        or name.endswith(_AS_THEY_ARE_SUFFIXES)
        or (name.startswith("undo") and name[4:].isdigit())  # InnoDB's undo tablespaces
    )


class EnginesNotMoved(Exception):
    """Why the engine state stays in the data dir (the migration reports it; nothing was placed)."""


def copy_engines(data_dir: Path, target: Path) -> list[str]:
    """Copy `data_dir`'s engine state into `target` (`<blob dir>/engines`); the entries moved."""
    entries = [
        n for n in (*ON_ENGINE_HOST, "engines", "tls", ENGINE_ADDRESSES_RECORD) if (data_dir / n).exists()
    ]
    if not entries:
        return []
    if target.exists() and any(target.iterdir()):
        raise EnginesNotMoved(
            f"{target} holds engine state already (another cloud's engines are never merged)"
        )
    if json.dumps(str(data_dir))[1:-1] != str(data_dir) or json.dumps(str(target))[1:-1] != str(target):
        raise EnginesNotMoved(
            "the data dir's or the blob dir's path has characters JSON escapes (records name files by it)"
        )
    needle = str(data_dir).encode()
    if needle in str(target).encode():
        needle += os.sep.encode()
    embedding = [p for n in entries for p in _embedding(data_dir / n, needle)]
    if embedding:
        shown = ", ".join(str(p) for p in embedding[:5])
        raise EnginesNotMoved(
            f"these files hold the data dir's absolute path, which would break after the move: {shown}"
        )
    building = target.with_name(f".{target.name}.migrating")
    shutil.rmtree(building, ignore_errors=True)  # an earlier run's, stopped half way
    building.mkdir(mode=0o700, parents=True)
    try:
        for name in entries:
            _copy_tree(data_dir / name, building / name)
        for db in _sqlite_files(building):
            _rewrite_paths(db, str(data_dir) + os.sep, str(target) + os.sep)
            if _holds(db, needle):
                raise EnginesNotMoved(
                    f"{data_dir / db.relative_to(building)} names the data dir otherwise than as a file's path"
                )
        for conf in (p for p in building.rglob("*") if _rewritten(p.name) and p.is_file()):
            text = conf.read_bytes()  # written in place: the engine's owner and mode stay
            conf.write_bytes(
                text.replace(os.fsencode(f"{data_dir}{os.sep}"), os.fsencode(f"{target}{os.sep}"))
            )
            if _holds(conf, needle):
                raise EnginesNotMoved(
                    f"{data_dir / conf.relative_to(building)} names the data dir otherwise than as a file's path"
                )
        _write_progress(data_dir / "scheduler.json", building / "scheduler.json")
        _sync_tree(building)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    if target.exists():
        target.rmdir()  # empty (checked above)
    os.replace(building, target)
    fsync_path(target.parent)
    return entries


def _rewritten(name: str) -> bool:
    return name in _REWRITTEN or name.endswith(_REWRITTEN_SUFFIXES)


def _copy_tree(src: Path, dst: Path) -> None:
    """`src` as `dst`, with owners, modes, links, ACLs, attributes and holes."""
    if not src.is_dir():  # the engine address pool's record
        shutil.copy2(src, dst)
        return
    if shutil.which("rsync"):
        cmd = ["rsync", "-aHAXS", "--numeric-ids", f"{src}/", f"{dst}/"]
    else:
        cmd = ["cp", "-a", "--sparse=always", str(src), str(dst)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise EnginesNotMoved(f"{' '.join(cmd)} failed: {done.stderr.strip()[-300:]}")


def _is_sqlite(path: Path) -> bool:
    """An SQLite database or its WAL/shared-memory file (rewritten in the copy, not scanned)."""
    if path.name.endswith(("-wal", "-shm", "-journal")):
        return True
    with open(path, "rb") as f:
        return f.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC


def _sqlite_files(root: Path) -> list[Path]:
    return [
        p
        for p in sorted(root.rglob("*"))
        if p.is_file()
        and not p.is_symlink()
        and not p.name.endswith(("-wal", "-shm", "-journal"))
        and _is_sqlite(p)
    ]


def _embedding(root: Path, needle: bytes) -> list[Path]:
    """Files and symlinks under `root` (SQLite files aside) that hold `needle`."""
    found = []
    for dirpath, dirs, files in os.walk(root):
        for name in [*files, *(d for d in dirs if os.path.islink(os.path.join(dirpath, d)))]:
            path = Path(dirpath, name)
            if path.is_symlink():
                if needle in os.fsencode(os.readlink(path)):
                    found.append(path)
            elif (
                path.is_file()
                and not _rewritten(name)
                and not _as_it_is(name)
                and not _is_sqlite(path)
                and _holds(path, needle)
            ):
                found.append(path)
    return found


def _holds(path: Path, needle: bytes) -> bool:
    """Whether `needle` is in the file, reading only its data (an EBS volume is mostly holes)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        pos, size = 0, os.fstat(fd).st_size
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
                end = os.lseek(fd, start, os.SEEK_HOLE)
            except OSError as e:
                if e.errno == errno.ENXIO:  # only a hole after pos
                    return False
                start, end = pos, size  # a file system without SEEK_DATA: read it all
            os.lseek(fd, start, os.SEEK_SET)
            tail = b""
            while start < end:
                chunk = os.read(fd, min(_CHUNK, end - start))
                if not chunk:
                    break
                if needle in tail + chunk:
                    return True
                tail, start = chunk[-len(needle) :], start + len(chunk)
            pos = end
        return False
    finally:
        os.close(fd)


def _rewrite_paths(db: Path, old: str, new: str) -> None:
    """Every text value of `db` naming a file under `old` names it under `new` (one transaction;
    the WAL checkpointed into the file, as the services find it at start). A value holding the
    path otherwise (a blob, a path inside a longer string) is found by the check after."""
    con = sqlite3.connect(db, isolation_level=None)
    try:
        con.execute("PRAGMA secure_delete = ON")
        con.execute("BEGIN IMMEDIATE")
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            cols = [r[1] for r in con.execute(f'PRAGMA table_info("{table}")')]
            for col in cols:
                con.execute(
                    f'UPDATE "{table}" SET "{col}" = replace("{col}", ?, ?) '
                    f'WHERE typeof("{col}") = \'text\' AND instr("{col}", ?) > 0',
                    (old, new, old),
                )
        con.execute("COMMIT")
        con.execute("VACUUM")  # no page keeps the old text
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()


def _write_progress(src: Path, dst: Path) -> None:
    """The engine rules' progress, where the engine host reads it (host_engines): theirs only, or a
    host would set the shared rules back to the data dir's (their progress is in PostgreSQL)."""
    try:
        caught_up = json.loads(src.read_text()).get("caught_up", {})
    except (OSError, ValueError, AttributeError):
        return  # progress is an optimisation: the rules start from now (scheduler._read_progress)
    mine = {k: v for k, v in caught_up.items() if k.split(".", 1)[0] in _RULE_PREFIXES}
    if mine:
        dst.write_text(json.dumps({"caught_up": mine}))


def _sync_tree(root: Path) -> None:
    """Everything copied on disk before the rename publishes it (rsync and cp do not fsync)."""
    subprocess.run(["sync", "-f", str(root)], check=False, capture_output=True)
