"""`strata fsck`: a data dir damaged in each way is reported, and --repair removes only what no
metadata refers to."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

MiB = 1024 * 1024


def fsck(data_dir: Path, *args: str) -> tuple[int, dict]:
    r = subprocess.run(
        [sys.executable, "-m", "strata.cli", "fsck", "--data-dir", str(data_dir), "--json", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.stdout, r.stderr
    return r.returncode, json.loads(r.stdout)


def kinds(report: dict) -> list[tuple[str, str]]:
    return sorted(
        (f["kind"], Path(f["path"]).name if f["path"].startswith("/") else f["path"])
        for f in report["findings"]
    )


def _populated(strata_factory) -> tuple:
    server = strata_factory()
    s3 = server.client("s3")
    s3.create_bucket(Bucket="fsck-bucket")
    s3.put_object(Bucket="fsck-bucket", Key="small", Body=b"tiny")
    s3.put_object(Bucket="fsck-bucket", Key="big", Body=b"b" * (MiB + 3))
    s3.put_object(Bucket="fsck-bucket", Key="big2", Body=b"c" * (MiB + 5))
    up = s3.create_multipart_upload(Bucket="fsck-bucket", Key="mp")["UploadId"]
    s3.upload_part(Bucket="fsck-bucket", Key="mp", UploadId=up, PartNumber=1, Body=b"p" * (5 * MiB))
    ddb = server.client("dynamodb")
    ddb.create_table(
        TableName="fsck-table",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.put_item(TableName="fsck-table", Item={"id": {"S": "a"}})
    server.stop()
    return server, up


def _blob_of(data_dir: Path, key: str) -> Path:
    with closing(sqlite3.connect(data_dir / "s3" / "meta.db")) as c, c:
        (blob,) = c.execute("SELECT blob FROM objects WHERE key = ?", (key,)).fetchone()
    return data_dir / "s3" / "blobs" / blob[:2] / blob[2:4] / blob


def test_clean_data_dir_and_clean_stop(strata_factory) -> None:
    server = strata_factory()
    s3 = server.client("s3")
    s3.create_bucket(Bucket="fsck-clean")
    for _ in range(3):  # each overwrite frees the previous blob (unlinked a few seconds later)
        s3.put_object(Bucket="fsck-clean", Key="k", Body=b"x" * (MiB + 1))
    server.stop()  # a clean stop unlinks the freed blobs at once: no orphan left behind
    code, report = fsck(server.data_dir)
    assert report["findings"] == [] and code == 0, report
    assert all(v == "ok" for v in report["databases"].values()) and len(report["databases"]) >= 2
    assert report["checked"]["s3_objects"] == 1 and report["checked"]["s3_blobs"] == 1


def test_each_kind_of_damage_is_reported_and_repaired_safely(strata_factory) -> None:
    server, upload_id = _populated(strata_factory)
    data = server.data_dir
    code, report = fsck(data)
    assert code == 0 and report["findings"] == [], report
    # damage: a missing blob, a truncated blob, an orphan blob, temp files, an upload without
    # its row (parts left), and a DynamoDB count out of step
    _blob_of(data, "big").unlink()
    with open(_blob_of(data, "big2"), "r+b") as f:
        f.truncate(10)
    orphan = data / "s3" / "blobs" / "ab" / "cd" / ("abcd" + "0" * 28)
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"orphan")
    (data / "s3" / "tmp" / "deadbeef.part").write_bytes(b"half an upload")
    (data / "clock.tmp").write_text("{}")
    with closing(sqlite3.connect(data / "s3" / "meta.db")) as c, c:
        c.execute("DELETE FROM uploads WHERE upload_id = ?", (upload_id,))
        (part_blob,) = c.execute("SELECT blob FROM parts WHERE upload_id = ?", (upload_id,)).fetchone()
    with closing(sqlite3.connect(data / "dynamodb" / "dynamodb.sqlite3")) as c, c:
        c.execute("UPDATE ddb_tables SET item_count = 7")
        lost = {
            "arn": "arn:aws:dynamodb:us-east-1:000000000000:table/fsck-table/backup/1",
            "file": "lost.bak",
        }
        c.execute("INSERT INTO documents VALUES ('ddb-backup', ?, ?)", (lost["arn"], json.dumps(lost)))
    stray = data / "dynamodb" / "dynamodb-backups" / "stray.bak"
    stray.write_bytes(b"no record names it")
    code, report = fsck(data)
    assert code == 1
    assert kinds(report) == sorted(
        [
            ("count_mismatch", "dynamodb table fsck-table"),
            ("missing_backup_file", f"dynamodb backup {lost['arn']}"),
            ("orphan_backup_file", "stray.bak"),
            ("missing_blob", "s3://fsck-bucket/big version null"),
            ("orphan_blob", orphan.name),
            ("orphan_part", f"upload {upload_id} part 1"),
            ("temp_file", "clock.tmp"),
            ("temp_file", "deadbeef.part"),
            ("wrong_size", "s3://fsck-bucket/big2 version null"),
        ]
    )
    code, report = fsck(data, "--repair")
    assert code == 1  # the missing blob, the short blob and the count cannot be repaired
    repaired = {f["kind"] for f in report["findings"] if f["repaired"]}
    assert repaired == {"orphan_blob", "orphan_part", "temp_file", "orphan_backup_file"}
    assert not orphan.exists() and not (data / "clock.tmp").exists() and not stray.exists()
    assert not (data / "s3" / "blobs" / part_blob[:2] / part_blob[2:4] / part_blob).exists()
    # never removes what metadata refers to: the short blob and the small object stay
    assert _blob_of(data, "big2").exists()
    code, report = fsck(data)
    assert kinds(report) == sorted(
        [
            ("count_mismatch", "dynamodb table fsck-table"),
            ("missing_backup_file", f"dynamodb backup {lost['arn']}"),
            ("missing_blob", "s3://fsck-bucket/big version null"),
            ("wrong_size", "s3://fsck-bucket/big2 version null"),
        ]
    )
    server.start()
    assert server.client("s3").get_object(Bucket="fsck-bucket", Key="small")["Body"].read() == b"tiny"


def test_hashes_and_database_corruption(strata_factory) -> None:
    server, _ = _populated(strata_factory)
    data = server.data_dir
    blob = _blob_of(data, "big")
    raw = bytearray(blob.read_bytes())
    raw[100] ^= 1  # same size, different bytes: only --hashes reads them
    blob.write_bytes(bytes(raw))
    assert fsck(data)[1]["findings"] == []
    code, report = fsck(data, "--hashes")
    assert code == 1 and kinds(report) == [("wrong_hash", "s3://fsck-bucket/big version null")]
    # a database page overwritten in the middle: integrity_check reports it
    db = data / "dynamodb" / "dynamodb.sqlite3"
    with closing(sqlite3.connect(db)) as c, c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = c.execute("PRAGMA page_size").fetchone()[0]
        pages = c.execute("PRAGMA page_count").fetchone()[0]
    with open(db, "r+b") as f:
        f.seek(page * (pages - 1))
        f.write(b"\xff" * page)
    code, report = fsck(data)
    assert code == 1
    assert report["databases"][str(db)] != "ok"
    assert "database_corrupt" in {f["kind"] for f in report["findings"]}


def test_repair_refused_while_a_server_uses_the_data_dir(strata_factory) -> None:
    server = strata_factory()
    server.client("s3").create_bucket(Bucket="fsck-busy")
    r = subprocess.run(
        [sys.executable, "-m", "strata.cli", "fsck", "--data-dir", str(server.data_dir), "--repair"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode != 0 and "stop the server first" in r.stderr
    code, report = fsck(server.data_dir)  # a check alone runs, read-only
    assert code == 0 and report["findings"] == [], report
