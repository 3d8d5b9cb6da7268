"""PutItem on a table with a NEW_AND_OLD_IMAGES stream vs one without, side by side (issue #19's
bar: the stream keeps >= 80% of the requests per second).

Starts `strata serve` on a fresh data directory with two tables, then drives PutItem with wrk
(the load harness loadgen.py, found in $STRATA_SHARED_BENCH or ../shared/bench), alternating the
two workloads over several rounds of the same run. Every put changes its item (each key is
written with two values in turn), so every request on the stream table writes a MODIFY record
with both images. Besides requests per second (which move with the neighbours' load on a shared
machine) it prints the server's CPU time per request, which moves far less. Usage:

    python bench/dynamodb_streams.py [--seconds 6] [--rounds 2] [--conns 16]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import boto3

ROOT = Path(__file__).resolve().parents[1]
_SHARED = next((q / "shared" / "bench" for q in ROOT.parents if (q / "shared" / "bench").is_dir()), ROOT)
sys.path.insert(0, os.environ.get("STRATA_SHARED_BENCH", str(_SHARED)))
import loadgen  # noqa: E402  (wrk driver + Lua request cycles + SigV4 signing)
from local_server import cpu_seconds, wait_up  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--port", type=int, default=52432)
    a = ap.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    # wrk's PutItems pass a new on-demand table's 4,000 WCU/s of warm throughput: what is measured
    # is the stream's cost, not DynamoDB's capacity (the server inherits this environment)
    os.environ.setdefault("STRATA_DYNAMODB_THROTTLING", "off")
    data_dir = Path(tempfile.mkdtemp(prefix="ddb-streams-"))
    url = f"http://127.0.0.1:{a.port}"
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "strata.cli", "serve", "--port", str(a.port), "--tls-port", "off"),
            *("--data-dir", str(data_dir)),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_up(url)
        d = boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1")
        tables = {"no stream": "plain_bench", "NEW_AND_OLD_IMAGES": "stream_bench"}
        for name, t in tables.items():
            kw: dict = {}
            if name != "no stream":
                kw["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": name}
            d.create_table(
                TableName=t,
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
                **kw,
            )
        loadgen.HOST = urlsplit(url).netloc
        workloads = {
            f"PutItem, {name}": [
                loadgen.signed(
                    url,
                    "PutItem",
                    {
                        "TableName": t,
                        "Item": {"pk": {"S": f"k{i:04d}"}, "v": {"S": v * 150}, "n": {"N": "42"}},
                    },
                )
                for v in ("x", "y")
                for i in range(1000)
            ]
            for name, t in tables.items()
        }
        best: dict[str, float] = {}
        cpu: dict[str, list[float]] = {}
        for r in range(a.rounds):
            for name, reqs in workloads.items():
                before = cpu_seconds(server.pid)
                rps, bad = loadgen.wrk(url, loadgen.lua_cycle(reqs), a.seconds, a.conns)
                used = cpu_seconds(server.pid) - before
                if bad:
                    raise SystemExit(f"{name}: {bad} error responses")
                us = used / max(1.0, rps * a.seconds) * 1e6
                print(f"round {r + 1} {name}: {rps:.0f} req/s, {us:.0f} µs server CPU/request", flush=True)
                best[name] = max(best.get(name, 0.0), rps)
                cpu.setdefault(name, []).append(us)
        base_name = "PutItem, no stream"
        base, base_cpu = best[base_name], statistics.median(cpu[base_name])
        for name, rps in best.items():
            us = statistics.median(cpu[name])
            print(
                f"{name}: best {rps:.0f} req/s ({rps / base:.2f}x without); median {us:.0f} µs server "
                f"CPU/request ({us / base_cpu:.2f}x without)"
            )
        arn = d.describe_table(TableName=tables["NEW_AND_OLD_IMAGES"])["Table"]["LatestStreamArn"]
        s = boto3.client("dynamodbstreams", endpoint_url=url, region_name="us-east-1")
        shard = s.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
        it = s.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
            "ShardIterator"
        ]
        print(f"stream records (first page): {len(s.get_records(ShardIterator=it)['Records'])}")
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
