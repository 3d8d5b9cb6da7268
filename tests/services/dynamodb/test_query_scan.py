"""Query and Scan: key ranges, ordering, paging, Limit, Select, indexes and parallel scans."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError


@pytest.fixture
def numbers(ddb: Any, make_table: Any) -> str:
    t = make_table(("pk", "S"), ("n", "N"))
    with_items = [
        {"PutRequest": {"Item": {"pk": {"S": "p"}, "n": {"N": str(v)}, "odd": {"BOOL": v % 2 == 1}}}}
        for v in (-100, -2.5, -1, 0, 0.001, 1, 2, 10, 11, 100, 1e20)
    ]
    for i in range(0, len(with_items), 25):
        ddb.batch_write_item(RequestItems={t: with_items[i : i + 25]})
    ddb.put_item(TableName=t, Item={"pk": {"S": "other"}, "n": {"N": "5"}})
    return t


def q(ddb: Any, t: str, cond: str, values: dict, **kw: Any) -> list[str]:
    r = ddb.query(TableName=t, KeyConditionExpression=cond, ExpressionAttributeValues=values, **kw)
    return [i["n"]["N"] for i in r["Items"]]


def test_numeric_sort_key_order_and_ranges(ddb: Any, numbers: str) -> None:
    p = {":p": {"S": "p"}}
    assert q(ddb, numbers, "pk = :p", p) == [
        "-100",
        "-2.5",
        "-1",
        "0",
        "0.001",
        "1",
        "2",
        "10",
        "11",
        "100",
        "100000000000000000000",
    ]
    assert q(
        ddb, numbers, "pk = :p AND n BETWEEN :a AND :b", {**p, ":a": {"N": "-1"}, ":b": {"N": "10"}}
    ) == ["-1", "0", "0.001", "1", "2", "10"]
    assert q(ddb, numbers, "pk = :p AND n < :a", {**p, ":a": {"N": "0"}}, ScanIndexForward=False) == [
        "-1",
        "-2.5",
        "-100",
    ]
    assert q(ddb, numbers, "pk = :p AND n >= :a", {**p, ":a": {"N": "100"}}) == [
        "100",
        "100000000000000000000",
    ]
    r = ddb.query(
        TableName=numbers, KeyConditionExpression="pk = :p", ExpressionAttributeValues=p, Select="COUNT"
    )
    assert r["Count"] == 11 and "Items" not in r


def test_paging_with_limit_and_exclusive_start_key(ddb: Any, numbers: str) -> None:
    seen, start = [], None
    for _ in range(10):
        kw = {"ExclusiveStartKey": start} if start else {}
        r = ddb.query(
            TableName=numbers,
            KeyConditionExpression="pk = :p",
            Limit=3,
            ScanIndexForward=False,
            FilterExpression="odd = :t",
            ExpressionAttributeValues={":p": {"S": "p"}, ":t": {"BOOL": True}},
            **kw,
        )
        assert r["ScannedCount"] <= 3
        seen += [i["n"]["N"] for i in r["Items"]]
        start = r.get("LastEvaluatedKey")
        if not start:
            break
    assert seen == ["11", "1", "-1"]


def test_start_key_must_be_inside_the_query(ddb: Any, numbers: str) -> None:
    with pytest.raises(ClientError) as e:
        ddb.query(
            TableName=numbers,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": "p"}},
            ExclusiveStartKey={"pk": {"S": "other"}, "n": {"N": "5"}},
        )
    assert e.value.response["Error"]["Message"] == (
        "The provided starting key is outside query boundaries based on provided conditions"
    )


def test_a_page_that_stops_at_limit_has_a_last_evaluated_key(ddb: Any, numbers: str) -> None:
    r = ddb.query(
        TableName=numbers,
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": "other"}},
        Limit=1,
    )
    assert r["Count"] == 1 and r["LastEvaluatedKey"] == {"pk": {"S": "other"}, "n": {"N": "5"}}
    r = ddb.query(
        TableName=numbers,
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": "other"}},
        Limit=1,
        ExclusiveStartKey=r["LastEvaluatedKey"],
    )
    assert r["Count"] == 0 and "LastEvaluatedKey" not in r


def test_begins_with_and_string_byte_order(ddb: Any, make_table: Any) -> None:
    t = make_table(("pk", "S"), ("sk", "S"))
    for sk in ["a", "ab", "abc", "b", "B", "é", "z", "a\uffff"]:
        ddb.put_item(TableName=t, Item={"pk": {"S": "p"}, "sk": {"S": sk}})
    r = ddb.query(
        TableName=t,
        KeyConditionExpression="pk = :p AND begins_with(sk, :a)",
        ExpressionAttributeValues={":p": {"S": "p"}, ":a": {"S": "a"}},
    )
    assert [i["sk"]["S"] for i in r["Items"]] == ["a", "ab", "abc", "a\uffff"]
    r = ddb.query(TableName=t, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "p"}})
    assert [i["sk"]["S"] for i in r["Items"]] == ["B", "a", "ab", "abc", "a\uffff", "b", "z", "é"]


@pytest.mark.parametrize(
    "cond, message",
    [
        ("n = :n", "Query condition missed key schema element: pk"),
        ("pk = :p OR n = :n", "Invalid operator used in KeyConditionExpression: OR"),
        (
            "pk = :p AND begins_with(n, :n)",
            "Invalid KeyConditionExpression: Incorrect operand type for operator or "
            "function; operator or function: begins_with, operand type: N",
        ),
        (
            "pk = :n",
            "One or more parameter values were invalid: Condition parameter type does not match schema type",
        ),
    ],
)
def test_key_condition_errors(ddb: Any, numbers: str, cond: str, message: str) -> None:
    values = {":p": {"S": "p"}, ":n": {"N": "1"}}
    values = {k: v for k, v in values.items() if k in cond}
    with pytest.raises(ClientError) as e:
        ddb.query(TableName=numbers, KeyConditionExpression=cond, ExpressionAttributeValues=values)
    assert e.value.response["Error"]["Message"] == message


def test_legacy_key_conditions_and_query_filter(ddb: Any, numbers: str) -> None:
    r = ddb.query(
        TableName=numbers,
        KeyConditions={
            "pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "p"}]},
            "n": {"ComparisonOperator": "GT", "AttributeValueList": [{"N": "1"}]},
        },
        QueryFilter={"odd": {"ComparisonOperator": "EQ", "AttributeValueList": [{"BOOL": False}]}},
    )
    assert [i["n"]["N"] for i in r["Items"]] == ["2", "10", "100", "100000000000000000000"]


def test_scan_segments_cover_the_table_once(ddb: Any, make_table: Any) -> None:
    t = make_table(("pk", "N"))
    for i in range(0, 60, 25):
        ddb.batch_write_item(
            RequestItems={
                t: [{"PutRequest": {"Item": {"pk": {"N": str(j)}}}} for j in range(i, min(i + 25, 60))]
            }
        )
    found = []
    for seg in range(3):
        start = None
        while True:
            kw = {"ExclusiveStartKey": start} if start else {}
            r = ddb.scan(TableName=t, Segment=seg, TotalSegments=3, Limit=7, **kw)
            found += [int(i["pk"]["N"]) for i in r["Items"]]
            start = r.get("LastEvaluatedKey")
            if not start:
                break
    assert sorted(found) == list(range(60))
    with pytest.raises(ClientError) as e:
        ddb.scan(TableName=t, Segment=3, TotalSegments=3)
    assert "Segment: 3 is not less than TotalSegments: 3" in e.value.response["Error"]["Message"]


def test_page_stops_at_one_megabyte(ddb: Any, make_table: Any) -> None:
    t = make_table(("pk", "S"), ("sk", "N"))
    blob = "x" * 300_000
    for i in range(5):
        ddb.put_item(TableName=t, Item={"pk": {"S": "p"}, "sk": {"N": str(i)}, "d": {"S": blob}})
    r = ddb.query(TableName=t, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "p"}})
    assert r["Count"] == 4 and r["LastEvaluatedKey"] == {"pk": {"S": "p"}, "sk": {"N": "3"}}


def test_lsi_and_gsi_created_later_with_backfill(ddb: Any, make_table: Any) -> None:
    t = make_table(
        ("user", "S"),
        ("ts", "N"),
        extra_defs=[{"AttributeName": "score", "AttributeType": "N"}],
        LocalSecondaryIndexes=[
            {
                "IndexName": "by-score",
                "KeySchema": [
                    {"AttributeName": "user", "KeyType": "HASH"},
                    {"AttributeName": "score", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
    )
    for ts, score in [(1, 50), (2, 10), (3, 30), (4, None)]:
        item = {"user": {"S": "u"}, "ts": {"N": str(ts)}, "kind": {"S": "even" if ts % 2 == 0 else "odd"}}
        if score is not None:
            item["score"] = {"N": str(score)}
        ddb.put_item(TableName=t, Item=item)
    r = ddb.query(
        TableName=t,
        IndexName="by-score",
        KeyConditionExpression="#u = :u",
        ExpressionAttributeNames={"#u": "user"},
        ExpressionAttributeValues={":u": {"S": "u"}},
        ConsistentRead=True,
    )
    assert [i["ts"]["N"] for i in r["Items"]] == ["2", "3", "1"]
    assert set(r["Items"][0]) == {"user", "ts", "score"}  # KEYS_ONLY
    r = ddb.query(
        TableName=t,
        IndexName="by-score",
        KeyConditionExpression="#u = :u",
        Select="ALL_ATTRIBUTES",
        ExpressionAttributeNames={"#u": "user"},
        ExpressionAttributeValues={":u": {"S": "u"}},
    )
    assert r["Items"][0]["kind"] == {"S": "even"}  # an LSI may fetch from the table
    ddb.update_table(
        TableName=t,
        AttributeDefinitions=[{"AttributeName": "kind", "AttributeType": "S"}],
        GlobalSecondaryIndexUpdates=[
            {
                "Create": {
                    "IndexName": "by-kind",
                    "KeySchema": [{"AttributeName": "kind", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "ALL"},
                }
            }
        ],
    )
    r = ddb.query(
        TableName=t,
        IndexName="by-kind",
        KeyConditionExpression="kind = :k",
        ExpressionAttributeValues={":k": {"S": "even"}},
    )
    assert sorted(i["ts"]["N"] for i in r["Items"]) == ["2", "4"]
    desc = ddb.describe_table(TableName=t)["Table"]
    assert {g["IndexName"]: g["ItemCount"] for g in desc["GlobalSecondaryIndexes"]} == {"by-kind": 4}
    assert desc["LocalSecondaryIndexes"][0]["ItemCount"] == 3
    ddb.update_table(TableName=t, GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": "by-kind"}}])
    with pytest.raises(ClientError) as e:
        ddb.query(
            TableName=t,
            IndexName="by-kind",
            KeyConditionExpression="kind = :k",
            ExpressionAttributeValues={":k": {"S": "even"}},
        )
    assert e.value.response["Error"]["Message"] == "The table does not have the specified index: by-kind"


def test_gsi_paging_with_equal_index_keys_and_index_scan(ddb: Any, make_table: Any) -> None:
    t = make_table(
        ("pk", "S"),
        extra_defs=[
            {"AttributeName": "g", "AttributeType": "S"},
            {"AttributeName": "r", "AttributeType": "N"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-g",
                "KeySchema": [
                    {"AttributeName": "g", "KeyType": "HASH"},
                    {"AttributeName": "r", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
    )
    for i in range(25):
        ddb.put_item(
            TableName=t,
            Item={
                "pk": {"S": f"i{i:02}"},
                "g": {"S": "G" if i < 20 else "H"},
                "r": {"N": str(i % 3)},
                "x": {"S": "not projected"},
            },
        )
    for forward in (True, False):
        got, start = [], None
        while True:
            kw = {"ExclusiveStartKey": start} if start else {}
            r = ddb.query(
                TableName=t,
                IndexName="by-g",
                KeyConditionExpression="g = :g",
                Limit=4,
                ScanIndexForward=forward,
                ExpressionAttributeValues={":g": {"S": "G"}},
                **kw,
            )
            got += [(int(i["r"]["N"]), i["pk"]["S"]) for i in r["Items"]]
            start = r.get("LastEvaluatedKey")
            if start:
                assert set(start) == {"pk", "g", "r"}
            else:
                break
        assert len(got) == 20 and len(set(got)) == 20
        assert [g[0] for g in got] == sorted((g[0] for g in got), reverse=not forward)
    got, start = [], None
    while True:
        r = ddb.scan(
            TableName=t, IndexName="by-g", Limit=7, **({"ExclusiveStartKey": start} if start else {})
        )
        got += r["Items"]
        start = r.get("LastEvaluatedKey")
        if not start:
            break
    assert len(got) == 25 and all("x" not in i for i in got)
