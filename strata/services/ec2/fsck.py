"""EBS's part of `strata fsck`: block files, volume files and snapshots against the tables.

Blocks: a row in `blocks` must have its file, of the recorded size (a missing or short file is
data loss, reported with the volumes and snapshots that map it, never repaired); every
`block_map` row must name a known block. A block file no row names is what a crash between
publishing and committing leaves: an orphan, removed by `--repair` (and by the server at
start-up). Maps of volumes and snapshots that no longer have a record are reported too; the
server drops them at start-up.

Volumes: a plain volume's bytes are the file `volumes/<id>.img`, created when the volume is
first served (its `volume-file` record says so). A volume with that record but no file has lost
its data (reported); a file or a `volume-file` record of a volume that no longer exists is what
a crash during DeleteVolume leaves (repairable: removed).

Snapshots: a completed snapshot recorded the bytes of the blocks it maps (`full_bytes`); if its
map now adds up to less, block rows or files were lost (reported, never repaired).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from strata.storage.fsck import Report, open_readonly

DB_NAME = "ec2.db"
BLOCK_DIR = "blocks"
VOLUME_DIR = "volumes"


def check(report: Report, root: Path, *, live: bool = False) -> None:
    db_path = root / DB_NAME
    if not db_path.exists():
        return
    conn = open_readonly(db_path, live=live)
    try:
        # One read transaction: the tables agree with each other even while a server writes
        # (a block row and the map rows naming it commit together).
        conn.execute("BEGIN")
        docs = {
            kind: {json.loads(body)["id"]: json.loads(body) for (body,) in rows}
            for kind, rows in (
                (k, conn.execute("SELECT body FROM documents WHERE kind = ?", (k,)))
                for k in ("volume", "snapshot")
            )
        }
        _check_blocks(report, root, conn, docs, live=live)
        _check_volumes(report, root, conn, docs["volume"], live=live)
        _check_snapshots(report, db_path, conn, docs["snapshot"])
    except sqlite3.DatabaseError as e:
        report.add("database_unreadable", db_path, str(e))
    finally:
        conn.close()


def _check_blocks(
    report: Report, root: Path, conn: sqlite3.Connection, docs: dict[str, dict], *, live: bool
) -> None:
    db_path = root / DB_NAME
    sizes = dict(conn.execute("SELECT block, size FROM blocks"))
    for block_id, size in sizes.items():
        path = root / BLOCK_DIR / block_id[:2] / block_id
        if not path.exists():
            report.add(
                "missing_block", path, f"block {block_id} of {size} bytes has no file{_users(conn, block_id)}"
            )
        elif path.stat().st_size != size:
            report.add(
                "block_size_mismatch",
                path,
                f"{path.stat().st_size} bytes, recorded {size}{_users(conn, block_id)}",
            )
    for (block_id,) in conn.execute("SELECT DISTINCT block FROM block_map"):
        if block_id not in sizes:
            report.add(
                "dangling_block_ref",
                db_path,
                f"block_map names unknown block {block_id}{_users(conn, block_id)}",
            )
    records = set(docs["volume"]) | set(docs["snapshot"])
    for (owner,) in conn.execute("SELECT DISTINCT owner FROM block_map"):
        if owner not in records:
            report.add("orphan_block_map", db_path, f"blocks mapped for {owner}, which has no record")
    files = 0
    for path in sorted((root / BLOCK_DIR).glob("??/*")):
        files += 1
        if path.name not in sizes and not live:
            report.add("orphan_block", path, f"{path.stat().st_size} bytes", repairable=True)
    report.checked["ebs_blocks"] = files


def _users(conn: sqlite3.Connection, block_id: str) -> str:
    owners = [
        r[0]
        for r in conn.execute("SELECT DISTINCT owner FROM block_map WHERE block = ? LIMIT 6", (block_id,))
    ]
    if not owners:
        return ""
    more = ", ..." if len(owners) > 5 else ""
    return f"; mapped by {', '.join(owners[:5])}{more}"


def _check_volumes(
    report: Report, root: Path, conn: sqlite3.Connection, volumes: dict[str, dict], *, live: bool
) -> None:
    db_path = root / DB_NAME
    opened = {vid for (vid,) in conn.execute("SELECT id FROM documents WHERE kind = 'volume-file'")}
    files = {p.stem: p for p in sorted((root / VOLUME_DIR).glob("*.img"))}
    for vid in sorted(opened):
        if vid not in volumes:
            if not live:
                report.add(
                    "orphan_volume_state",
                    db_path,
                    f"volume-file record of {vid}, which has no volume record",
                    repairable=True,
                    ref=(vid,),
                )
        elif vid not in files and not volumes[vid].get("encrypted"):
            report.add("missing_volume_file", root / VOLUME_DIR / f"{vid}.img", f"the data of volume {vid}")
    for vid, path in files.items():
        if vid not in volumes and not live:
            report.add("orphan_volume_file", path, f"{path.stat().st_size} bytes (apparent)", repairable=True)
    report.checked["ebs_volumes"] = len(volumes)
    report.checked["ebs_volume_files"] = len(files)


def _check_snapshots(
    report: Report, db_path: Path, conn: sqlite3.Connection, snapshots: dict[str, dict]
) -> None:
    for sid, doc in sorted(snapshots.items()):
        if doc.get("state") != "completed" or "full_bytes" not in doc:
            continue
        (stored,) = conn.execute(
            "SELECT COALESCE(SUM(b.size), 0) FROM (SELECT DISTINCT block FROM block_map WHERE owner = ?) m "
            "JOIN blocks b ON b.block = m.block",
            (sid,),
        ).fetchone()
        if stored != doc["full_bytes"]:
            report.add(
                "snapshot_blocks_missing",
                db_path,
                f"snapshot {sid} maps {stored} bytes of blocks, recorded {doc['full_bytes']} when it completed",
            )
    report.checked["ebs_snapshots"] = len(snapshots)


def repair(report: Report, root: Path) -> None:
    """Remove orphan block files, volume files and volume-file records (nothing names them)."""
    for f in report.of("orphan_block") + report.of("orphan_volume_file"):
        p = Path(f.path)
        if p.is_relative_to(root / BLOCK_DIR) or p.is_relative_to(root / VOLUME_DIR):
            p.unlink(missing_ok=True)
            f.repaired = True
    states = report.of("orphan_volume_state")
    if states:
        conn = sqlite3.connect(root / DB_NAME, timeout=30)
        try:
            with conn:
                for f in states:
                    conn.execute("DELETE FROM documents WHERE kind = 'volume-file' AND id = ?", f.ref)
                    f.repaired = True
        finally:
            conn.close()
