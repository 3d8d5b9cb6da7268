"""Query and Scan: key conditions become byte ranges over the primary key or an index.

A Query reads one partition between two encoded sort-key bounds, in either direction, resuming
after ExclusiveStartKey; Limit counts items read (before the filter) and a page stops after 1 MB
read, as in DynamoDB. Nothing here scans a table to answer a Query.
"""

from __future__ import annotations

import zlib

from strata.services.dynamodb import items as itm
from strata.services.dynamodb import keys
from strata.services.dynamodb.capacity import Consumed, read_units
from strata.services.dynamodb.errors import check_range, invalid_parameter, validation
from strata.services.dynamodb.expressions import ast, legacy
from strata.services.dynamodb.expressions.evaluate import Env, condition, operand, project
from strata.services.dynamodb.expressions.update import check_overlaps
from strata.services.dynamodb.expressions.validate import prepare
from strata.services.dynamodb.state import State
from strata.services.dynamodb.store import loads
from strata.services.dynamodb.tables import IndexMeta, TableMeta
from strata.services.dynamodb.types import check_value, item_size, sort_value

PAGE_BYTES = 1024 * 1024
_KC = "KeyConditionExpression"


def _conjuncts(node: ast.Condition) -> list[ast.Condition]:
    if isinstance(node, ast.And):
        return _conjuncts(node.left) + _conjuncts(node.right)
    return [node]


_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "=": "="}


def _key_value(node: ast.Operand, env: Env, key_type: str) -> dict:
    v = operand(node, None, env)
    if v is None or key_type not in v:
        raise invalid_parameter("Condition parameter type does not match schema type")
    return v


def _key_target(c: ast.Condition, env: Env) -> tuple[str, str]:
    """The attribute one conjunct of a key condition is about, and its operator ('=', '<', ...,
    'BETWEEN', 'begins_with'); DynamoDB's errors for what a key condition cannot hold."""
    if isinstance(c, ast.Or):
        raise validation(f"Invalid operator used in {_KC}: OR")
    if isinstance(c, ast.Not):
        raise validation(f"Invalid operator used in {_KC}: NOT")
    if isinstance(c, ast.In):
        raise validation(f"Invalid operator used in {_KC}: IN")
    if isinstance(c, ast.Function) and c.name != "begins_with":
        raise validation(f"Invalid operator used in {_KC}: {c.name}")
    if isinstance(c, ast.Compare):
        left, right, op = c.left, c.right, c.op
        if not isinstance(left, ast.Path) and isinstance(right, ast.Path):
            left, right, op = right, left, _FLIP.get(op, op)
        if op == "<>":
            raise validation(f"Invalid operator used in {_KC}: <>")
        target = left
    elif isinstance(c, ast.Between):
        target, op = c.operand, "BETWEEN"
    elif isinstance(c, ast.Function):
        target, op = c.args[0], "begins_with"
    else:
        raise validation("Query key condition not supported")
    if not isinstance(target, ast.Path) or len(target.parts) != 1:
        raise validation("Query key condition not supported")
    return str(env.name(target.parts[0])), op


def _equal_value(c: ast.Condition, env: Env, key_type: str) -> dict:
    assert isinstance(c, ast.Compare)
    return _key_value(c.right if isinstance(c.left, ast.Path) else c.left, env, key_type)


def key_condition(
    tree: ast.Condition,
    env: Env,
    hash_key: str,
    hash_type: str,
    range_key: str | None,
    range_type: str | None,
) -> tuple[bytes, tuple]:
    """The encoded partition key and sort-key bounds (lo, lo_incl, hi, hi_incl) of a key condition."""
    hash_av = None
    bounds: tuple = (None, True, None, True)
    parts = _conjuncts(tree)
    if len(parts) > 2:
        raise validation("KeyConditionExpressions must only contain one condition per key")
    seen_range = False
    for c in parts:
        name, op = _key_target(c, env)
        if name == hash_key and op == "=" and hash_av is None:
            hash_av = _equal_value(c, env, hash_type)
        elif name == range_key and not seen_range:
            seen_range = True
            bounds = _range_bounds(c, env, range_type)  # type: ignore[arg-type]
        elif name == hash_key:
            raise validation("Query key condition not supported")
        elif name == range_key:
            raise validation("KeyConditionExpressions must only contain one condition per key")
        elif range_key is not None and not seen_range:
            raise validation(f"Query condition missed key schema element: {range_key}")
        else:
            raise validation("Query key condition not supported")
    if hash_av is None:
        raise validation(f"Query condition missed key schema element: {hash_key}")
    return keys.encode(hash_av, hash_type), bounds


def multi_key_condition(tree: ast.Condition, env: Env, ix: IndexMeta) -> tuple[bytes, tuple]:
    """key_condition for a GSI with a multi-attribute key: every partition-key attribute with
    `=`, then sort-key attributes left to right without a gap, each with `=` but the last, which
    may use any sort-key operator."""
    hashes, ranges = dict(ix.hash_attrs), dict(ix.range_attrs)
    given: dict[str, tuple[ast.Condition, str]] = {}
    for c in _conjuncts(tree):
        name, op = _key_target(c, env)
        if name in given:
            raise validation("KeyConditionExpressions must only contain one condition per key")
        if name in hashes and op != "=":
            raise validation("Query key condition not supported")
        if name not in hashes and name not in ranges:
            missing = next((n for n in [*hashes, *ranges] if n not in given), name)
            raise validation(f"Query condition missed key schema element: {missing}")
        given[name] = (c, op)
    for name in hashes:
        if name not in given:
            raise validation(f"Query condition missed key schema element: {name}")
    values = [(_equal_value(given[n][0], env, t), t) for n, t in hashes.items()]
    pk = keys.encode_parts(values) if len(values) > 1 else keys.encode(*values[0])
    used = [n for n in ranges if n in given]
    if used != list(ranges)[: len(used)]:
        missing = next(n for n in ranges if n not in given)
        raise validation(f"Query condition missed key schema element: {missing}")
    for name in used[:-1]:
        if given[name][1] != "=":
            raise validation(
                f"Invalid {_KC}: only the last sort key attribute of the condition may use an operator "
                f"other than =; sort key attribute: {name}"
            )
    if not used:
        return pk, (None, True, None, True)
    if len(ranges) == 1:
        return pk, _range_bounds(given[used[0]][0], env, ranges[used[0]])
    prefix = b"".join(
        keys.encode_part(_equal_value(given[n][0], env, ranges[n]), ranges[n]) for n in used[:-1]
    )
    last = used[-1]
    return pk, _multi_range_bounds(given[last][0], env, ranges[last], prefix)


def _multi_range_bounds(c: ast.Condition, env: Env, t: str, prefix: bytes) -> tuple:
    """Bounds on one attribute of a multi-attribute sort key after `prefix` (the attributes
    before it, equal): the single-attribute bounds mapped into the tuple encoding (keys.py)."""
    lo, lo_incl, hi, hi_incl = _range_bounds(c, env, t)
    if isinstance(c, ast.Function):  # begins_with: the escaped prefix, unterminated
        start = prefix + keys.escape(lo)
        return start, True, keys.prefix_successor(start), False
    # Keys with this attribute equal to v lie in [prefix+v+TERMINATOR, prefix+v+AFTER_TERMINATOR).
    if lo is None:
        lo, lo_incl = (prefix or None), True
    else:
        end = keys.TERMINATOR if lo_incl else keys.AFTER_TERMINATOR
        lo, lo_incl = prefix + keys.escape(lo) + end, True
    if hi is None:
        hi, hi_incl = (keys.prefix_successor(prefix) if prefix else None), False
    else:
        end = keys.AFTER_TERMINATOR if hi_incl else keys.TERMINATOR
        hi, hi_incl = prefix + keys.escape(hi) + end, False
    return lo, lo_incl, hi, hi_incl


def _range_bounds(c: ast.Condition, env: Env, t: str) -> tuple:
    if isinstance(c, ast.Compare):
        left, right, op = c.left, c.right, c.op
        if not isinstance(left, ast.Path):
            right, op = left, _FLIP[op]
        v = keys.encode(_key_value(right, env, t), t)
        return {
            "=": (v, True, v, True),
            "<": (None, True, v, False),
            "<=": (None, True, v, True),
            ">": (v, False, None, True),
            ">=": (v, True, None, True),
        }[op]
    if isinstance(c, ast.Between):
        lo_v, hi_v = _key_value(c.low, env, t), _key_value(c.high, env, t)
        if sort_value(lo_v) > sort_value(hi_v):  # type: ignore[operator]
            raise validation(
                f"Invalid {_KC}: The BETWEEN operator requires upper bound to be greater than or equal to lower "
                f"bound; lower bound operand: AttributeValue: {{{t}:{lo_v[t]}}}, upper bound operand: "
                f"AttributeValue: {{{t}:{hi_v[t]}}}"
            )
        return keys.encode(lo_v, t), True, keys.encode(hi_v, t), True
    assert isinstance(c, ast.Function)
    if t == "N":
        raise validation(
            f"Invalid {_KC}: Incorrect operand type for operator or function; operator or function: "
            "begins_with, operand type: N"
        )
    prefix = keys.encode(_key_value(c.args[1], env, t), t)
    return prefix, True, keys.prefix_successor(prefix), False


class _Read:
    """What Query and Scan share: parameters, filter, projection, paging and capacity."""

    def __init__(
        self, state: State, meta: TableMeta, req: dict, members: tuple[str, ...], legacy_filter: str
    ) -> None:
        legacy.check_mixing(req)
        self.meta = meta
        self.req = req
        self.index: IndexMeta | None = meta.index(req["IndexName"]) if req.get("IndexName") else None
        self.consistent = bool(req.get("ConsistentRead"))
        if self.index is not None and self.index.is_global and self.consistent:
            raise validation("Consistent reads are not supported on global secondary indexes")
        self.parsed, self.env = prepare(req, members)
        f = self.parsed.get("FilterExpression")
        self.filter: ast.Condition | None = f.tree if f else None  # type: ignore[assignment]
        if req.get(legacy_filter) is not None:
            self.filter = legacy.conditions(req[legacy_filter], req.get("ConditionalOperator"))
        p = self.parsed.get("ProjectionExpression")
        self.projection: list[tuple] | None = None
        if p is not None:
            self.projection = [self.env.resolve(x) for x in p.tree.paths]  # type: ignore[attr-defined]
            check_overlaps(self.projection, "ProjectionExpression")
        elif req.get("AttributesToGet") is not None:
            self.projection = [(n,) for n in req["AttributesToGet"]]
        self.select = self._select(req.get("Select"))
        limit = req.get("Limit")
        if limit is not None and limit < 1:
            raise validation(
                f"1 validation error detected: Value '{limit}' at 'limit' failed to satisfy constraint: "
                "Member must have value greater than or equal to 1"
            )
        self.limit = limit
        self.state = state
        state.throttle.admit_read(meta, self.index.name if self.index is not None else None)

    def _select(self, select: str | None) -> str:
        if select is None:
            if self.projection is not None:
                return "SPECIFIC_ATTRIBUTES"
            return "ALL_PROJECTED_ATTRIBUTES" if self.index is not None else "ALL_ATTRIBUTES"
        if self.projection is not None and select != "SPECIFIC_ATTRIBUTES":
            what = "ProjectionExpression" if self.req.get("ProjectionExpression") else "AttributesToGet"
            wanted = "only the Count" if select == "COUNT" else select
            raise validation(f"Cannot specify the {what} when choosing to get {wanted}")
        if select == "ALL_PROJECTED_ATTRIBUTES" and self.index is None:
            raise validation("ALL_PROJECTED_ATTRIBUTES can be used only when Querying using an IndexName")
        if (
            select == "ALL_ATTRIBUTES"
            and self.index is not None
            and self.index.is_global
            and self.index.projection_type != "ALL"
        ):
            raise invalid_parameter(
                f"Select type ALL_ATTRIBUTES is not supported for global secondary index {self.index.name} "
                "because its projection type is not ALL"
            )
        if select == "SPECIFIC_ATTRIBUTES" and self.projection is None:
            raise validation("SPECIFIC_ATTRIBUTES requires ProjectionExpression or AttributesToGet")
        return select

    def start_key(self) -> tuple[bytes, bytes, bytes, bytes] | None:
        """ExclusiveStartKey as encoded (index pk, index sk, table pk, table sk)."""
        esk = self.req.get("ExclusiveStartKey")
        if esk is None:
            return None
        meta, ix = self.meta, self.index
        wanted = set(meta.key_names)
        if ix is not None:
            wanted.update(ix.key_names)
        if set(esk) != wanted:
            raise validation(
                "The provided starting key is invalid: The provided key element does not match the schema"
            )
        canon = {k: check_value(v)[0] for k, v in esk.items()}
        try:
            pk, sk = itm.key_of_item(meta, canon)
            if ix is None:
                return pk, sk, pk, sk
            ipk, isk = itm.index_key(ix, canon) or (None, None)
        except Exception as e:  # noqa: BLE001 - any key problem is an invalid starting key
            raise validation(
                "The provided starting key is invalid: " + getattr(e, "message", str(e))
            ) from None
        if ipk is None:
            raise validation(
                "The provided starting key is invalid: The provided key element does not match the schema"
            )
        return ipk, isk, pk, sk  # type: ignore[return-value]

    def run(self, rows, segment: tuple[int, int] | None = None) -> dict:
        """Consume rows (tpk, tsk, size, blob) into the response: Items, Count, ScannedCount, LastEvaluatedKey."""
        meta, ix = self.meta, self.index
        limit = self.limit
        out_items: list[dict] = []
        count = scanned = total = 0
        last = None
        more = False
        proj_index = (
            ix is not None
            and ix.projection_type != "ALL"
            and (self.select != "ALL_ATTRIBUTES" or ix.is_global)
        )
        count_only = self.select == "COUNT"
        for tpk, _tsk, size, blob in rows:
            if segment is not None and zlib.crc32(tpk) % segment[1] != segment[0]:
                continue
            item = loads(blob)
            if proj_index:
                item = itm.index_projection(meta, ix, item)  # type: ignore[arg-type]
                size = item_size(item)
            scanned += 1
            total += size
            last = item
            if self.filter is None or condition(self.filter, item, self.env):
                count += 1
                if not count_only:
                    out_items.append(project(item, self.projection) if self.projection is not None else item)
            if limit is not None and scanned >= limit or total >= PAGE_BYTES:
                # Like DynamoDB: a page that stops at Limit or 1 MB has a LastEvaluatedKey, even
                # when nothing follows (the next page is then empty).
                more = True
                break
        consumed = Consumed(meta.name, read=True, table_units=read_units(total, self.consistent))
        if ix is not None:
            consumed.table_units = 0.0
            consumed.add_index(ix.name, ix.is_global, read_units(total, self.consistent))
        out: dict = {"Count": count, "ScannedCount": scanned}
        if not count_only:
            out["Items"] = out_items
        if more and last is not None:
            lek = itm.key_attributes(meta, last)
            if ix is not None:
                for name in ix.key_names:
                    lek[name] = last[name]
            out["LastEvaluatedKey"] = lek
        self.state.consume(meta, consumed)
        cc = consumed.report(self.req.get("ReturnConsumedCapacity"))
        if cc is not None:
            out["ConsumedCapacity"] = cc
        return out


def query(state: State, meta: TableMeta, req: dict) -> dict:
    r = _Read(
        state,
        meta,
        req,
        ("KeyConditionExpression", "FilterExpression", "ProjectionExpression"),
        "QueryFilter",
    )
    kc = r.parsed.get("KeyConditionExpression")
    if kc is not None:
        tree = kc.tree
    elif req.get("KeyConditions") is not None:
        tree = legacy.conditions(req["KeyConditions"], None)
    else:
        raise validation(
            "Either the KeyConditions or KeyConditionExpression parameter must be specified in the request."
        )
    if r.filter is not None:
        _check_filter_keys(r.filter, r.env, meta, r.index)
    ix = r.index
    if ix is None:
        pk, (lo, lo_incl, hi, hi_incl) = key_condition(
            tree, r.env, meta.hash_key, meta.hash_type, meta.range_key, meta.range_type
        )
    elif ix.extra_hash or ix.extra_range:
        pk, (lo, lo_incl, hi, hi_incl) = multi_key_condition(tree, r.env, ix)  # type: ignore[arg-type]
    else:
        pk, (lo, lo_incl, hi, hi_incl) = key_condition(
            tree, r.env, ix.hash_key, ix.hash_type, ix.range_key, ix.range_type
        )
    forward = req.get("ScanIndexForward", True) is not False
    start = r.start_key()
    if start is not None and start[0] != pk:
        raise validation("The provided starting key is outside query boundaries based on provided conditions")
    fetch = r.limit if r.limit is not None else -1
    if ix is None:
        rows = state.store.query(
            meta.tid, pk, lo, lo_incl, hi, hi_incl, forward, start[1] if start else None, fetch
        )
    else:
        after = (start[1], start[2], start[3]) if start else None
        rows = state.store.query_index(meta.tid, ix.iid, pk, lo, lo_incl, hi, hi_incl, forward, after, fetch)
    try:
        return r.run(rows)
    finally:
        rows.close()


def _check_filter_keys(node: ast.Condition, env: Env, meta: TableMeta, ix: IndexMeta | None) -> None:
    """A Query filter may not refer to the key attributes the key condition uses."""
    key_attrs = {meta.hash_key, meta.range_key} if ix is None else set(ix.key_names)
    key_attrs.discard(None)

    def walk(n: object) -> None:
        if isinstance(n, ast.Path):
            name = env.name(n.parts[0])
            if name in key_attrs:
                raise validation(
                    "Filter Expression can only contain non-primary key attributes: Primary key attribute: "
                    + str(name)
                )
        elif hasattr(n, "__dataclass_fields__"):
            for f in n.__dataclass_fields__:
                v = getattr(n, f)
                for x in v if isinstance(v, tuple) else (v,):
                    walk(x)

    walk(node)


def scan(state: State, meta: TableMeta, req: dict) -> dict:
    r = _Read(state, meta, req, ("FilterExpression", "ProjectionExpression"), "ScanFilter")
    seg, total = req.get("Segment"), req.get("TotalSegments")
    segment = None
    if seg is not None or total is not None:
        if total is None:
            raise validation(
                "The TotalSegments parameter is required but was not present in the request when "
                "Segment parameter is present"
            )
        if seg is None:
            raise validation(
                "The Segment parameter is required but was not present in the request when parameter "
                "TotalSegments is present"
            )
        for value, member, shape in (
            (seg, "segment", "ScanSegment"),
            (total, "totalSegments", "ScanTotalSegments"),
        ):
            check_range(value, member, shape)
        if seg >= total:
            raise validation(
                f"The Segment parameter is zero-based and must be less than parameter TotalSegments: "
                f"Segment: {seg} is not less than TotalSegments: {total}"
            )
        segment = (seg, total)
    start = r.start_key()
    fetch = -1
    if r.index is None:
        rows = state.store.scan(meta.tid, (start[0], start[1]) if start else None, fetch)
    else:
        rows = state.store.scan_index(meta.tid, r.index.iid, start, fetch)
    try:
        return r.run(rows, segment)
    finally:
        rows.close()
