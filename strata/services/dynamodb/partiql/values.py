"""PartiQL values: literals and `?` parameters become AttributeValues.

A parsed statement keeps each value as a slot, so one parse serves every request that reuses the
statement text: `("c", av)` a constant, `("p", n)` the n-th parameter, `("L", slots)` a list,
`("M", ((key, slot), ...))` a map, `("bag", slots)` a `<<set>>` literal. Slots whose parts are all
constant are folded to a constant when parsed.
"""

from __future__ import annotations

from strata.services.dynamodb.errors import validation

Slot = tuple

_BAG_TYPES = {"S": "SS", "N": "NS", "B": "BS"}
_BAD_BAG = "Unsupported data type in Bag. DynamoDB only supports either numbers or strings in bags"


def constant(av: dict) -> Slot:
    return ("c", av)


def list_slot(items: list[Slot]) -> Slot:
    if all(s[0] == "c" for s in items):
        return ("c", {"L": [s[1] for s in items]})
    return ("L", tuple(items))


def map_slot(pairs: list[tuple[str, Slot]]) -> Slot:
    seen: set[str] = set()
    for k, _ in pairs:
        if k in seen:
            raise validation(f"Duplicate keys in tuple. Key: {k} under item")
        seen.add(k)
    if all(s[0] == "c" for _, s in pairs):
        return ("c", {"M": {k: s[1] for k, s in pairs}})
    return ("M", tuple(pairs))


def bag_slot(items: list[Slot]) -> Slot:
    if not items:
        raise validation("Empty bags are not supported")
    if all(s[0] == "c" for s in items):
        return ("c", _bag([s[1] for s in items]))
    return ("bag", tuple(items))


def _bag(members: list[dict]) -> dict:
    kinds = {next(iter(m)) if isinstance(m, dict) and len(m) == 1 else None for m in members}
    if len(kinds) != 1 or next(iter(kinds)) not in _BAG_TYPES:
        raise validation(_BAD_BAG)
    kind = next(iter(kinds))
    return {_BAG_TYPES[kind]: [m[kind] for m in members]}  # type: ignore[index]


def bind(slot: Slot, params: list) -> dict:
    """The AttributeValue of a slot for this request's Parameters."""
    tag, body = slot
    if tag == "c":
        return body
    if tag == "p":
        return params[body]
    if tag == "L":
        return {"L": [bind(s, params) for s in body]}
    if tag == "M":
        return {"M": {k: bind(s, params) for k, s in body}}
    return _bag([bind(s, params) for s in body])
