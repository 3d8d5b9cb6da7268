"""DynamoDB's part of `strata fsck`: the item counts kept beside the items, and backup files.

DescribeTable's ItemCount/TableSizeBytes and each index's count are kept incrementally in the
same transactions as the items (store.py), so after any crash they must equal a recount. A
mismatch is reported, never repaired here (the server's own recount is the fix). Backup files
are checked against their records (`check_backups`); only files nothing names are removed.
The same checks run on the data dir's SQLite file and, with several gateways, on PostgreSQL.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from strata.services.dynamodb.backups import KIND as BACKUP_KIND
from strata.sim.clock import clock
from strata.storage.fsck import Report, open_readonly

DB_NAME = "dynamodb.sqlite3"
BACKUP_DIR = "dynamodb-backups"  # under the data dir's dynamodb/, or --blob-dir


def check(report: Report, root: Path, *, live: bool = False) -> None:
    db_path = root / DB_NAME
    if not db_path.exists():
        return
    conn = open_readonly(db_path, live=live)
    try:
        check_tables(report, conn)
        # Offline nothing writes a backup file: any unrecorded one is a leftover.
        check_backups(report, conn, root / BACKUP_DIR, grace=float("inf") if live else 0.0)
    except sqlite3.DatabaseError as e:
        report.add("database_unreadable", db_path, str(e))
    finally:
        conn.close()


def check_tables(report: Report, conn: Any) -> None:
    """Each table's kept item count and size against a recount (`conn`: one consistent view)."""
    n = 0
    for tid, name, meta, item_count, size_bytes in conn.execute(
        "SELECT tid, name, meta, item_count, size_bytes FROM ddb_tables"
    ):
        if json.loads(meta).get("status") == "DELETING":
            continue
        n += 1
        count, size = conn.execute(
            "SELECT count(*), coalesce(sum(size), 0) FROM ddb_items WHERE tid = ?", (tid,)
        ).fetchone()
        if (count, size) != (item_count, size_bytes):
            report.add(
                "count_mismatch",
                f"dynamodb table {name}",
                f"recorded {item_count} items / {size_bytes} bytes, found {count} / {size}",
            )
    report.checked["dynamodb_tables"] = n


def check_backups(report: Report, conn: Any, directory: Path, *, grace: float) -> None:
    """Backup files against their records (documents of kind `backups.KIND`) and the restores in
    progress that read one: an AVAILABLE backup without its file is `missing_backup_file`; a
    file nothing names is `orphan_backup_file` (removable once older than `grace` seconds: a
    gateway writes a point-in-time restore's file before it records the restore)."""
    files = {p.name: p for p in directory.iterdir() if p.is_file()} if directory.is_dir() else {}
    named: set[str] = set()
    n = 0
    for (body,) in conn.execute("SELECT body FROM documents WHERE kind = ?", (BACKUP_KIND,)):
        doc = json.loads(body)
        named.add(doc["file"])
        n += 1
        if doc.get("status", "AVAILABLE") == "AVAILABLE" and doc["file"] not in files:
            report.add(
                "missing_backup_file",
                f"dynamodb backup {doc['arn']}",
                f"file {doc['file']}",
                ref=(doc["arn"],),
            )
    for (meta,) in conn.execute("SELECT meta FROM ddb_tables"):
        restore = json.loads(meta).get("restore") or {}
        if restore.get("file"):
            named.add(restore["file"])
    now = clock.real_time()
    for name, p in sorted(files.items()):
        if name in named or name.endswith(".tmp"):
            continue  # (temp files are the temp-file check's)
        try:
            age = now - p.stat().st_mtime
        except FileNotFoundError:
            continue
        if age < grace:
            continue
        report.add("orphan_backup_file", p, f"{p.stat().st_size} bytes", repairable=True)
    report.checked["dynamodb_backups"] = n


def recheck_missing(report: Report, store: Any) -> None:
    """Drop missing backup files whose record is gone now (`store`: committed data): a running
    gateway deleted the backup after the snapshot was taken (its record first, then its file)."""
    report.findings = [
        f
        for f in report.findings
        if f.kind != "missing_backup_file" or store.get_doc(BACKUP_KIND, f.ref[0]) is not None
    ]


def repair(report: Report) -> None:
    """Remove backup files nothing names (records are never touched)."""
    for f in report.of("orphan_backup_file"):
        if f.repairable:
            Path(f.path).unlink(missing_ok=True)
            f.repaired = True
