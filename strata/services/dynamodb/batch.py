"""BatchGetItem and BatchWriteItem.

A batch is validated whole before anything is written (DynamoDB rejects the whole request for
one bad item), then written in one SQLite transaction; a batch is not a transaction for the
client, but committing it once is both correct and cheaper. UnprocessedKeys appear when a
BatchGetItem response would pass 16 MB (the `dynamodb_batch_get_bytes` limit); UnprocessedItems
hold the writes whose item an in-flight transaction holds (a transaction conflict). Strata has no
throttling, so nothing is ever left unprocessed for capacity.
"""

from __future__ import annotations

from strata.context import RequestContext
from strata.services.dynamodb import items as itm
from strata.services.dynamodb.capacity import Consumed, read_units
from strata.services.dynamodb.errors import validation
from strata.services.dynamodb.expressions.evaluate import project
from strata.services.dynamodb.item_ops import Plan
from strata.services.dynamodb.state import State
from strata.services.dynamodb.tables import TableMeta
from strata.services.dynamodb.types import check_item

MAX_GET = 100
MAX_WRITE = 25
MAX_GET_BYTES = 16 * 1024 * 1024


def _report(
    state: State, consumed: dict[str, Consumed], mode: str | None, metas: dict[str, TableMeta]
) -> list[dict] | None:
    for c in consumed.values():
        state.consume(metas[c.table], c)
    if mode not in ("TOTAL", "INDEXES"):
        return None
    return [c.report(mode) for c in consumed.values()]  # type: ignore[misc]


def _throttled_reads(state: State, metas: list[TableMeta]) -> set[str]:
    """Tables whose read capacity is exhausted: ProvisionedThroughputExceededException when it is
    every table of the request, as DynamoDB answers; otherwise their keys are left unprocessed."""
    refused = {m.name: e for m in metas if (e := state.throttle.read_refusal(m)) is not None}
    if refused and len(refused) == len(metas):
        raise next(iter(refused.values()))
    return set(refused)


def _request_items(req: dict) -> dict:
    """RequestItems as the model requires it: a non-empty map of non-empty entries.

    (Null tables, null entries and a missing `Keys` are refused by the codec before this.)
    """
    request_items = req["RequestItems"]
    if not request_items:
        raise validation(
            "1 validation error detected: Value '{}' at 'requestItems' failed to satisfy constraint: "
            "Member must have length greater than or equal to 1"
        )
    for name, spec in request_items.items():
        entries, where = (
            (spec, f"requestItems.{name}.member")
            if isinstance(spec, list)
            else (
                spec["Keys"],
                f"requestItems.{name}.member.keys",
            )
        )
        if not entries:
            raise validation(
                f"1 validation error detected: Value '[]' at '{where}' failed to satisfy constraint: "
                "Member must have length greater than or equal to 1"
            )
    return request_items


def batch_get_item(state: State, ctx: RequestContext, req: dict) -> dict:
    request_items = _request_items(req)
    if sum(len(spec.get("Keys") or []) for spec in request_items.values()) > MAX_GET:
        raise validation("Too many items requested for the BatchGetItem call")
    plans = []
    for name, spec in request_items.items():
        meta = state.table(ctx, name)
        plan = Plan(spec, ("ProjectionExpression",))
        encoded = [itm.key_of(meta, k)[:2] for k in spec.get("Keys") or []]
        if len(set(encoded)) != len(encoded):
            raise validation("Provided list of item keys contains duplicates")
        plans.append((name, meta, spec, plan, encoded))
    responses: dict[str, list] = {}
    unprocessed: dict[str, dict] = {}
    consumed: dict[str, Consumed] = {}
    metas: dict[str, TableMeta] = {}
    total = 0
    limit = state.batch_get_bytes
    throttled = _throttled_reads(state, [p[1] for p in plans])
    for name, meta, spec, plan, encoded in plans:
        responses[name] = []
        if meta.name in throttled:  # its keys come back unprocessed, for the client's retry
            unprocessed[name] = spec
            continue
        metas[meta.name] = meta
        c = consumed.setdefault(meta.name, Consumed(meta.name, read=True))
        consistent = bool(spec.get("ConsistentRead"))
        for i, (pk, sk) in enumerate(encoded):
            got = state.store.get(meta.tid, pk, sk, state.store.r) if total < limit else None
            if total >= limit or (got is not None and total and total + got[1] > limit):
                # The response would pass the limit: this key and the rest are left for a retry
                # (at least one item is always returned, so a client loop makes progress).
                left = dict(spec)
                left["Keys"] = spec["Keys"][i:]
                unprocessed[name] = left
                total = limit
                break
            c.table_units += read_units(got[1] if got else 0, consistent)
            if got is not None:
                total += got[1]
                item = got[0]
                responses[name].append(
                    project(item, plan.projection) if plan.projection is not None else item
                )
    out: dict = {"Responses": responses, "UnprocessedKeys": unprocessed}
    cc = _report(state, consumed, req.get("ReturnConsumedCapacity"), metas)
    if cc is not None:
        out["ConsumedCapacity"] = cc
    return out


def batch_write_item(state: State, ctx: RequestContext, req: dict) -> dict:
    request_items = _request_items(req)
    if sum(len(reqs or []) for reqs in request_items.values()) > MAX_WRITE:
        raise validation("Too many items requested for the BatchWriteItem call")
    work = []
    for name, reqs in request_items.items():
        meta = state.table(ctx, name)
        seen = set()
        for r in reqs or []:
            put, delete = r.get("PutRequest"), r.get("DeleteRequest")
            if (put is None) == (delete is None):
                raise validation(
                    "Supplied WriteRequest must contain exactly one of PutRequest or DeleteRequest"
                )
            if put is not None:
                item, size = check_item(put.get("Item"))
                pk, sk = itm.key_of_item(meta, item)
                if meta.indexes:
                    itm.check_index_keys(meta, item)
            else:
                pk, sk, _ = itm.key_of(meta, delete.get("Key"))
                item, size = None, 0
            if (pk, sk) in seen:
                raise validation("Provided list of item keys contains duplicates")
            seen.add((pk, sk))
            work.append((name, r, meta, pk, sk, item, size))
    consumed: dict[str, Consumed] = {}
    metas: dict[str, TableMeta] = {}
    store = state.store
    unprocessed: dict[str, list] = {}
    if state.locks:  # items held by in-flight transactions are left for the client's retry
        kept = []
        for w in work:
            if (w[2].tid, w[3], w[4]) in state.locks:
                unprocessed.setdefault(w[0], []).append(w[1])
            else:
                kept.append(w)
        work = kept
    tables = {w[2].name: w[2] for w in work}
    refusals = {n: e for n, m in tables.items() if (e := state.throttle.write_refusal(m)) is not None}
    if refusals:  # as for reads: the error when every table is out of capacity, else unprocessed
        if len(refusals) == len(tables):
            raise next(iter(refusals.values()))
        kept = []
        for w in work:
            if w[2].name in refusals:
                unprocessed.setdefault(w[0], []).append(w[1])
            else:
                kept.append(w)
        work = kept
    with store.write():
        for _name, _r, meta, pk, sk, item, size in work:
            metas[meta.name] = meta
            c = consumed.setdefault(meta.name, Consumed(meta.name, read=False))
            got = store.get(meta.tid, pk, sk)
            old, old_size = got if got else (None, None)
            itm.write(store, meta, pk, sk, old, old_size, item, size, c)
    out: dict = {"UnprocessedItems": unprocessed}
    cc = _report(state, consumed, req.get("ReturnConsumedCapacity"), metas)
    if cc is not None:
        out["ConsumedCapacity"] = cc
    return out
