"""The legacy (pre-expression) parameters, translated into the same AST.

Older SDKs and libraries still send Expected, AttributesToGet, KeyConditions, QueryFilter,
ScanFilter, AttributeUpdates and ConditionalOperator; they become conditions, projections and
updates with `Literal` values and plain (never reserved-checked) attribute names.
"""

from __future__ import annotations

from strata.services.dynamodb.errors import validation
from strata.services.dynamodb.expressions import ast
from strata.services.dynamodb.types import check_value

_COMPARE = {"EQ": "=", "NE": "<>", "LE": "<=", "LT": "<", "GE": ">=", "GT": ">"}
_ARGS = {
    "EQ": 1,
    "NE": 1,
    "LE": 1,
    "LT": 1,
    "GE": 1,
    "GT": 1,
    "NOT_NULL": 0,
    "NULL": 0,
    "CONTAINS": 1,
    "NOT_CONTAINS": 1,
    "BEGINS_WITH": 1,
    "BETWEEN": 2,
}

EXPRESSION_FOR = {
    "Expected": "ConditionExpression",
    "AttributesToGet": "ProjectionExpression",
    "KeyConditions": "KeyConditionExpression",
    "QueryFilter": "FilterExpression",
    "ScanFilter": "FilterExpression",
    "AttributeUpdates": "UpdateExpression",
}


def check_mixing(req: dict) -> None:
    """DynamoDB refuses a request that mixes legacy and expression parameters."""
    legacy = [k for k in EXPRESSION_FOR if req.get(k) is not None]
    expr = [
        k
        for k in (
            "ConditionExpression",
            "ProjectionExpression",
            "KeyConditionExpression",
            "FilterExpression",
            "UpdateExpression",
        )
        if req.get(k) is not None
    ]
    if legacy and expr:
        raise validation(
            "Can not use both expression and non-expression parameters in the same request: "
            f"Non-expression parameters: {{{', '.join(legacy)}}} Expression parameters: {{{', '.join(expr)}}}"
        )
    if req.get("ConditionalOperator") is not None and not legacy:
        raise validation("ConditionalOperator can only be used when Filter or Expected has been specified")


def _lit(av: dict) -> ast.Literal:
    return ast.Literal(check_value(av)[0])


def comparison(name: str, op: str, args: list) -> ast.Condition:
    path = ast.Path((name,))
    if op == "IN":
        if not args:
            raise validation(
                f"One or more parameter values were invalid: Invalid number of argument(s) for the {op} ComparisonOperator"
            )
        return ast.In(path, tuple(_lit(a) for a in args))
    if op not in _ARGS:
        raise validation(
            f"1 validation error detected: Value '{op}' at 'comparisonOperator' failed to satisfy constraint"
        )
    if len(args) != _ARGS[op]:
        raise validation(
            f"One or more parameter values were invalid: Invalid number of argument(s) for the {op} ComparisonOperator"
        )
    if op in _COMPARE:
        return ast.Compare(_COMPARE[op], path, _lit(args[0]))
    if op == "NOT_NULL":
        return ast.Function("attribute_exists", (path,))
    if op == "NULL":
        return ast.Function("attribute_not_exists", (path,))
    if op == "CONTAINS":
        return ast.Function("contains", (path, _lit(args[0])))
    if op == "NOT_CONTAINS":
        return ast.And(
            ast.Function("attribute_exists", (path,)),
            ast.Not(ast.Function("contains", (path, _lit(args[0])))),
        )
    if op == "BEGINS_WITH":
        return ast.Function("begins_with", (path, _lit(args[0])))
    return ast.Between(path, _lit(args[0]), _lit(args[1]))


def _join(conds: list[ast.Condition], operator: str | None) -> ast.Condition:
    if not conds:
        return ast.TrueCondition()
    node = conds[0]
    for c in conds[1:]:
        node = ast.Or(node, c) if operator == "OR" else ast.And(node, c)
    return node


def expected(spec: dict, operator: str | None) -> ast.Condition:
    conds = []
    for name, e in spec.items():
        op = e.get("ComparisonOperator")
        if op is not None:
            if "Value" in e:
                raise validation(
                    "One or more parameter values were invalid: Value and ComparisonOperator cannot be used together for Attribute: "
                    + name
                )
            conds.append(comparison(name, op, e.get("AttributeValueList") or []))
        elif e.get("Exists", True) is False:
            if "Value" in e:
                raise validation(
                    "One or more parameter values were invalid: Value cannot be used when Exists is false for Attribute: "
                    + name
                )
            conds.append(ast.Function("attribute_not_exists", (ast.Path((name,)),)))
        elif "Value" in e:
            conds.append(ast.Compare("=", ast.Path((name,)), _lit(e["Value"])))
        else:
            raise validation(
                "One or more parameter values were invalid: Value must be provided when Exists is true for Attribute: "
                + name
            )
    return _join(conds, operator)


def conditions(spec: dict, operator: str | None) -> ast.Condition:
    """KeyConditions / QueryFilter / ScanFilter."""
    return _join(
        [comparison(n, c["ComparisonOperator"], c.get("AttributeValueList") or []) for n, c in spec.items()],
        operator,
    )


def attributes_to_get(names: list[str]) -> ast.Projection:
    return ast.Projection(tuple(ast.Path((n,)) for n in names))


def attribute_updates(spec: dict) -> ast.Update:
    actions: list[ast.UpdateAction] = []
    for name, u in spec.items():
        action = u.get("Action", "PUT")
        value = u.get("Value")
        path = ast.Path((name,))
        if action == "PUT":
            if value is None:
                raise validation(
                    f"One or more parameter values were invalid: Only DELETE action is allowed when no attribute value is specified: {name}"
                )
            actions.append(ast.SetAction(path, _lit(value)))
        elif action == "DELETE":
            actions.append(
                ast.DeleteAction(path, _lit(value)) if value is not None else ast.RemoveAction(path)
            )
        else:
            if value is None:
                raise validation(
                    f"One or more parameter values were invalid: Only DELETE action is allowed when no attribute value is specified: {name}"
                )
            lit = _lit(value)
            if "L" in lit.value:
                actions.append(
                    ast.SetAction(path, ast.ListAppend(ast.IfNotExists(path, ast.Literal({"L": []})), lit))
                )
            else:
                actions.append(ast.AddAction(path, lit))
    return ast.Update(tuple(actions))
