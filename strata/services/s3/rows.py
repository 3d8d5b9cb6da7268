"""The rows of S3's metadata: the schema (buckets, object versions, multipart uploads and parts),
the dataclasses a read makes of a bucket's and an object version's row, and the key-range bound
listings scan to. store.py (S3Store) reads and writes them; upload_rows.py holds the statements
of multipart uploads and parts. Kept apart from the store so the many modules that only handle
rows (policy, listing, locking, logging) name them without the SQL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS buckets (
    name TEXT PRIMARY KEY,
    region TEXT NOT NULL,
    created REAL NOT NULL,
    versioning TEXT NOT NULL DEFAULT '',
    tags TEXT,
    config TEXT NOT NULL DEFAULT '{}'
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS objects (
    id INTEGER PRIMARY KEY,
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    version_id TEXT NOT NULL,
    latest INTEGER NOT NULL,
    dm INTEGER NOT NULL,
    blob TEXT,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    modified REAL NOT NULL,
    storage_class TEXT NOT NULL,
    attrs TEXT NOT NULL,
    data BLOB
);
CREATE UNIQUE INDEX IF NOT EXISTS objects_versions ON objects(bucket, key, id DESC);
CREATE INDEX IF NOT EXISTS objects_current ON objects(bucket, key) WHERE latest = 1 AND dm = 0;
CREATE INDEX IF NOT EXISTS objects_blob ON objects(blob) WHERE blob IS NOT NULL;
CREATE INDEX IF NOT EXISTS objects_tiered ON objects(bucket, id) WHERE storage_class = 'INTELLIGENT_TIERING';

CREATE TABLE IF NOT EXISTS uploads (
    upload_id TEXT PRIMARY KEY,
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    initiated REAL NOT NULL,
    attrs TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS uploads_by_key ON uploads(bucket, key, initiated);

CREATE TABLE IF NOT EXISTS parts (
    upload_id TEXT NOT NULL,
    part_number INTEGER NOT NULL,
    blob TEXT NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    modified REAL NOT NULL,
    checksums TEXT NOT NULL,
    PRIMARY KEY (upload_id, part_number)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS parts_blob ON parts(blob);
"""

OBJ_COLS = "id, bucket, key, version_id, latest, dm, blob, size, etag, modified, storage_class, attrs"


@dataclass
class ObjectRow:
    """One version of one key (an object or a delete marker)."""

    id: int
    bucket: str
    key: str
    version_id: str
    latest: bool
    dm: bool
    blob: str | None
    size: int
    etag: str  # quoted, as S3 returns it
    modified: float
    storage_class: str
    # Content-* headers, Expires, user metadata, checksums, part sizes, tags, website redirect ...
    attrs: dict[str, Any] = field(default_factory=dict)
    # A small object's bytes (kept in its row) when it was read with them (`with_data`: a GET
    # reads the row and its bytes in one statement); None: not read (`S3Store.inline_bytes`).
    data: bytes | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_row(cls, r: tuple) -> ObjectRow:
        row = cls(
            r[0], r[1], r[2], r[3], bool(r[4]), bool(r[5]), r[6], r[7], r[8], r[9], r[10], json.loads(r[11])
        )
        if len(r) > 12 and row.blob is None:  # read with its data
            row.data = bytes(r[12]) if r[12] is not None else b""
        return row


@dataclass
class BucketRow:
    name: str
    region: str
    created: float
    versioning: str  # '', 'Enabled' or 'Suspended'
    tags: dict[str, str] | None
    config: dict[str, Any]
    # (owner,) once policy.py found that no bucket policy or ACL applies to any request on this
    # bucket (strata.auth.enforce then decides without asking); a changed bucket is a new row.
    authz_open: tuple[str | None] | None = field(default=None, compare=False, repr=False)
    # (owner, policy) once policy.py found a bucket policy and no ACLs: the policy every caller of
    # the owner's account is under (the authorizer finds its remembered decisions without asking)
    authz_policy: tuple[str | None, Any] | None = field(default=None, compare=False, repr=False)
    # Shared (PostgreSQL) stores only: the stored (versioning, tags, config) text the row was
    # made from, and the request (its asyncio task) that last found it unchanged in the database.
    stored: tuple | None = field(default=None, compare=False, repr=False)
    checked: object = field(default=None, compare=False, repr=False)
    # PostgreSQL only: the stored row's xmin (the transaction that wrote it) as last read, so a
    # write can check the row is still the one its decisions came from (`insert_version`'s
    # `unchanged`) inside a statement it sends anyway, instead of reading the row again.
    xmin: str | None = field(default=None, compare=False, repr=False)


class BucketChanged(Exception):
    """The bucket's stored row is no longer the one a write was decided from (insert_version)."""


def prefix_end(prefix: str) -> str | None:
    """The least string above every string that starts with `prefix` (None: no upper bound).

    SQLite compares TEXT as UTF-8 bytes and UTF-8 preserves code point order, so bumping the last
    code point gives the bound of a prefix range scan.
    """
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF:
            nxt = last + 1
            if 0xD800 <= nxt <= 0xDFFF:
                nxt = 0xE000
            return prefix[:-1] + chr(nxt)
        prefix = prefix[:-1]
    return None
