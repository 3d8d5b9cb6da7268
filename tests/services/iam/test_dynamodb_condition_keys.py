"""Fine-grained access to DynamoDB items: dynamodb:LeadingKeys confines a user to the items whose
partition key is their name, dynamodb:Attributes to the attributes a policy lists."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from tests.services.iam.conftest import ROOT
from tests.services.iam.test_iam import make_user


def _denied(call, **kwargs) -> None:
    with pytest.raises(ClientError) as e:
        call(**kwargs)
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"


def _table(server, name: str) -> None:
    ddb = server.client("dynamodb", **ROOT)
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "owner", "KeyType": "HASH"}, {"AttributeName": "n", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "owner", "AttributeType": "S"},
            {"AttributeName": "n", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def _user(server, name: str, condition: dict) -> object:
    creds = make_user(server, name)
    server.client("iam", **ROOT).put_user_policy(
        UserName=name,
        PolicyName="own-items",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": [
                            "dynamodb:GetItem",
                            "dynamodb:PutItem",
                            "dynamodb:UpdateItem",
                            "dynamodb:DeleteItem",
                            "dynamodb:Query",
                            "dynamodb:BatchGetItem",
                            "dynamodb:BatchWriteItem",
                        ],
                        "Resource": "*",
                        "Condition": condition,
                    }
                ],
            }
        ),
    )
    return server.client("dynamodb", **creds)


def test_leading_keys_confine_a_user_to_their_own_partition(iam_server, unique) -> None:
    table, me = f"notes-{unique}", f"kim-{unique}"
    _table(iam_server, table)
    ddb = _user(iam_server, me, {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["${aws:username}"]}})
    mine = {"owner": {"S": me}, "n": {"N": "1"}}
    theirs = {"owner": {"S": "someone-else"}, "n": {"N": "1"}}
    ddb.put_item(TableName=table, Item={**mine, "text": {"S": "hello"}})
    assert ddb.get_item(TableName=table, Key=mine)["Item"]["text"] == {"S": "hello"}
    ddb.update_item(
        TableName=table,
        Key=mine,
        UpdateExpression="SET #t = :t",
        ExpressionAttributeNames={"#t": "text"},
        ExpressionAttributeValues={":t": {"S": "again"}},
    )
    got = ddb.query(
        TableName=table,
        KeyConditionExpression="#o = :me AND n > :zero",
        ExpressionAttributeNames={"#o": "owner"},
        ExpressionAttributeValues={":me": {"S": me}, ":zero": {"N": "0"}},
    )
    assert got["Count"] == 1
    _denied(ddb.put_item, TableName=table, Item=theirs)
    _denied(ddb.get_item, TableName=table, Key=theirs)
    _denied(ddb.delete_item, TableName=table, Key=theirs)
    _denied(
        ddb.query,
        TableName=table,
        KeyConditionExpression="#o = :x",
        ExpressionAttributeNames={"#o": "owner"},
        ExpressionAttributeValues={":x": {"S": "someone-else"}},
    )
    # a batch passes only when every key in it is the user's own
    ddb.batch_get_item(RequestItems={table: {"Keys": [mine]}})
    _denied(ddb.batch_get_item, RequestItems={table: {"Keys": [mine, theirs]}})
    _denied(ddb.batch_write_item, RequestItems={table: [{"PutRequest": {"Item": theirs}}]})
    ddb.delete_item(TableName=table, Key=mine)


def test_attributes_limit_what_a_user_reads_and_writes(iam_server, unique) -> None:
    table = f"people-{unique}"
    _table(iam_server, table)
    ddb = _user(
        iam_server,
        f"lee-{unique}",
        {
            "ForAllValues:StringEquals": {"dynamodb:Attributes": ["owner", "n", "nickname"]},
            "StringEqualsIfExists": {"dynamodb:Select": "SPECIFIC_ATTRIBUTES"},
        },
    )
    key = {"owner": {"S": "a"}, "n": {"N": "1"}}
    iam_server.client("dynamodb", **ROOT).put_item(
        TableName=table, Item={**key, "nickname": {"S": "ace"}, "salary": {"N": "100"}}
    )
    got = ddb.get_item(TableName=table, Key=key, ProjectionExpression="nickname")
    assert got["Item"] == {"nickname": {"S": "ace"}}
    _denied(ddb.get_item, TableName=table, Key=key, ProjectionExpression="salary")
    _denied(ddb.get_item, TableName=table, Key=key)  # every attribute: Select is ALL_ATTRIBUTES
    _denied(
        ddb.get_item,
        TableName=table,
        Key=key,
        ProjectionExpression="#s",
        ExpressionAttributeNames={"#s": "salary"},
    )
    _denied(
        ddb.update_item,
        TableName=table,
        Key=key,
        UpdateExpression="SET salary = :s",
        ExpressionAttributeValues={":s": {"N": "1000000"}},
    )
    ddb.update_item(
        TableName=table,
        Key=key,
        UpdateExpression="SET nickname = :s",
        ExpressionAttributeValues={":s": {"S": "x"}},
    )
