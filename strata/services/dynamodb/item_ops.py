"""PutItem, GetItem, UpdateItem and DeleteItem: conditions, ReturnValues, capacity.

Each write runs in one SQLite transaction: read the old item, check the condition, write the new
item with its index rows and the table counters, commit.
"""

from __future__ import annotations

from strata.services.dynamodb import items as itm
from strata.services.dynamodb.capacity import Consumed, read_units
from strata.services.dynamodb.errors import conditional_check_failed, invalid_parameter, validation
from strata.services.dynamodb.expressions import ast, legacy
from strata.services.dynamodb.expressions.evaluate import Env, condition, project
from strata.services.dynamodb.expressions.update import apply, check_overlaps, copy_item
from strata.services.dynamodb.expressions.validate import prepare
from strata.services.dynamodb.state import State
from strata.services.dynamodb.tables import TableMeta
from strata.services.dynamodb.types import check_item

_WRITE_RV = ("NONE", "ALL_OLD")
_UPDATE_RV = ("NONE", "ALL_OLD", "UPDATED_OLD", "ALL_NEW", "UPDATED_NEW")


class Plan:
    """The parsed expressions of one request (condition, update, projection) and their Env."""

    __slots__ = ("condition", "update", "projection", "env")

    def __init__(self, req: dict, members: tuple[str, ...]) -> None:
        if (
            req.get("Expected") is not None
            or req.get("AttributeUpdates") is not None
            or req.get("AttributesToGet") is not None
            or req.get("ConditionalOperator") is not None
        ):
            legacy.check_mixing(req)
        parsed, self.env = prepare(req, members)
        c = parsed.get("ConditionExpression")
        self.condition: ast.Condition | None = c.tree if c else None  # type: ignore[assignment]
        u = parsed.get("UpdateExpression")
        self.update: ast.Update | None = u.tree if u else None  # type: ignore[assignment]
        p = parsed.get("ProjectionExpression")
        self.projection: list[tuple] | None = None
        if p is not None:
            self.projection = [self.env.resolve(x) for x in p.tree.paths]  # type: ignore[attr-defined]
            check_overlaps(self.projection, "ProjectionExpression")
        if req.get("Expected") is not None:
            self.condition = legacy.expected(req["Expected"], req.get("ConditionalOperator"))
        if req.get("AttributeUpdates") is not None:
            self.update = legacy.attribute_updates(req["AttributeUpdates"])
        if req.get("AttributesToGet") is not None:
            self.projection = [(n,) for n in req["AttributesToGet"]]

    def check(self, item: dict | None) -> bool:
        return self.condition is None or condition(self.condition, item, self.env)


def _finish(state: State, meta: TableMeta, req: dict, consumed: Consumed, out: dict) -> dict:
    state.consume(meta, consumed)
    cc = consumed.report(req.get("ReturnConsumedCapacity"))
    if cc is not None:
        out["ConsumedCapacity"] = cc
    return out


def _collection_metrics(meta: TableMeta, req: dict, out: dict, key: dict) -> None:
    if req.get("ReturnItemCollectionMetrics") == "SIZE" and any(not ix.is_global for ix in meta.indexes):
        out["ItemCollectionMetrics"] = {
            "ItemCollectionKey": {meta.hash_key: key[meta.hash_key]},
            "SizeEstimateRangeGB": [0.0, 1.0],
        }


def _failed(req: dict, old: dict | None) -> Exception:
    return conditional_check_failed(
        old if req.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" else None
    )


def put_item(state: State, meta: TableMeta, req: dict) -> dict:
    item, size = check_item(req.get("Item"))
    pk, sk = itm.key_of_item(meta, item)
    if meta.indexes:
        itm.check_index_keys(meta, item)
    if state.locks:
        state.check_unlocked(meta.tid, pk, sk)
    rv = req.get("ReturnValues") or "NONE"
    if rv not in _WRITE_RV:
        raise validation("ReturnValues can only be ALL_OLD or NONE")
    plan = (
        Plan(req, ("ConditionExpression",))
        if (
            req.get("ConditionExpression")
            or req.get("Expected")
            or req.get("ExpressionAttributeNames")
            or req.get("ExpressionAttributeValues")
        )
        else None
    )
    state.throttle.admit_write(meta)
    store = state.store
    consumed = Consumed(meta.name, read=False)
    old = None
    with store.write():
        if plan is not None or rv == "ALL_OLD" or meta.indexes:
            got = store.get(meta.tid, pk, sk)
            old, old_size = got if got else (None, None)
        else:
            old_size = store.get_size(meta.tid, pk, sk)
        if plan is not None and not plan.check(old):
            consumed.table_units = 1.0
            state.consume(meta, consumed)
            raise _failed(req, old)
        itm.write(store, meta, pk, sk, old, old_size, item, size, consumed)
    out: dict = {}
    if rv == "ALL_OLD" and old:
        out["Attributes"] = old
    _collection_metrics(meta, req, out, item)
    return _finish(state, meta, req, consumed, out)


def get_item(state: State, meta: TableMeta, req: dict) -> dict:
    pk, sk, _ = itm.key_of(meta, req.get("Key"))
    plan = (
        Plan(req, ("ProjectionExpression",))
        if (
            req.get("ProjectionExpression")
            or req.get("AttributesToGet")
            or req.get("ExpressionAttributeNames")
        )
        else None
    )
    state.throttle.admit_read(meta)
    got = state.store.get(meta.tid, pk, sk, state.store.r)
    consistent = bool(req.get("ConsistentRead"))
    consumed = Consumed(meta.name, read=True, table_units=read_units(got[1] if got else 0, consistent))
    out: dict = {}
    if got is not None:
        item = got[0]
        out["Item"] = (
            project(item, plan.projection) if plan is not None and plan.projection is not None else item
        )
    return _finish(state, meta, req, consumed, out)


def delete_item(state: State, meta: TableMeta, req: dict) -> dict:
    pk, sk, key = itm.key_of(meta, req.get("Key"))
    rv = req.get("ReturnValues") or "NONE"
    if rv not in _WRITE_RV:
        raise validation("ReturnValues can only be ALL_OLD or NONE")
    plan = Plan(req, ("ConditionExpression",))
    if state.locks:
        state.check_unlocked(meta.tid, pk, sk)
    state.throttle.admit_write(meta)
    store = state.store
    consumed = Consumed(meta.name, read=False)
    with store.write():
        got = store.get(meta.tid, pk, sk)
        old, old_size = got if got else (None, None)
        if not plan.check(old):
            consumed.table_units = 1.0
            state.consume(meta, consumed)
            raise _failed(req, old)
        itm.write(store, meta, pk, sk, old, old_size, None, 0, consumed)
    out: dict = {}
    if rv == "ALL_OLD" and old:
        out["Attributes"] = old
    _collection_metrics(meta, req, out, key)
    return _finish(state, meta, req, consumed, out)


def check_update_keys(meta: TableMeta, update: ast.Update | None, env: Env) -> None:
    if update is None:
        return
    for action in update.actions:
        top = env.name(action.path.parts[0])
        if top in meta.key_names:
            raise invalid_parameter(f"Cannot update attribute {top}. This attribute is part of the key")


def updated_item(meta: TableMeta, plan: Plan, old: dict | None, key: dict) -> tuple[dict, int, list[tuple]]:
    """The item after the plan's update, validated (sets, nesting, 400 KB), its size and touched paths."""
    base = old if old is not None else dict(key)
    if plan.update is not None:
        new, paths = apply(plan.update, base, plan.env)
    else:
        new, paths = copy_item(base), []
    new, size = check_item(new)
    if meta.indexes:
        itm.check_index_keys(meta, new)
    return new, size, paths


def update_item(state: State, meta: TableMeta, req: dict) -> dict:
    pk, sk, key = itm.key_of(meta, req.get("Key"))
    rv = req.get("ReturnValues") or "NONE"
    if rv not in _UPDATE_RV:
        raise validation(
            f"1 validation error detected: Value '{rv}' at 'returnValues' failed to satisfy constraint: "
            "Member must satisfy enum value set: [ALL_NEW, UPDATED_OLD, ALL_OLD, NONE, UPDATED_NEW]"
        )
    plan = Plan(req, ("UpdateExpression", "ConditionExpression"))
    check_update_keys(meta, plan.update, plan.env)
    if state.locks:
        state.check_unlocked(meta.tid, pk, sk)
    state.throttle.admit_write(meta)
    store = state.store
    consumed = Consumed(meta.name, read=False)
    with store.write():
        got = store.get(meta.tid, pk, sk)
        old, old_size = got if got else (None, None)
        if not plan.check(old):
            consumed.table_units = 1.0
            state.consume(meta, consumed)
            raise _failed(req, old)
        new, size, paths = updated_item(meta, plan, old, key)
        itm.write(store, meta, pk, sk, old, old_size, new, size, consumed)
    out: dict = {}
    if rv == "ALL_OLD" and old:
        out["Attributes"] = old
    elif rv == "ALL_NEW":
        out["Attributes"] = new
    elif rv in ("UPDATED_OLD", "UPDATED_NEW"):
        # The top-level attributes the update touched, as they were before / are after it.
        source = old if rv == "UPDATED_OLD" else new
        names = {p[0] for p in paths}
        attrs = {k: v for k, v in (source or {}).items() if k in names}
        if attrs:
            out["Attributes"] = attrs
    _collection_metrics(meta, req, out, key)
    return _finish(state, meta, req, consumed, out)
