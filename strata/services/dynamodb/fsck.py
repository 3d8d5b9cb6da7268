"""DynamoDB's part of `strata fsck`: the item and index counts kept beside the items.

DescribeTable's ItemCount/TableSizeBytes and each index's count are kept incrementally in the
same transactions as the items (store.py), so after any crash they must equal a recount. A
mismatch is reported, never repaired here (the server's own recount is the fix).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from strata.storage.fsck import Report, open_readonly

DB_NAME = "dynamodb.sqlite3"


def check(report: Report, root: Path, *, live: bool = False) -> None:
    db_path = root / DB_NAME
    if not db_path.exists():
        return
    conn = open_readonly(db_path, live=live)
    try:
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
    except sqlite3.DatabaseError as e:
        report.add("database_unreadable", db_path, str(e))
    finally:
        conn.close()
