"""Fuzzing the expression engine: any text either works or is a ValidationException, never a crash."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from strata.protocol.errors import ServiceError
from strata.services.dynamodb.expressions.evaluate import Env, condition, project
from strata.services.dynamodb.expressions.parser import parse
from strata.services.dynamodb.expressions.update import apply

TOKENS = [
    "a",
    "b",
    "c",
    "#n",
    ":v",
    ":s",
    ":l",
    ":m",
    "=",
    "<>",
    "<",
    "<=",
    ">",
    ">=",
    "(",
    ")",
    "[0]",
    "[1]",
    ".",
    ",",
    "+",
    "-",
    "AND",
    "OR",
    "NOT",
    "BETWEEN",
    "IN",
    "SET",
    "REMOVE",
    "ADD",
    "DELETE",
    "size",
    "contains",
    "begins_with",
    "attribute_exists",
    "attribute_not_exists",
    "attribute_type",
    "if_not_exists",
    "list_append",
    "total",
    "@",
    "1",
]
VALUES = {":v": {"N": "1"}, ":s": {"S": "S"}, ":l": {"L": [{"N": "2"}]}, ":m": {"SS": ["x"]}}
ITEMS = [
    {},
    {"a": {"N": "5"}, "b": {"S": "bee"}, "c": {"L": [{"N": "1"}, {"M": {"d": {"BOOL": True}}}]}},
    {"a": {"M": {"b": {"L": []}}}, "b": {"SS": ["x", "y"]}, "c": {"B": b"\x00"}, "n": {"NULL": True}},
]

texts = st.lists(st.sampled_from(TOKENS), min_size=1, max_size=14).map(" ".join)


@settings(max_examples=600, deadline=None)
@given(
    texts,
    st.sampled_from(["ConditionExpression", "UpdateExpression", "ProjectionExpression"]),
    st.sampled_from(ITEMS),
)
def test_any_expression_is_handled(text: str, kind: str, item: dict) -> None:
    env = Env({"#n": "n"}, VALUES)
    try:
        parsed = parse(kind, text)
        if kind == "ConditionExpression":
            assert isinstance(condition(parsed.tree, item, env), bool)
        elif kind == "UpdateExpression":
            new, _ = apply(parsed.tree, item, env)  # type: ignore[arg-type]
            assert isinstance(new, dict)
        else:
            project(item, [env.resolve(p) for p in parsed.tree.paths])  # type: ignore[attr-defined]
    except ServiceError as e:
        assert e.code == "ValidationException" and e.status == 400
