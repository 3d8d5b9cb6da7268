"""DynamoDB JSON in the item editor: type checking with messages naming the attribute, and the
conversion between the editor's text (binary as base64, as the wire and the AWS console show it)
and botocore's values (binary as bytes)."""

from __future__ import annotations

import base64
import binascii
import json
from decimal import Decimal, InvalidOperation
from typing import Any

TYPES = ("S", "N", "B", "SS", "NS", "BS", "M", "L", "NULL", "BOOL")


class ItemError(ValueError):
    """The editor's text is not a valid DynamoDB JSON item; `problems` lists each, by path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _number(text: Any) -> bool:
    if not isinstance(text, str):
        return False
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        return False
    return value.is_finite()


def _base64(text: Any) -> bool:
    if not isinstance(text, str):
        return False
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _check_value(path: str, value: Any, problems: list[str]) -> None:
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in TYPES:
        problems.append(
            f'{path}: give one type and its value, like {{"S": "text"}} (types: {", ".join(TYPES)})'
        )
        return
    kind, inner = next(iter(value.items()))
    if kind == "S" and not isinstance(inner, str):
        problems.append(f"{path}: S takes a string")
    elif kind == "N" and not _number(inner):
        problems.append(f'{path}: N takes a number written as a string, like {{"N": "42"}}')
    elif kind == "B" and not _base64(inner):
        problems.append(f"{path}: B takes base64 text")
    elif kind in ("SS", "NS", "BS"):
        check = {"SS": lambda v: isinstance(v, str), "NS": _number, "BS": _base64}[kind]
        if not isinstance(inner, list) or not inner:
            problems.append(f"{path}: {kind} takes a non-empty list")
        elif not all(check(v) for v in inner):
            element = {"SS": "strings", "NS": "numbers written as strings", "BS": "base64 texts"}[kind]
            problems.append(f"{path}: {kind} holds only {element}")
        elif len(set(inner)) != len(inner):
            problems.append(f"{path}: {kind} holds no duplicates")
    elif kind == "M":
        if not isinstance(inner, dict):
            problems.append(f"{path}: M takes an object of attributes")
        else:
            for name, member in inner.items():
                _check_value(f"{path}.{name}", member, problems)
    elif kind == "L":
        if not isinstance(inner, list):
            problems.append(f"{path}: L takes a list")
        else:
            for i, member in enumerate(inner):
                _check_value(f"{path}[{i}]", member, problems)
    elif kind == "NULL" and inner is not True:
        problems.append(f"{path}: NULL takes true")
    elif kind == "BOOL" and not isinstance(inner, bool):
        problems.append(f"{path}: BOOL takes true or false")


def parse_item(text: str, key_types: dict[str, str]) -> dict:
    """The item the editor's `text` holds, for botocore; ItemError lists every problem found.

    `key_types` maps the table's key attribute names to their type (S, N or B): each must be
    present with that type.
    """
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise ItemError([f"not JSON: {e}"]) from None
    if not isinstance(doc, dict):
        raise ItemError(["the item is a JSON object of attributes"])
    problems: list[str] = []
    for name, value in doc.items():
        _check_value(name, value, problems)
    for name, kind in key_types.items():
        value = doc.get(name)
        if not isinstance(value, dict) or kind not in value:
            problems.append(f"{name}: the key attribute must be present, of type {kind}")
    if problems:
        raise ItemError(problems)
    return _to_botocore(doc)


def _to_botocore(doc: Any) -> Any:
    """Base64 binary -> bytes, everywhere in a checked item."""
    if isinstance(doc, dict):
        out: dict[str, Any] = {}
        for k, v in doc.items():
            if k == "B" and isinstance(v, str) and len(doc) == 1:
                out[k] = base64.b64decode(v)
            elif k == "BS" and isinstance(v, list) and len(doc) == 1:
                out[k] = [base64.b64decode(x) for x in v]
            else:
                out[k] = _to_botocore(v)
        return out
    if isinstance(doc, list):
        return [_to_botocore(v) for v in doc]
    return doc


def to_text(item: Any) -> Any:
    """botocore's item with bytes as base64 (JSON-ready): what the editor and the links show."""
    if isinstance(item, bytes | bytearray):
        return base64.b64encode(item).decode()
    if isinstance(item, dict):
        return {k: to_text(v) for k, v in item.items()}
    if isinstance(item, list):
        return [to_text(v) for v in item]
    return item


def brief(value: dict) -> str:
    """A table cell's rendition of one attribute value: scalars plain, the rest as compact JSON."""
    kind, inner = next(iter(value.items()))
    if kind in ("S", "N"):
        return str(inner)
    if kind == "BOOL":
        return "true" if inner else "false"
    if kind == "NULL":
        return "null"
    return json.dumps(to_text(value), separators=(",", ":"))[:200]
