"""Table management: CreateTable validation, Describe/List/Update/Delete, tags, TTL, limits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.services.dynamodb.conftest import key_schema


def error(call: Any, **kw: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as e:
        call(**kw)
    return e.value.response["Error"]["Code"], e.value.response["Error"]["Message"]


def test_create_describe_list_delete(ddb: Any, unique: str) -> None:
    names = [f"list-{unique}-{i}" for i in range(3)]
    for n in names:
        ddb.create_table(
            TableName=n,
            **key_schema(("id", "S")),
            BillingMode="PROVISIONED",
            ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 2},
            Tags=[{"Key": "team", "Value": "core"}],
            SSESpecification={"Enabled": False},
            StreamSpecification={"StreamEnabled": False},
        )
    ddb.get_waiter("table_exists").wait(TableName=names[0])
    desc = ddb.describe_table(TableName=names[0])["Table"]
    assert desc["TableStatus"] == "ACTIVE" and desc["ItemCount"] == 0 and desc["TableSizeBytes"] == 0
    assert desc["TableArn"] == f"arn:aws:dynamodb:us-east-1:000000000000:table/{names[0]}"
    assert desc["ProvisionedThroughput"]["ReadCapacityUnits"] == 5
    assert "SSEDescription" not in desc  # encrypted with an AWS owned key, which DynamoDB does not describe
    # a KMS key for the table is refused: Strata would not encrypt the table with it
    code, _ = error(
        ddb.create_table,
        TableName=f"kms-{unique}",
        **key_schema(("id", "S")),
        BillingMode="PAY_PER_REQUEST",
        SSESpecification={"Enabled": True, "SSEType": "KMS"},
    )
    assert code == "ValidationException"
    assert error(
        ddb.create_table, TableName=names[0], **key_schema(("id", "S")), BillingMode="PAY_PER_REQUEST"
    ) == ("ResourceInUseException", f"Table already exists: {names[0]}")
    seen, start = [], None
    while True:
        r = ddb.list_tables(Limit=2, **({"ExclusiveStartTableName": start} if start else {}))
        seen += r["TableNames"]
        start = r.get("LastEvaluatedTableName")
        if not start:
            break
    assert all(n in seen for n in names) and seen == sorted(seen)
    assert ddb.list_tags_of_resource(ResourceArn=desc["TableArn"])["Tags"] == [
        {"Key": "team", "Value": "core"}
    ]
    ddb.tag_resource(ResourceArn=desc["TableArn"], Tags=[{"Key": "env", "Value": "dev"}])
    ddb.untag_resource(ResourceArn=desc["TableArn"], TagKeys=["team"])
    assert ddb.list_tags_of_resource(ResourceArn=desc["TableArn"])["Tags"] == [{"Key": "env", "Value": "dev"}]
    for n in names:
        assert ddb.delete_table(TableName=n)["TableDescription"]["TableName"] == n
    assert error(ddb.describe_table, TableName=names[0]) == (
        "ResourceNotFoundException",
        f"Requested resource not found: Table: {names[0]} not found",
    )


@pytest.mark.parametrize(
    "kw, message",
    [
        (
            {
                "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": "other", "AttributeType": "S"}],
            },
            "One or more parameter values were invalid: Some index key attributes are not defined in "
            "AttributeDefinitions. Keys: [id], AttributeDefinitions: [other]",
        ),
        (
            {
                **key_schema(("id", "S")),
                "AttributeDefinitions": [
                    {"AttributeName": "id", "AttributeType": "S"},
                    {"AttributeName": "x", "AttributeType": "S"},
                ],
            },
            "One or more parameter values were invalid: Number of attributes in KeySchema does not exactly match "
            "number of attributes defined in AttributeDefinitions",
        ),
        (
            {**key_schema(("id", "S")), "BillingMode": "PROVISIONED"},
            "One or more parameter values were invalid: ReadCapacityUnits and WriteCapacityUnits must both be "
            "specified when BillingMode is PROVISIONED",
        ),
        (
            {
                **key_schema(("id", "S")),
                "LocalSecondaryIndexes": [
                    {
                        "IndexName": "lsi",
                        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
                        "Projection": {"ProjectionType": "ALL"},
                    }
                ],
            },
            "One or more parameter values were invalid: Table KeySchema does not have a range key, which is required "
            "when specifying a LocalSecondaryIndex",
        ),
    ],
)
def test_create_table_validation(ddb: Any, unique: str, kw: dict, message: str) -> None:
    kw.setdefault("BillingMode", "PAY_PER_REQUEST")
    assert error(ddb.create_table, TableName=f"bad-{unique}", **kw) == ("ValidationException", message)


def test_update_billing_ttl_limits_endpoints(ddb: Any, make_table: Any) -> None:
    t = make_table(("id", "S"))
    desc = ddb.update_table(
        TableName=t,
        BillingMode="PROVISIONED",
        ProvisionedThroughput={"ReadCapacityUnits": 3, "WriteCapacityUnits": 4},
    )["TableDescription"]
    assert desc["ProvisionedThroughput"]["WriteCapacityUnits"] == 4 and "BillingModeSummary" not in desc
    assert ddb.describe_time_to_live(TableName=t)["TimeToLiveDescription"]["TimeToLiveStatus"] == "DISABLED"
    ddb.update_time_to_live(
        TableName=t, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"}
    )
    assert ddb.describe_time_to_live(TableName=t)["TimeToLiveDescription"] == {
        "TimeToLiveStatus": "ENABLED",
        "AttributeName": "expires",
    }
    assert error(
        ddb.update_time_to_live,
        TableName=t,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"},
    ) == ("ValidationException", "TimeToLive is already enabled")
    assert ddb.describe_limits()["TableMaxReadCapacityUnits"] == 40000
    assert ddb.describe_endpoints()["Endpoints"][0]["CachePeriodInMinutes"] == 1440


def test_item_count_and_size_are_kept_incrementally(ddb: Any, make_table: Any) -> None:
    t = make_table(("id", "S"))
    ddb.put_item(TableName=t, Item={"id": {"S": "a"}, "v": {"S": "xxxx"}})  # 2 + 1 + 1 + 4 = 8 bytes
    ddb.put_item(TableName=t, Item={"id": {"S": "b"}})  # 3 bytes
    ddb.put_item(TableName=t, Item={"id": {"S": "a"}, "v": {"S": "xx"}})  # replaced: 6 bytes
    ddb.delete_item(TableName=t, Key={"id": {"S": "b"}})
    desc = ddb.describe_table(TableName=t)["Table"]
    assert (desc["ItemCount"], desc["TableSizeBytes"]) == (1, 6)


def test_item_collection_size_limit(strata_factory: Any) -> None:
    server = strata_factory(extra_env={"STRATA_LIMIT_DYNAMODB_ITEM_COLLECTION_BYTES": "2000"})
    ddb = server.client("dynamodb")
    ddb.create_table(
        TableName="coll",
        BillingMode="PAY_PER_REQUEST",
        **key_schema(("pk", "S"), ("sk", "N")),
        LocalSecondaryIndexes=[
            {
                "IndexName": "by-sk2",
                "KeySchema": [
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
    )
    for i in range(3):
        ddb.put_item(TableName="coll", Item={"pk": {"S": "p"}, "sk": {"N": str(i)}, "d": {"S": "x" * 600}})
    with pytest.raises(ClientError) as e:
        ddb.put_item(TableName="coll", Item={"pk": {"S": "p"}, "sk": {"N": "9"}, "d": {"S": "x" * 600}})
    assert e.value.response["Error"]["Code"] == "ItemCollectionSizeLimitExceededException"
    ddb.put_item(TableName="coll", Item={"pk": {"S": "q"}, "sk": {"N": "9"}, "d": {"S": "x" * 600}})


def test_settings_terraform_reads(ddb: Any, make_table: Any) -> None:
    t = make_table(("id", "S"))
    pitr = ddb.describe_continuous_backups(TableName=t)["ContinuousBackupsDescription"]
    assert pitr["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "DISABLED"
    ddb.update_continuous_backups(
        TableName=t, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": False}
    )
    pitr = ddb.describe_continuous_backups(TableName=t)["ContinuousBackupsDescription"]
    assert pitr["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "DISABLED"
    assert ddb.describe_contributor_insights(TableName=t)["ContributorInsightsStatus"] == "DISABLED"
    assert ddb.describe_kinesis_streaming_destination(TableName=t)["KinesisDataStreamDestinations"] == []


def test_ttl_expires_items_when_the_clock_moves(strata_factory: Any) -> None:
    server = strata_factory()
    ddb = server.client("dynamodb")
    ddb.create_table(
        TableName="ttl",
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "id", "AttributeType": "S"},
            {"AttributeName": "g", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-g",
                "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )
    ddb.update_time_to_live(
        TableName="ttl", TimeToLiveSpecification={"Enabled": True, "AttributeName": "exp"}
    )
    now = int(datetime.fromisoformat(server.admin("/_strata/clock")["now"]).timestamp())
    ddb.put_item(TableName="ttl", Item={"id": {"S": "soon"}, "g": {"S": "x"}, "exp": {"N": str(now + 60)}})
    ddb.put_item(
        TableName="ttl", Item={"id": {"S": "later"}, "g": {"S": "x"}, "exp": {"N": str(now + 30 * 86400)}}
    )
    ddb.put_item(TableName="ttl", Item={"id": {"S": "never"}, "g": {"S": "x"}, "exp": {"S": "not a number"}})
    server.advance_clock("10m")  # (more than 15 minutes would expire SigV4 signatures)
    ids = sorted(i["id"]["S"] for i in ddb.scan(TableName="ttl")["Items"])
    assert ids == ["later", "never"]
    r = ddb.query(
        TableName="ttl",
        IndexName="by-g",
        KeyConditionExpression="g = :g",
        ExpressionAttributeValues={":g": {"S": "x"}},
    )
    assert r["Count"] == 2
    assert ddb.describe_table(TableName="ttl")["Table"]["ItemCount"] == 2


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "ab",
            "1 validation error detected: Value 'ab' at 'tableName' failed to satisfy constraint: "
            "Member must have length greater than or equal to 3",
        ),
        (
            "a!",
            "2 validation errors detected: Value 'a!' at 'tableName' failed to satisfy constraint: "
            "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+; Value 'a!' at 'tableName' "
            "failed to satisfy constraint: Member must have length greater than or equal to 3",
        ),
        (
            "bad name",
            "1 validation error detected: Value 'bad name' at 'tableName' failed to satisfy constraint: "
            "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
        ),
        (
            "x" * 256,
            f"1 validation error detected: Value '{'x' * 256}' at 'tableName' failed to satisfy constraint: "
            "Member must have length less than or equal to 255",
        ),
    ],
)
def test_table_name_constraints_are_each_reported(ddb: Any, name: str, message: str) -> None:
    with pytest.raises(ClientError) as e:
        ddb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert e.value.response["Error"]["Message"] == message
