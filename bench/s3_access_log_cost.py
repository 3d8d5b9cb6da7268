"""What S3 server access logging costs a GET: a logged bucket against an unlogged one, same server.

    python bench/s3_access_log_cost.py [--requests 2000] [--rounds 3]

Starts its own Strata in a temp dir, makes two buckets with one 4 KiB object each, turns logging on
for one of them (to a third bucket), and times presigned GETs over one keep-alive connection,
alternating the buckets round by round so both see the same machine load. Also times the
gateway's hook in-process (strata.gateway.server_access.record_s3_access) and the formatting the
delivery does later (access_logs.log_line), per call.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's strata, not an installed one

from strata.gateway.server_access import record_s3_access  # noqa: E402
from strata.protocol.http import Headers, HttpRequest, HttpResponse  # noqa: E402
from strata.services.s3.access_log_lines import log_line  # noqa: E402
from strata.sim.server_access_logs import server_access_logs  # noqa: E402
from tests.strata_process import StrataProcess  # noqa: E402


def _gets(url: str, n: int) -> float:
    """Mean seconds per GET of a presigned URL, over one connection."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.netloc)
    path = f"{parts.path}?{parts.query}"
    t = time.perf_counter()
    for _ in range(n):
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200
    conn.close()
    return (time.perf_counter() - t) / n


def end_to_end(requests: int, rounds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        server = StrataProcess(Path(tmp) / "data").start()
        try:
            s3 = server.client("s3")
            for b in ("plain", "logged", "logs"):
                s3.create_bucket(Bucket=b)
            policy = {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "logging.s3.amazonaws.com"},
                        "Action": "s3:PutObject",
                        "Resource": "arn:aws:s3:::logs/*",
                    }
                ],
            }
            s3.put_bucket_policy(Bucket="logs", Policy=json.dumps(policy))
            s3.put_bucket_logging(
                Bucket="logged",
                BucketLoggingStatus={"LoggingEnabled": {"TargetBucket": "logs", "TargetPrefix": "l/"}},
            )
            urls = {}
            for b in ("plain", "logged"):
                s3.put_object(Bucket=b, Key="k", Body=b"x" * 4096)
                urls[b] = s3.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "k"})
            _gets(urls["plain"], 200)  # warm-up
            _gets(urls["logged"], 200)
            seen: dict[str, list[float]] = {"plain": [], "logged": []}
            for i in range(rounds):  # alternate which goes first, too
                for b in ("plain", "logged") if i % 2 else ("logged", "plain"):
                    seen[b].append(_gets(urls[b], requests))
            return {b: statistics.median(v) * 1e6 for b, v in seen.items()}
        finally:
            server.stop()


def in_process(n: int = 100_000) -> dict[str, float]:
    request = HttpRequest(
        "GET", "/logged/k", "X-Amz-Signature=ab", Headers(), host="localhost", client="127.0.0.1"
    )
    response = HttpResponse(200, [("content-length", "4096")], b"")
    out = {}
    for name, bucket in (("hook, unlogged bucket", "plain"), ("hook, logged bucket", "logged")):
        server_access_logs.watch("logged", "0" * 64)
        params = {"Bucket": bucket, "Key": "k"}
        t = time.perf_counter()
        for _ in range(n):
            record_s3_access(request, response, None, params, "GetObject", "R1", None, {}, 1.0, 4096, 0, None)
        out[name] = (time.perf_counter() - t) / n * 1e6
    records = server_access_logs.drain()
    t = time.perf_counter()
    for r in records:
        log_line(r, "0" * 64)
    out["log_line (at delivery)"] = (time.perf_counter() - t) / len(records) * 1e6
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    for name, us in in_process().items():
        print(f"{name:28s} {us:8.2f} us/call")
    got = end_to_end(args.requests, args.rounds)
    for b, us in got.items():
        print(f"GET 4 KiB, {b:7s} bucket     {us:8.1f} us/request")
    print(
        f"logging overhead             {got['logged'] - got['plain']:+8.1f} us/request "
        f"({(got['logged'] / got['plain'] - 1) * 100:+.1f}%)"
    )


if __name__ == "__main__":
    main()
