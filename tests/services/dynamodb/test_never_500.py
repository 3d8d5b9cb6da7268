"""Malformed requests (client-side validation off) get a 4xx with DynamoDB's error shape, never a 500."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["S", "N", "B", "M", "L", "SS", "NS", "BS", "NULL", "BOOL", "pk", "sk", "x"]),
            inner,
            max_size=3,
        )
    ),
    max_leaves=8,
)


def send(endpoint: str, operation: str, body: dict) -> tuple[int, dict]:
    """A signed request with an arbitrary JSON body (no client-side shape checks at all)."""
    req = botocore.awsrequest.AWSRequest(
        method="POST",
        url=endpoint + "/",
        data=json.dumps(body),
        headers={
            "X-Amz-Target": f"DynamoDB_20120810.{operation}",
            "Content-Type": "application/x-amz-json-1.0",
        },
    )
    botocore.auth.SigV4Auth(
        botocore.credentials.Credentials("test", "test"), "dynamodb", "us-east-1"
    ).add_auth(req)
    http = urllib.request.Request(
        req.url, data=req.data.encode(), headers=dict(req.headers.items()), method="POST"
    )
    try:
        with urllib.request.urlopen(http, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


@pytest.fixture(scope="module")
def raw(strata_server: Any) -> Any:
    return strata_server


@pytest.fixture(scope="module")
def table(strata_server: Any) -> str:
    raw = strata_server.client("dynamodb")
    raw.create_table(
        TableName="never500",
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
    )
    return "never500"


CALLS = [
    "PutItem",
    "GetItem",
    "UpdateItem",
    "DeleteItem",
    "Query",
    "Scan",
    "BatchWriteItem",
    "BatchGetItem",
    "TransactWriteItems",
]


def build(call: str, table: str, v: Any, expr: str) -> dict:
    key = {"pk": v, "sk": {"N": "1"}}
    return {
        "PutItem": {
            "TableName": table,
            "Item": {"pk": {"S": "a"}, "sk": {"N": "1"}, "x": v},
            "ConditionExpression": expr,
            "ExpressionAttributeValues": {":v": v},
        },
        "GetItem": {"TableName": table, "Key": key, "ProjectionExpression": expr},
        "UpdateItem": {
            "TableName": table,
            "Key": {"pk": {"S": "a"}, "sk": {"N": "1"}},
            "UpdateExpression": expr,
            "ExpressionAttributeValues": {":v": v},
        },
        "DeleteItem": {"TableName": table, "Key": key},
        "Query": {
            "TableName": table,
            "KeyConditionExpression": expr,
            "ExpressionAttributeValues": {":v": v},
            "ExclusiveStartKey": key,
        },
        "Scan": {"TableName": table, "Limit": v, "Segment": v, "TotalSegments": 2},
        "BatchWriteItem": {
            "RequestItems": {table: [{"PutRequest": {"Item": v}}, {"DeleteRequest": {"Key": key}}]}
        },
        "BatchGetItem": {"RequestItems": {table: {"Keys": [key, v]}}},
        "TransactWriteItems": {"TransactItems": [{"Put": {"TableName": table, "Item": v}}, v]},
    }[call]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from(CALLS),
    values,
    st.sampled_from(["pk = :v", "SET x = :v", "x, y", "a < :v", "ADD x :v", "("]),
)
def test_bad_input_is_a_client_error(raw: Any, table: str, call: str, v: Any, expr: str) -> None:
    status, body = send(raw.endpoint, call, build(call, table, v, expr))
    assert status == 200 or (400 <= status < 500 and body.get("__type")), (call, v, expr, status, body)
