"""S3 on the PostgreSQL metadata backend: a real server started with `--metadata postgresql://...`
and `--blob-dir`, driven by boto3 (issue 22 step 2, one gateway).

One server per module, on a database of its own in the session's throwaway PostgreSQL cluster
(tests/storage/conftest.py); the last test kills it with -9 and restarts it on the same database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from strata.engines.postgres import PgNode
from tests.storage.conftest import fresh_database
from tests.strata_process import StrataProcess


@pytest.fixture(scope="module")
def metadata_url(pg_node: PgNode) -> str:
    """A fresh database (C locale: listings in code point order) of the session's cluster."""
    return fresh_database("s3meta")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, metadata_url: str) -> Iterator[StrataProcess]:
    root = tmp_path_factory.mktemp("s3pg")
    proc = StrataProcess(
        root / "data",
        extra_env={"STRATA_METADATA": metadata_url},
        extra_args=["--blob-dir", str(root / "blobs")],
    ).start()
    proc.blob_root = root / "blobs"  # type: ignore[attr-defined]
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def s3(server: StrataProcess):  # noqa: ANN201 - a boto3 client
    return server.client("s3")


def _code(e: pytest.ExceptionInfo[ClientError]) -> str:
    return e.value.response["Error"]["Code"]


@pytest.mark.parametrize(
    "url",
    [
        "mysql://u@h:3306/db",
        "sqlite:///x.db",
        "postgresql://u@h:5432",
        "postgresql:///db",
        "postgres://u@h/db",
    ],
)
def test_a_metadata_url_other_than_postgresql_is_refused(tmp_path: Path, url: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "strata.cli", "serve", "--data-dir", str(tmp_path), "--port", "0"],
        env={**os.environ, "STRATA_METADATA": url, "STRATA_METADATA_WAIT": "600"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert "the metadata URL must" in out.stderr, out.stderr


def test_an_unusable_metadata_database_stops_start_up(tmp_path: Path, metadata_url: str) -> None:
    """(A database ordering text by a locale is refused too: not tested, this machine's PostgreSQL
    has no ICU and the system no locale but C.)"""
    parts = urlsplit(metadata_url)
    for url in (
        urlunsplit(parts._replace(netloc=f"strata:wrong@{parts.hostname}:{parts.port}")),
        urlunsplit(parts._replace(path="/no_such_database")),
    ):
        out = subprocess.run(
            [sys.executable, "-m", "strata.cli", "serve", "--data-dir", str(tmp_path), "--port", "0"],
            env={**os.environ, "STRATA_METADATA": url, "STRATA_METADATA_WAIT": "600"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode != 0 and "cannot use the metadata database" in out.stderr, out.stderr
        assert ":wrong@" not in out.stderr  # the password is not shown
        assert "waiting for" not in out.stderr  # not a failover: not waited for (--metadata-wait)


def test_metadata_is_in_postgresql_and_bytes_in_blob_dir(
    server: StrataProcess, s3, metadata_url: str, unique: str
) -> None:
    s3.create_bucket(Bucket=f"pg-{unique}")
    big = b"x" * 200_000  # above the 64 KiB inline limit: a blob file
    s3.put_object(Bucket=f"pg-{unique}", Key="big", Body=big)
    with psycopg.connect(metadata_url) as c:
        assert c.execute("SELECT 1 FROM s3.buckets WHERE name = %s", (f"pg-{unique}",)).fetchone()
        (blob,) = c.execute(
            "SELECT blob FROM s3.objects WHERE bucket = %s AND key = 'big'", (f"pg-{unique}",)
        ).fetchone()
    blobs_dir: Path = server.blob_root / "s3" / "blobs"  # type: ignore[attr-defined]
    assert [p.name for p in blobs_dir.rglob(blob)] == [blob]
    assert not (server.data_dir / "s3" / "meta.db").exists()
    assert s3.get_object(Bucket=f"pg-{unique}", Key="big")["Body"].read() == big


def test_objects(s3, unique: str) -> None:
    b = f"obj-{unique}"
    s3.create_bucket(Bucket=b)
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket=b, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert _code(e) in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists")
    s3.put_object(Bucket=b, Key="a", Body=b"hello", Metadata={"m": "v"}, ContentType="text/plain")
    head = s3.head_object(Bucket=b, Key="a")
    assert head["ContentLength"] == 5 and head["Metadata"] == {"m": "v"}
    assert head["ContentType"] == "text/plain"
    assert s3.get_object(Bucket=b, Key="a", Range="bytes=1-3")["Body"].read() == b"ell"
    s3.put_object(Bucket=b, Key="a", Body=b"again")  # overwrite: still one (null) version
    assert s3.get_object(Bucket=b, Key="a")["Body"].read() == b"again"
    assert len(s3.list_object_versions(Bucket=b)["Versions"]) == 1
    s3.copy_object(Bucket=b, Key="c", CopySource={"Bucket": b, "Key": "a"})
    assert s3.get_object(Bucket=b, Key="c")["Body"].read() == b"again"
    s3.delete_object(Bucket=b, Key="a")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=b, Key="a")
    assert _code(e) == "NoSuchKey"
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket=b)
    assert _code(e) == "BucketNotEmpty"
    s3.delete_object(Bucket=b, Key="c")
    s3.delete_bucket(Bucket=b)
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket=b)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_listing_pages_prefixes_and_delimiters(s3, unique: str) -> None:
    b = f"list-{unique}"
    s3.create_bucket(Bucket=b)
    # Code point order, not a locale's: upper case before lower, ASCII before é before emoji.
    keys = sorted(
        [f"dir/{i:02d}" for i in range(7)] + ["dir/sub/x", "dir/sub/y", "Zed", "a", "é", "\U0001f600", "top"]
    )
    for k in keys:
        s3.put_object(Bucket=b, Key=k, Body=b"")
    got, token = [], None
    while True:
        kw = {"ContinuationToken": token} if token else {}
        page = s3.list_objects_v2(Bucket=b, MaxKeys=3, **kw)
        got += [o["Key"] for o in page.get("Contents", [])]
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert got == keys
    page = s3.list_objects_v2(Bucket=b, Prefix="dir/", Delimiter="/")
    assert [o["Key"] for o in page["Contents"]] == [f"dir/{i:02d}" for i in range(7)]
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["dir/sub/"]
    page = s3.list_objects_v2(Bucket=b, Delimiter="/", StartAfter="Zed")
    assert [o["Key"] for o in page["Contents"]] == ["a", "top", "é", "\U0001f600"]
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["dir/"]
    assert s3.list_objects(Bucket=b, Prefix="dir/sub/")["Contents"][1]["Key"] == "dir/sub/y"
    assert f"list-{unique}" in [x["Name"] for x in s3.list_buckets()["Buckets"]]


def test_versioning(s3, unique: str) -> None:
    b = f"ver-{unique}"
    s3.create_bucket(Bucket=b)
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=b, Key="k", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=b, Key="k", Body=b"two")["VersionId"]
    assert v1 != v2 and "null" not in (v1, v2)
    assert s3.get_object(Bucket=b, Key="k")["Body"].read() == b"two"
    assert s3.get_object(Bucket=b, Key="k", VersionId=v1)["Body"].read() == b"one"
    dm = s3.delete_object(Bucket=b, Key="k")
    assert dm["DeleteMarker"]
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=b, Key="k")
    assert _code(e) == "NoSuchKey"
    versions = s3.list_object_versions(Bucket=b)
    assert [v["VersionId"] for v in versions["Versions"]] == [v2, v1]
    assert versions["DeleteMarkers"][0]["IsLatest"]
    s3.delete_object(Bucket=b, Key="k", VersionId=dm["VersionId"])  # the marker goes: v2 is back
    assert s3.get_object(Bucket=b, Key="k")["Body"].read() == b"two"
    s3.delete_object(Bucket=b, Key="k", VersionId=v2)
    assert s3.get_object(Bucket=b, Key="k")["VersionId"] == v1


def test_multipart_upload(s3, unique: str) -> None:
    b = f"mpu-{unique}"
    s3.create_bucket(Bucket=b)
    up = s3.create_multipart_upload(Bucket=b, Key="m")["UploadId"]
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=b)["Uploads"]] == [up]
    p1 = b"a" * (5 * 1024 * 1024)
    e1 = s3.upload_part(Bucket=b, Key="m", UploadId=up, PartNumber=1, Body=p1)["ETag"]
    e2 = s3.upload_part(Bucket=b, Key="m", UploadId=up, PartNumber=2, Body=b"tail")["ETag"]
    assert [p["PartNumber"] for p in s3.list_parts(Bucket=b, Key="m", UploadId=up)["Parts"]] == [1, 2]
    s3.complete_multipart_upload(
        Bucket=b,
        Key="m",
        UploadId=up,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]},
    )
    assert s3.get_object(Bucket=b, Key="m")["Body"].read() == p1 + b"tail"
    assert s3.get_object(Bucket=b, Key="m", PartNumber=2)["Body"].read() == b"tail"
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=b)
    aborted = s3.create_multipart_upload(Bucket=b, Key="n")["UploadId"]
    s3.abort_multipart_upload(Bucket=b, Key="n", UploadId=aborted)
    with pytest.raises(ClientError) as e:
        s3.list_parts(Bucket=b, Key="n", UploadId=aborted)
    assert _code(e) == "NoSuchUpload"


def test_if_none_match_race_has_one_winner(server: StrataProcess, unique: str) -> None:
    b = f"race-{unique}"
    s3 = server.client("s3", config=Config(max_pool_connections=8))  # boto3 clients are thread-safe
    s3.create_bucket(Bucket=b)
    won: list[int] = []
    lost: list[str] = []
    start = threading.Barrier(8)

    def put(i: int) -> None:
        start.wait()
        try:
            s3.put_object(Bucket=b, Key="once", Body=f"w{i}".encode(), IfNoneMatch="*")
            won.append(i)
        except ClientError as e:
            lost.append(e.response["Error"]["Code"])

    threads = [threading.Thread(target=put, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(won) == 1 and len(lost) == 7, (won, lost)
    assert set(lost) <= {"PreconditionFailed", "ConditionalRequestConflict"}
    assert s3.get_object(Bucket=b, Key="once")["Body"].read() == f"w{won[0]}".encode()


def test_nul_in_key_is_refused_not_a_500(s3, unique: str) -> None:
    b = f"nul-{unique}"
    s3.create_bucket(Bucket=b)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=b, Key="a\x00b", Body=b"x")
    assert _code(e) == "InvalidArgument"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=b, Key="a\x00b")
    assert _code(e) == "NoSuchKey"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=b, Key="a", VersionId="v\x00")
    assert _code(e) in ("NoSuchVersion", "InvalidArgument")
    with pytest.raises(ClientError) as e:
        s3.list_parts(Bucket=b, Key="a", UploadId="u\x00")
    assert _code(e) == "NoSuchUpload"
    for k in ("a", "a\x01", "a\x01b", "b"):
        s3.put_object(Bucket=b, Key=k, Body=b"")
    # Listing bounds holding NUL select what they select on SQLite (no stored key has a NUL).
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=b, StartAfter="a\x00z")["Contents"]] == [
        "a\x01",
        "a\x01b",
        "b",
    ]
    assert "Contents" not in s3.list_objects_v2(Bucket=b, Prefix="a\x00")
    page = s3.list_object_versions(Bucket=b, KeyMarker="a\x00")
    assert [v["Key"] for v in page["Versions"]] == ["a\x01", "a\x01b", "b"]
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=b, Prefix="a\x00")


def test_lifecycle_and_intelligent_tiering_run_on_postgresql(server: StrataProcess, s3, unique: str) -> None:
    """Transitions, expirations and tier moves: the statements whose JSON and MAX spellings differ."""
    b = f"lc-{unique}"
    s3.create_bucket(Bucket=b)
    s3.put_bucket_lifecycle_configuration(
        Bucket=b,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "ia",
                    "Status": "Enabled",
                    "Filter": {"Prefix": "t/"},
                    "Transitions": [{"Days": 30, "StorageClass": "STANDARD_IA"}],
                },
                {"ID": "gone", "Status": "Enabled", "Filter": {"Prefix": "e/"}, "Expiration": {"Days": 1}},
            ]
        },
    )
    body = b"z" * 200_000  # (smaller objects stay put: S3's 128 KiB minimum)
    for key in ("e/a", "keep"):
        s3.put_object(Bucket=b, Key=key, Body=b"small")
    s3.put_object(Bucket=b, Key="t/a", Body=body)
    for key in ("hot", "cold"):
        s3.put_object(Bucket=b, Key=key, Body=body, StorageClass="INTELLIGENT_TIERING")
    ran = server.advance_clock("20d")["ran"]["s3.lifecycle"]
    assert ran.get("expired") == 1, ran
    s3.get_object(Bucket=b, Key="hot")["Body"].read()  # an access: its 30 days start again
    ran = server.advance_clock("20d")["ran"]["s3.lifecycle"]  # day 40
    assert ran.get("transitioned_to_STANDARD_IA") == 1 and ran.get("tiered_to_INFREQUENT_ACCESS") == 1, ran
    classes = {o["Key"]: o["StorageClass"] for o in s3.list_objects_v2(Bucket=b)["Contents"]}
    assert classes == {
        "t/a": "STANDARD_IA",
        "keep": "STANDARD",
        "hot": "INTELLIGENT_TIERING",
        "cold": "INTELLIGENT_TIERING",
    }
    assert s3.get_object(Bucket=b, Key="t/a")["Body"].read() == body


def _postgres_processes(node: PgNode) -> list[int]:
    """The server's postmaster and its children (backends, WAL writer, checkpointer ...)."""
    postmaster = int((node.pgdata / "postmaster.pid").read_text().split()[0])
    pids = [postmaster]
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == postmaster:
                pids.append(int(d.name))
    return pids


def test_the_gateway_answers_while_postgresql_is_stopped(
    server: StrataProcess, s3, pg_node: PgNode, unique: str
) -> None:
    """Reads of the store run off the event loop (store.read): while PostgreSQL answers nothing
    (SIGSTOP: a stalled server, a failover), requests that need it wait, and the gateway goes on
    answering what needs no database (health, STS GetCallerIdentity of the root key); once it
    answers again the waiting requests complete, without a 500: reads, writes, an UploadPart
    (its upload's row) and a CopyObject (its source's row and inline bytes)."""
    b = f"stop-{unique}"
    s3.create_bucket(Bucket=b)
    s3.put_object(Bucket=b, Key="k", Body=b"before")
    upload = s3.create_multipart_upload(Bucket=b, Key="mp")["UploadId"]
    quick = Config(connect_timeout=5, read_timeout=15, retries={"max_attempts": 1})
    sts = server.client("sts", config=quick)
    results: dict[str, object] = {}

    def get() -> None:
        results["get"] = s3.get_object(Bucket=b, Key="k")["Body"].read()

    def put() -> None:
        results["put"] = s3.put_object(Bucket=b, Key="new", Body=b"during")["ETag"]

    def part() -> None:
        results["part"] = s3.upload_part(Bucket=b, Key="mp", UploadId=upload, PartNumber=1, Body=b"p")["ETag"]

    def copy() -> None:
        results["copy"] = s3.copy_object(Bucket=b, Key="copied", CopySource=f"{b}/k")["CopyObjectResult"]

    pids = _postgres_processes(pg_node)
    waiting = [threading.Thread(target=f) for f in (get, put, part, copy)]
    for p in pids:
        os.kill(p, signal.SIGSTOP)
    try:
        for t in waiting:
            t.start()
        # The GET's reads wait in a read thread; on the event loop they stalled everything below.
        assert server.health()["pid"] == server.proc.pid  # type: ignore[union-attr]
        assert sts.get_caller_identity()["Arn"].endswith(":root")
        assert all(t.is_alive() for t in waiting)  # they need the database: still waiting
    finally:
        for p in pids:
            os.kill(p, signal.SIGCONT)
    for t in waiting:
        t.join(60)
    assert results["get"] == b"before" and results["put"] and results["copy"]
    assert s3.get_object(Bucket=b, Key="new")["Body"].read() == b"during"
    assert s3.get_object(Bucket=b, Key="copied")["Body"].read() == b"before"
    parts = [{"PartNumber": 1, "ETag": results["part"]}]
    s3.complete_multipart_upload(Bucket=b, Key="mp", UploadId=upload, MultipartUpload={"Parts": parts})
    assert s3.get_object(Bucket=b, Key="mp")["Body"].read() == b"p"


def test_kill_9_keeps_acknowledged_objects(server: StrataProcess, s3, unique: str) -> None:
    """Last in the module: the server is killed and restarted on the same database and blob dir."""
    b = f"crash-{unique}"
    s3.create_bucket(Bucket=b)
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    written = {}
    for i in range(20):
        body = f"body-{i}".encode() * (1 if i % 2 else 20_000)  # small (inline) and blob-backed
        written[f"k{i}"] = (body, s3.put_object(Bucket=b, Key=f"k{i}", Body=body)["VersionId"])
    server.kill()
    server.start()
    s3 = server.client("s3")
    for key, (body, version) in written.items():
        got = s3.get_object(Bucket=b, Key=key)
        assert got["Body"].read() == body and got["VersionId"] == version
    assert s3.get_bucket_versioning(Bucket=b)["Status"] == "Enabled"
    s3.put_object(Bucket=b, Key="after", Body=b"ok")
    assert s3.get_object(Bucket=b, Key="after")["Body"].read() == b"ok"


def test_s3_sql_answers_the_same_on_both_backends(tmp_path: Path, metadata_url: str) -> None:
    """The statements spelled per backend (dialect.py: JSON members, GREATEST, RETURNING id, NUL
    bounds) give SQLite's answers on PostgreSQL, straight from the store."""
    import asyncio

    from strata.services.s3.store import ObjectRow, S3Store

    def answers(store: S3Store) -> list:
        def write() -> None:
            store.insert_bucket("eq", "us-east-1", 1.0)
            for key, cls in (("a", "STANDARD_IA"), ("a\x01", "STANDARD"), ("b", "GLACIER")):
                row = ObjectRow(0, "eq", key, "null", True, False, None, 10, '"e"', 5.0, cls, {})
                store.insert_version(row, replace_null=True, data=b"x")
                store.set_class(row.id, cls, 6.5)
                store.set_tier(row.id, "FREQUENT")

        asyncio.run(store.db.write(write))
        try:
            return [
                sorted(store.storage_sums("eq", "", None, 0.0, 100.0)),
                [r.key for r in store.current_range("eq", "a\x00z", False, None, 10)],
                [r.key for r in store.versions_range("eq", "a\x00", 5, "b\x00", 10)],
                store.lifecycle_rows("eq", "", "a\x00q", None, 10, True),
                store.current("eq", "a\x00"),
            ]
        finally:
            store.close()

    db = f"s3eq_{uuid.uuid4().hex[:8]}"  # (not the module server's database)
    with psycopg.connect(metadata_url, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {db} TEMPLATE template0 LOCALE 'C'")
    pg_url = urlunsplit(urlsplit(metadata_url)._replace(path=f"/{db}"))
    sqlite = answers(S3Store(tmp_path / "meta.db"))
    assert sqlite[1] == sqlite[2] == ["a\x01", "b"]
    assert answers(S3Store(tmp_path / "unused.db", metadata_url=pg_url)) == sqlite


def test_an_object_write_decided_from_a_changed_bucket_row_inserts_nothing(
    tmp_path: Path, pg_node: PgNode
) -> None:
    """PutObject's write uses the bucket row its request read from the database (no second read
    inside the write) only while the stored row is still that one: the insert itself checks the
    row's xmin. Changed (or deleted) by another gateway in between: BucketChanged, nothing
    written (core's _commit_object then starts the write over, reading the row inside it)."""
    import asyncio

    from strata.services.s3.store import BucketChanged, ObjectRow, S3Store

    store = S3Store(tmp_path / "unused.db", metadata_url=fresh_database("s3xmin"))

    def put(key: str, bucket: object) -> None:
        row = ObjectRow(0, "xm", key, "null", True, False, None, 1, '"e"', 5.0, "STANDARD", {})
        asyncio.run(
            store.db.write(lambda: store.insert_version(row, replace_null=True, data=b"x", unchanged=bucket))
        )

    try:
        asyncio.run(store.db.write(lambda: store.insert_bucket("xm", "us-east-1", 1.0)))
        seen = store.bucket("xm", cached=False)
        assert seen is not None and seen.xmin
        put("a", seen)
        assert store.current("xm", "a") is not None
        asyncio.run(store.db.write(lambda: store.set_bucket_field("xm", "versioning", "Enabled")))
        with pytest.raises(BucketChanged):
            put("b", seen)
        assert store.current("xm", "b") is None
        now = store.bucket("xm", cached=False)
        assert now is not None and now.xmin != seen.xmin
        put("b", now)
        assert store.current("xm", "b") is not None
        asyncio.run(store.db.write(lambda: store.delete_bucket("xm")))
        with pytest.raises(BucketChanged):
            put("c", now)
        assert store.current("xm", "c") is None
    finally:
        store.close()
