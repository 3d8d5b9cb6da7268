"""Two Strata gateways serving one S3: the same PostgreSQL metadata database and the same blob
directory (`--metadata postgresql://... --blob-dir PATH`), each with a data dir of its own
(issue 22 step 2, several gateways).

What one gateway does, the other sees at once: objects written the same moment from both, an
upload started on one and completed on the other, a policy or a deleted bucket; and a gateway
restarting while the other writes deletes nothing the other is writing or has written.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.storage.test_s3_postgres import metadata_url  # noqa: F401 - the module's own database
from tests.strata_process import StrataProcess

BIG = 100_000  # above the 64 KiB inline limit: bodies are blob files in the shared directory


@pytest.fixture(scope="module")
def gateways(
    tmp_path_factory: pytest.TempPathFactory,
    metadata_url: str,  # noqa: F811
) -> Iterator[tuple[StrataProcess, StrataProcess]]:
    root = tmp_path_factory.mktemp("s3gw")
    procs = tuple(
        StrataProcess(
            root / f"data-{name}",
            extra_env={"STRATA_METADATA": metadata_url},
            extra_args=["--blob-dir", str(root / "blobs")],
        )
        for name in ("a", "b")
    )
    try:
        for p in procs:
            p.start()
        yield procs  # type: ignore[misc]
    finally:
        for p in procs:
            p.stop()


def _clients(gateways: tuple[StrataProcess, StrataProcess]) -> tuple:
    cfg = Config(max_pool_connections=8)  # (boto3 clients are thread-safe)
    return tuple(g.client("s3", config=cfg) for g in gateways)


def _code(e: pytest.ExceptionInfo[ClientError]) -> str:
    return e.value.response["Error"]["Code"]


def _body(i: int) -> bytes:
    return f"writer-{i:02d};".encode() * (BIG // 10)


def _put_from_both(a, b, bucket: str, n: int) -> list[tuple[bytes, dict]]:  # noqa: ANN001
    """`n` PUTs of one key from each gateway at the same moment: (body, response) of each."""
    done: list[tuple[bytes, dict]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2 * n)

    def put(client, i: int) -> None:  # noqa: ANN001
        body = _body(i)
        start.wait()
        try:
            done.append((body, client.put_object(Bucket=bucket, Key="same", Body=body)))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=put, args=((a, b)[i % 2], i)) for i in range(2 * n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    return done


def test_concurrent_puts_of_one_key_from_both_gateways(gateways, unique: str) -> None:
    a, b = _clients(gateways)
    plain, versioned = f"same-{unique}", f"samev-{unique}"
    a.create_bucket(Bucket=plain)
    b.create_bucket(Bucket=versioned)
    a.put_bucket_versioning(Bucket=versioned, VersioningConfiguration={"Status": "Enabled"})

    bodies = {body for body, _ in _put_from_both(a, b, plain, 4)}
    final = {c.get_object(Bucket=plain, Key="same")["Body"].read() for c in (a, b)}
    assert len(final) == 1 and final <= bodies  # one writer's body, whole: never a mix
    assert len(a.list_object_versions(Bucket=plain)["Versions"]) == 1  # overwritten: one null version

    # Versioning enabled on A binds B's PUTs at once; every PUT of either is a version of its own.
    written = {r["VersionId"]: body for body, r in _put_from_both(a, b, versioned, 4)}
    assert len(written) == 8 and "null" not in written
    listed = b.list_object_versions(Bucket=versioned)["Versions"]
    assert {v["VersionId"] for v in listed} == set(written)
    for i, (version, body) in enumerate(written.items()):
        client = (a, b)[i % 2]
        assert client.get_object(Bucket=versioned, Key="same", VersionId=version)["Body"].read() == body
    latest = next(v["VersionId"] for v in listed if v["IsLatest"])
    assert a.get_object(Bucket=versioned, Key="same")["Body"].read() == written[latest]


def test_multipart_upload_started_on_one_gateway_and_completed_on_the_other(gateways, unique: str) -> None:
    a, b = _clients(gateways)
    bucket = f"mpu-{unique}"
    a.create_bucket(Bucket=bucket)
    up = a.create_multipart_upload(Bucket=bucket, Key="m")["UploadId"]
    p1, p2 = b"1" * (5 * 1024 * 1024), b"2" * BIG
    e1 = a.upload_part(Bucket=bucket, Key="m", UploadId=up, PartNumber=1, Body=p1)["ETag"]
    e2 = b.upload_part(Bucket=bucket, Key="m", UploadId=up, PartNumber=2, Body=p2)["ETag"]
    assert [p["ETag"] for p in b.list_parts(Bucket=bucket, Key="m", UploadId=up)["Parts"]] == [e1, e2]
    b.complete_multipart_upload(
        Bucket=bucket,
        Key="m",
        UploadId=up,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]},
    )
    assert a.get_object(Bucket=bucket, Key="m")["Body"].read() == p1 + p2
    with pytest.raises(ClientError) as e:
        a.list_parts(Bucket=bucket, Key="m", UploadId=up)
    assert _code(e) == "NoSuchUpload"


def _policy(effect: str, bucket: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": effect,
                    "Principal": {"AWS": "arn:aws:iam::000000000000:root"},
                    "Action": "s3:GetObject",
                    "Resource": f"arn:aws:s3:::{bucket}/*",
                }
            ],
        }
    )


def test_a_policy_put_on_one_gateway_binds_the_next_request_on_the_other(gateways, unique: str) -> None:
    a, b = _clients(gateways)
    bucket = f"pol-{unique}"
    a.create_bucket(Bucket=bucket)
    a.put_object(Bucket=bucket, Key="k", Body=b"secret")
    for _ in range(2):  # B remembers the bucket has no policy (its authorization short cut) ...
        assert b.get_object(Bucket=bucket, Key="k")["Body"].read() == b"secret"
    a.put_bucket_policy(Bucket=bucket, Policy=_policy("Allow", bucket))
    for _ in range(2):  # ... then the decision allowed under this policy
        assert b.get_object(Bucket=bucket, Key="k")["Body"].read() == b"secret"
    a.put_bucket_policy(Bucket=bucket, Policy=_policy("Deny", bucket))
    with pytest.raises(ClientError) as e:
        b.get_object(Bucket=bucket, Key="k")
    assert _code(e) == "AccessDenied"
    assert b.get_bucket_policy(Bucket=bucket)["Policy"] == _policy("Deny", bucket)
    a.delete_bucket_policy(Bucket=bucket)
    assert b.get_object(Bucket=bucket, Key="k")["Body"].read() == b"secret"


def test_bucket_settings_changed_on_one_gateway_are_read_on_the_other(gateways, unique: str) -> None:
    a, b = _clients(gateways)
    bucket = f"conf-{unique}"
    a.create_bucket(Bucket=bucket)
    assert "Status" not in b.get_bucket_versioning(Bucket=bucket)  # (B has the row now)
    a.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    a.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "team", "Value": "a"}]})
    rules = [{"ID": "gone", "Status": "Enabled", "Filter": {"Prefix": "tmp/"}, "Expiration": {"Days": 1}}]
    a.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
    assert b.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"
    assert b.get_bucket_tagging(Bucket=bucket)["TagSet"] == [{"Key": "team", "Value": "a"}]
    assert b.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"][0]["ID"] == "gone"
    put = b.put_object(Bucket=bucket, Key="tmp/x", Body=b"x")  # B applies the rule A put
    assert 'rule-id="gone"' in put["ResponseMetadata"]["HTTPHeaders"]["x-amz-expiration"]


def test_a_bucket_deleted_on_one_gateway_is_gone_on_the_other(gateways, unique: str) -> None:
    a, b = _clients(gateways)
    bucket = f"gone-{unique}"
    a.create_bucket(Bucket=bucket)
    b.head_bucket(Bucket=bucket)
    b.put_object(Bucket=bucket, Key="k", Body=b"x")
    b.delete_object(Bucket=bucket, Key="k")
    a.delete_bucket(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        b.head_bucket(Bucket=bucket)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as e:
        b.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert _code(e) == "NoSuchBucket"
    b.create_bucket(Bucket=bucket)  # the name is free again, on either gateway
    a.put_object(Bucket=bucket, Key="again", Body=b"y")
    assert b.get_object(Bucket=bucket, Key="again")["Body"].read() == b"y"


def test_a_gateway_restarting_while_the_other_uploads_deletes_nothing_of_it(
    gateways,
    unique: str,
    metadata_url: str,  # noqa: F811
) -> None:
    """Last in the module. A is killed with -9 and started again while B is in the middle of a
    PUT (its temp file in the shared directory) and keeps acknowledging others: A's start-up
    clean-up must leave all of it, and remove what A freed but died before unlinking."""
    ga, gb = gateways
    a, b = _clients(gateways)
    bucket = f"restart-{unique}"
    blob_dir = Path(ga.extra_args[-1]) / "s3"
    a.create_bucket(Bucket=bucket)
    before = {f"a{i}": _body(i) for i in range(3)}
    for key, body in before.items():
        a.put_object(Bucket=bucket, Key=key, Body=body)
    # B writes an object, A overwrites it: B's blob is garbage, its unlink a few seconds away.
    b.put_object(Bucket=bucket, Key="victim", Body=_body(1))
    with psycopg.connect(metadata_url) as c:
        (replaced,) = c.execute(
            "SELECT blob FROM s3.objects WHERE bucket = %s AND key = 'victim'", (bucket,)
        ).fetchone()
    a.put_object(Bucket=bucket, Key="victim", Body=_body(2))
    before["victim"] = _body(2)
    deadline = time.monotonic() + 1  # (killed well before A's own unlink, 5 s after the PUT)
    while not (blob_dir / "freed" / replaced).exists() and time.monotonic() < deadline:
        time.sleep(0.01)

    # B receives half of a PUT's body, then waits for A's restart.
    slow = b"s" * (4 * BIG)
    url = urlsplit(b.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "slow"}))
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    conn.putrequest("PUT", f"{url.path}?{url.query}", skip_accept_encoding=True)
    conn.putheader("Content-Length", str(len(slow)))
    conn.endheaders()
    conn.send(slow[: len(slow) // 2])

    acknowledged: dict[str, bytes] = {}
    errors: list[BaseException] = []
    stop = threading.Event()

    def upload() -> None:  # B keeps writing while A goes down and comes back
        i = 0
        while not stop.is_set():
            key, body = f"b{i}", _body(i % 50)
            try:
                b.put_object(Bucket=bucket, Key=key, Body=body)
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)
                return
            acknowledged[key] = body
            i += 1

    writer = threading.Thread(target=upload)
    writer.start()
    try:
        ga.kill()
        ga.start()
    finally:
        stop.set()
        writer.join(60)
    conn.send(slow[len(slow) // 2 :])
    answer = conn.getresponse()
    assert answer.status == 200, answer.read()
    conn.close()
    assert not errors, errors
    assert acknowledged  # (B wrote during the restart)

    a = ga.client("s3")
    for key, body in {**before, **acknowledged, "slow": slow}.items():
        for client in (a, b):
            assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == body, key
    assert not list(blob_dir.glob("tmp/*/*"))  # nothing in flight left behind
    assert not list(blob_dir.glob(f"blobs/*/*/{replaced}"))  # (its writer B lives on)
    assert not list(blob_dir.glob("freed/*"))
