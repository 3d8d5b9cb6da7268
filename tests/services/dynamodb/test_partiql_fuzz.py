"""Fuzzing PartiQL: any statement text parses, compiles and is accepted by the expression engine,
or is a ValidationException, never a crash (the end-to-end suite is test_partiql.py)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from strata.protocol.errors import ServiceError
from strata.services.dynamodb.expressions.evaluate import condition
from strata.services.dynamodb.expressions.update import apply
from strata.services.dynamodb.expressions.validate import prepare
from strata.services.dynamodb.partiql import compile as comp
from strata.services.dynamodb.partiql.parser import parse
from strata.services.dynamodb.tables import TableMeta

HEADS = [
    'SELECT * FROM "tbl" WHERE',
    'SELECT a, b.c[0] FROM "tbl"."ix" WHERE',
    'UPDATE "tbl" SET a = 1 WHERE',
    'UPDATE "tbl" SET',
    'DELETE FROM "tbl" WHERE',
    'INSERT INTO "tbl" VALUE',
    'EXISTS(SELECT * FROM "tbl" WHERE',
    "",
]
TOKENS = [
    "pk", "sk", "a", "b", '"c"', "=", "<>", "!=", "<", ">=", "(", ")", "[", "]", "{", "}", "<<", ">>",
    "[0]", ".", ",", ":", "+", "-", "?", "'x'", "'pk'", "1", "2.5", "-3", "true", "null", "MISSING",
    "AND", "OR", "NOT", "BETWEEN", "IN", "IS", "SET", "REMOVE", "WHERE", "RETURNING", "ALL", "MODIFIED",
    "OLD", "NEW", "*", "size", "exists", "missing", "begins_with", "contains", "attribute_type",
    "list_append", "set_add", "set_delete", "ORDER", "BY", "DESC", ";",
]  # fmt: skip
META = TableMeta(
    scope="0:us-east-1",
    name="tbl",
    tid=1,
    table_id="t",
    arn="arn",
    hash_key="pk",
    hash_type="S",
    range_key="sk",
    range_type="N",
    attribute_definitions=[],
    billing_mode="PAY_PER_REQUEST",
    throughput={},
    created=0.0,
)
ITEMS = [None, {"pk": {"S": "x"}, "sk": {"N": "1"}, "a": {"N": "5"}, "b": {"L": [{"S": "x"}]}}]
_MEMBERS = (
    "KeyConditionExpression",
    "FilterExpression",
    "ProjectionExpression",
    "ConditionExpression",
    "UpdateExpression",
)

soup = st.tuples(
    st.sampled_from(HEADS), st.lists(st.sampled_from(TOKENS), min_size=0, max_size=12).map(" ".join)
).map(" ".join)

# Statements from the grammar, so most of them parse and reach the compiler and the engine.
PATHS = ["pk", "sk", "a", "b.c", "b[0]", '"c"', "a.b[1].c"]
VALUES = ["'x'", "1", "-2.5", "?", "[1, 'y']", "{'k': 1}", "<<'q', 'r'>>", "<<1>>", "true", "null"]
path = st.sampled_from(PATHS)
operand = st.one_of(path, st.sampled_from(VALUES), path.map(lambda x: f"size({x})"))
predicate = st.one_of(
    st.tuples(operand, st.sampled_from(["=", "<>", "!=", "<", "<=", ">", ">="]), operand).map(" ".join),
    st.tuples(operand, operand, operand).map(lambda t: f"{t[0]} BETWEEN {t[1]} AND {t[2]}"),
    st.tuples(operand, st.lists(operand, min_size=1, max_size=3)).map(
        lambda t: f"{t[0]} IN ({', '.join(t[1])})"
    ),
    st.tuples(st.sampled_from(["begins_with", "contains", "attribute_type"]), path, operand).map(
        lambda t: f"{t[0]}({t[1]}, {t[2]})"
    ),
    st.tuples(st.sampled_from(["exists", "missing"]), path).map(lambda t: f"{t[0]}({t[1]})"),
    st.tuples(path, st.sampled_from(["MISSING", "NOT MISSING", "NULL", "NOT STRING", "LIST"])).map(
        lambda t: f"{t[0]} IS {t[1]}"
    ),
)
where = st.recursive(
    predicate,
    lambda c: st.one_of(
        st.tuples(c, st.sampled_from(["AND", "OR"]), c).map(" ".join),
        c.map(lambda x: f"NOT {x}"),
        c.map(lambda x: f"({x})"),
    ),
    max_leaves=6,
)
key = st.sampled_from(["pk = 'k' AND sk = 1", "pk = ? AND sk = ?", "sk = 2 AND pk = 'k'", "pk = 'k'"])
full = st.tuples(key, st.one_of(st.just(""), where.map(lambda w: f" AND {w}"))).map("".join)
assignment = st.one_of(
    st.tuples(path, operand).map(lambda t: f"{t[0]} = {t[1]}"),
    st.tuples(path, operand, st.sampled_from(["+", "-"]), operand).map(
        lambda t: f"{t[0]} = {t[1]} {t[2]} {t[3]}"
    ),
    st.tuples(path, operand).map(lambda t: f"{t[0]} = list_append({t[0]}, {t[1]})"),
    st.tuples(path, st.sampled_from(["set_add", "set_delete"]), operand).map(
        lambda t: f"{t[0]} = {t[1]}({t[0]}, {t[2]})"
    ),
)
returning = st.sampled_from(["", " RETURNING ALL OLD *", " RETURNING MODIFIED NEW *", " RETURNING ALL NEW *"])
grammar = st.one_of(
    st.tuples(st.sampled_from(["*", "a", "a, b.c[0]", "sk"]), st.one_of(st.just(""), where, full)).map(
        lambda t: f'SELECT {t[0]} FROM "tbl"' + (f" WHERE {t[1]}" if t[1] else "")
    ),
    st.tuples(
        st.lists(assignment, min_size=1, max_size=3), st.one_of(path, st.just("")), full, returning
    ).map(
        lambda t: (
            f'UPDATE "tbl" SET {", ".join(t[0])}'
            + (f" REMOVE {t[1]}" if t[1] else "")
            + f" WHERE {t[2]}{t[3]}"
        )
    ),
    st.tuples(full, returning).map(lambda t: f'DELETE FROM "tbl" WHERE {t[0]}{t[1]}'),
    st.lists(st.tuples(st.sampled_from(["pk", "sk", "a", "b"]), st.sampled_from(VALUES)), max_size=4).map(
        lambda kv: 'INSERT INTO "tbl" VALUE {' + ", ".join(f"'{k}': {v}" for k, v in kv) + "}"
    ),
    full.map(lambda w: f'EXISTS(SELECT * FROM "tbl" WHERE {w})'),
)
statements = st.one_of(soup, grammar, grammar)


@settings(max_examples=800, deadline=None)
@given(statements, st.integers(min_value=0, max_value=3))
def test_any_statement_is_handled(text: str, nparams: int) -> None:
    try:
        parsed = parse(text)
        bound = comp.bound_values(parsed, [{"S": "x"}] * nparams)
        if parsed.statement.__class__.__name__ != "Exists" and getattr(parsed.statement, "index", None):
            return  # the test table has no index: meta.index() refuses it (covered end to end)
        req = comp.template(parsed, META).bind(bound).req
        members = tuple(m for m in _MEMBERS if m in req)
        found, env = prepare(req, members)
        for item in ITEMS:
            for member, p in found.items():
                if member == "UpdateExpression":
                    apply(p.tree, item, env)  # type: ignore[arg-type]
                elif member != "ProjectionExpression":
                    assert isinstance(condition(p.tree, item, env), bool)  # type: ignore[arg-type]
    except ServiceError as e:
        assert e.code == "ValidationException" and e.status == 400, (text, e)
