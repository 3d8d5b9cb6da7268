"""DynamoDB Streams under IAM: GetRecords is authorized on the stream its shard iterator names
(a policy granting one stream's records does not grant another's)."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from tests.services.iam.conftest import ROOT
from tests.services.iam.test_iam import make_user


def _stream(server, name: str) -> tuple[str, str]:
    ddb = server.client("dynamodb", **ROOT)
    arn = ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"},
    )["TableDescription"]["LatestStreamArn"]
    ddb.put_item(TableName=name, Item={"pk": {"S": "a"}})
    streams = server.client("dynamodbstreams", **ROOT)
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    return arn, it["ShardIterator"]


def test_get_records_is_authorized_on_the_iterators_stream(iam_server, unique) -> None:
    mine, my_iterator = _stream(iam_server, f"mine-{unique}")
    _, other_iterator = _stream(iam_server, f"other-{unique}")
    name = f"reader-{unique}"
    creds = make_user(iam_server, name)
    iam_server.client("iam", **ROOT).put_user_policy(
        UserName=name,
        PolicyName="streams",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "dynamodb:GetRecords", "Resource": mine}],
            }
        ),
    )
    reader = iam_server.client("dynamodbstreams", **creds)
    assert [r["eventName"] for r in reader.get_records(ShardIterator=my_iterator)["Records"]] == ["INSERT"]
    with pytest.raises(ClientError) as e:
        reader.get_records(ShardIterator=other_iterator)
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "/stream/" in e.value.response["Error"]["Message"]  # denied on that stream, not on "*"
