"""Model constraints on a parsed request: required members, lengths, ranges, enums.

AWS checks these before an operation runs and answers with one ValidationException that lists
every broken constraint in the service's words ("1 validation error detected: Value 'x' at
'keyId' failed to satisfy constraint: Member must have length less than or equal to 2048").
The checks are compiled once per input shape from botocore's model, so a provider can call
`validation_errors(shape, params)` on every request for the price of a few dict lookups.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from botocore.model import Shape

Check = Callable[[Any, str, list[str]], None]

_LIMIT = 128  # characters of a value quoted in a message; AWS shortens long values too


def _quote(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return "java.nio.HeapByteBuffer"
    text = str(value)
    return f"'{text if len(text) <= _LIMIT else text[:_LIMIT] + '...'}'"


def _wire_name(name: str) -> str:
    return name[:1].lower() + name[1:]


def _compile(shape: Shape) -> Check | None:
    meta = shape.metadata
    kind = shape.type_name
    checks: list[Check] = []
    if kind in ("string", "blob", "list", "map"):
        lo, hi = meta.get("min"), meta.get("max")
        if lo is not None or hi is not None:
            checks.append(_length_check(lo, hi))
    if kind in ("integer", "long") and ("min" in meta or "max" in meta):
        checks.append(_range_check(meta.get("min"), meta.get("max")))
    if kind == "string" and shape.enum:
        checks.append(_enum_check(tuple(shape.enum)))
    if kind == "string" and meta.get("pattern"):
        pattern = _pattern_check(meta["pattern"])
        if pattern is not None:
            checks.append(pattern)
    if kind == "structure":
        members = {name: _compile_cached(member) for name, member in shape.members.items()}
        required = tuple(shape.required_members)
        checks.append(_structure_check(members, required))
    elif kind == "list":
        inner = _compile_cached(shape.member)
        if inner is not None:
            checks.append(_list_check(inner))
    elif kind == "map":
        key, value = _compile_cached(shape.key), _compile_cached(shape.value)
        if key is not None or value is not None:
            checks.append(_map_check(key, value))
    if not checks:
        return None
    if len(checks) == 1:
        return checks[0]

    def all_checks(value: Any, path: str, out: list[str]) -> None:
        for check in checks:
            check(value, path, out)

    return all_checks


_cache: dict[int, Check | None] = {}


def _compile_cached(shape: Shape) -> Check | None:
    # Keyed by identity: botocore hands out one Shape object per name and model load, and the
    # recursion in shapes (a structure containing itself) ends at the placeholder set here.
    key = id(shape)
    if key in _cache:
        return _cache[key]
    _cache[key] = None
    check = _compile(shape)
    _cache[key] = check
    return check


def _length_check(lo: int | None, hi: int | None) -> Check:
    def check(value: Any, path: str, out: list[str]) -> None:
        try:
            n = len(value)
        except TypeError:
            return
        if lo is not None and n < lo:
            out.append(
                f"Value {_quote(value)} at '{path}' failed to satisfy constraint: "
                f"Member must have length greater than or equal to {lo}"
            )
        elif hi is not None and n > hi:
            out.append(
                f"Value {_quote(value)} at '{path}' failed to satisfy constraint: "
                f"Member must have length less than or equal to {hi}"
            )

    return check


def _range_check(lo: int | None, hi: int | None) -> Check:
    def check(value: Any, path: str, out: list[str]) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            return
        if lo is not None and value < lo:
            out.append(
                f"Value '{value}' at '{path}' failed to satisfy constraint: "
                f"Member must have value greater than or equal to {lo}"
            )
        elif hi is not None and value > hi:
            out.append(
                f"Value '{value}' at '{path}' failed to satisfy constraint: "
                f"Member must have value less than or equal to {hi}"
            )

    return check


def _enum_check(values: tuple[str, ...]) -> Check:
    allowed = frozenset(values)
    listed = ", ".join(values)

    def check(value: Any, path: str, out: list[str]) -> None:
        if isinstance(value, str) and value not in allowed:
            out.append(
                f"Value {_quote(value)} at '{path}' failed to satisfy constraint: "
                f"Member must satisfy enum value set: [{listed}]"
            )

    return check


def _pattern_check(pattern: str) -> Check | None:
    try:
        regex = re.compile(pattern)
    except re.error:  # a Java-only construct: the provider checks what matters itself
        return None

    def check(value: Any, path: str, out: list[str]) -> None:
        if isinstance(value, str) and regex.fullmatch(value) is None:
            out.append(
                f"Value {_quote(value)} at '{path}' failed to satisfy constraint: "
                f"Member must satisfy regular expression pattern: {pattern}"
            )

    return check


def _structure_check(members: dict[str, Check | None], required: tuple[str, ...]) -> Check:
    active = [(name, _wire_name(name), check) for name, check in members.items() if check is not None]
    wire = {name: _wire_name(name) for name in required}

    def check(value: Any, path: str, out: list[str]) -> None:
        if not isinstance(value, dict):
            return
        prefix = f"{path}." if path else ""
        for name in required:
            if value.get(name) is None:
                out.append(
                    f"Value null at '{prefix}{wire[name]}' failed to satisfy constraint: "
                    "Member must not be null"
                )
        for name, wname, member_check in active:
            member = value.get(name)
            if member is not None:
                member_check(member, prefix + wname, out)

    return check


def _list_check(inner: Check) -> Check:
    def check(value: Any, path: str, out: list[str]) -> None:
        if isinstance(value, list):
            for i, item in enumerate(value, 1):
                if item is not None:
                    inner(item, f"{path}.{i}.member", out)

    return check


def _map_check(key: Check | None, val: Check | None) -> Check:
    def check(value: Any, path: str, out: list[str]) -> None:
        if not isinstance(value, dict):
            return
        for k, v in value.items():
            if key is not None:
                key(k, f"{path}.key", out)
            if val is not None and v is not None:
                val(v, f"{path}.value", out)

    return check


def validation_errors(shape: Shape | None, params: dict) -> list[str]:
    """Every broken model constraint of `params`, each worded as AWS words it."""
    if shape is None:
        return []
    check = _compile_cached(shape)
    if check is None:
        return []
    out: list[str] = []
    check(params, "", out)
    return out


def validation_message(errors: list[str]) -> str:
    """AWS's summary line: '1 validation error detected: ...' or 'N validation errors detected: a; b'."""
    n = len(errors)
    return f"{n} validation error{'s' if n != 1 else ''} detected: " + "; ".join(errors)
