"""DynamoDB's order of checks: model constraints (every broken one in one ValidationException,
in the order of the input's members, a missing required member among them) before any semantic
check, on every operation — the hot GetItem/PutItem shapes included — and numbers at the edges
of DynamoDB's range as keys."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

KEY = {"pk": {"S": "a"}}


@pytest.fixture(scope="module")
def raw(strata_server: Any) -> Any:
    """A client that sends what it is given (botocore checks some constraints itself)."""
    return strata_server.client("dynamodb", config=Config(parameter_validation=False))


def _error(call: Any, **kw: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as e:
        call(**kw)
    return e.value.response["Error"]["Code"], e.value.response["Error"]["Message"]


def test_every_broken_constraint_in_member_order(raw: Any, make_table: Any) -> None:
    t = make_table(("pk", "S"))
    code, message = _error(
        raw.query, TableName=t, Select="EVERYTHING", Limit=0, KeyConditionExpression="pk = :p"
    )
    assert code == "ValidationException"
    assert message == (
        "2 validation errors detected: Value 'EVERYTHING' at 'select' failed to satisfy constraint: "
        "Member must satisfy enum value set: [ALL_ATTRIBUTES, ALL_PROJECTED_ATTRIBUTES, SPECIFIC_ATTRIBUTES, "
        "COUNT]; Value '0' at 'limit' failed to satisfy constraint: Member must have value greater than or "
        "equal to 1"
    )


def test_constraints_come_before_semantic_errors(raw: Any, unique: str) -> None:
    # No such table, and an IndexName the model refuses: the constraint is reported.
    code, message = _error(
        raw.query, TableName=f"none-{unique}", IndexName="a;", KeyConditionExpression="pk = :p"
    )
    assert (code, message) == (
        "ValidationException",
        "2 validation errors detected: Value 'a;' at 'indexName' failed to satisfy constraint: Member must "
        "satisfy regular expression pattern: [a-zA-Z0-9_.-]+; Value 'a;' at 'indexName' failed to satisfy "
        "constraint: Member must have length greater than or equal to 3",
    )


def test_a_missing_member_is_listed_with_the_other_broken_constraints(raw: Any) -> None:
    code, message = _error(raw.tag_resource, Tags=[{"Key": "", "Value": "v"}])
    assert code == "ValidationException"
    assert message == (
        "2 validation errors detected: Value null at 'resourceArn' failed to satisfy constraint: Member must "
        "not be null; Value '' at 'tags.1.member.key' failed to satisfy constraint: Member must have length "
        "greater than or equal to 1"
    )


def test_constraints_before_key_schema_checks(raw: Any, unique: str) -> None:
    code, message = _error(
        raw.create_table,
        TableName=f"m-{unique}",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "X"}],
        BillingMode="FREE",
    )
    assert code == "ValidationException"
    assert message == (
        "2 validation errors detected: Value 'X' at 'attributeDefinitions.1.member.attributeType' failed to "
        "satisfy constraint: Member must satisfy enum value set: [S, N, B]; Value 'FREE' at 'billingMode' "
        "failed to satisfy constraint: Member must satisfy enum value set: [PROVISIONED, PAY_PER_REQUEST]"
    )


def test_enum_values_are_not_accepted_and_ignored(raw: Any, make_table: Any) -> None:
    t = make_table(("pk", "S"))
    raw.put_item(TableName=t, Item=KEY)
    code, message = _error(raw.get_item, TableName=t, Key=KEY, ReturnConsumedCapacity="ALL")
    assert code == "ValidationException"
    assert (
        "at 'returnConsumedCapacity' failed to satisfy constraint: Member must satisfy enum value set"
        in message
    )
    code, message = _error(raw.put_item, TableName=t, Item=KEY, ReturnValues="EVERYTHING")
    assert "Value 'EVERYTHING' at 'returnValues'" in message
    code, message = _error(raw.delete_item, TableName=t, Key=KEY, ReturnItemCollectionMetrics="ALL")
    assert "at 'returnItemCollectionMetrics'" in message
    assert raw.get_item(TableName=t, Key=KEY)["Item"] == KEY  # nothing was deleted


def test_lean_requests_report_constraints_on_their_error_path(raw: Any, make_table: Any) -> None:
    # GetItem/PutItem naming only the table and the key/item skip the up-front check (hot path);
    # a table name AWS refuses still gets the constraint error, not ResourceNotFound.
    long_name = "t" * 1025
    for call, kw in (
        (raw.get_item, {"Key": KEY}),
        (raw.put_item, {"Item": KEY}),
        (raw.delete_item, {"Key": KEY}),
    ):
        code, message = _error(call, TableName=long_name, **kw)
        assert code == "ValidationException"
        assert message.startswith(f"1 validation error detected: Value '{'t' * 128}...' at 'tableName'")
        assert message.endswith("Member must have length less than or equal to 1024")
    code, _ = _error(raw.get_item, TableName="", Key=KEY)
    assert code == "ValidationException"


def test_streams_operations_check_their_constraints(strata_server: Any) -> None:
    streams = strata_server.client("dynamodbstreams", config=Config(parameter_validation=False))
    code, message = _error(streams.list_streams, Limit=0)
    assert (code, message) == (
        "ValidationException",
        "1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: Member must have "
        "value greater than or equal to 1",
    )


@pytest.mark.parametrize(
    "numbers",
    [
        ["-1E-129", "-1E-130", "0", "1E-130", "1.5E-130", "1E-129", "9.9E-129", "1E-128"],
        ["-9.9999999999999999999999999999999999999E+125", "-1E-128", "-5E-129", "-1E-130", "1E+125"],
    ],
)
def test_smallest_numbers_are_keys_in_order(ddb: Any, make_table: Any, numbers: list[str]) -> None:
    t = make_table(("pk", "S"), ("n", "N"))
    for n in reversed(numbers):
        ddb.put_item(TableName=t, Item={"pk": {"S": "p"}, "n": {"N": n}})
    got = ddb.query(
        TableName=t, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "p"}}
    )["Items"]
    assert [Decimal(i["n"]["N"]) for i in got] == [Decimal(n) for n in numbers]
    item = ddb.get_item(TableName=t, Key={"pk": {"S": "p"}, "n": {"N": numbers[1]}})["Item"]
    assert Decimal(item["n"]["N"]) == Decimal(numbers[1])
    between = ddb.query(
        TableName=t,
        KeyConditionExpression="pk = :p AND n BETWEEN :lo AND :hi",
        ExpressionAttributeValues={":p": {"S": "p"}, ":lo": {"N": numbers[1]}, ":hi": {"N": numbers[-2]}},
    )["Items"]
    assert len(between) == len(numbers) - 2


def test_tagging_arns_are_validated_like_dynamodb(raw: Any, make_table: Any) -> None:
    t = make_table(("pk", "S"))
    arn = raw.describe_table(TableName=t)["Table"]["TableArn"]
    region, account = arn.split(":")[3], arn.split(":")[4]
    raw.tag_resource(ResourceArn=arn, Tags=[{"Key": "k", "Value": "v"}])
    assert raw.list_tags_of_resource(ResourceArn=arn)["Tags"] == [{"Key": "k", "Value": "v"}]
    invalid = [
        "not-an-arn",
        f"{arn}/index/by-x",
        arn.replace(f":{region}:", ":eu-west-3:"),
        f"arn:aws:dynamodb:{region}:{account}:backup/{t}",
    ]
    for bad in invalid:
        code, message = _error(raw.list_tags_of_resource, ResourceArn=bad)
        assert (code, message) == (
            "ValidationException",
            f"Invalid TableArn: Invalid ResourceArn provided as input {bad}",
        )
    for denied in (f"arn:aws:s3:::{t}", arn.replace(f":{account}:", ":111122223333:")):
        code, message = _error(raw.untag_resource, ResourceArn=denied, TagKeys=["k"])
        assert code == "AccessDeniedException"
        assert message.endswith(f"is not authorized to perform: dynamodb:UntagResource on resource: {denied}")
    gone = arn + "-gone"
    code, message = _error(raw.tag_resource, ResourceArn=gone, Tags=[{"Key": "k", "Value": "v"}])
    assert (code, message) == (
        "ResourceNotFoundException",
        f"Requested resource not found: ResourcArn: {gone} not found",
    )
    code, message = _error(raw.tag_resource, ResourceArn=arn, Tags=[])
    assert (code, message) == ("ValidationException", "Atleast one Tag needs to be provided as Input.")
