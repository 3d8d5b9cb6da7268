"""Required members, checked once for every protocol: a parsed request missing one is refused.

AWS validates every request against the model before any service code runs; a provider here
may then rely on `req["Name"]` for every member the model marks required, at any depth (a Tag
without its Key, a KeySchema element without AttributeName). Codecs turn the path of the first
missing member into their protocol's error (`BaseCodec.missing`).

The walk only enters shapes that have a required member somewhere below them, so the big
free-form parts of a request (DynamoDB items, S3 bodies) cost nothing.
"""

from __future__ import annotations

from typing import Any

from botocore.model import Shape

# Steps from the request root: a member name, a 1-based list position, or ("key", a map key).
Step = str | int | tuple[str, str]
Path = tuple[Step, ...]
_UNSEEN: Any = object()


class RequiredIndex:
    """Which shapes of one model have required members below them (computed once per shape).

    XML and query bodies cannot tell an empty list, map or structure from an absent one (no
    elements at all), nor can a query string or header, so with `collections=False` (and for
    those locations always) a required one may be absent; the provider decides what an empty one
    means. A top-level payload member is the provider's too (S3 answers an
    empty policy or tagging body with its own error).
    """

    def __init__(self, collections: bool = True) -> None:
        self._below: dict[str, bool] = {}
        # structure name -> (its required members, the members worth entering): built once, so a
        # request pays a few dict lookups, not a walk over every member of its shape.
        self._plans: dict[str, tuple[tuple[str, ...], tuple[tuple[str, Shape], ...]]] = {}
        # input shape name -> (the top-level members that must be present, the members worth
        # entering), or None when nothing below it is required: the top level of a request is
        # checked with a few dict lookups, and most requests (GetItem, GetObject) end there.
        self._tops: dict[str, tuple[tuple[str, ...], tuple[tuple[str, Shape], ...]] | None] = {}
        self.collections = collections

    def _plan(self, shape: Shape) -> tuple[tuple[str, ...], tuple[tuple[str, Shape], ...]]:
        plan = self._plans.get(shape.name)
        if plan is None:
            enter = tuple((n, m) for n, m in shape.members.items() if self.has_required(m))
            plan = self._plans[shape.name] = (tuple(shape.required_members), enter)
        return plan

    def has_required(self, shape: Shape) -> bool:
        known = self._below.get(shape.name)
        if known is not None:
            return known
        self._below[shape.name] = False  # a recursive shape reached again adds nothing new
        kind = shape.type_name
        if kind == "structure":
            found = bool(shape.required_members) or any(self.has_required(m) for m in shape.members.values())
        elif kind == "list":
            found = self.has_required(shape.member)
        elif kind == "map":
            found = self.has_required(shape.value)
        else:
            found = False
        self._below[shape.name] = found
        return found

    def top(self, shape: Shape | None) -> tuple[tuple[str, ...], bool]:
        """(the members a request of `shape` must set at its top level, whether `first_missing`
        has anything to look for below them): a parser checks the first itself."""
        top = self._top(shape) if shape is not None else None
        return (top[0], bool(top[1])) if top is not None else ((), False)

    def _top(self, shape: Shape) -> tuple[tuple[str, ...], tuple[tuple[str, Shape], ...]] | None:
        top = None
        if self.has_required(shape):
            required, enter = self._plan(shape)
            payload = shape.serialization.get("payload")
            present = tuple(n for n in required if not self._may_be_absent(shape, n, (), payload))
            top = (present, enter)
        self._tops[shape.name] = top
        return top

    def first_missing(self, shape: Shape | None, value: Any) -> Path | None:
        """The path (member names, 1-based list positions, map keys) of a missing required member."""
        if shape is None or not isinstance(value, dict):
            return None
        top = self._tops.get(shape.name, _UNSEEN)
        if top is _UNSEEN:
            top = self._top(shape)
        if top is None:
            return None
        present, enter = top
        for name in present:
            if value.get(name) is None:
                return (name,)
        if not enter:
            return None
        stack: list[tuple[Shape, Any, Path]] = []
        for name, member in enter:
            v = value.get(name)
            if v is not None:
                stack.append((member, v, (name,)))
        payload = None  # only the top level has a payload member, and it is done
        while stack:
            shape, value, path = stack.pop()
            kind = shape.type_name
            if kind == "structure" and isinstance(value, dict):
                required, enter = self._plan(shape)
                for name in required:
                    if value.get(name) is None and not self._may_be_absent(shape, name, path, payload):
                        return (*path, name)
                for name, member in enter:
                    v = value.get(name)
                    if v is not None:
                        stack.append((member, v, (*path, name)))
            elif kind == "list" and isinstance(value, list):
                for i, v in enumerate(value, 1):
                    if v is not None:
                        stack.append((shape.member, v, (*path, i)))
            elif kind == "map" and isinstance(value, dict):
                for k, v in value.items():
                    if v is not None:
                        stack.append((shape.value, v, (*path, ("key", k))))
        return None

    def _may_be_absent(self, shape: Shape, name: str, path: Path, payload: str | None) -> bool:
        if not path and name == payload:
            return True
        member = shape.members[name]
        kind = member.type_name
        if kind in ("list", "map") and (
            not self.collections
            or member.serialization.get("location") in ("querystring", "header", "headers")
        ):
            return True  # empty and absent look the same on the wire
        return not self.collections and kind == "structure" and not member.required_members


def coral_path(path: Path) -> str:
    """A path as AWS's validation messages write it: `keySchema.1.member.attributeName`."""
    parts: list[str] = []
    for step in path:
        if isinstance(step, int):
            parts.append(f"{step}.member")
        elif isinstance(step, tuple):
            parts.append(f"{step[1]}.member")
        else:
            parts.append(step[:1].lower() + step[1:])
    return ".".join(parts)


def coral_message(path: Path) -> str:
    """`1 validation error detected: Value null at '<path>' failed to satisfy constraint: ...`"""
    return (
        f"1 validation error detected: Value null at '{coral_path(path)}' failed to satisfy constraint: "
        "Member must not be null"
    )
