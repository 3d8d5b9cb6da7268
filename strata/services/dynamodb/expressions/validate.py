"""Per-request checks that tie parsed expressions to ExpressionAttributeNames/Values.

Every placeholder used must be defined, every one defined must be used by some expression of
the request, and every value must be a valid AttributeValue — with DynamoDB's wording.
"""

from __future__ import annotations

from strata.protocol.errors import ServiceError
from strata.services.dynamodb.errors import validation
from strata.services.dynamodb.expressions import ast
from strata.services.dynamodb.expressions.evaluate import Env
from strata.services.dynamodb.expressions.parser import Parsed, parse
from strata.services.dynamodb.types import check_value


def prepare(req: dict, members: tuple[str, ...]) -> tuple[dict[str, Parsed], Env]:
    """Parse the expression members present in `req`; returns them by member name and the Env."""
    names = req.get("ExpressionAttributeNames")
    values = req.get("ExpressionAttributeValues")
    parsed: dict[str, Parsed] = {}
    for member in members:
        text = req.get(member)
        if text is not None:
            parsed[member] = parse(member, text)
    if names is not None and not names:
        raise validation("ExpressionAttributeNames must not be empty")
    if values is not None and not values:
        raise validation("ExpressionAttributeValues must not be empty")
    if not parsed:
        if names:
            raise validation("ExpressionAttributeNames can only be specified when using expressions")
        if values:
            raise validation("ExpressionAttributeValues can only be specified when using expressions")
        return parsed, _EMPTY
    names = names or {}
    values = values or {}
    used_names: set[str] = set()
    used_values: set[str] = set()
    for member, p in parsed.items():
        for ref in sorted(p.name_refs):
            if ref not in names:
                raise validation(
                    f"Invalid {member}: An expression attribute name used in the document path is not defined; "
                    f"attribute name: {ref}"
                )
        for ref in sorted(p.value_refs):
            if ref not in values:
                raise validation(
                    f"Invalid {member}: An expression attribute value used in expression is not defined; "
                    f"attribute value: {ref}"
                )
        used_names |= p.name_refs
        used_values |= p.value_refs
    unused = [k for k in names if k not in used_names]
    if unused:
        raise validation(
            f"Value provided in ExpressionAttributeNames unused in expressions: keys: {{{', '.join(unused)}}}"
        )
    unused = [k for k in values if k not in used_values]
    if unused:
        raise validation(
            f"Value provided in ExpressionAttributeValues unused in expressions: keys: {{{', '.join(unused)}}}"
        )
    checked = {}
    for k, v in values.items():
        try:
            checked[k], _ = check_value(v)
        except ServiceError as e:
            raise validation(
                f"ExpressionAttributeValues contains invalid value: {e.message} for key {k}"
            ) from None
    for member, p in parsed.items():
        if member == "UpdateExpression":
            check_update_operand_types(p.tree, checked)  # type: ignore[arg-type]
        elif member != "ProjectionExpression":
            check_operand_types(member, p.tree, checked)  # type: ignore[arg-type]
    return parsed, Env(names, checked)


_ORDERED = frozenset({"S", "N", "B"})


def _value_type(node: object, values: dict) -> str | None:
    if isinstance(node, ast.ValueRef):
        return next(iter(values[node.ref]))
    if isinstance(node, ast.Literal):
        return next(iter(node.value))
    return None


def check_update_operand_types(update: ast.Update, values: dict) -> None:
    """Arithmetic on a value that is not a number is refused before the item is read."""

    def walk(node: object) -> None:
        if isinstance(node, ast.Arithmetic):
            for side in (node.left, node.right):
                t = _value_type(side, values)
                if t is not None and t != "N":
                    raise validation(
                        "Invalid UpdateExpression: Incorrect operand type for operator or function; "
                        f"operator or function: {node.op}, operand type: {t}"
                    )
                walk(side)
        elif isinstance(node, ast.IfNotExists):
            walk(node.default)
        elif isinstance(node, ast.ListAppend):
            walk(node.left)
            walk(node.right)

    for action in update.actions:
        if isinstance(action, ast.SetAction):
            walk(action.value)


def check_operand_types(member: str, node: ast.Condition, values: dict) -> None:
    """Operands given as values must suit their operator (`a < :bool` is an error, not false)."""

    def bad(op: str, t: str) -> Exception:
        return validation(
            f"Invalid {member}: Incorrect operand type for operator or function; operator or function: {op}, "
            f"operand type: {t}"
        )

    if isinstance(node, (ast.And, ast.Or)):
        check_operand_types(member, node.left, values)
        check_operand_types(member, node.right, values)
    elif isinstance(node, ast.Not):
        check_operand_types(member, node.operand, values)
    elif isinstance(node, ast.Compare) and node.op not in ("=", "<>"):
        for side in (node.left, node.right):
            t = _value_type(side, values)
            if t is not None and t not in _ORDERED:
                raise bad(node.op, t)
    elif isinstance(node, ast.Between):
        for side in (node.operand, node.low, node.high):
            t = _value_type(side, values)
            if t is not None and t not in _ORDERED:
                raise bad("BETWEEN", t)
    elif isinstance(node, ast.Function) and node.name in ("begins_with", "attribute_type"):
        t = _value_type(node.args[1], values)
        allowed = ("S", "B") if node.name == "begins_with" else ("S",)
        if t is not None and t not in allowed:
            raise bad(node.name, t)


_EMPTY = Env()
