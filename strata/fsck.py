"""`strata fsck`: check a data dir offline (the server stopped), optionally repair it.

Checks every Strata SQLite database (integrity_check), temp files of writes that never
finished, S3's metadata against its blob files, DynamoDB's kept counts and EBS's block files,
volume files and snapshots; see strata/storage/fsck.py and each service's fsck module.
`repair=True` removes only what no metadata refers to (orphan blobs and blocks, temp files,
parts of uploads that are gone, files and records of deleted volumes).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from strata.services.dynamodb import fsck as dynamodb_fsck
from strata.services.ec2 import fsck as ec2_fsck
from strata.services.s3 import fsck as s3_fsck
from strata.storage.fsck import Report, check_databases, check_temp_files, remove_temp_files

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
        ec2_fsck.repair(report, report.data_dir / "ec2")
        remove_temp_files(report)
    return report
