"""`strata fsck`: check a data dir offline (the server stopped), optionally repair it.

Checks every Strata SQLite database (integrity_check), temp files of writes that never
finished, S3's metadata against its blob files, DynamoDB's kept counts and backup files, and
EBS's block files, volume files and snapshots; see strata/storage/fsck.py and each service's
fsck module. `repair=True` removes only what no metadata refers to (orphan blobs and blocks,
temp files, parts of uploads that are gone, files and records of deleted volumes).

`check_shared` does the same for the layout several gateways share (`--metadata` PostgreSQL,
`--blob-dir`), while they run: what a running gateway may still be writing is left alone (its
blob store instance holds its lock; an unreferenced blob or file younger than `GRACE` may be a
write in flight, published before its row commits).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from strata.services.dynamodb import fsck as dynamodb_fsck
from strata.services.ec2 import fsck as ec2_fsck
from strata.services.s3 import fsck as s3_fsck
from strata.storage.fsck import (
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
    """Check S3 and DynamoDB kept in PostgreSQL `url` against their files under `blob_dir`."""
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
    return report


def _schemas(url: str) -> set[str]:
    import psycopg

    with psycopg.connect(url, connect_timeout=15) as c:
        return {r[0] for r in c.execute("SELECT schema_name FROM information_schema.schemata")}
