"""Inputs that once crashed the server (500) get DynamoDB's 400 instead.

Sent as raw signed JSON so the body is exactly the one under test: a lone surrogate escape
(`"\\ud800"`) cannot even be produced by botocore's serializer.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import pytest

SCHEMA = {
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    "AttributeDefinitions": [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "S"},
    ],
    "BillingMode": "PAY_PER_REQUEST",
}


def send(endpoint: str, operation: str, body: str | dict) -> tuple[int, dict]:
    data = (body if isinstance(body, str) else json.dumps(body)).encode()
    req = botocore.awsrequest.AWSRequest(
        method="POST",
        url=endpoint + "/",
        data=data,
        headers={
            "X-Amz-Target": f"DynamoDB_20120810.{operation}",
            "Content-Type": "application/x-amz-json-1.0",
        },
    )
    botocore.auth.SigV4Auth(
        botocore.credentials.Credentials("test", "test"), "dynamodb", "us-east-1"
    ).add_auth(req)
    http = urllib.request.Request(req.url, data=data, headers=dict(req.headers.items()), method="POST")
    try:
        with urllib.request.urlopen(http, timeout=60) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


@pytest.fixture(scope="module")
def table(strata_server: Any) -> str:
    strata_server.client("dynamodb").create_table(TableName="hostile", **SCHEMA)
    return "hostile"


def _error(answer: tuple[int, dict]) -> tuple[int, str, str]:
    status, doc = answer
    return status, doc.get("__type", "").rsplit("#", 1)[-1], doc.get("message", "")


LONE_SURROGATE_BODIES = {
    "S value": ("PutItem", '{"TableName":"hostile","Item":{"pk":{"S":"\\ud800"},"sk":{"S":"a"}}}'),
    "non-key S": (
        "PutItem",
        '{"TableName":"hostile","Item":{"pk":{"S":"a"},"sk":{"S":"a"},"x":{"S":"\\udfff"}}}',
    ),
    "attribute name": (
        "PutItem",
        '{"TableName":"hostile","Item":{"pk":{"S":"a"},"sk":{"S":"a"},"\\ud800":{"S":"x"}}}',
    ),
    "string set": (
        "PutItem",
        '{"TableName":"hostile","Item":{"pk":{"S":"a"},"sk":{"S":"a"},"x":{"SS":["\\udc00"]}}}',
    ),
    "map key": (
        "PutItem",
        '{"TableName":"hostile","Item":{"pk":{"S":"a"},"sk":{"S":"a"},"x":{"M":{"\\udbff":{"S":"a"}}}}}',
    ),
    "key": ("GetItem", '{"TableName":"hostile","Key":{"pk":{"S":"\\ud800"},"sk":{"S":"a"}}}'),
    "expression value": (
        "Query",
        '{"TableName":"hostile","KeyConditionExpression":"pk = :v","ExpressionAttributeValues":{":v":{"S":"\\ud800"}}}',
    ),
    "expression name": (
        "Query",
        '{"TableName":"hostile","KeyConditionExpression":"#k = :v","ExpressionAttributeNames":{"#k":"\\ud800"},'
        '"ExpressionAttributeValues":{":v":{"S":"a"}}}',
    ),
    "expression text": (
        "Query",
        '{"TableName":"hostile","KeyConditionExpression":"pk = :v\\ud800","ExpressionAttributeValues":{":v":{"S":"a"}}}',
    ),
    "batch write": (
        "BatchWriteItem",
        '{"RequestItems":{"hostile":[{"PutRequest":{"Item":{"pk":{"S":"\\ud800"},"sk":{"S":"a"}}}}]}}',
    ),
    "transaction": (
        "TransactWriteItems",
        '{"TransactItems":[{"Put":{"TableName":"hostile","Item":{"pk":{"S":"a"},"sk":{"S":"\\ud800"}}}}]}',
    ),
    "start key": (
        "Scan",
        '{"TableName":"hostile","ExclusiveStartKey":{"pk":{"S":"\\ud800"},"sk":{"S":"a"}}}',
    ),
    "tag": (
        "TagResource",
        '{"ResourceArn":"arn:aws:dynamodb:us-east-1:000000000000:table/hostile","Tags":[{"Key":"\\ud800","Value":"a"}]}',
    ),
}


@pytest.mark.parametrize("case", sorted(LONE_SURROGATE_BODIES))
def test_lone_surrogate_is_a_serialization_error(strata_server, table: str, case: str) -> None:
    operation, body = LONE_SURROGATE_BODIES[case]
    status, code, _ = _error(send(strata_server.endpoint, operation, body))
    assert (status, code) == (400, "SerializationException")


def test_paired_surrogates_are_ordinary_text(strata_server, table: str) -> None:
    body = '{"TableName":"hostile","Item":{"pk":{"S":"\\ud83d\\ude00"},"sk":{"S":"a"}}}'
    assert send(strata_server.endpoint, "PutItem", body)[0] == 200
    item = strata_server.client("dynamodb").get_item(
        TableName=table, Key={"pk": {"S": "😀"}, "sk": {"S": "a"}}
    )
    assert item["Item"]["pk"] == {"S": "😀"}


def _query(expression: str) -> dict:
    return {
        "TableName": "hostile",
        "KeyConditionExpression": expression,
        "ExpressionAttributeValues": {":v": {"S": "a"}},
    }


def test_deeply_nested_parentheses_parse_without_recursion(strata_server, table: str) -> None:
    answer = send(strata_server.endpoint, "Query", _query("(" * 300 + "pk = :v" + ")" * 300))
    assert answer[0] == 200
    scan = {"TableName": "hostile", "FilterExpression": "(" * 1500 + "pk = :v" + ")" * 1500}
    scan["ExpressionAttributeValues"] = {":v": {"S": "a"}}
    assert send(strata_server.endpoint, "Scan", scan)[0] == 200


@pytest.mark.parametrize("operation", ["Query", "Scan"])
def test_too_many_operators(strata_server, table: str, operation: str) -> None:
    member = "KeyConditionExpression" if operation == "Query" else "FilterExpression"
    body = {
        "TableName": "hostile",
        member: "NOT " * 1000 + "pk = :v",
        "ExpressionAttributeValues": {":v": {"S": "a"}},
    }
    status, code, message = _error(send(strata_server.endpoint, operation, body))
    assert (status, code) == (400, "ValidationException")
    assert message == f"Invalid {member}: The expression contains too many operators; operator count: 301"


def test_condition_nesting_within_the_operator_limit(strata_server, table: str) -> None:
    ddb = strata_server.client("dynamodb")
    ddb.put_item(TableName=table, Item={"pk": {"S": "n"}, "sk": {"S": "n"}})
    expression = "NOT " * 150 + "attribute_exists(pk)"  # even count: true
    ddb.put_item(TableName=table, Item={"pk": {"S": "n"}, "sk": {"S": "n"}}, ConditionExpression=expression)


def test_expression_size_limit(strata_server, table: str) -> None:
    expression = " AND ".join(["pk = :v"] * 600).ljust(7_206)  # the size in the report
    body = {
        "TableName": "hostile",
        "FilterExpression": expression,
        "ExpressionAttributeValues": {":v": {"S": "a"}},
    }
    status, code, message = _error(send(strata_server.endpoint, "Scan", body))
    assert (status, code) == (400, "ValidationException")
    assert message == (
        "Invalid FilterExpression: Expression size has exceeded the maximum allowed size; expression size: 7206"
    )
    at_limit = "pk = :v" + " " * (4096 - 7)
    body["FilterExpression"] = at_limit
    assert send(strata_server.endpoint, "Scan", body)[0] == 200


@pytest.mark.parametrize("member", ["Limit", "TotalSegments"])
def test_numbers_beyond_their_java_type(strata_server, table: str, member: str) -> None:
    body: dict = {"TableName": "hostile", member: 2**63}
    if member == "TotalSegments":
        body.update(TotalSegments=999_999_999_999, Segment=0)
    status, code, _ = _error(send(strata_server.endpoint, "Scan", body))
    assert (status, code) == (400, "SerializationException")
    status, code, _ = _error(send(strata_server.endpoint, "Query", {**_query("pk = :v"), "Limit": 2**63}))
    assert (status, code) == (400, "SerializationException")


def test_total_segments_range(strata_server, table: str) -> None:
    body = {"TableName": "hostile", "TotalSegments": 1_000_001, "Segment": 0}
    status, code, message = _error(send(strata_server.endpoint, "Scan", body))
    assert (status, code) == (400, "ValidationException")
    assert "Member must have value less than or equal to 1000000" in message
    body = {"TableName": "hostile", "TotalSegments": 1_000_000, "Segment": 999_999}
    assert send(strata_server.endpoint, "Scan", body)[0] == 200


@pytest.mark.parametrize(
    "operation, items, code",
    [
        ("BatchGetItem", {"hostile": None}, "SerializationException"),  # a null in a map
        ("BatchGetItem", {"hostile": {"Keys": [None]}}, "SerializationException"),  # in a list
        ("BatchGetItem", {"hostile": {}}, "ValidationException"),  # Keys is required
        ("BatchGetItem", {}, "ValidationException"),
        ("BatchWriteItem", {"hostile": None}, "SerializationException"),
        ("BatchWriteItem", {"hostile": [None]}, "SerializationException"),
        ("BatchWriteItem", {"hostile": []}, "ValidationException"),
    ],
)
def test_batch_request_items_with_nulls(
    strata_server, table: str, operation: str, items: dict, code: str
) -> None:
    status, got, message = _error(send(strata_server.endpoint, operation, {"RequestItems": items}))
    assert (status, got) == (400, code)
    if code == "ValidationException":
        assert message.startswith("1 validation error detected")
