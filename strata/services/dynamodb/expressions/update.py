"""Applying an UpdateExpression (or legacy AttributeUpdates) to an item.

All right-hand sides are evaluated against the item as it was before the update, then the actions
are applied to a copy, as DynamoDB does. Returns the new item and the resolved paths touched (for
ReturnValues UPDATED_OLD / UPDATED_NEW).
"""

from __future__ import annotations

import marshal

from strata.services.dynamodb.errors import validation
from strata.services.dynamodb.expressions import ast
from strata.services.dynamodb.expressions.evaluate import Env, get_path, operand
from strata.services.dynamodb.types import SET_TYPES, add_numbers, values_equal

_BAD_TYPE = "An operand in the update expression has an incorrect data type"


def _fail(message: str) -> Exception:
    return validation(f"Invalid UpdateExpression: {message}")


_TYPE_NAMES = {
    "S": "STRING",
    "N": "NUMBER",
    "B": "BINARY",
    "BOOL": "BOOLEAN",
    "NULL": "NULL",
    "M": "MAP",
    "L": "LIST",
    "SS": "STRING_SET",
    "NS": "NUMBER_SET",
    "BS": "BINARY_SET",
}


def _operand_type(action: str, t: str) -> Exception:
    return _fail(
        f"Incorrect operand type for operator or function; operator: {action}, operand type: {_TYPE_NAMES[t]}, "
        f"typeSet: ALLOWED_FOR_{action}_OPERAND"
    )


def _show(parts: tuple) -> str:
    return "[" + ", ".join(str(p) for p in parts) + "]"


def check_overlaps(paths: list[tuple], kind: str = "UpdateExpression") -> None:
    """Two paths where one is a prefix of the other are an error in updates and projections."""
    for i, a in enumerate(paths):
        for b in paths[i + 1 :]:
            n = min(len(a), len(b))
            if a[:n] == b[:n]:
                raise validation(
                    f"Invalid {kind}: Two document paths overlap with each other; must remove or rewrite one of "
                    f"these paths; path one: {_show(a)}, path two: {_show(b)}"
                )


def _value(node: ast.Operand, item: dict | None, env: Env) -> dict:
    """An update operand's value; a missing path here is an error (unlike in conditions)."""
    if isinstance(node, ast.IfNotExists):
        current = get_path(item, env.resolve(node.path))
        return current if current is not None else _value(node.default, item, env)
    if isinstance(node, ast.ListAppend):
        a, b = _value(node.left, item, env), _value(node.right, item, env)
        if "L" not in a or "L" not in b:
            raise validation(_BAD_TYPE)
        return {"L": a["L"] + b["L"]}
    if isinstance(node, ast.Arithmetic):
        a, b = _value(node.left, item, env), _value(node.right, item, env)
        if "N" not in a or "N" not in b:
            raise validation(_BAD_TYPE)
        return {"N": add_numbers(a["N"], b["N"], subtract=node.op == "-")}
    v = operand(node, item, env)
    if v is None:
        raise validation("The provided expression refers to an attribute that does not exist in the item")
    return v


def copy_item(item: dict) -> dict:
    return marshal.loads(marshal.dumps(item))


def _set(item: dict, parts: tuple, value: dict) -> None:
    if len(parts) == 1:
        item[parts[0]] = value
        return
    parent = get_path(item, parts[:-1])
    last = parts[-1]
    if parent is not None and isinstance(last, int) and "L" in parent:
        lst = parent["L"]
        if last < len(lst):
            lst[last] = value
        else:
            lst.append(value)
        return
    if parent is not None and isinstance(last, str) and "M" in parent:
        parent["M"][last] = value
        return
    raise validation("The document path provided in the update expression is invalid for update")


def _remove(item: dict, parts: tuple) -> None:
    if len(parts) == 1:
        item.pop(parts[0], None)
        return
    parent = get_path(item, parts[:-1])
    last = parts[-1]
    if parent is None:
        return
    if isinstance(last, int) and "L" in parent:
        if last < len(parent["L"]):
            del parent["L"][last]
    elif isinstance(last, str) and "M" in parent:
        parent["M"].pop(last, None)


def apply(update: ast.Update, item: dict | None, env: Env) -> tuple[dict, list[tuple]]:
    """The updated item (a new dict) and the resolved paths of every action."""
    base = item or {}
    resolved = [env.resolve(a.path) for a in update.actions]
    check_overlaps(resolved)
    # Evaluate every right-hand side first, against the unchanged item.
    planned: list[tuple[ast.UpdateAction, tuple, dict | None]] = []
    for action, parts in zip(update.actions, resolved, strict=True):
        if isinstance(action, ast.RemoveAction):
            planned.append((action, parts, None))
            continue
        value = _value(action.value, base, env)
        if isinstance(action, ast.AddAction):
            t = next(iter(value))
            if t != "N" and t not in SET_TYPES:
                raise _operand_type("ADD", t)
        elif isinstance(action, ast.DeleteAction):
            t = next(iter(value))
            if t not in SET_TYPES:
                raise _operand_type("DELETE", t)
        planned.append((action, parts, value))
    new = copy_item(base)
    removals = []
    for action, parts, value in planned:
        if isinstance(action, ast.SetAction):
            _set(new, parts, value)  # type: ignore[arg-type]
        elif isinstance(action, ast.RemoveAction):
            removals.append(parts)
        elif isinstance(action, ast.AddAction):
            _add(new, parts, value)  # type: ignore[arg-type]
        else:
            _delete(new, parts, value)  # type: ignore[arg-type]
    # Remove list elements from the highest index down so earlier removals don't shift later ones.
    for parts in sorted(removals, key=lambda p: [(-x if isinstance(x, int) else 0) for x in p]):
        _remove(new, parts)
    return new, resolved


def _add(item: dict, parts: tuple, value: dict) -> None:
    current = get_path(item, parts)
    if current is None:
        _set(item, parts, value)
        return
    t = next(iter(value))
    if t == "N" and "N" in current:
        _set(item, parts, {"N": add_numbers(current["N"], value["N"])})
    elif t in SET_TYPES and t in current:
        members = list(current[t])
        for m in value[t]:
            if not any(values_equal({SET_TYPES[t]: m}, {SET_TYPES[t]: x}) for x in members):
                members.append(m)
        _set(item, parts, {t: members})
    else:
        raise validation(_BAD_TYPE)


def _delete(item: dict, parts: tuple, value: dict) -> None:
    current = get_path(item, parts)
    if current is None:
        return
    t = next(iter(value))
    if t not in current:
        raise validation(_BAD_TYPE)
    scalar = SET_TYPES[t]
    members = [x for x in current[t] if not any(values_equal({scalar: x}, {scalar: m}) for m in value[t])]
    if members:
        _set(item, parts, {t: members})
    else:
        _remove(item, parts)
