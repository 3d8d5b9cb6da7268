"""The expression engine (lexer -> AST -> validate -> evaluate), without a server."""

from __future__ import annotations

import pytest

from strata.protocol.errors import ServiceError
from strata.services.dynamodb.expressions import ast
from strata.services.dynamodb.expressions.evaluate import Env, condition, project
from strata.services.dynamodb.expressions.parser import parse
from strata.services.dynamodb.expressions.reserved import RESERVED_WORDS, is_reserved
from strata.services.dynamodb.expressions.update import apply
from strata.services.dynamodb.expressions.validate import prepare

ITEM = {
    "id": {"S": "u1"},
    "name": {"S": "Ada Lovelace"},
    "age": {"N": "36"},
    "tags": {"SS": ["math", "poetry"]},
    "scores": {"L": [{"N": "1"}, {"N": "5"}, {"N": "9"}]},
    "address": {"M": {"city": {"S": "London"}, "zip": {"S": "N1"}}},
    "bin": {"B": b"\x00\x01\x02"},
    "flag": {"BOOL": True},
}
VALUES = {
    ":a": {"N": "30"},
    ":b": {"N": "40"},
    ":c": {"S": "London"},
    ":p": {"S": "Ada"},
    ":t": {"S": "math"},
    ":ty": {"S": "SS"},
    ":n3": {"N": "3"},
    ":five": {"N": "5"},
}


def ev(text: str, names: dict | None = None, item: dict | None = ITEM) -> bool:
    return condition(parse("ConditionExpression", text).tree, item, Env(names or {}, VALUES))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("age BETWEEN :a AND :b", True),
        ("age > :b OR address.city = :c", True),
        ("NOT age > :b AND begins_with(#n, :p)", True),
        ("(age < :a OR age > :b) AND flag = flag", False),
        ("contains(tags, :t) AND attribute_type(tags, :ty)", True),
        ("size(scores) = :n3 AND scores[1] = :five", True),
        ("attribute_exists(address.zip) AND attribute_not_exists(address.street)", True),
        ("age IN (:a, :b, :five)", False),
        ("scores[7] <> :a", True),  # a missing operand is unequal to anything
        ("scores[7] < :a", False),
        ("size(bin) = :n3", True),
        ("NOT NOT age = age", True),
        ("NOT (age < :a OR age > :b)", True),  # NOT before a parenthesis negates it (no function NOT)
        ("NOT(age > :a)", False),
    ],
)
def test_conditions(text: str, expected: bool) -> None:
    assert ev(text, {"#n": "name"}) is expected


def test_precedence_not_binds_tighter_than_and_and_and_tighter_than_or() -> None:
    tree = parse("ConditionExpression", "NOT a = :x AND b = :x OR c = :x").tree
    assert isinstance(tree, ast.Or)
    assert isinstance(tree.left, ast.And) and isinstance(tree.left.left, ast.Not)


@pytest.mark.parametrize(
    "kind, text, message",
    [
        (
            "ProjectionExpression",
            "order_id, #s, total",
            "Invalid ProjectionExpression: Attribute name is a reserved keyword; reserved keyword: total",
        ),
        (
            "ConditionExpression",
            "status = :s",
            "Invalid ConditionExpression: Attribute name is a reserved keyword; reserved keyword: status",
        ),
        (
            "ConditionExpression",
            "a = ",
            'Invalid ConditionExpression: Syntax error; token: "<EOF>", near: "= "',
        ),
        ("ConditionExpression", "a b", 'Invalid ConditionExpression: Syntax error; token: "b", near: "a b"'),
        (
            "ConditionExpression",
            "foo(a)",
            "Invalid ConditionExpression: Invalid function name; function: foo",
        ),
        (
            "ConditionExpression",
            "size(a)",
            "Invalid ConditionExpression: The function is not allowed to be used this way in an expression; function: size",
        ),
        (
            "UpdateExpression",
            "SET a = :a SET b = :b",
            'Invalid UpdateExpression: The "SET" section can only be used once in an update expression;',
        ),
        ("UpdateExpression", "", "Invalid UpdateExpression: The expression can not be empty;"),
        (
            "ConditionExpression",
            "a = :a @",
            'Invalid ConditionExpression: Syntax error; token: "@", near: " @"',
        ),
    ],
)
def test_syntax_and_reserved_errors(kind: str, text: str, message: str) -> None:
    with pytest.raises(ServiceError) as e:
        parse(kind, text)
    assert e.value.code == "ValidationException"
    assert e.value.message == message


def test_reserved_words_list_is_complete_and_case_insensitive() -> None:
    assert len(RESERVED_WORDS) == 573
    assert is_reserved("status") and is_reserved("Total") and not is_reserved("order_id")


@pytest.mark.parametrize(
    "req, message",
    [
        (
            {"ConditionExpression": "#a = :v", "ExpressionAttributeValues": {":v": {"S": "x"}}},
            "Invalid ConditionExpression: An expression attribute name used in the document path is not defined; "
            "attribute name: #a",
        ),
        (
            {"ConditionExpression": "a = :v"},
            "Invalid ConditionExpression: An expression attribute value used in expression is not defined; "
            "attribute value: :v",
        ),
        (
            {
                "ConditionExpression": "a = :v",
                "ExpressionAttributeValues": {":v": {"S": "x"}, ":w": {"S": "y"}},
            },
            "Value provided in ExpressionAttributeValues unused in expressions: keys: {:w}",
        ),
        (
            {
                "ConditionExpression": "a = :v",
                "ExpressionAttributeNames": {"#x": "x"},
                "ExpressionAttributeValues": {":v": {"S": "x"}},
            },
            "Value provided in ExpressionAttributeNames unused in expressions: keys: {#x}",
        ),
        (
            {"ExpressionAttributeNames": {"#x": "x"}},
            "ExpressionAttributeNames can only be specified when using expressions",
        ),
        (
            {"ConditionExpression": "a = :v", "ExpressionAttributeValues": {}},
            "ExpressionAttributeValues must not be empty",
        ),
        (
            {"ConditionExpression": "a = :v", "ExpressionAttributeValues": {":v": {"N": "x1"}}},
            "ExpressionAttributeValues contains invalid value: The parameter cannot be converted to a numeric value: "
            "x1 for key :v",
        ),
    ],
)
def test_placeholder_validation(req: dict, message: str) -> None:
    with pytest.raises(ServiceError) as e:
        prepare(req, ("ConditionExpression",))
    assert e.value.message == message


@pytest.mark.parametrize(
    "expr, value, message",
    [
        ("a < :v", {"BOOL": True}, "operator or function: <, operand type: BOOL"),
        ("a BETWEEN :v AND :v", {"L": []}, "operator or function: BETWEEN, operand type: L"),
        ("begins_with(a, :v)", {"N": "1"}, "operator or function: begins_with, operand type: N"),
    ],
)
def test_operand_types_are_checked_statically(expr: str, value: dict, message: str) -> None:
    with pytest.raises(ServiceError) as e:
        prepare(
            {"ConditionExpression": expr, "ExpressionAttributeValues": {":v": value}},
            ("ConditionExpression",),
        )
    assert e.value.message == (
        f"Invalid ConditionExpression: Incorrect operand type for operator or function; {message}"
    )


def test_arithmetic_on_a_non_number_value_is_refused_before_reading() -> None:
    with pytest.raises(ServiceError) as e:
        prepare(
            {"UpdateExpression": "SET v = v + :x", "ExpressionAttributeValues": {":x": {"S": "2"}}},
            ("UpdateExpression",),
        )
    assert e.value.message == (
        "Invalid UpdateExpression: Incorrect operand type for operator or function; operator or function: +, "
        "operand type: S"
    )


def upd(text: str, item: dict | None = ITEM, names: dict | None = None, values: dict | None = None) -> dict:
    return apply(parse("UpdateExpression", text).tree, item, Env(names or {}, values or VALUES))[0]


def test_update_set_arithmetic_if_not_exists_list_append() -> None:
    new = upd(
        "SET age = age + :five, visits = if_not_exists(visits, :a) - :five, "
        "scores = list_append(scores, :l), address.city = :c2",
        values={**VALUES, ":l": {"L": [{"N": "10"}]}, ":c2": {"S": "Paris"}},
    )
    assert new["age"] == {"N": "41"}
    assert new["visits"] == {"N": "25"}
    assert [x["N"] for x in new["scores"]["L"]] == ["1", "5", "9", "10"]
    assert new["address"]["M"]["city"] == {"S": "Paris"}
    assert ITEM["age"] == {"N": "36"}  # the original is untouched


def test_update_evaluates_right_hand_sides_before_applying() -> None:
    new = upd("SET a1 = age, age = :five", values={":five": {"N": "5"}})
    assert new["a1"] == {"N": "36"} and new["age"] == {"N": "5"}


def test_update_remove_add_delete() -> None:
    new = upd(
        "REMOVE scores[0], scores[2], address.zip ADD age :five, tags :more, n :five DELETE t2 :gone",
        item={**ITEM, "t2": {"SS": ["x", "y"]}},
        values={":five": {"N": "5"}, ":more": {"SS": ["art"]}, ":gone": {"SS": ["x", "y"]}},
    )
    assert new["scores"] == {"L": [{"N": "5"}]}
    assert "zip" not in new["address"]["M"]
    assert new["age"] == {"N": "41"} and new["n"] == {"N": "5"}
    assert sorted(new["tags"]["SS"]) == ["art", "math", "poetry"]
    assert "t2" not in new  # deleting every member removes the attribute


def test_update_errors() -> None:
    with pytest.raises(ServiceError, match="An operand in the update expression has an incorrect data type"):
        upd("SET x = #n + :a", names={"#n": "name"})
    with pytest.raises(ServiceError, match="refers to an attribute that does not exist in the item"):
        upd("SET x = absent + :a")
    with pytest.raises(ServiceError, match="Two document paths overlap"):
        upd("SET address.city = :c REMOVE address")
    with pytest.raises(ServiceError, match="invalid for update"):
        upd("SET nope.deeper = :c")
    with pytest.raises(
        ServiceError, match="operator: ADD, operand type: STRING, typeSet: ALLOWED_FOR_ADD_OPERAND"
    ):
        upd("ADD age :c")


def test_arithmetic_is_exact_decimal() -> None:
    new = upd("SET x = :a + :b", item={}, values={":a": {"N": "0.1"}, ":b": {"N": "0.2"}})
    assert new["x"] == {"N": "0.3"}
    big = "9" * 38
    new = upd("SET x = :a - :b", item={}, values={":a": {"N": big}, ":b": {"N": "1"}})
    assert new["x"] == {"N": "9" * 37 + "8"}
    with pytest.raises(ServiceError, match="more than 38 significant digits"):
        upd("SET x = :a + :b", item={}, values={":a": {"N": big}, ":b": {"N": "0.1"}})


def test_projection_of_nested_paths() -> None:
    out = project(ITEM, [("address", "city"), ("scores", 2), ("scores", 0), ("missing",), ("name",)])
    assert out == {
        "address": {"M": {"city": {"S": "London"}}},
        "scores": {"L": [{"N": "1"}, {"N": "9"}]},
        "name": {"S": "Ada Lovelace"},
    }
