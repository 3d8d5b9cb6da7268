"""The REST operation router, compiled once per service from each operation's `http.requestUri`.

A route is the method, a path pattern (`{Bucket}` matches one segment, a greedy `{Key+}` the rest
of the path) and the constraints that tell operations on the same path apart: query keys named in
the requestUri (`?versioning`, `?list-type=2`), and the input's *required* querystring and header
members (S3 UploadPart needs `partNumber` and `uploadId`; CopyObject needs `x-amz-copy-source`).
Routes are tried most specific first: more constraints win, then longer literal paths, then
non-greedy patterns; deprecated operations lose ties to their replacements (S3's
GetBucketLifecycle vs GetBucketLifecycleConfiguration share one wire request).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from botocore.model import OperationModel, ServiceModel

from strata.protocol.errors import ServiceError

_LABEL = re.compile(r"\{([^}]+)\}")


@dataclass(frozen=True)
class Route:
    operation: OperationModel
    method: str
    pattern: re.Pattern[str]
    labels: tuple[str, ...]
    query_keys: frozenset[str]  # keys that must be present
    query_values: tuple[tuple[str, str], ...]  # keys that must have a value (`list-type=2`)
    headers: frozenset[str]  # lower-case header names that must be present
    rank: tuple[int, ...]

    def matches(
        self, path: str, query: dict[str, str], header_names: set[str] | frozenset[str]
    ) -> dict[str, str] | None:
        if self.query_keys and not all(k in query for k in self.query_keys):
            return None
        for k, v in self.query_values:
            if query.get(k) != v:
                return None
        if self.headers and not self.headers <= header_names:
            return None
        m = self.pattern.match(path)
        if m is None:
            return None
        return {
            label: _decode_label(value) if "%" in value else value
            for label, value in zip(self.labels, m.groups(), strict=True)
        }


def _decode_label(value: str) -> str:
    """A percent-encoded path label as text; bytes that are not UTF-8 are S3's InvalidURI.

    Decoding them to U+FFFD instead would make `/b/%ff` and `/b/%fe` the same key.
    """
    try:
        return unquote(value, errors="strict")
    except UnicodeDecodeError:
        raise ServiceError("InvalidURI", "Couldn't parse the specified URI.", 400) from None


def _compile_path(template: str) -> tuple[re.Pattern[str], tuple[str, ...], int, bool]:
    """Regex for a path template, its labels, its count of literal characters, and greediness.

    A trailing slash is optional on the wire (`/bucket` and `/bucket/` name the same bucket).
    """
    template = template.rstrip("/")
    regex, labels, literal, greedy, pos = ["^"], [], 0, False, 0
    for m in _LABEL.finditer(template):
        text = template[pos : m.start()]
        regex.append(re.escape(text))
        literal += len(text)
        label = m.group(1)
        greedy = greedy or label.endswith("+")
        labels.append(label.rstrip("+"))
        regex.append("(.+)" if label.endswith("+") else "([^/]+)")
        pos = m.end()
    regex.append(re.escape(template[pos:]) + "/?$")
    literal += len(template) - pos
    return re.compile("".join(regex), re.DOTALL), tuple(labels), literal, greedy


def _route(op: OperationModel, order: int) -> Route:
    uri = op.http.get("requestUri", "/")
    path, _, query_part = uri.partition("?")
    query_keys: set[str] = set()
    query_values: list[tuple[str, str]] = []
    for item in filter(None, query_part.split("&")):
        key, eq, value = item.partition("=")
        if eq:
            query_values.append((key, value))
        else:
            query_keys.add(key)
    headers: set[str] = set()
    shape = op.input_shape
    if shape is not None:
        for name in shape.required_members:
            member = shape.members[name]
            location = member.serialization.get("location")
            wire = member.serialization.get("name", name)
            if member.type_name in ("list", "map"):
                continue  # a client drops an empty list, so its absence proves nothing
            if location == "querystring":
                query_keys.add(wire)
            elif location == "header":
                headers.add(wire.lower())
    pattern, labels, literal, greedy = _compile_path(path)
    constraints = len(query_keys) + len(query_values) + len(headers)
    rank = (-constraints, -literal, int(greedy), int(bool(op.deprecated)), order)
    return Route(
        op,
        op.http.get("method", "POST").upper(),
        pattern,
        labels,
        frozenset(query_keys),
        tuple(query_values),
        frozenset(headers),
        rank,
    )


class RestRouter:
    """All REST routes of one service, indexed by method and required query key.

    A request is only tried against the routes whose required query keys it could satisfy
    (routes keyed by one of its query keys, plus routes that need none), most specific first.
    """

    def __init__(self, model: ServiceModel) -> None:
        routes = [_route(model.operation_model(name), i) for i, name in enumerate(model.operation_names)]
        self._unkeyed: dict[str, list[Route]] = {}
        self._keyed: dict[tuple[str, str], list[Route]] = {}
        for route in sorted(routes, key=lambda r: r.rank):
            keys = route.query_keys | {k for k, _ in route.query_values}
            if keys:
                self._keyed.setdefault((route.method, min(keys)), []).append(route)
            else:
                self._unkeyed.setdefault(route.method, []).append(route)
        self.methods = sorted({r.method for r in routes})

    def _candidates(self, method: str, query: dict[str, str]) -> list[Route]:
        keyed = [r for k in query for r in self._keyed.get((method, k), ())]
        unkeyed = self._unkeyed.get(method, [])
        if not keyed:
            return unkeyed
        return sorted(keyed + unkeyed, key=lambda r: r.rank)

    def match(
        self, method: str, path: str, query: dict[str, str], header_names: set[str] | frozenset[str]
    ) -> tuple[OperationModel, dict[str, str]] | None:
        """The operation and decoded path labels for a request, or None."""
        for route in self._candidates(method.upper(), query):
            params = route.matches(path, query, header_names)
            if params is not None:
                return route.operation, params
        return None

    def methods_for(
        self, path: str, query: dict[str, str], header_names: set[str] | frozenset[str]
    ) -> list[str]:
        """Methods that would route this path (for a 405 answer)."""
        return [
            method
            for method in self.methods
            if any(r.matches(path, query, header_names) is not None for r in self._candidates(method, query))
        ]
