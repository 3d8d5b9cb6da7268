"""Compile-once helpers: turn a botocore shape into a plain Python function, cached per shape.

Codecs never walk botocore's model per request. Each codec asks a `ShapeCompiler` for a function
that converts one value of a shape (decode a JSON value, write an XML element ...) and gets the
same function on every later call. Recursive shapes (DynamoDB's AttributeValue contains itself)
are handled by handing out a forwarding function while the real one is being built.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from botocore.model import Shape

Fn = Callable[..., Any]


def shape_key(shape: Shape) -> tuple[str, str]:
    """Identity of a shape as it is referenced: its name plus the member reference's traits."""
    return shape.name, json.dumps(shape.serialization, sort_keys=True, default=str)


class ShapeCompiler(ABC):
    """Caches `build(shape) -> function` results; subclasses define `build`."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], Fn] = {}

    def get(self, shape: Shape) -> Fn:
        key = shape_key(shape)
        fn = self._cache.get(key)
        if fn is not None:
            return fn
        cell: list[Fn] = []

        def forward(*args: Any) -> Any:
            return cell[0](*args)

        self._cache[key] = forward
        fn = self.build(shape)
        cell.append(fn)
        self._cache[key] = fn
        return fn

    @abstractmethod
    def build(self, shape: Shape) -> Fn:  # pragma: no cover - abstract
        ...


def located(shape: Shape) -> bool:
    """A member that lives outside the body (header, querystring, uri, statusCode)."""
    return "location" in shape.serialization
