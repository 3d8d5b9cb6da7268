"""Random operation sequences applied to Strata and to a small reference model, with equal results."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

PKS = st.sampled_from(["a", "b", "c"])
SKS = st.integers(-3, 3)
VALS = st.integers(-5, 5)

op = st.one_of(
    st.tuples(st.just("put"), PKS, SKS, VALS, st.booleans()),
    st.tuples(st.just("delete"), PKS, SKS, VALS, st.booleans()),
    st.tuples(st.just("add"), PKS, SKS, VALS, st.booleans()),
    st.tuples(st.just("query"), PKS, SKS, VALS, st.booleans()),
    st.tuples(st.just("get"), PKS, SKS, VALS, st.booleans()),
    st.tuples(st.just("gsi"), PKS, SKS, VALS, st.booleans()),
)


class Model:
    """The reference: a dict of items and DynamoDB's documented semantics in a few lines."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, int], dict] = {}

    def apply(self, kind: str, pk: str, sk: int, v: int, flag: bool) -> Any:
        key = (pk, sk)
        cur = self.items.get(key)
        if kind == "put":  # flag: only if absent
            if flag and cur is not None:
                return "ConditionalCheckFailed"
            self.items[key] = {"v": v}
            return None
        if kind == "delete":  # flag: only if v > arg
            if flag and not (cur is not None and cur["v"] > v):
                return "ConditionalCheckFailed"
            self.items.pop(key, None)
            return cur
        if kind == "add":
            new = {"v": (cur or {}).get("v", 0) + v}
            self.items[key] = new
            return new["v"]
        if kind == "get":
            return cur
        if kind == "gsi":
            return sorted((k[0], k[1]) for k, it in self.items.items() if it["v"] == v)
        rows = sorted((k[1], it["v"]) for k, it in self.items.items() if k[0] == pk and k[1] >= sk)
        if not flag:
            rows.reverse()
        return [r for r in rows if r[1] != v]


def run(ddb: Any, t: str, kind: str, pk: str, sk: int, v: int, flag: bool) -> Any:
    key = {"pk": {"S": pk}, "sk": {"N": str(sk)}}
    try:
        if kind == "put":
            kw = {"ConditionExpression": "attribute_not_exists(pk)"} if flag else {}
            ddb.put_item(TableName=t, Item={**key, "v": {"N": str(v)}}, **kw)
            return None
        if kind == "delete":
            kw = (
                {"ConditionExpression": "v > :v", "ExpressionAttributeValues": {":v": {"N": str(v)}}}
                if flag
                else {}
            )
            r = ddb.delete_item(TableName=t, Key=key, ReturnValues="ALL_OLD", **kw)
            return {"v": int(r["Attributes"]["v"]["N"])} if "Attributes" in r else None
        if kind == "add":
            r = ddb.update_item(
                TableName=t,
                Key=key,
                UpdateExpression="ADD v :v",
                ReturnValues="UPDATED_NEW",
                ExpressionAttributeValues={":v": {"N": str(v)}},
            )
            return int(r["Attributes"]["v"]["N"])
        if kind == "get":
            r = ddb.get_item(TableName=t, Key=key, ConsistentRead=True)
            return {"v": int(r["Item"]["v"]["N"])} if "Item" in r else None
        if kind == "gsi":
            r = ddb.query(
                TableName=t,
                IndexName="by-v",
                KeyConditionExpression="v = :v",
                ExpressionAttributeValues={":v": {"N": str(v)}},
            )
            return sorted((i["pk"]["S"], int(i["sk"]["N"])) for i in r["Items"])
        r = ddb.query(
            TableName=t,
            KeyConditionExpression="pk = :p AND sk >= :s",
            FilterExpression="v <> :v",
            ExpressionAttributeValues={":p": {"S": pk}, ":s": {"N": str(sk)}, ":v": {"N": str(v)}},
            ScanIndexForward=flag,
            Limit=3,
        )
        rows = [(int(Decimal(i["sk"]["N"])), int(i["v"]["N"])) for i in r["Items"]]
        while "LastEvaluatedKey" in r:
            r = ddb.query(
                TableName=t,
                KeyConditionExpression="pk = :p AND sk >= :s",
                FilterExpression="v <> :v",
                ExpressionAttributeValues={":p": {"S": pk}, ":s": {"N": str(sk)}, ":v": {"N": str(v)}},
                ScanIndexForward=flag,
                Limit=3,
                ExclusiveStartKey=r["LastEvaluatedKey"],
            )
            rows += [(int(Decimal(i["sk"]["N"])), int(i["v"]["N"])) for i in r["Items"]]
        return rows
    except ddb.exceptions.ConditionalCheckFailedException:
        return "ConditionalCheckFailed"


@pytest.fixture(scope="module")
def table(ddb: Any) -> str:
    ddb.create_table(
        TableName="differential",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
            {"AttributeName": "v", "AttributeType": "N"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-v",
                "KeySchema": [{"AttributeName": "v", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return "differential"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(op, min_size=1, max_size=25))
def test_strata_matches_the_model(ddb: Any, table: str, ops: list) -> None:
    # Start each example from an empty table.
    for it in ddb.scan(TableName=table, ConsistentRead=True)["Items"]:
        ddb.delete_item(TableName=table, Key={"pk": it["pk"], "sk": it["sk"]})
    model = Model()
    for o in ops:
        assert run(ddb, table, *o) == model.apply(*o), o
    count = ddb.describe_table(TableName=table)["Table"]["ItemCount"]
    assert count == len(model.items)
