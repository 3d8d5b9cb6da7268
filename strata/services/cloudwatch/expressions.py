"""Metric math for GetMetricData and alarms: arithmetic and the aggregate functions over series.

Supported: numbers, query ids (lower-case first letter), `+ - * /`, unary minus, parentheses,
arrays `[m1, m2]`, `METRICS()` / `METRICS("label")`, SUM, AVG, MIN, MAX, ABS, and
`SEARCH('{Namespace,DimensionName...} key="value" term', 'Stat', Period)` (every metric of that
dimension schema whose names and values match: key="value" exactly, a bare term as a part of any
of them; AND is implicit, OR and NOT are refused); other functions are refused.
As CloudWatch defines them, an aggregate over an array of series is one series (point by point,
over the timestamps where any member has a value); over a single series it is a scalar of all its
points. Arithmetic between series keeps the timestamps both have; with a scalar, all of them.
The expression is parsed by Python's `ast` and only the node kinds above are evaluated.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import Union

from strata.protocol.errors import ServiceError

Series = dict[int, float]  # timestamp -> value
Search = Callable[[str, str, int], list["Labeled"]]


class Labeled(dict):
    """A series with the label a SEARCH gave it (one result per series in GetMetricData)."""

    label = ""


Value = Union[float, Series, list[Series]]  # noqa: UP007 - a recursive-looking alias reads better


def invalid(message: str) -> ServiceError:
    return ServiceError("ValidationError", message, 400)


def references(expression: str) -> set[str]:
    """The query ids an expression names (to order evaluation and find unknown ids)."""
    tree = _parse(expression)
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def _parse(expression: str) -> ast.Expression:
    try:
        return ast.parse(expression.strip(), mode="eval")
    except SyntaxError:
        raise invalid(f"Error in expression '{expression}': syntax error") from None


def evaluate(
    expression: str, env: dict[str, Series], labels: dict[str, str], search: Search | None = None
) -> Value:
    """The value of `expression` given the series of every query id it may name."""
    tree = _parse(expression)

    def ev(node: ast.AST) -> Value:
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, int | float)
            and not isinstance(node.value, bool)
        ):
            return float(node.value)
        if isinstance(node, ast.Name):
            if node.id not in env:
                raise invalid(
                    f"Error in expression '{expression}': Unrecognized metric or expression {node.id}"
                )
            return env[node.id]
        if isinstance(node, ast.List):
            items: list[Series] = []
            for elt in node.elts:
                v = ev(elt)
                items.extend(v if isinstance(v, list) else [_as_series(v, expression)])
            return items
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            sign = -1.0 if isinstance(node.op, ast.USub) else 1.0
            return _binary(sign, ev(node.operand), lambda a, b: a * b, expression)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _binary(ev(node.left), ev(node.right), _OPS[type(node.op)], expression)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
            return _call(node.func.id, [_arg(a) for a in node.args])
        raise invalid(f"Error in expression '{expression}': unsupported syntax")

    def _arg(node: ast.AST) -> Value | str:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        return ev(node)

    def _call(name: str, args: list) -> Value:
        if name == "METRICS":
            wanted = args[0] if args and isinstance(args[0], str) else None
            return [
                s for qid, s in env.items() if qid in labels and (wanted is None or wanted in labels[qid])
            ]
        if name in _AGGREGATES and len(args) == 1 and not isinstance(args[0], str):
            return _aggregate(_AGGREGATES[name], args[0])
        if name == "SEARCH" and search is not None and len(args) == 3:
            text, stat, period = args
            if isinstance(text, str) and isinstance(stat, str) and isinstance(period, float):
                return search(text, stat, int(period))  # type: ignore[return-value]
        if name == "ABS" and len(args) == 1 and not isinstance(args[0], str):
            return _binary(args[0], 0.0, lambda a, _b: abs(a), expression)
        raise invalid(f"Error in expression '{expression}': unsupported function {name}")

    return ev(tree.body)


def _as_series(v: Value, expression: str) -> Series:
    if isinstance(v, dict):
        return v
    raise invalid(f"Error in expression '{expression}': an array holds time series only")


def _safe_div(a: float, b: float) -> float:
    return a / b if b else float("nan")


_OPS: dict[type, Callable[[float, float], float]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: _safe_div,
}


def _binary(left: Value, right: Value, op: Callable[[float, float], float], expression: str) -> Value:
    if isinstance(left, list):
        return [_binary(s, right, op, expression) for s in left]  # type: ignore[misc]
    if isinstance(right, list):
        return [_binary(left, s, op, expression) for s in right]  # type: ignore[misc]
    if isinstance(left, dict) and isinstance(right, dict):
        return {t: op(v, right[t]) for t, v in left.items() if t in right}
    if isinstance(left, dict):
        return {t: op(v, right) for t, v in left.items()}  # type: ignore[arg-type]
    if isinstance(right, dict):
        return {t: op(left, v) for t, v in right.items()}
    return op(left, right)


def _aggregate(fn: Callable[[list[float]], float], arg: Value) -> Value:
    if isinstance(arg, list):
        stamps = sorted({t for s in arg for t in s})
        return {t: fn([s[t] for s in arg if t in s]) for t in stamps}
    if isinstance(arg, dict):
        return fn(list(arg.values())) if arg else float("nan")
    return arg


_AGGREGATES: dict[str, Callable[[list[float]], float]] = {
    "SUM": sum,
    "AVG": lambda xs: sum(xs) / len(xs),
    "MIN": min,
    "MAX": max,
}
