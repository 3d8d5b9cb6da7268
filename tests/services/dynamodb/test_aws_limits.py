"""DynamoDB's limits at their exact boundaries over the wire: a 400 KB item (409,600 bytes:
attribute names plus values) is stored and one byte more is refused; a transaction of 100
actions commits and one of 101 is refused."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

MAX_ITEM = 400 * 1024


def test_400_kb_item(ddb: Any, make_table: Any) -> None:
    table = make_table(("pk", "S"))
    # size = len("pk") + len("a") + len("v") + len(value)
    value = "x" * (MAX_ITEM - 4)
    ddb.put_item(TableName=table, Item={"pk": {"S": "a"}, "v": {"S": value}})
    got = ddb.get_item(TableName=table, Key={"pk": {"S": "a"}}, ConsistentRead=True)["Item"]
    assert got["v"]["S"] == value
    with pytest.raises(ClientError) as e:
        ddb.put_item(TableName=table, Item={"pk": {"S": "b"}, "v": {"S": value + "x"}})
    err = e.value.response["Error"]
    assert (err["Code"], err["Message"]) == (
        "ValidationException",
        "Item size has exceeded the maximum allowed size",
    )
    # an update that would grow the stored item past the limit is refused the same way
    with pytest.raises(ClientError) as e:
        ddb.update_item(
            TableName=table,
            Key={"pk": {"S": "a"}},
            UpdateExpression="SET w = :w",
            ExpressionAttributeValues={":w": {"S": "y"}},
        )
    assert e.value.response["Error"]["Code"] == "ValidationException"
    got = ddb.get_item(TableName=table, Key={"pk": {"S": "a"}}, ConsistentRead=True)["Item"]
    assert set(got) == {"pk", "v"}


def test_transaction_of_100_actions_and_101(ddb: Any, make_table: Any) -> None:
    table = make_table(("pk", "S"))

    def puts(n: int, tag: str) -> list[dict]:
        return [{"Put": {"TableName": table, "Item": {"pk": {"S": f"{tag}{i}"}}}} for i in range(n)]

    ddb.transact_write_items(TransactItems=puts(100, "ok"))
    with pytest.raises(ClientError) as e:
        ddb.transact_write_items(TransactItems=puts(101, "no"))
    err = e.value.response["Error"]
    assert err["Code"] == "ValidationException"
    assert "Member must have length less than or equal to 100" in err["Message"]
    assert ddb.get_item(TableName=table, Key={"pk": {"S": "no0"}}).get("Item") is None
    keys = [{"pk": {"S": f"ok{i}"}} for i in range(100)]
    got = ddb.transact_get_items(TransactItems=[{"Get": {"TableName": table, "Key": k}} for k in keys])
    assert len(got["Responses"]) == 100 and all("Item" in r for r in got["Responses"])
