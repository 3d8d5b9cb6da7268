"""PartiQL SELECT by key vs GetItem, side by side (issue #19's bar: within 20%).

Starts `strata serve` on a fresh data directory, loads 100 items of one partition, then drives
GetItem and ExecuteStatement `SELECT * FROM t WHERE pk = ... AND sk = ...` (literal keys, and a
`?` parameter form) with wrk (the load harness loadgen.py, found in $STRATA_SHARED_BENCH or
../shared/bench), alternating the workloads over several rounds of the same run. Besides
requests per second (which move with the neighbours' load on a shared machine) it prints the
server process's CPU time per request (user + system, all threads, from /proc), which moves far
less: the comparison to read when the machine is busy. Usage:

    python bench/dynamodb_partiql.py [--seconds 6] [--rounds 2] [--conns 16]
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
    ap.add_argument("--port", type=int, default=52431)
    a = ap.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    data_dir = Path(tempfile.mkdtemp(prefix="ddb-partiql-"))
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
        t = "partiql_bench"
        d.create_table(
            TableName=t,
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        for i in range(100):
            d.put_item(
                TableName=t,
                Item={"pk": {"S": "p0"}, "sk": {"S": f"s{i:03d}"}, "v": {"S": "y" * 150}, "n": {"N": "42"}},
            )
        got = d.execute_statement(Statement=f"SELECT * FROM \"{t}\" WHERE pk = 'p0' AND sk = 's007'")
        assert got["Items"] == [d.get_item(TableName=t, Key={"pk": {"S": "p0"}, "sk": {"S": "s007"}})["Item"]]
        loadgen.HOST = urlsplit(url).netloc
        keys = [f"s{i:03d}" for i in range(100)]
        workloads = {
            "GetItem": [
                loadgen.signed(url, "GetItem", {"TableName": t, "Key": {"pk": {"S": "p0"}, "sk": {"S": k}}})
                for k in keys
            ],
            "SELECT literal key": [
                loadgen.signed(
                    url,
                    "ExecuteStatement",
                    {"Statement": f"SELECT * FROM \"{t}\" WHERE pk = 'p0' AND sk = '{k}'"},
                )
                for k in keys
            ],
            "SELECT ? key": [
                loadgen.signed(
                    url,
                    "ExecuteStatement",
                    {
                        "Statement": f'SELECT * FROM "{t}" WHERE pk = ? AND sk = ?',
                        "Parameters": [{"S": "p0"}, {"S": k}],
                    },
                )
                for k in keys
            ],
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
        base, base_cpu = best["GetItem"], statistics.median(cpu["GetItem"])
        for name, rps in best.items():
            us = statistics.median(cpu[name])
            print(
                f"{name}: best {rps:.0f} req/s ({rps / base:.2f}x GetItem); median {us:.0f} µs server "
                f"CPU/request ({us / base_cpu:.2f}x GetItem)"
            )
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
