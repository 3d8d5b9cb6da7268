"""Transaction conflicts: items held by an in-flight TransactWriteItems.

The provider-level tests pin each rule deterministically (a transaction is "in flight" between
its write and the durability of its group commit; the test acts in that window). The end-to-end
test fires transactions and single writes at one item from several threads through a real server
and checks only that every outcome is a success or DynamoDB's documented conflict, and that the
final state is exactly what the successes add up to.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from strata.config import Settings
from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.protocol.http import Headers, HttpRequest
from strata.services.base import ServiceRuntime
from strata.services.dynamodb.provider import DynamoDBProvider
from tests.services.dynamodb.conftest import key_schema

CONFLICT = {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}


def ctx() -> RequestContext:
    return RequestContext(
        "req", "dynamodb", "Test", "us-east-1", "000000000000", None, HttpRequest("POST", "/", "", Headers())
    )


def provider(tmp_path: Path, **limits: int) -> DynamoDBProvider:
    settings = Settings(data_dir=tmp_path, fsync=True, limits=limits)
    return DynamoDBProvider(ServiceRuntime("dynamodb", settings, tmp_path / "dynamodb"))


def put(key: str, **attrs: str) -> dict:
    return {"TableName": "TTT", "Item": {"id": {"S": key}, **{k: {"S": v} for k, v in attrs.items()}}}


def bump(key: str) -> dict:
    return {
        "TableName": "TTT",
        "Key": {"id": {"S": key}},
        "UpdateExpression": "ADD n :one",
        "ExpressionAttributeValues": {":one": {"N": "1"}},
    }


def test_writes_on_an_item_of_an_inflight_transaction_conflict(tmp_path: Path) -> None:
    p = provider(tmp_path)

    async def run() -> None:
        await p.start()
        p.create_table(
            ctx(), {"TableName": "TTT", "BillingMode": "PAY_PER_REQUEST", **key_schema(("id", "S"))}
        )
        tx = asyncio.ensure_future(
            p.transact_write_items(
                ctx(), {"TransactItems": [{"Update": bump("a")}, {"Put": put("b", v="1")}]}
            )
        )
        await asyncio.sleep(0)  # the transaction has written
        await asyncio.sleep(0)  # ... and its group is committed and waits for its fsync
        assert not tx.done()
        for call, req in [
            (p.put_item, put("a")),
            (p.update_item, bump("b")),
            (p.delete_item, {"TableName": "TTT", "Key": {"id": {"S": "a"}}}),
        ]:
            with pytest.raises(ServiceError) as e:
                await call(ctx(), req)
            assert (e.value.code, e.value.message) == ("TransactionConflictException", CONFLICT["Message"])
        with pytest.raises(ServiceError) as e:
            await p.transact_write_items(ctx(), {"TransactItems": [{"Put": put("c")}, {"Update": bump("a")}]})
        assert e.value.code == "TransactionCanceledException"
        assert e.value.fields["CancellationReasons"] == [{"Code": "None"}, CONFLICT]
        with pytest.raises(ServiceError) as e:
            p.transact_get_items(
                ctx(), {"TransactItems": [{"Get": {"TableName": "TTT", "Key": {"id": {"S": "b"}}}}]}
            )
        assert e.value.fields["CancellationReasons"] == [CONFLICT]
        out = await p.batch_write_item(
            ctx(),
            {"RequestItems": {"TTT": [{"PutRequest": {"Item": put("a")["Item"]}}, {"PutRequest": put("d")}]}},
        )
        assert out["UnprocessedItems"] == {"TTT": [{"PutRequest": {"Item": put("a")["Item"]}}]}
        await p.put_item(ctx(), put("e"))  # items the transaction does not hold are free
        await tx
        # Once durable, the transaction holds nothing: the writes go through.
        await p.update_item(ctx(), bump("a"))
        got = p.get_item(ctx(), {"TableName": "TTT", "Key": {"id": {"S": "a"}}})
        assert got["Item"]["n"] == {"N": "2"}
        assert "Item" not in p.get_item(ctx(), {"TableName": "TTT", "Key": {"id": {"S": "c"}}})
        assert p.state.locks == set()
        tokened = {"TransactItems": [{"Put": put("t")}], "ClientRequestToken": "tok-1"}
        first = asyncio.ensure_future(p.transact_write_items(ctx(), tokened))
        await asyncio.sleep(0)
        with pytest.raises(ServiceError) as e:  # the same token again before the first is acknowledged
            await p.transact_write_items(ctx(), tokened)
        assert e.value.code == "TransactionInProgressException"
        assert await first == await p.transact_write_items(ctx(), tokened)  # afterwards: idempotent replay
        await p.stop()

    asyncio.run(run())


def test_concurrent_transactions_and_writes_on_one_item(ddb: Any, make_table: Any) -> None:
    table = make_table(("id", "S"))
    ddb.put_item(TableName=table, Item={"id": {"S": "counter"}, "n": {"N": "0"}, "direct": {"N": "0"}})
    ok_tx: list[str] = []
    ok_direct: list[int] = []
    errors: list[str] = []

    def transactions(worker: int) -> None:
        for i in range(40):
            txid = f"{worker}-{i}-{uuid.uuid4().hex[:6]}"
            try:
                ddb.transact_write_items(
                    TransactItems=[
                        {
                            "Update": {
                                "TableName": table,
                                "Key": {"id": {"S": "counter"}},
                                "UpdateExpression": "ADD n :one",
                                "ExpressionAttributeValues": {":one": {"N": "1"}},
                            }
                        },
                        {"Put": {"TableName": table, "Item": {"id": {"S": f"log#{txid}"}}}},
                    ]
                )
                ok_tx.append(txid)
            except ClientError as e:
                err = e.response["Error"]
                reasons = {r["Code"] for r in e.response.get("CancellationReasons", [])}
                if err["Code"] != "TransactionCanceledException" or not reasons <= {
                    "TransactionConflict",
                    "None",
                }:
                    errors.append(repr(e.response))

    def direct() -> None:
        for _ in range(60):
            try:
                ddb.update_item(
                    TableName=table,
                    Key={"id": {"S": "counter"}},
                    UpdateExpression="ADD direct :one",
                    ExpressionAttributeValues={":one": {"N": "1"}},
                )
                ok_direct.append(1)
            except ClientError as e:
                err = e.response["Error"]
                if (err["Code"], err["Message"]) != ("TransactionConflictException", CONFLICT["Message"]):
                    errors.append(repr(e.response))

    threads = [threading.Thread(target=transactions, args=(w,)) for w in range(3)]
    threads += [threading.Thread(target=direct) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    counter = ddb.get_item(TableName=table, Key={"id": {"S": "counter"}}, ConsistentRead=True)["Item"]
    assert int(counter["n"]["N"]) == len(ok_tx)
    assert int(counter["direct"]["N"]) == len(ok_direct)
    logs = ddb.scan(TableName=table, ConsistentRead=True)["Items"]
    assert {i["id"]["S"] for i in logs} == {f"log#{t}" for t in ok_tx} | {"counter"}
