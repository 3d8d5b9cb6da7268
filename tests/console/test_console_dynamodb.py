"""The console's DynamoDB pages in a real Chromium: create a table, scan and query it (key condition,
index, filter), edit an item in DynamoDB JSON (type errors are shown, nothing is written), delete
it; an item value holding markup is shown as text."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.console.browser import browser_fixture, shot, signed_in_page
from tests.strata_process import StrataProcess


@pytest.fixture(scope="module")
def browser() -> Iterator:
    yield from browser_fixture()


@pytest.fixture
def page(browser, strata_server: StrataProcess):
    yield from signed_in_page(browser, strata_server.endpoint)


def _orders_table(server, name: str) -> None:
    ddb = server.client("dynamodb")
    ddb.create_table(
        TableName=name,
        AttributeDefinitions=[
            {"AttributeName": "customer", "AttributeType": "S"},
            {"AttributeName": "order", "AttributeType": "N"},
            {"AttributeName": "status", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "customer", "KeyType": "HASH"},
            {"AttributeName": "order", "KeyType": "RANGE"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-status",
                "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    for customer in ("ann", "bob"):
        for order in range(1, 8):
            ddb.put_item(
                TableName=name,
                Item={
                    "customer": {"S": customer},
                    "order": {"N": str(order)},
                    "status": {"S": "open" if order % 2 else "shipped"},
                    "total": {"N": str(order * 10)},
                },
            )


def _first_column(page) -> list[str]:
    return [t.strip() for t in page.locator("#items tbody td:first-child").all_inner_texts()]


def test_create_a_table_and_query_scan_and_filter(page, strata_server, unique) -> None:
    created = f"made-{unique}"
    page.goto(f"{strata_server.endpoint}/_strata/console/dynamodb")
    page.fill("#table", created)
    page.fill("#pk", "id")
    page.click("text=Create table")
    page.wait_for_selector(f"h1:text-is('{created}')")
    assert strata_server.client("dynamodb").describe_table(TableName=created)["Table"]["KeySchema"] == [
        {"AttributeName": "id", "KeyType": "HASH"}
    ]
    name = f"orders-{unique}"
    _orders_table(strata_server, name)
    page.goto(f"{strata_server.endpoint}/_strata/console/dynamodb/table?name={name}")
    facts = page.inner_text("#table-facts")
    assert "customer" in facts and "order" in facts and "PAY_PER_REQUEST" in facts
    assert "by-status" in page.inner_text("main")
    assert page.locator("#items tbody tr").count() == 14
    shot(page, "dynamodb-table")
    # query: customer = bob and order between 2 and 4, newest first
    page.check("input[name=mode][value=query]")
    page.fill("#pk", "bob")
    page.select_option("#sk_op", "between")
    page.fill("#sk", "2")
    page.fill("#sk2", "4")
    page.select_option("#order", "desc")
    page.click("#run")
    page.wait_for_selector("#items caption:has-text('3 item(s)')")
    assert [row.split("\t")[1] for row in page.locator("#items tbody tr").all_inner_texts()] == [
        "4",
        "3",
        "2",
    ]
    shot(page, "dynamodb-query")
    # the index, with a filter
    page.select_option("#sk_op", "")
    page.select_option("#index", "by-status")
    page.fill("#pk", "shipped")
    page.fill("#filter", "#t >= :min")
    page.fill("#names", '{"#t": "total"}')
    page.fill("#values", '{":min": {"N": "40"}}')
    page.click("#run")
    page.wait_for_selector("#items caption:has-text('4 item(s)')")
    assert sorted(_first_column(page)) == ["ann", "ann", "bob", "bob"]
    # capacity: on demand -> provisioned 7/3
    page.check("#capacity input[value=PROVISIONED]")
    page.fill("#rcu", "7")
    page.fill("#wcu", "3")
    page.click("text=Update capacity")
    page.wait_for_selector(".flash:has-text('Updated the capacity')")
    table = strata_server.client("dynamodb").describe_table(TableName=name)["Table"]
    assert table.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED") == "PROVISIONED"
    assert (
        table["ProvisionedThroughput"]["ReadCapacityUnits"],
        table["ProvisionedThroughput"]["WriteCapacityUnits"],
    ) == (7, 3)
    assert "7 RCU, 3 WCU" in page.inner_text("#table-facts")
    page.goto(
        f"{strata_server.endpoint}/_strata/console/dynamodb/table?name={name}&mode=query&index=by-status&pk=shipped&filter=%23t+%3E%3D+%3Amin&names=%7B%22%23t%22%3A+%22total%22%7D&values=%7B%7D"
    )
    # a mistake in the builder is shown on the page, the form kept
    page.fill("#values", '{":min": {"N": "forty"}}')
    page.click("#run")
    assert "N takes a number" in page.inner_text("#query-error")
    assert page.input_value("#filter") == "#t >= :min"


def test_edit_an_item_with_type_checking_and_delete_it(page, strata_server, unique) -> None:
    name = f"edit-{unique}"
    _orders_table(strata_server, name)
    ddb = strata_server.client("dynamodb")
    page.goto(f"{strata_server.endpoint}/_strata/console/dynamodb/table?name={name}")
    page.click("#items a:text-is('ann') >> nth=0")
    page.wait_for_selector("#item")
    text = page.input_value("#item")
    assert '"customer": {\n    "S": "ann"' in text
    # a number given as a JSON number, and an unknown type: refused with both problems, nothing written
    page.fill("#item", '{"customer": {"S": "ann"}, "order": {"N": "1"}, "total": {"N": 99}, "x": {"Q": "1"}}')
    page.click("#save")
    problems = page.inner_text("#problems")
    assert "total: N takes a number written as a string" in problems and "x: give one type" in problems
    key = {"customer": {"S": "ann"}, "order": {"N": "1"}}
    assert ddb.get_item(TableName=name, Key=key)["Item"]["total"] == {"N": "10"}
    shot(page, "dynamodb-item-errors")
    page.fill(
        "#item",
        '{"customer": {"S": "ann"}, "order": {"N": "1"}, "total": {"N": "99.5"},'
        ' "tags": {"SS": ["a", "b"]}, "blob": {"B": "AAEC"}, "more": {"M": {"ok": {"BOOL": true}}}}',
    )
    page.click("#save")
    page.wait_for_selector(".flash:has-text('Saved the item.')")
    stored = ddb.get_item(TableName=name, Key=key)["Item"]
    assert stored["total"] == {"N": "99.5"} and stored["blob"] == {"B": b"\x00\x01\x02"}
    assert sorted(stored["tags"]["SS"]) == ["a", "b"] and "status" not in stored
    shot(page, "dynamodb-item")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#delete-item")
    page.wait_for_selector(".flash:has-text('Deleted the item.')")
    assert "Item" not in ddb.get_item(TableName=name, Key=key)


def test_an_item_value_holding_markup_is_shown_as_text(page, strata_server, unique) -> None:
    name = f"markup-{unique}"
    ddb = strata_server.client("dynamodb")
    ddb.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    value = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'
    ddb.put_item(TableName=name, Item={"id": {"S": value}, "note": {"S": value}})
    page.goto(f"{strata_server.endpoint}/_strata/console/dynamodb/table?name={name}")
    assert page.locator("#items tbody td").all_inner_texts() == [value, value]
    page.click("#items a")
    page.wait_for_selector("#item")
    assert json.loads(page.input_value("#item"))["note"] == {"S": value}
    assert page.evaluate("window.pwned") is None
    assert page.locator("main script, main img").count() == 0
