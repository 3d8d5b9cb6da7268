"""PutItem / GetItem / UpdateItem / DeleteItem through the real server: semantics and errors."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError


def error(call: Any, **kw: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as e:
        call(**kw)
    return e.value.response["Error"]["Code"], e.value.response["Error"]["Message"]


def test_all_types_round_trip_exactly(ddb: Any, make_table: Any) -> None:
    t = make_table(("pk", "S"))
    item = {
        "pk": {"S": "k"},
        "s": {"S": "héllo"},
        "e": {"S": ""},
        "n": {"N": "12345678901234567890.123456789012345678"},
        "b": {"B": b"\x00\xff"},
        "t": {"BOOL": False},
        "z": {"NULL": True},
        "ss": {"SS": ["a", "b"]},
        "ns": {"NS": ["1", "2.5"]},
        "bs": {"BS": [b"\x01", b"\x02"]},
        "m": {"M": {"l": {"L": [{"N": "1"}, {"M": {}}, {"L": []}]}}},
    }
    ddb.put_item(TableName=t, Item=item)
    got = ddb.get_item(TableName=t, Key={"pk": {"S": "k"}})["Item"]
    assert got == item
    ddb.put_item(TableName=t, Item={"pk": {"S": "n"}, "n": {"N": "1.500E2"}})
    assert ddb.get_item(TableName=t, Key={"pk": {"S": "n"}})["Item"]["n"] == {"N": "150"}


def test_key_validation_messages(ddb: Any, make_table: Any) -> None:
    t = make_table(("pk", "S"), ("sk", "N"))
    assert error(ddb.put_item, TableName=t, Item={"pk": {"S": "a"}}) == (
        "ValidationException",
        "One or more parameter values were invalid: Missing the key sk in the item",
    )
    assert error(ddb.put_item, TableName=t, Item={"pk": {"S": "a"}, "sk": {"S": "1"}}) == (
        "ValidationException",
        "One or more parameter values were invalid: Type mismatch for key sk expected: N actual: S",
    )
    assert error(ddb.get_item, TableName=t, Key={"pk": {"S": "a"}}) == (
        "ValidationException",
        "The provided key element does not match the schema",
    )
    assert error(ddb.get_item, TableName=t, Key={"pk": {"N": "1"}, "sk": {"N": "1"}}) == (
        "ValidationException",
        "The provided key element does not match the schema",
    )
    code, msg = error(ddb.put_item, TableName=t, Item={"pk": {"S": ""}, "sk": {"N": "1"}})
    assert msg == (
        "One or more parameter values are not valid. The AttributeValue for a key attribute cannot "
        "contain an empty string value. Key: pk"
    )
    assert error(ddb.get_item, TableName="nope-table", Key={"pk": {"S": "a"}}) == (
        "ResourceNotFoundException",
        "Requested resource not found",
    )
    code, msg = error(
        ddb.put_item, TableName=t, Item={"pk": {"S": "a"}, "sk": {"N": "1"}, "big": {"S": "x" * 410000}}
    )
    assert msg == "Item size has exceeded the maximum allowed size"
    code, msg = error(
        ddb.put_item, TableName=t, Item={"pk": {"S": "a"}, "sk": {"N": "1"}, "s": {"SS": ["x", "x"]}}
    )
    assert msg == "One or more parameter values were invalid: Input collection [x, x] contains duplicates."


def test_return_values(ddb: Any, make_table: Any) -> None:
    t = make_table(("pk", "S"))
    key = {"pk": {"S": "a"}}
    assert "Attributes" not in ddb.put_item(
        TableName=t, Item={**key, "v": {"N": "1"}, "w": {"S": "x"}}, ReturnValues="ALL_OLD"
    )
    old = ddb.put_item(TableName=t, Item={**key, "v": {"N": "2"}, "w": {"S": "x"}}, ReturnValues="ALL_OLD")
    assert old["Attributes"]["v"] == {"N": "1"}
    r = ddb.update_item(
        TableName=t,
        Key=key,
        UpdateExpression="SET v = v + :one",
        ReturnValues="UPDATED_OLD",
        ExpressionAttributeValues={":one": {"N": "1"}},
    )
    assert r["Attributes"] == {"v": {"N": "2"}}
    r = ddb.update_item(
        TableName=t,
        Key=key,
        UpdateExpression="SET v = v + :one",
        ReturnValues="UPDATED_NEW",
        ExpressionAttributeValues={":one": {"N": "1"}},
    )
    assert r["Attributes"] == {"v": {"N": "4"}}
    r = ddb.update_item(TableName=t, Key=key, UpdateExpression="REMOVE w", ReturnValues="ALL_NEW")
    assert r["Attributes"] == {**key, "v": {"N": "4"}}
    r = ddb.delete_item(TableName=t, Key=key, ReturnValues="ALL_OLD")
    assert r["Attributes"] == {**key, "v": {"N": "4"}}
    assert "Item" not in ddb.get_item(TableName=t, Key=key)
    assert error(ddb.put_item, TableName=t, Item=key, ReturnValues="ALL_NEW") == (
        "ValidationException",
        "ReturnValues can only be ALL_OLD or NONE",
    )


def test_updated_values_are_whole_top_level_attributes(ddb: Any, make_table: Any) -> None:
    t = make_table(("pk", "S"))
    key = {"pk": {"S": "a"}}
    ddb.put_item(
        TableName=t, Item={**key, "m": {"M": {"x": {"N": "1"}, "y": {"S": "keep"}}}, "o": {"S": "other"}}
    )
    r = ddb.update_item(
        TableName=t,
        Key=key,
        UpdateExpression="SET m.x = m.x + :one",
        ReturnValues="UPDATED_NEW",
        ExpressionAttributeValues={":one": {"N": "1"}},
    )
    assert r["Attributes"] == {"m": {"M": {"x": {"N": "2"}, "y": {"S": "keep"}}}}


def test_update_creates_item_and_refuses_key_updates(ddb: Any, make_table: Any) -> None:
    t = make_table(("pk", "S"))
    r = ddb.update_item(
        TableName=t,
        Key={"pk": {"S": "new"}},
        UpdateExpression="ADD hits :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
        ReturnValues="ALL_NEW",
    )
    assert r["Attributes"] == {"pk": {"S": "new"}, "hits": {"N": "1"}}
    assert error(
        ddb.update_item,
        TableName=t,
        Key={"pk": {"S": "new"}},
        UpdateExpression="SET pk = :v",
        ExpressionAttributeValues={":v": {"S": "x"}},
    ) == (
        "ValidationException",
        "One or more parameter values were invalid: Cannot update attribute pk. This attribute is part of the key",
    )


def test_condition_failure_can_return_the_old_item(ddb: Any, make_table: Any) -> None:
    t = make_table(("pk", "S"))
    ddb.put_item(TableName=t, Item={"pk": {"S": "a"}, "v": {"N": "1"}})
    with pytest.raises(ClientError) as e:
        ddb.put_item(
            TableName=t,
            Item={"pk": {"S": "a"}},
            ConditionExpression="attribute_not_exists(pk)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    assert e.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert e.value.response["Item"] == {"pk": {"S": "a"}, "v": {"N": "1"}}
    with pytest.raises(ddb.exceptions.ConditionalCheckFailedException):
        ddb.delete_item(
            TableName=t,
            Key={"pk": {"S": "a"}},
            ConditionExpression="v > :v",
            ExpressionAttributeValues={":v": {"N": "1"}},
        )


def test_legacy_parameters(ddb: Any, make_table: Any) -> None:
    t = make_table(("pk", "S"))
    key = {"pk": {"S": "a"}}
    ddb.put_item(
        TableName=t, Item={**key, "v": {"N": "1"}, "s": {"SS": ["x"]}}, Expected={"pk": {"Exists": False}}
    )
    with pytest.raises(ddb.exceptions.ConditionalCheckFailedException):
        ddb.put_item(TableName=t, Item=key, Expected={"v": {"Value": {"N": "2"}}})
    ddb.update_item(
        TableName=t,
        Key=key,
        AttributeUpdates={
            "v": {"Action": "ADD", "Value": {"N": "5"}},
            "s": {"Action": "ADD", "Value": {"SS": ["y"]}},
            "w": {"Action": "PUT", "Value": {"S": "new"}},
        },
        Expected={"v": {"ComparisonOperator": "EQ", "AttributeValueList": [{"N": "1"}]}},
    )
    got = ddb.get_item(TableName=t, Key=key, AttributesToGet=["v", "w"])["Item"]
    assert got == {"v": {"N": "6"}, "w": {"S": "new"}}
    code, msg = error(ddb.get_item, TableName=t, Key=key, AttributesToGet=["v"], ProjectionExpression="v")
    assert msg == (
        "Can not use both expression and non-expression parameters in the same request: "
        "Non-expression parameters: {AttributesToGet} Expression parameters: {ProjectionExpression}"
    )


def test_never_a_500_for_bad_expressions(ddb: Any, make_table: Any) -> None:
    t = make_table(("pk", "S"))
    key = {"pk": {"S": "a"}}
    for kw in [
        {"UpdateExpression": "SET"},
        {"UpdateExpression": "SET a = :v", "ExpressionAttributeValues": {":v": {}}},
        {"UpdateExpression": "SET a[", "ExpressionAttributeValues": {":v": {"S": "x"}}},
        {"UpdateExpression": "DELETE a :v", "ExpressionAttributeValues": {":v": {"S": "x"}}},
        {"UpdateExpression": "SET a = list_append(:v, :v)", "ExpressionAttributeValues": {":v": {"S": "x"}}},
        {
            "ConditionExpression": "a BETWEEN :v",
            "UpdateExpression": "SET b = :v",
            "ExpressionAttributeValues": {":v": {"S": "x"}},
        },
    ]:
        with pytest.raises(ClientError) as e:
            ddb.update_item(TableName=t, Key=key, **kw)
        assert e.value.response["Error"]["Code"] == "ValidationException", kw
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
