"""BatchGetItem's response limit (16 MB in AWS, small here): UnprocessedKeys, and a client loop
that retries them gets every item exactly once."""

from __future__ import annotations

from typing import Any

from tests.services.dynamodb.conftest import key_schema


def test_batch_get_returns_unprocessed_keys_past_the_response_limit(strata_factory: Any) -> None:
    server = strata_factory(extra_env={"STRATA_LIMIT_DYNAMODB_BATCH_GET_BYTES": "3000"})
    ddb = server.client("dynamodb")
    for t in ("one", "two"):
        ddb.create_table(TableName=t, BillingMode="PAY_PER_REQUEST", **key_schema(("id", "S")))
        for i in range(6):
            ddb.put_item(TableName=t, Item={"id": {"S": f"k{i}"}, "pad": {"S": "x" * 1000}})
    keys = [{"id": {"S": f"k{i}"}} for i in range(6)] + [{"id": {"S": "missing"}}]
    request = {t: {"Keys": keys, "ProjectionExpression": "id"} for t in ("one", "two")}
    first = ddb.batch_get_item(RequestItems=request)
    assert sum(len(v) for v in first["Responses"].values()) == 2  # 3000 bytes hold two 1 KB items
    assert set(first["UnprocessedKeys"]) == {"one", "two"}
    assert first["UnprocessedKeys"]["one"]["ProjectionExpression"] == "id"
    got: dict[str, list[str]] = {"one": [], "two": []}
    calls = 0
    while request:
        calls += 1
        r = ddb.batch_get_item(RequestItems=request)
        for t, items in r["Responses"].items():
            got[t] += [i["id"]["S"] for i in items]
            assert all(set(i) == {"id"} for i in items)
        request = r["UnprocessedKeys"]
    assert {t: sorted(v) for t, v in got.items()} == {t: [f"k{i}" for i in range(6)] for t in got}
    assert calls == 6
