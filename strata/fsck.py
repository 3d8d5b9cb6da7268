"""`strata fsck`: check a data dir offline (the server stopped), optionally repair it.

Checks every Strata SQLite database (integrity_check), temp files of writes that never
finished, S3's metadata against its blob files, DynamoDB's kept counts and backup files, and
EBS's block files, volume files and snapshots; see strata/storage/fsck.py and each service's
fsck module. `repair=True` removes only what no metadata refers to (orphan blobs and blocks,
temp files, parts of uploads that are gone, files and records of deleted volumes).

`check_shared` does the same for the layout several gateways share (`--metadata` PostgreSQL,
`--blob-dir`), while they run: what a running gateway may still be writing is left alone (its
blob store instance holds its lock; an unreferenced blob or file younger than `GRACE` may be a
write in flight, published before its row commits). It checks the engine services' files under
`<blob dir>/engines` (EBS ...) too, as `check_data_dir` does a data dir's (`check_engines`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from strata.services.dynamodb import fsck as dynamodb_fsck
from strata.services.ec2 import fsck as ec2_fsck
from strata.services.s3 import fsck as s3_fsck
from strata.sim.clock import clock
from strata.storage.fsck import (
    Finding,
    Report,
    check_databases,
    check_shared_temp_files,
    check_temp_files,
    remove_temp_files,
)

SERVICES = ("s3", "dynamodb", "ec2")


def check_data_dir(
    data_dir: Path,
    *,
    repair: bool = False,
    hashes: bool = False,
    include_services: Iterable[str] = SERVICES,
    live: bool = False,
) -> Report:
    """Check `data_dir`; with `repair`, remove what is safe to remove. `live` reads only (a
    server may be running: databases are opened read-only, and nothing is repaired)."""
    report = Report(Path(data_dir))
    services = set(include_services)
    if not live:
        check_databases(report)
    check_temp_files(
        report,
        [report.data_dir / "s3" / s3_fsck.TEMP_DIR, report.data_dir / "ec2" / ec2_fsck.BLOCK_DIR / "tmp"],
    )
    if "s3" in services:
        s3_fsck.check(report, report.data_dir / "s3", hashes=hashes, live=live)
    if "dynamodb" in services:
        dynamodb_fsck.check(report, report.data_dir / "dynamodb", live=live)
    if "ec2" in services:
        ec2_fsck.check(report, report.data_dir / "ec2", live=live)
    if repair and not live:
        s3_fsck.repair(report, report.data_dir / "s3")
        dynamodb_fsck.repair(report)
        ec2_fsck.repair(report, report.data_dir / "ec2")
        remove_temp_files(report)
    return report


GRACE = 3600.0  # seconds an unreferenced blob or backup file is left to a write in flight


def check_shared(
    url: str, blob_dir: Path, *, repair: bool = False, hashes: bool = False, grace: float = GRACE
) -> Report:
    """Check S3 and DynamoDB kept in PostgreSQL `url` against their files under `blob_dir`, and
    the engine services' files under `blob_dir`/engines (`check_engines`)."""
    from strata.storage.postgres import PostgresStore

    report = Report(Path(blob_dir))
    s3_root = report.data_dir / "s3"
    backups = report.data_dir / dynamodb_fsck.BACKUP_DIR
    check_shared_temp_files(report, s3_root / s3_fsck.TEMP_DIR, sorted(backups.glob("*.tmp")), grace)
    schemas = _schemas(url)
    if "s3" in schemas:
        s3 = PostgresStore(url, "s3", pool_size=1)
        try:
            with s3.snapshot() as conn:
                s3_fsck.check_shared(report, s3_root, conn, hashes=hashes, grace=grace)
            s3_fsck.recheck_missing(report, s3.reader())
            if repair:
                s3_fsck.repair(report, s3_root, s3)
        finally:
            s3.close()
    if "dynamodb" in schemas:
        ddb = PostgresStore(url, "dynamodb", pool_size=1)
        try:
            with ddb.snapshot() as conn:
                dynamodb_fsck.check_tables(report, conn)
                dynamodb_fsck.check_backups(report, conn, backups, grace=grace)
            dynamodb_fsck.recheck_missing(report, ddb)
        finally:
            ddb.close()
        if repair:
            dynamodb_fsck.repair(report)
    if repair:
        remove_temp_files(report)
    check_engines(report, url, repair=repair, grace=grace)
    return report


ENGINE_SERVICES = ("ec2",)  # engine services with files fsck knows (EBS); the rest are engines'


def check_engines(report: Report, url: str, *, repair: bool = False, grace: float = GRACE) -> None:
    """The engine services' files under `<blob dir>/engines` (strata.gateway.engine_host), checked
    as a data dir's. One gateway at a time, the engine host, runs them, holding `strata:engines`:
    - no host holds it: fsck holds it meanwhile (no gateway becomes the host: the engine services
      answer as while a host is replaced) and runs every check and `repair`, as offline. A host
      that lost its lock stopped writing before PostgreSQL let the lock go (it fences itself
      within ~3 s, the server frees the lock after ~11 s: strata.storage.engine_lock);
    - a host runs: only the checks `check_data_dir` runs beside a live server, read-only (no
      SQLite integrity check, no orphans: a block file is published before its row commits),
      temp files only once `grace` old, nothing repaired; a note says so."""
    from strata.storage.engine_lock import held_unless_hosted

    root = report.data_dir / "engines"
    if not root.is_dir():
        return
    with held_unless_hosted(url) as free:
        sub = check_data_dir(root, repair=repair and free, include_services=ENGINE_SERVICES, live=not free)
    if not free:
        now = clock.real_time()
        sub.findings = [f for f in sub.findings if f.kind != "temp_file" or _age(Path(f.path), now) >= grace]
        if sub.findings:  # a file the host freed after its rows were read looks lost: a second
            # look (rows read anew) must find the same problem for it to be reported
            again = {
                _key(f) for f in check_data_dir(root, include_services=ENGINE_SERVICES, live=True).findings
            }
            sub.findings = [f for f in sub.findings if _key(f) in again]
        report.notes.append(
            f"{root}: an engine host runs (it holds the strata:engines lock): its files were checked "
            "read-only (no database integrity check, no orphans, young temp files left alone)"
            + (", nothing repaired there" if repair else "")
            + "; stop every gateway for the full check"
        )
    report.findings.extend(sub.findings)
    report.databases.update(sub.databases)
    report.checked.update({f"engines_{k}": v for k, v in sub.checked.items()})


def _key(f: Finding) -> tuple[str, str, str]:
    return f.kind, f.path, f.detail.split(";")[0]  # what is wrong, without who maps it


def _age(path: Path, now: float) -> float:
    try:
        return now - path.stat().st_mtime
    except OSError:
        return 0.0  # gone: it was a write in flight


def _schemas(url: str) -> set[str]:
    import psycopg

    with psycopg.connect(url, connect_timeout=15) as c:
        return {r[0] for r in c.execute("SELECT schema_name FROM information_schema.schemata")}
