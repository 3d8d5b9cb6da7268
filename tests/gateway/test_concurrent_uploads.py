"""Many small uploads at once with `Expect: 100-continue`: every one is answered, on its own connection.

The botocore AWS CLI v1 carries (awscli 1.46: its own copy, 1.43.62; boto3's 1.44 no longer does
this; the issue saw the same stall with CLI v2 2.9), after reading a final answer to an
`Expect: 100-continue` request that never got `100 Continue` (an empty body needs none), keeps that
answer's status line and hands it to the *next* response on the same connection; that response's
real head is then read as headers, its Content-Length is lost and the client waits for the
connection to close: `aws s3 sync` stalled a minute per affected file. The server now always sends
`100 Continue` to a request that asked for it before answering it on a connection it keeps open.
"""

from __future__ import annotations

import concurrent.futures
import io
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

from botocore.config import Config

from tests.strata_process import StrataProcess

AWS = str(Path(sys.executable).with_name("aws"))
# "Did it hang" bound for one small upload: generous for a loaded 2-core CI machine, far below
# the minute a lost answer used to cost.
READ_TIMEOUT = 30


def _sizes(n: int) -> list[int]:
    rng = random.Random(12)
    return [rng.choice((0, 0, 1, 100, 3000, 7000)) for _ in range(n)]


def _upload_all(client, bucket: str, sizes: list[int], threads: int) -> dict[str, bytes]:
    objects = {f"k{i}/{size}": os.urandom(size) for i, size in enumerate(sizes)}

    def put(key: str) -> str:
        # A file-like body is what makes botocore send `Expect: 100-continue`.
        client.put_object(Bucket=bucket, Key=key, Body=io.BytesIO(objects[key]))
        return key

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        done = list(pool.map(put, objects))
    assert sorted(done) == sorted(objects)
    return objects


def _check(client, bucket: str, objects: dict[str, bytes]) -> None:
    for key, data in objects.items():
        assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == data, key


def _config(threads: int) -> Config:
    # No retries: a lost answer must show as a read timeout, not be papered over by a retry.
    return Config(
        read_timeout=READ_TIMEOUT,
        connect_timeout=READ_TIMEOUT,
        retries={"max_attempts": 1, "mode": "standard"},
        max_pool_connections=threads,
    )


def test_concurrent_small_uploads_with_boto3_are_all_answered(
    strata_server: StrataProcess, unique: str
) -> None:
    threads = 12
    s3 = strata_server.client("s3", config=_config(threads))
    bucket = f"stress-{unique}"
    s3.create_bucket(Bucket=bucket)
    objects = _upload_all(s3, bucket, _sizes(300), threads)
    _check(s3, bucket, objects)


# Run in a process of its own: where boto3's botocore is already imported, the CLI's copy ends up
# using parts of it.
_CLI_BOTOCORE_UPLOADS = """
import concurrent.futures, io, os, sys
from awscli.botocore.config import Config
from awscli.botocore.session import get_session

endpoint, bucket, read_timeout, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sizes = [int(n) for n in sys.argv[5].split(",")]
s3 = get_session().create_client(
    "s3", endpoint_url=endpoint, region_name="us-east-1",
    aws_access_key_id="test", aws_secret_access_key="test",
    config=Config(read_timeout=read_timeout, retries={"max_attempts": 0},
                  max_pool_connections=threads),
)
import botocore
assert "awscli" in botocore.__file__  # the CLI's copy, not boto3's
s3.create_bucket(Bucket=bucket)

def put(i):
    data = os.urandom(sizes[i])
    s3.put_object(Bucket=bucket, Key=f"k{i}", Body=io.BytesIO(data))
    return i

with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    print(len(list(pool.map(put, range(len(sizes))))))
"""


def test_concurrent_small_uploads_with_the_cli_botocore_are_all_answered(
    strata_server: StrataProcess, unique: str
) -> None:
    """The botocore the AWS CLI carries (the one that kept a stale status line, see above)."""
    sizes = _sizes(300)
    bucket = f"stress-cli-{unique}"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _CLI_BOTOCORE_UPLOADS,
            strata_server.endpoint,
            bucket,
            str(READ_TIMEOUT),
            "12",
            ",".join(map(str, sizes)),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == [str(len(sizes))]
    listed = strata_server.client("s3").list_objects_v2(Bucket=bucket)["Contents"]
    assert sorted(o["Size"] for o in listed) == sorted(sizes)


def _raw_put(port: int, host: str, uploads: list[tuple[str, bytes]]) -> int:
    """Keep-alive PUTs (presigned) with Expect: 100-continue, one after another on one connection,
    as botocore sends them: the head, then the body once 100 Continue came. Returns how many were
    answered 200."""
    answered = 0
    sock = socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT)
    reader = sock.makefile("rb")
    try:
        for path, body in uploads:
            sock.sendall(
                f"PUT {path} HTTP/1.1\r\nHost: {host}\r\nExpect: 100-continue\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
            )
            status, headers = _read_head(reader)
            if status == 100:
                sock.sendall(body)
                status, headers = _read_head(reader)
            reader.read(int(headers.get("content-length", "0")))
            assert status == 200 and headers.get("connection") != "close", (status, headers)
            answered += 1
    finally:
        reader.close()
        sock.close()
    return answered


def _read_head(reader) -> tuple[int, dict[str, str]]:
    status_line = reader.readline()
    assert status_line.startswith(b"HTTP/1.1 "), status_line
    headers: dict[str, str] = {}
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers


def test_concurrent_raw_expect_continue_uploads_are_all_answered(
    strata_server: StrataProcess, unique: str
) -> None:
    bucket = f"stress-raw-{unique}"
    s3 = strata_server.client("s3")
    s3.create_bucket(Bucket=bucket)
    host = f"127.0.0.1:{strata_server.port}"

    def presigned(key: str) -> str:
        url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": key})
        return url.split(host, 1)[1]

    sizes = _sizes(40)
    jobs = [[(presigned(f"t{t}/k{i}"), os.urandom(n)) for i, n in enumerate(sizes)] for t in range(16)]
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        answered = list(pool.map(lambda job: _raw_put(strata_server.port, host, job), jobs))
    assert answered == [len(sizes)] * len(jobs)
    assert time.monotonic() - started < 120  # a hang bound, not a speed assertion


def test_zero_length_expect_continue_upload_gets_100_before_its_answer(
    strata_server: StrataProcess, unique: str
) -> None:
    """On a connection kept open, a request that asked for 100 Continue gets it, even when its
    (empty) body needed none: clients read the next answer right only then (see the docstring)."""
    bucket = f"expect0-{unique}"
    s3 = strata_server.client("s3")
    s3.create_bucket(Bucket=bucket)
    url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "empty"})
    path = url.split(str(strata_server.port), 1)[1]
    sock = socket.create_connection(("127.0.0.1", strata_server.port), timeout=READ_TIMEOUT)
    reader = sock.makefile("rb")
    try:
        sock.sendall(
            f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{strata_server.port}\r\n"
            "Expect: 100-continue\r\nContent-Length: 0\r\n\r\n".encode()
        )
        assert _read_head(reader)[0] == 100
        status, headers = _read_head(reader)
        assert status == 200 and headers.get("connection") != "close"
    finally:
        reader.close()
        sock.close()
    assert s3.get_object(Bucket=bucket, Key="empty")["Body"].read() == b""


def test_aws_s3_sync_of_a_tree_of_small_files_does_not_stall(
    strata_server: StrataProcess, unique: str, tmp_path: Path
) -> None:
    """The reported case: `aws s3 sync` (10 threads) of 26 files of 0-200 KiB in three folders.
    A read timeout of 20 s (the CLI's is 60) turns a lost answer into a retry its debug log shows."""
    rng = random.Random(5)
    files: dict[str, bytes] = {}
    for i in range(26):
        rel = f"{'abc'[i % 3]}/f{i}.bin"
        files[rel] = os.urandom(rng.choice((0, 1, 100, 3000, 7000, 50_000, 120_000, 200_000)))
        (tmp_path / "tree" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "tree" / rel).write_bytes(files[rel])
    bucket = f"sync-{unique}"
    s3 = strata_server.client("s3")
    s3.create_bucket(Bucket=bucket)
    env = strata_server.env()
    proc = subprocess.run(
        [
            AWS,
            "s3",
            "sync",
            str(tmp_path / "tree"),
            f"s3://{bucket}/t",
            "--cli-read-timeout",
            "20",
            "--debug",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    timeouts = proc.stderr.count("Read timeout on endpoint URL")
    assert timeouts == 0, f"{timeouts} requests went unanswered for 20 s"
    listed = {o["Key"]: o["Size"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert listed == {f"t/{rel}": len(data) for rel, data in files.items()}
    for rel, data in files.items():
        assert s3.get_object(Bucket=bucket, Key=f"t/{rel}")["Body"].read() == data
