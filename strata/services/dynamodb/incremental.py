"""Incremental exports: the changes of a table in a window [ExportFromTime, ExportToTime) of its
point-in-time history, in DynamoDB's incremental layout.

Each changed key gives one record, compacted to its final state in the window, as DynamoDB does:

    {"Metadata":{"WriteTimestampMicros":{"N":"..."}},"Keys":{...},"NewImage":{...},"OldImage":{...}}

OldImage is the item as it was just before ExportFromTime (absent: it did not exist), NewImage
as it was just before ExportToTime (absent: deleted); NEW_IMAGE views carry no OldImage, so a
deletion is its Keys alone. A key created and deleted inside the window gives no record.

Both images come from the PITR undo log (pitr.py): the before-image of a key's first change at or
after an instant is the item as it was then; a key with no change after ExportToTime has its
current item. One read transaction of a private connection makes it a consistent snapshot.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from strata.services.dynamodb import ion, pitr
from strata.services.dynamodb.store import loads

MIN_WINDOW = 15 * 60.0
MAX_WINDOW = 24 * 3600.0

Change = tuple[bytes | None, bytes | None, float]  # (old item bytes, new item bytes, last write)


def changes(db_path: Path | str, tid: int, start: float, end: float, emit: Callable[[Change], None]) -> None:
    """Call emit((old, new, last write time)) for every key changed in [start, end), in key order.

    Blocking: run it in a worker thread."""
    conn = pitr.snapshot(db_path)
    try:
        first = pitr.first_seq_after(conn, start - pitr.SKEW_SECONDS)
        # SQLite gives the bare column `before` from the min(seq) row only when min() is the
        # query's one aggregate: the last write of each key is a second query.
        window = conn.execute(
            pitr.first_changes(conn, "seq >= ? AND tid = ? AND at >= ? AND at < ?"), (first, tid, start, end)
        ).fetchall()
        last_write = {
            (pk, sk): at
            for pk, sk, at in conn.execute(
                "SELECT pk, sk, max(at) FROM ddb_history WHERE seq >= ? AND tid = ? AND at >= ? AND at < ? "
                "GROUP BY pk, sk",
                (first, tid, start, end),
            )
        }
        later = {
            (pk, sk): before
            for pk, sk, before, _ in conn.execute(
                pitr.first_changes(conn, "seq >= ? AND tid = ? AND at >= ?"), (first, tid, end)
            )
        }
        for pk, sk, old, _seq in window:
            if (pk, sk) in later:
                new = later[(pk, sk)]
            else:
                row = conn.execute(
                    "SELECT item FROM ddb_items WHERE tid = ? AND pk = ? AND sk = ?", (tid, pk, sk)
                ).fetchone()
                new = row[0] if row else None
            if old is None and new is None:
                continue  # created and deleted inside the window
            emit((old, new, last_write[(pk, sk)]))
        conn.execute("COMMIT")
    finally:
        conn.close()


def record(change: Change, key_names: list[str], view: str) -> dict:
    """The incremental record of one change, items decoded (binaries as bytes)."""
    old_blob, new_blob, last = change
    old = loads(old_blob) if old_blob is not None else None
    new = loads(new_blob) if new_blob is not None else None
    image: Any = new if new is not None else old
    out: dict = {
        "Metadata": {"WriteTimestampMicros": {"N": str(int(round(last * 1_000_000)))}},
        "Keys": {k: image[k] for k in key_names if k in image},
    }
    if new is not None:
        out["NewImage"] = new
    if old is not None and view == "NEW_AND_OLD_IMAGES":
        out["OldImage"] = old
    return out


def json_line(rec: dict, encode: Callable[[Any], Any]) -> bytes:
    return json.dumps({k: encode(v) for k, v in rec.items()}, separators=(",", ":")).encode()


def ion_line(rec: dict) -> bytes:
    """The record in Ion: images as items are (ion.py), WriteTimestampMicros an Ion int."""
    micros = int(rec["Metadata"]["WriteTimestampMicros"]["N"])
    value: dict = {"Metadata": {"WriteTimestampMicros": micros}}
    for part in ("Keys", "NewImage", "OldImage"):
        if part in rec:
            value[part] = ion.struct(rec[part])
    return ion.dumps_line(value)
