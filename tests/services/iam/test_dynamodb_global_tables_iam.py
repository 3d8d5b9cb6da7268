"""Global tables under IAM: adding or removing a replica with UpdateTable also needs
dynamodb:CreateTableReplica / dynamodb:DeleteTableReplica on the table in the replica's region."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from tests.services.iam.conftest import ACCOUNT, ROOT
from tests.services.iam.test_iam import make_user


def test_replica_actions_on_the_replica_region(iam_server, unique) -> None:
    name = f"gt-{unique}"
    iam_server.client("dynamodb", **ROOT).create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    user = f"gt-{unique}"
    creds = make_user(iam_server, user)
    statements = [
        {"Effect": "Allow", "Action": "dynamodb:UpdateTable", "Resource": "*"},
        {
            "Effect": "Allow",
            "Action": "dynamodb:CreateTableReplica",
            "Resource": f"arn:aws:dynamodb:us-west-2:{ACCOUNT}:table/{name}",
        },
    ]
    iam_server.client("iam", **ROOT).put_user_policy(
        UserName=user,
        PolicyName="replicas",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}),
    )
    ddb = iam_server.client("dynamodb", **creds)
    with pytest.raises(ClientError) as e:  # no dynamodb:CreateTableReplica in eu-west-1
        ddb.update_table(TableName=name, ReplicaUpdates=[{"Create": {"RegionName": "eu-west-1"}}])
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "dynamodb:CreateTableReplica" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:  # nor DeleteTableReplica anywhere
        ddb.update_table(TableName=name, ReplicaUpdates=[{"Delete": {"RegionName": "us-west-2"}}])
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"
    desc = ddb.update_table(TableName=name, ReplicaUpdates=[{"Create": {"RegionName": "us-west-2"}}])
    assert desc["TableDescription"]["Replicas"][0]["RegionName"] == "us-west-2"
