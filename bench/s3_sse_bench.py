"""S3 encryption at rest: 64 MiB PUT and GET, encrypted vs unencrypted, side by side in one run.

    plain    a bucket without default encryption (server started with
             STRATA_S3_DEFAULT_ENCRYPTION=off): stored as sent, GET by sendfile
    sse-s3   default encryption AES256
    sse-kms  default encryption aws:kms with a customer managed key (no bucket key: one
             GenerateDataKey per PUT, one Decrypt per GET)
                                         (bar: SSE-S3 and SSE-KMS >= 80% of plain, PUT and GET)
    small    4 KiB GET (presigned, wrk) of an SSE-S3 object vs a plain one (no bar: what the
             default encryption of new buckets costs the smallest reads; needs wrk)

Usage: python bench/s3_sse_bench.py [--rounds 5] [--size-mib 64] [--small-seconds 3]
Starts its own Strata on free loopback ports in a temp dir. The modes are measured in alternating
rounds (one PUT and one GET each, one stream, presigned over plain HTTP); each ratio is the median
of the per-round ratios against the plain transfer of the same round.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from s3_bench import client, rel, wrk_get  # noqa: E402

from tests.strata_process import StrataProcess  # noqa: E402

MiB = 1024 * 1024


def put(url: str, data: memoryview) -> float:
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port)
    t = time.perf_counter()
    conn.putrequest("PUT", rel(url), skip_accept_encoding=True)
    conn.putheader("Content-Length", str(len(data)))
    conn.endheaders()
    for i in range(0, len(data), 8 * MiB):
        conn.send(data[i : i + 8 * MiB])
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 200, resp.status
    conn.close()
    return len(data) / (time.perf_counter() - t) / 1e6


def get(url: str, size: int) -> float:
    u = urlsplit(url)
    buf = bytearray(4 * MiB)
    conn = http.client.HTTPConnection(u.hostname, u.port)
    t = time.perf_counter()
    conn.request("GET", rel(url))
    resp = conn.getresponse()
    n = 0
    while k := resp.readinto(buf):
        n += k
    assert resp.status == 200 and n == size, (resp.status, n)
    conn.close()
    return size / (time.perf_counter() - t) / 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--size-mib", type=int, default=64)
    ap.add_argument("--small-seconds", type=int, default=3, help="0: skip the 4 KiB GET")
    args = ap.parse_args()
    size = args.size_mib * MiB
    data = memoryview(os.urandom(size))
    tmp = Path(tempfile.mkdtemp(prefix="s3-sse-bench-"))
    server = StrataProcess(tmp / "data", extra_env={"STRATA_S3_DEFAULT_ENCRYPTION": "off"}).start()
    try:
        s3 = client(server.endpoint)
        cmk = server.client("kms").create_key()["KeyMetadata"]["Arn"]
        modes = {"plain": None, "sse-s3": ("AES256", None), "sse-kms": ("aws:kms", cmk)}
        urls = {}
        for mode, sse in modes.items():
            bucket = f"bench-{mode}"
            s3.create_bucket(Bucket=bucket)
            if sse:
                rule = {"SSEAlgorithm": sse[0], **({"KMSMasterKeyID": sse[1]} if sse[1] else {})}
                s3.put_bucket_encryption(
                    Bucket=bucket,
                    ServerSideEncryptionConfiguration={
                        "Rules": [{"ApplyServerSideEncryptionByDefault": rule}]
                    },
                )
            params = {"Bucket": bucket, "Key": "obj"}
            urls[mode] = (
                s3.generate_presigned_url("put_object", Params=params, ExpiresIn=3600),
                s3.generate_presigned_url("get_object", Params=params, ExpiresIn=3600),
            )
        results: dict[str, dict[str, list[float]]] = {m: {"put": [], "get": []} for m in modes}
        for _ in range(args.rounds):
            for mode, (put_url, get_url) in urls.items():
                results[mode]["put"].append(put(put_url, data))
                results[mode]["get"].append(get(get_url, size))
        head = s3.head_object(Bucket="bench-sse-kms", Key="obj")
        assert head["ServerSideEncryption"] == "aws:kms", head
        assert "ServerSideEncryption" not in s3.head_object(Bucket="bench-plain", Key="obj")
        for op in ("put", "get"):
            base = results["plain"][op]
            line = [f"{op}_{args.size_mib}m: plain {statistics.median(base):,.0f} MB/s"]
            for mode in ("sse-s3", "sse-kms"):
                speeds = results[mode][op]
                ratio = statistics.median(s / b for s, b in zip(speeds, base, strict=True))
                line.append(f"{mode} {statistics.median(speeds):,.0f} MB/s ({ratio:.0%})")
            print("  ".join(line) + "  (bar >= 80%)")
        if args.small_seconds:
            small = {}
            for mode in ("plain", "sse-s3"):
                s3.put_object(Bucket=f"bench-{mode}", Key="small", Body=os.urandom(4096))
                params = {"Bucket": f"bench-{mode}", "Key": "small"}
                small[mode] = rel(s3.generate_presigned_url("get_object", Params=params, ExpiresIn=3600))
            rps: dict[str, list[float]] = {m: [] for m in small}
            for _ in range(args.rounds):
                for mode, path in small.items():
                    rps[mode].append(wrk_get(server.endpoint, [path], args.small_seconds))
            ratio = statistics.median(e / p for e, p in zip(rps["sse-s3"], rps["plain"], strict=True))
            print(
                f"get_4k: plain {statistics.median(rps['plain']):,.0f} req/s  "
                f"sse-s3 {statistics.median(rps['sse-s3']):,.0f} req/s ({ratio:.0%})"
            )
        print(f"load average {os.getloadavg()[0]:.1f}")
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
