"""S3's part of `strata fsck`: its metadata (objects, uploads, parts) against its blob files.

Found and reported: a row whose blob file is missing or has the wrong size (or, with
`hashes=True`, wrong bytes: the MD5 of a single-PUT object is its ETag), an inline row whose
bytes do not match its size, parts whose upload is gone, blob files no row names (orphans) and
temp files (storage/fsck.py). `repair` removes only orphans, temp files and
upload-less parts (the parts' blobs only when nothing else names them); a row that names a
missing blob is reported, never deleted: the metadata is the record of what was acknowledged.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from strata.services.s3.encryption import (
    Corrupt,
    RootKey,
    bytes_reader,
    file_reader,
    read_plain,
    stored_size,
)
from strata.sim.clock import clock
from strata.storage.blobs import instance_alive, writer_of
from strata.storage.fsck import Report, open_readonly

BLOB_DIR = "blobs"
TEMP_DIR = "tmp"


def _blob_path(root: Path, blob_id: str) -> Path:
    return root / BLOB_DIR / blob_id[:2] / blob_id[2:4] / blob_id


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def check(report: Report, root: Path, *, hashes: bool = False, live: bool = False) -> None:
    """Check the S3 data under `root` (data_dir/s3); findings go to `report`."""
    db_path = root / "meta.db"
    if not db_path.exists():
        return
    conn = open_readonly(db_path, live=live)
    try:
        _check_rows(report, root, conn, hashes=hashes)
    except sqlite3.DatabaseError as e:
        report.add("database_unreadable", db_path, str(e))
    finally:
        conn.close()


def _sse_s3_md5(root: Path, source: Path | bytes, size: int, attrs: dict) -> str | None:
    """MD5 of an SSE-S3 object's plaintext (every chunk's tag checked on the way); "" when a
    chunk does not open; None when it cannot be checked offline (KMS, SSE-C, no root key)."""
    sse = attrs["sse"]
    key_file = root / "sse-root.key"
    if sse.get("alg") != "AES256" or sse.get("customer") or not key_file.exists():
        return None
    try:
        keys = [RootKey.load(key_file).unwrap(base64.b64decode(sse["wrapped"]))]
        h = hashlib.md5()
        if isinstance(source, bytes):
            pieces = read_plain(bytes_reader(source), keys, [size], 0, size - 1)
            for piece in pieces:
                h.update(piece)
        else:
            with open(source, "rb") as f:
                for piece in read_plain(file_reader(f.fileno()), keys, [size], 0, size - 1):
                    h.update(piece)
        return h.hexdigest()
    except Corrupt:
        return ""


def _on_disk(size: int, attrs: str | None) -> tuple[int, bool]:
    """(bytes stored, whether encrypted) of an object or part of `size` plaintext bytes: an
    encrypted one is its segments' ciphertext (encryption.py), and its ETag says nothing of them."""
    a = json.loads(attrs) if attrs else {}
    sse = a.get("sse")
    if not sse:
        return size, False
    layers = 2 if sse.get("alg") == "aws:kms:dsse" else 1
    return stored_size(a.get("parts") or [size], layers), True


def check_shared(report: Report, root: Path, conn: Any, *, hashes: bool, grace: float) -> None:
    """Check S3 kept in PostgreSQL (`conn`: a PgConnection on the `s3` schema, in one snapshot)
    against its blobs under `root` (--blob-dir/s3), while gateways may be running.

    The blobs are listed before the rows are read: a blob published by a gateway and committed
    meanwhile is then seen with its row, never taken for an orphan. An unreferenced blob is an
    orphan only once older than `grace` seconds (a write in flight publishes before it commits),
    and removable only if the gateway instance that wrote it is gone (BlobStore's instance locks)."""
    blob_root = root / BLOB_DIR
    listed = sorted(blob_root.glob("*/*/*")) if blob_root.is_dir() else []
    now = clock.real_time()

    def kept(p: Path) -> str | None:
        writer = writer_of(p.name)
        if instance_alive(root, writer):
            return f"its writer, gateway instance {writer}, is running"
        return None

    def young(p: Path) -> bool:
        freed = root / "freed" / p.name  # a delayed unlink a running gateway will do
        return any(now - _mtime(f, now) < grace for f in (p, freed) if f.exists())

    _check_rows(report, root, conn, hashes=hashes, blobs=[p for p in listed if not young(p)], kept=kept)
    report.checked["s3_blobs"] = len(listed)


def recheck_missing(report: Report, conn: Any) -> None:
    """Drop missing blobs that no committed row names any more (`conn` reads committed data): a
    running gateway deleted the object after the snapshot was taken and then its blob."""
    report.findings = [f for f in report.findings if f.kind != "missing_blob" or _referenced(conn, f.ref[0])]


def _mtime(p: Path, default: float) -> float:
    try:
        return p.stat().st_mtime
    except FileNotFoundError:
        return default


def _check_rows(
    report: Report,
    root: Path,
    conn: Any,
    *,
    hashes: bool,
    blobs: list[Path] | None = None,
    kept: Callable[[Path], str | None] = lambda p: None,
) -> None:
    referenced: set[str] = set()
    n_objects = 0
    for bucket, key, version, blob, size, etag, data_len, data, attrs in conn.execute(
        "SELECT bucket, key, version_id, blob, size, etag, length(data), "
        f"{'data' if hashes else 'NULL'}, attrs FROM objects WHERE dm = 0"
    ):
        n_objects += 1
        where = f"s3://{bucket}/{key} version {version}"
        plain_size = size
        size, encrypted = _on_disk(size, attrs)
        if encrypted:
            if hashes and "-" not in etag:
                source = data or b"" if blob is None else _blob_path(root, blob)
                if (blob is None and (data_len or 0) == size) or (
                    blob is not None and _size_ok(root, blob, size)
                ):
                    md5 = _sse_s3_md5(root, source, plain_size, json.loads(attrs))
                    if md5 is not None and md5 != etag.strip('"'):
                        report.add("wrong_hash", where, f"ciphertext does not open to ETag {etag}")
            etag = "-"  # checked above: the stored bytes are not what the ETag hashes
        if blob is None:
            if (data_len or 0) != size:
                report.add("wrong_size", where, f"inline bytes {data_len or 0}, expected {size}")
            elif hashes and "-" not in etag and hashlib.md5(data or b"").hexdigest() != etag.strip('"'):
                report.add("wrong_hash", where, f"inline bytes do not match ETag {etag}")
            continue
        referenced.add(blob)
        _check_blob(report, root, blob, size, where, etag if hashes else None)
    upload_attrs = {u: a for u, a in conn.execute("SELECT upload_id, attrs FROM uploads")}
    upload_ids = set(upload_attrs)
    n_parts = 0
    for upload_id, number, blob, size in conn.execute("SELECT upload_id, part_number, blob, size FROM parts"):
        n_parts += 1
        where = f"upload {upload_id} part {number}"
        referenced.add(blob)  # an orphan part's blob goes with the part, not as an orphan blob
        if upload_id not in upload_ids:
            report.add("orphan_part", where, f"blob {blob}", repairable=True, ref=(upload_id, number, blob))
            continue
        if upload_attrs[upload_id] and '"sse"' in upload_attrs[upload_id]:
            sse = json.loads(upload_attrs[upload_id]).get("sse") or {}
            size = stored_size([size], 2 if sse.get("alg") == "aws:kms:dsse" else 1)
        _check_blob(report, root, blob, size, where, None)
    if blobs is None:
        blob_root = root / BLOB_DIR
        blobs = sorted(blob_root.glob("*/*/*")) if blob_root.is_dir() else []
    for p in blobs:
        if p.name not in referenced:
            size = _size_of(p)
            if size is None:  # removed meanwhile (a running gateway's delayed unlink)
                continue
            why = kept(p)
            detail = f"{size} bytes" + (f"; kept: {why}" if why else "")
            report.add("orphan_blob", p, detail, repairable=why is None)
    report.checked.update(s3_objects=n_objects, s3_parts=n_parts, s3_blobs=len(blobs))


def _size_of(p: Path) -> int | None:
    try:
        return p.stat().st_size
    except FileNotFoundError:
        return None


def _size_ok(root: Path, blob: str, size: int) -> bool:
    try:
        return _blob_path(root, blob).stat().st_size == size
    except FileNotFoundError:
        return False


def _check_blob(report: Report, root: Path, blob: str, size: int, where: str, etag: str | None) -> None:
    path = _blob_path(root, blob)
    try:
        actual = path.stat().st_size
    except FileNotFoundError:
        report.add("missing_blob", where, f"blob {blob}", ref=(blob,))
        return
    if actual != size:
        report.add("wrong_size", where, f"blob {blob} has {actual} bytes, expected {size}")
    elif etag is not None and "-" not in etag and _md5(path) != etag.strip('"'):
        report.add("wrong_hash", where, f"blob {blob} does not match ETag {etag}")


def repair(report: Report, root: Path, store: Any = None) -> None:
    """Remove orphan blobs and parts whose upload is gone (temp files: storage.fsck). `store`:
    S3's PostgreSQL store (check_shared), whose lock serializes the parts' removal with gateways'
    writes; None: the data dir's SQLite file (offline)."""
    for f in report.orphan_blobs:
        p = Path(f.path)
        if f.repairable and p.is_relative_to(root / BLOB_DIR):
            p.unlink(missing_ok=True)
            f.repaired = True
    parts = report.of("orphan_part")
    if not parts:
        return
    if store is not None:
        with store.transaction() as conn:  # blobs are unlinked only after it committed
            _delete_parts(conn, parts)
        _delete_part_blobs(store.reader(), root, parts)
        return
    conn = sqlite3.connect(root / "meta.db", timeout=30)
    try:
        with conn:  # one transaction; blobs are unlinked only after it committed
            _delete_parts(conn, parts)
        _delete_part_blobs(conn, root, parts)
    finally:
        conn.close()


def _delete_parts(conn: Any, parts: list) -> None:
    for f in parts:
        upload_id, number, _ = f.ref
        conn.execute(
            "DELETE FROM parts WHERE upload_id = ? AND part_number = ? "
            "AND upload_id NOT IN (SELECT upload_id FROM uploads)",
            (upload_id, number),
        )


def _delete_part_blobs(conn: Any, root: Path, parts: list) -> None:
    for f in parts:
        blob = f.ref[2]
        if not _referenced(conn, blob):
            _blob_path(root, blob).unlink(missing_ok=True)
        f.repaired = True


def _referenced(conn: Any, blob: str) -> bool:
    return (
        conn.execute("SELECT 1 FROM objects WHERE blob = ? LIMIT 1", (blob,)).fetchone() is not None
        or conn.execute("SELECT 1 FROM parts WHERE blob = ? LIMIT 1", (blob,)).fetchone() is not None
    )
