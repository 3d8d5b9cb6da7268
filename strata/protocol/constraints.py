"""Model constraints on a parsed request: required members, lengths, ranges, enums, patterns.

AWS checks these before an operation runs and answers with one ValidationException that lists
every broken constraint in the service's words ("1 validation error detected: Value 'x' at
'keyId' failed to satisfy constraint: Member must have length less than or equal to 2048"), in
the order of the shape's members. The checks are compiled once per input shape from botocore's
model. Each compiled node is a pair: `ok(value)`, a quick yes/no a request pays on every call,
and `report(value, path, out)`, which words the broken constraints and runs only when `ok` said
no — so a provider can call `checker(shape)` on a hot path for the price of a few dict lookups.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NamedTuple

from botocore.model import Shape

Report = Callable[[Any, str, list[str]], None]

_LIMIT = 128  # characters of a value quoted in a message; AWS shortens long values too


class Node(NamedTuple):
    ok: Callable[[Any], bool]
    report: Report


def _quote(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return "java.nio.HeapByteBuffer"
    text = str(value)
    return f"'{text if len(text) <= _LIMIT else text[:_LIMIT] + '...'}'"


def _wire_name(name: str) -> str:
    return name[:1].lower() + name[1:]


def _broken(value: Any, path: str, rule: str) -> str:
    return f"Value {_quote(value)} at '{path}' failed to satisfy constraint: Member must {rule}"


def _compile(shape: Shape, skip: frozenset[str]) -> Node | None:
    meta = shape.metadata
    kind = shape.type_name
    nodes: list[Node] = []
    # The order AWS lists one member's broken constraints in: pattern, then length (DynamoDB's
    # "Value '' at 'tableName'": the pattern, then "length greater than or equal to 3").
    if kind == "string" and meta.get("pattern"):
        pattern = _pattern(meta["pattern"])
        if pattern is not None:
            nodes.append(pattern)
    if kind in ("string", "blob", "list", "map") and ("min" in meta or "max" in meta):
        nodes.append(_length(meta.get("min"), meta.get("max")))
    if kind in ("integer", "long") and ("min" in meta or "max" in meta):
        nodes.append(_range(meta.get("min"), meta.get("max")))
    if kind == "string" and shape.enum:
        nodes.append(_enum(tuple(shape.enum)))
    if kind == "structure":
        members = {name: _compile_cached(member, skip) for name, member in shape.members.items()}
        nodes.append(_structure(members, tuple(shape.required_members)))
    elif kind == "list":
        inner = _compile_cached(shape.member, skip)
        if inner is not None:
            nodes.append(_list(inner))
    elif kind == "map":
        key, value = _compile_cached(shape.key, skip), _compile_cached(shape.value, skip)
        if key is not None or value is not None:
            nodes.append(_map(key, value))
    if not nodes:
        return None
    if len(nodes) == 1:
        return nodes[0]
    oks = tuple(n.ok for n in nodes)

    def report(value: Any, path: str, out: list[str]) -> None:
        for node in nodes:
            if not node.ok(value):
                node.report(value, path, out)

    return Node(lambda value: all(ok(value) for ok in oks), report)


_cache: dict[tuple, Node | None] = {}
_MAX_LENGTH: dict[int, int] = {}  # length checks with only a maximum (id of the node -> maximum)
_PENDING = Node(lambda value: True, lambda value, path, out: None)


def _compile_cached(shape: Shape, skip: frozenset[str] = frozenset()) -> Node | None:
    # Keyed by the model (its shape resolver) and the shape's name: botocore builds a new Shape
    # object for every reference, so a recursive shape (DynamoDB's AttributeValue holds lists of
    # itself) ends at the placeholder set here for its name. `skip` names shapes the provider
    # validates itself (nothing of theirs is checked here).
    key = (id(getattr(shape, "_shape_resolver", None)), shape.name, skip)
    if key in _cache:
        return _cache[key]
    _cache[key] = None
    node = None if shape.name in skip else _compile(shape, skip)
    _cache[key] = node
    return node


def _length(lo: int | None, hi: int | None) -> Node:
    low = lo if lo is not None else 0
    high = hi if hi is not None else float("inf")

    def ok(value: Any) -> bool:
        try:
            return low <= len(value) <= high
        except TypeError:
            return True

    def report(value: Any, path: str, out: list[str]) -> None:
        n = len(value)
        if n < low:
            out.append(_broken(value, path, f"have length greater than or equal to {lo}"))
        elif n > high:
            out.append(_broken(value, path, f"have length less than or equal to {hi}"))

    node = Node(ok, report)
    if lo is None and hi is not None:
        _MAX_LENGTH[id(node)] = hi
    return node


def _range(lo: int | None, hi: int | None) -> Node:
    low = lo if lo is not None else float("-inf")
    high = hi if hi is not None else float("inf")

    def ok(value: Any) -> bool:
        return not isinstance(value, int) or isinstance(value, bool) or low <= value <= high

    def report(value: Any, path: str, out: list[str]) -> None:
        rule = f"greater than or equal to {lo}" if value < low else f"less than or equal to {hi}"
        out.append(f"Value '{value}' at '{path}' failed to satisfy constraint: Member must have value {rule}")

    return Node(ok, report)


def _enum(values: tuple[str, ...]) -> Node:
    allowed = frozenset(values)
    listed = ", ".join(values)
    return Node(
        lambda value: not isinstance(value, str) or value in allowed,
        lambda value, path, out: out.append(_broken(value, path, f"satisfy enum value set: [{listed}]")),
    )


def _pattern(pattern: str) -> Node | None:
    try:
        regex = re.compile(pattern)
    except re.error:  # a Java-only construct: the provider checks what matters itself
        return None
    return Node(
        lambda value: not isinstance(value, str) or regex.fullmatch(value) is not None,
        lambda value, path, out: out.append(
            _broken(value, path, f"satisfy regular expression pattern: {pattern}")
        ),
    )


def _structure(members: dict[str, Node | None], required: tuple[str, ...]) -> Node:
    active = {name: node for name, node in members.items() if node is not None}
    oks = {name: node.ok for name, node in active.items()}
    wire = {name: _wire_name(name) for name in members}
    needed = frozenset(required)

    def ok(value: Any) -> bool:
        if type(value) is not dict:
            return True
        for name, member in value.items():
            check = oks.get(name)
            if check is not None and member is not None and not check(member):
                return False
        # (A required member sent as null the codecs refuse before a provider runs.)
        return not needed or needed <= value.keys()

    def report(value: Any, path: str, out: list[str]) -> None:
        # Every member in the model's order: a required one missing, else its own constraints.
        prefix = f"{path}." if path else ""
        for name in members:
            member = value.get(name)
            if member is None:
                if name in needed:
                    out.append(
                        f"Value null at '{prefix}{wire[name]}' failed to satisfy constraint: "
                        "Member must not be null"
                    )
                continue
            node = active.get(name)
            if node is not None and not node.ok(member):
                node.report(member, prefix + wire[name], out)

    return Node(ok, report)


def _list(inner: Node) -> Node:
    inner_ok = inner.ok

    def ok(value: Any) -> bool:
        return not isinstance(value, list) or all(x is None or inner_ok(x) for x in value)

    def report(value: Any, path: str, out: list[str]) -> None:
        for i, item in enumerate(value, 1):
            if item is not None and not inner_ok(item):
                inner.report(item, f"{path}.{i}.member", out)

    return Node(ok, report)


def _map(key: Node | None, val: Node | None) -> Node:
    key_ok = key.ok if key is not None else None
    val_ok = val.ok if val is not None else None
    longest = _MAX_LENGTH.get(id(key)) if key is not None else None

    def ok(value: Any) -> bool:
        if type(value) is not dict or not value:
            return True
        if longest is not None:  # only the keys' maximum length (DynamoDB's attribute names): in C
            if max(map(len, value)) > longest:
                return False
        elif key_ok is not None and not all(map(key_ok, value)):
            return False
        return val_ok is None or all(v is None or val_ok(v) for v in value.values())

    def report(value: Any, path: str, out: list[str]) -> None:
        for k, v in value.items():
            if key is not None and not key.ok(k):
                key.report(k, f"{path}.key", out)
            if val is not None and v is not None and not val.ok(v):
                val.report(v, f"{path}.value", out)

    return Node(ok, report)


def validation_errors(shape: Shape | None, params: dict, skip: frozenset[str] = frozenset()) -> list[str]:
    """Every broken model constraint of `params`, each worded as AWS words it, in the order of
    the shape's members (`skip`: names of shapes not to enter)."""
    node = _compile_cached(shape, skip) if shape is not None else None
    out: list[str] = []
    if node is not None and not node.ok(params):
        node.report(params, "", out)
    return out


def compiled(shape: Shape | None, skip: frozenset[str] = frozenset()) -> Node | None:
    """The checks of one input shape, or None when it has no constraint: `ok(params)` on every
    request (a few dict lookups when nothing is broken), `report(params, "", out)` when not ok."""
    return _compile_cached(shape, skip) if shape is not None else None


def validation_message(errors: list[str]) -> str:
    """AWS's summary line: '1 validation error detected: ...' or 'N validation errors detected: a; b'."""
    n = len(errors)
    return f"{n} validation error{'s' if n != 1 else ''} detected: " + "; ".join(errors)
