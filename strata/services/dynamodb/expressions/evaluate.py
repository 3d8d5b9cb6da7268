"""Evaluating conditions, operands and projections against an item.

`Env` carries the request's ExpressionAttributeNames/Values (already validated and canonical).
A path that does not resolve yields None ("missing"); comparisons with a missing operand are false
except `<>`, which is true, as in DynamoDB.
"""

from __future__ import annotations

from decimal import Decimal

from strata.services.dynamodb.expressions import ast
from strata.services.dynamodb.types import ALL_TYPES, SET_TYPES, values_equal


class Env:
    __slots__ = ("names", "values")

    def __init__(self, names: dict | None = None, values: dict | None = None) -> None:
        self.names = names or {}
        self.values = values or {}

    def name(self, part: ast.PathPart) -> str | int:
        if isinstance(part, ast.NameRef):
            return self.names[part.ref]
        return part

    def resolve(self, path: ast.Path) -> tuple[str | int, ...]:
        return tuple(self.name(p) for p in path.parts)


def get_path(item: dict | None, parts: tuple[str | int, ...]) -> dict | None:
    """The value at a resolved path, or None when any step is missing or of the wrong type."""
    if item is None:
        return None
    first = parts[0]
    value = item.get(first) if isinstance(first, str) else None
    for p in parts[1:]:
        if value is None:
            return None
        if isinstance(p, int):
            lst = value.get("L")
            value = lst[p] if lst is not None and p < len(lst) else None
        else:
            m = value.get("M")
            value = m.get(p) if m is not None else None
    return value


def operand(node: ast.Operand, item: dict | None, env: Env) -> dict | None:
    if isinstance(node, ast.Path):
        return get_path(item, env.resolve(node))
    if isinstance(node, ast.ValueRef):
        return env.values[node.ref]
    if isinstance(node, ast.Literal):
        return node.value
    if isinstance(node, ast.Size):
        v = get_path(item, env.resolve(node.path))
        if v is None:
            return None
        ((t, x),) = v.items()
        if t == "S":
            return {"N": str(len(x))}
        if t in ("B", "M", "L") or t in SET_TYPES:
            return {"N": str(len(x))}
        return None
    raise TypeError(f"not a condition operand: {node!r}")


def _ordered(a: dict, b: dict) -> tuple[object, object] | None:
    """Both values as comparable Python values when DynamoDB can order them, else None."""
    ((ta, va),) = a.items()
    ((tb, vb),) = b.items()
    if ta != tb or ta not in ("S", "N", "B"):
        return None
    if ta == "N":
        return Decimal(va), Decimal(vb)
    return va, vb


def compare(op: str, a: dict | None, b: dict | None) -> bool:
    if op == "=":
        return a is not None and b is not None and values_equal(a, b)
    if op == "<>":
        return a is None or b is None or not values_equal(a, b)
    if a is None or b is None:
        return False
    pair = _ordered(a, b)
    if pair is None:
        return False
    x, y = pair
    if op == "<":
        return x < y  # type: ignore[operator]
    if op == "<=":
        return x <= y  # type: ignore[operator]
    if op == ">":
        return x > y  # type: ignore[operator]
    return x >= y  # type: ignore[operator]


def _contains(container: dict, needle: dict) -> bool:
    ((t, v),) = container.items()
    ((nt, nv),) = needle.items()
    if t == "S":
        return nt == "S" and nv in v
    if t == "B":
        return nt == "B" and bytes(nv) in bytes(v)
    if t in SET_TYPES:
        if SET_TYPES[t] != nt:
            return False
        return any(values_equal({nt: m}, needle) for m in v)
    if t == "L":
        return any(values_equal(m, needle) for m in v)
    return False


def condition(node: ast.Condition, item: dict | None, env: Env) -> bool:
    """Whether `item` (None: no item) satisfies the condition."""
    if isinstance(node, ast.Compare):
        return compare(node.op, operand(node.left, item, env), operand(node.right, item, env))
    if isinstance(node, ast.And):
        return condition(node.left, item, env) and condition(node.right, item, env)
    if isinstance(node, ast.Or):
        return condition(node.left, item, env) or condition(node.right, item, env)
    if isinstance(node, ast.Not):
        return not condition(node.operand, item, env)
    if isinstance(node, ast.Function):
        return _function(node, item, env)
    if isinstance(node, ast.Between):
        v = operand(node.operand, item, env)
        low, high = operand(node.low, item, env), operand(node.high, item, env)
        return compare(">=", v, low) and compare("<=", v, high)
    if isinstance(node, ast.In):
        v = operand(node.operand, item, env)
        return v is not None and any(compare("=", v, operand(o, item, env)) for o in node.options)
    if isinstance(node, ast.TrueCondition):
        return True
    raise TypeError(f"not a condition: {node!r}")


def _function(node: ast.Function, item: dict | None, env: Env) -> bool:
    name = node.name
    target = operand(node.args[0], item, env)
    if name == "attribute_exists":
        return target is not None
    if name == "attribute_not_exists":
        return target is None
    arg = operand(node.args[1], item, env)
    if target is None or arg is None:
        return False
    if name == "attribute_type":
        return next(iter(target)) == arg.get("S")
    if name == "begins_with":
        ((t, v),) = target.items()
        ((at, av),) = arg.items()
        return t == at and t in ("S", "B") and v[: len(av)] == av
    return _contains(target, arg)


def valid_type_name(value: dict) -> bool:
    return value.get("S") in ALL_TYPES


def project(item: dict, paths: list[tuple[str | int, ...]]) -> dict:
    """The item reduced to the given resolved paths (lists keep selected elements in order)."""
    out: dict = {}
    for parts in paths:
        value = get_path(item, parts)
        if value is None:
            continue
        _insert(out, item, parts, value)
    return _finish(out)


def _insert(out: dict, item: dict, parts: tuple, value: dict) -> None:
    # Intermediate containers: {"M": {...}} for maps, {"_L": {index: child}} for lists.
    node, source = out, item
    for depth, p in enumerate(parts[:-1]):
        src = source[p] if depth == 0 else (source["L"][p] if isinstance(p, int) else source["M"][p])
        nxt = parts[depth + 1]
        key = "_L" if isinstance(nxt, int) else "M"
        holder = node if depth == 0 else (node["_L"] if isinstance(p, int) else node["M"])
        child = holder.get(p)
        if child is None:
            child = holder[p] = {key: {}}
        node, source = child, src
    last = parts[-1]
    if len(parts) == 1:
        out[last] = value
    elif isinstance(last, int):
        node["_L"][last] = value
    else:
        node["M"][last] = value


def _finish(node: dict) -> dict:
    return {k: _finish_value(v) for k, v in node.items()}


def _finish_value(v: dict) -> dict:
    if "_L" in v:
        return {"L": [_finish_value(v["_L"][i]) for i in sorted(v["_L"])]}
    if "M" in v and isinstance(v["M"], dict):
        return {"M": {k: _finish_value(x) for k, x in v["M"].items()}}
    return v
