"""DynamoDB test helpers: clients on the shared server and a table factory with unique names."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest


@pytest.fixture(scope="module")
def ddb(strata_server: Any) -> Any:
    return strata_server.client("dynamodb")


@pytest.fixture(scope="module")
def ddbr(strata_server: Any) -> Any:
    return strata_server.resource("dynamodb")


def key_schema(hash_key: tuple[str, str], range_key: tuple[str, str] | None = None) -> dict:
    ks = [{"AttributeName": hash_key[0], "KeyType": "HASH"}]
    defs = [{"AttributeName": hash_key[0], "AttributeType": hash_key[1]}]
    if range_key:
        ks.append({"AttributeName": range_key[0], "KeyType": "RANGE"})
        defs.append({"AttributeName": range_key[0], "AttributeType": range_key[1]})
    return {"KeySchema": ks, "AttributeDefinitions": defs}


@pytest.fixture
def make_table(ddb: Any, unique: str) -> Iterator[Callable[..., str]]:
    """make_table(("pk", "S"), ("sk", "N"), **extra) -> table name; dropped after the test."""
    made: list[str] = []

    def make(
        hash_key: tuple[str, str],
        range_key: tuple[str, str] | None = None,
        name: str | None = None,
        extra_defs: list[dict] | None = None,
        **kw: Any,
    ) -> str:
        table = name or f"t{len(made)}-{unique}"
        spec = key_schema(hash_key, range_key)
        spec["AttributeDefinitions"] += extra_defs or []
        kw.setdefault("BillingMode", "PAY_PER_REQUEST")
        ddb.create_table(TableName=table, **spec, **kw)
        made.append(table)
        return table

    yield make
    for t in made:
        try:
            ddb.delete_table(TableName=t)
        except ddb.exceptions.ResourceNotFoundException:
            pass
        except ddb.exceptions.ResourceInUseException:
            pass  # still UPDATING after a capacity change (DeleteTable is refused then): left behind


@pytest.fixture(scope="package")
def clock_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A server of this package's own for the tests that move its clock or restart it
    (throttling, capacity changes, backups): sharing one saves a server start per module."""
    from tests.strata_process import StrataProcess

    s = StrataProcess(tmp_path_factory.mktemp("clocked") / "data").start()
    yield s
    s.stop()
