"""Global tables (version 2019.11.21): boto3 clients in two regions of one Strata.

A replica is added with UpdateTable ReplicaUpdates; writes in either region reach the other
(polled: replication is asynchronous), concurrent writes converge on the later one, an
acknowledged write reaches the replica after a kill -9, and a replica can be deleted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.strata_process import StrataProcess

EAST, WEST, EU = "us-east-1", "us-west-2", "eu-west-1"
NEW_AND_OLD = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    # A replica is CREATING for ten minutes of simulated time: it stays so until a test moves
    # the clock, however slowly the machine runs.
    s = StrataProcess(
        tmp_path_factory.mktemp("gt") / "data",
        extra_env={"STRATA_LIMIT_DYNAMODB_REPLICA_CREATE_SECONDS": "600"},
    ).start()
    yield s
    s.stop()


def poll(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """The first truthy answer of `check` (replication is asynchronous), within a generous bound."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: last {value!r}")
        time.sleep(0.05)


def make_table(ddb: Any, name: str, **kw: Any) -> None:
    kw.setdefault("BillingMode", "PAY_PER_REQUEST")
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "g", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-g",
                "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        **kw,
    )


def add_replica(server: StrataProcess, ddb: Any, name: str, region: str) -> dict:
    """Add a replica and wait for it to be ACTIVE (the simulated clock moved past its creation)."""
    out = ddb.update_table(TableName=name, ReplicaUpdates=[{"Create": {"RegionName": region}}])
    other = server.client("dynamodb", region=region)
    server.advance_clock("11m")
    poll(lambda: other.describe_table(TableName=name)["Table"]["TableStatus"] == "ACTIVE")
    return out["TableDescription"]


def get(ddb: Any, name: str, key: str) -> dict | None:
    return ddb.get_item(TableName=name, Key={"pk": {"S": key}}, ConsistentRead=True).get("Item")


def test_replica_created_and_writes_flow_both_ways(server: StrataProcess, unique: str) -> None:
    east = server.client("dynamodb", region=EAST)
    west = server.client("dynamodb", region=WEST)
    name = f"gt-{unique}"
    make_table(east, name, StreamSpecification=NEW_AND_OLD)
    east.put_item(TableName=name, Item={"pk": {"S": "before"}, "g": {"S": "x"}, "n": {"N": "1"}})
    desc = east.update_table(TableName=name, ReplicaUpdates=[{"Create": {"RegionName": WEST}}])[
        "TableDescription"
    ]
    assert desc["GlobalTableVersion"] == "2019.11.21"
    assert desc["Replicas"][0]["RegionName"] == WEST
    assert desc["Replicas"][0]["ReplicaStatus"] == "CREATING"
    with pytest.raises(ClientError) as info:  # not usable before it is ACTIVE
        west.get_item(TableName=name, Key={"pk": {"S": "before"}})
    assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert west.describe_table(TableName=name)["Table"]["TableStatus"] == "CREATING"
    with pytest.raises(ClientError) as info:  # no replica leaves while another is being created
        east.delete_table(TableName=name)
    assert info.value.response["Error"]["Code"] == "ResourceInUseException"
    server.advance_clock("11m")
    poll(lambda: west.describe_table(TableName=name)["Table"]["TableStatus"] == "ACTIVE")

    replica = west.describe_table(TableName=name)["Table"]
    assert replica["TableArn"] == f"arn:aws:dynamodb:{WEST}:000000000000:table/{name}"
    assert replica["StreamSpecification"] == NEW_AND_OLD
    assert replica["GlobalSecondaryIndexes"][0]["IndexName"] == "by-g"
    assert [r["RegionName"] for r in replica["Replicas"]] == [EAST]
    source = east.describe_table(TableName=name)["Table"]
    assert source["TableStatus"] == "ACTIVE"
    assert source["Replicas"] == [
        {
            "RegionName": WEST,
            "ReplicaStatus": "ACTIVE",
            "ReplicaTableClassSummary": {"TableClass": "STANDARD"},
        }
    ]

    with pytest.raises(ClientError) as info:  # the legacy API knows no version 2019.11.21 table
        east.describe_global_table(GlobalTableName=name)
    assert info.value.response["Error"]["Code"] == "GlobalTableNotFoundException"

    # The item written before the replica existed was copied, its index entry too.
    assert get(west, name, "before") == {"pk": {"S": "before"}, "g": {"S": "x"}, "n": {"N": "1"}}
    assert (
        west.query(
            TableName=name,
            IndexName="by-g",
            KeyConditionExpression="g = :g",
            ExpressionAttributeValues={":g": {"S": "x"}},
        )["Count"]
        == 1
    )

    # Every write path, in either region, reaches the other; no aws:rep:* attributes appear.
    east.put_item(TableName=name, Item={"pk": {"S": "a"}, "v": {"S": "east"}})
    east.update_item(
        TableName=name,
        Key={"pk": {"S": "before"}},
        UpdateExpression="SET n = n + :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
    )
    west.batch_write_item(
        RequestItems={
            name: [{"PutRequest": {"Item": {"pk": {"S": f"b{i}"}, "v": {"S": "west"}}}} for i in range(3)]
        }
    )
    west.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": name, "Item": {"pk": {"S": "t"}, "v": {"S": "tx"}}}},
            {"Delete": {"TableName": name, "Key": {"pk": {"S": "b0"}}}},
        ]
    )
    assert poll(lambda: get(west, name, "a")) == {"pk": {"S": "a"}, "v": {"S": "east"}}
    assert poll(lambda: (get(west, name, "before") or {}).get("n") == {"N": "2"})
    assert poll(lambda: get(east, name, "t")) == {"pk": {"S": "t"}, "v": {"S": "tx"}}
    assert poll(lambda: get(east, name, "b2")) == {"pk": {"S": "b2"}, "v": {"S": "west"}}
    poll(lambda: get(east, name, "b0") is None)
    east.delete_item(TableName=name, Key={"pk": {"S": "a"}})
    poll(lambda: get(west, name, "a") is None)
    both = [
        sorted(i["pk"]["S"] for i in c.scan(TableName=name, ConsistentRead=True)["Items"])
        for c in (east, west)
    ]
    assert both[0] == both[1] == ["b1", "b2", "before", "t"]
    assert all(
        not k.startswith("aws:rep:") for c in (east, west) for i in c.scan(TableName=name)["Items"] for k in i
    )

    # The replica's own stream shows the replicated changes, as DynamoDB's does.
    streams = server.client("dynamodbstreams", region=WEST)
    arn = replica["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]
    records = streams.get_records(ShardIterator=it)["Records"]
    assert {"a", "before"} <= {r["dynamodb"]["Keys"]["pk"]["S"] for r in records}

    # A third region joins: it gets everything, and writes there reach both others.
    eu = server.client("dynamodb", region=EU)
    add_replica(server, east, name, EU)
    assert sorted(i["pk"]["S"] for i in eu.scan(TableName=name, ConsistentRead=True)["Items"]) == both[0]
    eu.put_item(TableName=name, Item={"pk": {"S": "from-eu"}})
    poll(lambda: get(east, name, "from-eu") and get(west, name, "from-eu"))
    assert sorted(r["RegionName"] for r in west.describe_table(TableName=name)["Table"]["Replicas"]) == [
        EU,
        EAST,
    ]

    # Deleting a replica (from another region) removes that table; the rest stay global. A
    # replica protected against deletion is not deleted that way either.
    eu.update_table(TableName=name, DeletionProtectionEnabled=True)
    with pytest.raises(ClientError) as info:
        east.update_table(TableName=name, ReplicaUpdates=[{"Delete": {"RegionName": EU}}])
    assert "protected against deletion" in info.value.response["Error"]["Message"]
    eu.update_table(TableName=name, DeletionProtectionEnabled=False)
    east.update_table(TableName=name, ReplicaUpdates=[{"Delete": {"RegionName": EU}}])
    poll(lambda: name not in eu.list_tables()["TableNames"])
    assert [r["RegionName"] for r in east.describe_table(TableName=name)["Table"]["Replicas"]] == [WEST]
    # DeleteTable in a region deletes that replica: the last one left is an ordinary table.
    west.delete_table(TableName=name)
    last = east.describe_table(TableName=name)["Table"]
    assert "Replicas" not in last and "GlobalTableVersion" not in last
    east.put_item(TableName=name, Item={"pk": {"S": "alone"}})
    east.delete_table(TableName=name)


def test_replica_updates_errors(server: StrataProcess, unique: str) -> None:
    east = server.client("dynamodb", region=EAST)
    west = server.client("dynamodb", region=WEST)
    name = f"gte-{unique}"

    def error(**kw: Any) -> tuple[str, str]:
        with pytest.raises(ClientError) as info:
            east.update_table(TableName=name, **kw)
        return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]

    make_table(east, name)  # no stream
    code, message = error(ReplicaUpdates=[{"Create": {"RegionName": WEST}}])
    assert code == "ValidationException" and "NEW_AND_OLD_IMAGES" in message
    east.update_table(
        TableName=name, StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}
    )
    assert "NEW_AND_OLD_IMAGES" in error(ReplicaUpdates=[{"Create": {"RegionName": WEST}}])[1]
    east.update_table(TableName=name, StreamSpecification={"StreamEnabled": False})
    east.update_table(TableName=name, StreamSpecification=NEW_AND_OLD)
    assert error(ReplicaUpdates=[{"Create": {"RegionName": EAST}}])[0] == "ValidationException"
    assert error(ReplicaUpdates=[{"Create": {"RegionName": "mars-north-1"}}])[0] == "ValidationException"
    assert error(ReplicaUpdates=[{"Delete": {"RegionName": WEST}}])[0] == "ValidationException"
    code, message = error(ReplicaUpdates=[{"Create": {"RegionName": WEST, "KMSMasterKeyId": "alias/x"}}])
    assert code == "ValidationException" and "not supported by Strata" in message
    code, message = error(ReplicaUpdates=[{"Create": {"RegionName": WEST}}], DeletionProtectionEnabled=True)
    assert code == "ValidationException"
    code, message = error(MultiRegionConsistency="STRONG", ReplicaUpdates=[{"Create": {"RegionName": WEST}}])
    assert code == "ValidationException" and "MultiRegionConsistency" in message
    # A table of that name in the other region already: DynamoDB's own words.
    make_table(west, name)
    code, message = error(ReplicaUpdates=[{"Create": {"RegionName": WEST}}])
    assert message == (
        f"Failed to create a the new replica of table with name: '{name}' because one or more replicas "
        "already existed as tables."
    )
    west.delete_table(TableName=name)
    add_replica(server, east, name, WEST)
    code, message = error(ReplicaUpdates=[{"Create": {"RegionName": WEST}}])
    assert code == "ValidationException"
    # A global table's stream cannot be disabled.
    assert error(StreamSpecification={"StreamEnabled": False})[0] == "ValidationException"
    # PROVISIONED without write auto scaling: DynamoDB's answer.
    prov = f"gtp-{unique}"
    east.create_table(
        TableName=prov,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
        StreamSpecification=NEW_AND_OLD,
    )
    with pytest.raises(ClientError) as info:
        east.update_table(TableName=prov, ReplicaUpdates=[{"Create": {"RegionName": WEST}}])
    assert (
        info.value.response["Error"]["Message"]
        == "Table write capacity should either be Pay-Per-Request or AutoScaled."
    )
    east.delete_table(TableName=prov)
    auto = east.describe_table_replica_auto_scaling(TableName=name)["TableAutoScalingDescription"]
    assert auto["TableName"] == name and [r["RegionName"] for r in auto["Replicas"]] == [EAST, WEST]
    east.update_table(TableName=name, ReplicaUpdates=[{"Delete": {"RegionName": WEST}}])
    east.delete_table(TableName=name)


def test_last_writer_wins_and_replication_survives_kill_9(strata_factory: Any, unique: str) -> None:
    """With replication held back ten minutes of simulated time, both regions take writes to the
    same items before either sees the other's: once the clock moves, both hold the later write.
    A write acknowledged just before a kill -9 reaches the replica after the restart."""
    server = strata_factory(
        extra_env={
            "STRATA_LIMIT_DYNAMODB_REPLICATION_LAG_SECONDS": "600",
            "STRATA_LIMIT_DYNAMODB_BULK_CHUNK": "3",
        }
    )
    east = server.client("dynamodb", region=EAST)
    name = f"lww-{unique}"
    make_table(east, name, StreamSpecification=NEW_AND_OLD)
    for i in range(10):
        east.put_item(TableName=name, Item={"pk": {"S": f"pre{i}"}, "g": {"S": "x"}})
    # The new replica's copy goes in chunks of three (not held back by the lag).
    west = server.client("dynamodb", region=WEST)
    add_replica(server, east, name, WEST)
    assert west.describe_table(TableName=name)["Table"]["ItemCount"] == 10
    assert (
        west.query(
            TableName=name,
            IndexName="by-g",
            KeyConditionExpression="g = :g",
            ExpressionAttributeValues={":g": {"S": "x"}},
        )["Count"]
        == 10
    )

    east.put_item(TableName=name, Item={"pk": {"S": "k"}, "v": {"S": "east-first"}})
    west.put_item(TableName=name, Item={"pk": {"S": "k"}, "v": {"S": "west-later"}})
    west.put_item(TableName=name, Item={"pk": {"S": "k2"}, "v": {"S": "west-first"}})
    east.update_item(
        TableName=name,
        Key={"pk": {"S": "k2"}},
        UpdateExpression="SET v = :v",
        ExpressionAttributeValues={":v": {"S": "east-later"}},
    )
    west.put_item(TableName=name, Item={"pk": {"S": "gone"}})
    east.delete_item(TableName=name, Key={"pk": {"S": "gone"}})  # a delete of nothing here: no change
    # Not replicated yet: each region has its own writes only.
    assert get(east, name, "k")["v"] == {"S": "east-first"}
    assert get(west, name, "k")["v"] == {"S": "west-later"}
    assert get(east, name, "gone") is None

    server.advance_clock("11m")
    # east's records (k, then k2) go to west in order: once k2 arrived, k was decided too.
    # (west holds its own k2 already: wait for east's value, not for the item)
    assert poll(lambda: (get(west, name, "k2") or {}).get("v") == {"S": "east-later"})
    assert poll(lambda: (get(east, name, "k") or {}).get("v") == {"S": "west-later"})
    poll(lambda: get(east, name, "gone"))
    assert get(west, name, "k")["v"] == {"S": "west-later"}  # the older east write lost
    assert get(east, name, "k2")["v"] == {"S": "east-later"}  # the older west write lost
    # Replicated writes are metered as replicated write units of the receiving table.
    events = server.admin("/_strata/meter?service=dynamodb")["events"]
    assert sum(e["quantity"] for e in events if e["event"] == "ReplicatedWriteCapacityUnits") >= 2

    # CloudWatch's ReplicationLatency, in the sending region per receiving one: ten minutes here.
    server.advance_clock("2m")
    cw = server.client("cloudwatch", region=EAST)

    def latency() -> list:
        return cw.get_metric_statistics(
            Namespace="AWS/DynamoDB",
            MetricName="ReplicationLatency",
            Dimensions=[{"Name": "TableName", "Value": name}, {"Name": "ReceivingRegion", "Value": WEST}],
            StartTime=datetime.now(UTC) - timedelta(hours=12),
            EndTime=datetime.now(UTC) + timedelta(hours=12),
            Period=3600,
            Statistics=["Minimum", "Maximum"],
        )["Datapoints"]

    points = poll(latency)
    assert min(p["Minimum"] for p in points) >= 600_000 and points[0]["Unit"] == "Milliseconds"

    # kill -9 right after an acknowledged write (held back by the lag, so not yet replicated).
    east.put_item(TableName=name, Item={"pk": {"S": "durable"}, "v": {"S": "acked"}})
    server.kill()
    server.start()
    east = server.client("dynamodb", region=EAST)
    west = server.client("dynamodb", region=WEST)
    assert get(west, name, "durable") is None
    server.advance_clock("11m")
    assert poll(lambda: get(west, name, "durable")) == {"pk": {"S": "durable"}, "v": {"S": "acked"}}
    assert get(west, name, "k")["v"] == {"S": "west-later"}  # nothing replayed twice
    assert [r["RegionName"] for r in east.describe_table(TableName=name)["Table"]["Replicas"]] == [WEST]


def test_legacy_global_table_apis(server: StrataProcess, unique: str) -> None:
    """Version 2017.11.29: CreateGlobalTable joins existing empty tables with NEW_AND_OLD_IMAGES
    streams; UpdateGlobalTable adds and removes regions; a 2019.11.21 table is unknown to them."""
    clients = {r: server.client("dynamodb", region=r) for r in (EAST, WEST, EU)}
    east, west, eu = clients[EAST], clients[WEST], clients[EU]
    name = f"legacy-{unique}"

    def code(call: Callable[..., Any], **kw: Any) -> str:
        with pytest.raises(ClientError) as info:
            call(**kw)
        return info.value.response["Error"]["Code"]

    group = [{"RegionName": EAST}, {"RegionName": WEST}]
    assert (
        code(east.create_global_table, GlobalTableName=name, ReplicationGroup=group)
        == "TableNotFoundException"
    )
    for c in (east, west):
        make_table(c, name, StreamSpecification=NEW_AND_OLD)
    west.put_item(TableName=name, Item={"pk": {"S": "x"}})
    assert (
        code(east.create_global_table, GlobalTableName=name, ReplicationGroup=group) == "ValidationException"
    )
    west.delete_item(TableName=name, Key={"pk": {"S": "x"}})
    desc = east.create_global_table(GlobalTableName=name, ReplicationGroup=group)["GlobalTableDescription"]
    assert desc["GlobalTableName"] == name and desc["GlobalTableStatus"] == "ACTIVE"
    assert desc["GlobalTableArn"] == f"arn:aws:dynamodb::000000000000:global-table/{name}"
    assert [r["RegionName"] for r in desc["ReplicationGroup"]] == [EAST, WEST]
    assert code(east.create_global_table, GlobalTableName=name, ReplicationGroup=group) == (
        "GlobalTableAlreadyExistsException"
    )
    assert east.describe_table(TableName=name)["Table"]["GlobalTableVersion"] == "2017.11.29"
    east.put_item(TableName=name, Item={"pk": {"S": "one"}})
    poll(lambda: get(west, name, "one"))
    listed = west.list_global_tables(RegionName=WEST)["GlobalTables"]
    assert {"GlobalTableName": name, "ReplicationGroup": group} in listed
    assert all(t["GlobalTableName"] != name for t in west.list_global_tables(RegionName=EU)["GlobalTables"])

    make_table(eu, name, StreamSpecification=NEW_AND_OLD)
    desc = east.update_global_table(GlobalTableName=name, ReplicaUpdates=[{"Create": {"RegionName": EU}}])
    assert [r["RegionName"] for r in desc["GlobalTableDescription"]["ReplicationGroup"]] == [EAST, WEST, EU]
    eu.put_item(TableName=name, Item={"pk": {"S": "two"}})
    poll(lambda: get(east, name, "two") and get(west, name, "two"))
    assert code(
        east.update_global_table, GlobalTableName=name, ReplicaUpdates=[{"Create": {"RegionName": EU}}]
    ) == ("ReplicaAlreadyExistsException")
    east.update_global_table(GlobalTableName=name, ReplicaUpdates=[{"Delete": {"RegionName": EU}}])
    desc = east.describe_global_table(GlobalTableName=name)["GlobalTableDescription"]
    assert [r["RegionName"] for r in desc["ReplicationGroup"]] == [EAST, WEST]
    assert code(
        east.update_global_table, GlobalTableName=name, ReplicaUpdates=[{"Delete": {"RegionName": EU}}]
    ) == ("ReplicaNotFoundException")
    eu.put_item(TableName=name, Item={"pk": {"S": "eu-only"}})  # no longer replicated
    east.put_item(TableName=name, Item={"pk": {"S": "three"}})
    poll(lambda: get(west, name, "three"))
    assert get(east, name, "eu-only") is None and get(eu, name, "three") is None

    # A version 2019.11.21 global table is not a legacy one.
    assert (
        code(east.describe_global_table, GlobalTableName=f"nope-{unique}") == "GlobalTableNotFoundException"
    )
    for c in (east, west, eu):
        c.delete_table(TableName=name)


def test_settings_of_the_global_table_reach_every_replica(server: StrataProcess, unique: str) -> None:
    """A GSI and TTL set in one region are set in the other, as DynamoDB does; replicated writes
    then fill the new index there."""
    east = server.client("dynamodb", region=EAST)
    west = server.client("dynamodb", region=WEST)
    name = f"gts-{unique}"
    make_table(east, name, StreamSpecification=NEW_AND_OLD)
    add_replica(server, east, name, WEST)
    east.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "exp"}
    )
    assert west.describe_time_to_live(TableName=name)["TimeToLiveDescription"] == {
        "TimeToLiveStatus": "ENABLED",
        "AttributeName": "exp",
    }
    west.update_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "c", "AttributeType": "N"}],
        GlobalSecondaryIndexUpdates=[
            {
                "Create": {
                    "IndexName": "by-c",
                    "KeySchema": [{"AttributeName": "c", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                }
            }
        ],
    )
    assert [
        ix["IndexName"] for ix in east.describe_table(TableName=name)["Table"]["GlobalSecondaryIndexes"]
    ] == [
        "by-g",
        "by-c",
    ]
    east.put_item(TableName=name, Item={"pk": {"S": "i"}, "c": {"N": "7"}})
    query = {
        "TableName": name,
        "IndexName": "by-c",
        "KeyConditionExpression": "c = :c",
        "ExpressionAttributeValues": {":c": {"N": "7"}},
    }
    assert poll(lambda: west.query(**query)["Items"]) == [{"pk": {"S": "i"}, "c": {"N": "7"}}]
    # The stream of a global table cannot be turned off.
    with pytest.raises(ClientError) as info:
        west.update_table(TableName=name, StreamSpecification={"StreamEnabled": False})
    assert info.value.response["Error"]["Code"] == "ValidationException"
    # A table restored from a replica's backup is a table of its own, not a replica.
    backup = east.create_backup(TableName=name, BackupName="gt-backup")["BackupDetails"]["BackupArn"]
    poll(
        lambda: (
            east.describe_backup(BackupArn=backup)["BackupDescription"]["BackupDetails"]["BackupStatus"]
            == "AVAILABLE"
        )
    )
    east.restore_table_from_backup(TargetTableName=f"{name}-r", BackupArn=backup)
    restored = east.describe_table(TableName=f"{name}-r")["Table"]
    assert "Replicas" not in restored and "GlobalTableVersion" not in restored
    east.update_table(TableName=name, ReplicaUpdates=[{"Delete": {"RegionName": WEST}}])
    east.delete_table(TableName=name)


def test_replica_auto_scaling(server: StrataProcess, unique: str) -> None:
    """A PROVISIONED table needs write auto scaling to get a replica (DynamoDB's rule);
    UpdateTableReplicaAutoScaling sets it in every replica's region, as Application Auto Scaling
    then shows."""
    east = server.client("dynamodb", region=EAST)
    name = f"gta-{unique}"
    east.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
        StreamSpecification=NEW_AND_OLD,
    )
    policy = {
        "PolicyName": "write-70",
        "TargetTrackingScalingPolicyConfiguration": {"TargetValue": 70.0},
    }
    write = {"MinimumUnits": 5, "MaximumUnits": 50, "ScalingPolicyUpdate": policy}
    east.update_table_replica_auto_scaling(TableName=name, ProvisionedWriteCapacityAutoScalingUpdate=write)
    add_replica(server, east, name, WEST)
    write["MaximumUnits"] = 80
    out = east.update_table_replica_auto_scaling(
        TableName=name,
        ProvisionedWriteCapacityAutoScalingUpdate=write,
        ReplicaUpdates=[
            {
                "RegionName": WEST,
                "ReplicaProvisionedReadCapacityAutoScalingUpdate": {"MinimumUnits": 5, "MaximumUnits": 9},
            }
        ],
    )["TableAutoScalingDescription"]
    by_region = {r["RegionName"]: r for r in out["Replicas"]}
    assert sorted(by_region) == [EAST, WEST]
    for r in by_region.values():
        settings = r["ReplicaProvisionedWriteCapacityAutoScalingSettings"]
        assert (settings["MinimumUnits"], settings["MaximumUnits"]) == (5, 80)
        assert (
            settings["ScalingPolicies"][0]["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 70.0
        )
    assert by_region[WEST]["ReplicaProvisionedReadCapacityAutoScalingSettings"]["MaximumUnits"] == 9
    assert "ReplicaProvisionedReadCapacityAutoScalingSettings" not in by_region[EAST]
    targets = server.client("application-autoscaling", region=WEST).describe_scalable_targets(
        ServiceNamespace="dynamodb", ResourceIds=[f"table/{name}"]
    )["ScalableTargets"]
    assert sorted((t["ScalableDimension"], t["MaxCapacity"]) for t in targets) == [
        ("dynamodb:table:ReadCapacityUnits", 9),
        ("dynamodb:table:WriteCapacityUnits", 80),
    ]
    east.update_table_replica_auto_scaling(
        TableName=name,
        ReplicaUpdates=[
            {
                "RegionName": WEST,
                "ReplicaProvisionedReadCapacityAutoScalingUpdate": {"AutoScalingDisabled": True},
            }
        ],
    )
    auto = east.describe_table_replica_auto_scaling(TableName=name)["TableAutoScalingDescription"]
    west = next(r for r in auto["Replicas"] if r["RegionName"] == WEST)
    assert "ReplicaProvisionedReadCapacityAutoScalingSettings" not in west
    # A capacity change made in one region is made in every replica.
    east.update_table(TableName=name, ProvisionedThroughput={"ReadCapacityUnits": 6, "WriteCapacityUnits": 7})
    west_table = server.client("dynamodb", region=WEST).describe_table(TableName=name)["Table"]
    got = west_table["ProvisionedThroughput"]
    assert (got["ReadCapacityUnits"], got["WriteCapacityUnits"]) == (6, 7)


def test_replicated_writes_use_the_replica_capacity(server: StrataProcess, unique: str) -> None:
    """A provisioned replica's write capacity pays for the writes replicated into it: after 200
    one-unit writes in the other region, its 300-unit burst has about 100 units left."""
    east = server.client("dynamodb", region=EAST)
    west = server.client("dynamodb", region=WEST)
    name = f"gtc-{unique}"
    east.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1},
        StreamSpecification=NEW_AND_OLD,
    )
    server.client("application-autoscaling", region=EAST).register_scalable_target(
        ServiceNamespace="dynamodb",
        ResourceId=f"table/{name}",
        ScalableDimension="dynamodb:table:WriteCapacityUnits",
        MinCapacity=1,
        MaxCapacity=1,  # no scaling during the test
    )
    add_replica(server, east, name, WEST)
    for i in range(200):
        east.put_item(TableName=name, Item={"pk": {"S": f"k{i}"}})
    poll(lambda: get(west, name, "k199"))
    with pytest.raises(ClientError) as info:
        for i in range(200):
            west.put_item(TableName=name, Item={"pk": {"S": f"w{i}"}})
    assert info.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
