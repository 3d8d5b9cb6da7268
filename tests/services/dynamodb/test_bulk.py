"""DeleteTable and GSI backfill on large tables: in background chunks, visible status, crash-safe.

A table larger than `dynamodb_bulk_chunk` items is deleted (DELETING) and a GSI added to it is
backfilled (CREATING, Backfilling=true) a chunk per group commit, so the event loop keeps serving
other requests. The provider-level tests pin the states deterministically; the server test kills
the process in the middle of both and checks that after restart the work finishes and leaves
nothing behind.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from strata.config import Settings
from strata.protocol.errors import ServiceError
from strata.services.base import ServiceRuntime
from strata.services.dynamodb.provider import DynamoDBProvider
from tests.services.dynamodb.conftest import key_schema
from tests.services.dynamodb.test_conflicts import ctx

CHUNK = 10
GSI = {
    "IndexName": "by-g",
    "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}, {"AttributeName": "id", "KeyType": "RANGE"}],
    "Projection": {"ProjectionType": "ALL"},
}
CREATE_GSI = {
    "AttributeDefinitions": [{"AttributeName": "g", "AttributeType": "S"}],
    "GlobalSecondaryIndexUpdates": [{"Create": GSI}],
}


def provider(path: Path) -> DynamoDBProvider:
    settings = Settings(data_dir=path, fsync=True, limits={"dynamodb_bulk_chunk": CHUNK})
    return DynamoDBProvider(ServiceRuntime("dynamodb", settings, path / "dynamodb"))


def item(i: int) -> dict:
    out = {"id": {"S": f"i{i:04d}"}}
    if i % 3:  # a sparse index: every third item has no g
        out["g"] = {"S": f"g{i % 4}"}
    return out


async def fill(p: DynamoDBProvider, table: str, n: int) -> None:
    p.create_table(ctx(), {"TableName": table, "BillingMode": "PAY_PER_REQUEST", **key_schema(("id", "S"))})
    for start in range(0, n, 25):
        reqs = [{"PutRequest": {"Item": item(i)}} for i in range(start, min(n, start + 25))]
        await p.batch_write_item(ctx(), {"RequestItems": {table: reqs}})


def index_query(p: DynamoDBProvider, table: str, g: str) -> list[str]:
    out = p.query(
        ctx(),
        {
            "TableName": table,
            "IndexName": "by-g",
            "KeyConditionExpression": "g = :g",
            "ExpressionAttributeValues": {":g": {"S": g}},
        },
    )
    return [i["id"]["S"] for i in out["Items"]]


def expected(ids: set[int], g: str) -> list[str]:
    return sorted(item(i)["id"]["S"] for i in ids if item(i).get("g", {}).get("S") == g)


def test_gsi_backfill_runs_in_chunks_and_keeps_up_with_writes(tmp_path: Path) -> None:
    p = provider(tmp_path)

    async def run() -> None:
        await p.start()
        await fill(p, "big", 100)
        desc = (await p.update_table(ctx(), {"TableName": "big", **CREATE_GSI}))["TableDescription"]
        (ix,) = desc["GlobalSecondaryIndexes"]
        assert (ix["IndexStatus"], ix["Backfilling"]) == ("CREATING", True)
        with pytest.raises(ServiceError) as e:
            index_query(p, "big", "g1")
        assert e.value.message == "Cannot read from backfilling global secondary index: by-g"
        with pytest.raises(ServiceError) as e:
            await p.update_table(
                ctx(), {"TableName": "big", "GlobalSecondaryIndexUpdates": [{"Delete": GSI}]}
            )
        assert e.value.code == "LimitExceededException"
        # Writes during the backfill: new items, changed index keys, deletions.
        ids = set(range(100))
        for i in (100, 101, 102, 103):
            await p.put_item(ctx(), {"TableName": "big", "Item": item(i)})
            ids.add(i)
        for i in (1, 2, 50, 97, 98):
            await p.delete_item(ctx(), {"TableName": "big", "Key": {"id": item(i)["id"]}})
            ids.discard(i)
        await p.bulk.idle()
        (ix,) = p.describe_table(ctx(), {"TableName": "big"})["Table"]["GlobalSecondaryIndexes"]
        assert ix["IndexStatus"] == "ACTIVE" and "Backfilling" not in ix
        assert ix["ItemCount"] == sum(1 for i in ids if "g" in item(i))
        for g in ("g0", "g1", "g2", "g3"):
            assert index_query(p, "big", g) == expected(ids, g)
        await p.stop()

    asyncio.run(run())


def test_large_delete_is_deleting_then_gone_and_resumes_after_restart(tmp_path: Path) -> None:
    p = provider(tmp_path)

    async def first() -> None:
        await p.start()
        await fill(p, "doomed", 60)
        await p.update_table(ctx(), {"TableName": "doomed", **CREATE_GSI})  # a backfill to interrupt
        await fill(p, "other", 40)
        desc = (await p.delete_table(ctx(), {"TableName": "doomed"}))["TableDescription"]
        assert desc["TableStatus"] == "DELETING"
        assert p.describe_table(ctx(), {"TableName": "doomed"})["Table"]["TableStatus"] == "DELETING"
        assert "doomed" in p.list_tables(ctx(), {})["TableNames"]
        for call in (p.delete_table, p.create_table):
            with pytest.raises(ServiceError) as e:
                out = call(
                    ctx(),
                    {"TableName": "doomed", "BillingMode": "PAY_PER_REQUEST", **key_schema(("id", "S"))},
                )
                if asyncio.iscoroutine(out):
                    await out
            assert e.value.code == "ResourceInUseException"
        with pytest.raises(ServiceError) as e:
            p.get_item(ctx(), {"TableName": "doomed", "Key": {"id": {"S": "i0001"}}})
        assert e.value.code == "ResourceNotFoundException"
        await p.update_table(ctx(), {"TableName": "other", **CREATE_GSI})
        await p.stop()  # both jobs are interrupted here, as by a crash between two chunks

    asyncio.run(first())
    p = provider(tmp_path)

    async def second() -> None:
        assert p.describe_table(ctx(), {"TableName": "doomed"})["Table"]["TableStatus"] == "DELETING"
        await p.start()
        await p.bulk.idle()
        with pytest.raises(ServiceError) as e:
            p.describe_table(ctx(), {"TableName": "doomed"})
        assert e.value.code == "ResourceNotFoundException"
        for g in ("g0", "g1", "g2", "g3"):
            assert index_query(p, "other", g) == expected(set(range(40)), g)
        p.create_table(
            ctx(), {"TableName": "doomed", "BillingMode": "PAY_PER_REQUEST", **key_schema(("id", "S"))}
        )
        await p.stop()

    asyncio.run(second())
    assert orphans(tmp_path / "dynamodb" / "dynamodb.sqlite3") == (0, 0)


def orphans(path: Path) -> tuple[int, int]:
    """Item rows of no table, and index rows of no index, left in the store."""
    db = sqlite3.connect(path)
    try:
        metas = [json.loads(r[0]) for r in db.execute("SELECT meta FROM ddb_tables")]
        tids = {m["tid"] for m in metas}
        iids = {ix["iid"] for m in metas for ix in m["indexes"]} | {
            i for m in metas for i in m.get("dropped", [])
        }
        items = sum(
            n for tid, n in db.execute("SELECT tid, count(*) FROM ddb_items GROUP BY tid") if tid not in tids
        )
        index = sum(
            n for iid, n in db.execute("SELECT iid, count(*) FROM ddb_index GROUP BY iid") if iid not in iids
        )
        return items, index
    finally:
        db.close()


def test_kill_9_during_background_delete_and_backfill(strata_factory: Any) -> None:
    server = strata_factory(extra_env={"STRATA_LIMIT_DYNAMODB_BULK_CHUNK": "20"})
    ddb = server.client("dynamodb")
    n = 1500
    for table in ("keep", "drop"):
        ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST", **key_schema(("id", "S")))
        for start in range(0, n, 25):
            reqs = [{"PutRequest": {"Item": item(i)}} for i in range(start, start + 25)]
            assert ddb.batch_write_item(RequestItems={table: reqs})["UnprocessedItems"] == {}
    ix = ddb.update_table(TableName="keep", **CREATE_GSI)["TableDescription"]["GlobalSecondaryIndexes"][0]
    assert ix["IndexStatus"] == "CREATING"
    assert ddb.delete_table(TableName="drop")["TableDescription"]["TableStatus"] == "DELETING"
    server.kill()  # kill -9 while both run (75 chunks each, one group commit apiece)
    server.start()
    ddb = server.client("dynamodb")
    deadline = time.monotonic() + 120  # a bound on waiting, not a speed assertion
    while time.monotonic() < deadline:
        status = ddb.describe_table(TableName="keep")["Table"]["GlobalSecondaryIndexes"][0]["IndexStatus"]
        try:
            ddb.describe_table(TableName="drop")
            gone = False
        except ddb.exceptions.ResourceNotFoundException:
            gone = True
        if status == "ACTIVE" and gone:
            break
        time.sleep(0.1)
    assert status == "ACTIVE" and gone
    (ix,) = ddb.describe_table(TableName="keep")["Table"]["GlobalSecondaryIndexes"]
    assert ix["ItemCount"] == sum(1 for i in range(n) if "g" in item(i))  # counted across the crash
    for g in ("g0", "g1", "g2", "g3"):
        got: list[str] = []
        kw: dict = {}
        while True:
            r = ddb.query(
                TableName="keep",
                IndexName="by-g",
                KeyConditionExpression="g = :g",
                ExpressionAttributeValues={":g": {"S": g}},
                **kw,
            )
            got += [i["id"]["S"] for i in r["Items"]]
            if "LastEvaluatedKey" not in r:
                break
            kw = {"ExclusiveStartKey": r["LastEvaluatedKey"]}
        assert got == expected(set(range(n)), g)
    server.stop()
    assert orphans(server.data_dir / "dynamodb" / "dynamodb.sqlite3") == (0, 0)


def test_ttl_rule_sweeps_a_large_table_in_chunks_and_a_jump_equals_steps(tmp_path: Path) -> None:
    from strata.services.dynamodb import ttl

    p = provider(tmp_path)
    base = 1_900_000_000
    six_years = 6 * 365 * 86400

    async def run() -> None:
        await p.start()
        p.create_table(
            ctx(), {"TableName": "exp", "BillingMode": "PAY_PER_REQUEST", **key_schema(("id", "S"))}
        )
        p.update_time_to_live(
            ctx(), {"TableName": "exp", "TimeToLiveSpecification": {"Enabled": True, "AttributeName": "at"}}
        )
        for i in range(60):  # item i expires at base + i: 60 items are six chunks
            await p.put_item(
                ctx(), {"TableName": "exp", "Item": {"id": {"S": f"i{i:02d}"}, "at": {"N": str(base + i)}}}
            )
        sweep = ttl.rule(p.state, CHUNK)
        assert await sweep(base - 1, base + 19.5) == {"deleted": 20}
        assert await sweep(base + 19.5, base + 19.5) == {"deleted": 0}  # idempotent
        # Six years in one jump: what fell due since the last sweep goes, though now past five years.
        assert await sweep(base + 19.5, base + 39.5 + six_years) == {"deleted": 40}
        left = sorted(i["id"]["S"] for i in p.scan(ctx(), {"TableName": "exp"})["Items"])
        assert left == []
        assert p.describe_table(ctx(), {"TableName": "exp"})["Table"]["ItemCount"] == 0
        # A value already more than five years old at the last sweep is not a TTL.
        await p.put_item(ctx(), {"TableName": "exp", "Item": {"id": {"S": "old"}, "at": {"N": str(base)}}})
        assert await sweep(base + six_years, base + six_years + 60) == {"deleted": 0}
        await p.stop()

    asyncio.run(run())


def test_index_counts_of_an_older_store_are_computed_once(tmp_path: Path) -> None:
    p = provider(tmp_path)

    async def write() -> None:
        await p.start()
        await fill(p, "tab", 9)  # below one chunk: backfilled at once
        await p.update_table(ctx(), {"TableName": "tab", **CREATE_GSI})
        await p.stop()

    asyncio.run(write())
    db = sqlite3.connect(tmp_path / "dynamodb" / "dynamodb.sqlite3")
    db.execute("DELETE FROM ddb_index_counts")  # as a store written before the counts table
    db.execute("DELETE FROM ddb_counters WHERE name = 'index_counts'")
    db.commit()
    db.close()
    p = provider(tmp_path)
    (ix,) = p.describe_table(ctx(), {"TableName": "tab"})["Table"]["GlobalSecondaryIndexes"]
    assert ix["ItemCount"] == 6
    asyncio.run(p.stop())
