"""DynamoDB's condition keys that only the table's key schema can answer, for fine-grained access
control: `dynamodb:LeadingKeys` (the partition key values a request touches: a policy with
`ForAllValues:StringEquals` on `${aws:userid}` confines a user to their own items) and
`dynamodb:Attributes` (the top-level attribute names it reads or writes), with `dynamodb:Select`
for reads: the Select asked for, else SPECIFIC_ATTRIBUTES when a projection names them, else
ALL_ATTRIBUTES — so the documented attribute policy (`StringEqualsIfExists` Select
SPECIFIC_ATTRIBUTES) refuses a GetItem that would return every attribute.

Asked only when a policy has such a condition (the authorizer's `condition_key` hook), so the
request path pays nothing otherwise. Batch and transaction requests give the keys of all their
tables together: `ForAllValues` then holds only when every item of every table is allowed.
PartiQL statements answer from the item-operation requests they compile to (partiql/authz.py).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

from strata.auth.enforce import CALLER_OPERATION, CALLER_SCOPE
from strata.protocol.errors import ServiceError
from strata.services.dynamodb.expressions import ast
from strata.services.dynamodb.expressions.parser import parse
from strata.services.dynamodb.partiql import authz as partiql_authz
from strata.services.dynamodb.state import State, table_name
from strata.services.dynamodb.tables import TableMeta


def _text(value: object) -> str | None:
    """A key attribute value as policies compare it (S and N as written, B as base64)."""
    if not isinstance(value, dict) or len(value) != 1:
        return None
    kind, raw = next(iter(value.items()))
    if kind in ("S", "N") and isinstance(raw, str):
        return raw
    if kind == "B" and isinstance(raw, bytes):
        return base64.b64encode(raw).decode()
    return None


def _name(part: object, names: dict) -> str | None:
    if isinstance(part, ast.NameRef):
        resolved = names.get(part.ref)
        return resolved if isinstance(resolved, str) else None
    return part if isinstance(part, str) else None


def _paths(node: object) -> Iterator[ast.Path]:
    """Every document path in an expression tree."""
    if isinstance(node, ast.Path):
        yield node
    elif isinstance(node, tuple):
        for child in node:
            yield from _paths(child)
    elif hasattr(node, "__dataclass_fields__"):
        for field in node.__dataclass_fields__:
            yield from _paths(getattr(node, field))


class _Entry:
    """One table's part of a request: its parameters and the table they name."""

    def __init__(self, meta: TableMeta, req: dict) -> None:
        self.meta = meta
        self.req = req

    def leading_keys(self) -> list[str]:
        req, hash_key = self.req, self.meta.hash_key
        out: list[str] = []
        for member in ("Key", "Item"):
            if isinstance(req.get(member), dict):
                value = _text(req[member].get(hash_key))
                if value is not None:
                    out.append(value)
        for key in req.get("Keys") or ():  # BatchGetItem / TransactGetItems entries
            if isinstance(key, dict):
                value = _text(key.get(hash_key))
                if value is not None:
                    out.append(value)
        out.extend(self._queried())
        return out

    def _queried(self) -> list[str]:
        """The partition key value a Query names (its key condition's equality on the hash key of
        the table or index it reads)."""
        req = self.req
        hash_key = self.meta.hash_key
        index = req.get("IndexName")
        if isinstance(index, str):
            hash_key = next((ix.hash_key for ix in self.meta.indexes if ix.name == index), hash_key)
        legacy = req.get("KeyConditions")
        if isinstance(legacy, dict) and isinstance(legacy.get(hash_key), dict):
            values = legacy[hash_key].get("AttributeValueList") or []
            first = _text(values[0]) if values else None
            return [first] if first is not None else []
        text = req.get("KeyConditionExpression")
        if not isinstance(text, str):
            return []
        try:
            tree = parse("KeyConditionExpression", text).tree
        except ServiceError:  # the operation answers the bad expression itself
            return []
        names, values = req.get("ExpressionAttributeNames") or {}, req.get("ExpressionAttributeValues") or {}
        stack = [tree]
        while stack:
            node = stack.pop()
            if isinstance(node, ast.And):
                stack += [node.left, node.right]
            elif isinstance(node, ast.Compare) and node.op == "=":
                for path, other in ((node.left, node.right), (node.right, node.left)):
                    if (
                        isinstance(path, ast.Path)
                        and len(path.parts) == 1
                        and _name(path.parts[0], names) == hash_key
                        and isinstance(other, ast.ValueRef)
                    ):
                        value = _text(values.get(other.ref))
                        return [value] if value is not None else []
        return []

    def attributes(self) -> list[str]:
        req = self.req
        names = req.get("ExpressionAttributeNames") or {}
        out: set[str] = set()
        for member in ("Item", "Key", "AttributeUpdates"):
            if isinstance(req.get(member), dict):
                out.update(str(k) for k in req[member])
        for member in ("AttributesToGet",):
            if isinstance(req.get(member), list):
                out.update(str(k) for k in req[member])
        for member, kind in (
            ("ProjectionExpression", "ProjectionExpression"),
            ("UpdateExpression", "UpdateExpression"),
            ("ConditionExpression", "ConditionExpression"),
            ("FilterExpression", "FilterExpression"),
            ("KeyConditionExpression", "KeyConditionExpression"),
        ):
            text = req.get(member)
            if not isinstance(text, str):
                continue
            try:
                tree = parse(kind, text).tree
            except ServiceError:
                continue
            for path in _paths(tree):
                top = _name(path.parts[0], names) if path.parts else None
                if top is not None:
                    out.add(top)
        return sorted(out)


_READS = ("GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems")


def _select(req: dict) -> str | None:
    if isinstance(req.get("Select"), str):
        return req["Select"]
    if CALLER_OPERATION.get() in partiql_authz.OPERATIONS:
        return partiql_authz.select_key(CALLER_OPERATION.get(), req)
    if CALLER_OPERATION.get() not in _READS:
        return None
    specs = [req]
    if isinstance(req.get("RequestItems"), dict):
        specs = [s for s in req["RequestItems"].values() if isinstance(s, dict)]
    if specs and all(s.get("ProjectionExpression") or s.get("AttributesToGet") for s in specs):
        return "SPECIFIC_ATTRIBUTES"
    return "ALL_ATTRIBUTES"


class ConditionKeys:
    """Mixed into DynamoDBProvider, which supplies `state`."""

    state: State

    def condition_key(self, req: dict, key: str) -> Any:
        if key == "dynamodb:select":
            return _select(req)
        if key not in ("dynamodb:leadingkeys", "dynamodb:attributes"):
            return None
        entries = list(self._entries(req))
        if not entries:
            return None
        if key == "dynamodb:leadingkeys":
            return [v for e in entries for v in e.leading_keys()] or None
        return sorted({a for e in entries for a in e.attributes()}) or None

    def _entries(self, req: dict) -> Iterator[_Entry]:
        account, region = CALLER_SCOPE.get()
        scope = f"{account}:{region}"
        operation = CALLER_OPERATION.get()
        if self.state.shared:  # tables another gateway created or changed (state.State.sync)
            self.state.sync()
        if operation in partiql_authz.OPERATIONS:  # the item operations the statements compile to
            for m, compiled in partiql_authz.requests(self.state, scope, operation, req):
                yield _Entry(m, compiled)
            return

        def meta(name: object) -> TableMeta | None:
            return self.state.tables.get((scope, table_name(name)))

        if "TableName" in req:
            m = meta(req["TableName"])
            if m is not None:
                yield _Entry(m, req)
            return
        items = req.get("RequestItems")
        if isinstance(items, dict):  # BatchGetItem / BatchWriteItem
            for name, spec in items.items():
                m = meta(name)
                if m is None:
                    continue
                if isinstance(spec, dict):  # BatchGetItem: {"Keys": [...], ...}
                    yield _Entry(m, spec)
                elif isinstance(spec, list):  # BatchWriteItem: [{"PutRequest": {...}}, ...]
                    for write in spec:
                        for inner in (write or {}).values():
                            if isinstance(inner, dict):
                                yield _Entry(m, inner)
        for item in req.get("TransactItems") or ():  # TransactGetItems / TransactWriteItems
            for inner in (item or {}).values():
                if isinstance(inner, dict) and "TableName" in inner:
                    m = meta(inner["TableName"])
                    if m is not None:
                        yield _Entry(m, inner)
