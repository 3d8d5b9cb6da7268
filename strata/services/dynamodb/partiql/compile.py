"""A parsed PartiQL statement on a table -> the item-operation request that does it.

SELECT becomes a GetItem when its WHERE is exactly the full primary key, a Query when it pins the
partition key with `=` (one more conjunct on the sort key becomes the key condition, the rest the
filter) or one Query per partition when it lists them with `pk IN (...)`, otherwise a Scan with
the WHERE as its filter. INSERT is a PutItem that must not find
the item, UPDATE an UpdateItem that must find it, DELETE a DeleteItem; the WHERE beyond the key
becomes their ConditionExpression. Conditions, updates and projections are printed as expression
text with `#nN` / `:vN` placeholders and handed to the one expression engine, which parses
(cached per text), validates and evaluates them exactly as for the classic API.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from strata.services.dynamodb.errors import validation
from strata.services.dynamodb.expressions import ast
from strata.services.dynamodb.expressions.evaluate import get_path, project
from strata.services.dynamodb.partiql import parser as p
from strata.services.dynamodb.partiql.values import bind
from strata.services.dynamodb.tables import TableMeta
from strata.services.dynamodb.types import check_value

INCOMPLETE_KEY = "Where clause does not contain a mandatory equality on all key attributes"
_RETURN_VALUES = {  # MODIFIED takes the whole item and keeps the touched paths (Shape)
    "ALL OLD": "ALL_OLD",
    "ALL NEW": "ALL_NEW",
    "MODIFIED OLD": "ALL_OLD",
    "MODIFIED NEW": "ALL_NEW",
}
_RANGE_OPS = frozenset({"=", "<", "<=", ">", ">="})
PARTITION = ":k"  # the partition value of one Query of a `pk IN (...)` SELECT (never a slot's ref)
MAX_PARTITIONS = 100


@dataclass
class Request:
    """One item operation: `kind` is get, query, scan, put, update, delete or check."""

    kind: str
    table: str
    req: dict = field(default_factory=dict)
    shape: Shape | None = None  # how to present the items the operation returns
    parts: list[dict] | None = None  # a SELECT on `pk IN (...)`: one Query per partition, in order


@dataclass(frozen=True)
class Shape:
    """PartiQL's view of returned items where it differs from the item operation's.

    A SELECT of nested paths names each value by its last step (`SELECT m.x` -> {"x": ...}; a
    path ending in a list index is named by its position, `_2`); RETURNING MODIFIED gives only
    the paths the UPDATE touched (nested leaves, not whole top-level attributes), from the whole
    old or new item.
    """

    columns: tuple[tuple[str, tuple], ...] = ()  # (name, resolved path) of a SELECT
    modified: tuple[tuple, ...] = ()  # the UPDATE's resolved paths

    def apply(self, item: dict) -> dict:
        if self.modified:
            return project(item, list(self.modified))
        out = {}
        for name, parts in self.columns:
            value = get_path(item, parts)
            if value is not None:
                out[name] = value
        return out


def _columns(projection: tuple[ast.Path, ...]) -> Shape | None:
    if all(len(x.parts) == 1 for x in projection):
        return None  # top-level names: the item operation's projection is PartiQL's
    columns = []
    for position, x in enumerate(projection, 1):
        last = x.parts[-1]
        name = last if isinstance(last, str) else f"_{position}"
        if any(name == n for n, _ in columns):
            raise validation(f"Duplicate identifiers in select clause: {name}")
        columns.append((name, x.parts))
    return Shape(columns=tuple(columns))


def bound_values(parsed: p.Parsed, params: list | None) -> dict[str, dict]:
    """Every value slot of the statement as an AttributeValue, for this request's Parameters."""
    params = params or []
    if len(params) != parsed.params:
        raise validation("Number of parameters in request and statement don't match.")
    checked = [check_value(v)[0] for v in params]
    return {ref: bind(slot, checked) for ref, slot in parsed.slots.items()}


@dataclass
class Template:
    """A statement compiled for one table: the request without its values, which `bind` adds.

    Independent of the values, so it is made once per (statement, table) and reused.
    """

    kind: str
    req: dict  # TableName, expression texts, ExpressionAttributeNames, IndexName ...
    values: tuple[str, ...] = ()  # the ExpressionAttributeValues the expressions use
    shape: Shape | None = None
    key: tuple[tuple[str, str], ...] = ()  # (key attribute, value ref)
    item: str | None = None  # INSERT: the item's value ref
    set_args: tuple[tuple[str, str], ...] = ()  # (value ref, SET_ADD / SET_DELETE): must be sets
    fanout: tuple[str, ...] = ()  # `pk IN (...)`: the value refs of the partitions to query

    def bind(self, bound: dict[str, dict]) -> Request:
        for ref, name in self.set_args:
            if next(iter(bound[ref])) not in ("SS", "NS", "BS"):
                raise validation(f"The second argument to {name} must be a value with type SET")
        req = dict(self.req)
        if self.key:
            req["Key"] = {k: bound[ref] for k, ref in self.key}
        if self.item is not None:
            item = bound[self.item]
            if "M" not in item:
                raise validation(
                    "Unsupported format in item expression. Please use struct format {...} to express item "
                    "values for insert statement."
                )
            req["Item"] = item["M"]
        if self.values:
            req["ExpressionAttributeValues"] = {ref: bound[ref] for ref in self.values if ref != PARTITION}
        if not self.fanout:
            return Request(self.kind, req["TableName"], req, self.shape)
        parts: list[dict] = []
        seen: list[dict] = []
        for ref in self.fanout:
            value = bound[ref]
            if value not in seen:
                seen.append(value)
                values = {**req["ExpressionAttributeValues"], PARTITION: value}
                parts.append({**req, "ExpressionAttributeValues": values})
        return Request(self.kind, req["TableName"], req, self.shape, parts)


def template(parsed: p.Parsed, meta: TableMeta) -> Template:
    """The statement's Template on this table (cached on the parsed statement per table; a
    statement on an index is compiled each time, as indexes come and go)."""
    stmt = parsed.statement
    on_index = (stmt.select if isinstance(stmt, p.Exists) else stmt).index is not None
    if not on_index:
        cached = parsed.plans.get(meta.tid)
        if cached is not None:
            return cached
    made = select(stmt, meta) if isinstance(stmt, p.Select) else write(stmt, meta)
    if not on_index:
        parsed.plans[meta.tid] = made
    return made


class Printer:
    """AST -> expression text, collecting ExpressionAttributeNames and the value refs used."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self._placeholder: dict[str, str] = {}
        self.values: dict[str, None] = {}  # ordered set

    def name(self, name: str) -> str:
        ph = self._placeholder.get(name)
        if ph is None:
            ph = self._placeholder[name] = f"#n{len(self._placeholder)}"
            self.names[ph] = name
        return ph

    def path(self, path: ast.Path) -> str:
        out = []
        for part in path.parts:
            if isinstance(part, int):
                out.append(f"[{part}]")
            else:
                out.append(("." if out else "") + self.name(part))  # type: ignore[arg-type]
        return "".join(out)

    def operand(self, node: ast.Operand) -> str:
        if isinstance(node, ast.Path):
            return self.path(node)
        if isinstance(node, ast.ValueRef):
            self.values[node.ref] = None
            return node.ref
        if isinstance(node, ast.Size):
            return f"size({self.path(node.path)})"
        if isinstance(node, ast.Arithmetic):
            return f"{self.operand(node.left)} {node.op} {self.operand(node.right)}"
        if isinstance(node, ast.ListAppend):
            return f"list_append({self.operand(node.left)}, {self.operand(node.right)})"
        raise TypeError(f"not a PartiQL operand: {node!r}")

    def condition(self, node: ast.Condition) -> str:
        if isinstance(node, ast.And):
            return f"({self.condition(node.left)} AND {self.condition(node.right)})"
        if isinstance(node, ast.Or):
            return f"({self.condition(node.left)} OR {self.condition(node.right)})"
        if isinstance(node, ast.Not):
            return f"(NOT {self.condition(node.operand)})"
        if isinstance(node, ast.Compare):
            return f"{self.operand(node.left)} {node.op} {self.operand(node.right)}"
        if isinstance(node, ast.Between):
            return (
                f"{self.operand(node.operand)} BETWEEN {self.operand(node.low)} AND {self.operand(node.high)}"
            )
        if isinstance(node, ast.In):
            return f"{self.operand(node.operand)} IN ({', '.join(self.operand(o) for o in node.options)})"
        if isinstance(node, ast.Function):
            return f"{node.name}({', '.join(self.operand(a) for a in node.args)})"
        raise TypeError(f"not a PartiQL condition: {node!r}")

    def update(self, actions: tuple[ast.UpdateAction, ...]) -> str:
        clauses: dict[str, list[str]] = {}
        for a in actions:
            target = self.path(a.path)
            if isinstance(a, ast.SetAction):
                clauses.setdefault("SET", []).append(f"{target} = {self.operand(a.value)}")
            elif isinstance(a, ast.RemoveAction):
                clauses.setdefault("REMOVE", []).append(target)
            else:
                kind = "ADD" if isinstance(a, ast.AddAction) else "DELETE"
                clauses.setdefault(kind, []).append(f"{target} {self.operand(a.value)}")
        return " ".join(f"{k} {', '.join(v)}" for k, v in clauses.items())

    def template(self, kind: str, req: dict, **kw: object) -> Template:
        if self.names:
            req["ExpressionAttributeNames"] = self.names
        return Template(kind, req, tuple(self.values), **kw)  # type: ignore[arg-type]


def _conjuncts(node: ast.Condition | None) -> list[ast.Condition]:
    if node is None:
        return []
    if isinstance(node, ast.And):
        return _conjuncts(node.left) + _conjuncts(node.right)
    return [node]


def _all(conds: list[ast.Condition]) -> ast.Condition | None:
    out: ast.Condition | None = None
    for c in conds:
        out = c if out is None else ast.And(out, c)
    return out


def _key_equality(c: ast.Condition, keys: tuple[str, ...]) -> tuple[str, ast.ValueRef] | None:
    """(key name, value) when the conjunct is `key = value` (either way round)."""
    if not isinstance(c, ast.Compare) or c.op != "=":
        return None
    for path, value in ((c.left, c.right), (c.right, c.left)):
        if (
            isinstance(path, ast.Path)
            and len(path.parts) == 1
            and path.parts[0] in keys
            and isinstance(value, ast.ValueRef)
        ):
            return path.parts[0], value  # type: ignore[return-value]
    return None


def split_key(
    where: ast.Condition | None, keys: tuple[str, ...]
) -> tuple[dict[str, ast.ValueRef], list[ast.Condition], str | None]:
    """The WHERE's top-level `key = value` conjuncts, the other conjuncts, and a key named twice."""
    eq: dict[str, ast.ValueRef] = {}
    rest: list[ast.Condition] = []
    twice = None
    for c in _conjuncts(where):
        hit = _key_equality(c, keys)
        if hit is None:
            rest.append(c)
        elif hit[0] in eq:
            twice = twice or hit[0]
            rest.append(c)
        else:
            eq[hit[0]] = hit[1]
    return eq, rest, twice


def _mentions(node: object, names: set[str]) -> bool:
    """Whether any document path in the tree starts with one of `names`."""
    if isinstance(node, ast.Path):
        return node.parts[0] in names
    if isinstance(node, tuple):
        return any(_mentions(x, names) for x in node)
    if hasattr(node, "__dataclass_fields__"):
        return any(_mentions(getattr(node, f), names) for f in node.__dataclass_fields__)
    return False


def _range_condition(c: ast.Condition, range_key: str) -> bool:
    """Whether the conjunct can be a Query's sort-key condition."""

    def is_key(x: object) -> bool:
        return isinstance(x, ast.Path) and x.parts == (range_key,)

    if isinstance(c, ast.Compare) and c.op in _RANGE_OPS:
        return (is_key(c.left) and isinstance(c.right, ast.ValueRef)) or (
            is_key(c.right) and isinstance(c.left, ast.ValueRef)
        )
    if isinstance(c, ast.Between):
        return is_key(c.operand) and isinstance(c.low, ast.ValueRef) and isinstance(c.high, ast.ValueRef)
    if isinstance(c, ast.Function) and c.name == "begins_with":
        return is_key(c.args[0]) and isinstance(c.args[1], ast.ValueRef)
    return False


def _partitions(c: ast.Condition, key: str) -> tuple[ast.ValueRef, ...] | None:
    """The partition values of `key IN (v, ...)` or `key = v OR key = w ...`, else None."""
    path = ast.Path((key,))
    if isinstance(c, ast.In):
        if c.operand == path and all(isinstance(o, ast.ValueRef) for o in c.options):
            return c.options  # type: ignore[return-value]
        return None
    if isinstance(c, ast.Or):
        left, right = _partitions(c.left, key), _partitions(c.right, key)
        return left + right if left is not None and right is not None else None
    if isinstance(c, ast.Compare) and c.op == "=":
        for side, value in ((c.left, c.right), (c.right, c.left)):
            if side == path and isinstance(value, ast.ValueRef):
                return (value,)
    return None


def select(stmt: p.Select, meta: TableMeta) -> Template:
    """The GetItem, Query or Scan that answers the SELECT."""
    ix = meta.index(stmt.index) if stmt.index else None
    if ix is not None:  # a GSI's key may have several partition- and sort-key attributes
        hash_names = [n for n, _ in ix.hash_attrs]
        range_names = [n for n, _ in ix.range_attrs]
    else:
        hash_names = [meta.hash_key]
        range_names = [meta.range_key] if meta.range_key else []
    keys = (*hash_names, *range_names)
    eq, rest, _ = split_key(stmt.where, keys)
    out = Printer()
    req: dict = {"TableName": meta.name}
    shape = None
    if stmt.projection is not None:
        shape = _columns(stmt.projection)
        if shape is None:
            req["ProjectionExpression"] = ", ".join(out.path(x) for x in stmt.projection)
        else:  # whole top-level attributes; the Shape picks the nested values out of them
            tops = dict.fromkeys(out.name(x.parts[0]) for x in stmt.projection)  # type: ignore[arg-type]
            req["ProjectionExpression"] = ", ".join(tops)
    if stmt.order is not None and stmt.order[0] not in keys:
        raise validation(
            f"Variable reference {stmt.order[0]} in ORDER BY clause must be part of the primary key"
        )
    if ix is None and len(eq) == len(keys) and not rest and stmt.order is None:
        return out.template("get", req, key=tuple((k, v.ref) for k, v in eq.items()), shape=shape)
    if ix is not None:
        req["IndexName"] = ix.name
    fanout: tuple[str, ...] = ()
    unnamed = [h for h in hash_names if h not in eq]
    if len(unnamed) == 1:
        hash_key = unnamed[0]
        for c in rest:
            options = _partitions(c, hash_key)
            if options is not None:
                if len(options) > MAX_PARTITIONS:
                    raise validation("Too many decomposed read operations for a given query.")
                # One Query per listed partition, as DynamoDB decomposes it, not a table scan.
                fanout = tuple(o.ref for o in options)
                eq[hash_key] = ast.ValueRef(PARTITION)
                rest = [x for x in rest if x is not c]
                break
    if all(h in eq for h in hash_names):
        key_conds: list[ast.Condition] = [ast.Compare("=", ast.Path((h,)), eq[h]) for h in hash_names]
        # Sort-key attributes left to right: equalities, then at most one range condition.
        used = 0
        for name in range_names:
            if name in eq:
                key_conds.append(ast.Compare("=", ast.Path((name,)), eq[name]))
                used += 1
                continue
            for c in rest:
                if _range_condition(c, name):
                    key_conds.append(c)
                    rest = [x for x in rest if x is not c]
                    break
            break
        # Equalities on sort-key attributes after a gap filter (so the statement scans, below).
        rest = [ast.Compare("=", ast.Path((n,)), eq[n]) for n in range_names[used:] if n in eq] + rest
        # A Query's filter may not name the key attributes it queries by: such a statement is
        # answered by a Scan with the whole WHERE as its filter (same items, no key range).
        if not _mentions(tuple(rest), set(keys)):
            req["KeyConditionExpression"] = out.condition(_all(key_conds))  # type: ignore[arg-type]
            if rest:
                req["FilterExpression"] = out.condition(_all(rest))  # type: ignore[arg-type]
            if stmt.order is not None:
                req["ScanIndexForward"] = not stmt.order[1]
            return out.template("query", req, shape=shape, fanout=fanout)
    if stmt.order is not None:
        raise validation(
            "Must have at least one non-optional hash key condition in WHERE clause when using ORDER BY clause."
        )
    if stmt.where is not None:
        req["FilterExpression"] = out.condition(stmt.where)
    return out.template("scan", req, shape=shape)


def item_key(where: ast.Condition | None, meta: TableMeta) -> tuple[tuple[tuple[str, str], ...], list]:
    """The full primary key a write's WHERE names, and its other conjuncts."""
    eq, rest, twice = split_key(where, tuple(meta.key_names))
    if twice is not None:
        raise validation(
            f"Multiple conditions on same key {twice}. Only single item Update/Insert/Delete are supported"
        )
    if len(eq) != len(meta.key_names):
        raise validation(INCOMPLETE_KEY)
    return tuple((k, eq[k].ref) for k in meta.key_names), rest


def _no_index(index: str | None) -> None:
    if index is not None:
        raise validation("This operation is not supported on an index")


def _exists(meta: TableMeta, negate: bool = False) -> ast.Condition:
    fn = "attribute_not_exists" if negate else "attribute_exists"
    return ast.Function(fn, (ast.Path((meta.hash_key,)),))


def write(stmt: p.Statement, meta: TableMeta) -> Template:
    """The PutItem / UpdateItem / DeleteItem / ConditionCheck that does an INSERT, UPDATE, DELETE
    or EXISTS statement."""
    out = Printer()
    if isinstance(stmt, p.Insert):
        _no_index(stmt.index)
        req = {"TableName": meta.name, "ConditionExpression": out.condition(_exists(meta, True))}
        return out.template("put", req, item=stmt.item.ref)
    if isinstance(stmt, p.Exists):
        inner = stmt.select
        if inner.index is not None:
            raise validation("Operations on indices are not supported in transactions")
        key, rest = item_key(inner.where, meta)
        req = {"TableName": meta.name}
        req["ConditionExpression"] = out.condition(_all([_exists(meta), *rest]))  # type: ignore[arg-type]
        return out.template("check", req, key=key)
    _no_index(stmt.index)  # type: ignore[union-attr]
    key, rest = item_key(stmt.where, meta)  # type: ignore[union-attr]
    req = {"TableName": meta.name}
    if isinstance(stmt, p.Update):
        set_args = tuple(
            (a.value.ref, "SET_ADD" if isinstance(a, ast.AddAction) else "SET_DELETE")  # type: ignore[union-attr]
            for a in stmt.actions
            if isinstance(a, (ast.AddAction, ast.DeleteAction))
        )
        req["UpdateExpression"] = out.update(stmt.actions)
        req["ConditionExpression"] = out.condition(_all([_exists(meta), *rest]))  # type: ignore[arg-type]
        shape = None
        if stmt.returning:
            req["ReturnValues"] = _RETURN_VALUES[stmt.returning]
            if stmt.returning.startswith("MODIFIED"):
                shape = Shape(modified=tuple(a.path.parts for a in stmt.actions))
        return out.template("update", req, key=key, set_args=set_args, shape=shape)
    assert isinstance(stmt, p.Delete)
    if rest:
        # A DELETE of an item that is not there does nothing; its extra conditions apply to an
        # item that is.
        req["ConditionExpression"] = out.condition(ast.Or(_exists(meta, True), _all(rest)))  # type: ignore[arg-type]
    if stmt.returning:
        req["ReturnValues"] = "ALL_OLD"
    return out.template("delete", req, key=key)
