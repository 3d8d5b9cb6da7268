"""The expression AST: frozen dataclasses shared by every expression kind.

Parsed once per expression string (and cached); placeholders stay unresolved in the tree
(`NameRef("#s")`, `ValueRef(":v")`) so one tree serves every request that reuses the string.
Legacy parameters (Expected, KeyConditions, AttributeUpdates ...) build the same nodes with
`Literal` values and plain names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union


@dataclass(frozen=True)
class NameRef:
    """`#name`, resolved through ExpressionAttributeNames."""

    ref: str


PathPart = Union[str, NameRef, int]  # noqa: UP007 - a type alias read at runtime


@dataclass(frozen=True)
class Path:
    """A document path: `a.b[2].c` is ("a", "b", 2, "c")."""

    parts: tuple[PathPart, ...]


@dataclass(frozen=True)
class ValueRef:
    """`:value`, resolved through ExpressionAttributeValues."""

    ref: str


@dataclass(frozen=True)
class Literal:
    """A value given directly (legacy parameters)."""

    value: dict


@dataclass(frozen=True)
class Size:
    path: Path


@dataclass(frozen=True)
class IfNotExists:
    path: Path
    default: Operand


@dataclass(frozen=True)
class ListAppend:
    left: Operand
    right: Operand


@dataclass(frozen=True)
class Arithmetic:
    op: str  # "+" or "-"
    left: Operand
    right: Operand


Operand = Union[Path, ValueRef, Literal, Size, IfNotExists, ListAppend, Arithmetic]  # noqa: UP007


@dataclass(frozen=True)
class Compare:
    op: str  # = <> < <= > >=
    left: Operand
    right: Operand


@dataclass(frozen=True)
class Between:
    operand: Operand
    low: Operand
    high: Operand


@dataclass(frozen=True)
class In:
    operand: Operand
    options: tuple[Operand, ...]


@dataclass(frozen=True)
class Function:
    """A boolean function: attribute_exists, attribute_not_exists, attribute_type, begins_with, contains."""

    name: str
    args: tuple[Operand, ...]


@dataclass(frozen=True)
class And:
    left: Condition
    right: Condition


@dataclass(frozen=True)
class Or:
    left: Condition
    right: Condition


@dataclass(frozen=True)
class Not:
    operand: Condition


@dataclass(frozen=True)
class TrueCondition:
    """Always true (an empty legacy Expected map)."""


Condition = Union[Compare, Between, In, Function, And, Or, Not, TrueCondition]  # noqa: UP007


@dataclass(frozen=True)
class SetAction:
    path: Path
    value: Operand


@dataclass(frozen=True)
class RemoveAction:
    path: Path


@dataclass(frozen=True)
class AddAction:
    path: Path
    value: Operand


@dataclass(frozen=True)
class DeleteAction:
    path: Path
    value: Operand


UpdateAction = Union[SetAction, RemoveAction, AddAction, DeleteAction]  # noqa: UP007


@dataclass(frozen=True)
class Update:
    actions: tuple[UpdateAction, ...]


@dataclass(frozen=True)
class Projection:
    paths: tuple[Path, ...]
