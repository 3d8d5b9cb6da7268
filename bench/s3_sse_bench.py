"""S3 encryption at rest: encrypted vs unencrypted transfers, side by side in one run.

    64 MiB PUT and GET, one stream, presigned, alternating rounds:
      plain    a bucket without default encryption (server started with
               STRATA_S3_DEFAULT_ENCRYPTION=off): stored as sent, GET by sendfile
      sse-s3   default encryption AES256
      sse-kms  default encryption aws:kms with a customer managed key (no bucket key: one
               GenerateDataKey per PUT, one Decrypt per GET)
                                         (bar: SSE-S3 and SSE-KMS >= 80% of plain, PUT and GET)
    --peers: the S3 issue's GET bars with new objects encrypted by default (SSE-S3, as on AWS):
      1 MiB GET (wrk, 16 connections) and 256 MiB GET (one stream) vs nginx sendfile (bar >= 50%)
    small    4 KiB GET (wrk) of an SSE-S3 object vs a plain one (no bar; needs wrk)
    --before DIR: the same SSE-S3 GETs from a second server running the checkout in DIR (e.g.
      `git worktree add /tmp/before <commit>`), measured in the same rounds: before/after.
    --cpu N: both servers serve on CPU N (STRATA_CPU_AFFINITY). With the default, each pins
      itself to the CPU it starts on, and two servers on different CPUs (one shared with wrk or
      a busy neighbour) differ by more than their code does.

Usage: python bench/s3_sse_bench.py [--rounds 5] [--size-mib 64] [--small-seconds 3] [--peers]
       [--before DIR] [--cpu N]
Starts its own servers on free loopback ports in a temp dir. Each ratio is the median of the
per-round ratios against the plain (or nginx) transfer of the same round; server CPU per request
is read from /proc.
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
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from local_server import cpu_seconds  # noqa: E402
from s3_bench import _nginx, client, rel, wrk_get  # noqa: E402

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


class Target:
    """One GET URL (a Strata server's or nginx's) and the server's pid for its CPU time."""

    def __init__(self, url: str, pid: int | None = None) -> None:
        self.url, self.pid = url, pid
        self.speeds: list[float] = []
        self.cpu = self.requests = 0.0  # server CPU seconds and requests, over every round

    def measure(self, fn: Callable[[str], tuple[float, float]]) -> None:
        """`fn(url)` -> (speed, requests made)."""
        c0 = cpu_seconds(self.pid) if self.pid else 0.0
        speed, count = fn(self.url)
        self.speeds.append(speed)
        if self.pid:  # (summed: /proc counts CPU in 10 ms ticks)
            self.cpu += cpu_seconds(self.pid) - c0
            self.requests += count

    def line(self, name: str, base: Target | None, unit: str) -> str:
        text = f"{name} {statistics.median(self.speeds):,.0f} {unit}"
        if self.requests:
            text += f" [cpu {self.cpu / self.requests * 1000:.2f} ms]"
        if base is not None and base is not self:
            ratio = statistics.median(s / b for s, b in zip(self.speeds, base.speeds, strict=True) if b)
            text += f" ({ratio:.0%})"
        return text


def encrypted_bucket(s3, bucket: str, sse: tuple[str, str | None] | None) -> None:  # noqa: ANN001
    s3.create_bucket(Bucket=bucket)
    if sse:
        rule = {"SSEAlgorithm": sse[0], **({"KMSMasterKeyID": sse[1]} if sse[1] else {})}
        s3.put_bucket_encryption(
            Bucket=bucket,
            ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": rule}]},
        )


def presigned(s3, bucket: str, key: str) -> tuple[str, str]:  # noqa: ANN001
    params = {"Bucket": bucket, "Key": key}
    return (
        s3.generate_presigned_url("put_object", Params=params, ExpiresIn=3600),
        s3.generate_presigned_url("get_object", Params=params, ExpiresIn=3600),
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--size-mib", type=int, default=64)
    ap.add_argument("--small-seconds", type=int, default=3, help="0: skip the 4 KiB GET")
    ap.add_argument("--peers", action="store_true", help="1 MiB and 256 MiB GETs vs nginx")
    ap.add_argument("--before", type=Path, help="a checkout of the code to compare with")
    ap.add_argument("--cpu", default="auto", help="the CPU both servers serve on (default: auto)")
    args = ap.parse_args()
    size = args.size_mib * MiB
    data = memoryview(os.urandom(size))
    tmp = Path(tempfile.mkdtemp(prefix="s3-sse-bench-"))
    env = {"STRATA_S3_DEFAULT_ENCRYPTION": "off", "STRATA_CPU_AFFINITY": args.cpu}
    server = StrataProcess(tmp / "data", extra_env=env).start()
    before = None
    if args.before:
        before = StrataProcess(tmp / "before", extra_env=env, cwd=args.before.resolve()).start()
    try:
        s3 = client(server.endpoint)
        cmk = server.client("kms").create_key()["KeyMetadata"]["Arn"]
        modes = {"plain": None, "sse-s3": ("AES256", None), "sse-kms": ("aws:kms", cmk)}
        urls = {}
        for mode, sse in modes.items():
            encrypted_bucket(s3, f"bench-{mode}", sse)
            urls[mode] = presigned(s3, f"bench-{mode}", "obj")
        pids = dict.fromkeys(modes, server.proc.pid)
        if before is not None:
            old = client(before.endpoint)
            encrypted_bucket(old, "bench-sse-s3", modes["sse-s3"])
            urls["sse-s3 before"] = presigned(old, "bench-sse-s3", "obj")
            pids["sse-s3 before"] = before.proc.pid
        puts = {m: Target(u[0]) for m, u in urls.items()}
        gets = {m: Target(u[1], pids[m]) for m, u in urls.items()}
        # All PUTs first: work a PUT leaves behind (fsync, WAL checkpoints) would count as a GET's.
        for _ in range(args.rounds):
            for mode in urls:
                puts[mode].measure(lambda u: (put(u, data), 1))
        for _ in range(args.rounds):
            for mode in urls:
                gets[mode].measure(lambda u: (get(u, size), 1))
        head = s3.head_object(Bucket="bench-sse-kms", Key="obj")
        assert head["ServerSideEncryption"] == "aws:kms", head
        assert "ServerSideEncryption" not in s3.head_object(Bucket="bench-plain", Key="obj")
        for op, targets in (("put", puts), ("get", gets)):
            base = targets["plain"]
            line = [f"{op}_{args.size_mib}m:"] + [t.line(m, base, "MB/s") for m, t in targets.items()]
            print("  ".join(line) + "  (bar >= 80%)")
        if args.peers:
            peers(server, before, args.rounds)
        if args.small_seconds:
            small(server, args.rounds, args.small_seconds)
        print(f"load average {os.getloadavg()[0]:.1f}")
    finally:
        server.stop()
        if before is not None:
            before.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def peers(server: StrataProcess, before: StrataProcess | None, rounds: int) -> None:
    """1 MiB (wrk) and 256 MiB GETs of SSE-S3 objects (the default) vs nginx sendfile."""
    files = {"obj1m": os.urandom(MiB), "obj256m": os.urandom(256 * MiB)}
    strata = {"sse-s3": server, "plain": server}
    if before is not None:
        strata["sse-s3 before"] = before
    paths: dict[str, dict[str, str]] = {}
    for name, srv in strata.items():
        s3 = client(srv.endpoint)
        bucket = "peer-plain" if name == "plain" else "peer-sse"
        encrypted_bucket(s3, bucket, None if name == "plain" else ("AES256", None))
        paths[name] = {}
        for key, body in files.items():
            s3.put_object(Bucket=bucket, Key=key, Body=body)
            paths[name][key] = rel(presigned(s3, bucket, key)[1])
    with _nginx(files) as nginx_url:
        one = {"nginx": Target(nginx_url)} | {n: Target(s.endpoint, s.proc.pid) for n, s in strata.items()}
        big = {"nginx": Target(nginx_url)} | {n: Target(s.endpoint, s.proc.pid) for n, s in strata.items()}
        for _ in range(rounds):
            for name, t in one.items():
                path = "/obj1m" if name == "nginx" else paths[name]["obj1m"]

                def wrk1(url: str, path: str = path) -> tuple[float, float]:
                    rps = wrk_get(url, [path], 3)
                    return rps * MiB / 1e6, rps * 3

                t.measure(wrk1)
            for name, t in big.items():
                path = "/obj256m" if name == "nginx" else paths[name]["obj256m"]
                t.measure(lambda url, path=path: (get(url + path, 256 * MiB), 1))
    for label, targets in (("get_1m", one), ("get_256m", big)):
        base = targets["nginx"]
        line = [f"{label} vs nginx:"] + [t.line(n, base, "MB/s") for n, t in targets.items()]
        print("  ".join(line) + "  (bar >= 50%)")


def small(server: StrataProcess, rounds: int, seconds: int) -> None:
    s3 = client(server.endpoint)
    targets, paths = {}, {}
    for mode in ("plain", "sse-s3"):
        s3.put_object(Bucket=f"bench-{mode}", Key="small", Body=os.urandom(4096))
        targets[mode] = Target(server.endpoint, server.proc.pid)
        paths[mode] = rel(presigned(s3, f"bench-{mode}", "small")[1])
    for _ in range(rounds):
        for mode, t in targets.items():

            def wrk4k(url: str, path: str = paths[mode]) -> tuple[float, float]:
                rps = wrk_get(url, [path], seconds)
                return rps, rps * seconds

            t.measure(wrk4k)
    base = targets["plain"]
    print("get_4k: " + "  ".join(t.line(m, base, "req/s") for m, t in targets.items()))


if __name__ == "__main__":
    main()
