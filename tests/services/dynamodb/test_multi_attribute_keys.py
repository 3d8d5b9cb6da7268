"""GSIs with multi-attribute keys (up to four partition-key and four sort-key attributes):
creation rules, sparse indexing, tuple order, the query rules (every partition-key attribute
with =, sort-key attributes left to right, only the last with a range operator), paging, index
updates, backfill and PartiQL — each answer checked against a model of the items in Python."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError

DEFS = [
    {"AttributeName": "tour", "AttributeType": "S"},
    {"AttributeName": "season", "AttributeType": "N"},
    {"AttributeName": "area", "AttributeType": "S"},
    {"AttributeName": "rnd", "AttributeType": "N"},
    {"AttributeName": "tag", "AttributeType": "B"},
]
GSI = {
    "IndexName": "matches",
    "KeySchema": [
        {"AttributeName": "tour", "KeyType": "HASH"},
        {"AttributeName": "season", "KeyType": "HASH"},
        {"AttributeName": "area", "KeyType": "RANGE"},
        {"AttributeName": "rnd", "KeyType": "RANGE"},
        {"AttributeName": "tag", "KeyType": "RANGE"},
    ],
    "Projection": {"ProjectionType": "KEYS_ONLY"},
}
RANGES = ("area", "rnd", "tag")
# Sort-key values chosen so that naive concatenation would misorder them: "a" < "a\x00b" < "ab"
# as strings, negative and fractional numbers, binaries with zero bytes.
AREAS = ["a", "a\x00b", "ab", "eu", "eu-west"]
RNDS = [Decimal("-2.5"), Decimal("0"), Decimal("1"), Decimal("10")]
TAGS = [b"", b"\x00", b"\x00\x01", b"\x01"]


def _item(i: int) -> dict:
    item = {
        "id": {"S": f"m{i:03d}"},
        "tour": {"S": "cup"},
        "season": {"N": "2025"},
        "area": {"S": AREAS[i % len(AREAS)]},
        "rnd": {"N": str(RNDS[(i // 5) % len(RNDS)])},
    }
    tag = TAGS[(i // 3) % len(TAGS)]
    if tag:  # an empty binary is not a valid index key value: such items lack "tag"
        item["tag"] = {"B": tag}
    return item


def _sort_key(item: dict) -> tuple:
    return (item["area"]["S"].encode(), Decimal(item["rnd"]["N"]), bytes(item["tag"]["B"]))


@pytest.fixture
def matches(ddb: Any, make_table: Any) -> tuple[str, list[dict]]:
    t = make_table(("id", "S"), extra_defs=DEFS, GlobalSecondaryIndexes=[GSI])
    items = [_item(i) for i in range(60)]
    other = {**_item(3), "id": {"S": "other"}, "season": {"N": "2024"}}
    for i in range(0, len(items), 25):
        ddb.batch_write_item(RequestItems={t: [{"PutRequest": {"Item": x}} for x in items[i : i + 25]]})
    ddb.put_item(TableName=t, Item=other)
    ddb.put_item(TableName=t, Item={"id": {"S": "no-season"}, "tour": {"S": "cup"}, "area": {"S": "a"}})
    indexed = sorted((x for x in items if "tag" in x), key=_sort_key)
    return t, indexed


def _query(ddb: Any, t: str, cond: str, values: dict, **kw: Any) -> list[dict]:
    out: list[dict] = []
    args = {
        "TableName": t,
        "IndexName": "matches",
        "KeyConditionExpression": cond,
        "ExpressionAttributeValues": {":t": {"S": "cup"}, ":s": {"N": "2025"}, **values},
        **kw,
    }
    while True:
        r = ddb.query(**args)
        out += r["Items"]
        if "LastEvaluatedKey" not in r:
            return out
        args["ExclusiveStartKey"] = r["LastEvaluatedKey"]


def _ids(items: list[dict]) -> list[str]:
    return [x["id"]["S"] for x in items]


def test_describe_shows_the_key_schema_in_order(ddb: Any, matches: tuple[str, list[dict]]) -> None:
    t, _ = matches
    gsi = ddb.describe_table(TableName=t)["Table"]["GlobalSecondaryIndexes"][0]
    assert gsi["KeySchema"] == GSI["KeySchema"]
    assert gsi["ItemCount"] == 46  # the 45 items with every key attribute, plus "other"


def test_partition_holds_the_complete_items_in_tuple_order(ddb: Any, matches: tuple[str, list[dict]]) -> None:
    t, indexed = matches
    got = _query(ddb, t, "tour = :t AND season = :s", {})
    assert _ids(got) == _ids(indexed)
    assert set(got[0]) == {"id", "tour", "season", "area", "rnd", "tag"}  # KEYS_ONLY: every key
    back = _query(ddb, t, "season = :s AND tour = :t", {}, ScanIndexForward=False, Limit=7)
    assert _ids(back) == _ids(indexed)[::-1]
    other = _query(ddb, t, "tour = :t AND season = :s", {":s": {"N": "2024"}})
    assert _ids(other) == ["other"]


@pytest.mark.parametrize(
    "cond, values, keep",
    [
        ("area = :r", {":r": {"S": "a"}}, lambda k: k[0] == b"a"),
        ("area < :r", {":r": {"S": "ab"}}, lambda k: k[0] < b"ab"),
        ("area >= :r", {":r": {"S": "a\x00b"}}, lambda k: k[0] >= b"a\x00b"),
        ("begins_with(area, :r)", {":r": {"S": "a"}}, lambda k: k[0].startswith(b"a")),
        ("begins_with(area, :r)", {":r": {"S": "eu"}}, lambda k: k[0].startswith(b"eu")),
        (
            "area = :r AND rnd > :n",
            {":r": {"S": "eu"}, ":n": {"N": "0"}},
            lambda k: k[0] == b"eu" and k[1] > 0,
        ),
        (
            "area = :r AND rnd <= :n",
            {":r": {"S": "a"}, ":n": {"N": "0"}},
            lambda k: k[0] == b"a" and k[1] <= 0,
        ),
        (
            "area = :r AND rnd BETWEEN :lo AND :hi",
            {":r": {"S": "ab"}, ":lo": {"N": "-3"}, ":hi": {"N": "1"}},
            lambda k: k[0] == b"ab" and -3 <= k[1] <= 1,
        ),
        (
            "area = :r AND rnd = :n AND tag <= :g",
            {":r": {"S": "a"}, ":n": {"N": "1"}, ":g": {"B": b"\x00\x01"}},
            lambda k: k[0] == b"a" and k[1] == 1 and k[2] <= b"\x00\x01",
        ),
        (
            "area = :r AND rnd = :n AND begins_with(tag, :g)",
            {":r": {"S": "eu"}, ":n": {"N": "-2.5"}, ":g": {"B": b"\x00"}},
            lambda k: k[0] == b"eu" and k[1] == Decimal("-2.5") and k[2].startswith(b"\x00"),
        ),
        (
            "rnd = :n AND area = :r AND tag >= :g",
            {":r": {"S": "a\x00b"}, ":n": {"N": "10"}, ":g": {"B": b"\x00\x01"}},
            lambda k: k[0] == b"a\x00b" and k[1] == 10 and k[2] >= b"\x00\x01",
        ),
    ],
)
def test_sort_key_conditions_left_to_right(
    ddb: Any, matches: tuple[str, list[dict]], cond: str, values: dict, keep: Any
) -> None:
    t, indexed = matches
    want = [x for x in indexed if keep(_sort_key(x))]
    assert want, "each case must select something"
    got = _query(ddb, t, "tour = :t AND season = :s AND " + cond, values, Limit=4)
    assert _ids(got) == _ids(want)
    got = _query(ddb, t, "tour = :t AND season = :s AND " + cond, values, ScanIndexForward=False)
    assert _ids(got) == _ids(want)[::-1]


def test_legacy_key_conditions(ddb: Any, matches: tuple[str, list[dict]]) -> None:
    t, indexed = matches
    r = ddb.query(
        TableName=t,
        IndexName="matches",
        KeyConditions={
            "tour": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "cup"}]},
            "season": {"ComparisonOperator": "EQ", "AttributeValueList": [{"N": "2025"}]},
            "area": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "eu"}]},
            "rnd": {"ComparisonOperator": "GT", "AttributeValueList": [{"N": "0"}]},
        },
    )
    want = [x for x in indexed if _sort_key(x)[0] == b"eu" and _sort_key(x)[1] > 0]
    assert _ids(r["Items"]) == _ids(want)


def test_last_evaluated_key_names_every_key_attribute(ddb: Any, matches: tuple[str, list[dict]]) -> None:
    t, _ = matches
    r = ddb.query(
        TableName=t,
        IndexName="matches",
        KeyConditionExpression="tour = :t AND season = :s",
        ExpressionAttributeValues={":t": {"S": "cup"}, ":s": {"N": "2025"}},
        Limit=3,
    )
    assert set(r["LastEvaluatedKey"]) == {"id", "tour", "season", "area", "rnd", "tag"}
    bad = dict(r["LastEvaluatedKey"])
    del bad["tag"]
    with pytest.raises(ClientError, match="The provided starting key is invalid"):
        ddb.query(
            TableName=t,
            IndexName="matches",
            KeyConditionExpression="tour = :t AND season = :s",
            ExpressionAttributeValues={":t": {"S": "cup"}, ":s": {"N": "2025"}},
            ExclusiveStartKey=bad,
        )


@pytest.mark.parametrize(
    "cond, message",
    [
        ("tour = :t", "Query condition missed key schema element: season"),
        ("tour = :t AND season > :s", "Query key condition not supported"),
        ("tour = :t AND season = :s AND rnd = :n", "Query condition missed key schema element: area"),
        ("tour = :t AND season = :s AND area = :r AND tag = :g", "missed key schema element: rnd"),
        ("tour = :t AND season = :s AND area > :r AND rnd = :n", "sort key attribute: area"),
        ("tour = :t AND season = :s AND area = :r AND area = :r", "only contain one condition per key"),
        ("tour = :t AND season = :s AND extra = :r", "Query condition missed key schema element: area"),
        ("tour = :t AND season = :s OR area = :r", "Invalid operator used in KeyConditionExpression: OR"),
    ],
)
def test_query_rule_errors(ddb: Any, matches: tuple[str, list[dict]], cond: str, message: str) -> None:
    t, _ = matches
    values = {":t": {"S": "cup"}, ":s": {"N": "2025"}, ":r": {"S": "a"}, ":n": {"N": "1"}, ":g": {"B": b"x"}}
    used = {k: v for k, v in values.items() if k in cond}
    with pytest.raises(ClientError) as e:
        ddb.query(
            TableName=t,
            IndexName="matches",
            KeyConditionExpression=cond,
            ExpressionAttributeValues=used,
        )
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert message in e.value.response["Error"]["Message"]


def test_writes_move_items_between_index_keys(ddb: Any, matches: tuple[str, list[dict]]) -> None:
    t, indexed = matches
    first = indexed[0]["id"]
    ddb.update_item(
        TableName=t,
        Key={"id": first},
        UpdateExpression="SET #r = :r",
        ExpressionAttributeNames={"#r": "rnd"},
        ExpressionAttributeValues={":r": {"N": "99"}},
    )
    ddb.update_item(TableName=t, Key={"id": indexed[1]["id"]}, UpdateExpression="REMOVE tag")
    ddb.delete_item(TableName=t, Key={"id": indexed[2]["id"]})
    got = _ids(_query(ddb, t, "tour = :t AND season = :s AND area = :r", {":r": indexed[0]["area"]}))
    moved = dict(indexed[0], rnd={"N": "99"})
    want = sorted([x for x in indexed[3:] if x["area"] == indexed[0]["area"]] + [moved], key=_sort_key)
    assert got == _ids(want)
    assert ddb.describe_table(TableName=t)["Table"]["GlobalSecondaryIndexes"][0]["ItemCount"] == 44
    with pytest.raises(ClientError, match="Type mismatch for Index Key rnd Expected: N Actual: S"):
        ddb.put_item(TableName=t, Item={**_item(1), "rnd": {"S": "x"}})


def test_gsi_added_later_is_backfilled(ddb: Any, make_table: Any) -> None:
    t = make_table(("id", "S"))
    items = [_item(i) for i in range(20)]
    for x in items:
        ddb.put_item(TableName=t, Item=x)
    ddb.update_table(
        TableName=t,
        AttributeDefinitions=DEFS,
        GlobalSecondaryIndexUpdates=[{"Create": {**GSI, "Projection": {"ProjectionType": "ALL"}}}],
    )
    desc = ddb.describe_table(TableName=t)["Table"]
    assert desc["GlobalSecondaryIndexes"][0]["KeySchema"] == GSI["KeySchema"]
    assert {d["AttributeName"] for d in desc["AttributeDefinitions"]} == {"id"} | {
        d["AttributeName"] for d in DEFS
    }
    want = sorted((x for x in items if "tag" in x), key=_sort_key)
    got = _query(ddb, t, "tour = :t AND season = :s", {})
    assert got == want  # ALL projection: the whole items


def test_partiql_select_uses_the_multi_attribute_key(ddb: Any, matches: tuple[str, list[dict]]) -> None:
    t, indexed = matches
    stmt = f'SELECT id FROM "{t}"."matches" WHERE tour = ? AND season = ? AND area = ? AND rnd > ?'
    params = [{"S": "cup"}, {"N": "2025"}, {"S": "eu"}, {"N": "0"}]
    got = ddb.execute_statement(Statement=stmt, Parameters=params)["Items"]
    want = [x for x in indexed if _sort_key(x)[0] == b"eu" and _sort_key(x)[1] > 0]
    assert _ids(got) == _ids(want)
    # A gap in the sort-key attributes is still answered (by a scan of the index), correctly.
    stmt = f'SELECT id FROM "{t}"."matches" WHERE tour = ? AND season = ? AND rnd = ?'
    got = ddb.execute_statement(Statement=stmt, Parameters=[{"S": "cup"}, {"N": "2025"}, {"N": "1"}])["Items"]
    assert sorted(_ids(got)) == sorted(x["id"]["S"] for x in indexed if _sort_key(x)[1] == 1)


def _create(ddb: Any, name: str, key_schema: list[dict], lsi: bool = False) -> None:
    names = {k["AttributeName"] for k in key_schema} | {"id", "sk"}
    spec = {"IndexName": "idx", "KeySchema": key_schema, "Projection": {"ProjectionType": "ALL"}}
    ddb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in sorted(names)],
        **({"LocalSecondaryIndexes": [spec]} if lsi else {"GlobalSecondaryIndexes": [spec]}),
    )


def _ks(*spec: str) -> list[dict]:
    return [{"AttributeName": s.split(":")[0], "KeyType": s.split(":")[1]} for s in spec]


@pytest.mark.parametrize(
    "key_schema, lsi, message",
    [
        (_ks("a:HASH", "b:HASH", "c:HASH", "d:HASH", "e:HASH"), False, "at most 4 HASH"),
        (_ks("a:HASH", "b:RANGE", "c:RANGE", "d:RANGE", "e:RANGE", "f:RANGE"), False, "at most 4 RANGE"),
        (_ks("a:HASH", "b:RANGE", "c:HASH"), False, "HASH KeySchemaElements must come before"),
        (_ks("a:RANGE", "b:HASH"), False, "The first KeySchemaElement is not a HASH key type"),
        (_ks("a:HASH", "b:RANGE", "a:RANGE"), False, "Duplicate attribute name in KeySchema: a"),
        (_ks("id:HASH", "b:RANGE", "c:RANGE"), True, "Member must have length less than or equal to 2"),
        (_ks("id:HASH", "b:HASH"), True, "The second KeySchemaElement is not a RANGE key type"),
    ],
)
def test_key_schema_rules(ddb: Any, unique: str, key_schema: list[dict], lsi: bool, message: str) -> None:
    with pytest.raises(ClientError) as e:
        _create(ddb, f"ks-{unique}", key_schema, lsi)
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert message in e.value.response["Error"]["Message"]


def test_table_key_schema_stays_two_elements(ddb: Any, unique: str) -> None:
    with pytest.raises(ClientError, match="Member must have length less than or equal to 2"):
        ddb.create_table(
            TableName=f"tk-{unique}",
            BillingMode="PAY_PER_REQUEST",
            KeySchema=_ks("a:HASH", "b:RANGE", "c:RANGE"),
            AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in "abc"],
        )
    with pytest.raises(ClientError, match="The second KeySchemaElement is not a RANGE key type"):
        ddb.create_table(
            TableName=f"tk-{unique}",
            BillingMode="PAY_PER_REQUEST",
            KeySchema=_ks("a:HASH", "b:HASH"),
            AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in "ab"],
        )
