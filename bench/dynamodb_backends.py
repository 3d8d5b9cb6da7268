"""DynamoDB item operations in process, on the embedded SQLite or on PostgreSQL (issue 22 step 2).

Drives the provider directly (no HTTP): PutItem, UpdateItem (an ADD counter), conditional PutItem
and GetItem, `--concurrency` coroutines at once so writes share group commits, and prints the
operations per second and the process CPU per operation. Side by side on SQLite before and after
a change: run it from both checkouts in the same run. Usage:

    python bench/dynamodb_backends.py [--ops 4000] [--concurrency 16] [--no-fsync]
                                      [--metadata postgresql://...]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's strata, not an installed one

from strata.config import Settings  # noqa: E402
from strata.context import RequestContext  # noqa: E402
from strata.services.base import ServiceRuntime  # noqa: E402
from strata.services.dynamodb.provider import DynamoDBProvider  # noqa: E402


def ctx() -> RequestContext:
    return RequestContext("bench", "dynamodb", "PutItem", "us-east-1", "000000000000", None, None)  # type: ignore[arg-type]


async def run(data_dir: Path, ops: int, concurrency: int, metadata: str | None, fsync: bool) -> None:
    settings = Settings(data_dir=data_dir, metadata=metadata, fsync=fsync)
    p = DynamoDBProvider(ServiceRuntime("dynamodb", settings, settings.service_dir("dynamodb")))
    await p.start()
    p.state.throttle.enforce = False
    name = f"bench{int(time.time() * 1000) % 10**9}"
    p.create_table(
        ctx(),
        {
            "TableName": name,
            "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        },
    )
    p.state.promote_restored()

    async def put(i: int) -> None:
        await p.put_item(ctx(), {"TableName": name, "Item": {"pk": {"S": f"k{i}"}, "v": {"S": "x" * 100}}})

    async def update(i: int) -> None:
        await p.update_item(
            ctx(),
            {
                "TableName": name,
                "Key": {"pk": {"S": f"c{i % 64}"}},
                "UpdateExpression": "ADD n :one",
                "ExpressionAttributeValues": {":one": {"N": "1"}},
            },
        )

    async def cond_put(i: int) -> None:
        try:
            await p.put_item(
                ctx(),
                {
                    "TableName": name,
                    "Item": {"pk": {"S": f"k{i}"}, "v": {"S": "y"}},
                    "ConditionExpression": "attribute_not_exists(pk)",
                },
            )
        except Exception:  # noqa: BLE001, S110 - every key exists: the condition fails
            pass

    async def get(i: int) -> None:
        p.get_item(ctx(), {"TableName": name, "Key": {"pk": {"S": f"k{i}"}}})

    for label, fn in (
        ("PutItem", put),
        ("UpdateItem ADD", update),
        ("PutItem failing cond", cond_put),
        ("GetItem", get),
    ):
        sem = asyncio.Semaphore(concurrency)

        async def one(i: int, fn=fn, sem=sem) -> None:  # noqa: ANN001
            async with sem:
                await fn(i)

        c0, t0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(ops)))
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
        print(f"{label:22s} {ops / wall:8.0f} ops/s  {cpu / ops * 1e6:7.1f} us CPU/op", flush=True)
    n = p.get_item(ctx(), {"TableName": name, "Key": {"pk": {"S": "c0"}}})["Item"]["n"]["N"]
    assert int(n) == len(range(0, ops, 64)), n
    await p.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ops", type=int, default=4000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--metadata", default=None)
    ap.add_argument("--no-fsync", action="store_true", help="SQLite: no fsync (CPU, not the disk)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        asyncio.run(run(Path(d), a.ops, a.concurrency, a.metadata, not a.no_fsync))


if __name__ == "__main__":
    main()
