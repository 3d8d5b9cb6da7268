"""Items are stored as MessagePack; a store written by an earlier version (marshal) is read as is
and rewritten in the background, without a change visible to clients."""

from __future__ import annotations

import asyncio
import marshal
import sqlite3
from pathlib import Path

from strata.config import Settings
from strata.services.base import ServiceRuntime
from strata.services.dynamodb.provider import DynamoDBProvider
from strata.services.dynamodb.store import dumps, loads
from tests.services.dynamodb.conftest import key_schema
from tests.services.dynamodb.test_conflicts import ctx

ITEM = {
    "id": {"S": "k"},
    "s": {"S": ""},
    "n": {"N": "-12.5E+30"},
    "b": {"B": b"\x00\xff"},
    "e": {"B": b""},
    "t": {"BOOL": True},
    "f": {"BOOL": False},
    "z": {"NULL": True},
    "ss": {"SS": ["a", "\u00e9"]},
    "ns": {"NS": ["1", "2.5"]},
    "bs": {"BS": [b"x", b"\x80"]},
    "l": {"L": [{"S": "x"}, {"L": []}, {"M": {}}]},
    "m": {"M": {"deep": {"M": {"x": {"N": "1"}}}}},
}


def test_every_attribute_type_round_trips() -> None:
    blob = dumps(ITEM)
    assert blob[0] in (0xDE, 0xDF) or 0x80 <= blob[0] <= 0x8F  # a MessagePack map
    assert loads(blob) == ITEM
    assert loads(marshal.dumps(ITEM)) == ITEM  # rows of the earlier format


def provider(path: Path) -> DynamoDBProvider:
    settings = Settings(data_dir=path, fsync=False, limits={"dynamodb_bulk_chunk": 7})
    return DynamoDBProvider(ServiceRuntime("dynamodb", settings, path / "dynamodb"))


def test_marshal_store_is_read_then_migrated(tmp_path: Path) -> None:
    items = [{**ITEM, "id": {"S": f"k{i:02d}"}} for i in range(30)]
    p = provider(tmp_path)
    stored: list[dict] = []

    def everything() -> list[dict]:
        return sorted(p.scan(ctx(), {"TableName": "old"})["Items"], key=lambda i: i["id"]["S"])

    async def write() -> None:
        await p.start()
        p.create_table(
            ctx(), {"TableName": "old", "BillingMode": "PAY_PER_REQUEST", **key_schema(("id", "S"))}
        )
        for it in items:
            await p.put_item(ctx(), {"TableName": "old", "Item": it})
        stored.extend(everything())  # as DynamoDB keeps them (numbers normalized)
        await p.stop()

    asyncio.run(write())
    assert len(stored) == 30 and stored[0]["b"] == ITEM["b"]
    # Turn the file into what the previous version wrote: marshal blobs, no format marker.
    path = tmp_path / "dynamodb" / "dynamodb.sqlite3"
    db = sqlite3.connect(path)
    for pk, sk, blob in db.execute("SELECT pk, sk, item FROM ddb_items").fetchall():
        db.execute(
            "UPDATE ddb_items SET item = ? WHERE pk = ? AND sk = ?", (marshal.dumps(loads(blob)), pk, sk)
        )
    db.execute("DELETE FROM ddb_counters WHERE name = 'item_format'")
    db.commit()
    db.close()

    p = provider(tmp_path)

    async def read() -> None:
        assert everything() == stored  # read before any migration
        await p.start()
        await p.bulk.idle()
        assert everything() == stored
        assert p.get_item(ctx(), {"TableName": "old", "Key": {"id": {"S": "k07"}}})["Item"] == stored[7]
        await p.stop()

    asyncio.run(read())
    db = sqlite3.connect(path)
    firsts = {blob[0] for (blob,) in db.execute("SELECT item FROM ddb_items")}
    fmt = db.execute("SELECT value FROM ddb_counters WHERE name = 'item_format'").fetchone()
    db.close()
    assert all(0x80 <= b <= 0x8F or b in (0xDE, 0xDF) for b in firsts)
    assert fmt == (2,)
