"""Multipart uploads' rows: the `uploads` and `parts` tables (schema in rows.py).

`UploadRows` is a base class of S3Store (store.py), not a wrapper: its methods are the store's
own, found on the class like any other, so a part upload pays no extra call.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from strata.services.s3.dialect import nul_free

if TYPE_CHECKING:
    from strata.services.s3.dialect import PostgresDialect, SqliteDialect


class UploadRows:
    """The SQL of multipart uploads and parts, on S3Store's `db` and `sql`."""

    db: Any
    sql: PostgresDialect | SqliteDialect

    if TYPE_CHECKING:  # S3Store's own

        def refuse_key(self, key: str) -> None: ...

        def blob_referenced(self, blob: str) -> bool: ...

    def uploads_page(self, bucket: str, after: str, limit: int) -> list[tuple[str, str, float]]:
        """(upload_id, key, initiated) of a bucket's uploads after `after`, in upload id order."""
        return [
            (r[0], r[1], r[2])
            for r in self.db.query(
                "SELECT upload_id, key, initiated FROM uploads WHERE bucket = ? AND upload_id > ? "
                "ORDER BY upload_id LIMIT ?",
                (bucket, after, limit),
            )
        ]

    def insert_upload(self, upload_id: str, bucket: str, key: str, initiated: float, attrs: dict) -> None:
        self.refuse_key(key)
        self.db.execute(
            "INSERT INTO uploads(upload_id, bucket, key, initiated, attrs) VALUES (?,?,?,?,?)",
            (upload_id, bucket, key, initiated, json.dumps(attrs)),
        )

    def upload(self, upload_id: str) -> tuple[str, str, float, dict] | None:
        if self.sql.postgres and "\x00" in upload_id:
            return None  # (an id from a request: none has one)
        r = self.db.query_one(
            "SELECT bucket, key, initiated, attrs FROM uploads WHERE upload_id = ?", (upload_id,)
        )
        return (r[0], r[1], r[2], json.loads(r[3])) if r else None

    def delete_upload(self, upload_id: str) -> list[str]:
        """Remove an upload and its parts; returns the part blobs to unlink."""
        blobs = [b for (b,) in self.db.query("SELECT blob FROM parts WHERE upload_id = ?", (upload_id,))]
        self.db.execute("DELETE FROM parts WHERE upload_id = ?", (upload_id,))
        self.db.execute("DELETE FROM uploads WHERE upload_id = ?", (upload_id,))
        return [b for b in blobs if not self.blob_referenced(b)]

    def uploads_from(
        self, bucket: str, start_key: str, end: str | None
    ) -> Iterator[tuple[str, str, float, dict]]:
        """(upload_id, key, initiated, attrs) with start_key <= key < end, in key then initiation
        order, stepped lazily from the cursor."""
        if self.sql.postgres:
            start_key = nul_free(start_key)[0]
            end = end if end is None else nul_free(end)[0]
        args: list[Any] = [bucket, start_key]
        sql = "SELECT upload_id, key, initiated, attrs FROM uploads WHERE bucket = ? AND key >= ?"
        if end is not None:
            sql += " AND key < ?"
            args.append(end)
        sql += " ORDER BY key, initiated, upload_id"
        return ((r[0], r[1], r[2], json.loads(r[3])) for r in self.db.execute(sql, args))

    def put_part(
        self,
        upload_id: str,
        number: int,
        blob: str,
        size: int,
        etag: str,
        modified: float,
        checksums: dict[str, str],
    ) -> list[str]:
        """Store a part (replacing an earlier upload of the same number); returns freed blobs."""
        old = self.db.query_one(
            "SELECT blob FROM parts WHERE upload_id = ? AND part_number = ?", (upload_id, number)
        )
        self.db.execute(
            "INSERT INTO parts(upload_id, part_number, blob, size, etag, modified, checksums) VALUES (?,?,?,?,?,?,?) "
            "ON CONFLICT(upload_id, part_number) DO UPDATE SET blob = excluded.blob, size = excluded.size, "
            "etag = excluded.etag, modified = excluded.modified, checksums = excluded.checksums",
            (upload_id, number, blob, size, etag, modified, json.dumps(checksums)),
        )
        if old and old[0] != blob and not self.blob_referenced(old[0]):
            return [old[0]]
        return []

    def parts(self, upload_id: str, after: int = 0, limit: int = 100_000) -> list[dict[str, Any]]:
        rows = self.db.query(
            "SELECT part_number, blob, size, etag, modified, checksums FROM parts WHERE upload_id = ? AND part_number > ? "
            "ORDER BY part_number LIMIT ?",
            (upload_id, after, limit),
        )
        return [
            {
                "PartNumber": r[0],
                "blob": r[1],
                "Size": r[2],
                "ETag": r[3],
                "modified": r[4],
                "checksums": json.loads(r[5]),
            }
            for r in rows
        ]

    def delete_parts(self, upload_id: str) -> None:
        self.db.execute("DELETE FROM parts WHERE upload_id = ?", (upload_id,))
        self.db.execute("DELETE FROM uploads WHERE upload_id = ?", (upload_id,))
