"""The Condition element: every IAM condition operator, compiled once per statement.

A Condition block is `{operator: {key: value-or-values}}`. All operators and all keys must hold
(AND); the values of one key are alternatives (OR) — for a negated operator (StringNotEquals,
NotIpAddress, ArnNotLike ...) the request value must match none of them. Semantics follow AWS's
documentation:

- a key missing from the request makes a positive operator false and a negated one true;
  `...IfExists` makes any operator true when its key is missing; `Null` tests presence itself;
- `ForAnyValue:` holds when some request value satisfies the operator (false when the key is
  missing or empty); `ForAllValues:` when every request value does (true when missing or empty);
- policy variables (`${aws:username}`) in String and Arn values are substituted per request;
- condition key names are case-insensitive; values are compared as the operator says.

`lookup(key)` gives a request's value for a lowercase key: None when absent, a str/bool/number
for single-valued keys, a list for multivalued ones.
"""

from __future__ import annotations

import base64
import functools
import ipaddress
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from strata.auth.patterns import arn_matcher, glob_matcher, substitute

Lookup = Callable[[str], Any]


class PolicyError(ValueError):
    """The document is not a valid policy; the message is IAM's MalformedPolicyDocument text."""


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _date(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    if text.isdigit():
        return float(text)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _network(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        return None


def _address(value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    return _parse_address(str(value).strip())


@functools.lru_cache(maxsize=1024)
def _parse_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    # Cached: a client's address is tested on every request an aws:SourceIp condition governs.
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


# Each base operator: (prepare policy values once, match one request value against them).
# A prepared policy value may be a callable of `lookup` when it holds policy variables.


def _string_eq(ignore_case: bool) -> Callable[[Any, list, Lookup], bool]:
    def match(req: Any, values: list, lookup: Lookup) -> bool:
        r = _text(req)
        if ignore_case:
            r = r.lower()
        for v in values:
            v = _resolve(v, lookup)
            if v is not None and (v.lower() if ignore_case else v) == r:
                return True
        return False

    return match


def _like(matcher: Callable[[str], Callable[[str], bool]]) -> Callable[[Any, list, Lookup], bool]:
    """StringLike / ArnLike: does any policy pattern (variables resolved) match the request value?"""

    def like(req: Any, values: list, lookup: Lookup) -> bool:
        r = _text(req)
        for v in values:
            v = _resolve(v, lookup)
            if v is not None and matcher(v)(r):
                return True
        return False

    return like


_string_like = _like(glob_matcher)
_arn_like = _like(arn_matcher)


def _resolve(value: str, lookup: Lookup) -> str | None:
    if "${" not in value or lookup is _literal:
        return value
    return substitute(value, lookup)


def _numeric(cmp: Callable[[float, float], bool]) -> Callable[[Any, list, Lookup], bool]:
    def match(req: Any, values: list, lookup: Lookup) -> bool:
        r = _number(req)
        return r is not None and any(v is not None and cmp(r, v) for v in values)

    return match


def _dates(cmp: Callable[[float, float], bool]) -> Callable[[Any, list, Lookup], bool]:
    def match(req: Any, values: list, lookup: Lookup) -> bool:
        r = _date(req)
        return r is not None and any(v is not None and cmp(r, v) for v in values)

    return match


def _bool(req: Any, values: list, lookup: Lookup) -> bool:
    r = _text(req).lower()
    return any(v == r for v in values)


def _binary(req: Any, values: list, lookup: Lookup) -> bool:
    r = req if isinstance(req, bytes) else _text(req).encode()
    return any(v == r for v in values)


def _ip(req: Any, values: list, lookup: Lookup) -> bool:
    addr = _address(req)
    return addr is not None and any(n is not None and addr.version == n.version and addr in n for n in values)


_EQ = lambda a, b: a == b  # noqa: E731
_NE = lambda a, b: a != b  # noqa: E731
_LT = lambda a, b: a < b  # noqa: E731
_LE = lambda a, b: a <= b  # noqa: E731
_GT = lambda a, b: a > b  # noqa: E731
_GE = lambda a, b: a >= b  # noqa: E731

_str = lambda v: _text(v)  # noqa: E731
_lower_bool = lambda v: _text(v).lower()  # noqa: E731


def _b64(v: Any) -> bytes | None:
    try:
        return base64.b64decode(_text(v), validate=True)
    except ValueError:
        return None


# name -> (match, negated, prepare)
OPERATORS: dict[str, tuple[Callable[[Any, list, Lookup], bool], bool, Callable[[Any], Any]]] = {
    "StringEquals": (_string_eq(False), False, _str),
    "StringNotEquals": (_string_eq(False), True, _str),
    "StringEqualsIgnoreCase": (_string_eq(True), False, _str),
    "StringNotEqualsIgnoreCase": (_string_eq(True), True, _str),
    "StringLike": (_string_like, False, _str),
    "StringNotLike": (_string_like, True, _str),
    "NumericEquals": (_numeric(_EQ), False, _number),
    "NumericNotEquals": (_numeric(_EQ), True, _number),
    "NumericLessThan": (_numeric(_LT), False, _number),
    "NumericLessThanEquals": (_numeric(_LE), False, _number),
    "NumericGreaterThan": (_numeric(_GT), False, _number),
    "NumericGreaterThanEquals": (_numeric(_GE), False, _number),
    "DateEquals": (_dates(_EQ), False, _date),
    "DateNotEquals": (_dates(_EQ), True, _date),
    "DateLessThan": (_dates(_LT), False, _date),
    "DateLessThanEquals": (_dates(_LE), False, _date),
    "DateGreaterThan": (_dates(_GT), False, _date),
    "DateGreaterThanEquals": (_dates(_GE), False, _date),
    "Bool": (_bool, False, _lower_bool),
    "BinaryEquals": (_binary, False, _b64),
    "IpAddress": (_ip, False, lambda v: _network(_text(v))),
    "NotIpAddress": (_ip, True, lambda v: _network(_text(v))),
    "ArnEquals": (_arn_like, False, _str),
    "ArnLike": (_arn_like, False, _str),
    "ArnNotEquals": (_arn_like, True, _str),
    "ArnNotLike": (_arn_like, True, _str),
}


class Condition:
    """One (operator, key, values) test."""

    __slots__ = (
        "operator",
        "key",
        "values",
        "match",
        "negated",
        "if_exists",
        "qualifier",
        "null",
        "variables",
    )
    match: Callable[[Any, list, Lookup], bool]

    def __init__(self, operator: str, key: str, raw_values: Any, variables: bool = True) -> None:
        self.operator = operator
        self.variables = variables
        self.key = key.lower()
        values = raw_values if isinstance(raw_values, list) else [raw_values]
        if not values or any(isinstance(v, dict | list) for v in values):
            raise PolicyError(f"Syntax errors in policy. Invalid value for condition key {key}.")
        qualifier, _, name = operator.rpartition(":")
        if qualifier not in ("", "ForAllValues", "ForAnyValue"):
            raise PolicyError(f"Syntax errors in policy. Invalid Condition type : {operator}.")
        self.qualifier = qualifier
        self.if_exists = name.endswith("IfExists") and name != "IfExists"
        if self.if_exists:
            name = name[: -len("IfExists")]
        self.null = name == "Null"
        if self.null:
            if self.if_exists:
                raise PolicyError(f"Syntax errors in policy. Invalid Condition type : {operator}.")
            self.values = [_text(v).lower() for v in values]
            self.match = _bool
            self.negated = False
            return
        spec = OPERATORS.get(name)
        if spec is None:
            raise PolicyError(f"Syntax errors in policy. Invalid Condition type : {operator}.")
        self.match, self.negated, prepare = spec
        self.values = [prepare(v) for v in values]

    def holds(self, lookup: Lookup) -> bool:
        value = lookup(self.key)
        if self.null:
            absent = value is None or value == [] or value == ""
            return ("true" if absent else "false") in self.values
        if value is None or (isinstance(value, list) and not value):
            if self.if_exists:
                return True
            if self.qualifier == "ForAllValues":
                return True
            if self.qualifier == "ForAnyValue":
                return False
            return self.negated
        request_values = value if isinstance(value, list) else [value]
        if not self.variables:
            lookup = _literal
        if self.qualifier == "ForAllValues":
            return all(self._one(v, lookup) for v in request_values)
        if self.qualifier == "ForAnyValue":
            return any(self._one(v, lookup) for v in request_values)
        if self.negated:
            return not any(self.match(v, self.values, lookup) for v in request_values)
        return any(self.match(v, self.values, lookup) for v in request_values)

    def _one(self, value: Any, lookup: Lookup) -> bool:
        hit = self.match(value, self.values, lookup)
        return not hit if self.negated else hit


def _literal(key: str) -> Any:
    raise AssertionError("not called: values are read literally")


def compile_conditions(block: Any, variables: bool = True) -> tuple[Condition, ...]:
    """The Condition element as a tuple of tests, all of which must hold."""
    if not isinstance(block, dict):
        raise PolicyError("Syntax errors in policy. Condition must be an object.")
    out = []
    for operator, tests in block.items():
        if not isinstance(tests, dict):
            raise PolicyError(f"Syntax errors in policy. Invalid Condition block for {operator}.")
        for key, values in tests.items():
            out.append(Condition(operator, key, values, variables))
    return tuple(out)
