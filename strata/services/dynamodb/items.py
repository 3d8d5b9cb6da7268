"""Item-level mechanics shared by single-item calls, batches and transactions.

Key extraction and validation against a table's schema, loading an item, and `write`, which
replaces or deletes an item while keeping index rows, the table's count/size and the consumed
capacity in step — all inside the caller's SQLite transaction.
"""

from __future__ import annotations

from strata.protocol.errors import ServiceError
from strata.services.dynamodb import keys, lww, pitr, streams
from strata.services.dynamodb.capacity import Consumed, write_units
from strata.services.dynamodb.errors import invalid_parameter, validation
from strata.services.dynamodb.store import ItemStore, dumps
from strata.services.dynamodb.tables import IndexMeta, TableMeta
from strata.services.dynamodb.types import check_value, item_size

MAX_HASH_KEY = 2048
MAX_RANGE_KEY = 1024
_NO_MATCH = "The provided key element does not match the schema"


def _key_bytes(name: str, av: dict, key_type: str, limit: int, in_item: bool) -> bytes:
    if key_type not in av or len(av) != 1:
        if in_item:
            actual = next(iter(av)) if isinstance(av, dict) and av else "?"
            raise invalid_parameter(f"Type mismatch for key {name} expected: {key_type} actual: {actual}")
        raise validation(_NO_MATCH)
    data = keys.encode(av, key_type)
    if not data and key_type != "N":
        raise validation(
            "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an "
            f"empty {'string' if key_type == 'S' else 'binary'} value. Key: {name}"
        )
    if len(data) > limit and key_type != "N":
        if limit == MAX_HASH_KEY:
            raise invalid_parameter(
                f"Size of hashkey has exceeded the maximum size limit of{MAX_HASH_KEY} bytes"
            )
        raise invalid_parameter(
            f"Aggregated size of all range keys has exceeded the size limit of {MAX_RANGE_KEY} bytes"
        )
    return data


def key_of_item(meta: TableMeta, item: dict) -> tuple[bytes, bytes]:
    """Encoded (pk, sk) of a full item (PutItem), with PutItem's error wording."""
    hv = item.get(meta.hash_key)
    if hv is None:
        raise invalid_parameter(f"Missing the key {meta.hash_key} in the item")
    pk = _key_bytes(meta.hash_key, hv, meta.hash_type, MAX_HASH_KEY, True)
    if meta.range_key is None:
        return pk, b""
    rv = item.get(meta.range_key)
    if rv is None:
        raise invalid_parameter(f"Missing the key {meta.range_key} in the item")
    return pk, _key_bytes(meta.range_key, rv, meta.range_type, MAX_RANGE_KEY, True)  # type: ignore[arg-type]


def key_of(meta: TableMeta, key: object) -> tuple[bytes, bytes, dict]:
    """Encoded (pk, sk) and the canonical key map of a `Key` parameter."""
    if not isinstance(key, dict) or len(key) != len(meta.key_names):
        raise validation(_NO_MATCH)
    hv = key.get(meta.hash_key)
    if hv is None:
        raise validation(_NO_MATCH)
    hv, _ = check_value(hv)
    pk = _key_bytes(meta.hash_key, hv, meta.hash_type, MAX_HASH_KEY, False)
    if meta.range_key is None:
        return pk, b"", {meta.hash_key: hv}
    rv = key.get(meta.range_key)
    if rv is None:
        raise validation(_NO_MATCH)
    rv, _ = check_value(rv)
    sk = _key_bytes(meta.range_key, rv, meta.range_type, MAX_RANGE_KEY, False)  # type: ignore[arg-type]
    return pk, sk, {meta.hash_key: hv, meta.range_key: rv}


def key_attributes(meta: TableMeta, item: dict) -> dict:
    return {k: item[k] for k in meta.key_names}


def check_index_keys(meta: TableMeta, item: dict) -> None:
    """An index key attribute present with the wrong type is an error (absent is fine: sparse)."""
    for ix in meta.indexes:
        attrs: list = [(ix.hash_key, ix.hash_type), (ix.range_key, ix.range_type)]
        if ix.extra_hash or ix.extra_range:
            attrs += ix.extra_hash + ix.extra_range
        for name, t in attrs:
            if name is None or name in meta.key_names:
                continue
            v = item.get(name)
            if v is not None and t not in v:
                raise invalid_parameter(
                    f"Type mismatch for Index Key {name} Expected: {t} Actual: {next(iter(v))} IndexName: {ix.name}"
                )
            if v is not None and t != "N" and not v[t]:
                raise invalid_parameter(
                    "One or more parameter values are not valid. A value specified for a secondary index key is "
                    f"not supported. The AttributeValue for a key attribute cannot contain an empty string value. "
                    f"IndexName: {ix.name}, IndexKey: {name}"
                )


def index_key(ix: IndexMeta, item: dict | None) -> tuple[bytes, bytes] | None:
    """The item's (pk, sk) in the index, or None when it lacks an index key (sparse index)."""
    if item is None:
        return None
    if ix.extra_hash or ix.extra_range:
        return _multi_index_key(ix, item)
    hv = item.get(ix.hash_key)
    if hv is None or ix.hash_type not in hv:
        return None
    if ix.range_key is None:
        return keys.encode(hv, ix.hash_type), b""
    rv = item.get(ix.range_key)
    if rv is None or ix.range_type not in rv:
        return None
    return keys.encode(hv, ix.hash_type), keys.encode(rv, ix.range_type)  # type: ignore[arg-type]


def _multi_index_key(ix: IndexMeta, item: dict) -> tuple[bytes, bytes] | None:
    """index_key of a GSI with a multi-attribute key: the item is in it only with every one of
    the key attributes (keys.encode_parts; a single attribute keeps its plain encoding)."""
    sides = []
    for attrs in (ix.hash_attrs, ix.range_attrs):
        values = []
        for name, t in attrs:
            v = item.get(name)
            if v is None or t not in v:
                return None
            values.append((v, t))
        if len(values) > 1:
            sides.append(keys.encode_parts(values))
        else:
            sides.append(keys.encode(*values[0]) if values else b"")
    return sides[0], sides[1]


def index_projection(meta: TableMeta, ix: IndexMeta, item: dict) -> dict:
    """The attributes of `item` that the index holds."""
    if ix.projection_type == "ALL":
        return item
    wanted = {*meta.key_names, *ix.key_names}
    if ix.projection_type == "INCLUDE":
        wanted.update(ix.non_key_attributes)
    return {k: v for k, v in item.items() if k in wanted}


def write(
    store: ItemStore,
    meta: TableMeta,
    pk: bytes,
    sk: bytes,
    old: dict | None,
    old_size: int | None,
    new: dict | None,
    new_size: int,
    consumed: Consumed,
    transactional: bool = False,
    by_ttl: bool = False,
    replicated: bool = False,
) -> None:
    """Replace (new is not None) or delete the item at (pk, sk); must run inside a transaction.

    With the table's stream enabled, the change's stream record is written here too (by_ttl:
    a TTL deletion, which the record names as the service's); a replica of a global table
    stamps a local change's last-writer-wins version (lww.py; `replicated`: replication.py's
    write of another replica's change, which stamps its own)."""
    tid = meta.tid
    blob = None
    if meta.stream:
        blob = dumps(new) if new is not None else None
        version = streams.record(store, meta, pk, sk, old, old_size, new, blob, by_ttl, replicated)
        if meta.group and version is not None and not replicated:
            lww.stamp(store, tid, pk, sk, version)
    if meta.pitr:  # the before-image, for point-in-time recovery
        pitr.log_change(store, tid, pk, sk)
    if new is not None and new_size > (old_size or 0) and any(not ix.is_global for ix in meta.indexes):
        if store.collection_size(tid, pk) - (old_size or 0) + new_size > store.collection_limit:
            raise ServiceError("ItemCollectionSizeLimitExceededException", "Collection size exceeded.", 400)
    if new is not None:
        store.put(tid, pk, sk, new, new_size, blob)
    elif old_size is not None:
        store.delete(tid, pk, sk)
    if old_size is None:
        if new is not None:
            store.adjust_counts(tid, 1, new_size)
    elif new is None:
        store.adjust_counts(tid, -1, -old_size)
    elif new_size != old_size:
        store.adjust_counts(tid, 0, new_size - old_size)
    consumed.table_units += write_units(max(old_size or 0, new_size if new is not None else 0), transactional)
    for ix in meta.indexes:
        before, after = index_key(ix, old), index_key(ix, new)
        if before is None and after is None:
            continue
        if before != after:
            units = 0.0
            delta = 0
            if before is not None:
                delta -= store.index_delete(ix.iid, before[0], before[1], pk, sk)
                units += write_units(item_size(index_projection(meta, ix, old)), transactional)  # type: ignore[arg-type]
            if after is not None:
                delta += store.index_put(ix.iid, after[0], after[1], pk, sk)
                units += write_units(item_size(index_projection(meta, ix, new)), transactional)  # type: ignore[arg-type]
            if delta:
                store.adjust_index_count(ix.iid, delta)
            consumed.add_index(ix.name, ix.is_global, units)
        else:
            p_old = index_projection(meta, ix, old)  # type: ignore[arg-type]
            p_new = index_projection(meta, ix, new)  # type: ignore[arg-type]
            if p_old != p_new:
                consumed.add_index(
                    ix.name, ix.is_global, write_units(max(item_size(p_old), item_size(p_new)), transactional)
                )
