"""`strata migrate`: an embedded data dir moved into PostgreSQL + a blob dir, served by a gateway.

A real server on SQLite is filled through boto3 (buckets with a multipart object, versions, an
upload in progress, SSE-S3 and SSE-KMS objects; a DynamoDB table with a GSI and a backup; an IAM
user with a key, signed in to the console; a KMS key; a moved clock; an ElastiCache Redis cluster
holding a key, RDS PostgreSQL and MariaDB instances holding a row and an EBS snapshot of the engine
services), stopped, migrated with the real CLI, and a gateway started on the database and blob
dir reads everything back: bytes by MD5, items by query on the GSI, ciphertext decrypted,
requests signed with the migrated access key, console pages with the browser's cookie; as the
engine host it runs the engines again from the moved engine state, read through their endpoints.
S3 keys holding NUL, which S3 on PostgreSQL refuses, are listed as not migrated, the rest goes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from strata.engines.postgres import PgNode
from tests.console.plain_client import ROOT as CONSOLE
from tests.console.plain_client import PlainConsole
from tests.services.rds.helpers import create_pg, pg_connect, wait_status
from tests.services.rds.test_mariadb import my_connect
from tests.storage.conftest import fresh_database
from tests.strata_process import StrataProcess

MiB = 1024 * 1024
POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["s3:*", "kms:*"], "Resource": "*"}],
    }
)

NUL_WHY = "its key holds NUL (U+0000), which S3 on PostgreSQL metadata refuses (it stays in the data dir)"


def _migrate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "strata.cli", "migrate", *args], capture_output=True, text=True, timeout=120
    )


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()  # noqa: S324 - an ETag, not security


def _fill(server: StrataProcess) -> dict:
    """Put state of every shared service in; what a reader must find afterwards."""
    s3 = server.client("s3")
    s3.create_bucket(Bucket="plain")
    small, big = b"hello migrate", os.urandom(300_000)
    s3.put_object(Bucket="plain", Key="small.txt", Body=small)
    s3.put_object(Bucket="plain", Key="dir/big.bin", Body=big, ServerSideEncryption="AES256")
    up = s3.create_multipart_upload(Bucket="plain", Key="multi.bin")["UploadId"]
    parts = [os.urandom(5 * MiB), os.urandom(1000)]
    etags = [
        s3.upload_part(Bucket="plain", Key="multi.bin", UploadId=up, PartNumber=n, Body=body)["ETag"]
        for n, body in enumerate(parts, 1)
    ]
    s3.complete_multipart_upload(
        Bucket="plain",
        Key="multi.bin",
        UploadId=up,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]},
    )
    pending = s3.create_multipart_upload(Bucket="plain", Key="pending.bin")["UploadId"]
    s3.upload_part(Bucket="plain", Key="pending.bin", UploadId=pending, PartNumber=1, Body=b"p" * 1000)
    # keys PostgreSQL metadata refuses: left in the data dir, each listed, the rest migrated
    s3.put_object(Bucket="plain", Key="nul\x00key", Body=b"stays")
    nul_up = s3.create_multipart_upload(Bucket="plain", Key="up\x00load")["UploadId"]
    s3.upload_part(Bucket="plain", Key="up\x00load", UploadId=nul_up, PartNumber=1, Body=b"n" * 1000)

    s3.create_bucket(Bucket="versioned")
    s3.put_bucket_versioning(Bucket="versioned", VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket="versioned", Key="k", Body=b"first" * 1000)["VersionId"]
    v2 = s3.put_object(Bucket="versioned", Key="k", Body=b"second" * 1000)["VersionId"]

    kms = server.client("kms")
    key_id = kms.create_key(Description="migrated")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/migrated", TargetKeyId=key_id)
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"secret words")["CiphertextBlob"]
    sealed = os.urandom(70_000)
    s3.put_object(
        Bucket="plain", Key="kms.bin", Body=sealed, ServerSideEncryption="aws:kms", SSEKMSKeyId=key_id
    )

    ddb = server.client("dynamodb")
    ddb.create_table(
        TableName="things",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
            {"AttributeName": "color", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by_color",
                "KeySchema": [{"AttributeName": "color", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    for i in range(20):
        ddb.put_item(
            TableName="things",
            Item={"pk": {"S": f"p{i % 3}"}, "sk": {"N": str(i)}, "color": {"S": "red" if i % 2 else "blue"}},
        )
    backup = ddb.create_backup(TableName="things", BackupName="before")["BackupDetails"]["BackupArn"]
    deadline = time.monotonic() + 30
    while (
        ddb.describe_backup(BackupArn=backup)["BackupDescription"]["BackupDetails"]["BackupStatus"]
        != "AVAILABLE"
    ):
        assert time.monotonic() < deadline, "the backup never became AVAILABLE"
        time.sleep(0.1)

    ec = server.client("elasticache")
    ec.create_cache_cluster(CacheClusterId="moved", Engine="redis", NumCacheNodes=1)
    node = _until(lambda: _cache_node(server), "the cache cluster is available")
    redis.Redis(node["Address"], node["Port"]).set("moved-key", b"engine state")
    rds = server.client("rds")
    create_pg(rds, "moved-maria", wait=False, Engine="mariadb")  # made while the other one is
    with pg_connect(create_pg(rds, "moved")) as db:
        db.execute("CREATE TABLE t (v text)")
        db.execute("INSERT INTO t VALUES ('rds state')")
    with my_connect(wait_status(rds, "moved-maria")) as db, db.cursor() as cur:
        cur.execute("CREATE TABLE t (v text)")
        cur.execute("INSERT INTO t VALUES ('mariadb state')")
    ec2 = server.client("ec2")
    volume = ec2.create_volume(AvailabilityZone="us-east-1a", Size=1)["VolumeId"]
    snapshot = ec2.create_snapshot(VolumeId=volume, Description="moved")["SnapshotId"]

    iam = server.client("iam")
    iam.create_user(UserName="carol")
    iam.put_user_policy(UserName="carol", PolicyName="all", PolicyDocument=POLICY)
    access = iam.create_access_key(UserName="carol")["AccessKey"]
    console = PlainConsole(server.port)
    assert console.sign_in(access["AccessKeyId"], access["SecretAccessKey"]) == 303
    server.advance_clock("3d")
    return {
        "md5": {
            "small.txt": _md5(small),
            "dir/big.bin": _md5(big),
            "kms.bin": _md5(sealed),
            "multi.bin": _md5(b"".join(parts)),
        },
        "versions": {v1: _md5(b"first" * 1000), v2: _md5(b"second" * 1000)},
        "pending": pending,
        "nul_upload": nul_up,
        "console": console.cookies,
        "key_id": key_id,
        "ciphertext": blob,
        "backup": backup,
        "access": access,
        "offset": server.admin("/_strata/clock")["offset_seconds"],
        "volume": volume,
        "snapshot": snapshot,
    }


def _until(check, what: str, timeout: float = 60.0):  # noqa: ANN001, ANN202 - a predicate
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"not within {timeout:.0f} s: {what}"
        time.sleep(0.1)
    return value


def _available(rds: object, ident: str = "moved") -> dict | None:
    (inst,) = rds.describe_db_instances(DBInstanceIdentifier=ident)["DBInstances"]  # type: ignore[attr-defined]
    return inst if inst["DBInstanceStatus"] == "available" else None


def _cache_node(server: StrataProcess) -> dict | None:
    """The endpoint of the cluster's node once it is available."""
    ec = server.client("elasticache")
    (cluster,) = ec.describe_cache_clusters(CacheClusterId="moved", ShowCacheNodeInfo=True)["CacheClusters"]
    return cluster["CacheNodes"][0]["Endpoint"] if cluster["CacheClusterStatus"] == "available" else None


@pytest.fixture
def blob_dir(tmp_path: Path) -> Iterator[Path]:
    """On another file system than the data dir when there is one (tmpfs): blobs are copied
    then, not hard-linked (the path a move to NFS takes)."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        yield tmp_path / "blobs"
        return
    path = Path(tempfile.mkdtemp(dir=shm, prefix="strata-migrate-"))
    try:
        yield path / "blobs"
    finally:
        shutil.rmtree(path)


def test_a_data_dir_migrated_to_postgresql_is_served_by_a_gateway(
    tmp_path: Path, pg_node: PgNode, blob_dir: Path
) -> None:
    url = fresh_database("migrate")
    data, blobs = tmp_path / "data", blob_dir
    target = ["--data-dir", str(data), "--metadata", url, "--blob-dir", str(blobs)]
    embedded = StrataProcess(data, extra_args=["--tls-port", "off"]).start()
    try:
        want = _fill(embedded)
        busy = _migrate(*target)
        assert busy.returncode == 1 and "in use" in busy.stderr, busy.stderr
    finally:
        embedded.kill()  # what it acknowledged is in its WAL, read as it is

    done = _migrate(*target)
    assert done.returncode == 0, done.stderr
    assert "not migrated: rds" not in done.stdout and "s3 blobs:" in done.stdout, done.stdout
    assert f"moved to {blobs}/engines" in done.stdout, done.stdout
    left = [line for line in done.stdout.splitlines() if line.startswith("not migrated: s3:")]
    assert left == [
        "not migrated: s3: object 'nul\\x00key' in bucket plain (version null): " + NUL_WHY,
        f"not migrated: s3: multipart upload {want['nul_upload']} of 'up\\x00load' in bucket plain: "
        + NUL_WHY,
    ], done.stdout
    assert "console: 1 rows (1 sessions)" in done.stdout, done.stdout
    linked = blobs.parent.stat().st_dev == data.stat().st_dev
    assert ("0 copied" if linked else "0 hard-linked") in done.stdout, done.stdout
    again = _migrate(*target)  # the target holds state now
    assert again.returncode == 1 and "not empty" in again.stderr, again.stderr
    clash = _migrate(*target, "--allow-nonempty")  # the same rows again: all or nothing
    assert clash.returncode == 1 and "no row was migrated" in clash.stderr, clash.stderr

    gateway = StrataProcess(
        tmp_path / "gateway",
        extra_env={"STRATA_METADATA": url},
        extra_args=["--blob-dir", str(blobs), "--tls-port", "off"],
    ).start()
    try:
        key = want["access"]
        s3 = gateway.client("s3", access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"])
        for name, md5 in want["md5"].items():
            assert _md5(s3.get_object(Bucket="plain", Key=name)["Body"].read()) == md5, name
        assert s3.head_object(Bucket="plain", Key="dir/big.bin")["ServerSideEncryption"] == "AES256"
        for version, md5 in want["versions"].items():
            body = s3.get_object(Bucket="versioned", Key="k", VersionId=version)["Body"].read()
            assert _md5(body) == md5
        uploads = s3.list_multipart_uploads(Bucket="plain")["Uploads"]
        assert [u["UploadId"] for u in uploads] == [want["pending"]]
        parts = s3.list_parts(Bucket="plain", Key="pending.bin", UploadId=want["pending"])["Parts"]
        assert [p["Size"] for p in parts] == [1000]

        kms = gateway.client("kms", access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"])
        assert kms.decrypt(CiphertextBlob=want["ciphertext"])["Plaintext"] == b"secret words"
        assert kms.describe_key(KeyId="alias/migrated")["KeyMetadata"]["KeyId"] == want["key_id"]

        ddb = gateway.client("dynamodb")
        red = ddb.query(
            TableName="things",
            IndexName="by_color",
            KeyConditionExpression="color = :c",
            ExpressionAttributeValues={":c": {"S": "red"}},
        )["Items"]
        assert sorted(int(i["sk"]["N"]) for i in red) == list(range(1, 20, 2))
        assert ddb.get_item(TableName="things", Key={"pk": {"S": "p1"}, "sk": {"N": "4"}})["Item"][
            "color"
        ] == {"S": "blue"}
        restored = ddb.restore_table_from_backup(TargetTableName="again", BackupArn=want["backup"])
        assert restored["TableDescription"]["TableName"] == "again"

        assert gateway.client("iam").get_user(UserName="carol")["User"]["UserName"] == "carol"
        console = PlainConsole(gateway.port)  # the browser signed in before is still signed in
        console.cookies = want["console"]
        status, _, _, page = console.request("GET", CONSOLE + "/s3")
        assert status == 200 and "versioned" in page, (status, page[:500])
        assert gateway.admin("/_strata/clock")["offset_seconds"] == pytest.approx(want["offset"])

        # the engine host (the only gateway) runs the moved engines: the cluster, its key, the snapshot
        node = _until(lambda: _cache_node(gateway), "the moved cache cluster is available")
        moved = redis.Redis(node["Address"], node["Port"], decode_responses=True)
        assert moved.get("moved-key") == "engine state"
        # it came with its RDB only; loaded, it keeps its writes in an AOF as every engine host's
        # caches do (elasticache.nodes.durable_nodes), which fsck below finds beside its files
        assert _until(lambda: moved.info("persistence")["aof_rewrite_in_progress"] == 0, "the AOF is written")
        assert moved.info("persistence")["aof_enabled"] == 1
        node_dir = Path(moved.info("server")["config_file"]).parent
        assert (node_dir / "appendonlydir" / "appendonly.aof.manifest").exists()
        # the engine started from the moved tree (not one left running from the data dir)
        assert moved.info("server")["config_file"].startswith(f"{blobs}/engines/elasticache/"), moved.info()
        rds = gateway.client("rds")
        with pg_connect(_until(lambda: _available(rds), "the moved DB instance is available")) as db:
            assert db.execute("SELECT v FROM t").fetchall() == [("rds state",)]
            (archive,) = db.execute("SHOW archive_command").fetchone()
            assert f"{blobs}/engines/rds/" in archive and str(data) not in archive, archive
        maria = _until(lambda: _available(rds, "moved-maria"), "the moved MariaDB instance is available")
        with my_connect(maria) as db, db.cursor() as cur:
            cur.execute("INSERT INTO t VALUES ('after the move')")  # a commit: its binlog goes on
            cur.execute("SELECT v FROM t")
            assert cur.fetchall() == (("mariadb state",), ("after the move",))
            cur.execute("SELECT @@datadir, @@log_bin_basename")
            for path in cur.fetchone():
                assert f"{blobs}/engines/rds/" in path and str(data) not in path, path
        ec2 = gateway.client("ec2")
        (snap,) = ec2.describe_snapshots(SnapshotIds=[want["snapshot"]])["Snapshots"]
        assert (snap["VolumeId"], snap["Description"]) == (want["volume"], "moved")

        running = _migrate(*target, "--allow-nonempty")  # a gateway serves the target
        assert running.returncode == 1 and "gateways are open" in running.stderr, running.stderr

        snapshot = _ebs_snapshot(gateway)  # EBS runs on the engine host: its files under blobs/engines
        lost_block = _fsck_the_shared_layout(url, blobs, want["backup"], snapshot)
    finally:
        gateway.stop()
    _fsck_the_engines_with_no_host(url, blobs, lost_block)


def _ebs_snapshot(gateway: StrataProcess) -> str:
    """A snapshot of two blocks put through the EBS direct APIs (no NBD client needed)."""
    ebs = gateway.client("ebs")
    snap = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    for idx in (0, 1):
        block = os.urandom(512 * 1024)
        ebs.put_snapshot_block(
            SnapshotId=snap,
            BlockIndex=idx,
            BlockData=block,
            DataLength=len(block),
            Checksum=base64.b64encode(hashlib.sha256(block).digest()).decode(),
            ChecksumAlgorithm="SHA256",
        )
    assert ebs.complete_snapshot(SnapshotId=snap, ChangedBlocksCount=2)["Status"] == "completed"
    return snap


def _fsck(url: str, blobs: Path, *args: str) -> tuple[int, dict]:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "strata.cli",
            "fsck",
            "--metadata",
            url,
            "--blob-dir",
            str(blobs),
            "--json",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.stdout, r.stderr
    return r.returncode, json.loads(r.stdout)


def _fsck_the_shared_layout(url: str, blobs: Path, backup_arn: str, snapshot: str) -> str:
    """`strata fsck --metadata --blob-dir` while a gateway runs: clean after the migration; then
    each kind of damage is found, and --repair removes only orphans no running gateway may still
    be writing (its instance's lock is held; younger than the grace period). The engine host's
    EBS files are checked read-only: a lost block is found, an orphan one left alone."""
    code, report = _fsck(url, blobs, "--hashes")  # every blob read: its MD5 against its ETag
    assert (code, report["counts"]) == (0, {}), report
    assert report["checked"]["s3_objects"] == 6 and report["checked"]["dynamodb_tables"] == 2
    # the empty volume's snapshot moved by migrate, and the one of two blocks made after it
    assert report["checked"]["engines_ebs_blocks"] == 2 and report["checked"]["engines_ebs_snapshots"] == 2
    assert "engine host runs" in report["notes"][0] and report["databases"] == {}, report
    engine_blocks = blobs / "engines" / "ec2" / "blocks"
    lost = sorted(engine_blocks.glob("??/*"))[0]
    lost.unlink()  # data loss on the engine host's files: reported, never repaired
    orphan_block = engine_blocks / "ee" / ("ee" * 32)  # as a block published, not yet committed
    orphan_block.parent.mkdir(exist_ok=True)
    orphan_block.write_bytes(b"in flight")
    (engine_blocks / "tmp" / "in-flight.1").write_bytes(b"half")

    s3_root = blobs / "s3"
    (live,) = [p.stem for p in (s3_root / "instances").glob("*.lock")]  # the running gateway's
    hours_ago = time.time() - 7200

    def blob(writer: str, *, old: bool) -> Path:
        name = os.urandom(12).hex() + writer
        path = s3_root / "blobs" / name[:2] / name[2:4] / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"orphan")
        if old:
            os.utime(path, (hours_ago, hours_ago))
        return path

    dead_orphan, live_orphan, young = (
        blob("0badc0de", old=True),
        blob(live, old=True),
        blob("0badc0de", old=False),
    )
    stray = blobs / "dynamodb-backups" / "stray.bak"
    stray.write_bytes(b"x")
    os.utime(stray, (hours_ago, hours_ago))
    leftover = s3_root / "tmp" / "0badc0de" / "upload.part"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half")
    part_blob = blob("0badc0de", old=True)
    with psycopg.connect(url) as c:
        (gone,) = c.execute("SELECT blob FROM s3.objects WHERE key = 'dir/big.bin'").fetchone()
        # (SSE-S3 by default, as on AWS: a flipped byte of its ciphertext fails its tag)
        c.execute(
            "UPDATE s3.objects SET data = set_byte(data, 20, get_byte(data, 20) # 1) WHERE key = 'small.txt'"
        )
        c.execute(  # a part whose upload is gone (as a crash of an old version left them)
            "INSERT INTO s3.parts VALUES ('no-such-upload', 1, %s, 6, 'e', 0, '{}')", (part_blob.name,)
        )
        files = [json.loads(b)["file"] for (b,) in c.execute("SELECT body FROM dynamodb.documents")]
    (s3_root / "blobs" / gone[:2] / gone[2:4] / gone).unlink()
    for name in files:
        (blobs / "dynamodb-backups" / name).unlink(missing_ok=True)

    code, report = _fsck(url, blobs, "--repair", "--hashes")
    assert code == 1
    found = {
        (f["kind"], Path(f["path"]).name if f["path"].startswith("/") else f["path"]): f
        for f in report["findings"]
    }
    assert set(found) == {
        ("orphan_blob", dead_orphan.name),
        ("orphan_blob", live_orphan.name),
        ("missing_blob", "s3://plain/dir/big.bin version null"),
        ("orphan_backup_file", "stray.bak"),
        ("missing_backup_file", f"dynamodb backup {backup_arn}"),
        ("temp_file", "upload.part"),
        ("orphan_part", "upload no-such-upload part 1"),
        ("wrong_hash", "s3://plain/small.txt version null"),
        ("missing_block", lost.name),
    }, report["findings"]
    assert snapshot in found[("missing_block", lost.name)]["detail"]  # who lost data is named
    assert orphan_block.exists() and (engine_blocks / "tmp" / "in-flight.1").exists()
    assert not found[("orphan_blob", live_orphan.name)]["repaired"]
    assert not dead_orphan.exists() and not stray.exists() and not leftover.exists()
    assert live_orphan.exists() and young.exists() and not part_blob.exists()
    with psycopg.connect(url) as c:
        assert c.execute("SELECT count(*) FROM s3.parts WHERE upload_id = 'no-such-upload'").fetchone() == (
            0,
        )
    return lost.name


def _fsck_the_engines_with_no_host(url: str, blobs: Path, lost_block: str) -> None:
    """With no engine host (the gateway stopped), the engines' files get the offline checks, as a
    stopped server's data dir: databases, orphans and temp files, repaired; the lost block stays."""
    engines = blobs / "engines"
    code, report = _fsck(url, blobs, "--repair")
    assert code == 1 and report["notes"] == [], report
    found = {
        (f["kind"], Path(f["path"]).name, f["repaired"])
        for f in report["findings"]
        if Path(f["path"]).is_relative_to(engines)
    }
    assert found == {
        ("missing_block", lost_block, False),
        ("orphan_block", "ee" * 32, True),
        ("temp_file", "in-flight.1", True),
    }, report["findings"]
    assert str(engines / "ec2" / "ec2.db") in report["databases"], report["databases"]
    assert not (engines / "ec2" / "blocks" / "ee" / ("ee" * 32)).exists()
    code, report = _fsck(url, blobs)
    left = {f["kind"] for f in report["findings"] if Path(f["path"]).is_relative_to(engines)}
    assert code == 1 and left == {"missing_block"}, report


def test_engine_state_that_names_the_data_dir_is_left_behind_with_the_reason(tmp_path: Path) -> None:
    """What cannot be moved safely is not moved at all: a file (not a record or a configuration
    Strata rewrites) holding the data dir's path, or a target tree that exists already."""
    from strata.config import Settings
    from strata.fsck import check_data_dir
    from strata.storage.copy_engines import EnginesNotMoved, copy_engines

    data, target = tmp_path / "data", tmp_path / "blobs" / "engines"
    conf = data / "rds" / "instances" / "db" / "n1" / "pgdata" / "strata.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text(f"archive_command = 'cp %p {data}/rds/instances/db/archive/%f'\n")
    index = data / "rds" / "instances" / "db" / "archive" / "db-bin.index"
    index.parent.mkdir()
    index.write_text(f"{data}/rds/instances/db/archive/db-bin.000001\n")
    (data / "rds" / "relay-log.info").write_text(f"{data}/rds/instances/db/n2/relay.000001\n")
    # InnoDB's record of the last binlog position (binary; informational once moved): as it is
    ibdata = data / "rds" / "instances" / "db" / "n1" / "data" / "ibdata1"
    ibdata.parent.mkdir(parents=True)
    ibdata.write_bytes(b"\0" * 64 + f"{data}/rds/instances/db/archive/db-bin.000001".encode() + b"\0" * 64)
    with pytest.raises(EnginesNotMoved, match="relay-log.info"):
        copy_engines(data, target)
    assert not target.parent.exists()  # nothing placed

    (data / "rds" / "relay-log.info").unlink()
    (data / "ec2").mkdir()
    (data / "ec2" / "to-the-volume").symlink_to(data / "ec2" / "volume")
    with pytest.raises(EnginesNotMoved, match="to-the-volume"):
        copy_engines(data, target)

    (data / "ec2" / "to-the-volume").unlink()
    record = '{"127.0.1.1": "10.0.0.51"}'  # the engine address pool's: kept with the engines' state
    (data / "engine-addresses.json").write_text(record)
    assert copy_engines(data, target) == ["rds", "ec2", "engine-addresses.json"]
    assert (target / "engine-addresses.json").read_text() == record
    assert Settings(
        data_dir=data, blob_dir=target.parent, metadata="postgresql://h/d"
    ).engine_addresses_record == (target / "engine-addresses.json")
    assert not check_data_dir(target, include_services=("ec2",)).findings  # fsck finds nothing amiss
    assert (target / ibdata.relative_to(data)).read_bytes() == ibdata.read_bytes()
    moved = (target / conf.relative_to(data)).read_text()
    assert moved == f"archive_command = 'cp %p {target}/rds/instances/db/archive/%f'\n"
    assert (
        target / index.relative_to(data)
    ).read_text() == f"{target}/rds/instances/db/archive/db-bin.000001\n"
    with pytest.raises(EnginesNotMoved, match="holds engine state already"):
        copy_engines(data, target)
