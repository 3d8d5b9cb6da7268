"""kill -9 in the middle of a TransactWriteItems load: after restart every transaction is all or nothing."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionError, EndpointConnectionError, ReadTimeoutError

ACCOUNTS = 8
PARTS = 5


def test_transactions_survive_kill_9(strata_factory: Any) -> None:
    server = strata_factory()
    ddb = server.client("dynamodb")
    for name in ("Accounts", "Parts"):
        ddb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    for i in range(ACCOUNTS):
        ddb.put_item(TableName="Accounts", Item={"id": {"S": f"a{i}"}, "balance": {"N": "100"}})

    acked: list[str] = []
    stop = threading.Event()

    def load(worker: int) -> None:
        client = server.client("dynamodb", config=Config(read_timeout=5, connect_timeout=2))
        n = 0
        while not stop.is_set():
            n += 1
            txid = f"w{worker}-{n}"
            src, dst = f"a{n % ACCOUNTS}", f"a{(n * 3 + worker + 1) % ACCOUNTS}"
            if src == dst:
                continue
            items = [
                {
                    "Update": {
                        "TableName": "Accounts",
                        "Key": {"id": {"S": src}},
                        "UpdateExpression": "SET balance = balance - :x",
                        "ConditionExpression": "balance >= :x",
                        "ExpressionAttributeValues": {":x": {"N": "3"}},
                    }
                },
                {
                    "Update": {
                        "TableName": "Accounts",
                        "Key": {"id": {"S": dst}},
                        "UpdateExpression": "SET balance = balance + :x",
                        "ExpressionAttributeValues": {":x": {"N": "3"}},
                    }
                },
            ] + [
                {"Put": {"TableName": "Parts", "Item": {"id": {"S": f"{txid}#{p}"}, "tx": {"S": txid}}}}
                for p in range(PARTS)
            ]
            try:
                client.transact_write_items(TransactItems=items)
                acked.append(txid)
            except ClientError:
                continue
            except (ConnectionError, EndpointConnectionError, ReadTimeoutError):
                return

    threads = [threading.Thread(target=load, args=(w,), daemon=True) for w in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while len(acked) < 60 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.kill()  # kill -9 while transactions are in flight
    stop.set()
    for t in threads:
        t.join(10)
    assert len(acked) >= 20
    server.start()
    ddb = server.client("dynamodb")
    balances = [int(i["balance"]["N"]) for i in ddb.scan(TableName="Accounts")["Items"]]
    assert sum(balances) == ACCOUNTS * 100 and min(balances) >= 0
    parts: Counter[str] = Counter()
    start = None
    while True:
        r = ddb.scan(TableName="Parts", **({"ExclusiveStartKey": start} if start else {}))
        parts.update(i["tx"]["S"] for i in r["Items"])
        start = r.get("LastEvaluatedKey")
        if not start:
            break
    assert set(parts.values()) <= {PARTS}  # every transaction whole
    assert set(acked) <= set(parts)  # every acknowledged transaction durable
    desc = ddb.describe_table(TableName="Parts")["Table"]
    assert desc["ItemCount"] == sum(parts.values())  # the incremental count survived too
