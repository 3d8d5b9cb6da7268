"""Tokens of DynamoDB's PartiQL: identifiers (bare or "double-quoted"), 'strings', numbers,
`?` parameters and punctuation (including the `<<` `>>` of set literals).

Keywords are ordinary `ident` tokens matched case-insensitively by the parser; a quoted
identifier is never a keyword.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from strata.services.dynamodb.errors import validation


@dataclass(frozen=True)
class Token:
    kind: str  # ident, qident, string, number, op, eof
    text: str  # the identifier or string with its quotes removed and escapes undone
    pos: int


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>--[^\n]*)
  | (?P<string>'(?:[^']|'')*')
  | (?P<qident>"(?:[^"]|"")*")
  | (?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<op><<|>>|<>|!=|<=|>=|[=<>()\[\]{},.:*?+\-;])
    """,
    re.VERBOSE,
)


def malformed(detail: str) -> Exception:
    return validation(f"Statement wasn't well formed, can't be processed: {detail}")


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos, end = 0, len(text)
    while pos < end:
        m = _TOKEN.match(text, pos)
        if m is None:
            if text[pos] in "'\"":
                raise malformed("Invalid input: unterminated quoted text")
            raise malformed(f"Unexpected character: {text[pos]}")
        kind = m.lastgroup
        raw = m.group()
        if kind == "string":
            tokens.append(Token("string", raw[1:-1].replace("''", "'"), pos))
        elif kind == "qident":
            tokens.append(Token("qident", raw[1:-1].replace('""', '"'), pos))
        elif kind not in ("ws", "comment"):
            tokens.append(Token(kind, raw, pos))  # type: ignore[arg-type]
        pos = m.end()
    tokens.append(Token("eof", "", end))
    return tokens
