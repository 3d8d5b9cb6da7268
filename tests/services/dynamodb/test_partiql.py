"""PartiQL for DynamoDB through boto3: ExecuteStatement, BatchExecuteStatement, ExecuteTransaction.

Each statement kind, parameters, NextToken paging, DynamoDB's error codes and messages, and the
per-statement (batch) and all-or-nothing (transaction) semantics.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

MALFORMED = "Statement wasn't well formed, can't be processed: "


def run(ddb: Any, statement: str, *params: dict, **kw: Any) -> dict:
    if params:
        kw["Parameters"] = list(params)
    return ddb.execute_statement(Statement=statement, **kw)


def error(ddb: Any, statement: str, *params: dict, **kw: Any) -> tuple[str, str, dict]:
    with pytest.raises(ClientError) as e:
        run(ddb, statement, *params, **kw)
    err = e.value.response["Error"]
    return err["Code"], err["Message"], e.value.response


def S(v: str) -> dict:  # noqa: N802 - AttributeValue spelling
    return {"S": v}


def N(v: int | str) -> dict:  # noqa: N802
    return {"N": str(v)}


@pytest.fixture
def songs(ddb: Any, make_table: Any) -> str:
    """A (pk S, sk N) table holding a few items of two partitions."""
    t = make_table(("pk", "S"), ("sk", "N"))
    for sk in range(1, 6):
        run(
            ddb,
            f"INSERT INTO \"{t}\" VALUE {{'pk': 'a', 'sk': {sk}, 'title': ?, 'tags': <<'x', 't{sk}'>>, "
            f"'m': {{'n': {sk * 10}, 'l': [{sk}, 'two']}}}}",
            S(f"song {sk}"),
        )
    run(ddb, f"INSERT INTO \"{t}\" VALUE {{'pk': 'b', 'sk': 1, 'title': 'other', 'extra': null}}")
    return t


def test_insert_then_select_by_key_and_insert_is_not_an_upsert(ddb: Any, songs: str) -> None:
    got = run(ddb, f"SELECT * FROM \"{songs}\" WHERE pk = 'a' AND sk = 2")
    assert got["Items"] == [
        {
            "pk": S("a"),
            "sk": N(2),
            "title": S("song 2"),
            "tags": {"SS": ["x", "t2"]},
            "m": {"M": {"n": N(20), "l": {"L": [N(2), S("two")]}}},
        }
    ]
    assert run(ddb, f"SELECT * FROM \"{songs}\" WHERE pk = 'a' AND sk = 99")["Items"] == []
    code, message, _ = error(ddb, f"INSERT INTO \"{songs}\" VALUE {{'pk': 'a', 'sk': 2, 'title': 'new'}}")
    assert (code, message) == ("DuplicateItemException", "Duplicate primary key exists in table")
    item = ddb.get_item(TableName=songs, Key={"pk": S("a"), "sk": N(2)})["Item"]
    assert item["title"] == S("song 2")  # not overwritten
    assert run(ddb, f"INSERT INTO \"{songs}\" VALUE {{'pk': 'c', 'sk': 1}}")["Items"] == []


def test_select_where_forms_and_projections(ddb: Any, songs: str) -> None:
    def keys(statement: str, *params: dict) -> list[tuple[str, int]]:
        items = run(ddb, statement, *params)["Items"]
        return sorted((i["pk"]["S"], int(i["sk"]["N"])) for i in items)

    t = f'"{songs}"'
    a = [("a", n) for n in range(1, 6)]
    assert keys(f"SELECT * FROM {t} WHERE pk = 'a'") == a
    assert keys(f"SELECT * FROM {t} WHERE pk = 'a' AND sk > 3") == a[3:]
    assert keys(f"SELECT * FROM {t} WHERE pk = ? AND sk BETWEEN ? AND ?", S("a"), N(2), N(3)) == a[1:3]
    assert keys(f"SELECT * FROM {t} WHERE pk = 'a' AND m.n >= 40") == a[3:]
    assert keys(f"SELECT * FROM {t} WHERE m.l[0] <= 2") == a[:2]
    assert keys(f"SELECT * FROM {t} WHERE sk IN (1, 4) AND pk <> 'b'") == [("a", 1), ("a", 4)]
    assert keys(f"SELECT * FROM {t} WHERE pk = 'b' OR sk = 5") == [("a", 5), ("b", 1)]
    assert keys(f"SELECT * FROM {t} WHERE NOT (pk = 'a')") == [("b", 1)]
    assert keys(f"SELECT * FROM {t} WHERE NOT (pk = 'b' OR sk < 5)") == [("a", 5)]
    assert keys(f"SELECT * FROM {t} WHERE begins_with(title, 'oth')") == [("b", 1)]
    assert keys(f"SELECT * FROM {t} WHERE contains(tags, 't3')") == [("a", 3)]
    assert keys(f"SELECT * FROM {t} WHERE attribute_type(extra, 'NULL')") == [("b", 1)]
    assert keys(f"SELECT * FROM {t} WHERE extra IS NULL") == [("b", 1)]
    assert keys(f"SELECT * FROM {t} WHERE exists(m)") == a
    assert keys(f"SELECT * FROM {t} WHERE missing(m)") == [("b", 1)]
    assert keys(f"SELECT * FROM {t} WHERE tags IS MISSING") == [("b", 1)]
    assert keys(f"SELECT * FROM {t} WHERE tags IS NOT MISSING AND size(tags) = 2 AND sk < 3") == a[:2]
    assert keys(f"SELECT * FROM {t} WHERE pk = 'a' AND sk NOT BETWEEN 2 AND 4") == [("a", 1), ("a", 5)]
    # A nested path's value is named by its last step (by its position after a list index).
    got = run(ddb, f"SELECT title, m.l[1], \"m\".n FROM {t} WHERE pk = 'a' AND sk = 3")["Items"]
    assert got == [{"title": S("song 3"), "_2": S("two"), "n": N(30)}]
    got = run(ddb, f"SELECT title, m FROM {t} WHERE pk = 'a' AND sk = 3")["Items"]
    assert got == [{"title": S("song 3"), "m": {"M": {"n": N(30), "l": {"L": [N(3), S("two")]}}}}]
    code, message, _ = error(ddb, f"SELECT m.n, n FROM {t}")
    assert message == "Duplicate identifiers in select clause: n"
    got = run(ddb, f"SELECT sk FROM {t} WHERE pk = 'a' ORDER BY sk DESC")["Items"]
    assert [i["sk"]["N"] for i in got] == ["5", "4", "3", "2", "1"]


def test_select_on_an_index_and_consistent_read(ddb: Any, make_table: Any) -> None:
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
    for pk, g in (("1", "x"), ("2", "x"), ("3", "y")):
        run(ddb, f"INSERT INTO \"{t}\" VALUE {{'pk': ?, 'g': ?}}", S(pk), S(g))
    got = run(ddb, f'SELECT pk FROM "{t}"."by-g" WHERE g = \'x\'')["Items"]
    assert sorted(i["pk"]["S"] for i in got) == ["1", "2"]
    code, message, _ = error(ddb, f'SELECT * FROM "{t}"."by-g" WHERE g = \'x\'', ConsistentRead=True)
    assert (code, message) == (
        "ValidationException",
        "Strongly consistent read is not supported on Global Secondary Indexes",
    )
    got = run(
        ddb, f"SELECT * FROM \"{t}\" WHERE pk = '3'", ConsistentRead=True, ReturnConsumedCapacity="TOTAL"
    )
    assert got["Items"] == [{"pk": S("3"), "g": S("y")}]
    assert got["ConsumedCapacity"] == {"TableName": t, "CapacityUnits": 1.0}


def test_update_forms_and_returning(ddb: Any, make_table: Any) -> None:
    t = make_table(("pk", "S"))
    run(
        ddb,
        f"INSERT INTO \"{t}\" VALUE {{'pk': 'k', 'n': 1, 'l': [1], 's': <<'a', 'b'>>, 'm': {{'x': 'old', 'y': 'y'}}, "
        "'gone': true}",
    )
    got = run(
        ddb,
        f"UPDATE \"{t}\" SET n = n + ?, l = list_append(l, [2, 3]), m.x = 'new' SET s = set_add(s, <<'c'>>) "
        "REMOVE gone WHERE pk = 'k' RETURNING ALL NEW *",
        N(4),
    )
    assert got["Items"] == [
        {
            "pk": S("k"),
            "n": N(5),
            "l": {"L": [N(1), N(2), N(3)]},
            "s": {"SS": ["a", "b", "c"]},
            "m": {"M": {"x": S("new"), "y": S("y")}},
        }
    ]
    got = run(
        ddb, f"UPDATE \"{t}\" SET s = set_delete(s, <<'a'>>), n = n - 1 WHERE pk = 'k' RETURNING ALL OLD *"
    )
    assert got["Items"][0]["n"] == N(5) and got["Items"][0]["s"] == {"SS": ["a", "b", "c"]}
    got = run(ddb, f"UPDATE \"{t}\" SET n = 10 WHERE pk = 'k' RETURNING MODIFIED OLD *")
    assert got["Items"] == [{"n": N(4)}]
    got = run(ddb, f"UPDATE \"{t}\" SET n = 11 WHERE pk = 'k' RETURNING MODIFIED NEW *")
    assert got["Items"] == [{"n": N(11)}]
    # MODIFIED is the touched paths only: a nested leaf without its siblings; nothing, no row
    got = run(ddb, f"UPDATE \"{t}\" SET m.x = 'newer' WHERE pk = 'k' RETURNING MODIFIED OLD *")
    assert got["Items"] == [{"m": {"M": {"x": S("new")}}}]
    got = run(ddb, f"UPDATE \"{t}\" REMOVE m.y WHERE pk = 'k' RETURNING MODIFIED NEW *")
    assert got["Items"] == []
    got = run(ddb, f"UPDATE \"{t}\" SET fresh = 1 WHERE pk = 'k' RETURNING MODIFIED OLD *")
    assert got["Items"] == []
    assert run(ddb, f"UPDATE \"{t}\" SET n = 12 WHERE pk = 'k'")["Items"] == []
    # The WHERE beyond the key is a condition; UPDATE never creates an item.
    code, message, resp = error(
        ddb,
        f"UPDATE \"{t}\" SET n = 0 WHERE pk = 'k' AND n = 1",
        ReturnValuesOnConditionCheckFailure="ALL_OLD",
    )
    assert (code, message) == ("ConditionalCheckFailedException", "The conditional request failed")
    assert resp["Item"]["n"] == N(12)
    code, _, _ = error(ddb, f"UPDATE \"{t}\" SET n = 0 WHERE pk = 'nope'")
    assert code == "ConditionalCheckFailedException"
    assert "Item" not in ddb.get_item(TableName=t, Key={"pk": S("nope")})
    code, message, _ = error(ddb, f'UPDATE "{t}" SET n = 0 WHERE n = 12')
    assert (code, message) == (
        "ValidationException",
        "Where clause does not contain a mandatory equality on all key attributes",
    )
    code, message, _ = error(ddb, f"UPDATE \"{t}\" SET pk = 'z' WHERE pk = 'k'")
    assert (
        message
        == "One or more parameter values were invalid: Cannot update attribute pk. This attribute is part of the key"
    )


def test_delete_and_returning(ddb: Any, make_table: Any) -> None:
    t = make_table(("pk", "S"), ("sk", "S"))
    run(ddb, f"INSERT INTO \"{t}\" VALUE {{'pk': 'p', 'sk': 's', 'v': 1}}")
    code, message, _ = error(ddb, f"DELETE FROM \"{t}\" WHERE pk = 'p'")
    assert message == "Where clause does not contain a mandatory equality on all key attributes"
    code, message, _ = error(ddb, f"DELETE FROM \"{t}\" WHERE pk = 'p' AND sk = 's' RETURNING ALL NEW *")
    assert message == (
        "Invalid returning clause: RETURNING ALL NEW *. Only RETURNING ALL OLD * is allowed in DELETE statements."
    )
    code, _, _ = error(ddb, f"DELETE FROM \"{t}\" WHERE pk = 'p' AND sk = 's' AND v = 2")
    assert code == "ConditionalCheckFailedException"
    got = run(ddb, f"DELETE FROM \"{t}\" WHERE pk = 'p' AND sk = 's' AND v = 1 RETURNING ALL OLD *")
    assert got["Items"] == [{"pk": S("p"), "sk": S("s"), "v": N(1)}]
    assert run(ddb, f"DELETE FROM \"{t}\" WHERE pk = 'p' AND sk = 's' RETURNING ALL OLD *")["Items"] == []
    assert ddb.scan(TableName=t)["Count"] == 0


def test_parameters_and_statement_errors(ddb: Any, songs: str) -> None:
    t = f'"{songs}"'
    code, message, _ = error(ddb, f"SELECT * FROM {t} WHERE pk = ? AND sk = ?", S("a"))
    assert (code, message) == (
        "ValidationException",
        "Number of parameters in request and statement don't match.",
    )
    code, message, _ = error(ddb, f"SELECT * FROM {t} WHERE pk = 'a'", S("extra"))
    assert message == "Number of parameters in request and statement don't match."
    for bad in ("SELEC * FROM t", f"SELECT * FROM {t} WHERE", f"SELECT * FROM {t} WHERE pk = 'a", "DELETE t"):
        code, message, _ = error(ddb, bad)
        assert code == "ValidationException" and message.startswith(MALFORMED), (bad, message)
    code, message, _ = error(ddb, 'SELECT * FROM "no-such-table"')
    assert code == "ResourceNotFoundException"
    code, message, _ = error(ddb, f"EXISTS(SELECT * FROM {t} WHERE pk = 'a' AND sk = 1)")
    assert message == "EXISTS can only be used in ExecuteTransaction write requests."
    code, message, _ = error(ddb, f"SELECT title AS t, sk FROM {t}")
    assert message == "Aliasing is not supported"
    code, message, _ = error(ddb, f"SELECT *, title FROM {t}")
    assert message == "Other attributes should not be present in the projection when '*' is used."
    code, message, _ = error(ddb, f"INSERT INTO {t} VALUE {{'pk': 'z', 'sk': 1}} RETURNING ALL OLD *")
    assert message == "RETURNING is not supported in INSERT"


def test_next_token_pages_through_a_query_and_a_scan(ddb: Any, make_table: Any) -> None:
    t = make_table(("pk", "S"), ("sk", "N"))
    for i in range(7):
        ddb.put_item(TableName=t, Item={"pk": S("p" if i < 5 else "q"), "sk": N(i)})
    for statement, expected in (
        (f"SELECT sk FROM \"{t}\" WHERE pk = 'p'", [0, 1, 2, 3, 4]),
        (f'SELECT sk FROM "{t}"', list(range(7))),
    ):
        seen: list[int] = []
        token = None
        pages = 0
        while True:
            kw: dict = {"Limit": 2}
            if token:
                kw["NextToken"] = token
            page = run(ddb, statement, **kw)
            pages += 1
            assert len(page["Items"]) <= 2
            seen += [int(i["sk"]["N"]) for i in page["Items"]]
            token = page.get("NextToken")
            if not token:
                assert "LastEvaluatedKey" not in page
                break
            assert int(page["LastEvaluatedKey"]["sk"]["N"]) == seen[-1]
            assert pages < 10
        assert sorted(seen) == expected
        assert pages >= 3
    # pk IN (...): one Query per partition (in the order listed), Limit and NextToken across them
    statement = f"SELECT pk, sk FROM \"{t}\" WHERE pk IN ('q', 'p', 'none', 'q') AND sk > 0"
    whole = run(ddb, statement, ReturnConsumedCapacity="TOTAL")
    assert [(i["pk"]["S"], int(i["sk"]["N"])) for i in whole["Items"]] == [
        ("q", 5),
        ("q", 6),
        ("p", 1),
        ("p", 2),
        ("p", 3),
        ("p", 4),
    ]
    assert "NextToken" not in whole
    assert whole["ConsumedCapacity"]["CapacityUnits"] == 1.5  # three Queries of half a unit each
    seen, token, pages = [], None, 0
    while True:
        page = run(ddb, statement, Limit=3, **({"NextToken": token} if token else {}))
        pages += 1
        seen += [(i["pk"]["S"], int(i["sk"]["N"])) for i in page["Items"]]
        token = page.get("NextToken")
        if not token or pages > 10:
            break
    assert seen == [(i["pk"]["S"], int(i["sk"]["N"])) for i in whole["Items"]]
    assert pages >= 3
    # pk = a OR pk = b is the same decomposition (Queries in the order named), not a scan
    ored = run(
        ddb,
        f"SELECT pk, sk FROM \"{t}\" WHERE (pk = 'q' OR 'p' = pk OR pk = 'none') AND sk > 0",
        ReturnConsumedCapacity="TOTAL",
    )
    assert ored["Items"] == whole["Items"]
    assert ored["ConsumedCapacity"]["CapacityUnits"] == 1.5
    first = run(ddb, f"SELECT sk FROM \"{t}\" WHERE pk = 'p'", Limit=2)
    code, message, _ = error(ddb, f"SELECT * FROM \"{t}\" WHERE pk = 'p'", NextToken=first["NextToken"])
    assert (code, message) == ("ValidationException", "NextToken does not match request")
    code, message, _ = error(ddb, f"SELECT sk FROM \"{t}\" WHERE pk = 'p'", NextToken="garbage!!")
    assert (code, message) == ("ValidationException", "Invalid NextToken")


def test_batch_execute_statement(ddb: Any, make_table: Any) -> None:
    t = make_table(("pk", "S"))
    run(ddb, f"INSERT INTO \"{t}\" VALUE {{'pk': 'old', 'v': 1}}")
    out = ddb.batch_execute_statement(
        Statements=[
            {"Statement": f"INSERT INTO \"{t}\" VALUE {{'pk': ?, 'v': 2}}", "Parameters": [S("new")]},
            {"Statement": f"INSERT INTO \"{t}\" VALUE {{'pk': 'old'}}"},
            {
                "Statement": f"UPDATE \"{t}\" SET v = 5 WHERE pk = 'old' AND v = 9",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            },
            {"Statement": f"DELETE FROM \"{t}\" WHERE pk = 'gone-anyway'"},
            {"Statement": f"UPDATE \"{t}\" SET v = v + 1 WHERE pk = 'old' RETURNING ALL NEW *"},
            {"Statement": "INSERT INTO \"no-such-table\" VALUE {'pk': 'x'}"},
            {"Statement": "UPDATE nonsense"},
        ],
        ReturnConsumedCapacity="TOTAL",
    )
    r = out["Responses"]
    assert r[0] == {"TableName": t}
    assert r[1]["Error"] == {"Code": "DuplicateItem", "Message": "Duplicate primary key exists in table"}
    assert r[2]["Error"]["Code"] == "ConditionalCheckFailed"
    assert r[2]["Error"]["Item"] == {"pk": S("old"), "v": N(1)}
    assert r[3] == {"TableName": t}
    assert r[4] == {"TableName": t, "Item": {"pk": S("old"), "v": N(2)}}
    assert r[5]["Error"]["Code"] == "ResourceNotFound"
    assert r[6]["Error"]["Code"] == "ValidationError" and r[6]["Error"]["Message"].startswith(MALFORMED)
    assert out["ConsumedCapacity"] == [{"TableName": t, "CapacityUnits": 3.0}]
    reads = ddb.batch_execute_statement(
        Statements=[
            {"Statement": f'SELECT v FROM "{t}" WHERE pk = ?', "Parameters": [S("new")]},
            {"Statement": f"SELECT * FROM \"{t}\" WHERE pk = 'missing'", "ConsistentRead": True},
            {"Statement": f'SELECT * FROM "{t}" WHERE v = 2'},
        ]
    )["Responses"]
    assert reads[0] == {"TableName": t, "Item": {"v": N(2)}}
    assert reads[1] == {"TableName": t}
    assert reads[2]["Error"] == {
        "Code": "ValidationError",
        "Message": "Select statements within BatchExecuteStatement must specify the primary key in the where clause.",
    }
    with pytest.raises(ClientError) as e:
        ddb.batch_execute_statement(
            Statements=[{"Statement": f"SELECT * FROM \"{t}\" WHERE pk = '{i}'"} for i in range(26)]
        )
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert "less than or equal to 25" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        ddb.batch_execute_statement(
            Statements=[
                {"Statement": f"SELECT * FROM \"{t}\" WHERE pk = 'old'"},
                {"Statement": f"DELETE FROM \"{t}\" WHERE pk = 'old'"},
            ]
        )
    assert e.value.response["Error"] == {
        "Code": "ValidationException",
        "Message": "Read and write requests together in the same batch is not supported.",
    }
    assert ddb.get_item(TableName=t, Key={"pk": S("old")})["Item"]["v"] == N(2)


def test_execute_transaction_all_or_nothing(ddb: Any, make_table: Any) -> None:
    # (ClientRequestTokens are per account and region: unique ones keep the shared server's
    # other tests unaffected)
    t = make_table(("pk", "S"))
    run(ddb, f"INSERT INTO \"{t}\" VALUE {{'pk': 'a', 'v': 1}}")
    run(ddb, f"INSERT INTO \"{t}\" VALUE {{'pk': 'b', 'v': 1}}")
    run(ddb, f"INSERT INTO \"{t}\" VALUE {{'pk': 'd', 'v': 1}}")
    with pytest.raises(ClientError) as e:
        ddb.execute_transaction(
            TransactStatements=[
                {"Statement": f"INSERT INTO \"{t}\" VALUE {{'pk': 'c'}}"},
                {"Statement": f"INSERT INTO \"{t}\" VALUE {{'pk': 'a'}}"},
                {
                    "Statement": f"UPDATE \"{t}\" SET v = 2 WHERE pk = 'b' AND v = 7",
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                },
                {"Statement": f"EXISTS(SELECT * FROM \"{t}\" WHERE pk = 'd' AND v = 1)"},
            ]
        )
    err = e.value.response
    assert err["Error"]["Code"] == "TransactionCanceledException", err["Error"]
    assert err["CancellationReasons"] == [
        {"Code": "None"},
        {"Code": "DuplicateItem", "Message": "Duplicate primary key exists in table"},
        {
            "Code": "ConditionalCheckFailed",
            "Message": "The conditional request failed",
            "Item": {"pk": S("b"), "v": N(1)},
        },
        {"Code": "None"},
    ]
    assert "Item" not in ddb.get_item(TableName=t, Key={"pk": S("c")})
    writes = [
        {"Statement": f"INSERT INTO \"{t}\" VALUE {{'pk': ?}}", "Parameters": [S("c")]},
        {"Statement": f"UPDATE \"{t}\" SET v = v + 1 WHERE pk = 'a'"},
        {"Statement": f"DELETE FROM \"{t}\" WHERE pk = 'b'"},
    ]
    for _ in range(2):  # the same ClientRequestToken: done once
        ddb.execute_transaction(TransactStatements=writes, ClientRequestToken=f"token-{t}")
    got = ddb.execute_transaction(
        TransactStatements=[
            {"Statement": f"SELECT v FROM \"{t}\" WHERE pk = 'a'"},
            {"Statement": f"SELECT * FROM \"{t}\" WHERE pk = 'b'"},
            {"Statement": f'SELECT * FROM "{t}" WHERE pk = ?', "Parameters": [S("c")]},
        ]
    )
    assert got["Responses"] == [{"Item": {"v": N(2)}}, {}, {"Item": {"pk": S("c")}}]
    for statements, message in (
        (
            [f"SELECT * FROM \"{t}\" WHERE pk = 'a'", f"DELETE FROM \"{t}\" WHERE pk = 'a'"],
            "ExecuteTransaction API does not support both read and write operations in the same request.",
        ),
        (
            [
                f"DELETE FROM \"{t}\" WHERE pk = 'a'",
                f"DELETE FROM \"{t}\" WHERE pk = 'c' RETURNING ALL OLD *",
            ],
            "Validation failed in TransactStatements[1]: RETURNING clause is not supported in ExecuteTransaction.",
        ),
        (
            [f"SELECT * FROM \"{t}\" WHERE pk = 'a' AND v = 2"],
            "Validation failed in TransactStatements[0]: Select statements within ExecuteTransaction must specify "
            "the primary key in the where clause.",
        ),
    ):
        with pytest.raises(ClientError) as e:
            ddb.execute_transaction(TransactStatements=[{"Statement": s} for s in statements])
        assert e.value.response["Error"] == {"Code": "ValidationException", "Message": message}
    assert ddb.get_item(TableName=t, Key={"pk": S("a")})["Item"]["v"] == N(2)
    with pytest.raises(ClientError) as e:
        ddb.execute_transaction(
            TransactStatements=[
                {"Statement": f"EXISTS(SELECT * FROM \"{t}\" WHERE pk = 'a' AND v = 99)"},
                {"Statement": f"DELETE FROM \"{t}\" WHERE pk = 'c'"},
            ],
            ReturnConsumedCapacity="TOTAL",
        )
    assert [r["Code"] for r in e.value.response["CancellationReasons"]] == ["ConditionalCheckFailed", "None"]
    got = ddb.execute_transaction(
        TransactStatements=[
            {"Statement": f"EXISTS(SELECT * FROM \"{t}\" WHERE pk = 'a' AND v = 2)"},
            {"Statement": f"DELETE FROM \"{t}\" WHERE pk = 'c'"},
        ],
        ReturnConsumedCapacity="TOTAL",
    )
    assert got["ConsumedCapacity"] == [{"TableName": t, "CapacityUnits": 4.0}]
    assert "Item" not in ddb.get_item(TableName=t, Key={"pk": S("c")})


HOSTILE = [
    " ",
    ";",
    "SELECT",
    "SELECT * FROM",
    "SELECT * FROM {t} WHERE (((pk = 'a')",
    "SELECT * FROM {t} WHERE " + "(" * 500 + "pk = 'a'" + ")" * 500,
    "SELECT * FROM {t} WHERE " + " AND ".join(["pk = 'a'"] * 600),
    "SELECT * FROM {t} WHERE " + "NOT " * 400 + "pk = 'a'",
    "SELECT * FROM {t} WHERE pk IN (" + ", ".join(["'x'"] * 150) + ")",
    "SELECT * FROM {t} WHERE exists(1)",
    "SELECT * FROM {t} WHERE begins_with(pk)",
    "SELECT * FROM {t} WHERE frobnicate(pk)",
    "SELECT * FROM {t} WHERE pk = MISSING",
    "SELECT * FROM {t} WHERE 1 IS MISSING",
    "SELECT * FROM {t} WHERE pk IS WIBBLE",
    "SELECT * FROM {t} WHERE pk < true",
    "SELECT * FROM {t} WHERE pk = 'a' AND sk = 'not a number'",
    "SELECT a[*] FROM {t}",
    "SELECT * FROM {t}.x.y",
    "SELECT * FROM {t} ORDER BY title",
    "SELECT * FROM {t}, {t}",
    "INSERT INTO {t} VALUE 'scalar'",
    "INSERT INTO {t} VALUE {{'pk': 'a', 'pk': 'b'}}",
    "INSERT INTO {t} VALUE {{'sk': 1}}",
    "INSERT INTO {t} VALUE {{'pk': 'z', 'sk': 1, 's': <<>>}}",
    "INSERT INTO {t} VALUE {{'pk': 'z', 'sk': 1, 's': <<1, 'a'>>}}",
    "INSERT INTO {t} VALUE {{'pk': 'z', 'sk': 1, 'x': " + "[" * 80 + "]" * 80 + "}}",
    "INSERT INTO {t} VALUE <<{{'pk': 'z', 'sk': 1}}>>",
    "UPDATE {t} SET title = 'x'",
    "UPDATE {t} WHERE pk = 'a' AND sk = 1",
    "UPDATE {t} SET tags = set_add(title, <<'q'>>) WHERE pk = 'a' AND sk = 1",
    "UPDATE {t} SET tags = set_add(tags, 'q') WHERE pk = 'a' AND sk = 1",
    "UPDATE {t} SET title = title + 1 WHERE pk = 'a' AND sk = 1",
    "UPDATE {t} SET title = 1 WHERE pk = 'a' AND pk = 'b' AND sk = 1",
    "DELETE FROM {t} WHERE pk = 'a' OR sk = 1",
    "DELETE FROM {t}.idx WHERE pk = 'a' AND sk = 1",
    "SELECT * FROM {t} WHERE pk = 'a' SELECT",
    "SELECT * FROM {t} WHERE title = 'unterminated",
    'SELECT * FROM "unterminated',
    "SELECT * FROM {t} WHERE pk = 'a' \x00",
]


def test_hostile_statements_are_client_errors(ddb: Any, songs: str) -> None:
    for template in HOSTILE:
        statement = template.format(t=f'"{songs}"')
        with pytest.raises(ClientError) as e:
            run(ddb, statement)
        status = e.value.response["ResponseMetadata"]["HTTPStatusCode"]
        assert status == 400, (statement[:80], e.value.response["Error"])
        assert e.value.response["Error"]["Code"] in (
            "ValidationException",
            "ConditionalCheckFailedException",
        ), (
            statement[:80],
            e.value.response["Error"],
        )
    assert ddb.scan(TableName=songs, Select="COUNT")["Count"] == 6  # nothing written
