"""Wildcard patterns and policy variables, shared by Action/Resource matching and conditions.

Compiled matchers are cached by pattern text: a policy's patterns are compiled when it is loaded,
and the few built per request (patterns holding policy variables) are found in the cache.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

_VAR = re.compile(r"\$\{([^}]*)\}")


def _glob_regex(pattern: str, star: str = ".*") -> str:
    out = []
    literal = False
    for ch in pattern:
        if ch == "\0":  # marks the next character as literal (from ${*}, ${?}, ${$})
            literal = True
            continue
        if literal:
            out.append(re.escape(ch))
            literal = False
        elif ch == "*":
            out.append(star)
        elif ch == "?":
            out.append("." if star == ".*" else "[^:]")
        else:
            out.append(re.escape(ch))
    return "".join(out)


@functools.lru_cache(maxsize=8192)
def arn_matcher(pattern: str) -> Callable[[str], bool]:
    """A predicate for an ARN glob (Resource, NotResource, ArnLike): per-field wildcards."""
    if pattern == "*":
        return lambda value: True
    parts = pattern.split(":", 5)
    if len(parts) < 6 or not pattern.startswith("arn"):
        rx = re.compile(_glob_regex(pattern), re.DOTALL)
        return lambda value: rx.fullmatch(value) is not None
    head = ":".join(_glob_regex(p, "[^:]*") for p in parts[:5])
    rx = re.compile(head + ":" + _glob_regex(parts[5]), re.DOTALL)
    return lambda value: rx.fullmatch(value) is not None


@functools.lru_cache(maxsize=8192)
def glob_matcher(pattern: str, ignore_case: bool = False) -> Callable[[str], bool]:
    """A predicate for a plain glob (StringLike, actions when `ignore_case`)."""
    if pattern == "*":
        return lambda value: True
    if "*" not in pattern and "?" not in pattern and "\0" not in pattern:
        if ignore_case:
            low = pattern.lower()
            return lambda value: value.lower() == low
        return lambda value: value == pattern
    rx = re.compile(_glob_regex(pattern), re.DOTALL | (re.IGNORECASE if ignore_case else 0))
    return lambda value: rx.fullmatch(value) is not None


def has_variables(text: str) -> bool:
    return "${" in text


def substitute(text: str, lookup: Callable[[str], Any]) -> str | None:
    """Replace `${...}` policy variables; None when a variable has no value and no default
    (AWS then treats the element as not matching)."""
    missing = False

    def one(m: re.Match) -> str:
        nonlocal missing
        body = m.group(1)
        if body in ("*", "?", "$"):
            return "\0" + body  # a literal wildcard character, escaped from globbing below
        name, _, default = body.partition(",")
        value = lookup(name.strip())
        if isinstance(value, list):
            value = value[0] if len(value) == 1 else None
        if value is None:
            default = default.strip()
            if len(default) >= 2 and default[0] == default[-1] == "'":
                return default[1:-1]
            missing = True
            return ""
        return str(value)

    out = _VAR.sub(one, text)
    return None if missing else out
