"""EBS's part of `strata fsck`: block files against the `blocks` and `block_map` tables.

A row in `blocks` must have its file, of the recorded size (a missing or short file is data
loss, reported, never repaired); every `block_map` row must name a known block. A block file no
row names is what a crash between publishing and committing leaves: an orphan, removed by
`--repair` (and by the server at start-up). Maps of volumes and snapshots that no longer have a
record are reported too; the server drops them at start-up.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from strata.storage.fsck import Report, open_readonly

DB_NAME = "ec2.db"
BLOCK_DIR = "blocks"


def check(report: Report, root: Path, *, live: bool = False) -> None:
    db_path = root / DB_NAME
    if not db_path.exists():
        return
    conn = open_readonly(db_path, live=live)
    try:
        sizes = dict(conn.execute("SELECT block, size FROM blocks"))
        for block_id, size in sizes.items():
            path = root / BLOCK_DIR / block_id[:2] / block_id
            if not path.exists():
                report.add("missing_block", path, f"block {block_id} of {size} bytes has no file")
            elif path.stat().st_size != size:
                report.add("block_size_mismatch", path, f"{path.stat().st_size} bytes, recorded {size}")
        for (block_id,) in conn.execute("SELECT DISTINCT block FROM block_map"):
            if block_id not in sizes:
                report.add("dangling_block_ref", db_path, f"block_map names unknown block {block_id}")
        records = {
            json.loads(body)["id"]
            for (body,) in conn.execute("SELECT body FROM documents WHERE kind IN ('volume', 'snapshot')")
        }
        for (owner,) in conn.execute("SELECT DISTINCT owner FROM block_map"):
            if owner not in records:
                report.add("orphan_block_map", db_path, f"blocks mapped for {owner}, which has no record")
        files = 0
        for path in sorted((root / BLOCK_DIR).glob("??/*")):
            files += 1
            if path.name not in sizes and not live:
                report.add("orphan_block", path, f"{path.stat().st_size} bytes", repairable=True)
        report.checked["ebs_blocks"] = files
    except sqlite3.DatabaseError as e:
        report.add("database_unreadable", db_path, str(e))
    finally:
        conn.close()


def repair(report: Report, root: Path) -> None:
    """Remove orphan block files (nothing names them)."""
    for f in report.of("orphan_block"):
        p = Path(f.path)
        if p.is_relative_to(root / BLOCK_DIR):
            p.unlink(missing_ok=True)
            f.repaired = True
