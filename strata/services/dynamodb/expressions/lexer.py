"""Tokens of the DynamoDB expression language.

Keywords (AND, OR, NOT, BETWEEN, IN, SET, REMOVE, ADD, DELETE) are ordinary `name` tokens matched
case-insensitively by the parser, because which words are keywords depends on the position.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from strata.services.dynamodb.errors import validation


@dataclass(frozen=True)
class Token:
    kind: str  # name, nameref, valref, number, op, eof
    text: str
    pos: int


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<nameref>\#[A-Za-z0-9_]+)
  | (?P<valref>:[A-Za-z0-9_]+)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<number>[0-9]+)
  | (?P<op><>|<=|>=|[=<>()\[\],.+\-])
    """,
    re.VERBOSE,
)


def tokenize(text: str, kind: str) -> list[Token]:
    """Split an expression into tokens; `kind` names the expression in error messages."""
    tokens: list[Token] = []
    pos, end = 0, len(text)
    while pos < end:
        m = _TOKEN.match(text, pos)
        if m is None:
            near = text[max(0, pos - 1) : pos + 1]
            raise validation(f'Invalid {kind}: Syntax error; token: "{text[pos]}", near: "{near}"')
        group = m.lastgroup
        if group != "ws":
            tokens.append(Token(group, m.group(), pos))  # type: ignore[arg-type]
        pos = m.end()
    tokens.append(Token("eof", "<EOF>", end))
    return tokens
