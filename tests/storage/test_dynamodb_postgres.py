"""DynamoDB on the PostgreSQL metadata backend with two gateways (issue 22 step 2): two real
servers started with the same `--metadata postgresql://...` and `--blob-dir`, driven at once by
boto3 on the same items.

What several gateways must not break: of racing conditional puts on one key exactly one wins; ADD
counters lose no update; TransactWriteItems stay serializable (money moved between accounts is
neither made nor lost) and are cancelled with their reasons; a table created, changed or deleted
through one gateway is what the other serves at once; a provisioned table's (and GSI's) capacity
is the table's, shared by the gateways, not each gateway's.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from strata.engines.postgres import PgNode
from tests.storage.conftest import fresh_database
from tests.strata_process import StrataProcess

# No retries: a request is counted by its own answer, never twice.
ONCE = Config(retries={"max_attempts": 1, "mode": "standard"}, max_pool_connections=16)


@pytest.fixture(scope="module")
def metadata_url(pg_node: PgNode) -> str:
    return fresh_database("ddbmeta")


@pytest.fixture(scope="module")
def gateways(tmp_path_factory: pytest.TempPathFactory, metadata_url: str) -> Iterator[list[StrataProcess]]:
    root = tmp_path_factory.mktemp("ddbpg")
    made = [
        StrataProcess(
            root / name,
            extra_env={"STRATA_METADATA": metadata_url},
            extra_args=["--blob-dir", str(root / "blobs")],
        )
        for name in ("a", "b")
    ]
    try:
        with ThreadPoolExecutor(2) as pool:  # started together, as gateways behind a balancer are
            list(pool.map(StrataProcess.start, made))
        yield made
    finally:
        for g in made:
            if g.proc is not None:
                g.stop()


@pytest.fixture(scope="module")
def clients(gateways: list[StrataProcess]) -> list[Any]:
    return [g.client("dynamodb", config=ONCE) for g in gateways]


def _table(ddb: Any, name: str) -> str:
    ddb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
    )
    return name


def _code(e: ClientError) -> str:
    return e.response["Error"]["Code"]


def _race(clients: list[Any], per_gateway: int, work: Callable[[Any, int], Any]) -> list[Any]:
    """Run work(client, n) `per_gateway` times on each gateway's client, all at once."""
    start = threading.Barrier(per_gateway * len(clients))

    def one(c: Any, n: int) -> Any:
        start.wait()
        return work(c, n)

    with ThreadPoolExecutor(per_gateway * len(clients)) as pool:
        futures = [
            pool.submit(one, c, i * per_gateway + j)
            for i, c in enumerate(clients)
            for j in range(per_gateway)
        ]
        return [f.result() for f in futures]


def test_metadata_is_in_postgresql(clients: list[Any], metadata_url: str) -> None:
    a, _ = clients
    name = _table(a, f"where-{uuid.uuid4().hex[:6]}")
    a.put_item(TableName=name, Item={"pk": {"S": "k"}})
    with psycopg.connect(metadata_url) as c:
        assert c.execute(
            "SELECT item_count FROM dynamodb.ddb_tables WHERE name = %s", (name,)
        ).fetchone() == (1,)


def test_a_table_changed_on_one_gateway_is_served_so_by_the_other(clients: list[Any]) -> None:
    a, b = clients
    name = _table(a, f"seen-{uuid.uuid4().hex[:6]}")
    b.put_item(TableName=name, Item={"pk": {"S": "k"}, "v": {"S": "1"}})  # created on A, used on B
    assert a.get_item(TableName=name, Key={"pk": {"S": "k"}})["Item"]["v"] == {"S": "1"}
    assert name in b.list_tables()["TableNames"]
    # PartiQL's reads too (through ItemOperations' methods, in the store's read threads)
    select = {"Statement": f'SELECT * FROM "{name}" WHERE pk = ?', "Parameters": [{"S": "k"}]}
    assert b.execute_statement(**select)["Items"] == [{"pk": {"S": "k"}, "v": {"S": "1"}}]
    assert b.execute_statement(Statement=f'SELECT v FROM "{name}"')["Items"] == [{"v": {"S": "1"}}]
    assert b.batch_execute_statement(Statements=[select])["Responses"][0]["Item"]["v"] == {"S": "1"}
    assert b.execute_transaction(TransactStatements=[select])["Responses"][0]["Item"]["v"] == {"S": "1"}
    a.update_table(TableName=name, StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})
    assert b.describe_table(TableName=name)["Table"]["StreamSpecification"]["StreamViewType"] == "NEW_IMAGE"
    a.delete_table(TableName=name)
    with pytest.raises(ClientError) as e:
        b.get_item(TableName=name, Key={"pk": {"S": "k"}})
    assert _code(e.value) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        b.put_item(TableName=name, Item={"pk": {"S": "k"}})
    assert _code(e.value) == "ResourceNotFoundException"
    # and made again on B with the same name: a new, empty table on A
    _table(b, name)
    assert "Item" not in a.get_item(TableName=name, Key={"pk": {"S": "k"}})


def test_of_racing_conditional_puts_on_one_key_exactly_one_wins(clients: list[Any]) -> None:
    a, _ = clients
    name = _table(a, f"cond-{uuid.uuid4().hex[:6]}")
    for key in range(5):

        def put(c: Any, n: int, key: int = key) -> int | None:
            try:
                c.put_item(
                    TableName=name,
                    Item={"pk": {"S": f"k{key}"}, "by": {"N": str(n)}},
                    ConditionExpression="attribute_not_exists(pk)",
                )
                return n
            except ClientError as e:
                assert _code(e) == "ConditionalCheckFailedException"
                return None

        won = [n for n in _race(clients, 6, put) if n is not None]
        assert len(won) == 1
        item = a.get_item(TableName=name, Key={"pk": {"S": f"k{key}"}}, ConsistentRead=True)["Item"]
        assert item["by"] == {"N": str(won[0])}


def test_add_counters_on_both_gateways_lose_no_update(clients: list[Any]) -> None:
    a, b = clients
    name = _table(a, f"ctr-{uuid.uuid4().hex[:6]}")

    def add(c: Any, n: int) -> int:
        for _ in range(25):
            c.update_item(
                TableName=name,
                Key={"pk": {"S": "hot"}},
                UpdateExpression="ADD n :one SET #w = :w",
                ExpressionAttributeNames={"#w": f"w{n % 3}"},
                ExpressionAttributeValues={":one": {"N": "1"}, ":w": {"N": str(n)}},
            )
        return 25

    done = sum(_race(clients, 4, add))
    assert done == 200
    got = b.get_item(TableName=name, Key={"pk": {"S": "hot"}}, ConsistentRead=True)["Item"]
    assert got["n"] == {"N": "200"}


def test_transactions_on_both_gateways_are_serializable(clients: list[Any]) -> None:
    a, b = clients
    name = _table(a, f"tx-{uuid.uuid4().hex[:6]}")
    accounts = 4
    for i in range(accounts):
        a.put_item(TableName=name, Item={"pk": {"S": f"acct{i}"}, "bal": {"N": "10"}})

    def transfer(c: Any, n: int) -> tuple[int, int]:
        ok = refused = 0
        for k in range(15):
            src, dst = f"acct{(n + k) % accounts}", f"acct{(n + 2 * k + 1) % accounts}"
            if src == dst:
                continue
            try:
                c.transact_write_items(
                    TransactItems=[
                        {
                            "Update": {
                                "TableName": name,
                                "Key": {"pk": {"S": src}},
                                "UpdateExpression": "ADD bal :minus",
                                "ConditionExpression": "bal >= :three",
                                "ExpressionAttributeValues": {":minus": {"N": "-3"}, ":three": {"N": "3"}},
                            }
                        },
                        {
                            "Update": {
                                "TableName": name,
                                "Key": {"pk": {"S": dst}},
                                "UpdateExpression": "ADD bal :plus",
                                "ExpressionAttributeValues": {":plus": {"N": "3"}},
                            }
                        },
                    ]
                )
                ok += 1
            except ClientError as e:
                # A failed condition or a conflict with a transaction in flight: either way the
                # whole transaction did nothing, and says why per item.
                assert _code(e) == "TransactionCanceledException", e.response
                codes = [r["Code"] for r in e.response["CancellationReasons"]]
                assert len(codes) == 2 and set(codes) <= {
                    "None",
                    "ConditionalCheckFailed",
                    "TransactionConflict",
                }
                assert set(codes) != {"None"}
                refused += 1
        return ok, refused

    results = _race(clients, 3, transfer)
    assert sum(ok for ok, _ in results) > 0
    balances = [
        int(
            b.get_item(TableName=name, Key={"pk": {"S": f"acct{i}"}}, ConsistentRead=True)["Item"]["bal"]["N"]
        )
        for i in range(accounts)
    ]
    assert sum(balances) == 10 * accounts  # nothing made or lost
    assert min(balances) >= 0  # no condition passed on a stale balance
    # A cancelled transaction names the item whose condition failed, and changed nothing.
    with pytest.raises(ClientError) as e:
        b.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": name, "Item": {"pk": {"S": "new"}}}},
                {
                    "ConditionCheck": {
                        "TableName": name,
                        "Key": {"pk": {"S": "acct0"}},
                        "ConditionExpression": "bal > :big",
                        "ExpressionAttributeValues": {":big": {"N": "1000"}},
                    }
                },
            ]
        )
    assert _code(e.value) == "TransactionCanceledException"
    assert [r["Code"] for r in e.value.response["CancellationReasons"]] == ["None", "ConditionalCheckFailed"]
    assert "Item" not in a.get_item(TableName=name, Key={"pk": {"S": "new"}}, ConsistentRead=True)


def _until(check: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not {what} after {seconds} s"
        time.sleep(0.2)


def test_a_backup_made_through_one_gateway_is_restored_through_the_other(
    gateways: list[StrataProcess], clients: list[Any]
) -> None:
    """The snapshot is PostgreSQL's (pg_snapshot.py), the file under the shared --blob-dir."""
    a, b = clients
    name = _table(a, f"bak-{uuid.uuid4().hex[:6]}")
    for i in range(30):
        a.put_item(TableName=name, Item={"pk": {"S": f"k{i}"}, "n": {"N": str(i)}})
    arn = a.create_backup(TableName=name, BackupName="both")["BackupDetails"]["BackupArn"]
    a.put_item(TableName=name, Item={"pk": {"S": "after"}})  # not in the backup
    _until(
        lambda: (
            b.describe_backup(BackupArn=arn)["BackupDescription"]["BackupDetails"]["BackupStatus"]
            == "AVAILABLE"
        ),
        "AVAILABLE",
    )
    b.restore_table_from_backup(TargetTableName=f"{name}-r", BackupArn=arn)
    for g in gateways:  # a restore takes simulated minutes (each gateway has its own clock so far)
        g.advance_clock("10m")
    _until(lambda: a.describe_table(TableName=f"{name}-r")["Table"]["TableStatus"] == "ACTIVE", "restored")
    items = a.scan(TableName=f"{name}-r", ConsistentRead=True)["Items"]
    assert sorted(int(i["n"]["N"]) for i in items) == list(range(30))


BODY = "x" * (50 * 1024 - 64)  # 50 write units a put (of the table and of a GSI projecting all)


def _provisioned(ddb: Any, name: str, wcu: int, **kw: Any) -> str:
    ddb.create_table(
        TableName=name,
        BillingMode="PROVISIONED",
        ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": wcu},
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": key, "AttributeType": "S"} for key in ("pk", "g") if key == "pk" or kw
        ],
        **kw,
    )
    return name


def _admitted(clients: list[Any], name: str, tag: str) -> float:
    """Write units admitted by both gateways at once, each writing until it is throttled."""

    def until_throttled(c: Any, prefix: str) -> float:
        units = 0.0
        for i in range(100):
            item = {"pk": {"S": f"{prefix}{i}"}, "g": {"S": "g"}, "v": {"S": BODY}}
            try:
                r = c.put_item(TableName=name, Item=item, ReturnConsumedCapacity="INDEXES")
            except ClientError as e:
                assert _code(e) == "ProvisionedThroughputExceededException"
                return units
            units += r["ConsumedCapacity"]["CapacityUnits"]
        raise AssertionError("never throttled")

    with ThreadPoolExecutor(len(clients)) as pool:
        return sum(pool.map(until_throttled, clients, [f"{tag}{i}" for i in range(len(clients))]))


def test_a_provisioned_tables_capacity_is_shared_by_the_gateways(
    gateways: list[StrataProcess], clients: list[Any]
) -> None:
    """5 WCU provisioned: writes through both gateways at once are admitted up to the table's 300 s
    of burst (1,500 units) and then 5 units a simulated second in all, not that on each gateway
    (each admits half; a throttle test written against AWS must throttle here too)."""
    name = _provisioned(clients[0], f"cap-{uuid.uuid4().hex[:6]}", 5)
    # Each gateway admits while its half of the burst is above zero: 1,500 units and up to one
    # put past each half, plus 5 units a real second of the test (unshared: 3,000 and more).
    assert 1500 <= _admitted(clients, name, "burst") < 2200
    moved = gateways[0].advance_clock("200s")["offset_seconds"]
    _until(lambda: gateways[1].admin("/_strata/clock")["offset_seconds"] == moved, "B follows the advance")
    # 200 simulated seconds refill 1,000 units in all (each half less its debt, at most one put).
    assert 850 <= _admitted(clients, name, "rate") < 1600


def test_a_global_secondary_indexs_capacity_is_shared_by_the_gateways(clients: list[Any]) -> None:
    """The table has 1,000 WCU, its GSI 5: the GSI's 1,500 units of burst throttle the table's
    writes through both gateways together (with the GSI's reason), not 3,000."""
    name = _provisioned(
        clients[0],
        f"gsicap-{uuid.uuid4().hex[:6]}",
        1000,
        GlobalSecondaryIndexes=[
            {
                "IndexName": "byg",
                "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
                "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
            }
        ],
    )
    # ConsumedCapacity counts the table's units and the GSI's: half of each put is the GSI's.
    assert 1500 <= _admitted(clients, name, "gsi") / 2 < 2200
