"""Gateway overhead: a trivial operation per protocol, Strata vs. peers, in one run.

S3 ListBuckets (no buckets, rest-xml) and DynamoDB ListTables (json) as replayed SigV4-signed
requests driven by wrk (the shared harness in ../shared/bench), so the client is never the
bottleneck. Usage:

    python bench/gateway_overhead.py strata=http://127.0.0.1:4566 moto=http://127.0.0.1:5000 --seconds 8
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from urllib.parse import urlsplit

import botocore.auth
import botocore.awsrequest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared" / "bench"))
import loadgen  # noqa: E402  (the shared harness: wrk driver + Lua request cycles)


def signed_get(url: str, service: str, path: str = "/") -> tuple:
    req = botocore.awsrequest.AWSRequest(
        method="GET", url=url + path, headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"}
    )
    botocore.auth.S3SigV4Auth(loadgen.CREDS, service, "us-east-1").add_auth(req)
    return ("GET", path, dict(req.headers.items()), None)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("targets", nargs="+", help="name=URL; the first is the baseline for ratios")
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--conns", type=int, default=16)
    a = ap.parse_args()
    results: dict[str, dict[str, float]] = {}
    for target in a.targets:
        name, url = target.split("=", 1)
        loadgen.HOST = urlsplit(url).netloc
        results[name] = {
            "s3_list_buckets": loadgen.wrk(
                url, loadgen.lua_cycle([signed_get(url, "s3")]), a.seconds, a.conns
            )[0],
            "ddb_list_tables": loadgen.wrk(
                url, loadgen.lua_cycle([loadgen.signed(url, "ListTables", {})]), a.seconds, a.conns
            )[0],
        }
    names = list(results)
    print("workload".ljust(18) + "".join(n.rjust(20) for n in names))
    for work in results[names[0]]:
        base = results[names[0]][work]
        row = work.ljust(18)
        for n in names:
            v = results[n][work]
            row += f"{v:.0f}/s ({v / base:.2f}x)".rjust(20)
        print(row)


if __name__ == "__main__":
    main()
