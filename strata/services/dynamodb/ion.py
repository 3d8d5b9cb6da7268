"""Items in Amazon Ion text, the layout DynamoDB's ION exports write and its ION imports read.

One top-level value per item, `$ion_1_0 {Item:{...}}`, with DynamoDB's types mapped as AWS
documents them: S a string, N a decimal, B a blob, BOOL a bool, NULL a null, M a struct, L a
list, and the sets as annotated lists (`$dynamodb_SS::[...]`, `$dynamodb_NS::[...]` of decimals,
`$dynamodb_BS::[...]` of blobs). Reading accepts any Ion value of those kinds (ints and floats
as numbers, symbols as strings), so files written by other Ion tools load too. The Ion parsing
and printing is the `amazon.ion` library's; this module only maps the types.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from amazon.ion import simpleion
from amazon.ion.core import IonType
from amazon.ion.simple_types import IonPyList, IonPyNull

_SETS = {"SS": "$dynamodb_SS", "NS": "$dynamodb_NS", "BS": "$dynamodb_BS"}
_SET_OF = {v: k for k, v in _SETS.items()}


def _to_ion(value: dict) -> Any:
    (kind, v), *_ = value.items()
    if kind == "S" or kind == "BOOL":
        return v
    if kind == "N":
        return Decimal(v)
    if kind == "B":
        return bytes(v)
    if kind == "NULL":
        return None
    if kind == "M":
        return {k: _to_ion(x) for k, x in v.items()}
    if kind == "L":
        return [_to_ion(x) for x in v]
    members = [Decimal(x) if kind == "NS" else bytes(x) if kind == "BS" else x for x in v]
    return IonPyList.from_value(IonType.LIST, members, annotations=(_SETS[kind],))


def struct(item: dict) -> dict:
    """An item (attribute name to DynamoDB value) as an Ion struct's value."""
    return {k: _to_ion(v) for k, v in item.items()}


def dumps_line(value: Any) -> bytes:
    """One top-level value as one line of Ion text, with its version marker."""
    return simpleion.dumps(value, binary=False).encode()


def item_line(item: dict) -> bytes:
    """One item as one line of Ion text (binaries as raw bytes, as the store keeps them)."""
    return dumps_line({"Item": struct(item)})


def _number(v: Any) -> str:
    if isinstance(v, Decimal):
        return str(v)
    return str(int(v)) if isinstance(v, int) else repr(float(v))


def _scalar(v: Any) -> dict:
    if isinstance(v, IonPyNull) or v is None:
        return {"NULL": True}
    kind = getattr(v, "ion_type", None)
    if kind == IonType.BOOL or isinstance(v, bool):
        return {"BOOL": bool(v)}
    if kind in (IonType.INT, IonType.FLOAT, IonType.DECIMAL) or isinstance(v, int | float | Decimal):
        return {"N": _number(v)}
    if kind == IonType.SYMBOL:
        return {"S": str(v.text)}
    if kind in (IonType.BLOB, IonType.CLOB) or isinstance(v, bytes | bytearray):
        return {"B": bytes(v)}
    if isinstance(v, str):
        return {"S": str(v)}
    raise ValueError(f"not a DynamoDB value: {type(v).__name__}")


def _from_ion(v: Any) -> dict:
    if isinstance(v, Mapping):
        return {"M": {str(k): _from_ion(x) for k, x in v.items()}}
    if isinstance(v, list):
        notes = [getattr(a, "text", a) for a in getattr(v, "ion_annotations", ())]
        kind = next((_SET_OF[a] for a in notes if a in _SET_OF), None)
        if kind is None:
            return {"L": [_from_ion(x) for x in v]}
        inner = {"SS": "S", "NS": "N", "BS": "B"}[kind]
        values = []
        for x in v:
            (t, member), *_ = _scalar(x).items()
            if t != inner:
                raise ValueError(f"a {kind} member is not of type {inner}")
            values.append(member)
        return {kind: values}
    return _scalar(v)


def _item(value: Any) -> dict:
    if not isinstance(value, Mapping) or not isinstance(value.get("Item"), Mapping):
        raise ValueError("an Ion import value is a struct with an Item field")
    return {str(k): _from_ion(v) for k, v in value["Item"].items()}


def read_items(body: bytes) -> list[dict | None]:
    """The items of an Ion text object, in order; None for a value that is not an item.

    The whole object is parsed at once; if it is not valid Ion, each line is parsed alone
    (the one-value-a-line layout exports write) so one bad line costs only its item."""
    text = body.decode()
    try:
        values = simpleion.loads(text, single_value=False) if text.strip() else []
    except Exception:  # noqa: BLE001 - the Ion library raises several kinds; fall back to lines
        values = None
    out: list[dict | None] = []
    if values is not None:
        for value in values:
            try:
                out.append(_item(value))
            except (ValueError, TypeError, ArithmeticError):
                out.append(None)
        return out
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            parsed = simpleion.loads(line, single_value=False)
            out += [_item(v) for v in parsed] or [None]
        except Exception:  # noqa: BLE001 - a line that is not Ion is one error
            out.append(None)
    return out
