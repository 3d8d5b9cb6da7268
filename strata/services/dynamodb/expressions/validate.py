"""Per-request checks that tie parsed expressions to ExpressionAttributeNames/Values.

Every placeholder used must be defined, every one defined must be used by some expression of
the request, and every value must be a valid AttributeValue — with DynamoDB's wording.
"""

from __future__ import annotations

from strata.protocol.errors import ServiceError
from strata.services.dynamodb.errors import validation
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
    return parsed, Env(names, checked)


_EMPTY = Env()
