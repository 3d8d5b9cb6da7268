"""Transactions (all-or-nothing, reasons in order, idempotency) and consumed capacity on the meter."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError


def put(t: str, pk: str, **attrs: Any) -> dict:
    return {"Put": {"TableName": t, "Item": {"pk": {"S": pk}, **attrs}}}


def test_cancellation_reasons_in_order_and_nothing_written(ddb: Any, make_table: Any) -> None:
    t = make_table(("pk", "S"))
    ddb.put_item(TableName=t, Item={"pk": {"S": "exists"}, "v": {"N": "1"}})
    with pytest.raises(ClientError) as e:
        ddb.transact_write_items(
            TransactItems=[
                put(t, "new1"),
                {
                    "ConditionCheck": {
                        "TableName": t,
                        "Key": {"pk": {"S": "exists"}},
                        "ConditionExpression": "v = :two",
                        "ExpressionAttributeValues": {":two": {"N": "2"}},
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                },
                {
                    "Delete": {
                        "TableName": t,
                        "Key": {"pk": {"S": "nope"}},
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
                put(t, "new2"),
            ]
        )
    resp = e.value.response
    assert [r["Code"] for r in resp["CancellationReasons"]] == [
        "None",
        "ConditionalCheckFailed",
        "ConditionalCheckFailed",
        "None",
    ]
    assert resp["CancellationReasons"][1]["Item"] == {"pk": {"S": "exists"}, "v": {"N": "1"}}
    assert ddb.scan(TableName=t)["Count"] == 1


def test_one_item_twice_is_refused(ddb: Any, make_table: Any) -> None:
    t = make_table(("pk", "S"))
    with pytest.raises(ClientError) as e:
        ddb.transact_write_items(
            TransactItems=[put(t, "a"), {"Delete": {"TableName": t, "Key": {"pk": {"S": "a"}}}}]
        )
    assert (
        e.value.response["Error"]["Message"]
        == "Transaction request cannot include multiple operations on one item"
    )


def test_client_request_token_is_idempotent(ddb: Any, make_table: Any) -> None:
    t = make_table(("pk", "S"))
    ddb.put_item(TableName=t, Item={"pk": {"S": "c"}, "n": {"N": "0"}})
    incr = {
        "Update": {
            "TableName": t,
            "Key": {"pk": {"S": "c"}},
            "UpdateExpression": "ADD n :one",
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        }
    }
    for _ in range(3):
        ddb.transact_write_items(TransactItems=[incr], ClientRequestToken="tok-1")
    assert ddb.get_item(TableName=t, Key={"pk": {"S": "c"}})["Item"]["n"] == {"N": "1"}
    with pytest.raises(ClientError) as e:
        ddb.transact_write_items(TransactItems=[incr, put(t, "other")], ClientRequestToken="tok-1")
    assert e.value.response["Error"]["Code"] == "IdempotentParameterMismatchException"
    ddb.transact_write_items(TransactItems=[incr], ClientRequestToken="tok-2")
    got = ddb.transact_get_items(
        TransactItems=[
            {"Get": {"TableName": t, "Key": {"pk": {"S": "c"}}}},
            {"Get": {"TableName": t, "Key": {"pk": {"S": "missing"}}}},
        ]
    )
    assert got["Responses"][0]["Item"]["n"] == {"N": "2"} and got["Responses"][1] == {}


def test_token_expires_after_ten_minutes_of_simulated_time(strata_factory: Any) -> None:
    server = strata_factory()
    ddb = server.client("dynamodb")
    ddb.create_table(
        TableName="tok",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    incr = [
        {
            "Update": {
                "TableName": "tok",
                "Key": {"pk": {"S": "c"}},
                "UpdateExpression": "ADD n :one",
                "ExpressionAttributeValues": {":one": {"N": "1"}},
            }
        }
    ]
    ddb.transact_write_items(TransactItems=incr, ClientRequestToken="t")
    server.advance_clock("9m")
    ddb.transact_write_items(TransactItems=incr, ClientRequestToken="t")
    server.advance_clock("2m")
    ddb.transact_write_items(TransactItems=incr, ClientRequestToken="t")
    assert ddb.get_item(TableName="tok", Key={"pk": {"S": "c"}})["Item"]["n"] == {"N": "2"}


def meter_total(server: Any, event: str, table: str) -> float:
    events = server.admin("/_strata/meter?service=dynamodb")["events"]
    return sum(e["quantity"] for e in events if e["event"] == event and e["dims"].get("table") == table)


def test_capacity_matches_the_course_example(strata_server: Any, ddb: Any, make_table: Any) -> None:
    """100 strongly consistent reads of 8 KB items = 200 RCU; 50 writes of 3 KB = 150 WCU."""
    t = make_table(("pk", "S"))
    # An item of 8 KB by DynamoDB's size rules: name "pk"(2) + "a"(1) + value bytes.
    eight_kb = {"pk": {"S": "r"}, "a": {"S": "x" * (8192 - 2 - 1 - 1)}}
    ddb.put_item(TableName=t, Item=eight_kb)
    three_kb = [{"pk": {"S": f"w{i}"}, "a": {"S": "y" * (3072 - 2 - len(f"w{i}") - 1)}} for i in range(50)]
    before = meter_total(strata_server, "WriteCapacityUnits", t)
    for item in three_kb:
        r = ddb.put_item(TableName=t, Item=item, ReturnConsumedCapacity="TOTAL")
        assert r["ConsumedCapacity"]["CapacityUnits"] == 3.0
    assert meter_total(strata_server, "WriteCapacityUnits", t) - before == 150
    for _ in range(100):
        r = ddb.get_item(
            TableName=t, Key={"pk": {"S": "r"}}, ConsistentRead=True, ReturnConsumedCapacity="TOTAL"
        )
        assert r["ConsumedCapacity"]["CapacityUnits"] == 2.0
    assert meter_total(strata_server, "ReadCapacityUnits", t) == 200
    r = ddb.get_item(TableName=t, Key={"pk": {"S": "r"}}, ReturnConsumedCapacity="TOTAL")
    assert r["ConsumedCapacity"]["CapacityUnits"] == 1.0  # eventually consistent: half


def test_index_writes_are_counted(ddb: Any, make_table: Any) -> None:
    t = make_table(
        ("pk", "S"),
        extra_defs=[{"AttributeName": "g", "AttributeType": "S"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-g",
                "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )
    r = ddb.put_item(TableName=t, Item={"pk": {"S": "a"}, "g": {"S": "x"}}, ReturnConsumedCapacity="INDEXES")
    cc = r["ConsumedCapacity"]
    assert cc["CapacityUnits"] == 2.0 and cc["Table"]["CapacityUnits"] == 1.0
    assert cc["GlobalSecondaryIndexes"]["by-g"]["CapacityUnits"] == 1.0
    # Changing the index key is a delete plus a put in the index.
    r = ddb.put_item(TableName=t, Item={"pk": {"S": "a"}, "g": {"S": "y"}}, ReturnConsumedCapacity="INDEXES")
    assert r["ConsumedCapacity"]["GlobalSecondaryIndexes"]["by-g"]["CapacityUnits"] == 2.0
    r = ddb.transact_write_items(TransactItems=[put(t, "b")], ReturnConsumedCapacity="TOTAL")
    assert r["ConsumedCapacity"][0]["CapacityUnits"] == 2.0  # transactional writes cost double
