"""S3 lifecycle catch-up: a 365-day clock jump over a bucket of N objects under the seed's 3 rules.

The work must grow with the number of objects, never with the days jumped (one walk of the
bucket plans everything due, lifecycle_run.py). For each N this:

1. makes the buckets and puts the seed's lifecycle configuration through the API, then loads N
   objects straight into the stopped server's S3 metadata (rows with metered sizes: 50 TB of
   logs split over N objects, no real bytes; created over the past 30 days);
2. serves the directory with `strata serve`, moves the clock 365 days through the admin API (the
   answer comes once the rule has caught up) and times it, while a client thread sends HEAD
   requests to another bucket and records the slowest answer (requests are served between
   chunks);
3. counts the classes the objects ended in (DEEP_ARCHIVE, or GLACIER for those whose 365th day
   rounds up to the midnight after the jump).

    python bench/lifecycle_catchup.py --objects 10000 100000 1000000 [--days 30 365 730]
                                      [--data-dir /tmp/lcbench]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import boto3
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[1]  # `strata serve` runs from this checkout


BUCKET = "my-bucket"
TOTAL_BYTES = 50 * 10**12  # the seed's 50 TB of logs
SEED_RULES = {
    "Rules": [
        {
            "ID": "MoveToIA30Days",
            "Status": "Enabled",
            "Filter": {"Prefix": "logs/"},
            "Transitions": [
                {"Days": 30, "StorageClass": "STANDARD_IA"},
                {"Days": 90, "StorageClass": "GLACIER"},
                {"Days": 365, "StorageClass": "DEEP_ARCHIVE"},
            ],
            "Expiration": {"Days": 2555},
        },
        {
            "ID": "DeleteIncompleteMultipartUploads",
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
        },
        {
            "ID": "ExpireOldVersions",
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "NoncurrentVersionTransitions": [{"NoncurrentDays": 30, "StorageClass": "GLACIER"}],
            "NoncurrentVersionExpiration": {"NoncurrentDays": 365},
        },
    ]
}


def client(port: int):  # noqa: ANN201
    return boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1}),
    )


def load(data_dir: Path, n: int, port: int) -> float:
    """Buckets and the configuration through the API, then n object rows into the stopped
    server's metadata; seconds taken."""
    started = time.monotonic()
    server = serve(data_dir, port)
    try:
        s3 = client(port)
        for name in (BUCKET, "probe"):
            s3.create_bucket(Bucket=name)
        s3.put_bucket_lifecycle_configuration(Bucket=BUCKET, LifecycleConfiguration=SEED_RULES)
        s3.put_object(Bucket="probe", Key="k", Body=b"probe")
    finally:
        server.terminate()
        server.wait(60)
    now = time.time()  # the server's clock was never moved: simulated time is real time
    size = TOTAL_BYTES // n
    attrs = json.dumps({"headers": {"ContentType": "text/plain"}, "meta": {}})
    db = sqlite3.connect(data_dir / "s3" / "meta.db")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO objects(bucket, key, version_id, latest, dm, blob, size, etag, modified, storage_class, "
        "attrs) VALUES (?, ?, 'null', 1, 0, NULL, ?, '\"0\"', ?, 'STANDARD', ?)",
        ((BUCKET, f"logs/{i:08d}.log", size, now - (i % 30) * 86400.0, attrs) for i in range(n)),
    )
    db.execute("COMMIT")
    db.close()
    return time.monotonic() - started


def serve(data_dir: Path, port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "strata.cli",
            "serve",
            "--port",
            str(port),
            "--tls-port",
            "off",
            "--data-dir",
            str(data_dir),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_strata/health", timeout=2).read()
            return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("strata did not start")


def advance(port: int, duration: str) -> dict:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/_strata/clock",
        data=json.dumps({"advance": duration}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=3600) as r:
        return json.loads(r.read())


def run(n: int, base: Path, port: int, days: int = 365) -> dict:
    data_dir = base / f"n{n}"
    shutil.rmtree(data_dir, ignore_errors=True)
    loaded = load(data_dir, n, port)
    server = serve(data_dir, port)
    try:
        s3 = client(port)
        s3.head_object(Bucket="probe", Key="k")
        stop = threading.Event()
        slowest = [0.0, 0]

        def probe() -> None:
            while not stop.is_set():
                t = time.monotonic()
                s3.head_object(Bucket="probe", Key="k")
                slowest[0] = max(slowest[0], time.monotonic() - t)
                slowest[1] += 1

        thread = threading.Thread(target=probe)
        thread.start()
        started = time.monotonic()
        answer = advance(port, f"{days}d")
        took = time.monotonic() - started
        stop.set()
        thread.join()
        classes = {}
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, PaginationConfig={"PageSize": 1000}
        ):
            for o in page.get("Contents", []):
                classes[o["StorageClass"]] = classes.get(o["StorageClass"], 0) + 1
    finally:
        server.terminate()
        server.wait(60)
    shutil.rmtree(data_dir, ignore_errors=True)
    return {
        "objects": n,
        "days": days,
        "load_s": round(loaded, 1),
        "catch_up_s": round(took, 2),
        "objects_per_s": round(n / took),
        "ran": answer["ran"]["s3.lifecycle"],
        "classes_after": classes,
        "head_requests_during": slowest[1],
        "slowest_head_ms": round(slowest[0] * 1000, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--data-dir", type=Path, default=Path("/tmp/lifecycle-bench"))
    ap.add_argument("--port", type=int, default=4611)
    ap.add_argument("--days", type=int, nargs="+", default=[365], help="jumps to time (each on fresh data)")
    a = ap.parse_args()
    os.umask(0o077)
    for n in a.objects:
        for days in a.days:
            print(json.dumps(run(n, a.data_dir, a.port, days)), flush=True)


if __name__ == "__main__":
    main()
