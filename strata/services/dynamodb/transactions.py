"""TransactWriteItems and TransactGetItems: all or nothing, in one SQLite transaction.

Conflicts: a transaction's writes are made synchronously, but it is acknowledged only after
its group commit is durable; until then its items are "held" (`State.locks`). As in DynamoDB, a
PutItem/UpdateItem/DeleteItem on a held item fails with TransactionConflictException, a
BatchWriteItem leaves it in UnprocessedItems, and a TransactWriteItems or TransactGetItems that
touches one is cancelled with the reason code TransactionConflict.

Every action is validated before anything is read; then all conditions are checked and all
writes made inside one BEGIN IMMEDIATE ... COMMIT, so a crash leaves all of a transaction or none
of it. A failed condition cancels the whole transaction with CancellationReasons in request
order. A ClientRequestToken makes the call idempotent for 10 minutes of simulated time.
"""

from __future__ import annotations

import hashlib
import json

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.dynamodb import items as itm
from strata.services.dynamodb.capacity import Consumed, read_units, write_units
from strata.services.dynamodb.errors import (
    conflict_reason,
    idempotent_mismatch,
    transaction_canceled,
    transaction_in_progress,
    validation,
)
from strata.services.dynamodb.expressions.evaluate import project
from strata.services.dynamodb.item_ops import Plan, check_update_keys, updated_item
from strata.services.dynamodb.state import State, scope_of
from strata.services.dynamodb.tables import TableMeta
from strata.services.dynamodb.types import check_item
from strata.sim.clock import clock

MAX_ACTIONS = 100
TOKEN_SECONDS = 600
_MEMBERS = {
    "ConditionCheck": ("ConditionExpression",),
    "Put": ("ConditionExpression",),
    "Delete": ("ConditionExpression",),
    "Update": ("UpdateExpression", "ConditionExpression"),
}


class _Cancel(Exception):
    """Raised inside the SQLite transaction to roll it back."""


def _digest(req: dict) -> str:
    body = {k: v for k, v in req.items() if k != "ClientRequestToken"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=repr).encode()).hexdigest()


THROTTLED = (
    "Throughput exceeds the current capacity of your table or index. DynamoDB is automatically "
    "scaling your table or index so please try again shortly. If exceptions persist, check if you "
    "have a hot key: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html."
)


def _throttle(metas: list[TableMeta], read: bool, state: State) -> None:
    """A transaction touching a provisioned table out of capacity is cancelled, each such action
    with DynamoDB's ThrottlingError reason (throttle.py)."""
    check = state.throttle.read_refusal if read else state.throttle.write_refusal
    refused = {m.tid for m in metas if check(m) is not None}
    if refused:
        raise transaction_canceled(
            [
                {"Code": "ThrottlingError", "Message": THROTTLED} if m.tid in refused else {"Code": "None"}
                for m in metas
            ]
        )


def transact_write_items(
    state: State, ctx: RequestContext, req: dict
) -> tuple[dict, list[tuple[int, bytes, bytes]], tuple[str, str] | None]:
    """Run a transaction; returns its response, the items it holds until it is durable, and its
    (scope, ClientRequestToken) if any.

    The caller adds those items to `state.locks` and the token to `state.tx_tokens` while it
    waits for the group commit, so a concurrent write of one of the items gets DynamoDB's
    transaction conflict and a retry with the same token TransactionInProgressException.
    """
    actions = req.get("TransactItems") or []
    if not actions or len(actions) > MAX_ACTIONS:
        raise validation(
            f"1 validation error detected: Value at 'transactItems' failed to satisfy constraint: "
            f"Member must have length less than or equal to {MAX_ACTIONS}"
        )
    token = req.get("ClientRequestToken")
    scope = scope_of(ctx)
    store = state.store
    if token:
        if (scope, token) in state.tx_tokens:
            raise transaction_in_progress()
        prior = store.get_token(scope, token, clock.time() - TOKEN_SECONDS)
        if prior is not None:
            if prior[0] != _digest(req):
                raise idempotent_mismatch()
            return prior[1], [], None
    work = []
    seen = set()
    for action in actions:
        if len(action) != 1 or next(iter(action)) not in _MEMBERS:
            raise validation("TransactItems can only contain one of Check, Put, Update or Delete")
        ((kind, spec),) = action.items()
        meta = state.table(ctx, spec.get("TableName"))
        plan = Plan(spec, _MEMBERS[kind])
        if kind == "Put":
            item, size = check_item(spec.get("Item"))
            pk, sk = itm.key_of_item(meta, item)
            if meta.indexes:
                itm.check_index_keys(meta, item)
            key = itm.key_attributes(meta, item)
        else:
            pk, sk, key = itm.key_of(meta, spec.get("Key"))
            item, size = None, 0
        if kind == "Update":
            check_update_keys(meta, plan.update, plan.env)
        if (meta.tid, pk, sk) in seen:
            raise validation("Transaction request cannot include multiple operations on one item")
        seen.add((meta.tid, pk, sk))
        work.append((kind, spec, meta, plan, pk, sk, key, item, size))
    _throttle([w[2] for w in work], read=False, state=state)
    held = [(w[2].tid, w[4], w[5]) for w in work]
    if state.locks and any(k in state.locks for k in held):
        raise transaction_canceled(
            [conflict_reason() if k in state.locks else {"Code": "None"} for k in held]
        )
    consumed: dict[str, Consumed] = {}
    metas: dict[str, TableMeta] = {}
    reasons: list[dict] = []
    try:
        with store.write():
            writes = []
            for kind, spec, meta, plan, pk, sk, key, item, size in work:
                got = store.get(meta.tid, pk, sk)
                old, old_size = got if got else (None, None)
                if not plan.check(old):
                    reason = {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"}
                    if spec.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and old is not None:
                        reason["Item"] = old
                    reasons.append(reason)
                    continue
                try:
                    if kind == "Update":
                        item, size, _ = updated_item(meta, plan, old, key)
                except ServiceError as e:
                    reasons.append({"Code": "ValidationError", "Message": e.message})
                    continue
                reasons.append({"Code": "None"})
                writes.append((kind, meta, pk, sk, old, old_size, item, size))
            if any(r["Code"] != "None" for r in reasons):
                raise _Cancel()
            for kind, meta, pk, sk, old, old_size, item, size in writes:
                metas[meta.name] = meta
                c = consumed.setdefault(meta.name, Consumed(meta.name, read=False))
                if kind == "ConditionCheck":
                    c.table_units += write_units(old_size or 0, transactional=True)
                    continue
                itm.write(
                    store,
                    meta,
                    pk,
                    sk,
                    old,
                    old_size,
                    None if kind == "Delete" else item,
                    size,
                    c,
                    transactional=True,
                )
            out: dict = {}
            mode = req.get("ReturnConsumedCapacity")
            if mode in ("TOTAL", "INDEXES"):
                out["ConsumedCapacity"] = [c.report(mode) for c in consumed.values()]
            if token:
                now = clock.time()
                store.put_token(scope, token, _digest(req), now, out, now - TOKEN_SECONDS)
    except _Cancel:
        raise transaction_canceled(reasons) from None
    for c in consumed.values():
        state.consume(metas[c.table], c)
    return out, held, (scope, token) if token else None


def transact_get_items(state: State, ctx: RequestContext, req: dict) -> dict:
    actions = req.get("TransactItems") or []
    if not actions or len(actions) > MAX_ACTIONS:
        raise validation(
            f"1 validation error detected: Value at 'transactItems' failed to satisfy constraint: "
            f"Member must have length less than or equal to {MAX_ACTIONS}"
        )
    work = []
    seen = set()
    for action in actions:
        spec = action.get("Get")
        if spec is None:
            raise validation("TransactItems can only contain Get")
        meta = state.table(ctx, spec.get("TableName"))
        plan = Plan(spec, ("ProjectionExpression",))
        pk, sk, _ = itm.key_of(meta, spec.get("Key"))
        if (meta.tid, pk, sk) in seen:
            raise validation("Transaction request cannot include multiple operations on one item")
        seen.add((meta.tid, pk, sk))
        work.append((meta, plan, pk, sk))
    _throttle([w[0] for w in work], read=True, state=state)
    if state.locks and any((m.tid, pk, sk) in state.locks for m, _, pk, sk in work):
        raise transaction_canceled(
            [
                conflict_reason() if (m.tid, pk, sk) in state.locks else {"Code": "None"}
                for m, _, pk, sk in work
            ]
        )
    responses = []
    consumed: dict[str, Consumed] = {}
    metas: dict[str, TableMeta] = {}
    store = state.store
    with store.snapshot() as reader:  # one snapshot for every read
        for meta, plan, pk, sk in work:
            got = store.get(meta.tid, pk, sk, reader)
            metas[meta.name] = meta
            c = consumed.setdefault(meta.name, Consumed(meta.name, read=True))
            c.table_units += read_units(got[1] if got else 0, True, transactional=True)
            if got is None:
                responses.append({})
            else:
                item = got[0]
                responses.append(
                    {"Item": project(item, plan.projection) if plan.projection is not None else item}
                )
    for c in consumed.values():
        state.consume(metas[c.table], c)
    out: dict = {"Responses": responses}
    mode = req.get("ReturnConsumedCapacity")
    if mode in ("TOTAL", "INDEXES"):
        out["ConsumedCapacity"] = [c.report(mode) for c in consumed.values()]
    return out
