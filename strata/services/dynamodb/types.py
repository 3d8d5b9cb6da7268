"""The attribute-value model: validation, exact numbers, sets, and DynamoDB's size rules.

Values travel in their wire shape (`{"S": "x"}`, `{"N": "1.5"}`, `{"B": b"..."}` ...). Numbers are
kept as canonical decimal strings (no exponent, no trailing zeros) and compared as `Decimal` with
38 digits of precision, never floats. Sets keep their input order but never contain duplicates.
"""

from __future__ import annotations

import decimal
import re
from decimal import Decimal

from strata.services.dynamodb.errors import invalid_parameter, validation

MAX_ITEM_SIZE = 400 * 1024
MAX_DEPTH = 32
SCALAR_TYPES = frozenset({"S", "N", "B"})
SET_TYPES = {"SS": "S", "NS": "N", "BS": "B"}
ALL_TYPES = ("S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS")
_SET_NAMES = {"SS": "string set", "NS": "number set", "BS": "binary set"}

_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")
_PLAIN_INT = re.compile(r"-?[1-9]\d{0,37}\Z").match
_CTX = decimal.Context(prec=60, Emax=999999, Emin=-999999)


def number_value(text: str) -> Decimal:
    """A stored (already canonical) number as an exact Decimal."""
    return Decimal(text)


def canonical_number(text: object) -> str:
    """Validate a number string the way DynamoDB does and return its canonical form."""
    if isinstance(text, str) and _PLAIN_INT(text):  # already canonical: 1 to 38 digits, no sign +
        return text
    if not isinstance(text, str) or not _NUMBER.match(text):
        raise validation(f"The parameter cannot be converted to a numeric value: {text}")
    d = Decimal(text.strip())
    if not d:
        return "0"
    sign, digits, exp = d.as_tuple()
    # Strip leading and trailing zeros to count significant digits.
    i, j = 0, len(digits)
    while digits[i] == 0:
        i += 1
    while digits[j - 1] == 0:
        j -= 1
        exp += 1
    digits = digits[i:j]
    if len(digits) > 38:
        raise validation("Attempting to store more than 38 significant digits in a Number")
    adjusted = exp + len(digits) - 1
    if adjusted > 125:
        raise validation(
            "Number overflow. Attempting to store a number with magnitude larger than supported range"
        )
    if adjusted < -130:
        raise validation(
            "Number underflow. Attempting to store a number with magnitude smaller than supported range"
        )
    return format_number(sign, digits, exp)


def format_number(sign: int, digits: tuple[int, ...], exp: int) -> str:
    """Plain (never scientific) decimal notation of sign * digits * 10**exp."""
    s = "".join(map(str, digits))
    if exp >= 0:
        s = s + "0" * exp
    else:
        point = len(s) + exp
        s = ("0." + "0" * -point + s) if point <= 0 else (s[:point] + "." + s[point:])
    return "-" + s if sign else s


def number_from_decimal(d: Decimal) -> str:
    """Canonical string of an exact arithmetic result (more than 38 digits is DynamoDB's error)."""
    if not d:
        return "0"
    return canonical_number(str(d))


def add_numbers(a: str, b: str, subtract: bool = False) -> str:
    """Exact a + b (or a - b) of two canonical numbers; never rounds silently."""
    x, y = Decimal(a), Decimal(b)
    return number_from_decimal(_CTX.subtract(x, y) if subtract else _CTX.add(x, y))


def _check_set(t: str, members: object) -> tuple[list, int]:
    if not isinstance(members, list):
        raise validation("Supplied AttributeValue has an invalid set")
    if not members:
        raise invalid_parameter(f"An {_SET_NAMES[t]}  may not be empty")
    size = 0
    if t == "NS":
        out = [canonical_number(m) for m in members]
        keys = [Decimal(m) for m in out]
        size = sum(number_size(m) for m in out)
    elif t == "SS":
        out = list(members)
        for m in out:
            if not isinstance(m, str):
                raise validation("Supplied AttributeValue has an invalid string set")
            size += len(m.encode())
        keys = out
    else:
        out = list(members)
        for m in out:
            if not isinstance(m, (bytes, bytearray)):
                raise validation("Supplied AttributeValue has an invalid binary set")
            size += len(m)
        keys = out
    if len(set(keys)) != len(keys):
        shown = ", ".join(str(m) for m in members)
        raise invalid_parameter(f"Input collection [{shown}] contains duplicates.")
    return out, size


def check_value(av: object, depth: int = 1) -> tuple[dict, int]:
    """Validate one AttributeValue; returns (canonical value, size in bytes by DynamoDB's rules)."""
    if not isinstance(av, dict) or len(av) != 1:
        if isinstance(av, dict) and len(av) > 1:
            raise validation(
                "Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes"
            )
        raise validation(
            "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes"
        )
    ((t, v),) = av.items()
    if t == "S":
        if not isinstance(v, str):
            raise validation("Supplied AttributeValue has an invalid string")
        return av, len(v.encode())
    if t == "N":
        n = canonical_number(v)
        return ({"N": n} if n != v else av), number_size(n)
    if t == "B":
        if not isinstance(v, (bytes, bytearray)):
            raise validation("Supplied AttributeValue has an invalid binary")
        return av, len(v)
    if t == "BOOL" or t == "NULL":
        if not isinstance(v, bool) or (t == "NULL" and v is not True):
            raise invalid_parameter("Null attribute value types must have the value of true")
        return av, 1
    if depth > MAX_DEPTH:
        raise validation("Nesting Levels have exceeded supported limits")
    if t == "M":
        if not isinstance(v, dict):
            raise validation("Supplied AttributeValue has an invalid map")
        out, size = {}, 3
        for name, sub in v.items():
            out[name], s = check_value(sub, depth + 1)
            size += len(name.encode()) + s + 1
        return {"M": out}, size
    if t == "L":
        if not isinstance(v, list):
            raise validation("Supplied AttributeValue has an invalid list")
        lst, size = [], 3
        for sub in v:
            c, s = check_value(sub, depth + 1)
            lst.append(c)
            size += s + 1
        return {"L": lst}, size
    if t in SET_TYPES:
        members, size = _check_set(t, v)
        return {t: members}, size
    raise validation("Supplied AttributeValue is empty, must contain exactly one of the supported datatypes")


def number_size(n: str) -> int:
    """Bytes a number occupies: about one per two significant digits, plus one."""
    digits = n.lstrip("-").replace(".", "").strip("0")
    return (len(digits) + 1) // 2 + 1


def check_item(item: object) -> tuple[dict, int]:
    """Validate a whole item; returns (canonical item, size). Enforces the 400 KB limit."""
    if not isinstance(item, dict):
        raise validation("Supplied item is not a map")
    out, size = {}, 0
    for name, av in item.items():
        if not name:
            raise invalid_parameter("An attribute name may not be empty")
        out[name], s = check_value(av)
        size += len(name.encode()) + s
    if size > MAX_ITEM_SIZE:
        raise validation("Item size has exceeded the maximum allowed size")
    return out, size


def value_size(av: dict) -> int:
    """Size of an already-valid value (stored items, update results)."""
    ((t, v),) = av.items()
    if t == "S":
        return len(v.encode())
    if t == "N":
        return number_size(v)
    if t == "B":
        return len(v)
    if t == "BOOL" or t == "NULL":
        return 1
    if t == "M":
        return 3 + sum(len(k.encode()) + value_size(x) + 1 for k, x in v.items())
    if t == "L":
        return 3 + sum(value_size(x) + 1 for x in v)
    if t == "SS":
        return sum(len(m.encode()) for m in v)
    if t == "NS":
        return sum(number_size(m) for m in v)
    return sum(len(m) for m in v)


def item_size(item: dict) -> int:
    return sum(len(k.encode()) + value_size(v) for k, v in item.items())


def type_of(av: dict) -> str:
    return next(iter(av))


def values_equal(a: dict, b: dict) -> bool:
    """DynamoDB equality: same type and value; sets compare regardless of order."""
    ((ta, va),) = a.items()
    ((tb, vb),) = b.items()
    if ta != tb:
        return False
    if ta == "N":
        return va == vb or Decimal(va) == Decimal(vb)
    if ta in SET_TYPES:
        if ta == "NS":
            return {Decimal(x) for x in va} == {Decimal(x) for x in vb}
        return set(va) == set(vb)
    if ta == "M":
        return va.keys() == vb.keys() and all(values_equal(va[k], vb[k]) for k in va)
    if ta == "L":
        return len(va) == len(vb) and all(values_equal(x, y) for x, y in zip(va, vb, strict=True))
    return va == vb


def sort_value(av: dict) -> object:
    """A Python value whose ordering is DynamoDB's for S, N and B (UTF-8 bytes, numeric, unsigned)."""
    ((t, v),) = av.items()
    if t == "N":
        return Decimal(v)
    return v  # str compares by code point, which is UTF-8 byte order; bytes compare unsigned
