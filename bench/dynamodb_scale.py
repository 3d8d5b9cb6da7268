"""DynamoDB Query cost vs table size: Limit 10 in a 100-item partition, 10,000 vs 1,000,000 items.

Loads both tables straight through the provider (no HTTP, committed in large groups), then serves
the data directory with `strata serve` and drives Query requests with wrk (the load harness
loadgen.py, found in $STRATA_SHARED_BENCH or ../shared/bench), same run, same partition layout. Also prints the in-process Query latency, which
isolates the storage layer from the HTTP path. Usage:

    python bench/dynamodb_scale.py [--large 1000000] [--seconds 8] [--data-dir /tmp/ddbscale]

With --bulk it then measures, in process, how long the event loop is ever blocked while a GSI is
backfilled on the large table, dropped again, and the large table deleted (all done in background
chunks; before, each was one blocking pass), and removes the data directory afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's strata, not an installed one
sys.path.insert(0, os.environ.get("STRATA_SHARED_BENCH", str(ROOT.parent / "shared" / "bench")))
import loadgen  # noqa: E402  (wrk driver + Lua request cycles + SigV4 signing)

from strata.config import Settings  # noqa: E402
from strata.context import RequestContext  # noqa: E402
from strata.services.base import ServiceRuntime  # noqa: E402
from strata.services.dynamodb import item_ops  # noqa: E402
from strata.services.dynamodb.provider import DynamoDBProvider  # noqa: E402

PARTITION = 100


def ctx() -> RequestContext:
    return RequestContext("bench", "dynamodb", "Query", "us-east-1", "000000000000", None, None)  # type: ignore[arg-type]


def load(data_dir: Path, tables: dict[str, int]) -> None:
    settings = Settings(data_dir=data_dir, fsync=False)
    p = DynamoDBProvider(ServiceRuntime("dynamodb", settings, settings.service_dir("dynamodb")))
    # Items are written straight into the store, a million in moments: not traffic the table's
    # on-demand capacity (which the provider enforces) is to be asked about.
    p.state.throttle.enforce = False
    for name, n in tables.items():
        p.create_table(
            ctx(),
            {
                "TableName": name,
                "BillingMode": "PAY_PER_REQUEST",
                "KeySchema": [
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                "AttributeDefinitions": [
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                ],
            },
        )
        t0 = time.perf_counter()
        for start in range(0, n, 20000):
            with p.state.store.write():  # one transaction per 20,000 items
                for i in range(start, min(n, start + 20000)):
                    item = {
                        "pk": {"S": f"p{i // PARTITION:07d}"},
                        "sk": {"S": f"s{i % PARTITION:03d}"},
                        "v": {"S": "y" * 150},
                        "n": {"N": str(i)},
                    }
                    item_ops.put_item(
                        p.state,
                        p.state.tables[("000000000000:us-east-1", name)],
                        {"TableName": name, "Item": item},
                    )
        print(f"loaded {name}: {n} items in {time.perf_counter() - t0:.0f}s", flush=True)
    asyncio.run(p.stop())


def in_process(data_dir: Path, tables: dict[str, int], rounds: int = 3000) -> dict[str, float]:
    settings = Settings(data_dir=data_dir)
    p = DynamoDBProvider(ServiceRuntime("dynamodb", settings, settings.service_dir("dynamodb")))
    out = {}
    for name, n in tables.items():
        parts = n // PARTITION
        lat = []
        for _ in range(rounds):
            pk = f"p{random.randrange(parts):07d}"
            t0 = time.perf_counter()
            r = p.query(
                ctx(),
                {
                    "TableName": name,
                    "KeyConditionExpression": "pk = :p",
                    "Limit": 10,
                    "ExpressionAttributeValues": {":p": {"S": pk}},
                },
            )
            lat.append(time.perf_counter() - t0)
            assert r["Count"] == 10
        lat.sort()
        out[name] = lat[len(lat) // 2] * 1e6
    asyncio.run(p.stop())
    return out


def bulk_stalls(data_dir: Path, name: str) -> None:
    """Event-loop stalls (a 1 ms ticker's lateness) during backfill, index drop and DeleteTable."""
    settings = Settings(data_dir=data_dir)
    p = DynamoDBProvider(ServiceRuntime("dynamodb", settings, settings.service_dir("dynamodb")))

    async def measure(label: str, start) -> None:  # noqa: ANN001
        late: list[float] = []
        done = False

        async def ticker() -> None:
            last = time.perf_counter()
            while not done:
                await asyncio.sleep(0.001)
                now = time.perf_counter()
                late.append(now - last - 0.001)
                last = now

        tick = asyncio.ensure_future(ticker())
        t0 = time.perf_counter()
        await start()
        await p.bulk.idle()
        total = time.perf_counter() - t0
        done = True
        await tick
        late.sort()
        print(
            f"{label}: {total:.1f}s in background; event loop blocked at most {late[-1] * 1e3:.1f} ms "
            f"(p99 {late[int(len(late) * 0.99)] * 1e3:.1f} ms)",
            flush=True,
        )

    gsi = {
        "IndexName": "by-n",
        "KeySchema": [{"AttributeName": "n", "KeyType": "HASH"}],
        "Projection": {"ProjectionType": "KEYS_ONLY"},
    }

    async def run() -> None:
        await p.start()
        await p.bulk.idle()
        await measure(
            f"GSI backfill of {name}",
            lambda: p.update_table(
                ctx(),
                {
                    "TableName": name,
                    "AttributeDefinitions": [{"AttributeName": "n", "AttributeType": "N"}],
                    "GlobalSecondaryIndexUpdates": [{"Create": gsi}],
                },
            ),
        )
        await measure(
            f"GSI drop on {name}",
            lambda: p.update_table(
                ctx(), {"TableName": name, "GlobalSecondaryIndexUpdates": [{"Delete": {"IndexName": "by-n"}}]}
            ),
        )
        await measure(f"DeleteTable {name}", lambda: p.delete_table(ctx(), {"TableName": name}))
        await p.stop()

    asyncio.run(run())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", type=int, default=10_000)
    ap.add_argument("--large", type=int, default=1_000_000)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--port", type=int, default=52419)
    ap.add_argument("--data-dir", default="/tmp/ddbscale")
    ap.add_argument(
        "--bulk", action="store_true", help="then measure background bulk work (deletes the data)"
    )
    a = ap.parse_args()
    data_dir = Path(a.data_dir)
    tables = {"small": a.small, "large": a.large}
    if not (data_dir / "dynamodb").exists():
        shutil.rmtree(data_dir, ignore_errors=True)
        load(data_dir, tables)
    med = in_process(data_dir, tables)
    print(
        "in-process Query p50: "
        + ", ".join(f"{k} {v:.0f} us" for k, v in med.items())
        + f"  (large/small {med['large'] / med['small']:.2f}x)"
    )
    url = f"http://127.0.0.1:{a.port}"
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "strata.cli", "serve", "--port", str(a.port), "--tls-port", "off"),
            *("--data-dir", str(data_dir)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(6)
        loadgen.HOST = urlsplit(url).netloc
        res = {}
        for name, n in tables.items():
            parts = n // PARTITION
            reqs = [
                loadgen.signed(
                    url,
                    "Query",
                    {
                        "TableName": name,
                        "KeyConditionExpression": "pk = :p",
                        "Limit": 10,
                        "ExpressionAttributeValues": {":p": {"S": f"p{random.randrange(parts):07d}"}},
                    },
                )
                for _ in range(200)
            ]
            res[name] = loadgen.wrk(url, loadgen.lua_cycle(reqs), a.seconds, 16)
        for name, (rps, bad) in res.items():
            print(
                f"HTTP Query Limit 10, {name} ({tables[name]} items): {rps:.0f}/s"
                + (f" errors {bad}" if bad else "")
            )
        print(f"large/small throughput: {res['large'][0] / res['small'][0]:.2f}x")
    finally:
        server.terminate()
        server.wait(30)
    if a.bulk:
        bulk_stalls(data_dir, "large")
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
