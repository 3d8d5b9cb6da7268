"""The SQL dialect bridge of the PostgreSQL backend: SQLite-style placeholders for psycopg.

Services write `?` (and `:name` with a dict) as sqlite3 wants; psycopg wants `%s` / `%(name)s`
and, once parameters are passed, a literal `%` doubled. Quoted strings, quoted identifiers and
comments are left untouched, and `::` casts are not taken for `:name`. A statement's translation
is cached: services run a few hundred distinct statements, millions of times.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

_TOKEN = re.compile(
    r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|/\*.*?\*/|::|\?|:([A-Za-z_]\w*)|%""",
    re.S,
)


@functools.lru_cache(maxsize=4096)
def translate(sql: str, named: bool) -> str:
    """`sql` with `?` (or `:name` when `named`) as psycopg placeholders and `%` escaped."""

    def sub(m: re.Match[str]) -> str:
        tok = m.group(0)
        if tok == "?":
            return "%s"
        if tok == "%":
            return "%%"
        if m.group(1) is not None:
            return f"%({m.group(1)})s" if named else tok
        return tok

    return _TOKEN.sub(sub, sql)


def bind(sql: str, args: Sequence[Any] | dict) -> tuple[str, Sequence[Any] | dict | None]:
    """The (query, params) psycopg gets for a SQLite-style statement and its arguments.

    No arguments: the text goes as it is, with no parameters (so it may hold several statements,
    sent in one round trip by the simple query protocol).
    """
    if not args:
        return sql, None
    return translate(sql, isinstance(args, dict)), args
