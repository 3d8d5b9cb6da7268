"""`strata migrate`: move an embedded data dir's shared services into PostgreSQL and a blob dir.

For a user who outgrows one machine: the state of every service several gateways share (README,
"Several gateways") goes from the data dir's SQLite files into the stores of a PostgreSQL
database (`--metadata`) and its bytes under `--blob-dir`, so gateways started with those two
values serve the same buckets, tables, users, keys and bill.

Offline and non-destructive: it refuses while a process holds the data dir (a running server)
or while a gateway is connected to the target, never writes the data dir, and copies (or
hard-links, when both sit on one file system: blobs and backup files are immutable once
published) every file with an fsync before its rename, never moves one. Order, so that no row
ever names a missing file: root keys and files first, then every store's rows in ONE PostgreSQL
transaction (all or nothing), then the clock and the scheduler's progress. A target that already
holds state is refused unless `allow_nonempty` (rows then must not collide: a collision rolls the
whole copy back). S3 objects and uploads whose key holds NUL, which S3 on PostgreSQL refuses,
are left out and listed (`_s3_nul_keys`); everything else goes.

The target's tables are made by the services' own schema code (S3Store, PostgresStore with each
service's SCHEMA); rows go by column name (storage/copy_rows.py). The engine services
(storage.shared.ON_ENGINE_HOST), whose state the engine host keeps under <blob dir>/engines, are
copied there after the rows, whole or not at all (storage/copy_engines.py); when that is not safe
(the tree is there already, a file holds the data dir's path) the report says why and they stay.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from strata.storage.blobs import fsync_path
from strata.storage.copy_rows import Copied, CopyError, LeaveOut, copy_store, has_rows, open_source


def _s3_schema(url: str) -> None:
    from strata.services.s3.store import S3Store

    S3Store(Path("unused"), metadata_url=url).close()  # its schema, and its own migrations


def _store_schema(name: str, scripts: Callable[[], str]) -> Callable[[str], None]:
    def make(url: str) -> None:
        from strata.storage.postgres import PostgresStore

        PostgresStore(url, name, schema=scripts(), pool_size=1).close()

    return make


def _dynamodb() -> str:
    from strata.services.dynamodb import exports, imports, lww, pitr, store, streams

    return store.SCHEMA + pitr.SCHEMA + streams.SCHEMA + lww.SCHEMA + exports.SCHEMA + imports.SCHEMA


def _s3control() -> str:
    from strata.services.s3control.provider import SCHEMA

    return SCHEMA


def _meter() -> str:
    from strata.sim.meter import SCHEMA

    return SCHEMA


def _console() -> str:
    from strata.console.sessions import SCHEMA

    return SCHEMA


@dataclass(frozen=True)
class Store:
    name: str  # the PostgreSQL store (a schema of the database)
    file: str  # its SQLite file, under the data dir
    make_schema: Callable[[str], None]


STORES = (
    Store("s3", "s3/meta.db", _s3_schema),
    Store("dynamodb", "dynamodb/dynamodb.sqlite3", _store_schema("dynamodb", _dynamodb)),
    Store("iam", "iam/iam.db", _store_schema("iam", str)),
    Store("kms", "kms/kms.db", _store_schema("kms", str)),
    Store("s3control", "s3control/s3control.db", _store_schema("s3control", _s3control)),
    Store("meter", "meter.db", _store_schema("meter", _meter)),
    # Console sign-ins: a row holds what a cookie's token opens (its secret is sealed under a key
    # derived from the token, not under the database's sign-in form key), so a browser signed in
    # before stays signed in through the gateways.
    Store("console", "console/sessions.db", _store_schema("console", _console)),
)
SHARED_SCHEMAS = (*(s.name for s in STORES), "sim")


class MigrateError(Exception):
    """Why a migration was refused or stopped (the message says what, if anything, is copied)."""


@dataclass
class Migration:
    """What was copied: rows per store, files per kind, and how (linked or copied)."""

    stores: list[Copied] = field(default_factory=list)
    files: dict[str, int] = field(default_factory=dict)
    linked: int = 0
    copied: int = 0
    notes: list[str] = field(default_factory=list)
    engines: list[str] = field(default_factory=list)  # the entries moved into <blob dir>/engines
    engines_left: str = ""  # why the engine services were not moved ("": they were, or had no state)


def migrate(data_dir: Path, url: str, blob_dir: Path, *, allow_nonempty: bool = False) -> Migration:
    """Copy `data_dir`'s shared services into PostgreSQL `url` and `blob_dir` (module docstring)."""
    from strata.storage.fsck import users_of

    data_dir, blob_dir = Path(data_dir).resolve(), Path(blob_dir).resolve()
    if not data_dir.is_dir():
        raise MigrateError(f"no data dir at {data_dir}")
    users = [p for p in users_of(data_dir) if p != os.getpid()]
    if users:
        raise MigrateError(f"{data_dir} is in use (pid {', '.join(map(str, users))}): stop the server first")
    if blob_dir == data_dir or data_dir in blob_dir.parents:
        raise MigrateError("--blob-dir must be outside the data dir")
    own_clock, progress = _read_sim(data_dir)
    result = Migration()
    try:
        _copy(data_dir, url, blob_dir, allow_nonempty, result)
    except psycopg.Error as e:
        raise MigrateError(f"no row was migrated: {e}") from e
    _move_engines(data_dir, blob_dir / "engines", result)
    try:
        _copy_sim(url, own_clock, progress, result)
    except psycopg.Error as e:
        raise MigrateError(
            f"the rows and files are migrated, the clock and the rules' progress not: {e}"
        ) from e
    return result


def _move_engines(data_dir: Path, target: Path, result: Migration) -> None:
    from strata.storage.copy_engines import EnginesNotMoved, copy_engines

    try:
        result.engines = copy_engines(data_dir, target)
    except (EnginesNotMoved, OSError, sqlite3.Error) as e:
        result.engines_left = str(e)


def _copy(data_dir: Path, url: str, blob_dir: Path, allow_nonempty: bool, result: Migration) -> None:
    """Files first, then every row in one transaction (the module docstring)."""
    with psycopg.connect(url, connect_timeout=15, autocommit=True) as pg:
        _check_target(pg, blob_dir, allow_nonempty)
        _copy_root_keys(data_dir, blob_dir, result)
        for store in STORES:
            if (data_dir / store.file).exists():
                store.make_schema(url)
        _copy_blobs(data_dir / "s3", blob_dir / "s3", result)
        _copy_files(
            data_dir / "dynamodb" / "dynamodb-backups",
            blob_dir / "dynamodb-backups",
            "dynamodb backups",
            result,
        )
        with pg.transaction():
            for store in STORES:
                path = data_dir / store.file
                if not path.exists():
                    continue
                src = open_source(path)
                try:
                    leave_out = _s3_nul_keys(src) if store.name == "s3" else None
                    result.stores.append(copy_store(src, pg, store.name, leave_out))
                except CopyError as e:
                    raise MigrateError(f"no row was migrated: {e}") from e
                finally:
                    src.close()


def _s3_nul_keys(src: sqlite3.Connection) -> LeaveOut:
    """S3 objects (every version) and multipart uploads (with their parts) whose key holds NUL
    (U+0000). SQLite stores such a key; PostgreSQL's text cannot, and S3 on PostgreSQL metadata
    refuses it on PutObject (S3Store.refuse_key: InvalidArgument). So they are left in the data
    dir and listed, rather than failing the whole migration. Their blobs are copied like every
    other (a blob may be shared with another object); a gateway collects the ones no row names."""
    uploads = {uid for uid, key in src.execute("SELECT upload_id, key FROM uploads") if "\x00" in key}

    def leave_out(table: str, row: dict[str, object]) -> str | None:
        key = row.get("key")
        if table == "objects" and isinstance(key, str) and "\x00" in key:
            what = "delete marker" if row["dm"] else "object"
            return f"{what} {key!r} in bucket {row['bucket']} (version {row['version_id']}): {_NUL}"
        if table == "uploads" and row["upload_id"] in uploads:
            return f"multipart upload {row['upload_id']} of {key!r} in bucket {row['bucket']}: {_NUL}"
        if table == "parts" and row["upload_id"] in uploads:
            return ""  # with its upload
        return None

    return leave_out


_NUL = "its key holds NUL (U+0000), which S3 on PostgreSQL metadata refuses (it stays in the data dir)"


def _check_target(pg: psycopg.Connection, blob_dir: Path, allow_nonempty: bool) -> None:
    gateways = pg.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name LIKE 'strata-%' AND pid <> pg_backend_pid()"
    ).fetchone()[0]  # type: ignore[index]
    if gateways:
        raise MigrateError(
            f"{gateways} connections of Strata gateways are open on the target database: stop them first"
        )
    if allow_nonempty:
        return
    full = [
        f"{schema}.{table}"
        for schema in SHARED_SCHEMAS
        for table in has_rows(pg, schema)
        if (schema, table) != ("console", "documents")  # only the sign-in form's key, made by a gateway
    ]
    files = [
        p
        for p in (blob_dir / "s3" / "blobs", blob_dir / "dynamodb-backups", blob_dir / "engines")
        if p.is_dir() and any(p.iterdir())
    ]
    if full or files:
        what = ", ".join([*full[:5], *map(str, files)])
        raise MigrateError(
            f"the target is not empty ({what}): pass --allow-nonempty to add to it (or to go on after "
            "a migration that stopped half way)"
        )


def _copy_root_keys(data_dir: Path, blob_dir: Path, result: Migration) -> None:
    """The keys that seal S3 objects (SSE-S3) and KMS keys: where gateways of the target look."""
    from strata.services.kms.material import RootKey

    keys = [(data_dir / "s3" / "sse-root.key", blob_dir / "s3" / "sse-root.key")]
    if os.environ.get(RootKey.ENV):
        result.notes.append(f"KMS keys are sealed under {RootKey.ENV}: give the gateways the same value")
    else:
        keys.append((data_dir / "kms" / "root.key", blob_dir / "kms" / "root.key"))
    for src, dst in keys:
        if not src.exists():
            continue
        if dst.exists():
            if dst.read_bytes() != src.read_bytes():
                raise MigrateError(
                    f"{dst} holds another root key: what {src} sealed could not be opened there"
                )
            continue
        dst.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _place(src, dst, result)
        result.files["root keys"] = result.files.get("root keys", 0) + 1


def _copy_blobs(src_root: Path, dst_root: Path, result: Migration) -> None:
    """Every published S3 blob (objects, versions, parts) under the same id. Written through a
    BlobStore instance of the target: its temp files are swept like any dead writer's if the
    migration stops half way, and blobs no row will name are collected at a gateway's start."""
    from strata.storage.blobs import BlobStore

    paths = sorted((src_root / "blobs").glob("*/*/*"))
    if not paths:
        return
    blobs = BlobStore(dst_root)
    try:
        for src in paths:
            final = blobs.path(src.name)
            if _there(src, final):
                continue
            final.parent.mkdir(parents=True, exist_ok=True)
            if _link(src, final):
                result.linked += 1
                continue
            tmp, f = blobs.open_temp()
            with f, open(src, "rb") as r:
                shutil.copyfileobj(r, f, 1 << 20)
            blobs.publish(tmp, src.name)  # fsync, rename, fsync of the directory
            result.copied += 1
    finally:
        blobs.close()
    result.files["s3 blobs"] = len(paths)


def _copy_files(src_dir: Path, dst_dir: Path, what: str, result: Migration) -> None:
    if not src_dir.is_dir():
        return
    names = [p for p in sorted(src_dir.iterdir()) if p.is_file() and p.suffix != ".tmp"]
    dst_dir.mkdir(parents=True, exist_ok=True)
    for src in names:
        if not _there(src, dst_dir / src.name):
            _place(src, dst_dir / src.name, result)
    result.files[what] = len(names)


def _there(src: Path, dst: Path) -> bool:
    """Whether `dst` is `src` placed by an earlier run that stopped half way (the names are
    random, made once: another file of the same name and size is not to be had)."""
    try:
        size = dst.stat().st_size
    except FileNotFoundError:
        return False
    if size != src.stat().st_size:
        raise MigrateError(f"{dst} exists already, and is not {src}")
    return True


def _place(src: Path, dst: Path, result: Migration) -> None:
    """`dst` as a durable copy of `src`: a hard link, or a copy fsynced before its rename."""
    if _link(src, dst):
        result.linked += 1
        return
    tmp = dst.with_name(f".{dst.name}.migrating")
    shutil.copyfile(src, tmp)
    os.chmod(tmp, src.stat().st_mode & 0o777)
    fsync_path(tmp)
    os.replace(tmp, dst)
    fsync_path(dst.parent)
    result.copied += 1


def _link(src: Path, dst: Path) -> bool:
    """Hard-link `src` at `dst` (durably); False when they are on different file systems."""
    try:
        os.link(src, dst)
    except OSError as e:
        if e.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            return False
        raise
    fsync_path(src)  # a source written with --no-fsync is made durable before it counts as migrated
    fsync_path(dst.parent)
    return True


def _read_sim(data_dir: Path) -> tuple[Any, dict[str, float]]:
    """The data dir's clock and its rules' progress (read before anything is copied: a clock
    file the server would refuse stops the migration first)."""
    from strata.sim.clock import Clock, ClockStateError
    from strata.sim.scheduler import Scheduler

    try:
        own = Clock(data_dir / "clock.json")
    except ClockStateError as e:
        raise MigrateError(str(e)) from e
    rules = Scheduler(own)
    rules.use_state_file(data_dir / "scheduler.json")
    return own, rules.saved()


def _copy_sim(url: str, own: Any, progress: dict[str, float], result: Migration) -> None:
    """The clock's offset (unless the target keeps one already) and the rules' progress."""
    from strata.storage.coordination import SharedSim

    sim = SharedSim(url)
    try:
        before = sim.read_clock()
        sim.init_clock(own.offset, own.history)
        if before is not None and before[0] != own.offset:
            result.notes.append(
                f"the target's clock offset ({before[0]:.0f} s) was kept; the data dir's was {own.offset:.0f} s"
            )
        known = sim.progress()
        for rule, done in progress.items():
            if rule not in known:
                sim.save_progress(rule, done)
    finally:
        sim.close()
