"""Every DynamoDB code sample of the course (seed/storage-and-databases.md), run unchanged but for
endpoint_url, through the boto3 resource and client APIs."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

ORDER_KEY = {"customer_id": "CUST#12345", "order_date": "2024-01-15T10:30:00Z"}


@pytest.fixture
def orders(ddbr: Any, make_table: Any) -> Any:
    name = make_table(
        ("customer_id", "S"),
        ("order_date", "S"),
        extra_defs=[{"AttributeName": "status", "AttributeType": "S"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "orders-by-status",
                "KeySchema": [
                    {"AttributeName": "status", "KeyType": "HASH"},
                    {"AttributeName": "order_date", "KeyType": "RANGE"},
                ],
                "Projection": {
                    "ProjectionType": "INCLUDE",
                    "NonKeyAttributes": ["order_id", "customer_id", "total"],
                },
            }
        ],
    )
    return ddbr.Table(name)


def put_item_example(table: Any) -> None:
    table.put_item(
        Item={
            "customer_id": "CUST#12345",
            "order_date": "2024-01-15T10:30:00Z",
            "order_id": "ORD#98765",
            "total": Decimal("299.99"),
            "status": "PENDING",
            "items": [{"sku": "ABC123", "qty": 2, "price": Decimal("99.99")}],
        },
        ConditionExpression="attribute_not_exists(order_id)",
    )


def test_put_with_attribute_not_exists(orders: Any) -> None:
    put_item_example(orders)
    with pytest.raises(ClientError) as e:
        put_item_example(orders)  # the same order again: the condition fails
    assert e.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert e.value.response["Error"]["Message"] == "The conditional request failed"
    item = orders.get_item(Key=ORDER_KEY)["Item"]
    assert item["total"] == Decimal("299.99") and item["items"][0]["qty"] == 2


def test_get_with_projection_and_placeholder(orders: Any) -> None:
    put_item_example(orders)
    # As written in the course, `total` is a reserved word: DynamoDB refuses the projection.
    with pytest.raises(ClientError) as e:
        orders.get_item(
            Key=ORDER_KEY,
            ConsistentRead=True,
            ProjectionExpression="order_id, #s, total",
            ExpressionAttributeNames={"#s": "status"},
        )
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert e.value.response["Error"]["Message"] == (
        "Invalid ProjectionExpression: Attribute name is a reserved keyword; reserved keyword: total"
    )
    # Escaping it too is what works.
    item = orders.get_item(
        Key=ORDER_KEY,
        ConsistentRead=True,
        ProjectionExpression="order_id, #s, #t",
        ExpressionAttributeNames={"#s": "status", "#t": "total"},
    )["Item"]
    assert item == {"order_id": "ORD#98765", "status": "PENDING", "total": Decimal("299.99")}


def test_update_with_set_add_and_optimistic_lock(orders: Any) -> None:
    put_item_example(orders)
    kwargs = dict(
        Key=ORDER_KEY,
        UpdateExpression="SET #s = :status, updated_at = :now ADD version :inc",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":status": "SHIPPED", ":now": "2024-01-16T14:00:00Z", ":inc": 1},
        ConditionExpression="version = :expected_version",
        ReturnValues="ALL_NEW",
    )
    # The course's snippet never defines :expected_version; DynamoDB rejects that.
    with pytest.raises(ClientError) as e:
        orders.update_item(**kwargs)
    assert e.value.response["Error"]["Message"] == (
        "Invalid ConditionExpression: An expression attribute value used in expression is not defined; "
        "attribute value: :expected_version"
    )
    # With the value defined, the lock works: first writer (version absent -> use attribute_not_exists) ...
    orders.update_item(
        Key=ORDER_KEY,
        UpdateExpression="SET version = :zero",
        ConditionExpression="attribute_not_exists(version)",
        ExpressionAttributeValues={":zero": 0},
    )
    kwargs["ExpressionAttributeValues"] = {**kwargs["ExpressionAttributeValues"], ":expected_version": 0}
    attrs = orders.update_item(**kwargs)["Attributes"]
    assert (
        attrs["status"] == "SHIPPED"
        and attrs["version"] == 1
        and attrs["updated_at"] == "2024-01-16T14:00:00Z"
    )
    # ... and a second writer holding the stale version loses.
    with pytest.raises(ClientError) as e:
        orders.update_item(**kwargs)
    assert e.value.response["Error"]["Code"] == "ConditionalCheckFailedException"


def test_query_with_key_condition_filter_and_descending(orders: Any) -> None:
    with orders.batch_writer() as batch:
        for day in range(1, 31):
            batch.put_item(
                Item={
                    "customer_id": "CUST#1",
                    "order_date": f"2024-01-{day:02}",
                    "status": "CANCELLED" if day % 5 == 0 else "PENDING",
                    "total": day,
                }
            )
        batch.put_item(Item={"customer_id": "CUST#2", "order_date": "2024-01-10", "status": "PENDING"})

    def query_customer_orders(customer_id: str, start_date: str | None = None) -> list:
        key_condition = Key("customer_id").eq(customer_id)
        if start_date:
            key_condition = key_condition & Key("order_date").gte(start_date)
        response = orders.query(
            KeyConditionExpression=key_condition,
            ScanIndexForward=False,
            Limit=20,
            FilterExpression=Attr("status").ne("CANCELLED"),
        )
        return response["Items"]

    items = query_customer_orders("CUST#1")
    dates = [i["order_date"] for i in items]
    # Limit applies before the filter: 20 read (days 30..11), 4 of them cancelled.
    assert dates == [f"2024-01-{d:02}" for d in range(30, 10, -1) if d % 5]
    items = query_customer_orders("CUST#1", "2024-01-25")
    assert [i["order_date"] for i in items] == ["2024-01-29", "2024-01-28", "2024-01-27", "2024-01-26"]


def test_batch_writer_and_batch_get_item(orders: Any, ddbr: Any) -> None:
    items = [
        {
            "customer_id": f"CUST#{i}",
            "order_date": "2024-02-01",
            "order_id": f"ORD#{i}",
            "total": i,
            "status": "NEW",
        }
        for i in range(60)
    ]
    with orders.batch_writer() as batch:
        for item in items:
            batch.put_item(Item=item)
    keys = [{"customer_id": f"CUST#{i}", "order_date": "2024-02-01"} for i in range(0, 60, 3)]
    # As written in the course the projection uses reserved words (total, status): refused.
    with pytest.raises(ClientError) as e:
        ddbr.batch_get_item(
            RequestItems={orders.name: {"Keys": keys, "ProjectionExpression": "order_id, total, status"}}
        )
    assert e.value.response["Error"]["Message"] == (
        "Invalid ProjectionExpression: Attribute name is a reserved keyword; reserved keyword: total"
    )
    response = ddbr.batch_get_item(
        RequestItems={
            orders.name: {
                "Keys": keys,
                "ProjectionExpression": "order_id, #t, #s",
                "ExpressionAttributeNames": {"#t": "total", "#s": "status"},
            }
        }
    )
    got = sorted(response["Responses"][orders.name], key=lambda x: x["total"])
    assert [g["order_id"] for g in got] == [f"ORD#{i}" for i in range(0, 60, 3)]
    assert set(got[0]) == {"order_id", "total", "status"}
    assert response["UnprocessedKeys"] == {}


def test_two_account_transfer_transaction(ddb: Any, make_table: Any) -> None:
    accounts = make_table(("account_id", "S"))
    ddb.put_item(TableName=accounts, Item={"account_id": {"S": "ACC#001"}, "balance": {"N": "150"}})
    ddb.put_item(TableName=accounts, Item={"account_id": {"S": "ACC#002"}, "balance": {"N": "0"}})

    def transfer_with_transaction() -> None:
        ddb.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": accounts,
                        "Key": {"account_id": {"S": "ACC#001"}},
                        "UpdateExpression": "SET balance = balance - :amount",
                        "ConditionExpression": "balance >= :amount",
                        "ExpressionAttributeValues": {":amount": {"N": "100"}},
                    }
                },
                {
                    "Update": {
                        "TableName": accounts,
                        "Key": {"account_id": {"S": "ACC#002"}},
                        "UpdateExpression": "SET balance = balance + :amount",
                        "ExpressionAttributeValues": {":amount": {"N": "100"}},
                    }
                },
            ]
        )

    def balances() -> list[str]:
        return [
            ddb.get_item(TableName=accounts, Key={"account_id": {"S": a}})["Item"]["balance"]["N"]
            for a in ("ACC#001", "ACC#002")
        ]

    transfer_with_transaction()
    assert balances() == ["50", "100"]
    with pytest.raises(ClientError) as e:
        transfer_with_transaction()  # 50 < 100: the whole transaction is cancelled
    err = e.value.response
    assert err["Error"]["Code"] == "TransactionCanceledException"
    assert err["Error"]["Message"] == (
        "Transaction cancelled, please refer cancellation reasons for specific "
        "reasons [ConditionalCheckFailed, None]"
    )
    assert [r["Code"] for r in err["CancellationReasons"]] == ["ConditionalCheckFailed", "None"]
    assert balances() == ["50", "100"]


def test_gsi_query_by_status(orders: Any) -> None:
    put_item_example(orders)
    orders.put_item(
        Item={
            "customer_id": "CUST#9",
            "order_date": "2024-03-01",
            "status": "PENDING",
            "order_id": "ORD#9",
            "total": 5,
            "note": "not projected",
        }
    )
    orders.put_item(Item={"customer_id": "CUST#8", "order_date": "2024-03-02", "status": "SHIPPED"})
    orders.put_item(Item={"customer_id": "CUST#7", "order_date": "2024-03-03"})  # no status: not in the index
    response = orders.query(IndexName="orders-by-status", KeyConditionExpression=Key("status").eq("PENDING"))
    items = response["Items"]
    assert [i["order_id"] for i in items] == ["ORD#98765", "ORD#9"]  # sorted by order_date
    assert all("note" not in i and "items" not in i for i in items)  # only projected attributes
    with pytest.raises(ClientError) as e:
        orders.query(
            IndexName="orders-by-status",
            KeyConditionExpression=Key("status").eq("PENDING"),
            ConsistentRead=True,
        )
    assert (
        e.value.response["Error"]["Message"]
        == "Consistent reads are not supported on global secondary indexes"
    )
