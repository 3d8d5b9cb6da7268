"""DynamoDB pages: tables (keys, indexes, capacity, item count), the item browser with scan and
query builders, and the item editor in DynamoDB JSON.

The browser reads one page (PAGE_SIZE items) per request, Scan or Query with Limit, so a table of
a million items costs what a small one does; "Next page" carries LastEvaluatedKey as JSON. A query
is built from the form: partition key equals a value, and optionally a sort key condition
(=, <, <=, >, >=, begins_with, between), on the table or one of its indexes, plus an optional
filter expression with its values in DynamoDB JSON.
"""

from __future__ import annotations

import json
from typing import Any

from strata.console.aws import AwsError
from strata.console.dynamodb_json import ItemError, brief, parse_item, to_text
from strata.console.web import Page, url
from strata.protocol.http import HttpResponse

PAGE_SIZE = 50
SORT_OPERATORS = ("=", "<", "<=", ">", ">=", "begins_with", "between")
MAX_COLUMNS = 12


async def tables(page: Page) -> HttpResponse:
    params: dict[str, Any] = {"Limit": 100}
    if page.query.get("start"):
        params["ExclusiveStartTableName"] = page.query["start"]
    listed = await page.call("dynamodb", "list_tables", **params)
    last = listed.get("LastEvaluatedTableName")
    return page.render(
        "ddb_tables.html",
        title="DynamoDB tables",
        tables=listed.get("TableNames", []),
        next_url=page.next_url(start=last),
    )


async def create_table(page: Page) -> HttpResponse:
    form = page.form
    name = form.get("table", "").strip()
    keys = [(form.get("pk", "").strip(), form.get("pk_type", "S"), "HASH")]
    if form.get("sk", "").strip():
        keys.append((form["sk"].strip(), form.get("sk_type", "S"), "RANGE"))
    return await page.act(
        "dynamodb",
        "create_table",
        f"Created table {name}.",
        url("/dynamodb/table", name=name),
        TableName=name,
        AttributeDefinitions=[{"AttributeName": k, "AttributeType": t} for k, t, _ in keys],
        KeySchema=[{"AttributeName": k, "KeyType": role} for k, _, role in keys],
        BillingMode="PAY_PER_REQUEST",
    )


async def delete_table(page: Page) -> HttpResponse:
    name = page.form.get("table", "")
    return await page.act(
        "dynamodb", "delete_table", f"Deleted table {name}.", url("/dynamodb"), TableName=name
    )


def _key_schema(table: dict, index: str) -> list[dict]:
    if index:
        for group in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            for ix in table.get(group, []):
                if ix["IndexName"] == index:
                    return ix["KeySchema"]
        raise AwsError("ValidationException", f"The table has no index named {index}")
    return table["KeySchema"]


def _typed(value: str, kind: str) -> dict:
    return {kind: value}


def _json_map(text: str, what: str) -> dict:
    if not text.strip():
        return {}
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise AwsError("ValidationException", f"{what} is not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise AwsError("ValidationException", f"{what} is a JSON object")
    return doc


def _request(table: dict, q: dict[str, str]) -> tuple[str, dict]:
    """The Scan or Query (operation, parameters) the browser's form asks for."""
    index = q.get("index", "")
    types = {a["AttributeName"]: a["AttributeType"] for a in table.get("AttributeDefinitions", [])}
    params: dict[str, Any] = {"TableName": table["TableName"], "Limit": PAGE_SIZE}
    if index:
        params["IndexName"] = index
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    op = "query" if q.get("mode") == "query" else "scan"
    if op == "query":
        schema = {k["KeyType"]: k["AttributeName"] for k in _key_schema(table, index)}
        pk = schema["HASH"]
        names["#pk"] = pk
        values[":pk"] = _typed(q.get("pk", ""), types.get(pk, "S"))
        condition = "#pk = :pk"
        sk_op = q.get("sk_op", "")
        if sk_op and "RANGE" in schema:
            if sk_op not in SORT_OPERATORS:
                raise AwsError("ValidationException", f"the sort key condition is one of {SORT_OPERATORS}")
            sk = schema["RANGE"]
            names["#sk"] = sk
            values[":sk"] = _typed(q.get("sk", ""), types.get(sk, "S"))
            if sk_op == "begins_with":
                condition += " AND begins_with(#sk, :sk)"
            elif sk_op == "between":
                values[":sk2"] = _typed(q.get("sk2", ""), types.get(sk, "S"))
                condition += " AND #sk BETWEEN :sk AND :sk2"
            else:
                condition += f" AND #sk {sk_op} :sk"
        params["KeyConditionExpression"] = condition
        params["ScanIndexForward"] = q.get("order") != "desc"
    if q.get("filter", "").strip():
        params["FilterExpression"] = q["filter"]
        names.update(_json_map(q.get("names", ""), "The filter's names"))
        try:
            values.update(parse_item(q.get("values", "") or "{}", {}))
        except ItemError as e:
            raise AwsError("ValidationException", f"The filter's values: {e}") from None
    if names:
        params["ExpressionAttributeNames"] = names
    if values:
        params["ExpressionAttributeValues"] = values
    if q.get("start"):
        params["ExclusiveStartKey"] = _key(q["start"], {})
    return op, params


async def table(page: Page) -> HttpResponse:
    name = page.query.get("name", "")
    described = (await page.call("dynamodb", "describe_table", TableName=name))["Table"]
    op = "query" if page.query.get("mode") == "query" else "scan"
    query_error = ""
    try:
        op, params = _request(described, page.query)
        answer = await page.call("dynamodb", op, **params)
    except AwsError as e:  # a mistake in the builder's form: shown above the empty results
        answer, query_error = {}, f"{e.code}: {e.message}"
    items = answer.get("Items", [])
    key_names = [k["AttributeName"] for k in described["KeySchema"]]
    columns = list(key_names)
    for item in items:
        for attr in item:
            if attr not in columns and len(columns) < MAX_COLUMNS:
                columns.append(attr)
    rows = [
        {
            "key": json.dumps(to_text({k: item[k] for k in key_names if k in item}), sort_keys=True),
            "cells": [brief(item[c]) if c in item else "" for c in columns],
        }
        for item in items
    ]
    last = answer.get("LastEvaluatedKey")
    next_url = page.next_url(start=json.dumps(to_text(last), sort_keys=True) if last else "")
    return page.render(
        "ddb_table.html",
        title=f"{name} · DynamoDB",
        t=described,
        q=page.query,
        op=op,
        query_error=query_error,
        key_names=key_names,
        indexes=[
            ix["IndexName"]
            for g in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes")
            for ix in described.get(g, [])
        ],
        sort_operators=SORT_OPERATORS,
        columns=columns,
        rows=rows,
        count=answer.get("Count", 0),
        scanned=answer.get("ScannedCount", 0),
        next_url=next_url,
        first_url=url("/dynamodb/table", **{k: v for k, v in page.query.items() if k != "start"}),
    )


def _key(text: str, key_types: dict[str, str]) -> dict:
    try:
        return parse_item(text, key_types)
    except ItemError as e:
        raise AwsError("ValidationException", f"The item's key: {e}") from None


def _key_types(described: dict) -> dict[str, str]:
    types = {a["AttributeName"]: a["AttributeType"] for a in described.get("AttributeDefinitions", [])}
    return {k["AttributeName"]: types.get(k["AttributeName"], "S") for k in described["KeySchema"]}


async def item(page: Page) -> HttpResponse:
    name = page.query.get("table", "")
    described = (await page.call("dynamodb", "describe_table", TableName=name))["Table"]
    key_types = _key_types(described)
    found: dict = {}
    if page.query.get("key"):
        key = _key(page.query["key"], key_types)
        found = (await page.call("dynamodb", "get_item", TableName=name, Key=key, ConsistentRead=True)).get(
            "Item"
        ) or {}
        if not found:
            raise AwsError(
                "ResourceNotFoundException", "No item has that key (it may have been deleted).", 404
            )
    template = found or {k: {t: ""} for k, t in key_types.items()}
    return _editor(page, name, json.dumps(to_text(template), indent=2, sort_keys=True), bool(found), [])


def _editor(
    page: Page, name: str, text: str, existing: bool, problems: list[str], status: int = 200
) -> HttpResponse:
    key_json = ""
    if existing:
        key_json = page.query.get("key") or page.form.get("key", "")
    return page.render(
        "ddb_item.html",
        status=status,
        title=f"Item · {name}",
        table=name,
        text=text,
        existing=existing,
        key=key_json,
        problems=problems,
    )


async def save_item(page: Page) -> HttpResponse:
    name = page.form.get("table", "")
    text = page.form.get("item", "")
    described = (await page.call("dynamodb", "describe_table", TableName=name))["Table"]
    key_types = _key_types(described)
    try:
        doc = parse_item(text, key_types)
    except ItemError as e:
        return _editor(page, name, text, bool(page.form.get("key")), e.problems, status=400)
    try:
        await page.call("dynamodb", "put_item", TableName=name, Item=doc)
    except AwsError as e:
        return _editor(page, name, text, bool(page.form.get("key")), [f"{e.code}: {e.message}"], status=400)
    key = json.dumps(to_text({k: doc[k] for k in key_types}), sort_keys=True)
    page.say("ok", "Saved the item.")
    return page.redirect(url("/dynamodb/item", table=name, key=key))


async def set_capacity(page: Page) -> HttpResponse:
    """UpdateTable: on-demand, or provisioned with the form's read and write capacity units (which
    a table leaving on-demand gives each of its global secondary indexes too, as AWS requires)."""
    name, mode = page.form.get("table", ""), page.form.get("billing", "")
    params: dict[str, Any] = {"TableName": name, "BillingMode": mode}
    if mode == "PROVISIONED":
        try:
            units = {
                "ReadCapacityUnits": int(page.form.get("rcu", "")),
                "WriteCapacityUnits": int(page.form.get("wcu", "")),
            }
        except ValueError:
            raise AwsError("ValidationException", "Capacity units are whole numbers.") from None
        params["ProvisionedThroughput"] = units
        described = (await page.call("dynamodb", "describe_table", TableName=name))["Table"]
        indexes = described.get("GlobalSecondaryIndexes", [])
        if indexes and described.get("BillingModeSummary", {}).get("BillingMode") == "PAY_PER_REQUEST":
            params["GlobalSecondaryIndexUpdates"] = [
                {"Update": {"IndexName": ix["IndexName"], "ProvisionedThroughput": units}} for ix in indexes
            ]
    done = f"Updated the capacity of {name}."
    return await page.act("dynamodb", "update_table", done, url("/dynamodb/table", name=name), **params)


async def delete_item(page: Page) -> HttpResponse:
    name = page.form.get("table", "")
    described = (await page.call("dynamodb", "describe_table", TableName=name))["Table"]
    key = _key(page.form.get("key", ""), _key_types(described))
    then = url("/dynamodb/table", name=name)
    return await page.act("dynamodb", "delete_item", "Deleted the item.", then, TableName=name, Key=key)


ROUTES = {
    ("GET", "/dynamodb"): tables,
    ("POST", "/dynamodb/create"): create_table,
    ("POST", "/dynamodb/delete"): delete_table,
    ("GET", "/dynamodb/table"): table,
    ("GET", "/dynamodb/item"): item,
    ("POST", "/dynamodb/item/save"): save_item,
    ("POST", "/dynamodb/item/delete"): delete_item,
    ("POST", "/dynamodb/capacity"): set_capacity,
}
