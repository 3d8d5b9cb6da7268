"""The SQL dialect bridge of the PostgreSQL backend: SQLite-style statements and schemas.

Placeholders: services write `?` (and `:name` with a dict) as sqlite3 wants; psycopg wants `%s` /
`%(name)s` and, once parameters are passed, every `%` doubled (inside literals too). A `?` or
`:name` inside quoted strings, quoted identifiers and comments is left alone, and `::` casts are
not taken for `:name`. A
statement's translation is cached: services run a few hundred distinct statements, millions of
times.

Schemas (`ddl`): SQLite's INTEGER is 64-bit and its REAL a double, PostgreSQL's are 32-bit (an
object size over 2 GiB, a timestamp to the second would not fit), so they become BIGINT and
DOUBLE PRECISION; `INTEGER PRIMARY KEY` (SQLite's rowid: max + 1 when NULL or left out) a
BIGINT key with a trigger that numbers it the same way; `WITHOUT ROWID` (a storage hint) goes. BLOB is a domain over bytea (postgres.py).
Only schema scripts are translated; the SQLite backend runs services' text as written.
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
        return tok.replace("%", "%%")  # psycopg reads `%` inside literals and comments too

    return _TOKEN.sub(sub, sql)


def bind(sql: str, args: Sequence[Any] | dict) -> tuple[str, Sequence[Any] | dict | None]:
    """The (query, params) psycopg gets for a SQLite-style statement and its arguments.

    No arguments: the text goes as it is, with no parameters (so it may hold several statements,
    sent in one round trip by the simple query protocol).
    """
    if not args:
        return sql, None
    return translate(sql, isinstance(args, dict)), args


_DDL = re.compile(
    r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|/\*.*?\*/"""
    r"|\bINTEGER\s+PRIMARY\s+KEY\b|\bWITHOUT\s+ROWID\b|\bINTEGER\b|\bREAL\b",
    re.S | re.I,
)
_DDL_WORDS = {
    "INTEGER PRIMARY KEY": "BIGINT PRIMARY KEY",
    "WITHOUT ROWID": "",
    "INTEGER": "BIGINT",
    "REAL": "DOUBLE PRECISION",
}


def ddl(script: str) -> str:
    """A SQLite schema script as PostgreSQL takes it (see the module docstring)."""

    def sub(m: re.Match[str]) -> str:
        tok = m.group(0)
        if tok[0] in "'\"-/":
            return tok
        return _DDL_WORDS[" ".join(tok.upper().split())]

    return _DDL.sub(sub, script) + "".join(_ROWID.format(t=t, c=c) for t, c in _rowid_columns(script))


# SQLite numbers a row whose INTEGER PRIMARY KEY is NULL or left out as max + 1 (services mix
# chosen and numbered ids: S3's object versions). Under the store's lock, max + 1 is race-free.
_ROWID = """
CREATE OR REPLACE FUNCTION {t}_rowid() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    IF NEW.{c} IS NULL THEN
        SELECT COALESCE(max({c}), 0) + 1 INTO NEW.{c} FROM {t};
    END IF;
    RETURN NEW;
END $f$;
CREATE OR REPLACE TRIGGER {t}_rowid BEFORE INSERT ON {t} FOR EACH ROW EXECUTE FUNCTION {t}_rowid();
"""
_TABLE = re.compile(
    r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)\s*\((.*?)\)\s*(?:WITHOUT\s+ROWID\s*)?;", re.S | re.I
)
_ROWID_COLUMN = re.compile(r"(?:^|[(,])\s*(\w+)\s+INTEGER\s+PRIMARY\s+KEY\b", re.I)


def _rowid_columns(script: str) -> list[tuple[str, str]]:
    """(table, column) of every `INTEGER PRIMARY KEY` column the script creates."""
    found = []
    for m in _TABLE.finditer(script):
        col = _ROWID_COLUMN.search(m.group(2))
        if col:
            found.append((m.group(1), col.group(1)))
    return found
